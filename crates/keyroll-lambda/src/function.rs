//! One invocation: read the event, run the step through the engine (or, for the daily
//! report, describe each secret named), log, emit metrics, and turn a failure into a Lambda
//! diagnostic with a stable `errorType`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyroll_core::engine::run_step_within;
use keyroll_core::ports::Target;
use keyroll_store::aws::{AwsOptions, AwsStore};
use keyroll_targets::AutoTarget;
use lambda_runtime::Diagnostic;
use tokio::sync::OnceCell;

use keyroll_core::time::{Clock, SystemClock};

use crate::event::{Invocation, ReportEvent, RotationEvent};
use crate::metrics::{AgeRecord, StepRecord, emf_line, report_line, secret_name};
use crate::settings::Settings;
use crate::store::{EventStore, ValueCache};
use crate::target::TargetCache;

/// A failed invocation: `error_type` is a stable class (`InvalidEvent`,
/// `InvalidRotationState`, `AuthenticationFailed`, `Unreachable`, `StoreError`, ...), the
/// message says what went wrong and never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct InvokeError {
    pub error_type: String,
    pub message: String,
}

impl From<InvokeError> for Diagnostic {
    fn from(e: InvokeError) -> Self {
        Diagnostic {
            error_type: e.error_type,
            error_message: e.message,
        }
    }
}

type Sink = Arc<dyn Fn(String) + Send + Sync>;

/// The rotation function. Connecting to Secrets Manager waits for the first event, so the
/// runtime asks for work as soon as the process starts.
pub struct Function {
    settings: Settings,
    store: OnceCell<AwsStore>,
    /// Secret values by ARN and version, kept across a warm container's events.
    cache: ValueCache,
    /// Targets by engine, kept across a warm container's events.
    targets: TargetCache,
    metrics: Sink,
    /// RotationSucceeded (after finishSecret) and RotationFailed (any step), configured by
    /// the `KEYROLL_NOTIFY_*` variables; never fails a step.
    notifier: keyroll_notify::Notifier,
    /// "Now" for the daily report's ages.
    clock: Arc<dyn Clock>,
}

impl Function {
    /// A function that connects to Secrets Manager (standard AWS configuration, with
    /// `SECRETS_MANAGER_ENDPOINT` as the endpoint when set) on its first event, and writes
    /// metrics to stdout.
    pub fn new(settings: Settings) -> Self {
        Function {
            settings: settings.clone(),
            store: OnceCell::new(),
            cache: ValueCache::default(),
            targets: TargetCache::new(settings.target.clone()),
            metrics: Arc::new(|line| println!("{line}")),
            notifier: notifier_from_env(),
            clock: Arc::new(SystemClock),
        }
    }

    /// A function over a store built by the caller.
    pub fn with_store(settings: Settings, store: AwsStore) -> Self {
        let f = Function::new(settings);
        // A fresh cell cannot be full.
        let _ = f.store.set(store);
        f
    }

    /// Sends each EMF line to `sink` instead of stdout.
    pub fn with_metrics_sink(mut self, sink: impl Fn(String) + Send + Sync + 'static) -> Self {
        self.metrics = Arc::new(sink);
        self
    }

    /// Measures the daily report's ages against `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The store, connected on first use.
    pub async fn store(&self) -> &AwsStore {
        self.store
            .get_or_init(|| {
                AwsStore::connect(AwsOptions {
                    region: None,
                    endpoint_url: self.settings.endpoint_url.clone(),
                })
            })
            .await
    }

    /// A fresh target for one event (resolved from the secret when a step needs it).
    pub fn target(&self) -> AutoTarget {
        AutoTarget::new(self.settings.target.clone())
    }

    /// Handles one event. Success answers `null`, like AWS's functions.
    pub async fn invoke(
        &self,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        self.invoke_within(payload, None).await
    }

    /// Handles one event with `remaining` time before the invocation's deadline: the step
    /// is bounded by `KEYROLL_STEP_TIMEOUT_SECS` and by one second less than `remaining`,
    /// whichever is shorter, and fails as `Timeout` past it (resumable, like any failure).
    pub async fn invoke_within(
        &self,
        payload: &serde_json::Value,
        remaining: Option<Duration>,
    ) -> Result<serde_json::Value, InvokeError> {
        let target = self.targets.for_event();
        let limit = step_limit(self.settings.step_timeout, remaining);
        self.run_event(payload, &target, limit).await
    }

    /// Handles one event with a given target (tests wrap [`Function::target`] to inject
    /// failures).
    pub async fn invoke_with_target(
        &self,
        payload: &serde_json::Value,
        target: &dyn Target,
    ) -> Result<serde_json::Value, InvokeError> {
        self.run_event(payload, target, self.settings.step_timeout)
            .await
    }

    async fn run_event(
        &self,
        payload: &serde_json::Value,
        target: &dyn Target,
        limit: Option<Duration>,
    ) -> Result<serde_json::Value, InvokeError> {
        let event = match Invocation::from_json(payload) {
            Ok(Invocation::Step(e)) => e,
            Ok(Invocation::Report(r)) => return self.run_report(&r).await,
            Err(e) => {
                tracing::error!(error_type = "InvalidEvent", error = %e, "event refused");
                return Err(InvokeError {
                    error_type: "InvalidEvent".into(),
                    message: e.to_string(),
                });
            }
        };
        let store = self.store().await;
        let view = EventStore::new(
            store,
            event.rotation_token.as_deref(),
            &self.settings.password,
            &self.cache,
        );
        tracing::info!(
            secret = %event.secret_id,
            step = %event.step,
            token = %event.client_request_token,
            "rotation step started"
        );
        let started = Instant::now();
        let result = run_step_within(
            &view,
            target,
            event.step,
            &event.secret_id,
            &event.client_request_token,
            limit,
        )
        .await;
        let duration = started.elapsed();
        let error_type = result.as_ref().err().map(|e| e.class());
        (self.metrics)(emf_line(
            &self.settings.metrics_namespace,
            now_ms(),
            &StepRecord {
                step: event.step,
                secret_id: &event.secret_id,
                secret_name: &secret_name(&event.secret_id),
                token: &event.client_request_token,
                target: target.name(),
                duration,
                error_type,
            },
        ));
        self.notify(&view, &event, &result, duration).await;
        let ms = duration.as_secs_f64() * 1e3;
        match result {
            Ok(()) => {
                tracing::info!(
                    secret = %event.secret_id,
                    step = %event.step,
                    token = %event.client_request_token,
                    target = target.name(),
                    duration_ms = ms,
                    "rotation step succeeded"
                );
                Ok(serde_json::Value::Null)
            }
            Err(e) => {
                let class = e.class();
                tracing::error!(
                    secret = %event.secret_id,
                    step = %event.step,
                    token = %event.client_request_token,
                    target = target.name(),
                    duration_ms = ms,
                    error_type = class,
                    error = %e,
                    "rotation step failed"
                );
                Err(InvokeError {
                    error_type: class.to_string(),
                    message: format!("{}: {e}", event.step),
                })
            }
        }
    }
}

impl Function {
    /// The daily report: one `DescribeSecret` per secret named, one EMF document per secret
    /// described. Answers a summary; fails as `ReportIncomplete` (after emitting what it
    /// could) when a secret could not be described, so Lambda's `Errors` metric shows it.
    async fn run_report(&self, event: &ReportEvent) -> Result<serde_json::Value, InvokeError> {
        use keyroll_core::api::SecretIdRequest;
        use keyroll_core::ports::SecretsApi;
        let store = self.store().await;
        let mut secrets = Vec::with_capacity(event.secret_ids.len());
        let mut failed: Vec<String> = Vec::new();
        let (mut overdue, mut pending) = (0u32, 0u32);
        for id in &event.secret_ids {
            let desc = match store
                .describe_secret(SecretIdRequest {
                    secret_id: id.clone(),
                })
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(secret = %id, error = %e, "report: cannot describe the secret");
                    failed.push(format!("{id}: {e}"));
                    continue;
                }
            };
            let now = self.clock.now();
            let a = crate::report::age(&desc, now, event.max_age_days);
            (self.metrics)(report_line(
                &self.settings.metrics_namespace,
                now.millis(),
                &AgeRecord {
                    secret_name: &a.name,
                    secret_id: &a.arn,
                    days_since_last_rotation: a.days_since_last_rotation,
                    overdue: a.overdue,
                    pending: a.pending,
                    rotation_enabled: a.rotation_enabled,
                    last_rotated: a.last_rotated.map(|t| t.to_rfc3339()),
                    next_rotation: a.next_rotation.map(|t| t.to_rfc3339()),
                },
            ));
            tracing::info!(
                secret = %a.name,
                days_since_last_rotation = a.days_since_last_rotation,
                overdue = a.overdue,
                pending = a.pending,
                "report"
            );
            overdue += u32::from(a.overdue);
            pending += u32::from(a.pending);
            secrets.push(a.to_json());
        }
        if let Some(first) = failed.first() {
            return Err(InvokeError {
                error_type: "ReportIncomplete".into(),
                message: format!(
                    "could not describe {} of {} secrets (first: {first}); check the secret ids \
                     in the schedule's input and that the function's role may \
                     secretsmanager:DescribeSecret on them",
                    failed.len(),
                    event.secret_ids.len()
                ),
            });
        }
        Ok(serde_json::json!({
            "secrets": secrets,
            "overdue": overdue,
            "pending": pending,
        }))
    }

    /// Replaces the notifier (tests).
    pub fn with_notifier(mut self, notifier: keyroll_notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// A failed step is a failed rotation; a successful finishSecret a successful one. AWS
    /// may deliver an event twice, so a success can be reported twice.
    async fn notify(
        &self,
        view: &EventStore<'_>,
        event: &RotationEvent,
        result: &Result<(), keyroll_core::engine::StepError>,
        duration: std::time::Duration,
    ) {
        use keyroll_core::api::SecretIdRequest;
        use keyroll_core::ports::SecretsApi;
        use keyroll_core::time::Timestamp;
        if !self.notifier.is_enabled()
            || (result.is_ok() && event.step != keyroll_core::Step::Finish)
        {
            return;
        }
        let desc = match view
            .describe_secret(SecretIdRequest {
                secret_id: event.secret_id.clone(),
            })
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(secret = %event.secret_id, error = %e, "no notification: cannot describe the secret");
                return;
            }
        };
        let finished = Timestamp(now_ms());
        let started = Timestamp(finished.0 - i64::try_from(duration.as_millis()).unwrap_or(0));
        let ev = match result {
            Ok(()) => keyroll_notify::RotationEvent::succeeded(
                &desc,
                event.client_request_token.clone(),
                started,
                finished,
            ),
            Err(e) => keyroll_notify::RotationEvent::failed(
                &desc,
                Some(event.client_request_token.clone()),
                Some(event.step),
                e.class(),
                &e.to_string(),
                started,
                finished,
            ),
        };
        // Awaited, not spawned: Lambda freezes the process once the response is sent.
        self.notifier
            .notify(&ev.with_source("keyroll-lambda"))
            .await;
    }
}

fn notifier_from_env() -> keyroll_notify::Notifier {
    keyroll_notify::Notifier::from_env().unwrap_or_else(|e| {
        tracing::error!(error = %e, "notifications are off: fix the KEYROLL_NOTIFY_* variables");
        keyroll_notify::Notifier::disabled()
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The bound of one step: the configured one, and one second less than what is left of the
/// invocation (Lambda kills the sandbox at its deadline without a word), whichever is shorter.
pub fn step_limit(configured: Option<Duration>, remaining: Option<Duration>) -> Option<Duration> {
    let before_deadline = remaining.map(|r| {
        r.saturating_sub(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    });
    match (configured, before_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod step_limit_tests {
    use super::*;

    #[test]
    fn the_shorter_bound_wins_and_the_deadline_keeps_a_second() {
        let s = Duration::from_secs;
        assert_eq!(step_limit(None, None), None);
        assert_eq!(step_limit(Some(s(45)), None), Some(s(45)));
        assert_eq!(step_limit(None, Some(s(30))), Some(s(29)));
        assert_eq!(step_limit(Some(s(10)), Some(s(30))), Some(s(10)));
        assert_eq!(step_limit(Some(s(60)), Some(s(30))), Some(s(29)));
        assert_eq!(
            step_limit(None, Some(Duration::from_millis(500))),
            Some(Duration::from_millis(100))
        );
    }
}
