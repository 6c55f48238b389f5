//! The rotation function's notifications, configured the way a Lambda is (the
//! `KEYROLL_NOTIFY_*` variables): a failed step sends RotationFailed, a successful
//! finishSecret sends RotationSucceeded, and no secret value reaches a payload.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{Aws, event};
use keyroll_core::Step;
use keyroll_core::testing::FlakyTarget;
use keyroll_lambda::{Function, Settings};
use keyroll_notify::{Notifier, NotifyConfig};
use serde_json::{Value, json};

const SENTINEL: &str = "SENTINEL-lambda-notify-91ab";

/// A local HTTP receiver that answers 204 and keeps each request body.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            keep.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_step_and_finished_rotation_are_notified() {
    let (url, bodies) = receiver();
    let config = NotifyConfig::default()
        .with_vars(|k| (k == "KEYROLL_NOTIFY_WEBHOOK_URL").then(|| url.clone()))
        .unwrap();
    let notifier = Notifier::from_config(&config).unwrap();
    assert!(notifier.is_enabled());

    let aws = Aws::start();
    let arn = aws
        .create_secret("app/token", &json!({ "password": SENTINEL }))
        .await;
    let function = Function::with_store(Settings::default(), aws.store())
        .with_metrics_sink(|_| {})
        .with_notifier(notifier);
    let token = aws.rotate_secret(&arn).await;

    function
        .invoke(&event(Step::Create, &arn, &token))
        .await
        .unwrap();
    let target = FlakyTarget::new(function.target());
    target.fail_before(Step::Set, 1);
    let err = function
        .invoke_with_target(&event(Step::Set, &arn, &token), &target)
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "Rejected");
    {
        let got = bodies.lock().unwrap();
        assert_eq!(got.len(), 1, "one event for the failed step: {got:?}");
        let e: Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(e["event"], "RotationFailed");
        assert_eq!(e["secretName"], "app/token");
        assert_eq!(e["step"], "setSecret");
    }
    // The service retries: the rest succeeds; only finishSecret reports success.
    for step in [Step::Set, Step::Test, Step::Finish] {
        function.invoke(&event(step, &arn, &token)).await.unwrap();
    }
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let e: Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(e["event"], "RotationSucceeded");
    assert_eq!(e["versionId"], token.as_str());
    let new_value = aws.value(&arn, "AWSCURRENT").await;
    let new_password = new_value["password"].as_str().unwrap();
    for b in &got {
        assert!(
            !b.contains(SENTINEL) && !b.contains(new_password),
            "secret in payload: {b}"
        );
    }
}
