//! Prometheus metrics: lock-free counters on the request path, rendered as text on `/metrics`.
//! Labels carry operation, step, outcome, region and secret *names* — never values.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use keyroll_core::Step;

use crate::dispatch::Operation;

/// Latency bucket bounds in microseconds.
const BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

#[derive(Default)]
struct OpStats {
    success: AtomicU64,
    client_error: AtomicU64,
    server_error: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len()],
    sum_us: AtomicU64,
}

const AUTH_TYPES: [&str; 4] = [
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
];

/// Outcome of a whole rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationOutcome {
    Succeeded,
    Failed,
    /// `RotateImmediately=false`: only testSecret ran.
    Tested,
    TestFailed,
}

impl RotationOutcome {
    const ALL: [RotationOutcome; 4] = [
        RotationOutcome::Succeeded,
        RotationOutcome::Failed,
        RotationOutcome::Tested,
        RotationOutcome::TestFailed,
    ];
    fn as_str(self) -> &'static str {
        match self {
            RotationOutcome::Succeeded => "succeeded",
            RotationOutcome::Failed => "failed",
            RotationOutcome::Tested => "tested",
            RotationOutcome::TestFailed => "test_failed",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

fn step_index(s: Step) -> usize {
    match s {
        Step::Create => 0,
        Step::Set => 1,
        Step::Test => 2,
        Step::Finish => 3,
    }
}

pub struct Metrics {
    ops: Vec<OpStats>,
    auth_failures: [AtomicU64; AUTH_TYPES.len()],
    rotations: [AtomicU64; 4],
    /// [step][0 = ok, 1 = failed]
    steps: [[AtomicU64; 2]; 4],
    step_sum_us: [AtomicU64; 4],
    pub rotations_in_progress: AtomicI64,
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    /// Connections closed without an authenticated request to make room for others
    /// (`max_pending_connections`, `max_connections`).
    pub connections_evicted: AtomicU64,
    /// Connections closed because their first request was not complete within
    /// `request_deadline_secs`.
    pub connections_timed_out: AtomicU64,
    started: std::time::Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ops: (0..Operation::ALL.len())
                .map(|_| OpStats::default())
                .collect(),
            auth_failures: Default::default(),
            rotations: Default::default(),
            steps: Default::default(),
            step_sum_us: Default::default(),
            rotations_in_progress: AtomicI64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_evicted: AtomicU64::new(0),
            connections_timed_out: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

/// One secret's line in the rotation-age gauges.
pub struct SecretGauge<'a> {
    pub region: &'a str,
    pub name: &'a str,
    pub seconds_since_rotation: Option<f64>,
    pub rotation_enabled: bool,
    pub failing: bool,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn request(&self, op: Operation, status: u16, elapsed: Duration) {
        let s = &self.ops[op.index()];
        match status {
            0..=399 => &s.success,
            400..=499 => &s.client_error,
            _ => &s.server_error,
        }
        .fetch_add(1, Relaxed);
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        s.sum_us.fetch_add(us, Relaxed);
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            s.buckets[i].fetch_add(1, Relaxed);
        }
    }

    pub fn auth_failure(&self, aws_type: &str) {
        if let Some(i) = AUTH_TYPES.iter().position(|t| *t == aws_type) {
            self.auth_failures[i].fetch_add(1, Relaxed);
        }
    }

    pub fn rotation(&self, outcome: RotationOutcome) {
        self.rotations[outcome.index()].fetch_add(1, Relaxed);
    }

    pub fn step(&self, step: Step, ok: bool, elapsed: Duration) {
        let i = step_index(step);
        self.steps[i][usize::from(!ok)].fetch_add(1, Relaxed);
        self.step_sum_us[i].fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text exposition. Secret names appear as labels only with
    /// `secret_labels` (`metrics_secret_labels`); otherwise per-region totals stand in for
    /// the per-secret gauges.
    pub fn render(&self, secrets: &[SecretGauge<'_>], secret_labels: bool) -> String {
        let mut o = String::with_capacity(16 * 1024);
        let _ = writeln!(
            o,
            "# HELP keyroll_requests_total API requests by operation and outcome."
        );
        let _ = writeln!(o, "# TYPE keyroll_requests_total counter");
        for op in Operation::ALL {
            let s = &self.ops[op.index()];
            for (outcome, c) in [
                ("success", &s.success),
                ("client_error", &s.client_error),
                ("server_error", &s.server_error),
            ] {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        o,
                        "keyroll_requests_total{{operation=\"{}\",outcome=\"{outcome}\"}} {n}",
                        op.name()
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "# HELP keyroll_request_duration_seconds API request latency by operation."
        );
        let _ = writeln!(o, "# TYPE keyroll_request_duration_seconds histogram");
        for op in Operation::ALL {
            let s = &self.ops[op.index()];
            let total: u64 = s.success.load(Relaxed)
                + s.client_error.load(Relaxed)
                + s.server_error.load(Relaxed);
            if total == 0 {
                continue;
            }
            let mut cum = 0;
            for (i, b) in BUCKETS_US.iter().enumerate() {
                cum += s.buckets[i].load(Relaxed);
                let _ = writeln!(
                    o,
                    "keyroll_request_duration_seconds_bucket{{operation=\"{}\",le=\"{}\"}} {cum}",
                    op.name(),
                    *b as f64 / 1e6
                );
            }
            let _ = writeln!(
                o,
                "keyroll_request_duration_seconds_bucket{{operation=\"{}\",le=\"+Inf\"}} {total}",
                op.name()
            );
            let _ = writeln!(
                o,
                "keyroll_request_duration_seconds_sum{{operation=\"{}\"}} {}",
                op.name(),
                s.sum_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "keyroll_request_duration_seconds_count{{operation=\"{}\"}} {total}",
                op.name()
            );
        }
        let _ = writeln!(
            o,
            "# HELP keyroll_auth_failures_total Requests refused by SigV4 verification."
        );
        let _ = writeln!(o, "# TYPE keyroll_auth_failures_total counter");
        for (i, t) in AUTH_TYPES.iter().enumerate() {
            let _ = writeln!(
                o,
                "keyroll_auth_failures_total{{type=\"{t}\"}} {}",
                self.auth_failures[i].load(Relaxed)
            );
        }
        let _ = writeln!(o, "# HELP keyroll_rotations_total Rotations by outcome.");
        let _ = writeln!(o, "# TYPE keyroll_rotations_total counter");
        for r in RotationOutcome::ALL {
            let _ = writeln!(
                o,
                "keyroll_rotations_total{{outcome=\"{}\"}} {}",
                r.as_str(),
                self.rotations[r.index()].load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP keyroll_rotation_steps_total Rotation steps by step and outcome."
        );
        let _ = writeln!(o, "# TYPE keyroll_rotation_steps_total counter");
        for step in Step::ALL {
            let i = step_index(step);
            for (k, outcome) in ["succeeded", "failed"].iter().enumerate() {
                let _ = writeln!(
                    o,
                    "keyroll_rotation_steps_total{{step=\"{step}\",outcome=\"{outcome}\"}} {}",
                    self.steps[i][k].load(Relaxed)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP keyroll_rotation_step_seconds_sum Time spent in rotation steps."
        );
        let _ = writeln!(o, "# TYPE keyroll_rotation_step_seconds_sum counter");
        for step in Step::ALL {
            let _ = writeln!(
                o,
                "keyroll_rotation_step_seconds_sum{{step=\"{step}\"}} {}",
                self.step_sum_us[step_index(step)].load(Relaxed) as f64 / 1e6
            );
        }
        let _ = writeln!(
            o,
            "# HELP keyroll_rotations_in_progress Rotations running now."
        );
        let _ = writeln!(o, "# TYPE keyroll_rotations_in_progress gauge");
        let _ = writeln!(
            o,
            "keyroll_rotations_in_progress {}",
            self.rotations_in_progress.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP keyroll_connections_open Open client connections."
        );
        let _ = writeln!(o, "# TYPE keyroll_connections_open gauge");
        let _ = writeln!(
            o,
            "keyroll_connections_open {}",
            self.connections_open.load(Relaxed)
        );
        let _ = writeln!(o, "# TYPE keyroll_connections_total counter");
        let _ = writeln!(
            o,
            "keyroll_connections_total {}",
            self.connections_total.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP keyroll_connections_closed_total Connections closed before any request on \
             them was authenticated, by reason (evicted: to make room; deadline: \
             request_deadline_secs)."
        );
        let _ = writeln!(o, "# TYPE keyroll_connections_closed_total counter");
        let _ = writeln!(
            o,
            "keyroll_connections_closed_total{{reason=\"evicted\"}} {}",
            self.connections_evicted.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "keyroll_connections_closed_total{{reason=\"deadline\"}} {}",
            self.connections_timed_out.load(Relaxed)
        );
        let _ = writeln!(o, "# TYPE keyroll_uptime_seconds gauge");
        let _ = writeln!(
            o,
            "keyroll_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );

        let _ = writeln!(o, "# HELP keyroll_secrets Secrets per region.");
        let _ = writeln!(o, "# TYPE keyroll_secrets gauge");
        let mut per_region: Vec<(&str, u64)> = Vec::new();
        for s in secrets {
            match per_region.iter_mut().find(|(r, _)| *r == s.region) {
                Some((_, n)) => *n += 1,
                None => per_region.push((s.region, 1)),
            }
        }
        for (r, n) in per_region {
            let _ = writeln!(o, "keyroll_secrets{{region=\"{}\"}} {n}", escape(r));
        }
        if secret_labels {
            let _ = writeln!(
                o,
                "# HELP keyroll_secret_seconds_since_last_rotation Seconds since the secret's last \
                 successful rotation (or its creation, if never rotated), for secrets with rotation \
                 enabled."
            );
            let _ = writeln!(o, "# TYPE keyroll_secret_seconds_since_last_rotation gauge");
            for s in secrets.iter().filter(|s| s.rotation_enabled) {
                if let Some(age) = s.seconds_since_rotation {
                    let _ = writeln!(
                        o,
                        "keyroll_secret_seconds_since_last_rotation{{region=\"{}\",secret=\"{}\"}} {age:.3}",
                        escape(s.region),
                        escape(s.name)
                    );
                }
            }
            let _ = writeln!(
                o,
                "# HELP keyroll_secret_rotation_failing 1 when the secret's last rotation failed."
            );
            let _ = writeln!(o, "# TYPE keyroll_secret_rotation_failing gauge");
            for s in secrets.iter().filter(|s| s.rotation_enabled) {
                let _ = writeln!(
                    o,
                    "keyroll_secret_rotation_failing{{region=\"{}\",secret=\"{}\"}} {}",
                    escape(s.region),
                    escape(s.name),
                    u8::from(s.failing)
                );
            }
        } else {
            let _ = writeln!(
                o,
                "# HELP keyroll_oldest_rotation_seconds Per region, the longest time since a \
                 secret with rotation enabled was last rotated (or created). Per-secret gauges: \
                 metrics_secret_labels = true."
            );
            let _ = writeln!(o, "# TYPE keyroll_oldest_rotation_seconds gauge");
            let mut oldest: Vec<(&str, f64, u64)> = Vec::new();
            for s in secrets.iter().filter(|s| s.rotation_enabled) {
                let age = s.seconds_since_rotation.unwrap_or(0.0);
                match oldest.iter_mut().find(|(r, _, _)| *r == s.region) {
                    Some((_, a, f)) => {
                        *a = a.max(age);
                        *f += u64::from(s.failing);
                    }
                    None => oldest.push((s.region, age, u64::from(s.failing))),
                }
            }
            for (r, age, _) in &oldest {
                let _ = writeln!(
                    o,
                    "keyroll_oldest_rotation_seconds{{region=\"{}\"}} {age:.3}",
                    escape(r)
                );
            }
            let _ = writeln!(
                o,
                "# HELP keyroll_secrets_rotation_failing Per region, secrets whose last rotation \
                 failed."
            );
            let _ = writeln!(o, "# TYPE keyroll_secrets_rotation_failing gauge");
            for (r, _, failing) in &oldest {
                let _ = writeln!(
                    o,
                    "keyroll_secrets_rotation_failing{{region=\"{}\"}} {failing}",
                    escape(r)
                );
            }
        }
        o
    }
}
