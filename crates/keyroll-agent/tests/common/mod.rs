//! Shared set-up: `keyroll serve` in this process (memory store, change feed) and an agent in
//! front of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use keyroll_agent::{AgentConfig, FeedUpstream, RunningAgent, SsrfToken};
use keyroll_core::time::SystemClock;
use keyroll_server::credentials::{AccessKey, generate_key};
use keyroll_server::feed::{Feed, FeedRegions};
use keyroll_server::server::{App, RunningServer, bind, start};
use keyroll_server::{Config, MemoryRegions};
use secrecy::{ExposeSecret, SecretString};

pub const TOKEN: &str = "test-ssrf-token-0123456789";

pub struct Server {
    pub server: RunningServer<FeedRegions<MemoryRegions>>,
    pub regions: MemoryRegions,
    pub key: AccessKey,
    pub url: String,
}

/// Starts keyroll serve on `addr` over `regions` (shared across restarts).
pub async fn serve_on(regions: MemoryRegions, key: AccessKey, addr: &str) -> Server {
    let feed = Arc::new(Feed::default());
    let app = App::new(
        FeedRegions::new(regions.clone(), feed.clone()),
        Config::default(),
        vec![key.clone()],
        Arc::new(SystemClock),
    )
    .with_feed(feed);
    let listener = bind(addr).await.unwrap();
    let server = start(Arc::new(app), listener, false).unwrap();
    let url = server.url();
    Server {
        server,
        regions,
        key,
        url,
    }
}

pub async fn serve() -> Server {
    let key = generate_key("test").unwrap();
    let regions = MemoryRegions::new("000000000000", Arc::new(SystemClock));
    serve_on(regions, key, "127.0.0.1:0").await
}

pub fn credentials(key: &AccessKey) -> Credentials {
    Credentials::new(
        key.access_key_id.clone(),
        key.secret_access_key.expose_secret().to_string(),
        None,
        None,
        "keyroll-test",
    )
}

pub fn sdk(url: &str, creds: Credentials) -> Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(keyroll_agent::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(creds)
        .build();
    Client::from_conf(conf)
}

impl Server {
    pub fn client(&self) -> Client {
        sdk(&self.url, credentials(&self.key))
    }

    /// Successful GetSecretValue calls the server has answered.
    pub fn get_secret_value_calls(&self) -> u64 {
        let text = self.server.app.render_metrics();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(
                    "keyroll_requests_total{operation=\"GetSecretValue\",outcome=\"success\"} ",
                )
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// An agent in front of `url` (keyroll serve or moto) on a free port.
pub async fn agent(url: &str, creds: Credentials, config: AgentConfig, feed: bool) -> RunningAgent {
    let source: Arc<dyn keyroll_cache::SecretSource> =
        Arc::new(keyroll_cache::AwsSdkSource::new(sdk(url, creds.clone())));
    let up = feed.then(|| FeedUpstream {
        endpoint: url.to_string(),
        region: "us-east-1".into(),
        credentials: SharedCredentialsProvider::new(creds),
    });
    let token = SsrfToken::new(SecretString::from(TOKEN.to_string())).unwrap();
    let listener = keyroll_agent::bind(0).await.unwrap();
    keyroll_agent::start(config, token, source, up, listener).unwrap()
}

/// GET `path` on the agent with the SSRF token; (status, body).
pub async fn get(agent: &RunningAgent, path: &str) -> (u16, String) {
    get_with(agent, path, &[("X-Aws-Parameters-Secrets-Token", TOKEN)]).await
}

pub async fn get_with(agent: &RunningAgent, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", agent.url()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Polls `f` every 5 ms until it returns `Some`, failing after `limit`.
pub async fn within<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the agent follows the feed.
pub async fn feed_connected(agent: &RunningAgent) {
    within(Duration::from_secs(10), || async {
        agent.agent.feed_stats.is_connected().then_some(())
    })
    .await;
}
