//! The real `bootstrap` binary, run as Lambda runs it: a local Lambda Runtime API hands it
//! the four step events of a PostgreSQL rotation (moto as Secrets Manager); its answers,
//! diagnostics, JSON logs and EMF metrics are checked, and no password may appear in
//! anything it wrote.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Aws, Db, event};
use keyroll_core::Step;
use keyroll_testkit::lambda_runtime::{Outcome, RuntimeApi};
use serde_json::Value;

const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

struct Bootstrap {
    child: Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Bootstrap {
    fn spawn(api: &RuntimeApi, aws: Option<&Aws>, extra: &[(&str, &str)]) -> Bootstrap {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap());
        for (k, v) in api.function_env("keyroll-rotation") {
            cmd.env(k, v);
        }
        if let Some(aws) = aws {
            for (k, v) in aws.moto.aws_env() {
                cmd.env(k, v);
            }
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Bootstrap {
            child: cmd.spawn().expect("spawn bootstrap"),
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Waits (with a deadline) for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn output(&mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_rotates_a_postgres_secret_through_the_runtime_api() {
    let db = Db::start("postgres");
    let aws = Aws::start();
    let initial = "Sentinel-Initial-Pw-7f3a";
    db.create_user("app", initial).await;
    let arn = aws
        .create_secret("prod/app", &db.secret("app", initial))
        .await;
    let api = RuntimeApi::start().unwrap();
    // Our crates at their most verbose: still no secret may be written.
    let mut boot = Bootstrap::spawn(
        &api,
        Some(&aws),
        &[(
            "KEYROLL_LOG",
            "warn,keyroll_lambda=trace,keyroll_core=trace,keyroll_targets=trace,keyroll_store=trace",
        )],
    );
    assert!(api.wait_first_next(Duration::from_secs(10)).is_some());

    let token = aws.rotate_secret(&arn).await;
    for step in Step::ALL {
        let mut e = event(step, &arn, &token);
        e["RotationToken"] = Value::String("0123456789abcdef0123456789abcdef".into());
        let outcome =
            tokio::task::block_in_place(|| api.invoke(&e.to_string(), INVOKE_TIMEOUT)).unwrap();
        assert_eq!(outcome, Outcome::Response("null".into()), "{step}");
    }
    let current = aws.value(&arn, "AWSCURRENT").await;
    assert!(db.logs_in(&current).await, "the new AWSCURRENT logs in");
    assert!(!db.logs_in(&db.secret("app", initial)).await);
    let new_password = current["password"].as_str().unwrap().to_string();

    // Diagnostics with stable error types.
    let bad = api
        .invoke(
            r#"{"Step":"dropSecret","SecretId":"x","ClientRequestToken":"y"}"#,
            INVOKE_TIMEOUT,
        )
        .unwrap();
    assert_eq!(bad.error_type(), Some("InvalidEvent"), "{bad:?}");
    let not_pending = api
        .invoke(
            &event(Step::Set, &arn, "00000000-0000-4000-8000-000000000000").to_string(),
            INVOKE_TIMEOUT,
        )
        .unwrap();
    assert_eq!(not_pending.error_type(), Some("InvalidRotationState"));
    let missing = api
        .invoke(
            &event(Step::Create, "no/such/secret", &token).to_string(),
            INVOKE_TIMEOUT,
        )
        .unwrap();
    assert_eq!(missing.error_type(), Some("StoreError"), "{missing:?}");

    // The daily report, as the EventBridge schedule sends it.
    let report = api
        .invoke(
            &serde_json::json!({"keyroll": "report", "secretIds": [arn]}).to_string(),
            INVOKE_TIMEOUT,
        )
        .unwrap();
    let Outcome::Response(body) = &report else {
        panic!("the report failed: {report:?}");
    };
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["secrets"][0]["SecretName"], "prod/app", "{body}");

    let (stdout, stderr) = boot.output();
    // Every stdout line is JSON: log records and EMF documents.
    let docs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let emf: Vec<&Value> = docs.iter().filter(|d| d.get("_aws").is_some()).collect();
    assert_eq!(
        emf.len(),
        7,
        "one EMF record per event that named a valid step, and one for the report"
    );
    for (d, step) in emf.iter().zip(Step::ALL) {
        assert_eq!(d["Step"], step.as_str());
        assert_eq!(d["SecretName"], "prod/app", "{d}");
        let dims = &d["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
        assert!(
            dims.as_array()
                .unwrap()
                .contains(&serde_json::json!(["SecretName"])),
            "{dims}"
        );
        assert_eq!(d["StepSucceeded"], 1);
        assert_eq!(d["Target"], "postgres");
        assert!(d["StepDuration"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(emf[3]["RotationSucceeded"], 1);
    let daily = emf[6];
    assert_eq!(daily["SecretName"], "prod/app", "{daily}");
    assert_eq!(
        daily["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["SecretName"]])
    );
    let days = daily["DaysSinceLastRotation"].as_f64().unwrap();
    assert!((0.0..0.01).contains(&days), "just rotated: {days}");
    assert_eq!(daily["RotationPending"], 0);
    assert!(
        docs.iter()
            .any(|d| d["message"] == "rotation step succeeded" && d["step"] == "finishSecret"),
        "JSON log records name the step"
    );
    for secret in [initial, new_password.as_str()] {
        assert!(!stdout.contains(secret), "a password is in stdout");
        assert!(!stderr.contains(secret), "a password is in stderr");
    }
    for o in [&bad, &not_pending, &missing] {
        assert!(!format!("{o:?}").contains(&new_password));
    }
}

#[test]
fn bad_settings_are_reported_to_init_error() {
    let api = RuntimeApi::start().unwrap();
    let mut boot = Bootstrap::spawn(&api, None, &[("PASSWORD_LENGTH", "0")]);
    let e = api
        .wait_init_error(Duration::from_secs(10))
        .expect("an /init/error report");
    assert_eq!(e.error_type, "InvalidConfiguration");
    assert!(e.error_message.contains("PASSWORD_LENGTH"), "{e:?}");
    let status = boot
        .wait_exit(Duration::from_secs(10))
        .expect("bootstrap exits");
    assert!(!status.success());
    assert_eq!(api.next_requests(), 0, "no work is asked for");
}

#[test]
fn outside_lambda_it_says_so_instead_of_panicking() {
    let out = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
