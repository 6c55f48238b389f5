//! The function's targets, kept across a warm container's events: one per `engine` value,
//! built by [`keyroll_targets::resolve`] the first time a step needs it. A database target
//! then loads its TLS trust roots once per container instead of once per event, and its
//! code for doing so runs once.

use std::sync::Mutex;

use async_trait::async_trait;
use keyroll_core::ports::{SharedTarget, StepContext, Target, TargetError};
use keyroll_core::value::SecretValue;
use keyroll_targets::TargetConfig;
use tokio::sync::OnceCell;

/// Targets by the `engine` field of the secrets they rotate (`None`: no field).
pub struct TargetCache {
    config: TargetConfig,
    by_engine: Mutex<Vec<(Option<String>, SharedTarget)>>,
}

impl std::fmt::Debug for TargetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetCache")
            .field("targets", &self.len())
            .finish_non_exhaustive()
    }
}

impl TargetCache {
    pub fn new(config: TargetConfig) -> Self {
        TargetCache {
            config,
            by_engine: Mutex::new(Vec::new()),
        }
    }

    /// Targets built so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The target of one event, resolved when a step first needs it (after the engine's
    /// checks, like [`keyroll_targets::AutoTarget`]).
    pub fn for_event(&self) -> EventTarget<'_> {
        EventTarget {
            cache: self,
            resolved: OnceCell::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Option<String>, SharedTarget)>> {
        self.by_engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(
        &self,
        ctx: &StepContext<'_>,
        current: &SecretValue,
    ) -> Result<SharedTarget, TargetError> {
        let engine = current
            .json_object()
            .and_then(|o| o.get("engine").and_then(|e| e.as_str().map(str::to_string)));
        let mut targets = self.lock();
        if let Some((_, t)) = targets.iter().find(|(e, _)| *e == engine) {
            return Ok(t.clone());
        }
        let t = keyroll_targets::resolve(ctx.description, current, &self.config)?;
        targets.push((engine, t.clone()));
        Ok(t)
    }
}

/// One event's view of a [`TargetCache`].
pub struct EventTarget<'a> {
    cache: &'a TargetCache,
    resolved: OnceCell<SharedTarget>,
}

impl EventTarget<'_> {
    async fn get(&self, ctx: &StepContext<'_>) -> Result<&SharedTarget, TargetError> {
        self.resolved
            .get_or_try_init(|| async {
                let current = ctx.current().await?;
                self.cache.get(ctx, &current.value)
            })
            .await
    }
}

#[async_trait]
impl Target for EventTarget<'_> {
    fn name(&self) -> &str {
        self.resolved.get().map_or("unresolved", |t| t.name())
    }
    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        self.get(ctx).await?.create(ctx).await
    }
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.get(ctx).await?.set(ctx).await
    }
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.get(ctx).await?.test(ctx).await
    }
    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.get(ctx).await?.finish(ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyroll_core::api::DescribeSecretResponse;
    use keyroll_core::model::Step;
    use keyroll_core::ports::SecretsApi;

    #[tokio::test]
    async fn one_target_per_engine_across_events() {
        let svc =
            keyroll_core::service::SecretsService::new(keyroll_core::memory::MemoryBackend::new(
                keyroll_core::ids::Namespace::new("us-east-1", "123456789012"),
                std::sync::Arc::new(keyroll_core::time::SystemClock),
            ));
        let store: &dyn SecretsApi = &svc;
        let desc = DescribeSecretResponse {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf".into(),
            name: "a".into(),
            ..Default::default()
        };
        let cache = TargetCache::new(TargetConfig::default());
        let ctx = StepContext::new(store, Step::Create, &desc.arn, "t", &desc);
        let pg = SecretValue::String(
            r#"{"engine":"postgres","host":"h","username":"u","password":"p"}"#
                .to_string()
                .into(),
        );
        let plain = SecretValue::String(r#"{"password":"p"}"#.to_string().into());
        let a = cache.get(&ctx, &pg).unwrap();
        let b = cache.get(&ctx, &pg).unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&a, &b),
            "the same target for the same engine"
        );
        assert_eq!(a.name(), "postgres");
        let c = cache.get(&ctx, &plain).unwrap();
        assert_eq!(c.name(), "none");
        assert_eq!(cache.len(), 2);
        let bad = SecretValue::String(r#"{"engine":"oracle"}"#.to_string().into());
        assert!(cache.get(&ctx, &bad).is_err());
        assert_eq!(cache.len(), 2, "a failed resolution is not kept");
    }
}
