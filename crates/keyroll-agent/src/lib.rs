//! # keyroll-agent
//!
//! `keyroll agent`: a drop-in for AWS's Secrets Manager Agent. The same HTTP API on
//! 127.0.0.1 (`GET /secretsmanager/get?secretId=…[&versionId=…|&versionStage=…][&refreshNow=
//! true]`, `GET {path_prefix}SECRET_ID`, `GET /ping`), the same answer (GetSecretValue's
//! JSON), the same SSRF token check and `X-Forwarded-For` refusal, the same configuration
//! keys and errors. Beyond it, over the [`keyroll_cache::SecretCache`]: single flight,
//! refresh ahead, stale-if-error (off by default), `GET /metrics`, and pushed invalidation by
//! following `keyroll serve`'s change feed ([`feed`]).
//!
//! - [`config`]: the configuration file.
//! - [`ssrf`]: the SSRF token.
//! - [`feed`]: following the change feed.

pub mod config;
pub mod feed;
pub mod ssrf;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use keyroll_cache::{
    CacheConfig, CacheError, SecretCache, SecretEntry, SecretSource, VersionSelector,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{AgentConfig, ConfigError, LogLevel};
pub use feed::{FeedStats, FeedUpstream};
pub use ssrf::{SsrfToken, TokenError};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "cannot listen on 127.0.0.1:{port}: {reason} (another agent may be running; set http_port in the configuration file)"
    )]
    Bind { port: u16, reason: String },
    #[error("the cache cannot be built: {0}")]
    Cache(String),
    #[error(
        "no AWS region: set region in the configuration file, or AWS_REGION / AWS_DEFAULT_REGION"
    )]
    NoRegion,
    #[error(
        "the AWS credentials could not be resolved: {0} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a role is available; or set validate_credentials = false)"
    )]
    Credentials(String),
}

/// The shared state of a running agent.
pub struct Agent {
    pub config: AgentConfig,
    pub cache: SecretCache<Arc<dyn SecretSource>>,
    token: SsrfToken,
    /// Open connections (for `max_conn`).
    connections: AtomicUsize,
    pub feed_stats: Arc<FeedStats>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// A running agent: its address, and how to stop it.
pub struct RunningAgent {
    pub agent: Arc<Agent>,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningAgent {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, stops following the feed, and waits for both.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Waits until `stop` is signalled elsewhere (Ctrl-C handling is the caller's).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The cache settings the configuration asks for.
pub fn cache_config(c: &AgentConfig) -> CacheConfig {
    CacheConfig {
        ttl: c.ttl,
        max_entries: c.cache_size,
        refresh_ahead: c.refresh_ahead,
        stale_if_error: c.stale_if_error,
    }
}

/// The HTTPS client for AWS calls (hyper 1 + rustls on *ring*, the system's roots).
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The upstream as the configuration and the environment describe it: the SDK client, and
/// the change feed when upstream is an explicit endpoint (`keyroll serve`).
pub async fn upstream(
    config: &AgentConfig,
) -> Result<(Arc<dyn SecretSource>, Option<FeedUpstream>), AgentError> {
    use aws_credential_types::provider::ProvideCredentials;
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
    if let Some(r) = &config.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &config.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let sdk = loader.load().await;
    let region = sdk.region().ok_or(AgentError::NoRegion)?.to_string();
    let credentials = sdk.credentials_provider();
    if config.validate_credentials
        && let Some(p) = &credentials
        && let Err(e) = p.provide_credentials().await
    {
        return Err(AgentError::Credentials(e.to_string()));
    }
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let source: Arc<dyn SecretSource> = Arc::new(keyroll_cache::AwsSdkSource::new(client));
    let endpoint = config.endpoint_url.clone().or_else(|| {
        ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok())
            .and_then(|u| config::check_endpoint(&u).ok())
    });
    let feed = match (config.follow_feed, endpoint, credentials) {
        (true, Some(endpoint), Some(credentials)) => Some(FeedUpstream {
            endpoint,
            region,
            credentials,
        }),
        _ => None,
    };
    Ok((source, feed))
}

/// Starts the agent on `listener` over `source`, following `feed` when given.
pub fn start(
    config: AgentConfig,
    token: SsrfToken,
    source: Arc<dyn SecretSource>,
    feed: Option<FeedUpstream>,
    listener: TcpListener,
) -> Result<RunningAgent, AgentError> {
    let cache = SecretCache::new(source, cache_config(&config))
        .map_err(|e| AgentError::Cache(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| AgentError::Bind {
        port: config.http_port,
        reason: e.to_string(),
    })?;
    let agent = Arc::new(Agent {
        config,
        cache,
        token,
        connections: AtomicUsize::new(0),
        feed_stats: Arc::new(FeedStats::default()),
    });
    let (stop, rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(serve(agent.clone(), listener, rx.clone()))];
    if let Some(up) = feed {
        tasks.push(tokio::spawn(feed::follow(
            up,
            agent.cache.clone(),
            agent.feed_stats.clone(),
            rx,
        )));
    }
    Ok(RunningAgent {
        agent,
        addr,
        stop,
        tasks,
    })
}

/// Binds 127.0.0.1:`http_port` (never another address: the agent is for this machine only).
pub async fn bind(port: u16) -> Result<TcpListener, AgentError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| AgentError::Bind {
            port,
            reason: e.to_string(),
        })
}

/// Everything `keyroll agent` does: the token from the environment, the upstream, bind, start.
pub async fn run(config: AgentConfig) -> Result<RunningAgent, AgentError> {
    let token = SsrfToken::from_env(&config.ssrf_env_variables)?;
    let (source, feed) = upstream(&config).await?;
    let listener = bind(config.http_port).await?;
    start(config, token, source, feed, listener)
}

async fn serve(agent: Arc<Agent>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        // Like AWS's agent: a TTL of 1 keeps answers on this host.
        let _ = stream.set_ttl(1);
        let a = agent.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            a.connections.fetch_add(1, Ordering::AcqRel);
            let svc_agent = a.clone();
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let a = svc_agent.clone();
                async move { Ok::<_, Infallible>(a.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(MAX_BUF_BYTES)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            let limit = tokio::time::sleep(MAX_CONNECTION_TIME);
            tokio::select! {
                _ = &mut conn => {}
                _ = limit => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
            a.connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// The largest request head read (AWS's agent: 321 KiB).
const MAX_BUF_BYTES: usize = 321 * 1024;
/// How long one connection may stay open (AWS's agent: 61 s).
const MAX_CONNECTION_TIME: std::time::Duration = std::time::Duration::from_secs(61);

type Resp = Response<Full<Bytes>>;

fn text(status: u16, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn owned(status: u16, body: String, json: bool) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if json {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// A request's answer before it becomes a response: AWS's agent's statuses and bodies.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpError(pub u16, pub String);

impl HttpError {
    fn plain(status: u16, msg: &str) -> Self {
        HttpError(status, msg.to_string())
    }
}

/// A GetSecretValue request as the agent's API spells it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
    pub refresh_now: bool,
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_refresh(v: &str) -> Result<bool, HttpError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(HttpError::plain(400, "invalid refreshNow value")),
    }
}

impl Query {
    /// `secretId`, `versionId`, `versionStage`, `refreshNow` from a query string; `secretId`
    /// only when `with_id`.
    fn fill(&mut self, query: Option<&str>, with_id: bool) -> Result<(), HttpError> {
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k, true);
            let v = percent_decode(v, true);
            match k.as_str() {
                "secretId" if with_id => self.secret_id = v,
                "versionId" => self.version_id = Some(v),
                "versionStage" => self.version_stage = Some(v),
                "refreshNow" => self.refresh_now = parse_refresh(&v)?,
                other => return Err(HttpError(400, format!("unknown parameter: {other}"))),
            }
        }
        Ok(())
    }

    /// `/secretsmanager/get?secretId=…`.
    pub fn from_query(query: Option<&str>) -> Result<Self, HttpError> {
        let mut q = Query::default();
        q.fill(query, true)?;
        if q.secret_id.is_empty() {
            return Err(HttpError::plain(400, "missing parameter secretId"));
        }
        Ok(q)
    }

    /// `{prefix}SECRET_ID?…`.
    pub fn from_path(path: &str, prefix: &str, query: Option<&str>) -> Result<Self, HttpError> {
        let id = match path.get(prefix.len()..) {
            Some(s) if !s.is_empty() => percent_decode(s, false),
            _ => return Err(HttpError::plain(400, "missing secret ID")),
        };
        let mut q = Query {
            secret_id: id,
            ..Query::default()
        };
        q.fill(query, false)?;
        Ok(q)
    }

    fn selector(&self) -> VersionSelector {
        match (&self.version_id, &self.version_stage) {
            (Some(v), _) => VersionSelector::VersionId(v.clone()),
            (None, Some(s)) => VersionSelector::Stage(s.clone()),
            (None, None) => VersionSelector::current(),
        }
    }
}

/// GetSecretValue's JSON for a cached entry, in AWS's agent's member order, written straight
/// from borrowed fields (no intermediate map).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Rendered<'a> {
    #[serde(rename = "ARN")]
    arn: &'a str,
    name: &'a str,
    version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_binary: Option<String>,
    version_stages: &'a [String],
    created_date: Option<String>,
}

/// GetSecretValue's JSON for a cached entry (AWS's agent's shape: `CreatedDate` as a string of
/// seconds, `SecretBinary` as base64).
pub fn render(e: &SecretEntry) -> String {
    use base64::Engine;
    let secret_string = e.secret_string();
    let secret_binary = match secret_string {
        Some(_) => None,
        None => Some(base64::engine::general_purpose::STANDARD.encode(e.value.expose_bytes())),
    };
    let created_date = e.created_date.map(|d| {
        let s = format!("{d:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    });
    let r = Rendered {
        arn: &e.arn,
        name: &e.name,
        version_id: &e.version_id,
        secret_string,
        secret_binary,
        version_stages: &e.version_stages,
        created_date,
    };
    // Serialising borrowed strings into a String cannot fail.
    serde_json::to_string(&r).unwrap_or_default()
}

fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "__type": code, "message": message }).to_string()
}

/// AWS's agent's answer for a failed read.
fn cache_error(e: &CacheError) -> HttpError {
    match e.source_error() {
        Some(keyroll_cache::SourceError::Service {
            code,
            message,
            status,
        }) => HttpError(status.unwrap_or(400), error_body(code, message)),
        Some(keyroll_cache::SourceError::Transport { .. }) => {
            HttpError(502, error_body("ConnectionError", "Read Error"))
        }
        Some(keyroll_cache::SourceError::InvalidResponse { .. }) => {
            HttpError(502, error_body("ConnectionError", "Response Error"))
        }
        None => HttpError(500, "{\"__type\":\"InternalFailure\"}".into()),
    }
}

impl Agent {
    fn validate_token<B>(&self, req: &Request<B>) -> Result<(), HttpError> {
        let h = req.headers();
        if h.contains_key("x-forwarded-for") {
            tracing::warn!("refused a request with X-Forwarded-For");
            return Err(HttpError::plain(400, "Forwarded"));
        }
        for name in &self.config.ssrf_headers {
            if h.get_all(name.as_str())
                .iter()
                .any(|v| self.token.matches(v.as_bytes()))
            {
                return Ok(());
            }
        }
        tracing::warn!("refused a request without the SSRF token");
        Err(HttpError::plain(403, "Bad Token"))
    }

    fn metrics(&self) -> String {
        let m = self.cache.metrics();
        let mut out = m.render_prometheus("keyroll_agent");
        let s = &self.feed_stats;
        let mut gauge = |name: &str, kind: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP keyroll_agent_{name} {help}\n# TYPE keyroll_agent_{name} {kind}\nkeyroll_agent_{name} {v}\n"
            ));
        };
        gauge(
            "feed_connected",
            "gauge",
            "1 while the change feed of keyroll serve is followed.",
            s.connected.load(Ordering::Relaxed),
        );
        gauge(
            "feed_events_total",
            "counter",
            "Changes received from the feed.",
            s.events.load(Ordering::Relaxed),
        );
        gauge(
            "feed_resyncs_total",
            "counter",
            "Times the feed asked for a resync (server restart, cursor too old).",
            s.resyncs.load(Ordering::Relaxed),
        );
        gauge(
            "feed_failures_total",
            "counter",
            "Failed polls of the feed (server down).",
            s.failures.load(Ordering::Relaxed),
        );
        gauge(
            "connections",
            "gauge",
            "Open HTTP connections.",
            self.connections.load(Ordering::Relaxed) as u64,
        );
        out
    }

    async fn answer<B>(&self, req: &Request<B>) -> Result<Resp, HttpError> {
        let path = req.uri().path();
        let open = self.connections.load(Ordering::Acquire);
        let limit = if path == "/ping" {
            self.config.max_conn + 3
        } else {
            self.config.max_conn
        };
        if open > limit {
            return Err(HttpError::plain(429, "Connection limit exceeded"));
        }
        if path != "/ping" && path != "/metrics" {
            self.validate_token(req)?;
        }
        if req.method() != Method::GET {
            return Err(HttpError::plain(405, "Not allowed"));
        }
        let q = match path {
            "/ping" => return Ok(text(200, "healthy")),
            "/metrics" => return Ok(owned(200, self.metrics(), false)),
            "/secretsmanager/get" => Query::from_query(req.uri().query())?,
            p if p.starts_with(self.config.path_prefix.as_str()) => {
                Query::from_path(p, &self.config.path_prefix, req.uri().query())?
            }
            _ => return Err(HttpError::plain(404, "Not found")),
        };
        let sel = q.selector();
        let got = if q.refresh_now {
            self.cache.refresh_now(&q.secret_id, &sel).await
        } else {
            self.cache.get_version(&q.secret_id, &sel).await
        };
        match got {
            Ok(e) => Ok(owned(200, render(&e), true)),
            Err(e) => Err(cache_error(&e)),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>) -> Resp {
        if req.method() == Method::POST
            && req.uri().path() == "/"
            && req.headers().contains_key("x-amz-target")
        {
            return self.json_protocol(req).await;
        }
        match self.answer(&req).await {
            Ok(r) => r,
            Err(HttpError(status, body)) => {
                let json = body.starts_with('{');
                owned(status, body, json)
            }
        }
    }

    /// GetSecretValue in the AWS JSON 1.1 protocol on `POST /`, so that an application using
    /// an AWS SDK unchanged can be pointed at the agent with `AWS_ENDPOINT_URL`. The SSRF token
    /// is checked as on the agent's own API, and may also come as `X-Amz-Security-Token`
    /// (what SDKs send from `AWS_SESSION_TOKEN`). The signature is not checked: the agent
    /// reads with its own credentials, as on its own API.
    async fn json_protocol(&self, req: Request<hyper::body::Incoming>) -> Resp {
        use http_body_util::BodyExt;
        let fail = |status: u16, code: &str, msg: &str| {
            let mut r = owned(status, error_body(code, msg), false);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(JSON_11),
            );
            r
        };
        if self.connections.load(Ordering::Acquire) > self.config.max_conn {
            return fail(429, "ThrottlingException", "Connection limit exceeded");
        }
        let h = req.headers();
        if h.contains_key("x-forwarded-for") {
            return fail(
                400,
                "InvalidRequestException",
                "Forwarded requests are refused.",
            );
        }
        let ok = self
            .config
            .ssrf_headers
            .iter()
            .map(String::as_str)
            .chain(["x-amz-security-token"])
            .any(|n| {
                h.get_all(n)
                    .iter()
                    .any(|v| self.token.matches(v.as_bytes()))
            });
        if !ok {
            return fail(
                403,
                "AccessDeniedException",
                "Bad Token: send the agent's SSRF token in X-Aws-Parameters-Secrets-Token (or as the session token, AWS_SESSION_TOKEN).",
            );
        }
        let target = h
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if target != "secretsmanager.GetSecretValue" {
            return fail(
                400,
                "UnknownOperationException",
                "keyroll agent answers GetSecretValue only: send other operations to keyroll serve or AWS.",
            );
        }
        let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return fail(
                    400,
                    "SerializationException",
                    "The request body could not be read (at most 64 KiB).",
                );
            }
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Gsv {
            secret_id: String,
            version_id: Option<String>,
            version_stage: Option<String>,
        }
        let Ok(g) = serde_json::from_slice::<Gsv>(&body) else {
            return fail(
                400,
                "SerializationException",
                "The body is not GetSecretValue's JSON (SecretId, VersionId, VersionStage).",
            );
        };
        let q = Query {
            secret_id: g.secret_id,
            version_id: g.version_id,
            version_stage: g.version_stage,
            refresh_now: false,
        };
        match self.cache.get_version(&q.secret_id, &q.selector()).await {
            Ok(e) => {
                let mut r = owned(200, render_json_11(&e), false);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(JSON_11),
                );
                r
            }
            Err(e) => {
                let HttpError(status, body) = cache_error(&e);
                let mut r = owned(status, body, false);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(JSON_11),
                );
                r
            }
        }
    }
}

const JSON_11: &str = "application/x-amz-json-1.1";

/// GetSecretValue's answer in the AWS JSON 1.1 protocol (`CreatedDate` as epoch seconds).
pub fn render_json_11(e: &SecretEntry) -> String {
    use base64::Engine;
    let mut m = serde_json::Map::new();
    m.insert("ARN".into(), e.arn.clone().into());
    m.insert("Name".into(), e.name.clone().into());
    m.insert("VersionId".into(), e.version_id.clone().into());
    match e.secret_string() {
        Some(s) => m.insert("SecretString".into(), s.into()),
        None => m.insert(
            "SecretBinary".into(),
            base64::engine::general_purpose::STANDARD
                .encode(e.value.expose_bytes())
                .into(),
        ),
    };
    m.insert("VersionStages".into(), e.version_stages.clone().into());
    if let Some(d) = e.created_date
        && let Some(n) = serde_json::Number::from_f64(d)
    {
        m.insert("CreatedDate".into(), serde_json::Value::Number(n));
    }
    serde_json::Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_like_aws_agents() {
        let q = Query::from_query(Some(
            "secretId=prod%2Fdb&versionStage=AWSPREVIOUS&refreshNow=1",
        ))
        .unwrap();
        assert_eq!(q.secret_id, "prod/db");
        assert_eq!(q.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert!(q.refresh_now);
        assert_eq!(
            Query::from_query(Some("versionId=x")).unwrap_err(),
            HttpError(400, "missing parameter secretId".into())
        );
        assert_eq!(
            Query::from_query(Some("secretId=a&bogus=1")).unwrap_err(),
            HttpError(400, "unknown parameter: bogus".into())
        );
        assert_eq!(
            Query::from_query(Some("secretId=a&refreshNow=yes")).unwrap_err(),
            HttpError(400, "invalid refreshNow value".into())
        );
        let p = Query::from_path("/v1/prod/db", "/v1/", Some("versionId=v9")).unwrap();
        assert_eq!(p.secret_id, "prod/db");
        assert_eq!(p.selector(), VersionSelector::VersionId("v9".into()));
        assert_eq!(
            Query::from_path("/v1/", "/v1/", None).unwrap_err(),
            HttpError(400, "missing secret ID".into())
        );
        assert_eq!(
            Query::from_path("/v1/a", "/v1/", Some("secretId=b")).unwrap_err(),
            HttpError(400, "unknown parameter: secretId".into())
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz", true), "%zz");
    }

    #[test]
    fn render_is_get_secret_values_json() {
        let e = SecretEntry {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf".into(),
            name: "db".into(),
            version_id: "v1".into(),
            version_stages: vec!["AWSCURRENT".into()],
            created_date: Some(1_700_000_000.5),
            value: keyroll_cache::SecretPayload::String("s\"x".to_string().into()),
        };
        let v: serde_json::Value = serde_json::from_str(&render(&e)).unwrap();
        assert_eq!(v["ARN"], e.arn);
        assert_eq!(v["SecretString"], "s\"x");
        assert_eq!(v["VersionStages"][0], "AWSCURRENT");
        assert_eq!(v["CreatedDate"], "1700000000.5");
        assert!(v.get("SecretBinary").is_none());
        // AWS's agent's member order.
        let text = render(&e);
        let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(
            at("ARN") < at("Name") && at("Name") < at("VersionId"),
            "{text}"
        );
        assert!(at("VersionId") < at("SecretString"), "{text}");
        assert!(at("SecretString") < at("VersionStages"), "{text}");
        assert!(at("VersionStages") < at("CreatedDate"), "{text}");
        let b = SecretEntry {
            created_date: None,
            value: keyroll_cache::SecretPayload::Binary(vec![0u8, 1, 2].into()),
            ..e
        };
        let v: serde_json::Value = serde_json::from_str(&render(&b)).unwrap();
        assert_eq!(v["SecretBinary"], "AAEC");
        assert!(v.get("SecretString").is_none());
        assert!(v["CreatedDate"].is_null());
    }
}
