//! Shared set-up: a keyroll server on 127.0.0.1:0 in this process, and AWS SDK clients.
#![allow(dead_code)]

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use keyroll_core::time::{Clock, SystemClock};
use keyroll_server::credentials::{AccessKey, generate_key};
use keyroll_server::server::{App, RunningServer, bind, start};
use keyroll_server::{Config, MemoryRegions};
use secrecy::ExposeSecret;

pub struct TestServer {
    pub server: RunningServer<MemoryRegions>,
    pub key: AccessKey,
    pub url: String,
}

impl TestServer {
    pub fn client(&self) -> Client {
        client_for(&self.url, &self.key, "us-east-1")
    }
    pub fn client_in(&self, region: &str) -> Client {
        client_for(&self.url, &self.key, region)
    }
    pub fn app(&self) -> &Arc<App<MemoryRegions>> {
        &self.server.app
    }
}

pub fn client_for(url: &str, key: &AccessKey, region: &str) -> Client {
    let creds = Credentials::new(
        key.access_key_id.clone(),
        key.secret_access_key.expose_secret().to_string(),
        key.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        None,
        "keyroll-test",
    );
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(keyroll_store::aws::https_client())
        .region(Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(creds)
        .build();
    Client::from_conf(conf)
}

pub async fn start_server() -> TestServer {
    start_with(Config::default(), Arc::new(SystemClock), None).await
}

/// Starts a server with `config`, the store on `clock`, signatures checked against
/// `auth_clock` (default: the system clock).
pub async fn start_with(
    config: Config,
    clock: Arc<dyn Clock>,
    auth_clock: Option<Arc<dyn Clock>>,
) -> TestServer {
    let key = generate_key("test").unwrap();
    let regions = MemoryRegions::new("000000000000", clock.clone());
    start_on(regions, config, clock, auth_clock, key).await
}

pub async fn start_on(
    regions: MemoryRegions,
    config: Config,
    clock: Arc<dyn Clock>,
    auth_clock: Option<Arc<dyn Clock>>,
    key: AccessKey,
) -> TestServer {
    let notifier = keyroll_notify::Notifier::from_config(&config.notify).unwrap();
    let mut app = App::new(regions, config, vec![key.clone()], clock).with_notifier(notifier);
    if let Some(a) = auth_clock {
        app = app.with_auth_clock(a);
    }
    let listener = bind("127.0.0.1:0").await.unwrap();
    let server = start(Arc::new(app), listener, false).unwrap();
    let url = server.url();
    TestServer { server, key, url }
}

/// Polls `f` until it returns `Some`, for at most ~10 s.
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("condition not reached within 10 s");
}

/// The `__type` of an SDK error.
pub fn err_code<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("not a service error")
        .to_string()
}

pub fn err_message<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.message())
        .unwrap_or("")
        .to_string()
}

/// A raw signed request (for what SDKs would not send, e.g. no ClientRequestToken).
pub async fn raw(url: &str, key: &AccessKey, target: &str, body: &str) -> (u16, serde_json::Value) {
    let host = url.trim_start_matches("http://").to_string();
    let hs = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let signed = keyroll_server::sigv4::sign(
        "POST",
        &host,
        "/",
        &hs,
        body.as_bytes(),
        key,
        "us-east-1",
        SystemClock.now(),
    );
    let mut req = reqwest::Client::new()
        .post(format!("{url}/"))
        .body(body.to_string());
    for (k, v) in hs.iter() {
        req = req.header(*k, *v);
    }
    for (k, v) in signed {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}
