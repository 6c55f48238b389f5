//! [`NotifyingObserver`]: the one way every driver turns a rotation's outcome into a
//! RotationSucceeded / RotationFailed event. It wraps the driver's own observer (progress
//! output, logs, metrics), asks the engine for the outcome, and hands the event to the
//! [`Notifier`] in the background; [`NotifyingObserver::flush`] waits for the deliveries
//! (a short-lived process such as `keyroll rotate` must before it exits).

use std::sync::Mutex;
use std::time::Duration;

use keyroll_core::api::DescribeSecretResponse;
use keyroll_core::engine::{RotationError, RotationObserver, RotationReport, StepError};
use keyroll_core::model::Step;
use keyroll_core::time::Timestamp;
use tokio::task::JoinHandle;

use crate::event::RotationEvent;
use crate::notifier::{DeliveryReport, Notifier};

impl RotationEvent {
    /// The event for one orchestrated rotation's outcome, `secret` described after it.
    /// `None` for a rotation refused because another one was running (it did nothing).
    pub fn from_outcome(
        secret: &DescribeSecretResponse,
        outcome: Result<&RotationReport, &RotationError>,
        started: Timestamp,
        finished: Timestamp,
    ) -> Option<Self> {
        let mut event = match outcome {
            Ok(report) => Self::succeeded(secret, &report.version_id, started, finished),
            Err(RotationError::AlreadyRunning { .. }) => return None,
            Err(e) => {
                let token = match e {
                    RotationError::Step { token, .. } => Some(token.clone()),
                    _ => None,
                };
                Self::failed(
                    secret,
                    token,
                    e.failed_step(),
                    e.class(),
                    &e.to_string(),
                    started,
                    finished,
                )
            }
        };
        // The attempt number the engine recorded for this version.
        if let Some(status) = &secret.keyroll_rotation_status
            && event.version_id.as_deref() == Some(status.version_id.as_str())
            && status.attempts > 0
        {
            event.attempt = Some(status.attempts);
        }
        Some(event)
    }
}

/// Wraps a driver's observer and notifies the outcome of every rotation that ran.
pub struct NotifyingObserver<'a> {
    inner: &'a dyn RotationObserver,
    notifier: &'a Notifier,
    source: String,
    now: Box<dyn Fn() -> Timestamp + Send + Sync + 'a>,
    sent: Mutex<Vec<JoinHandle<DeliveryReport>>>,
}

impl<'a> NotifyingObserver<'a> {
    /// `source` names the driver in the event (`keyroll rotate`, `keyroll serve`, …); `now`
    /// is the clock the event's finish time is read from (the store's).
    pub fn new(
        inner: &'a dyn RotationObserver,
        notifier: &'a Notifier,
        source: impl Into<String>,
        now: impl Fn() -> Timestamp + Send + Sync + 'a,
    ) -> Self {
        NotifyingObserver {
            inner,
            notifier,
            source: source.into(),
            now: Box::new(now),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Waits for the notifications handed over so far to be delivered (or given up).
    pub async fn flush(&self) -> Vec<DeliveryReport> {
        let handles: Vec<_> =
            std::mem::take(&mut *self.sent.lock().unwrap_or_else(|p| p.into_inner()));
        let mut reports = Vec::with_capacity(handles.len());
        for h in handles {
            if let Ok(r) = h.await {
                reports.push(r);
            }
        }
        reports
    }
}

impl RotationObserver for NotifyingObserver<'_> {
    fn started(&self, arn: &str, token: &str, resumed: bool) {
        self.inner.started(arn, token, resumed);
    }

    fn step_started(&self, step: Step) {
        self.inner.step_started(step);
    }

    fn step_finished(&self, step: Step, elapsed: Duration, error: Option<&StepError>) {
        self.inner.step_finished(step, elapsed, error);
    }

    fn wants_outcome(&self) -> bool {
        self.notifier.is_enabled() || self.inner.wants_outcome()
    }

    fn finished(
        &self,
        secret: Option<&DescribeSecretResponse>,
        outcome: Result<&RotationReport, &RotationError>,
        started: Timestamp,
    ) {
        self.inner.finished(secret, outcome, started);
        if !self.notifier.is_enabled() {
            return;
        }
        let Some(secret) = secret else {
            tracing::warn!("cannot describe the secret after its rotation; no notification sent");
            return;
        };
        if let Some(event) = RotationEvent::from_outcome(secret, outcome, started, (self.now)()) {
            let handle = self.notifier.spawn(event.with_source(self.source.clone()));
            self.sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use keyroll_core::engine::StepError;
    use keyroll_core::model::{RotationState, RotationStatus};

    fn secret() -> DescribeSecretResponse {
        DescribeSecretResponse {
            arn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf".into(),
            name: "app".into(),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes_become_events() {
        let t0 = Timestamp::from_secs(1_000);
        let t1 = Timestamp::from_secs(1_002);
        let mut desc = secret();
        let mut status = RotationStatus::begin("v2", t0, None);
        status.state = RotationState::Failed;
        status.attempts = 3;
        desc.keyroll_rotation_status = Some(status);
        let failure = RotationError::Step {
            step: Step::Set,
            token: "v2".into(),
            error: StepError::TimedOut {
                step: Step::Set,
                after: Duration::from_secs(2),
            },
        };
        let e = RotationEvent::from_outcome(&desc, Err(&failure), t0, t1).unwrap();
        assert_eq!(e.event, EventKind::RotationFailed);
        assert_eq!(e.step, Some(Step::Set));
        assert_eq!(e.error_class.as_deref(), Some("Timeout"));
        assert_eq!(e.version_id.as_deref(), Some("v2"));
        assert_eq!(e.attempt, Some(3));

        let report = RotationReport {
            arn: desc.arn.clone(),
            name: desc.name.clone(),
            version_id: "v3".into(),
            resumed: false,
            steps: Vec::new(),
            total: Duration::ZERO,
        };
        let e = RotationEvent::from_outcome(&secret(), Ok(&report), t0, t1).unwrap();
        assert_eq!(e.event, EventKind::RotationSucceeded);
        assert_eq!(e.version_id.as_deref(), Some("v3"));
        assert_eq!(e.attempt, None);

        let refused = RotationError::AlreadyRunning {
            secret: "app".into(),
        };
        assert!(RotationEvent::from_outcome(&secret(), Err(&refused), t0, t1).is_none());
    }

    #[test]
    fn a_disabled_notifier_asks_for_no_outcome() {
        struct Quiet;
        impl RotationObserver for Quiet {}
        let n = Notifier::disabled();
        let o = NotifyingObserver::new(&Quiet, &n, "test", || Timestamp::from_secs(0));
        assert!(
            !o.wants_outcome(),
            "no extra DescribeSecret when nothing is sent"
        );
    }
}
