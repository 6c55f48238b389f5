//! Target `http` against a real local HTTP API (hyper on 127.0.0.1, a free port) that issues,
//! accepts and revokes keys: both styles (rotate, set), a failing test request, crashes in
//! the windows each style has, and "never fewer than one working key" checked after every
//! step.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keyroll_core::api::{CreateSecretRequest, GetSecretValueRequest, SecretIdRequest};
use keyroll_core::engine::{RotateOptions, Silent, rotate, run_step};
use keyroll_core::memory::{MemoryBackend, memory_service};
use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Step};
use keyroll_core::ports::{RotationStore, SecretsApi, Target};
use keyroll_core::service::SecretsService;
use keyroll_core::testing::FlakyTarget;
use keyroll_targets::egress::{Lookup, LookupFuture};
use keyroll_targets::http::HttpTarget;
use keyroll_targets::{TargetConfig, TargetPolicy};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// How the fake API behaves.
#[derive(Default, Clone)]
struct Mode {
    /// Rotating revokes the calling key at once.
    revoke_on_rotate: bool,
    /// `Idempotency-Key` on rotate returns the first answer again.
    idempotency: bool,
    /// The set endpoint answers 204 but does not register the key (a broken API).
    set_is_a_no_op: bool,
    /// The next this many revocations answer 503.
    revoke_failures: u32,
}

#[derive(Default)]
struct Api {
    mode: Mode,
    /// key → id
    keys: BTreeMap<String, String>,
    next_id: u32,
    idempotent: HashMap<String, Value>,
    rotate_calls: u32,
    set_calls: u32,
    requests: Vec<String>,
}

impl Api {
    fn issue(&mut self, key: String) -> String {
        self.next_id += 1;
        let id = format!("id-{}", self.next_id);
        self.keys.insert(key, id.clone());
        id
    }
    fn valid(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }
}

struct Server {
    url: String,
    port: u16,
    api: Arc<Mutex<Api>>,
    /// TCP connections accepted.
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bearer(req: &hyper::http::request::Parts) -> String {
    req.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

fn respond(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn handle(
    api: &Mutex<Api>,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut a = api.lock().unwrap();
    let auth = bearer(&parts);
    a.requests
        .push(format!("{} {}", parts.method, parts.uri.path()));
    let path = parts.uri.path().to_string();
    match (parts.method.as_str(), path.as_str()) {
        ("GET", "/v1/me") => {
            if a.valid(&auth) {
                respond(200, json!({"id": a.keys[&auth]}))
            } else {
                respond(401, json!({"error": format!("unknown key {auth}")}))
            }
        }
        ("POST", "/v1/keys/rotate") => {
            a.rotate_calls += 1;
            if !a.valid(&auth) {
                return respond(401, json!({"error": "bad key"}));
            }
            let idem = parts
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if a.mode.idempotency
                && let Some(k) = &idem
                && let Some(prev) = a.idempotent.get(k)
            {
                return respond(200, prev.clone());
            }
            let key = format!("issued-{}-{}", a.next_id + 1, "Zx9");
            let id = a.issue(key.clone());
            if a.mode.revoke_on_rotate {
                a.keys.remove(&auth);
            }
            let answer = json!({"data": {"key": key, "id": id}});
            if let Some(k) = idem {
                a.idempotent.insert(k, answer.clone());
            }
            respond(200, answer)
        }
        ("PUT", "/v1/keys") => {
            a.set_calls += 1;
            if !a.valid(&auth) {
                return respond(401, json!({}));
            }
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return respond(400, json!({"error": "body is not JSON"}));
            };
            let Some(new) = v["newKey"].as_str() else {
                return respond(400, json!({}));
            };
            if !a.mode.set_is_a_no_op {
                a.issue(new.to_string());
            }
            respond(204, json!({}))
        }
        ("DELETE", p) if p.starts_with("/v1/keys/") => {
            if !a.valid(&auth) {
                return respond(401, json!({}));
            }
            if a.mode.revoke_failures > 0 {
                a.mode.revoke_failures -= 1;
                return respond(503, json!({"error": "try again later"}));
            }
            let id = p.trim_start_matches("/v1/keys/").to_string();
            let before = a.keys.len();
            a.keys.retain(|_, v| v != &id);
            if a.keys.len() < before {
                respond(200, json!({}))
            } else {
                respond(404, json!({}))
            }
        }
        _ => respond(404, json!({})),
    }
}

async fn start_api(mode: Mode, initial_key: &str) -> Server {
    let mut api = Api {
        mode,
        ..Default::default()
    };
    api.issue(initial_key.to_string());
    let api = Arc::new(Mutex::new(api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let a = api.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            acc.fetch_add(1, Ordering::SeqCst);
            let a = a.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let a = a.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, Infallible>(handle(&a, parts, body))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server {
        url,
        port,
        api,
        accepted,
        task,
    }
}

type Svc = SecretsService<MemoryBackend>;

/// The fake API listens on 127.0.0.1: the operator allows that one address.
fn loopback_allowed() -> TargetConfig {
    with_policy(&[], &["127.0.0.1/32"])
}

fn with_policy(hosts: &[&str], networks: &[&str]) -> TargetConfig {
    TargetConfig {
        policy: TargetPolicy::parse(hosts, networks, &[]).unwrap(),
        ..TargetConfig::default()
    }
}

fn rotate_secret(url: &str, key: &str, idempotent: bool) -> Value {
    let mut headers = json!({"Authorization": "Bearer {{current}}"});
    if idempotent {
        headers["Idempotency-Key"] = json!("{{token}}");
    }
    json!({
        "engine": "http",
        "apiKey": key,
        "keyId": "id-1",
        "owner": "team-a",
        "rotation": {
            "rotate": {
                "method": "POST",
                "url": format!("{url}/v1/keys/rotate"),
                "headers": headers,
                "responseKeyPointer": "/data/key",
                "responseFields": {"keyId": "/data/id"}
            },
            "test": {"method": "GET", "url": format!("{url}/v1/me"), "headers": {"Authorization": "Bearer {{pending}}"}},
            "revoke": {"method": "DELETE", "url": format!("{url}/v1/keys/{{{{previous.keyId}}}}"), "headers": {"Authorization": "Bearer {{current}}"}}
        }
    })
}

fn set_secret(url: &str, key: &str) -> Value {
    json!({
        "engine": "http",
        "apiKey": key,
        "rotation": {
            "set": {
                "method": "PUT",
                "url": format!("{url}/v1/keys"),
                "headers": {"Authorization": "Bearer {{current}}"},
                "body": {"newKey": "{{pending}}", "label": "keyroll {{token}}"}
            },
            "test": {"method": "GET", "url": format!("{url}/v1/me"), "headers": {"Authorization": "Bearer {{pending}}"}},
            "password": {"length": 48, "excludePunctuation": false, "excludeCharacters": "\"\\"}
        }
    })
}

async fn create(svc: &Svc, value: &Value) -> String {
    let arn = svc
        .create_secret(CreateSecretRequest {
            name: "api/partner-key".into(),
            client_request_token: Some(keyroll_core::ids::new_token()),
            secret_string: Some(SecretString::from(value.to_string())),
            ..Default::default()
        })
        .await
        .unwrap()
        .arn;
    svc.configure_rotation(&arn, Some("keyroll".into()), None)
        .await
        .unwrap();
    arn
}

async fn stage(svc: &Svc, arn: &str, stage: &str) -> Option<Value> {
    let r = svc
        .get_secret_value(GetSecretValueRequest {
            secret_id: arn.into(),
            version_id: None,
            version_stage: Some(stage.into()),
        })
        .await
        .ok()?;
    serde_json::from_str(r.secret_string?.expose_secret()).ok()
}

/// The AWSCURRENT key works at the API.
async fn assert_current_works(svc: &Svc, arn: &str, server: &Server, when: &str) {
    let cur = stage(svc, arn, AWSCURRENT).await.unwrap();
    let key = cur["apiKey"].as_str().unwrap();
    assert!(
        server.api.lock().unwrap().valid(key),
        "AWSCURRENT does not work {when}"
    );
}

/// Runs the four steps one by one, as the service does, checking the invariant in between.
async fn rotate_stepwise(svc: &Svc, arn: &str, target: &dyn Target, server: &Server) -> String {
    let token = keyroll_core::ids::new_token();
    svc.begin_rotation(arn, &token).await.unwrap();
    assert_current_works(svc, arn, server, "before createSecret").await;
    for step in Step::ALL {
        run_step(svc, target, step, arn, &token).await.unwrap();
        assert_current_works(svc, arn, server, &format!("after {step}")).await;
    }
    svc.complete_rotation(arn, &token).await.unwrap();
    token
}

#[tokio::test]
async fn rotate_style_full_rotation() {
    let server = start_api(Mode::default(), "k0-original").await;
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&server.url, "k0-original", false)).await;
    let target = HttpTarget::new(loopback_allowed());

    rotate_stepwise(&svc, &arn, &target, &server).await;
    let cur = stage(&svc, &arn, AWSCURRENT).await.unwrap();
    assert_eq!(cur["apiKey"], "issued-2-Zx9");
    assert_eq!(cur["keyId"], "id-2");
    assert_eq!(cur["owner"], "team-a", "other fields are kept");
    assert_eq!(
        stage(&svc, &arn, AWSPREVIOUS).await.unwrap()["apiKey"],
        "k0-original"
    );
    let api = server.api.lock().unwrap();
    assert!(!api.valid("k0-original"), "revoked after promotion");
    assert_eq!(api.keys.len(), 1);
    assert_eq!(api.rotate_calls, 1);
    assert_eq!(
        api.requests,
        ["POST /v1/keys/rotate", "GET /v1/me", "DELETE /v1/keys/id-1"],
        "setSecret sends nothing in the rotate style"
    );
}

#[tokio::test]
async fn set_style_full_rotation() {
    let server = start_api(Mode::default(), "k0-original").await;
    let svc = memory_service();
    let arn = create(&svc, &set_secret(&server.url, "k0-original")).await;
    let target = HttpTarget::new(loopback_allowed());

    rotate_stepwise(&svc, &arn, &target, &server).await;
    let key = stage(&svc, &arn, AWSCURRENT).await.unwrap()["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 48);
    assert!(!key.contains(['"', '\\']));
    let api = server.api.lock().unwrap();
    assert!(api.valid(&key));
    assert!(
        api.valid("k0-original"),
        "no revoke request configured: the old key stays"
    );
    assert_eq!(api.set_calls, 1);
    // setSecret first checked whether the API already took the key.
    assert_eq!(api.requests, ["GET /v1/me", "PUT /v1/keys", "GET /v1/me"]);
}

#[tokio::test]
async fn a_failing_test_request_leaves_awscurrent_unchanged() {
    for style in ["rotate", "set"] {
        let server = start_api(
            Mode {
                set_is_a_no_op: true,
                ..Default::default()
            },
            "k0-original",
        )
        .await;
        let svc = memory_service();
        let value = if style == "set" {
            set_secret(&server.url, "k0-original")
        } else {
            let mut v = rotate_secret(&server.url, "k0-original", false);
            // The API issues a key, but the test goes to an endpoint that refuses it.
            v["rotation"]["test"]["url"] = json!(format!("{}/v1/not-there", server.url));
            v
        };
        let arn = create(&svc, &value).await;
        let before = stage(&svc, &arn, AWSCURRENT).await.unwrap();
        let target = HttpTarget::new(loopback_allowed());
        let err = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
            .await
            .unwrap_err();
        assert_eq!(err.failed_step(), Some(Step::Test), "{style}: {err}");
        assert_eq!(err.class(), "TestFailed");
        let msg = err.to_string();
        assert!(msg.contains("test request GET http://127.0.0.1:"), "{msg}");
        assert!(msg.contains("HTTP 40"), "{msg}");
        let pending = stage(&svc, &arn, AWSPENDING).await.unwrap();
        let pending_key = pending["apiKey"].as_str().unwrap();
        assert!(
            !msg.contains(pending_key) && !msg.contains("k0-original"),
            "no key in {msg}"
        );
        assert_eq!(
            stage(&svc, &arn, AWSCURRENT).await.unwrap(),
            before,
            "{style}"
        );
        assert_current_works(&svc, &arn, &server, "after the failed rotation").await;
        let d = svc
            .describe_secret(SecretIdRequest {
                secret_id: arn.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            d.keyroll_rotation_status.unwrap().error_type.as_deref(),
            Some("TestFailed")
        );
    }
}

#[tokio::test]
async fn rotate_style_crash_after_the_api_call_with_an_idempotency_key() {
    // The API keeps old keys valid until revoked and honours Idempotency-Key: a retry of the
    // same rotation (same token) gets the same key back instead of a second one.
    let server = start_api(
        Mode {
            idempotency: true,
            ..Default::default()
        },
        "k0-original",
    )
    .await;
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&server.url, "k0-original", true)).await;
    let target = FlakyTarget::new(HttpTarget::new(loopback_allowed()));
    target.fail_after(Step::Create, 1); // the API answered; the key was never stored
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert!(
        stage(&svc, &arn, AWSPENDING).await.is_none(),
        "nothing stored"
    );
    assert_current_works(&svc, &arn, &server, "after the interrupted attempt").await;
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let cur = stage(&svc, &arn, AWSCURRENT).await.unwrap();
    assert_eq!(
        cur["apiKey"], "issued-2-Zx9",
        "the key of the interrupted attempt"
    );
    let api = server.api.lock().unwrap();
    assert_eq!(api.rotate_calls, 2);
    assert_eq!(
        api.keys.keys().collect::<Vec<_>>(),
        ["issued-2-Zx9"],
        "the old key was revoked and no second key was issued"
    );
}

#[tokio::test]
async fn rotate_style_crash_without_idempotency_is_reported_clearly() {
    let server = start_api(
        Mode {
            revoke_on_rotate: true,
            ..Default::default()
        },
        "k0-original",
    )
    .await;
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&server.url, "k0-original", false)).await;
    let target = FlakyTarget::new(HttpTarget::new(loopback_allowed()));
    target.fail_after(Step::Create, 1);
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    let err = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert_eq!(err.class(), "AuthenticationFailed");
    let msg = err.to_string();
    assert!(
        msg.contains("rotate request POST http://127.0.0.1:"),
        "{msg}"
    );
    assert!(msg.contains("recover it there"), "{msg}");
    assert!(
        !msg.contains("k0-original") && !msg.contains("issued-"),
        "{msg}"
    );
}

#[tokio::test]
async fn set_style_is_idempotent_after_a_crash_in_set_secret() {
    let server = start_api(Mode::default(), "k0-original").await;
    let svc = memory_service();
    let arn = create(&svc, &set_secret(&server.url, "k0-original")).await;
    let target = FlakyTarget::new(HttpTarget::new(loopback_allowed()));
    target.fail_after(Step::Set, 1); // the API took the key; keyroll stopped before noting it
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let key = stage(&svc, &arn, AWSCURRENT).await.unwrap()["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    let api = server.api.lock().unwrap();
    assert_eq!(
        api.set_calls, 1,
        "the retry saw the API already accepts the pending key"
    );
    assert!(api.valid(&key));
}

#[tokio::test]
async fn an_unreachable_api_fails_create_and_changes_nothing() {
    let port = keyroll_testkit::process::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&url, "k0-original", false)).await;
    let before = stage(&svc, &arn, AWSCURRENT).await;
    let err = rotate(
        &svc,
        &HttpTarget::new(loopback_allowed()),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), "Unreachable");
    assert_eq!(err.failed_step(), Some(Step::Create));
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert_eq!(stage(&svc, &arn, AWSCURRENT).await, before);
}

#[tokio::test]
async fn resolve_routes_engine_http() {
    let value =
        keyroll_core::SecretValue::string(set_secret("http://127.0.0.1:9", "k").to_string());
    let svc = memory_service();
    let arn = create(&svc, &set_secret("http://127.0.0.1:9", "k")).await;
    let desc = svc
        .describe_secret(SecretIdRequest { secret_id: arn })
        .await
        .unwrap();
    let t = keyroll_targets::resolve(&desc, &value, &loopback_allowed()).unwrap();
    assert_eq!(t.name(), "http");
}

#[tokio::test]
async fn a_failed_revoke_is_retried_on_the_next_run_until_done() {
    let server = start_api(
        Mode {
            revoke_failures: 2,
            ..Mode::default()
        },
        "k0-original",
    )
    .await;
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&server.url, "k0-original", false)).await;
    let target = HttpTarget::new(loopback_allowed());
    // The new key is promoted, then the revocation of the old one fails: recorded as pending
    // (AWSPENDING stays on the promoted version) and the rotation reports finishSecret.
    for _ in 0..2 {
        let err = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
            .await
            .unwrap_err();
        assert_eq!(err.failed_step(), Some(Step::Finish), "{err}");
        assert_eq!(
            stage(&svc, &arn, AWSCURRENT).await.unwrap()["apiKey"],
            "issued-2-Zx9"
        );
        assert_eq!(
            stage(&svc, &arn, AWSPENDING).await.unwrap()["apiKey"],
            "issued-2-Zx9",
            "the clean-up is still pending"
        );
        assert!(server.api.lock().unwrap().valid("k0-original"));
    }
    // The next run only retries the clean-up: no new key, the old one revoked at last.
    let report = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    assert!(report.resumed);
    assert_eq!(report.steps.len(), 1);
    assert!(stage(&svc, &arn, AWSPENDING).await.is_none());
    let api = server.api.lock().unwrap();
    assert!(!api.valid("k0-original"), "revoked on the retry");
    assert_eq!(api.rotate_calls, 1, "no second key was issued");
    assert_eq!(api.keys.len(), 1);
}

// ---- the operator's allow-list (issue 12) ----

/// Fixed DNS answers, no traffic: the resolver keyroll would have asked.
struct FixedDns(Vec<IpAddr>);

impl Lookup for FixedDns {
    fn lookup(&self, _name: &str) -> LookupFuture {
        let v = self.0.clone();
        Box::pin(async move { Ok(v) })
    }
}

async fn refused_at_create(svc: &Svc, arn: &str, target: &HttpTarget) -> String {
    let before = stage(svc, arn, AWSCURRENT).await;
    let err = rotate(svc, target, arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Create), "{err}");
    assert_eq!(err.class(), "Misconfigured", "{err}");
    assert_eq!(stage(svc, arn, AWSCURRENT).await, before);
    assert_eq!(stage(svc, arn, AWSPENDING).await, None, "no pending value");
    err.to_string()
}

#[tokio::test]
async fn loopback_targets_are_refused_by_default_and_the_listener_hears_nothing() {
    let server = start_api(Mode::default(), "k0-original").await;
    for url in [
        server.url.clone(),
        format!("http://localhost:{}", server.port),
        format!("http://2130706433:{}", server.port),
        format!("http://[::ffff:127.0.0.1]:{}", server.port),
    ] {
        for value in [
            rotate_secret(&url, "k0-original", false),
            set_secret(&url, "k0-original"),
        ] {
            let svc = memory_service();
            let arn = create(&svc, &value).await;
            let msg =
                refused_at_create(&svc, &arn, &HttpTarget::new(TargetConfig::default())).await;
            assert!(
                msg.contains("is not allowed")
                    && msg.contains("[targets.http] allow_hosts")
                    && msg.contains("--allow-host")
                    && msg.contains("KEYROLL_HTTP_ALLOW_HOSTS"),
                "{msg}"
            );
            assert!(!msg.contains("k0-original"), "{msg}");
        }
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    assert!(server.api.lock().unwrap().requests.is_empty());
}

#[tokio::test]
async fn an_allowed_name_resolving_to_loopback_is_refused_by_address() {
    let server = start_api(Mode::default(), "k0-original").await;
    let url = format!("http://localhost:{}", server.port);
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&url, "k0-original", false)).await;
    // The name is allowed, but what DNS answers for it (loopback) is not.
    let target = HttpTarget::new(with_policy(&["localhost"], &[]));
    let msg = refused_at_create(&svc, &arn, &target).await;
    assert!(
        msg.contains("\"localhost\"")
            && msg.contains("loopback")
            && msg.contains("allow_networks")
            && msg.contains("KEYROLL_HTTP_ALLOW_NETWORKS"),
        "{msg}"
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn dns_answers_are_checked_so_rebinding_gains_nothing() {
    let server = start_api(Mode::default(), "k0-original").await;
    let url = format!("http://api.partner.example:{}", server.port);
    let policy = with_policy(&["api.partner.example"], &[]);
    for answers in [
        vec!["169.254.169.254"],
        vec!["127.0.0.1"],
        vec!["::1", "10.0.0.7", "fd00:ec2::254"],
    ] {
        let dns = FixedDns(answers.iter().map(|a| a.parse().unwrap()).collect());
        let svc = memory_service();
        let arn = create(&svc, &rotate_secret(&url, "k0-original", false)).await;
        let target = HttpTarget::with_lookup(policy.clone(), Arc::new(dns));
        let msg = refused_at_create(&svc, &arn, &target).await;
        assert!(
            msg.contains(answers[0]) && msg.contains("allow_networks"),
            "{msg}"
        );
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);

    // The operator allows the network: the same name now reaches the API (on loopback).
    let svc = memory_service();
    let arn = create(&svc, &rotate_secret(&url, "k0-original", false)).await;
    let dns = FixedDns(vec![
        "169.254.169.254".parse().unwrap(),
        "127.0.0.1".parse().unwrap(),
    ]);
    let target = HttpTarget::with_lookup(
        with_policy(&["api.partner.example"], &["127.0.0.0/8"]),
        Arc::new(dns),
    );
    rotate_stepwise(&svc, &arn, &target, &server).await;
    assert_eq!(
        stage(&svc, &arn, AWSCURRENT).await.unwrap()["apiKey"],
        "issued-2-Zx9"
    );
}

#[tokio::test]
async fn allowed_loopback_hosts_still_rotate() {
    for (hosts, nets, host) in [
        (&[][..], &["127.0.0.1/32"][..], "127.0.0.1"),
        (
            &["localhost"][..],
            &["127.0.0.0/8", "::1/128"][..],
            "localhost",
        ),
    ] {
        let server = start_api(Mode::default(), "k0-original").await;
        let url = format!("http://{host}:{}", server.port);
        let svc = memory_service();
        let arn = create(&svc, &set_secret(&url, "k0-original")).await;
        let target = HttpTarget::new(with_policy(hosts, nets));
        rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
            .await
            .unwrap();
        let key = stage(&svc, &arn, AWSCURRENT).await.unwrap()["apiKey"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(server.api.lock().unwrap().valid(&key), "{host}");
    }
}

#[tokio::test]
async fn later_steps_are_refused_too() {
    let server = start_api(Mode::default(), "k0-original").await;
    let svc = memory_service();
    let arn = create(&svc, &set_secret(&server.url, "k0-original")).await;
    let token = keyroll_core::ids::new_token();
    svc.begin_rotation(&arn, &token).await.unwrap();
    run_step(
        &svc,
        &HttpTarget::new(loopback_allowed()),
        Step::Create,
        &arn,
        &token,
    )
    .await
    .unwrap();
    // The operator narrowed the allow-list meanwhile: no later step sends anything.
    let narrow = HttpTarget::new(TargetConfig::default());
    for step in [Step::Set, Step::Test] {
        let e = run_step(&svc, &narrow, step, &arn, &token)
            .await
            .unwrap_err();
        assert_eq!(e.class(), "Misconfigured", "{step}: {e}");
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_placeholder_host_is_refused() {
    let server = start_api(Mode::default(), "k0-original").await;
    let mut value = set_secret(&server.url, "k0-original");
    value["apiHost"] = json!(format!("127.0.0.1:{}", server.port));
    value["rotation"]["test"]["url"] = json!("http://{{current.apiHost}}/v1/me");
    let svc = memory_service();
    let arn = create(&svc, &value).await;
    let err = rotate(
        &svc,
        &HttpTarget::new(loopback_allowed()),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Create));
    assert!(err.to_string().contains("written out"), "{err}");
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
}
