//! `keyroll serve` notifies: a rotation it runs (here started by `RotateSecret`) sends
//! RotationSucceeded or RotationFailed to the configured channels, without secret values.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use common::*;
use keyroll_core::time::SystemClock;
use keyroll_server::Config;
use keyroll_testkit::webhook::WebhookReceiver;
use serde_json::Value;

const KEYROLL_FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:keyroll";
const SENTINEL: &str = "SENTINEL-serve-notify-5e1d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_run_by_the_server_are_notified() {
    let hook = WebhookReceiver::start().unwrap();
    let url = hook.url().to_string();
    let notify = keyroll_notify::NotifyConfig::default()
        .with_vars(|k| (k == "KEYROLL_NOTIFY_WEBHOOK_URL").then(|| url.clone()))
        .unwrap();
    let mut config = Config {
        notify,
        ..Config::default()
    };
    // Unreachable database: fail fast.
    config.targets.connect_timeout_secs = Some(1);
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let c = t.client();

    c.create_secret()
        .name("app/token")
        .secret_string(format!(r#"{{"password":"{SENTINEL}"}}"#))
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("app/token")
        .rotation_lambda_arn(KEYROLL_FN)
        .send()
        .await
        .unwrap();
    let ok = eventually(|| async {
        hook.bodies()
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .find(|e| e["secretName"] == "app/token")
    })
    .await;
    assert_eq!(ok["event"], "RotationSucceeded");
    assert_eq!(ok["source"], "keyroll serve");

    // A closed port on loopback: setSecret cannot reach the database.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.create_secret()
        .name("db/app")
        .secret_string(format!(
            r#"{{"engine":"postgres","host":"127.0.0.1","port":{closed},"username":"app","password":"{SENTINEL}","ssl":false}}"#
        ))
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("db/app")
        .rotation_lambda_arn(KEYROLL_FN)
        .send()
        .await
        .unwrap();
    let failed = eventually(|| async {
        hook.bodies()
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .find(|e| e["secretName"] == "db/app")
    })
    .await;
    assert_eq!(failed["event"], "RotationFailed");
    assert_eq!(failed["step"], "setSecret");
    assert_eq!(failed["errorClass"], "Unreachable");

    for body in hook.bodies() {
        assert!(
            !body.contains(SENTINEL),
            "secret value in a notification: {body}"
        );
    }
    let metrics = reqwest_free_get(&t.url, "/metrics").await;
    assert!(metrics.contains("keyroll_notifications_total"), "{metrics}");
}

/// GET on the server without a client library (the metrics page needs no signature).
async fn reqwest_free_get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://").to_string();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap()
}
