//! Issue 12's attack through `keyroll serve`: a caller with nothing but a valid access key
//! stores an HTTP-engine secret whose rotate request fetches a loopback URL, then asks for
//! `RotateSecret` with keyroll's built-in function. Without `[targets.http]` allowing it,
//! the rotation fails at createSecret with an error naming the setting, the listener on
//! 127.0.0.1 hears nothing and `AWSPENDING` holds no value. With the operator's allow-list,
//! the same kind of secret rotates.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEYROLL_FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:keyroll";

/// A tiny API on 127.0.0.1: `POST /rotate` issues `new-key`, `GET /me` answers 200 for
/// `Bearer new-key`, `GET /creds` answers what a metadata service would. Counts
/// connections.
async fn api() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let (status, body) = if head.starts_with("post /rotate ") {
                    (200, r#"{"key":"new-key"}"#)
                } else if head.starts_with("get /me ") && head.contains("bearer new-key") {
                    (200, "{}")
                } else if head.starts_with("get /creds ") {
                    (200, r#"{"SecretAccessKey":"HOST-CREDENTIALS"}"#)
                } else {
                    (401, "{}")
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, count)
}

fn attack(url: &str) -> String {
    serde_json::json!({
        "engine": "http",
        "apiKey": "old-key",
        "rotation": {
            "rotate": {"method": "GET", "url": format!("{url}/creds"),
                       "responseKeyPointer": "/SecretAccessKey"},
            "test": {"method": "GET", "url": format!("{url}/me"),
                     "headers": {"Authorization": "Bearer {{pending}}"}}
        }
    })
    .to_string()
}

fn honest(url: &str) -> String {
    serde_json::json!({
        "engine": "http",
        "apiKey": "old-key",
        "rotation": {
            "rotate": {"method": "POST", "url": format!("{url}/rotate"),
                       "responseKeyPointer": "/key"},
            "test": {"method": "GET", "url": format!("{url}/me"),
                     "headers": {"Authorization": "Bearer {{pending}}"}}
        }
    })
    .to_string()
}

async fn status(t: &TestServer, id: &str) -> serde_json::Value {
    eventually(|| async {
        let (_, v) = raw(
            &t.url,
            &t.key,
            "secretsmanager.DescribeSecret",
            &format!(r#"{{"SecretId":"{id}"}}"#),
        )
        .await;
        let state = v["KeyrollRotationStatus"]["State"].as_str()?.to_string();
        (state == "Failed" || v.get("LastRotatedDate").is_some()).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_cannot_point_the_server_at_loopback() {
    let (port, connections) = api().await;
    let t = start_server().await;
    let c = t.client();
    for (name, url) in [
        ("via-ip", format!("http://127.0.0.1:{port}")),
        ("via-name", format!("http://localhost:{port}")),
    ] {
        c.create_secret()
            .name(name)
            .secret_string(attack(&url))
            .send()
            .await
            .unwrap();
        c.rotate_secret()
            .secret_id(name)
            .rotation_lambda_arn(KEYROLL_FN)
            .send()
            .await
            .unwrap();
        let v = status(&t, name).await;
        assert_eq!(v["KeyrollRotationStatus"]["State"], "Failed", "{v}");
        assert_eq!(v["KeyrollRotationStatus"]["FailedStep"], "createSecret");
        let msg = v["KeyrollRotationStatus"]["Message"].as_str().unwrap();
        assert!(
            msg.contains("[targets.http] allow_hosts") && msg.contains("is not allowed"),
            "{msg}"
        );
        let e = c
            .get_secret_value()
            .secret_id(name)
            .version_stage("AWSPENDING")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err_code(&e), "ResourceNotFoundException");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "nothing reached 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_rotates() {
    let (port, connections) = api().await;
    let config: keyroll_server::Config = keyroll_server::Config::from_toml(
        "[targets.http]\nallow_hosts = [\"localhost\"]\nallow_networks = [\"127.0.0.0/8\", \"::1\"]\n",
        std::path::Path::new("keyroll.toml"),
    )
    .unwrap();
    let t = start_with(config, Arc::new(keyroll_core::time::SystemClock), None).await;
    let c = t.client();
    c.create_secret()
        .name("api")
        .secret_string(honest(&format!("http://localhost:{port}")))
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("api")
        .rotation_lambda_arn(KEYROLL_FN)
        .send()
        .await
        .unwrap();
    let v = status(&t, "api").await;
    assert!(v.get("LastRotatedDate").is_some(), "{v}");
    let cur = c.get_secret_value().secret_id("api").send().await.unwrap();
    let cur: serde_json::Value = serde_json::from_str(cur.secret_string().unwrap()).unwrap();
    assert_eq!(cur["apiKey"], "new-key");
    assert!(connections.load(Ordering::SeqCst) >= 2);
}
