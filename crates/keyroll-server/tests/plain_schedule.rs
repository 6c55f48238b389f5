//! Plain generated secrets (seed 004: a key/value secret rotated on a cron schedule) through
//! the server's scheduler on an injected clock: nothing before the cron fires, one rotation
//! per firing, the fields named by `keyroll:fields` regenerated with the tags' password
//! policy, every other field kept, and the previous value kept as `AWSPREVIOUS`.

mod common;

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::Tag;
use common::*;
use keyroll_core::model::RotationRules;
use keyroll_core::ports::RotationStore;
use keyroll_core::schedule::ts;
use keyroll_core::time::ManualClock;
use keyroll_server::scheduler::Scheduler;
use keyroll_server::{Config, MemoryRegions};
use serde_json::Value;

const KEYROLL_FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:keyroll";

async fn value(c: &Client, id: &str, stage: &str) -> Value {
    let v = c
        .get_secret_value()
        .secret_id(id)
        .version_stage(stage)
        .send()
        .await
        .unwrap();
    serde_json::from_str(v.secret_string().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_secret_rotates_on_a_cron_schedule() {
    let clock = ManualClock::new(ts("2026-03-01T08:00:00Z"));
    let t = start_with(Config::default(), Arc::new(clock.clone()), None).await;
    let sched: Arc<Scheduler<MemoryRegions>> = Scheduler::with_random(t.app().clone(), || 1.0);
    let c = t.client();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    c.create_secret()
        .name("MyApp/DB-Password")
        .secret_string(
            r#"{"username":"app","password":"Admin@1234","apiToken":"t0","host":"db.internal"}"#,
        )
        .tags(tag("keyroll:fields", "password,apiToken"))
        .tags(tag("keyroll:password-length", "24"))
        .tags(tag("keyroll:exclude-punctuation", "true"))
        .send()
        .await
        .unwrap();
    // Every day at 10:00 UTC, as an EventBridge cron would (seed 004).
    let rules = RotationRules {
        automatically_after_days: None,
        duration: Some("1h".into()),
        schedule_expression: Some("cron(0 10 * * ? *)".into()),
    };
    let svc = t.app().store.region("us-east-1").unwrap();
    svc.configure_rotation("MyApp/DB-Password", Some(KEYROLL_FN.into()), Some(rules))
        .await
        .unwrap();
    let next = c
        .describe_secret()
        .secret_id("MyApp/DB-Password")
        .send()
        .await
        .unwrap()
        .next_rotation_date()
        .unwrap()
        .secs();
    assert_eq!(next, ts("2026-03-01T10:00:00Z").millis() / 1000);

    clock.set(ts("2026-03-01T09:59:00Z"));
    assert!(
        sched.tick().await.rotated.is_empty(),
        "not before the cron fires"
    );
    assert_eq!(
        value(&c, "MyApp/DB-Password", "AWSCURRENT").await["password"],
        "Admin@1234"
    );

    let mut seen = vec!["Admin@1234".to_string()];
    for day in 1..=3 {
        clock.set(ts(&format!("2026-03-0{day}T10:05:00Z")));
        let r = sched.tick().await;
        assert_eq!(r.rotated, ["MyApp/DB-Password"], "day {day}: {r:?}");
        assert!(sched.tick().await.rotated.is_empty(), "once per firing");
        let cur = value(&c, "MyApp/DB-Password", "AWSCURRENT").await;
        let prev = value(&c, "MyApp/DB-Password", "AWSPREVIOUS").await;
        let p = cur["password"].as_str().unwrap().to_string();
        assert_eq!(p.len(), 24);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{p}");
        assert!(!seen.contains(&p), "a new password each time");
        assert_ne!(
            cur["apiToken"], prev["apiToken"],
            "apiToken is regenerated too"
        );
        assert_eq!(cur["username"], "app");
        assert_eq!(cur["host"], "db.internal");
        assert_eq!(prev["password"].as_str().unwrap(), seen.last().unwrap());
        seen.push(p);
        let d = c
            .describe_secret()
            .secret_id("MyApp/DB-Password")
            .send()
            .await
            .unwrap();
        assert_eq!(
            d.last_rotated_date().unwrap().secs(),
            ts(&format!("2026-03-0{day}T10:05:00Z")).millis() / 1000
        );
        assert_eq!(
            d.next_rotation_date().unwrap().secs(),
            ts(&format!("2026-03-0{}T10:00:00Z", day + 1)).millis() / 1000
        );
    }
}
