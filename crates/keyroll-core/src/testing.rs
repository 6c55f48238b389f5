//! Helpers for tests of targets and drivers: a target wrapper that fails on command, a
//! counting target, a sleeper that records instead of waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::Step;
use crate::ports::{StepContext, Target, TargetError};
use crate::value::SecretValue;

/// A secret for tests: `value` under `name` with `tags`, rotation enabled with keyroll's
/// built-in function and `rules`, if any. Returns its ARN.
pub async fn rotatable_secret<B: crate::service::Backend>(
    svc: &crate::service::SecretsService<B>,
    name: &str,
    value: &str,
    tags: &[(&str, &str)],
    rules: Option<crate::model::RotationRules>,
) -> Result<String, crate::SmError> {
    use crate::ports::{RotationStore, SecretsApi};
    let arn = svc
        .create_secret(crate::api::CreateSecretRequest {
            name: name.into(),
            client_request_token: Some(crate::ids::new_token()),
            secret_string: Some(secrecy::SecretString::from(value.to_string())),
            tags: (!tags.is_empty()).then(|| {
                tags.iter()
                    .map(|(k, v)| crate::model::Tag::new(*k, *v))
                    .collect()
            }),
            ..Default::default()
        })
        .await?
        .arn;
    svc.configure_rotation(&arn, Some("keyroll".into()), rules)
        .await?;
    Ok(arn)
}

/// A [`crate::time::Sleeper`] that returns at once and records the delays it was asked for.
#[derive(Debug, Default)]
pub struct RecordingSleeper(Mutex<Vec<Duration>>);

#[async_trait]
impl crate::time::Sleeper for RecordingSleeper {
    async fn sleep(&self, d: Duration) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }
}

impl RecordingSleeper {
    /// The delays asked for so far, in order.
    pub fn delays(&self) -> Vec<Duration> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Wraps a target and makes chosen steps fail a chosen number of times (before the inner
/// target runs, or after it when `after` is set, to mimic a crash once the work is done).
pub struct FlakyTarget<T> {
    pub inner: T,
    failures: Mutex<HashMap<Step, (u32, bool)>>,
}

impl<T: Target> FlakyTarget<T> {
    pub fn new(inner: T) -> Self {
        FlakyTarget {
            inner,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Fail `step` the next `times` times, before the inner target acts.
    pub fn fail_before(&self, step: Step, times: u32) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(step, (times, false));
    }

    /// Fail `step` the next `times` times, after the inner target acted.
    pub fn fail_after(&self, step: Step, times: u32) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(step, (times, true));
    }

    fn take(&self, step: Step, after: bool) -> Result<(), TargetError> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, a)) = f.get_mut(&step)
            && *n > 0
            && *a == after
        {
            *n -= 1;
            return Err(TargetError::Rejected(format!("injected failure at {step}")));
        }
        Ok(())
    }
}

#[async_trait]
impl<T: Target> Target for FlakyTarget<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        self.take(Step::Create, false)?;
        let v = self.inner.create(ctx).await?;
        self.take(Step::Create, true)?;
        Ok(v)
    }
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.take(Step::Set, false)?;
        self.inner.set(ctx).await?;
        self.take(Step::Set, true)
    }
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.take(Step::Test, false)?;
        self.inner.test(ctx).await?;
        self.take(Step::Test, true)
    }
    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.take(Step::Finish, false)?;
        self.inner.finish(ctx).await?;
        self.take(Step::Finish, true)
    }
}

/// A minimal target: the pending value is the current one with `-rotated-N` appended.
/// For engine tests that need no external system.
#[derive(Default)]
pub struct CounterTarget {
    n: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl Target for CounterTarget {
    fn name(&self) -> &str {
        "counter"
    }
    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        let cur = ctx.current().await?;
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = cur.value.expose_str().unwrap_or("binary");
        let base = base.split("-rotated-").next().unwrap_or(base);
        Ok(SecretValue::string(format!("{base}-rotated-{n}")))
    }
    async fn set(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        ctx.pending().await.map(|_| ())
    }
}
