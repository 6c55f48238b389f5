//! Round trips of a rotation through the real `bootstrap` (a local Lambda Runtime API, moto
//! as Secrets Manager, a real PostgreSQL): Secrets Manager calls counted by operation by a
//! proxy in front of moto, database logins by a proxy in front of PostgreSQL.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Aws, CountingProxy, Db, event, format_counts};
use keyroll_core::Step;
use keyroll_testkit::lambda_runtime::{Outcome, RuntimeApi};

/// The most Secrets Manager calls one rotation may make (issue 11).
const MAX_SM_CALLS: u64 = 8;

struct Bootstrap(Child);

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(api: &RuntimeApi, aws: &Aws, endpoint: &str) -> Bootstrap {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in api.function_env("keyroll-rotation") {
        cmd.env(k, v);
    }
    for (k, v) in aws.moto.aws_env() {
        cmd.env(k, v);
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint);
    Bootstrap(cmd.spawn().expect("spawn bootstrap"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_user_postgres_rotation_makes_at_most_8_calls_and_2_logins() {
    let db = Db::start("postgres");
    let aws = Aws::start();
    let sm = CountingProxy::start(aws.moto.port());
    let pg = CountingProxy::start(db.port());
    db.create_user("app", "InitialPassw0rd1").await;
    let mut value = db.secret("app", "InitialPassw0rd1");
    // The function reaches the database through the counting proxy.
    value["port"] = serde_json::json!(pg.port());
    let arn = aws.create_secret("db/app", &value).await;
    let api = RuntimeApi::start().unwrap();
    let _boot = spawn(&api, &aws, &sm.endpoint());
    assert!(api.wait_first_next(Duration::from_secs(10)).is_some());

    // A cold container's first rotation, then warm ones (the second has an AWSPREVIOUS).
    for round in 0..3 {
        let token = aws.rotate_secret(&arn).await;
        sm.reset();
        pg.reset();
        for step in Step::ALL {
            let e = event(step, &arn, &token).to_string();
            let outcome =
                tokio::task::block_in_place(|| api.invoke(&e, Duration::from_secs(60))).unwrap();
            assert_eq!(outcome, Outcome::Response("null".into()), "{step}");
        }
        let counts = sm.counts();
        let total = sm.total();
        eprintln!(
            "rotation {round}: {total} Secrets Manager calls ({}), {} database connections",
            format_counts(&counts),
            pg.connections()
        );
        assert!(
            total <= MAX_SM_CALLS,
            "rotation {round}: {total} calls: {}",
            format_counts(&counts)
        );
        assert_eq!(counts.get("DescribeSecret"), Some(&4), "one per step");
        assert_eq!(
            counts.get("GetRandomPassword"),
            None,
            "passwords are generated locally"
        );
        assert_eq!(counts.get("PutSecretValue"), Some(&1));
        assert_eq!(counts.get("UpdateSecretVersionStage"), Some(&1));
        assert_eq!(
            pg.connections(),
            2,
            "setSecret and testSecret log in once each"
        );
        let mut current = aws.value(&arn, "AWSCURRENT").await;
        current["port"] = serde_json::json!(db.port());
        assert!(db.logs_in(&current).await, "the new AWSCURRENT logs in");
        aws.complete(&arn, &token).await;
    }
}
