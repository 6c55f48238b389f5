//! `keyroll rotate` sends RotationSucceeded / RotationFailed to the webhooks of the
//! `[notify]` section of its configuration file (a real local HTTP receiver here), and never
//! a secret value; an unreachable channel does not change the rotation's outcome.

mod common;
use common::keyroll;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use keyroll_testkit::webhook::WebhookReceiver;
use serde_json::Value;

const SENTINEL: &str = "SENTINEL-cli-3b9e-never-in-a-payload";

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join("notify.toml");
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn rotate_notifies_success_and_failure_without_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookReceiver::start().unwrap();
    let url = hook.url();
    let config = write_config(
        dir.path(),
        &format!("[notify]\n[[notify.webhook]]\nname = \"ops\"\nurl = \"{url}\"\n"),
    );
    let value = format!("{{\"user\":\"app\",\"password\":\"{SENTINEL}\"}}");
    let out = keyroll(
        dir.path(),
        &[
            "secret",
            "create",
            "--name",
            "app/db",
            "--secret-string",
            &value,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = keyroll(
        dir.path(),
        &["rotate", "--secret-id", "app/db", "--config", &config, "-q"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = hook.wait_for(1, Duration::from_secs(10)).remove(0);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["event"], "RotationSucceeded");
    assert_eq!(v["secretName"], "app/db");
    assert_eq!(v["source"], "keyroll rotate");
    assert!(!body.contains(SENTINEL));

    // A secret the plain target cannot rotate: the failure is notified with its step.
    let out = keyroll(
        dir.path(),
        &[
            "secret",
            "create",
            "--name",
            "app/broken",
            "--secret-string",
            &format!("{{\"token\":\"{SENTINEL}\"}}"),
        ],
    );
    assert!(out.status.success());
    let out = keyroll(
        dir.path(),
        &[
            "rotate",
            "--secret-id",
            "app/broken",
            "--config",
            &config,
            "-q",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = hook.wait_for(2, Duration::from_secs(10)).remove(1);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["event"], "RotationFailed");
    assert_eq!(v["secretName"], "app/broken");
    assert_eq!(v["step"], "createSecret");
    assert_eq!(v["errorClass"], "InvalidSecret");
    assert!(v["errorMessage"].as_str().unwrap().contains("password"));
    assert!(!body.contains(SENTINEL));

    // --no-notify sends nothing: the next message on the channel is the one after it.
    let out = keyroll(
        dir.path(),
        &[
            "rotate",
            "--secret-id",
            "app/db",
            "--config",
            &config,
            "-q",
            "--no-notify",
        ],
    );
    assert!(out.status.success());
    let out = keyroll(
        dir.path(),
        &["rotate", "--secret-id", "app/db", "--config", &config, "-q"],
    );
    assert!(out.status.success());
    let bodies = hook.wait_for(3, Duration::from_secs(10));
    assert_eq!(
        bodies.len(),
        3,
        "one notification per notified run: {bodies:?}"
    );
    let v: Value = serde_json::from_str(&bodies[2]).unwrap();
    assert_eq!(v["event"], "RotationSucceeded");
}

#[test]
fn an_unreachable_channel_does_not_fail_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        dir.path(),
        &format!(
            "[notify]\nretry = {{ attempts = 2, initial_backoff_ms = 10, max_backoff_ms = 10 }}\n\
             [[notify.webhook]]\nurl = \"http://127.0.0.1:{port}/down\"\n"
        ),
    );
    let out = keyroll(
        dir.path(),
        &["secret", "create", "--name", "t", "--secret-string", "v0"],
    );
    assert!(out.status.success());
    let out = keyroll(
        dir.path(),
        &["rotate", "--secret-id", "t", "--config", &config, "-q"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = write_config(
        dir.path(),
        "[notify]\n[[notify.webhook]]\nurl = \"ftp://x\"\n",
    );
    let out = keyroll(
        dir.path(),
        &["rotate", "--secret-id", "t", "--config", &bad, "-q"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad configuration is a usage error, refused before rotating"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhook-1"));
}
