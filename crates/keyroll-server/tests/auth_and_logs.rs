//! Unsigned, badly signed, unknown-key and expired requests are refused with AWS's error
//! types; secret values never reach the logs or the metrics.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use keyroll_core::time::{Clock, ManualClock, SystemClock, Timestamp};
use keyroll_server::credentials::{AccessKey, generate_key};
use secrecy::SecretString;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at TRACE level, in JSON.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let c = Captured::default();
        let w = c.clone();
        // keyroll's own crates at TRACE (the AWS SDK client in this process is not ours).
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "keyroll_server=trace,keyroll_core=trace,keyroll_targets=trace,keyroll_store=trace",
            ))
            .with_writer(move || w.clone())
            .init();
        c
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_carry_aws_error_types() {
    logs();
    let t = start_server().await;

    // Unsigned.
    let r = reqwest::Client::new()
        .post(format!("{}/", t.url))
        .header("x-amz-target", "secretsmanager.ListSecrets")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["__type"], "MissingAuthenticationTokenException");

    // Incomplete Authorization header.
    let r = reqwest::Client::new()
        .post(format!("{}/", t.url))
        .header("x-amz-target", "secretsmanager.ListSecrets")
        .header("x-amz-date", "20260101T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKKR/20260101/us-east-1/secretsmanager/aws4_request",
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["__type"], "IncompleteSignatureException");

    // Badly signed: the right key id with the wrong secret, through the real SDK.
    let wrong = AccessKey {
        secret_access_key: SecretString::from("not-the-secret-access-key-0000000000000000"),
        ..t.key.clone()
    };
    let e = client_for(&t.url, &wrong, "us-east-1")
        .list_secrets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidSignatureException");

    // A key the server does not know.
    let stranger = generate_key("stranger").unwrap();
    let e = client_for(&t.url, &stranger, "us-east-1")
        .list_secrets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "UnrecognizedClientException");

    // The good key works.
    t.client().list_secrets().send().await.unwrap();

    let m = reqwest::get(format!("{}/metrics", t.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("keyroll_auth_failures_total{type=\"InvalidSignatureException\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_future_signatures_are_refused() {
    logs();
    // The server's clock runs 20 minutes ahead of the client's: the SDK's signature is
    // 20 minutes old when it arrives.
    let ahead = ManualClock::new(SystemClock.now().plus_millis(20 * 60 * 1000));
    let t = start_with(
        keyroll_server::Config::default(),
        Arc::new(SystemClock),
        Some(Arc::new(ahead.clone())),
    )
    .await;
    let e = t.client().list_secrets().send().await.unwrap_err();
    assert_eq!(err_code(&e), "InvalidSignatureException");
    assert!(
        err_message(&e).starts_with("Signature expired"),
        "{}",
        err_message(&e)
    );
    // 20 minutes behind: not yet current.
    ahead.set(SystemClock.now().plus_millis(-20 * 60 * 1000));
    let e = t.client().list_secrets().send().await.unwrap_err();
    assert!(err_message(&e).starts_with("Signature not yet current"));
    // Within the 15-minute window: accepted.
    ahead.set(SystemClock.now().plus_millis(10 * 60 * 1000));
    t.client().list_secrets().send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_keys_need_their_session_token() {
    logs();
    let mut temp = generate_key("temp").unwrap();
    temp.session_token = Some(SecretString::from("FwoGZXIvYXdzEXAMPLETOKEN"));
    let regions = keyroll_server::MemoryRegions::new("000000000000", Arc::new(SystemClock));
    let t = start_on(
        regions,
        keyroll_server::Config::default(),
        Arc::new(SystemClock),
        None,
        temp.clone(),
    )
    .await;
    t.client().list_secrets().send().await.unwrap();
    let without = AccessKey {
        session_token: None,
        ..temp.clone()
    };
    let e = client_for(&t.url, &without, "us-east-1")
        .list_secrets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "UnrecognizedClientException");
    let wrong = AccessKey {
        session_token: Some(SecretString::from("other")),
        ..temp
    };
    let e = client_for(&t.url, &wrong, "us-east-1")
        .list_secrets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "UnrecognizedClientException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_appear_in_logs_or_metrics() {
    let captured = logs();
    const SENTINEL: &str = "SENTINEL-8c1f2e-do-not-log";
    let dir = tempfile::tempdir().unwrap();
    let mut config = keyroll_server::Config::default();
    // A rotation function that fails: its failure is logged and recorded.
    let script = dir.path().join("fail.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat > /dev/null\necho 'rotation step failed' >&2\nexit 1\n",
    )
    .unwrap();
    config.functions.insert(
        "failing".into(),
        keyroll_server::config::FunctionConfig {
            command: vec!["sh".into(), script.display().to_string()],
            timeout_secs: 10,
            env: Default::default(),
            working_dir: None,
            ..Default::default()
        },
    );
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let c = t.client();
    let secret = format!(r#"{{"username":"app","password":"{SENTINEL}"}}"#);
    c.create_secret()
        .name("logged")
        .secret_string(&secret)
        .send()
        .await
        .unwrap();
    c.get_secret_value()
        .secret_id("logged")
        .send()
        .await
        .unwrap();
    c.put_secret_value()
        .secret_id("logged")
        .secret_string(format!("{SENTINEL}-2"))
        .send()
        .await
        .unwrap();
    c.batch_get_secret_value()
        .secret_id_list("logged")
        .send()
        .await
        .unwrap();
    // A value in the wrong place must not be echoed by the parse error either.
    let (status, _) = raw(
        &t.url,
        &t.key,
        "secretsmanager.PutSecretValue",
        &format!(r#"{{"SecretId":"logged","ClientRequestToken":"00000000-0000-0000-0000-000000000009","VersionStages":"{SENTINEL}"}}"#),
    )
    .await;
    assert_eq!(status, 400);
    let (_, e) = raw(
        &t.url,
        &t.key,
        "secretsmanager.CreateSecret",
        &format!(r#"{{"Name":"x","SecretString":{{"a":"{SENTINEL}"}},"ClientRequestToken":"00000000-0000-0000-0000-000000000009"}}"#),
    )
    .await;
    assert!(
        !e.to_string().contains(SENTINEL),
        "error echoes the value: {e}"
    );
    // Built-in rotation succeeds; the external one fails.
    c.rotate_secret()
        .secret_id("logged")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:keyroll")
        .send()
        .await
        .unwrap();
    eventually(|| async {
        let d = c.describe_secret().secret_id("logged").send().await.ok()?;
        d.last_rotated_date().map(|_| ())
    })
    .await;
    c.create_secret()
        .name("logged2")
        .secret_string(SENTINEL)
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("logged2")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:failing")
        .send()
        .await
        .unwrap();
    eventually(|| async {
        let (_, v) = raw(
            &t.url,
            &t.key,
            "secretsmanager.DescribeSecret",
            r#"{"SecretId":"logged2"}"#,
        )
        .await;
        (v["KeyrollRotationStatus"]["State"] == "Failed").then_some(())
    })
    .await;
    let m = reqwest::get(format!("{}/metrics", t.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!m.contains(SENTINEL));
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("rotation failed"), "the failure is logged");
    assert!(text.contains("rotation succeeded"));
    assert!(!text.contains(SENTINEL), "a secret value reached the logs");
    let _ = Timestamp(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_rotate_secret_uses_the_request_token_and_is_not_resumed() {
    let captured = logs();
    let t = start_with(
        keyroll_server::Config::default(),
        Arc::new(SystemClock),
        None,
    )
    .await;
    let c = t.client();
    c.create_secret()
        .name("fresh")
        .secret_string("v0")
        .send()
        .await
        .unwrap();
    let token = "f7e0c3a2-1b2c-4d5e-8f90-a1b2c3d4e5f6";
    let r = c
        .rotate_secret()
        .secret_id("fresh")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:keyroll")
        .client_request_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version_id(), Some(token));
    eventually(|| async {
        let d = c.describe_secret().secret_id("fresh").send().await.ok()?;
        let stages = d.version_ids_to_stages()?;
        (stages.get(token)? == &["AWSCURRENT".to_string()]).then_some(())
    })
    .await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let started: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "rotation started" && v["fields"]["version"] == token)
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["fields"]["resumed"], false);
}
