//! The server's edges under hostile clients: slow and stalled connections, bytes buffered
//! before authentication, headers that must be signed, /metrics exposure, TLS, the data
//! directory's file modes and region namespaces.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use keyroll_core::time::{Clock, SystemClock};
use keyroll_server::credentials::AccessKey;
use keyroll_server::{Config, Regions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Raises this process's open-file limit to what 1,100 client and 1,100 server sockets need.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= want,
        "the open-file limit ({}) is too low for this test; raise ulimit -n",
        lim.rlim_cur
    );
}

/// This process's resident set size in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The request head of a hostile client holding a valid access key id: it looks signed (so
/// that the server reads its body) and announces a body it then sends very slowly.
fn slow_head(addr: &str, key: &AccessKey, content_length: usize) -> String {
    let now = SystemClock.now().to_datetime();
    let amz = now.format("%Y%m%dT%H%M%SZ").to_string();
    format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: secretsmanager.ListSecrets\r\nX-Amz-Date: {amz}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={}/{}/us-east-1/secretsmanager/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}\r\n\
         Content-Length: {content_length}\r\n\r\n",
        key.access_key_id,
        &amz[..8],
        "0".repeat(64)
    )
}

/// Keeps the peak RSS seen while it runs.
struct RssWatch {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
            }
        });
        RssWatch { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed).max(rss_bytes())
    }
}

/// 1,100 connections send a request head and then one body byte per second; a signed
/// GetSecretValue from another client must succeed within the request deadline plus one
/// second, with RSS under 100 MB throughout.
async fn slow_clients_do_not_starve(mut config: Config) {
    raise_fd_limit(4096);
    config.request_deadline_secs = 2;
    let deadline = Duration::from_secs(2);
    let rss = RssWatch::start();
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let c = t.client();
    c.create_secret()
        .name("db")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let addr = t.server.addr.to_string();
    let head = slow_head(&addr, &t.key, 1000);
    let mut slow = Vec::with_capacity(1100);
    for _ in 0..1100 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"{").await.unwrap();
        slow.push(s);
    }
    // One more byte per second on every connection still open.
    let dribble = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            // Dropped only once the server has closed it: a would-block (tokio reports one
            // whenever it has not yet seen the socket writable) must not close it from here,
            // or the server would count it as a client that left rather than one it closed.
            slow.retain(|s| match s.try_write(b" ") {
                Ok(n) => n > 0,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            });
        }
    });
    let t0 = Instant::now();
    let v = c.get_secret_value().secret_id("db").send().await.unwrap();
    let took = t0.elapsed();
    assert_eq!(v.secret_string(), Some("v"));
    assert!(
        took < deadline + Duration::from_secs(1),
        "the signed request took {took:?}"
    );
    // Every slow connection is closed within the deadline of its acceptance (plus slack),
    // whether to make room or at the deadline.
    let app = t.app().clone();
    eventually(|| async {
        (app.metrics.connections_open.load(Ordering::Relaxed) <= 2).then_some(())
    })
    .await;
    let closed = app.metrics.connections_evicted.load(Ordering::Relaxed)
        + app.metrics.connections_timed_out.load(Ordering::Relaxed);
    assert!(closed >= 1100, "closed {closed}");
    // The server still answers.
    c.get_secret_value().secret_id("db").send().await.unwrap();
    dribble.abort();
    let peak = rss.stop();
    eprintln!(
        "slow clients: signed GetSecretValue in {took:?}; peak RSS {:.1} MB",
        peak as f64 / 1e6
    );
    assert!(peak < 100 * 1024 * 1024, "peak RSS {peak}");
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_signed_requests() {
    slow_clients_do_not_starve(Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_at_max_connections_make_room() {
    // More connections may be pending than the server holds: at max_connections the oldest
    // unauthenticated connection is closed for each new one.
    let config = Config {
        max_pending_connections: 5000,
        ..Config::default()
    };
    slow_clients_do_not_starve(config).await;
}

/// Sends `head` (and `body`) on a fresh connection and reads until the server closes it.
async fn exchange(addr: &str, head: &str, body: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    (String::from_utf8_lossy(&out).into_owned(), t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_at_the_request_deadline() {
    let config = Config {
        request_deadline_secs: 1,
        ..Config::default()
    };
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let addr = t.server.addr.to_string();
    let (resp, took) = exchange(&addr, &slow_head(&addr, &t.key, 100), b"{").await;
    assert!(resp.is_empty() || !resp.contains(" 200 "), "{resp}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(
        t.app()
            .metrics
            .connections_timed_out
            .load(Ordering::Relaxed),
        1
    );
    // Headers never finished: the same deadline.
    let (_, took) = exchange(&addr, "POST / HTTP/1.1\r\nHost: x\r\n", b"").await;
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused() {
    let t = start_server().await;
    let addr = t.server.addr.to_string();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(2 * keyroll_server::server::MAX_HEAD_BYTES)
    );
    let (resp, took) = exchange(&addr, &head, b"").await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_authenticate_are_refused_before_their_body() {
    let t = start_server().await;
    let addr = t.server.addr.to_string();
    // No Authorization header; a body announced but never sent.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: secretsmanager.ListSecrets\r\nContent-Length: 100000\r\n\r\n"
    );
    let (resp, took) = exchange(&addr, &head, b"").await;
    assert!(
        resp.contains("MissingAuthenticationTokenException"),
        "{resp}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    // An unknown access key: the same, without waiting for the body.
    let stranger = AccessKey {
        access_key_id: "AKIAUNKNOWN000000000".into(),
        ..t.key.clone()
    };
    let (resp, _) = exchange(&addr, &slow_head(&addr, &stranger, 100000), b"").await;
    assert!(resp.contains("UnrecognizedClientException"), "{resp}");
    // The STS path too: a request without a signature is answered and its connection closed
    // at once, not left open, unauthenticated, until the request deadline.
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let (resp, took) = exchange(&addr, &head, body.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 4"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_buffered_before_authentication_are_capped() {
    let config = Config {
        max_body_bytes: 4096,
        max_unauthenticated_bytes: 4096,
        ..Config::default()
    };
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let addr = t.server.addr.to_string();
    // One stalled request holds 3,000 of the 4,096 bytes...
    let mut hog = TcpStream::connect(&addr).await.unwrap();
    hog.write_all(slow_head(&addr, &t.key, 4000).as_bytes())
        .await
        .unwrap();
    hog.write_all(&[b' '; 3000]).await.unwrap();
    // ...(once the server has read them)...
    let app = t.app().clone();
    let url = t.url.clone();
    let key = t.key.clone();
    eventually(|| async {
        let (status, _) = raw(&url, &key, "secretsmanager.ListSecrets", &" ".repeat(1500)).await;
        (status == 503).then_some(())
    })
    .await;
    // ...so another unauthenticated 1,500-byte body is refused (503), while a small signed
    // request still fits.
    let (status, body) = raw(
        &t.url,
        &t.key,
        "secretsmanager.ListSecrets",
        &" ".repeat(1500),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("max_unauthenticated_bytes"),
        "{body}"
    );
    let (status, _) = raw(&t.url, &t.key, "secretsmanager.ListSecrets", "{}").await;
    assert_eq!(status, 200);
    // Released when the stalled request goes away.
    drop(hog);
    eventually(|| async {
        let (status, _) = raw(&url, &key, "secretsmanager.ListSecrets", &" ".repeat(1500)).await;
        (status != 503).then_some(())
    })
    .await;
    assert!(app.metrics.connections_total.load(Ordering::Relaxed) >= 3);
}

/// A raw request signed over `signed` headers, then sent with `extra` headers as well.
async fn send_with_unsigned(
    url: &str,
    key: &AccessKey,
    signed: &[(&str, &str)],
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let host = url.trim_start_matches("http://").to_string();
    let auth = keyroll_server::sigv4::sign(
        "POST",
        &host,
        "/",
        signed,
        body.as_bytes(),
        key,
        "us-east-1",
        SystemClock.now(),
    );
    let mut req = reqwest::Client::new()
        .post(format!("{url}/"))
        .body(body.to_string());
    for (k, v) in signed.iter().chain(extra) {
        req = req.header(*k, *v);
    }
    for (k, v) in auth {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_target_and_content_type_are_refused() {
    let t = start_server().await;
    let c = t.client();
    c.create_secret()
        .name("s")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let body = r#"{"SecretId":"s","ForceDeleteWithoutRecovery":true}"#;
    // An otherwise valid signature that does not cover X-Amz-Target.
    let (status, v) = send_with_unsigned(
        &t.url,
        &t.key,
        &[("content-type", "application/x-amz-json-1.1")],
        &[("x-amz-target", "secretsmanager.DeleteSecret")],
        body,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["__type"], "InvalidSignatureException", "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("x-amz-target"),
        "{v}"
    );
    // Nor Content-Type.
    let (status, v) = send_with_unsigned(
        &t.url,
        &t.key,
        &[("x-amz-target", "secretsmanager.DeleteSecret")],
        &[("content-type", "application/x-amz-json-1.1")],
        body,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["__type"], "InvalidSignatureException", "{v}");
    // The secret is still there; SDK clients (which sign them) work.
    assert!(c.describe_secret().secret_id("s").send().await.is_ok());
}

async fn get(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_a_token_and_secret_names_opt_in() {
    let token = "0123456789abcdef0123";
    let config = Config {
        metrics_token: Some(token.to_string().into()),
        ..Config::default()
    };
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let c = t.client();
    c.create_secret()
        .name("prod/payments-db")
        .secret_string(r#"{"username":"u","password":"old-password"}"#)
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("prod/payments-db")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:keyroll")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let url = format!("{}/metrics", t.url);
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("0123456789abcdef0124")).await.0, 401);
    let (status, m) = get(&url, Some(token)).await;
    assert_eq!(status, 200);
    assert!(m.contains("keyroll_secrets{region=\"us-east-1\"} 1"), "{m}");
    assert!(
        m.contains("keyroll_oldest_rotation_seconds{region=\"us-east-1\"}"),
        "{m}"
    );
    assert!(!m.contains("payments-db"), "{m}");
    // /health stays open.
    assert_eq!(get(&format!("{}/health", t.url), None).await.0, 200);

    // With metrics_secret_labels, per-secret gauges name the secret.
    let config = Config {
        metrics_secret_labels: true,
        ..Config::default()
    };
    let t2 = start_with(config, Arc::new(SystemClock), None).await;
    t2.client()
        .create_secret()
        .name("prod/payments-db")
        .secret_string(r#"{"username":"u","password":"old-password"}"#)
        .send()
        .await
        .unwrap();
    t2.client()
        .rotate_secret()
        .secret_id("prod/payments-db")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:keyroll")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (_, m) = get(&format!("{}/metrics", t2.url), None).await;
    assert!(
        m.contains(
            "keyroll_secret_rotation_failing{region=\"us-east-1\",secret=\"prod/payments-db\"}"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = probe.local_addr().unwrap();
    drop(probe);
    std::fs::write(
        dir.path().join("keyroll.toml"),
        format!("metrics_listen = \"{metrics_addr}\"\n[audit]\nenabled = false\n"),
    )
    .unwrap();
    let started = keyroll_server::launch::launch(keyroll_server::launch::LaunchOptions {
        data_dir: dir.path().to_path_buf(),
        listen: Some("127.0.0.1:0".into()),
        config: None,
        in_memory: true,
    })
    .await
    .unwrap();
    let api = started.server.url();
    assert_eq!(get(&format!("{api}/metrics"), None).await.0, 404);
    let (status, m) = get(&format!("http://{metrics_addr}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(m.contains("keyroll_requests_total"), "{m}");
    assert_eq!(
        get(&format!("http://{metrics_addr}/health"), None).await.0,
        404
    );
    started.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_sets_secure_transport() {
    let dir = tempfile::tempdir().unwrap();
    let ca = keyroll_testkit::tls::TestCa::generate().unwrap();
    let files = ca.write(dir.path(), None).unwrap();
    // A user who may act only over TLS.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
    let config_text = |tls: bool| {
        let mut c = String::new();
        if tls {
            c.push_str(&format!(
                "tls_cert = {:?}\ntls_key = {:?}\n",
                files.server_cert, files.server_key
            ));
        }
        c.push_str(&format!(
            "[audit]\nenabled = false\n[[access_keys]]\nname = \"app\"\n\
             access_key_id = \"AKIAEDGESTEST0000001\"\nsecret_access_key = \"edges-secret\"\n\
             policy = '{policy}'\n"
        ));
        c
    };
    let key = AccessKey {
        access_key_id: "AKIAEDGESTEST0000001".into(),
        secret_access_key: "edges-secret".to_string().into(),
        session_token: None,
        name: "app".into(),
    };
    let ca_cert = reqwest::Certificate::from_pem(ca.ca_cert_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca_cert)
        .build()
        .unwrap();
    for tls in [true, false] {
        let data = dir.path().join(if tls { "tls" } else { "plain" });
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("keyroll.toml"), config_text(tls)).unwrap();
        let started = keyroll_server::launch::launch(keyroll_server::launch::LaunchOptions {
            data_dir: data,
            listen: Some("127.0.0.1:0".into()),
            config: None,
            in_memory: true,
        })
        .await
        .unwrap();
        let url = started.server.url();
        assert_eq!(url.starts_with("https://"), tls, "{url}");
        let host = url.split("://").nth(1).unwrap().to_string();
        let call = |target: &'static str, body: String| {
            let (client, host, url, key) = (client.clone(), host.clone(), url.clone(), key.clone());
            async move {
                let hs = [
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", target),
                ];
                let auth = keyroll_server::sigv4::sign(
                    "POST",
                    &host,
                    "/",
                    &hs,
                    body.as_bytes(),
                    &key,
                    "us-east-1",
                    SystemClock.now(),
                );
                let mut req = client.post(format!("{url}/")).body(body);
                for (k, v) in hs.iter() {
                    req = req.header(*k, *v);
                }
                for (k, v) in auth {
                    req = req.header(k, v);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let v: serde_json::Value = resp.json().await.unwrap();
                (status, v)
            }
        };
        // The largest SecretString AWS allows, in and out.
        let value = "v".repeat(65536);
        let create = serde_json::json!({
            "Name": "tls-only",
            "SecretString": value,
            "ClientRequestToken": "00000000-0000-4000-8000-000000000001",
        });
        let (status, v) = call("secretsmanager.CreateSecret", create.to_string()).await;
        if tls {
            assert_eq!(status, 200, "{v}");
            let (status, v) = call(
                "secretsmanager.GetSecretValue",
                r#"{"SecretId":"tls-only"}"#.to_string(),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["SecretString"].as_str(), Some(value.as_str()));
        } else {
            assert_eq!(v["__type"], "AccessDeniedException", "{v}");
        }
        started.server.shutdown().await;
    }
    // A missing key file is a clear error.
    assert!(
        keyroll_server::launch::tls_config(&files.server_cert, &dir.path().join("absent.key"))
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = keyroll_server::launch::launch(keyroll_server::launch::LaunchOptions {
        data_dir: data.clone(),
        listen: Some("127.0.0.1:0".into()),
        config: None,
        in_memory: false,
    })
    .await
    .unwrap();
    let (key, _) = keyroll_server::credentials::admin_key(&data).unwrap();
    let c = client_for(&started.server.url(), &key, "us-east-1");
    c.create_secret()
        .name("private")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    c.get_secret_value()
        .secret_id("private")
        .send()
        .await
        .unwrap();
    let mut files = Vec::new();
    let mut dirs = vec![data.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                assert_eq!(m.permissions().mode() & 0o077, 0, "{}", e.path().display());
                dirs.push(e.path());
            } else {
                files.push((e.path(), m.permissions().mode() & 0o777));
            }
        }
    }
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["keyroll.db", "keyroll.db-wal", "keyroll.db-shm"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for (p, mode) in &files {
        assert_eq!(*mode, 0o600, "{} is {mode:o}", p.display());
    }
    started.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_aws_region_names_open_namespaces() {
    let t = start_server().await;
    let e = t
        .client_in("zz-attacker-1")
        .create_secret()
        .name("x")
        .secret_string("v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "InvalidParameterException");
    assert!(err_message(&e).contains("us-east-1"), "{}", err_message(&e));
    t.client_in("ap-southeast-2")
        .create_secret()
        .name("x")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    // keyroll's own namespaces (`_…`, STS sessions) aside.
    let known: Vec<String> = t
        .app()
        .store
        .regions()
        .known()
        .unwrap()
        .into_iter()
        .filter(|r| !r.starts_with('_'))
        .collect();
    assert_eq!(known, vec!["ap-southeast-2".to_string()]);
}

/// A signed request as HTTP/1.1 text (keep-alive).
fn signed_request(addr: &str, key: &AccessKey, target: &str, body: &str) -> String {
    let hs = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let auth = keyroll_server::sigv4::sign(
        "POST",
        addr,
        "/",
        &hs,
        body.as_bytes(),
        key,
        "us-east-1",
        SystemClock.now(),
    );
    let mut text = format!("POST / HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in hs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(auth)
    {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text
}

/// Reads one response (head and Content-Length body) from `s`.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a full response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_bounded_but_strangers_make_room() {
    let config = Config {
        max_connections: 1,
        ..Config::default()
    };
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let addr = t.server.addr.to_string();
    // An idle connection that never authenticated is closed to make room for a new one.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let (status, _) = get(&format!("{}/health", t.url), None).await;
    assert_eq!(status, 200);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    // An authenticated keep-alive connection keeps the only slot...
    let mut authed = TcpStream::connect(&addr).await.unwrap();
    authed
        .write_all(signed_request(&addr, &t.key, "secretsmanager.ListSecrets", "{}").as_bytes())
        .await
        .unwrap();
    let resp = read_response(&mut authed).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        impatient
            .get(format!("{}/health", t.url))
            .send()
            .await
            .is_err(),
        "a second connection was served while an authenticated one held the only slot"
    );
    // ...until it closes.
    drop(authed);
    let (status, _) = get(&format!("{}/health", t.url), None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_on_an_authenticated_connection_times_out() {
    let config = Config {
        request_deadline_secs: 1,
        ..Config::default()
    };
    let t = start_with(config, Arc::new(SystemClock), None).await;
    let addr = t.server.addr.to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(signed_request(&addr, &t.key, "secretsmanager.ListSecrets", "{}").as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // Authenticated, the connection is no longer closed at its first-request deadline; a
    // later request whose body is too slow is answered 408.
    s.write_all(slow_head(&addr, &t.key, 100).as_bytes())
        .await
        .unwrap();
    s.write_all(b"{").await.unwrap();
    let t0 = Instant::now();
    let resp = read_response(&mut s).await;
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
    assert!(resp.contains("request_deadline_secs"), "{resp}");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_and_responses_still_pass() {
    // Request heads are capped at 64 KiB; bodies and responses are not affected by it.
    let t = start_server().await;
    let c = t.client();
    let value = "x".repeat(65536);
    for i in 0..8 {
        c.create_secret()
            .name(format!("big-{i}"))
            .secret_string(&value)
            .send()
            .await
            .unwrap();
    }
    let r = c
        .batch_get_secret_value()
        .set_secret_id_list(Some((0..8).map(|i| format!("big-{i}")).collect()))
        .send()
        .await
        .unwrap();
    let values = r.secret_values();
    assert_eq!(values.len(), 8);
    assert!(
        values
            .iter()
            .all(|v| v.secret_string() == Some(value.as_str()))
    );
}
