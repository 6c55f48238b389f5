//! The rotation scheduler: every tick, rotates the secrets whose `NextRotationDate` has come
//! and whose rotation window is open (see [`keyroll_core::schedule`] for the windows and the
//! missed-window rule), purges secrets whose recovery window ended, and retries failed
//! rotations with capped exponential backoff and jitter — at most `max_attempts` per window,
//! after which the rotation is marked failed until the next window.
//!
//! Everything reads the injected clock, so tests drive it with a `ManualClock` and
//! [`Scheduler::tick`]. State that must survive a restart (`NextRotationDate`,
//! `LastRotatedDate`, the pending version) lives in the store; retry counters live in memory
//! and start again after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyroll_core::model::RotationState;
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::schedule::{Due, Rules};
use keyroll_core::time::Timestamp;
use tokio::sync::watch;

use crate::regions::Regions;
use crate::rotation::{Mode, RunError, run_rotation};
use crate::server::App;

#[derive(Debug, Clone, Copy)]
struct Retry {
    /// The `NextRotationDate` these attempts were for.
    due: Timestamp,
    attempts: u32,
    next_try: Timestamp,
}

/// What one tick did (for tests and logs).
#[derive(Debug, Default, Clone)]
pub struct TickReport {
    /// Secrets rotated successfully.
    pub rotated: Vec<String>,
    /// Secrets whose rotation failed and will be retried.
    pub failed: Vec<String>,
    /// Secrets that failed `max_attempts` times in their window and wait for the next one.
    pub gave_up: Vec<String>,
    /// Secrets whose window closed while the server was down; they wait for the next one.
    pub missed: Vec<String>,
    /// Secrets waiting for their backoff delay.
    pub backing_off: Vec<String>,
    /// Secrets scheduled for deletion that were purged.
    pub purged: usize,
}

pub struct Scheduler<R: Regions> {
    app: Arc<App<R>>,
    retries: Mutex<HashMap<String, Retry>>,
    /// Draws in [0, 1) for the jitter; injectable for tests.
    random: Box<dyn Fn() -> f64 + Send + Sync>,
}

fn os_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

struct Candidate {
    region: String,
    arn: String,
    name: String,
    due: Timestamp,
    rules: Rules,
}

impl<R: Regions> Scheduler<R> {
    pub fn new(app: Arc<App<R>>) -> Arc<Self> {
        Arc::new(Scheduler {
            app,
            retries: Mutex::new(HashMap::new()),
            random: Box::new(os_random),
        })
    }

    /// A scheduler whose jitter draws come from `random` (tests).
    pub fn with_random(
        app: Arc<App<R>>,
        random: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scheduler {
            app,
            retries: Mutex::new(HashMap::new()),
            random: Box::new(random),
        })
    }

    /// The delay before retry number `attempts` (1 = after the first failure): the initial
    /// backoff doubled per attempt, capped, minus a random share of up to `jitter`.
    pub fn backoff(&self, attempts: u32, random01: f64) -> Duration {
        let c = &self.app.config.scheduler;
        let exp = attempts.saturating_sub(1).min(32);
        let base = c
            .backoff_initial_secs
            .saturating_mul(1u64 << exp)
            .min(c.backoff_max_secs) as f64;
        let r = random01.clamp(0.0, 1.0);
        Duration::from_secs_f64(base * (1.0 - c.jitter * r))
    }

    /// Runs every tick until `stop` says so.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.app.config.scheduler.tick_secs);
        loop {
            let report = self.tick().await;
            if !report.rotated.is_empty() || !report.failed.is_empty() || report.purged > 0 {
                tracing::info!(
                    rotated = report.rotated.len(),
                    failed = report.failed.len(),
                    gave_up = report.gave_up.len(),
                    missed = report.missed.len(),
                    purged = report.purged,
                    "scheduler tick"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One pass: purge, find due secrets, rotate them (bounded concurrency) and wait.
    pub async fn tick(&self) -> TickReport {
        let mut report = TickReport::default();
        let now = self.app.clock.now();
        let regions = match self.app.store.all() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "scheduler cannot list regions");
                return report;
            }
        };
        let mut candidates = Vec::new();
        for (region, svc) in &regions {
            match svc.purge_expired() {
                Ok(n) => report.purged += n,
                Err(e) => tracing::warn!(%region, error = %e, "purge of deleted secrets failed"),
            }
            let mut found = Vec::new();
            let r = keyroll_core::service::Backend::for_each(svc.backend(), &mut |rec| {
                if rec.rotation.enabled
                    && !rec.is_deleted()
                    && !rec.is_replica()
                    && rec.rotation.lambda_arn.is_some()
                    && let (Some(due), Some(rules)) = (rec.next_rotation, &rec.rotation.rules)
                {
                    found.push((rec.arn.clone(), rec.name.clone(), due, rules.clone()));
                }
            });
            if let Err(e) = r {
                tracing::warn!(%region, error = %e, "scheduler cannot list secrets");
            }
            for (arn, name, due, rules) in found {
                match Rules::parse(&rules) {
                    Ok(rules) => candidates.push(Candidate {
                        region: region.clone(),
                        arn,
                        name,
                        due,
                        rules,
                    }),
                    Err(e) => {
                        tracing::warn!(secret = %arn, error = %e, "invalid rotation rules; not scheduled")
                    }
                }
            }
        }

        let mut launch = Vec::new();
        {
            let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
            for c in candidates {
                match c.rules.due(c.due, now) {
                    Due::NotYet => {
                        retries.remove(&c.arn);
                    }
                    Due::Missed { next_window } => {
                        retries.remove(&c.arn);
                        if let Ok(svc) = self.app.store.region(&c.region) {
                            match svc.set_next_rotation(&c.arn, next_window) {
                                Ok(()) => {
                                    tracing::info!(secret = %c.name, next_window = %next_window, "rotation window missed (server was down); waiting for the next window")
                                }
                                Err(e) => {
                                    tracing::warn!(secret = %c.name, error = %e, "could not move NextRotationDate")
                                }
                            }
                        }
                        report.missed.push(c.name.clone());
                    }
                    Due::Now { .. } => {
                        if let Some(r) = retries.get(&c.arn)
                            && r.due == c.due
                            && now < r.next_try
                        {
                            report.backing_off.push(c.name.clone());
                            continue;
                        }
                        launch.push(c);
                    }
                }
            }
        }

        let mut set = tokio::task::JoinSet::new();
        for c in launch {
            let app = self.app.clone();
            set.spawn(async move {
                let r = run_rotation(&app, &c.region, &c.arn, None, Mode::Rotate).await;
                (c, r)
            });
        }
        while let Some(joined) = set.join_next().await {
            let Ok((c, result)) = joined else { continue };
            match result {
                Ok(()) => {
                    self.retries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&c.arn);
                    report.rotated.push(c.name.clone());
                }
                Err(RunError::AlreadyRunning) | Err(RunError::ShuttingDown) => {}
                Err(e) => self.failed(&c, now, &e, &mut report).await,
            }
        }
        report
    }

    async fn failed(&self, c: &Candidate, now: Timestamp, e: &RunError, report: &mut TickReport) {
        let max = self.app.config.scheduler.max_attempts;
        let attempts = {
            let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
            let r = retries.entry(c.arn.clone()).or_insert(Retry {
                due: c.due,
                attempts: 0,
                next_try: now,
            });
            if r.due != c.due {
                *r = Retry {
                    due: c.due,
                    attempts: 0,
                    next_try: now,
                };
            }
            r.attempts += 1;
            if r.attempts < max {
                let delay = self.backoff(r.attempts, (self.random)());
                r.next_try = now.plus_millis(delay.as_millis() as i64);
                tracing::warn!(secret = %c.name, attempt = r.attempts, retry_in_s = delay.as_secs(), error = %e, "scheduled rotation failed; will retry");
                report.failed.push(c.name.clone());
                return;
            }
            retries.remove(&c.arn);
            max
        };
        // Out of attempts for this window: mark it failed and wait for the next window.
        let Ok(svc) = self.app.store.region(&c.region) else {
            return;
        };
        let next = c.rules.next_after(now).unwrap_or_else(|_| now.plus_days(1));
        if let Err(err) = svc.set_next_rotation(&c.arn, next) {
            tracing::error!(secret = %c.name, error = %err, "could not move NextRotationDate");
        }
        if let Ok(desc) = svc
            .describe_secret(keyroll_core::api::SecretIdRequest {
                secret_id: c.arn.clone(),
            })
            .await
            && let Some(mut st) = desc.keyroll_rotation_status
        {
            st.state = RotationState::Failed;
            st.message = Some(format!(
                "{} (gave up after {attempts} attempts in this window; next attempt at {next})",
                st.message.unwrap_or_default()
            ));
            let _ = svc.record_rotation_status(&c.arn, st).await;
        }
        tracing::error!(secret = %c.name, attempts, next_attempt = %next, error = %e, "scheduled rotation failed in every attempt of this window; marked failed");
        report.gave_up.push(c.name.clone());
    }
}
