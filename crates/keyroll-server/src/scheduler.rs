//! The rotation scheduler. Every tick (and once at start) it:
//!
//! - carries on every **unfinished rotation** — a secret with `AWSPENDING` (rotation enabled,
//!   or setSecret may already have changed the target) — whatever its schedule says, so that
//!   a crash, a kill or a restart is followed by the rest of the rotation within
//!   `tick + backoff`, never at the next window;
//! - rotates the secrets whose `NextRotationDate` has come and whose rotation window is open
//!   (see [`keyroll_core::schedule`] for the windows and the missed-window rule);
//! - purges secrets whose recovery window ended.
//!
//! A failed attempt is retried with capped exponential backoff and jitter. An interrupted
//! run is not a failed attempt (the engine keeps its attempt number). After `max_attempts`
//! genuine failures the secret is marked failing (its `KeyrollRotationStatus` says so, the
//! `keyroll_secret_rotation_failing` gauge shows it and every failure is notified) and it
//! is still retried, at most `backoff_max_secs` apart: a rotation is never parked while
//! `AWSCURRENT` may be the credential that no longer logs in.
//!
//! The scheduler never waits for a rotation: each one runs in its own task (bounded by the
//! server's concurrency limit), and the next tick starts whatever else is due.
//!
//! Everything reads the injected clock, so tests drive it with a `ManualClock` and
//! [`Scheduler::tick`] (which, for tests, also waits for the rotations it started). The
//! failure count and the time of the last failure live in the store (the rotation status),
//! so backoff survives a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyroll_core::model::{AWSCURRENT, AWSPENDING, RotationState, RotationStatus};
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::schedule::{Due, Rules};
use keyroll_core::time::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::regions::Regions;
use crate::rotation::{Mode, RunError, run_rotation};
use crate::server::App;

/// A failure that left no trace in the store (e.g. a function that cannot be started
/// before any step ran): its backoff is kept in memory.
#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    next_try: Timestamp,
}

/// What one tick did (for tests and logs).
#[derive(Debug, Default, Clone)]
pub struct TickReport {
    /// Secrets rotated successfully.
    pub rotated: Vec<String>,
    /// Secrets whose rotation failed and will be retried.
    pub failed: Vec<String>,
    /// Secrets whose rotation has now failed `max_attempts` times or more: marked failing,
    /// and still retried with capped backoff.
    pub failing: Vec<String>,
    /// Secrets with an unfinished rotation that this tick carried on (whatever the schedule).
    pub resumed: Vec<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// `NextRotationDate` has come.
    Due,
    /// An unfinished rotation is carried on.
    Unfinished,
}

struct Candidate {
    region: String,
    arn: String,
    name: String,
    why: Why,
}

/// What the scheduler reads of a secret.
struct Seen {
    arn: String,
    name: String,
    due: Option<(Timestamp, keyroll_core::model::RotationRules)>,
    unfinished: bool,
    status: Option<RotationStatus>,
}

/// One rotation started by a tick.
type Launched = JoinHandle<(String, Why, Outcome)>;

#[derive(Debug)]
enum Outcome {
    Rotated,
    Failed {
        failing: bool,
    },
    /// Refused without running (already running, shutting down).
    Skipped,
}

impl<R: Regions> Scheduler<R> {
    pub fn new(app: Arc<App<R>>) -> Arc<Self> {
        Self::with_random(app, os_random)
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

    /// Runs a tick at once and then every `tick_secs` until `stop` says so, never waiting
    /// for the rotations a tick starts.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_secs(self.app.config.scheduler.tick_secs.max(1));
        loop {
            let (report, launched) = self.launch();
            if !launched.is_empty() || report.purged > 0 || !report.missed.is_empty() {
                tracing::info!(
                    started = launched.len(),
                    resumed = report.resumed.len(),
                    missed = report.missed.len(),
                    purged = report.purged,
                    "scheduler tick"
                );
            }
            // The rotations go on in their own tasks.
            drop(launched);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One pass that also waits for the rotations it started and reports their outcome
    /// (tests; [`Scheduler::run`] does not wait).
    pub async fn tick(self: &Arc<Self>) -> TickReport {
        let (mut report, launched) = self.launch();
        for handle in launched {
            let Ok((name, _, outcome)) = handle.await else {
                continue;
            };
            match outcome {
                Outcome::Rotated => report.rotated.push(name),
                Outcome::Failed { failing } => {
                    if failing {
                        report.failing.push(name.clone());
                    }
                    report.failed.push(name);
                }
                Outcome::Skipped => {}
            }
        }
        report
    }

    /// When a secret that failed may be tried again: after its backoff, counted from its
    /// last failure seen by this process or, after a restart, recorded in the store.
    fn next_try(&self, arn: &str, status: Option<&RotationStatus>) -> Option<Timestamp> {
        let memory = self
            .retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(arn)
            .map(|r| r.next_try);
        // After a restart only the store knows about earlier failures.
        memory.or_else(|| {
            let s = status.filter(|s| s.state == RotationState::Failed)?;
            let delay = self.backoff(s.failures(), (self.random)());
            Some(s.ended?.plus_millis(delay.as_millis() as i64))
        })
    }

    /// Purges, finds what is due or unfinished and starts it; returns at once.
    fn launch(self: &Arc<Self>) -> (TickReport, Vec<Launched>) {
        let mut report = TickReport::default();
        let now = self.app.clock.now();
        let regions = match self.app.store.all() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "scheduler cannot list regions");
                return (report, Vec::new());
            }
        };
        let mut launch = Vec::new();
        let grace_ms = 2_000 * self.app.config.scheduler.tick_secs.max(1) as i64;
        for (region, svc) in &regions {
            match svc.purge_expired() {
                Ok(n) => report.purged += n,
                Err(e) => tracing::warn!(%region, error = %e, "purge of deleted secrets failed"),
            }
            let mut found = Vec::new();
            let r = keyroll_core::service::Backend::for_each(svc.backend(), &mut |rec| {
                if rec.is_deleted() || rec.is_replica() || rec.rotation.lambda_arn.is_none() {
                    return;
                }
                // AWSPENDING left by a rotation: carried on when rotation is enabled, when
                // setSecret may have changed the target, or when it was promoted already
                // (only the clean-up is left).
                // A value-less placeholder that RotateSecret has just added, before its own
                // run recorded anything, is that run's to start: left alone for two ticks.
                let starting = |p: &keyroll_core::model::VersionEntry| {
                    !p.has_value
                        && rec
                            .rotation_status
                            .as_ref()
                            .is_none_or(|s| s.version_id != p.id)
                        && now.millis() - p.created.millis() < grace_ms
                };
                let unfinished = rec.holder(AWSPENDING).is_some_and(|p| {
                    !starting(p)
                        && (rec.rotation.enabled
                            || p.has_stage(AWSCURRENT)
                            || rec
                                .rotation_status
                                .as_ref()
                                .is_some_and(|s| s.may_have_changed_target(&p.id)))
                });
                let due = match (rec.rotation.enabled, rec.next_rotation, &rec.rotation.rules) {
                    (true, Some(due), Some(rules)) => Some((due, rules.clone())),
                    _ => None,
                };
                if unfinished || due.is_some() {
                    found.push(Seen {
                        arn: rec.arn.clone(),
                        name: rec.name.clone(),
                        due,
                        unfinished,
                        status: rec.rotation_status.clone(),
                    });
                }
            });
            if let Err(e) = r {
                tracing::warn!(%region, error = %e, "scheduler cannot list secrets");
            }
            for seen in found {
                let why = if seen.unfinished {
                    Why::Unfinished
                } else {
                    let Some((due, rules)) = &seen.due else {
                        continue;
                    };
                    let rules = match Rules::parse(rules) {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(secret = %seen.arn, error = %e, "invalid rotation rules; not scheduled");
                            continue;
                        }
                    };
                    match rules.due(*due, now) {
                        Due::NotYet => {
                            self.forget(&seen.arn);
                            continue;
                        }
                        Due::Missed { next_window } => {
                            self.forget(&seen.arn);
                            match svc.set_next_rotation(&seen.arn, next_window) {
                                Ok(()) => {
                                    tracing::info!(secret = %seen.name, next_window = %next_window, "rotation window missed (server was down); waiting for the next window")
                                }
                                Err(e) => {
                                    tracing::warn!(secret = %seen.name, error = %e, "could not move NextRotationDate")
                                }
                            }
                            report.missed.push(seen.name.clone());
                            continue;
                        }
                        Due::Now { .. } => Why::Due,
                    }
                };
                if self.app.rotations.is_running(&seen.arn) {
                    continue;
                }
                if let Some(t) = self.next_try(&seen.arn, seen.status.as_ref())
                    && now < t
                {
                    report.backing_off.push(seen.name.clone());
                    continue;
                }
                if why == Why::Unfinished {
                    report.resumed.push(seen.name.clone());
                }
                launch.push(Candidate {
                    region: region.clone(),
                    arn: seen.arn,
                    name: seen.name,
                    why,
                });
            }
        }
        let launched = launch
            .into_iter()
            .map(|c| {
                let me = self.clone();
                tokio::spawn(async move {
                    let started = me.app.clock.now();
                    let result = run_rotation(&me.app, &c.region, &c.arn, None, Mode::Rotate).await;
                    let outcome = me.settle(&c, started, result).await;
                    (c.name, c.why, outcome)
                })
            })
            .collect();
        (report, launched)
    }

    fn forget(&self, arn: &str) {
        self.retries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(arn);
    }

    /// Bookkeeping after one rotation the scheduler started.
    async fn settle(
        &self,
        c: &Candidate,
        started: Timestamp,
        result: Result<(), RunError>,
    ) -> Outcome {
        let e = match result {
            Ok(()) => {
                self.forget(&c.arn);
                return Outcome::Rotated;
            }
            Err(RunError::AlreadyRunning | RunError::ShuttingDown) => return Outcome::Skipped,
            Err(e) => e,
        };
        let now = self.app.clock.now();
        let max = self.app.config.scheduler.max_attempts.max(1);
        let svc = self.app.store.region(&c.region).ok();
        let status = match &svc {
            Some(svc) => svc
                .describe_secret(keyroll_core::api::SecretIdRequest {
                    secret_id: c.arn.clone(),
                })
                .await
                .ok()
                .and_then(|d| d.keyroll_rotation_status),
            None => None,
        };
        // This run's failure is in the store when the engine got as far as recording it.
        let recorded = status
            .as_ref()
            .filter(|s| s.state == RotationState::Failed && s.ended.is_some_and(|t| t >= started));
        let failures = {
            let mut retries = self.retries.lock().unwrap_or_else(|p| p.into_inner());
            let r = retries.entry(c.arn.clone()).or_insert(Retry {
                failures: 0,
                next_try: now,
            });
            r.failures = match recorded {
                Some(s) => s.failures(),
                None => r.failures + 1,
            };
            let delay = self.backoff(r.failures, (self.random)());
            r.next_try = now.plus_millis(delay.as_millis() as i64);
            r.failures
        };
        let failing = failures >= max;
        if failing {
            if let (Some(svc), Some(mut st)) = (&svc, status) {
                let note = format!(
                    " (failing: {failures} failed attempts; keyroll keeps retrying with backoff \
                     of up to {}s — fix the cause or disable rotation)",
                    self.app.config.scheduler.backoff_max_secs
                );
                let msg = st.message.take().unwrap_or_default();
                st.message = Some(if msg.contains("(failing: ") {
                    msg
                } else {
                    msg + &note
                });
                if let Err(err) = svc.record_rotation_status(&c.arn, st).await {
                    tracing::warn!(secret = %c.name, error = %err, "could not mark the rotation failing");
                }
            }
            tracing::error!(secret = %c.name, failures, error = %e, "rotation failing: {failures} failed attempts; retrying with capped backoff");
        } else {
            tracing::warn!(secret = %c.name, failures, error = %e, "rotation failed; will retry after backoff");
        }
        Outcome::Failed { failing }
    }
}
