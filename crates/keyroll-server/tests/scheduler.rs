//! The scheduler with an injected clock: days, rate, cron with windows, restarts without
//! surprise rotations, backoff, the manual-put rule and the purge job.

mod common;

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::RotationRulesType;
use common::*;
use keyroll_core::schedule::ts;
use keyroll_core::time::{ManualClock, Timestamp};
use keyroll_server::scheduler::Scheduler;
use keyroll_server::{Config, MemoryRegions};

const KEYROLL_FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:keyroll";

fn secs(t: Timestamp) -> i64 {
    t.millis() / 1000
}

async fn next_rotation(c: &Client, id: &str) -> i64 {
    c.describe_secret()
        .secret_id(id)
        .send()
        .await
        .unwrap()
        .next_rotation_date()
        .unwrap()
        .secs()
}

async fn last_rotated(c: &Client, id: &str) -> Option<i64> {
    c.describe_secret()
        .secret_id(id)
        .send()
        .await
        .unwrap()
        .last_rotated_date()
        .map(|d| d.secs())
}

async fn configure(c: &Client, id: &str, rules: RotationRulesType, immediately: bool) {
    c.create_secret()
        .name(id)
        .secret_string("initial")
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id(id)
        .rotation_lambda_arn(KEYROLL_FN)
        .rotation_rules(rules)
        .rotate_immediately(immediately)
        .send()
        .await
        .unwrap();
    // Wait for the immediate rotation (or the test of the configuration) to finish.
    eventually(|| async {
        let d = c.describe_secret().secret_id(id).send().await.ok()?;
        let pending = d
            .version_ids_to_stages()?
            .values()
            .any(|s| s.iter().any(|x| x == "AWSPENDING"));
        (!pending && (!immediately || d.last_rotated_date().is_some())).then_some(())
    })
    .await;
}

struct Env {
    t: TestServer,
    clock: ManualClock,
    sched: Arc<Scheduler<MemoryRegions>>,
}

async fn env_at(start: &str, config: Config) -> Env {
    let clock = ManualClock::new(ts(start));
    let t = start_with(config, Arc::new(clock.clone()), None).await;
    let sched = Scheduler::with_random(t.app().clone(), || 1.0);
    Env { t, clock, sched }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatically_after_days() {
    let e = env_at("2026-03-01T10:00:00Z", Config::default()).await;
    let c = e.t.client();
    configure(
        &c,
        "days",
        RotationRulesType::builder()
            .automatically_after_days(3)
            .build(),
        true,
    )
    .await;
    assert_eq!(
        last_rotated(&c, "days").await,
        Some(secs(ts("2026-03-01T10:00:00Z")))
    );
    assert_eq!(
        next_rotation(&c, "days").await,
        secs(ts("2026-03-04T10:00:00Z"))
    );
    e.clock.set(ts("2026-03-04T09:59:00Z"));
    assert!(e.sched.tick().await.rotated.is_empty());
    e.clock.set(ts("2026-03-04T10:00:00Z"));
    assert_eq!(e.sched.tick().await.rotated, ["days"]);
    assert_eq!(
        last_rotated(&c, "days").await,
        Some(secs(ts("2026-03-04T10:00:00Z")))
    );
    assert_eq!(
        next_rotation(&c, "days").await,
        secs(ts("2026-03-07T10:00:00Z"))
    );
    // Nothing more in the same instant.
    assert!(e.sched.tick().await.rotated.is_empty());
    // Overdue by weeks (no window without Duration): rotates once.
    e.clock.set(ts("2026-04-01T00:00:00Z"));
    assert_eq!(e.sched.tick().await.rotated, ["days"]);
    assert!(e.sched.tick().await.rotated.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_hours_with_windows_and_a_missed_window() {
    let e = env_at("2026-03-01T00:00:00Z", Config::default()).await;
    let c = e.t.client();
    configure(
        &c,
        "rate",
        RotationRulesType::builder()
            .schedule_expression("rate(6 hours)")
            .build(),
        false,
    )
    .await;
    assert_eq!(
        next_rotation(&c, "rate").await,
        secs(ts("2026-03-01T06:00:00Z"))
    );
    e.clock.set(ts("2026-03-01T05:00:00Z"));
    assert!(e.sched.tick().await.rotated.is_empty());
    e.clock.set(ts("2026-03-01T06:30:00Z"));
    assert_eq!(e.sched.tick().await.rotated, ["rate"]);
    assert_eq!(
        next_rotation(&c, "rate").await,
        secs(ts("2026-03-01T12:30:00Z"))
    );
    // Down from 12:00 to 14:00: the 12:30-13:30 window was missed.
    e.clock.set(ts("2026-03-01T14:00:00Z"));
    let r = e.sched.tick().await;
    assert!(r.rotated.is_empty());
    assert_eq!(r.missed, ["rate"]);
    assert_eq!(
        next_rotation(&c, "rate").await,
        secs(ts("2026-03-01T18:30:00Z"))
    );
    e.clock.set(ts("2026-03-01T18:40:00Z"));
    assert_eq!(e.sched.tick().await.rotated, ["rate"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_with_a_duration_window() {
    let e = env_at("2026-03-01T08:00:00Z", Config::default()).await;
    let c = e.t.client();
    let rules = RotationRulesType::builder()
        .schedule_expression("cron(0 10 * * ? *)")
        .duration("2h")
        .build();
    configure(&c, "cron", rules, false).await;
    assert_eq!(
        next_rotation(&c, "cron").await,
        secs(ts("2026-03-01T10:00:00Z"))
    );
    e.clock.set(ts("2026-03-01T09:00:00Z"));
    assert!(e.sched.tick().await.rotated.is_empty());
    e.clock.set(ts("2026-03-01T10:30:00Z"));
    assert_eq!(e.sched.tick().await.rotated, ["cron"]);
    assert_eq!(
        next_rotation(&c, "cron").await,
        secs(ts("2026-03-02T10:00:00Z"))
    );
    // The whole 10:00-12:00 window of the 2nd passes while down.
    e.clock.set(ts("2026-03-02T13:00:00Z"));
    let r = e.sched.tick().await;
    assert_eq!(r.missed, ["cron"]);
    assert!(r.rotated.is_empty());
    assert_eq!(
        next_rotation(&c, "cron").await,
        secs(ts("2026-03-03T10:00:00Z"))
    );
    e.clock.set(ts("2026-03-03T11:59:00Z"));
    assert_eq!(e.sched.tick().await.rotated, ["cron"]);
    assert_eq!(
        last_rotated(&c, "cron").await,
        Some(secs(ts("2026-03-03T11:59:00Z")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_causes_no_surprise_rotation() {
    let clock = ManualClock::new(ts("2026-03-01T10:30:00Z"));
    let regions = MemoryRegions::new("000000000000", Arc::new(clock.clone()));
    let key = keyroll_server::credentials::generate_key("t").unwrap();
    let t = start_on(
        regions.clone(),
        Config::default(),
        Arc::new(clock.clone()),
        None,
        key.clone(),
    )
    .await;
    let c = t.client();
    let rules = RotationRulesType::builder()
        .schedule_expression("cron(0 10 * * ? *)")
        .duration("4h")
        .build();
    configure(&c, "r", rules, true).await;
    let before = last_rotated(&c, "r").await;
    t.server.shutdown().await;

    // Restarted inside the same window, and again the next morning before the window.
    for at in ["2026-03-01T11:00:00Z", "2026-03-02T09:59:00Z"] {
        clock.set(ts(at));
        let t2 = start_on(
            regions.clone(),
            Config::default(),
            Arc::new(clock.clone()),
            None,
            key.clone(),
        )
        .await;
        let s = Scheduler::new(t2.app().clone());
        let r = s.tick().await;
        assert!(
            r.rotated.is_empty() && r.missed.is_empty(),
            "surprise rotation at {at}: {r:?}"
        );
        assert_eq!(last_rotated(&t2.client(), "r").await, before);
        t2.server.shutdown().await;
    }
    // Down across the whole window of the 2nd, back on the 3rd inside its window: once.
    clock.set(ts("2026-03-03T10:05:00Z"));
    let t3 = start_on(
        regions,
        Config::default(),
        Arc::new(clock.clone()),
        None,
        key,
    )
    .await;
    let s = Scheduler::new(t3.app().clone());
    assert_eq!(s.tick().await.rotated, ["r"]);
    assert!(s.tick().await.rotated.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rotations_back_off_and_are_marked_failing_but_never_parked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let script = dir.path().join("fail.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >> {}\necho >> {}\nexit 1\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    let mut config = Config::default();
    config.scheduler.max_attempts = 3;
    config.scheduler.backoff_initial_secs = 60;
    config.scheduler.backoff_max_secs = 3600;
    config.scheduler.jitter = 0.5;
    config.functions.insert(
        "flaky".into(),
        keyroll_server::config::FunctionConfig {
            command: vec!["sh".into(), script.display().to_string()],
            timeout_secs: 10,
            env: Default::default(),
            working_dir: None,
            ..Default::default()
        },
    );
    let e = env_at("2026-03-01T00:00:00Z", config).await;
    // The random draw is 1.0: every delay is the base minus the full 50% jitter.
    assert_eq!(e.sched.backoff(1, 1.0).as_secs(), 30);
    assert_eq!(e.sched.backoff(1, 0.0).as_secs(), 60);
    assert_eq!(e.sched.backoff(2, 0.0).as_secs(), 120);
    assert_eq!(e.sched.backoff(30, 0.0).as_secs(), 3600, "capped");
    let c = e.t.client();
    c.create_secret()
        .name("flaky")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let rules = RotationRulesType::builder()
        .schedule_expression("rate(12 hours)")
        .duration("6h")
        .build();
    c.rotate_secret()
        .secret_id("flaky")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:flaky")
        .rotation_rules(rules)
        .rotate_immediately(false)
        .send()
        .await
        .unwrap();
    let calls = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    };
    eventually(|| async { (calls() == 1).then_some(()) }).await; // the testSecret probe
    let due = ts("2026-03-01T12:00:00Z");
    e.clock.set(due);
    let r = e.sched.tick().await;
    assert_eq!(r.failed, ["flaky"]);
    e.clock.set(due.plus_millis(29_000));
    assert_eq!(e.sched.tick().await.backing_off, ["flaky"]);
    e.clock.set(due.plus_millis(30_000));
    assert_eq!(e.sched.tick().await.failed, ["flaky"]);
    e.clock.set(due.plus_millis(30_000 + 59_000));
    assert_eq!(e.sched.tick().await.backing_off, ["flaky"]);
    e.clock.set(due.plus_millis(30_000 + 60_000));
    let r = e.sched.tick().await;
    assert_eq!(r.resumed, ["flaky"], "the pending version is carried on");
    assert_eq!(r.failing, ["flaky"]);
    assert_eq!(calls(), 4, "three scheduled attempts after the probe");
    // Marked failing, AWSCURRENT untouched, and still retried (capped backoff), never
    // parked until the next window.
    let (_, d) = raw(
        &e.t.url,
        &e.t.key,
        "secretsmanager.DescribeSecret",
        r#"{"SecretId":"flaky"}"#,
    )
    .await;
    assert_eq!(d["KeyrollRotationStatus"]["State"], "Failed");
    assert_eq!(d["KeyrollRotationStatus"]["Attempts"], 3);
    assert!(
        d["KeyrollRotationStatus"]["Message"]
            .as_str()
            .unwrap()
            .contains("failing: 3 failed attempts")
    );
    assert_eq!(
        d["NextRotationDate"].as_f64().unwrap() as i64,
        secs(due),
        "the schedule is not moved on"
    );
    e.clock.set(due.plus_millis(90_000 + 119_000));
    assert_eq!(e.sched.tick().await.backing_off, ["flaky"]);
    e.clock.set(due.plus_millis(90_000 + 120_000));
    let r = e.sched.tick().await;
    assert_eq!(r.failing, ["flaky"]);
    assert_eq!(calls(), 5);
    // The cap: the delay never exceeds backoff_max_secs (minus jitter).
    assert_eq!(e.sched.backoff(40, 1.0).as_secs(), 1800);
    assert_eq!(
        c.get_secret_value()
            .secret_id("flaky")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some("v")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_put_counts_as_a_rotation() {
    let e = env_at("2026-03-01T00:00:00Z", Config::default()).await;
    let c = e.t.client();
    configure(
        &c,
        "m",
        RotationRulesType::builder()
            .automatically_after_days(10)
            .build(),
        true,
    )
    .await;
    e.clock.set(ts("2026-03-06T00:00:00Z"));
    c.put_secret_value()
        .secret_id("m")
        .secret_string("by hand")
        .send()
        .await
        .unwrap();
    assert_eq!(
        last_rotated(&c, "m").await,
        Some(secs(ts("2026-03-06T00:00:00Z")))
    );
    assert_eq!(
        next_rotation(&c, "m").await,
        secs(ts("2026-03-16T00:00:00Z"))
    );
    e.clock.set(ts("2026-03-11T00:00:00Z"));
    assert!(e.sched.tick().await.rotated.is_empty());
    // A pending put (what rotation functions do) does not count.
    c.put_secret_value()
        .secret_id("m")
        .secret_string("p")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(
        next_rotation(&c, "m").await,
        secs(ts("2026-03-16T00:00:00Z"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_job_removes_secrets_when_their_window_ends() {
    let e = env_at("2026-03-01T00:00:00Z", Config::default()).await;
    let c = e.t.client();
    c.create_secret()
        .name("gone")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    c.delete_secret()
        .secret_id("gone")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    e.clock.set(ts("2026-03-07T23:59:00Z"));
    assert_eq!(e.sched.tick().await.purged, 0);
    assert!(c.describe_secret().secret_id("gone").send().await.is_ok());
    e.clock.set(ts("2026-03-08T00:00:00Z"));
    assert_eq!(e.sched.tick().await.purged, 1);
    let err = c
        .describe_secret()
        .secret_id("gone")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&err), "ResourceNotFoundException");
    c.create_secret()
        .name("gone")
        .secret_string("again")
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_carried_on_at_the_next_tick_whatever_the_schedule() {
    use keyroll_core::api::PutSecretValueRequest;
    use keyroll_core::model::RotationStatus;
    use keyroll_core::ports::{RotationStore, SecretsApi};
    let e = env_at("2026-03-01T00:00:00Z", Config::default()).await;
    let c = e.t.client();
    let arn = c
        .create_secret()
        .name("crashed")
        .secret_string("v0")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    // What a kill between setSecret and finishSecret leaves behind: rotation enabled without
    // a schedule, AWSPENDING with its value, the status still InProgress.
    let svc = e.t.app().store.region("us-east-1").unwrap();
    svc.configure_rotation(&arn, Some(KEYROLL_FN.into()), None)
        .await
        .unwrap();
    let token = keyroll_core::ids::new_token();
    svc.put_secret_value(PutSecretValueRequest {
        secret_id: arn.clone(),
        client_request_token: Some(token.clone()),
        secret_string: Some(secrecy::SecretString::from("v1".to_string())),
        version_stages: Some(vec!["AWSPENDING".into()]),
        ..Default::default()
    })
    .await
    .unwrap();
    svc.record_rotation_status(&arn, RotationStatus::begin(&token, svc.now(), None))
        .await
        .unwrap();
    // CancelRotateSecret now only disables future rotations: this one may already have
    // changed the target.
    c.cancel_rotate_secret()
        .secret_id("crashed")
        .send()
        .await
        .unwrap();
    let r = e.sched.tick().await;
    assert_eq!(r.resumed, ["crashed"]);
    assert_eq!(r.rotated, ["crashed"]);
    let d = c
        .describe_secret()
        .secret_id("crashed")
        .send()
        .await
        .unwrap();
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages[&token], ["AWSCURRENT"]);
    assert!(!stages.values().flatten().any(|s| s == "AWSPENDING"));
    assert_eq!(d.rotation_enabled(), Some(false));
    // Nothing more to do.
    let r = e.sched.tick().await;
    assert!(r.resumed.is_empty() && r.rotated.is_empty());
}
