//! The rotation function against moto (Secrets Manager) and real PostgreSQL and MariaDB,
//! driven the way the service drives it: `RotateSecret` creates the placeholder, then the
//! four step events — each delivered twice, and with a failure injected at each step followed
//! by the service's retry of the same version.

mod common;

use std::sync::{Arc, Mutex};

use common::{Aws, Db, event};
use keyroll_core::Step;
use keyroll_core::testing::FlakyTarget;
use keyroll_lambda::{Function, Settings};
use serde_json::Value;

struct Case {
    db: Db,
    aws: Aws,
    arn: String,
    function: Function,
    metrics: Arc<Mutex<Vec<String>>>,
    /// Every password the secret held, to look for in what the function emitted.
    seen_passwords: Vec<String>,
}

async fn setup(engine: &str, alternating: bool) -> Case {
    let db = Db::start(engine);
    let aws = Aws::start();
    db.create_user("app", "InitialPassw0rd1").await;
    let mut value = db.secret("app", "InitialPassw0rd1");
    if alternating {
        let master = aws.create_secret("db/master", &db.admin_secret()).await;
        value["masterarn"] = Value::String(master);
    }
    value["keep"] = Value::String("untouched".into());
    let arn = aws.create_secret("db/app", &value).await;
    let metrics = Arc::new(Mutex::new(Vec::new()));
    let sink = metrics.clone();
    let function = Function::with_store(Settings::default(), aws.store())
        .with_metrics_sink(move |l| sink.lock().unwrap().push(l));
    Case {
        db,
        aws,
        arn,
        function,
        metrics,
        seen_passwords: vec!["InitialPassw0rd1".into()],
    }
}

impl Case {
    async fn current(&self) -> Value {
        self.aws.value(&self.arn, "AWSCURRENT").await
    }

    async fn remember_passwords(&mut self) {
        for stage in ["AWSCURRENT", "AWSPREVIOUS"] {
            let v = self.aws.value(&self.arn, stage).await;
            self.seen_passwords
                .push(v["password"].as_str().unwrap().to_string());
        }
    }

    async fn step(&self, step: Step, token: &str) -> Result<Value, keyroll_lambda::InvokeError> {
        self.function.invoke(&event(step, &self.arn, token)).await
    }
}

async fn rotate_with_every_event_twice(c: &mut Case, alternating: bool) {
    let before = c.current().await;
    let token = c.aws.rotate_secret(&c.arn).await;
    for step in Step::ALL {
        for delivery in 0..2 {
            let r = c.step(step, &token).await;
            assert_eq!(r, Ok(Value::Null), "{step} delivery {delivery}");
        }
    }
    let stages = c.aws.stages(&c.arn).await;
    assert!(
        stages[&token].contains(&"AWSCURRENT".to_string()),
        "{stages:?}"
    );
    let after = c.current().await;
    assert!(c.db.logs_in(&after).await, "the new AWSCURRENT logs in");
    assert_ne!(after["password"], before["password"]);
    assert_eq!(after["keep"], "untouched", "other keys are preserved");
    let previous = c.aws.value(&c.arn, "AWSPREVIOUS").await;
    assert_eq!(previous["password"], before["password"]);
    if alternating {
        assert_ne!(after["username"], before["username"], "users alternate");
        assert!(
            c.db.logs_in(&before).await,
            "the previous user still logs in"
        );
    } else {
        assert_eq!(after["username"], before["username"]);
        assert!(
            !c.db.logs_in(&before).await,
            "the old password no longer logs in"
        );
    }
    c.aws.complete(&c.arn, &token).await;
    c.remember_passwords().await;
}

async fn failure_at_each_step_keeps_current_working(c: &mut Case, alternating: bool) {
    for failing in Step::ALL {
        let token = c.aws.rotate_secret(&c.arn).await;
        for step in Step::ALL {
            if step == failing {
                let target = FlakyTarget::new(c.function.target());
                target.fail_before(step, 1);
                let err = c
                    .function
                    .invoke_with_target(&event(step, &c.arn, &token), &target)
                    .await
                    .unwrap_err();
                assert_eq!(err.error_type, "Rejected", "{failing}: {err}");
                let current = c.current().await;
                if !alternating && failing == Step::Test {
                    // Single user: once setSecret changed the user's own password, only
                    // AWSPENDING logs in until finishSecret promotes it (AWS's single-user
                    // strategy has the same window; alternating users have none). The
                    // pending credential is kept, so the retry below completes the rotation.
                    let pending = c.aws.value(&c.arn, "AWSPENDING").await;
                    assert!(c.db.logs_in(&pending).await, "AWSPENDING logs in");
                } else {
                    assert!(
                        c.db.logs_in(&current).await,
                        "AWSCURRENT must log in after a failure at {failing}"
                    );
                }
            }
            // The service retries the same version: delivering the step again completes it.
            assert_eq!(
                c.step(step, &token).await,
                Ok(Value::Null),
                "{failing}/{step}"
            );
        }
        let current = c.current().await;
        assert!(
            c.db.logs_in(&current).await,
            "after recovering from {failing}"
        );
        c.aws.complete(&c.arn, &token).await;
        c.remember_passwords().await;
    }
}

async fn template_checks(c: &Case) {
    // A token that is not a version of the secret.
    let e = c
        .step(Step::Set, "00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "InvalidRotationState", "{e}");
    // A token that is AWSCURRENT: nothing to do, for every step.
    let current = c
        .aws
        .stages(&c.arn)
        .await
        .into_iter()
        .find(|(_, s)| s.contains(&"AWSCURRENT".to_string()))
        .unwrap()
        .0;
    for step in Step::ALL {
        assert_eq!(c.step(step, &current).await, Ok(Value::Null));
    }
    // A version that is neither AWSCURRENT nor AWSPENDING.
    let previous = c
        .aws
        .stages(&c.arn)
        .await
        .into_iter()
        .find(|(_, s)| s.contains(&"AWSPREVIOUS".to_string()))
        .unwrap()
        .0;
    let e = c.step(Step::Test, &previous).await.unwrap_err();
    assert_eq!(e.error_type, "InvalidRotationState");
    assert!(e.message.contains("not set as AWSPENDING"), "{e}");
    // An unknown step.
    let e = c
        .function
        .invoke(&serde_json::json!({"Step": "dropSecret", "SecretId": c.arn, "ClientRequestToken": current}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "InvalidEvent");
}

fn check_metrics_and_sentinels(c: &Case) {
    let lines = c.metrics.lock().unwrap().clone();
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("EMF lines are JSON"))
        .collect();
    let succeeded: u64 = docs
        .iter()
        .map(|d| d["RotationSucceeded"].as_u64().unwrap())
        .sum();
    // One first rotation + four recovered ones; each delivered finishSecret counts (the
    // duplicate delivery of the first rotation's finishSecret is a success too).
    assert!(succeeded >= 5, "{succeeded}");
    assert!(
        docs.iter()
            .any(|d| d["ErrorType"] == "Rejected" && d["RotationFailed"] == 1)
    );
    for d in &docs {
        assert!(d["_aws"]["CloudWatchMetrics"][0]["Metrics"].is_array());
        // Per-secret alarms: every step's document names the secret as a dimension.
        assert_eq!(d["SecretName"], "db/app", "{d}");
        let sets = &d["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
        assert!(
            sets.as_array()
                .unwrap()
                .contains(&serde_json::json!(["SecretName"])),
            "{sets}"
        );
    }
    let everything = lines.join("\n");
    for p in &c.seen_passwords {
        assert!(
            !everything.contains(p.as_str()),
            "a password appears in the metrics"
        );
    }
}

async fn full(engine: &str, alternating: bool) {
    let mut c = setup(engine, alternating).await;
    rotate_with_every_event_twice(&mut c, alternating).await;
    failure_at_each_step_keeps_current_working(&mut c, alternating).await;
    template_checks(&c).await;
    check_metrics_and_sentinels(&c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_single_user() {
    full("postgres", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_alternating_users() {
    full("postgres", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_single_user() {
    full("mariadb", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_alternating_users() {
    full("mariadb", true).await;
}
