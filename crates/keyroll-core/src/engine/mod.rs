//! The rotation engine: one step, validated the way AWS's rotation-function template does
//! ([`run_step`], in `step`), the whole rotation the way the Secrets Manager service drives
//! it ([`rotate`], [`rotate_with`]), and `RotateSecret`'s part before it answers
//! ([`begin_request`]) and `RotateImmediately=false` ([`test_rotation`]), in `request`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::api::{DescribeSecretResponse, SecretIdRequest, UpdateSecretVersionStageRequest};
use crate::error::SmError;
use crate::model::{AWSCURRENT, AWSPENDING, RotationStatus, Step};
use crate::ports::{Placeholder, RotationStore, Target, TargetError};
use crate::time::Timestamp;

mod request;
mod step;

pub use request::{Begun, begin_request, test_rotation};
use step::{Check, bounded, run_step_checked};
pub use step::{run_step, run_step_within};

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The event does not fit the secret's state (AWS's template raises `ValueError` here).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("secret store: {0}")]
    Store(#[from] SmError),
    /// A [`RotationFunction`] failed the step; `class` is its stable error class.
    #[error("{message}")]
    Function {
        class: &'static str,
        message: String,
    },
    /// [`RotateOptions::cancel`] was set before setSecret began.
    #[error(
        "the rotation was cancelled before {0} changed anything; AWSCURRENT is unchanged and \
         the pending version was discarded"
    )]
    Cancelled(Step),
    /// The step did not finish within its deadline ([`RotateOptions::step_timeout`] or what
    /// was left of [`RotateOptions::rotation_timeout`]).
    #[error(
        "{step} did not finish within {}s and was stopped; find what blocks it (e.g. a \
         database lock held on the user's role) or raise the step and rotation timeouts",
        .after.as_secs_f64()
    )]
    TimedOut { step: Step, after: Duration },
}

impl StepError {
    /// A stable class name for metrics, notifications and Lambda `errorType`s.
    pub fn class(&self) -> &'static str {
        match self {
            StepError::Invalid(_) => "InvalidRotationState",
            StepError::Target(t) => t.class(),
            StepError::Store(_) => "StoreError",
            StepError::Function { class, .. } => class,
            StepError::Cancelled(_) => crate::model::CANCELLED,
            StepError::TimedOut { .. } => "Timeout",
        }
    }
}

/// Why a rotation did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "a rotation of {secret} is already running; wait for it to finish (this run changed \
         nothing)"
    )]
    AlreadyRunning { secret: String },
    #[error(
        "rotation is not enabled for {secret}; configure it first (keyroll rotate configures \
         the built-in rotator on first use)"
    )]
    NotEnabled { secret: String },
    #[error(
        "{step} failed: {error} (AWSCURRENT is unchanged; AWSPENDING {token} is kept and the next rotation resumes it)"
    )]
    Step {
        step: Step,
        token: String,
        error: StepError,
    },
    #[error("secret store: {0}")]
    Store(#[from] SmError),
}

impl RotationError {
    pub fn class(&self) -> &'static str {
        match self {
            RotationError::AlreadyRunning { .. } => "RotationInProgress",
            RotationError::NotEnabled { .. } => "RotationNotEnabled",
            RotationError::Step { error, .. } => error.class(),
            RotationError::Store(_) => "StoreError",
        }
    }

    pub fn failed_step(&self) -> Option<Step> {
        match self {
            RotationError::Step { step, .. } => Some(*step),
            _ => None,
        }
    }
}

/// A rotation function that carries out whole steps itself, calling the secret store on its
/// own like a Lambda rotation function does (e.g. a command configured in `keyroll serve`),
/// instead of a [`Target`] behind [`run_step`]'s checks.
#[async_trait]
pub trait RotationFunction: Send + Sync {
    async fn invoke(&self, step: Step, secret_id: &str, token: &str) -> Result<(), StepError>;
}

/// What carries out the four steps of a [`rotate_with`].
#[derive(Clone, Copy)]
pub enum StepRunner<'a> {
    /// keyroll's steps ([`run_step`]) over a target.
    Builtin(&'a dyn Target),
    /// A function that does each step itself.
    Function(&'a dyn RotationFunction),
}

/// The step deadline drivers use unless configured otherwise: long enough for IAM's
/// eventual consistency (testSecret retries for up to 60 s), short enough that a statement
/// stuck on a lock does not hold a rotation slot for long.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The whole-rotation deadline drivers use unless configured otherwise.
pub const DEFAULT_ROTATION_TIMEOUT: Duration = Duration::from_secs(600);

/// Options of one orchestrated rotation.
#[derive(Debug, Clone, Default)]
pub struct RotateOptions {
    /// The version id to rotate to; a fresh UUID when absent. Ignored when a stale pending
    /// version is resumed.
    pub token: Option<String>,
    /// Discard a stale `AWSPENDING` version instead of resuming it. Only safe when the target
    /// never accepted that pending credential.
    pub discard_pending: bool,
    /// Rotate even though the secret's `RotationEnabled` is not true. For drivers outside the
    /// service that owns the rotation configuration (`keyroll rotate --store aws` against
    /// real Secrets Manager, where enabling rotation means naming a Lambda function).
    pub allow_rotation_disabled: bool,
    /// `CancelRotateSecret` in `keyroll serve`: checked before `createSecret` and before
    /// `setSecret`. Set then, the rotation stops with [`StepError::Cancelled`] and its pending
    /// version is discarded. Once setSecret has begun it is ignored: the target may hold the
    /// pending credential only, so the rotation goes on to finish.
    pub cancel: Option<Arc<AtomicBool>>,
    /// The longest one step may run; a step still running then fails with
    /// [`StepError::TimedOut`].
    pub step_timeout: Option<Duration>,
    /// The longest the whole rotation may run: each step gets at most what is left.
    pub rotation_timeout: Option<Duration>,
}

impl RotateOptions {
    /// The time step `step` may take, given the rotation's deadline.
    fn limit(&self, deadline: Option<Instant>) -> Option<Duration> {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match (self.step_timeout, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// After a rotation function's `finishSecret`: `AWSCURRENT` must be on `token`.
async fn ensure_promoted(
    store: &dyn RotationStore,
    arn: &str,
    token: &str,
) -> Result<(), StepError> {
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: arn.into(),
        })
        .await?;
    if desc.holder(AWSCURRENT) == Some(token) {
        Ok(())
    } else {
        Err(StepError::Function {
            class: "FinishIncomplete",
            message: format!("finishSecret returned without moving AWSCURRENT to version {token}"),
        })
    }
}

/// Progress callbacks, e.g. for `keyroll rotate`'s per-step output, and the outcome (e.g.
/// for `keyroll_notify::NotifyingObserver`, the one notification path of every driver).
pub trait RotationObserver: Send + Sync {
    fn started(&self, _arn: &str, _token: &str, _resumed: bool) {}
    fn step_started(&self, _step: Step) {}
    fn step_finished(&self, _step: Step, _elapsed: Duration, _error: Option<&StepError>) {}
    /// Whether [`RotationObserver::finished`] is wanted: the engine then describes the
    /// secret once more after the rotation (one more store call).
    fn wants_outcome(&self) -> bool {
        false
    }
    /// The outcome of a rotation that ran (not of one refused because another was
    /// running), with the secret as described after it (`None` when it could not be) and
    /// when the run started (the store's clock).
    fn finished(
        &self,
        _secret: Option<&DescribeSecretResponse>,
        _outcome: Result<&RotationReport, &RotationError>,
        _started: Timestamp,
    ) {
    }
}

/// Calls [`RotationObserver::finished`] when the observer wants it.
async fn report_outcome(
    store: &dyn RotationStore,
    secret_id: &str,
    observer: &dyn RotationObserver,
    outcome: &Result<RotationReport, RotationError>,
    started: Timestamp,
) {
    if !observer.wants_outcome() || matches!(outcome, Err(RotationError::AlreadyRunning { .. })) {
        return;
    }
    let arn = match outcome {
        Ok(r) => r.arn.as_str(),
        Err(_) => secret_id,
    };
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: arn.into(),
        })
        .await
        .ok();
    observer.finished(desc.as_ref(), outcome.as_ref(), started);
}

/// An observer that does nothing.
pub struct Silent;
impl RotationObserver for Silent {}

/// What a successful rotation did.
#[derive(Debug, Clone)]
pub struct RotationReport {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub resumed: bool,
    pub steps: Vec<(Step, Duration)>,
    pub total: Duration,
}

/// Rotates `secret_id` the way the Secrets Manager service does: a value-less `AWSPENDING`
/// placeholder with a fresh token, the four steps in order, then `AWSPENDING` removed and
/// `LastRotatedDate` recorded.
///
/// A failure leaves `AWSCURRENT` untouched and `AWSPENDING` in place and records the failed
/// step; the next call resumes that pending version (every step is idempotent). A second
/// rotation of the same secret while one runs is refused.
pub async fn rotate(
    store: &dyn RotationStore,
    target: &dyn Target,
    secret_id: &str,
    opts: &RotateOptions,
    observer: &dyn RotationObserver,
) -> Result<RotationReport, RotationError> {
    rotate_with(
        store,
        StepRunner::Builtin(target),
        secret_id,
        opts,
        observer,
    )
    .await
}

/// One step by `runner`, bounded by `limit`.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    store: &dyn RotationStore,
    runner: StepRunner<'_>,
    step: Step,
    arn: &str,
    token: &str,
    check: Check,
    require_enabled: bool,
    limit: Option<Duration>,
) -> Result<(), StepError> {
    let work = async {
        match runner {
            StepRunner::Builtin(target) => {
                run_step_checked(store, target, step, arn, token, check, require_enabled).await
            }
            StepRunner::Function(f) => match f.invoke(step, arn, token).await {
                Ok(()) if step == Step::Finish => ensure_promoted(store, arn, token).await,
                r => r,
            },
        }
    };
    bounded(step, limit, work).await
}

/// Records a failed run (logging, not failing, when the store refuses).
pub(super) async fn record_failure(
    store: &dyn RotationStore,
    arn: &str,
    status: RotationStatus,
    step: Step,
    error: &StepError,
) {
    tracing::warn!(secret = %arn, version = %status.version_id, %step, class = error.class(), error = %error, "rotation step failed");
    let status = status.failed(
        step,
        error.class().to_string(),
        error.to_string(),
        store.now(),
    );
    if let Err(e) = store.record_rotation_status(arn, status).await {
        tracing::error!(secret = %arn, error = %e, "could not record the failed rotation");
    }
}

/// [`rotate`] with the steps carried out by `runner`: keyroll's own over a target, or a
/// [`RotationFunction`]. A function's `finishSecret` must have moved `AWSCURRENT` to the new
/// version; the rotation fails at `finishSecret` (class `FinishIncomplete`) otherwise.
///
/// An unfinished rotation is always carried on, never started over: a pending version that
/// was promoted but not cleaned up gets its clean-up (the target's `finish`, e.g. revoking the
/// previous credential) retried until it succeeds; a pending version whose setSecret may have
/// begun is resumed even if rotation was disabled meanwhile.
pub async fn rotate_with(
    store: &dyn RotationStore,
    runner: StepRunner<'_>,
    secret_id: &str,
    opts: &RotateOptions,
    observer: &dyn RotationObserver,
) -> Result<RotationReport, RotationError> {
    let began = store.now();
    let outcome = rotate_inner(store, runner, secret_id, opts, observer).await;
    report_outcome(store, secret_id, observer, &outcome, began).await;
    outcome
}

/// Takes the secret's rotation lock (a second rotation is refused, never interleaved) and
/// describes the secret under it (another rotation may have finished in between); a secret
/// scheduled for deletion is refused.
pub(super) async fn lock_and_describe(
    store: &dyn RotationStore,
    secret_id: &str,
) -> Result<(crate::ports::RotationLock, DescribeSecretResponse), RotationError> {
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: secret_id.into(),
        })
        .await?;
    let lock =
        store
            .try_lock_rotation(&desc.arn)?
            .ok_or_else(|| RotationError::AlreadyRunning {
                secret: desc.name.clone(),
            })?;
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: desc.arn.clone(),
        })
        .await?;
    if desc.deleted_date.is_some() {
        return Err(SmError::marked_for_deletion().into());
    }
    Ok((lock, desc))
}

async fn rotate_inner(
    store: &dyn RotationStore,
    runner: StepRunner<'_>,
    secret_id: &str,
    opts: &RotateOptions,
    observer: &dyn RotationObserver,
) -> Result<RotationReport, RotationError> {
    let started = Instant::now();
    let deadline = opts.rotation_timeout.map(|d| started + d);
    let (_lock, desc) = lock_and_describe(store, secret_id).await?;
    let arn = desc.arn.clone();
    let last = desc.keyroll_rotation_status.as_ref();
    let mut stale = desc.holder(AWSPENDING).map(str::to_string);
    let promoted = stale.as_deref().is_some_and(|p| {
        desc.stages_of(p)
            .is_some_and(|s| s.iter().any(|x| x == AWSCURRENT))
    });
    // The target may already hold the pending credential: the rotation must finish.
    let mut committed = promoted
        || stale
            .as_deref()
            .is_some_and(|p| last.is_some_and(|s| s.may_have_changed_target(p)));
    if desc.rotation_enabled != Some(true) && !opts.allow_rotation_disabled && !committed {
        return Err(RotationError::NotEnabled {
            secret: desc.name.clone(),
        });
    }
    let require_enabled = !opts.allow_rotation_disabled;

    if let (Some(p), true) = (&stale, promoted) {
        // A previous run promoted the version but stopped before cleaning up: retry the
        // clean-up, then the rotation is complete once AWSPENDING is removed.
        observer.started(&arn, p, true);
        let status = RotationStatus::begin(p, store.now(), last);
        observer.step_started(Step::Finish);
        let t = Instant::now();
        let result = run_one(
            store,
            runner,
            Step::Finish,
            &arn,
            p,
            Check::Full,
            false,
            opts.limit(deadline),
        )
        .await;
        let elapsed = t.elapsed();
        observer.step_finished(Step::Finish, elapsed, result.as_ref().err());
        if let Err(error) = result {
            record_failure(store, &arn, status, Step::Finish, &error).await;
            return Err(RotationError::Step {
                step: Step::Finish,
                token: p.clone(),
                error,
            });
        }
        store.complete_rotation(&arn, p).await?;
        return Ok(RotationReport {
            arn,
            name: desc.name,
            version_id: p.clone(),
            resumed: true,
            steps: vec![(Step::Finish, elapsed)],
            total: started.elapsed(),
        });
    }
    if let (Some(p), true) = (&stale, opts.discard_pending) {
        tracing::warn!(secret = %arn, version = %p, "discarding a stale AWSPENDING version");
        discard(store, &arn, p).await?;
        stale = None;
        committed = false;
    }
    // A pending version under the requested token is the caller's own placeholder
    // (`RotateSecret` answers with it before the rotation runs): a fresh rotation.
    let resumed = stale.is_some() && stale != opts.token;
    let token = match stale {
        Some(t) => t,
        None => opts.token.clone().unwrap_or_else(crate::ids::new_token),
    };
    let status = RotationStatus::begin(&token, store.now(), last);
    let check = if resumed {
        store.record_rotation_status(&arn, status.clone()).await?;
        Check::Full
    } else {
        match store
            .begin_rotation_with_status(&arn, &token, &status)
            .await?
        {
            Placeholder::Created => Check::Full,
            Placeholder::Unsupported => Check::TokenMayBeAbsent,
        }
    };
    observer.started(&arn, &token, resumed);

    let mut steps = Vec::with_capacity(4);
    for step in Step::ALL {
        observer.step_started(step);
        let t = Instant::now();
        let result = if !committed && opts.cancelled() {
            Err(StepError::Cancelled(step))
        } else {
            if step == Step::Set {
                committed = true;
            }
            run_one(
                store,
                runner,
                step,
                &arn,
                &token,
                check,
                require_enabled && !committed,
                opts.limit(deadline),
            )
            .await
        };
        let elapsed = t.elapsed();
        observer.step_finished(step, elapsed, result.as_ref().err());
        if let Err(error) = result {
            if matches!(error, StepError::Cancelled(_))
                && let Err(e) = discard(store, &arn, &token).await
            {
                tracing::warn!(secret = %arn, version = %token, error = %e, "could not discard the cancelled rotation's pending version");
            }
            record_failure(store, &arn, status, step, &error).await;
            return Err(RotationError::Step { step, token, error });
        }
        steps.push((step, elapsed));
    }
    store.complete_rotation(&arn, &token).await?;
    Ok(RotationReport {
        arn,
        name: desc.name,
        version_id: token,
        resumed,
        steps,
        total: started.elapsed(),
    })
}

/// Removes `AWSPENDING` from `token` (a version the target never accepted).
pub(super) async fn discard(
    store: &dyn RotationStore,
    arn: &str,
    token: &str,
) -> Result<(), SmError> {
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: arn.into(),
        })
        .await?;
    if desc.holder(AWSPENDING) != Some(token) {
        return Ok(());
    }
    store
        .update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_id: arn.into(),
            version_stage: AWSPENDING.into(),
            remove_from_version_id: Some(token.into()),
            move_to_version_id: None,
        })
        .await?;
    Ok(())
}
