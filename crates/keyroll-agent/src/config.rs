//! The configuration file: AWS's Secrets Manager Agent's TOML keys, defaults and limits, and
//! keyroll's additions (`endpoint_url`, `refresh_ahead`, `stale_if_error_seconds`,
//! `follow_feed`).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration cannot be used; each message names the key and the allowed values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "the configuration file is not valid TOML or has an unknown key: {0} (keys: log_level, log_to_file, http_port, ttl_seconds, cache_size, ssrf_headers, ssrf_env_variables, path_prefix, max_conn, region, ignore_transient_errors, validate_credentials, endpoint_url, refresh_ahead, stale_if_error_seconds, follow_feed)"
    )]
    Parse(String),
    #[error("log_level {0:?} is not valid: use DEBUG, INFO, WARN, ERROR or NONE")]
    LogLevel(String),
    #[error("http_port {0:?} is not valid: use a port from 1024 to 65535")]
    HttpPort(String),
    #[error("ttl_seconds {0:?} is not valid: use 0 (no caching) to 3600")]
    Ttl(String),
    #[error("cache_size {0:?} is not valid: use 1 to 1000")]
    CacheSize(String),
    #[error("max_conn {0:?} is not valid: use 1 to 1000")]
    MaxConn(String),
    #[error(
        "ssrf_headers is empty: list at least one header, e.g. [\"X-Aws-Parameters-Secrets-Token\"]"
    )]
    EmptySsrfHeaders,
    #[error("ssrf_env_variables is empty: list at least one variable, e.g. [\"AWS_TOKEN\"]")]
    EmptySsrfEnv,
    #[error("path_prefix {0:?} is not valid: it must begin with /, e.g. \"/v1/\"")]
    PathPrefix(String),
    #[error(
        "refresh_ahead {0} is not valid: use a fraction of the TTL from 0.0 (off) to below 1.0"
    )]
    RefreshAhead(f64),
    #[error("stale_if_error_seconds {0:?} is not valid: use 0 (off) to 86400")]
    StaleIfError(String),
    #[error(
        "endpoint_url {0:?} is not valid: use http://HOST:PORT or https://HOST:PORT (e.g. keyroll serve's http://127.0.0.1:7150)"
    )]
    EndpointUrl(String),
}

/// How much the agent logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    None,
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::None => "off",
        }
    }
}

/// A number written as a TOML integer or a string (AWS's agent accepts both).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Num {
    fn text(&self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => f.to_string(),
            Num::Str(s) => s.trim().to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    log_level: Option<String>,
    log_to_file: Option<bool>,
    http_port: Option<Num>,
    ttl_seconds: Option<Num>,
    cache_size: Option<Num>,
    ssrf_headers: Option<Vec<String>>,
    ssrf_env_variables: Option<Vec<String>>,
    path_prefix: Option<String>,
    max_conn: Option<Num>,
    region: Option<String>,
    ignore_transient_errors: Option<bool>,
    validate_credentials: Option<bool>,
    endpoint_url: Option<String>,
    refresh_ahead: Option<f64>,
    stale_if_error_seconds: Option<Num>,
    follow_feed: Option<bool>,
}

/// The agent's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub log_level: LogLevel,
    /// Accepted for compatibility; keyroll agent logs to standard error.
    pub log_to_file: bool,
    pub http_port: u16,
    pub ttl: Duration,
    pub cache_size: usize,
    pub ssrf_headers: Vec<String>,
    pub ssrf_env_variables: Vec<String>,
    pub path_prefix: String,
    pub max_conn: usize,
    pub region: Option<String>,
    pub ignore_transient_errors: bool,
    pub validate_credentials: bool,
    /// Upstream: `None` is AWS (the SDK's endpoint resolution, `AWS_ENDPOINT_URL` honoured);
    /// `keyroll serve`'s URL otherwise.
    pub endpoint_url: Option<String>,
    /// Fraction of the TTL at the end of which a read refreshes in the background.
    pub refresh_ahead: f64,
    /// How long past its TTL a value is served when upstream fails (0: off).
    pub stale_if_error: Duration,
    /// Follow keyroll serve's change feed when upstream is keyroll serve.
    pub follow_feed: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            log_level: LogLevel::Info,
            log_to_file: true,
            http_port: 2773,
            ttl: Duration::from_secs(300),
            cache_size: 1000,
            ssrf_headers: vec![
                "X-Aws-Parameters-Secrets-Token".into(),
                "X-Vault-Token".into(),
            ],
            ssrf_env_variables: vec![
                "AWS_TOKEN".into(),
                "AWS_SESSION_TOKEN".into(),
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
            ],
            path_prefix: "/v1/".into(),
            max_conn: 800,
            region: None,
            ignore_transient_errors: true,
            validate_credentials: true,
            endpoint_url: None,
            refresh_ahead: 0.2,
            stale_if_error: Duration::ZERO,
            follow_feed: true,
        }
    }
}

fn ranged<T: std::str::FromStr + PartialOrd>(
    n: &Num,
    lo: T,
    hi: T,
    err: fn(String) -> ConfigError,
) -> Result<T, ConfigError> {
    let text = n.text();
    match text.parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        _ => Err(err(text)),
    }
}

impl AgentConfig {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates the TOML text of a configuration file (missing keys take AWS's
    /// defaults).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let f: File = toml::from_str(text).map_err(|e| ConfigError::Parse(e.message().into()))?;
        let mut c = AgentConfig::default();
        if let Some(l) = f.log_level {
            c.log_level = match l.to_ascii_lowercase().as_str() {
                "debug" => LogLevel::Debug,
                "info" => LogLevel::Info,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                "none" => LogLevel::None,
                _ => return Err(ConfigError::LogLevel(l)),
            };
        }
        if let Some(b) = f.log_to_file {
            c.log_to_file = b;
        }
        if let Some(n) = &f.http_port {
            c.http_port = ranged(n, 1024u16, u16::MAX, ConfigError::HttpPort)?;
        }
        if let Some(n) = &f.ttl_seconds {
            c.ttl = Duration::from_secs(ranged(n, 0u64, 3600, ConfigError::Ttl)?);
        }
        if let Some(n) = &f.cache_size {
            c.cache_size = ranged(n, 1usize, 1000, ConfigError::CacheSize)?;
        }
        if let Some(n) = &f.max_conn {
            c.max_conn = ranged(n, 1usize, 1000, ConfigError::MaxConn)?;
        }
        if let Some(h) = f.ssrf_headers {
            if h.is_empty() {
                return Err(ConfigError::EmptySsrfHeaders);
            }
            c.ssrf_headers = h;
        }
        if let Some(v) = f.ssrf_env_variables {
            if v.is_empty() {
                return Err(ConfigError::EmptySsrfEnv);
            }
            c.ssrf_env_variables = v;
        }
        if let Some(p) = f.path_prefix {
            if !p.starts_with('/') {
                return Err(ConfigError::PathPrefix(p));
            }
            c.path_prefix = p;
        }
        c.region = f.region.filter(|r| !r.is_empty());
        if let Some(b) = f.ignore_transient_errors {
            c.ignore_transient_errors = b;
        }
        if let Some(b) = f.validate_credentials {
            c.validate_credentials = b;
        }
        if let Some(u) = f.endpoint_url {
            c.endpoint_url = Some(check_endpoint(&u)?);
        }
        if let Some(r) = f.refresh_ahead {
            if !(0.0..1.0).contains(&r) {
                return Err(ConfigError::RefreshAhead(r));
            }
            c.refresh_ahead = r;
        }
        if let Some(n) = &f.stale_if_error_seconds {
            c.stale_if_error =
                Duration::from_secs(ranged(n, 0u64, 86_400, ConfigError::StaleIfError)?);
        }
        if let Some(b) = f.follow_feed {
            c.follow_feed = b;
        }
        Ok(c)
    }
}

/// Checks an upstream URL (`http://` or `https://` with a host).
pub fn check_endpoint(url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(url.trim_end_matches('/').into()),
        _ => Err(ConfigError::EndpointUrl(url.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_aws_agents() {
        let c = AgentConfig::from_toml("").unwrap();
        assert_eq!(c, AgentConfig::default());
        assert_eq!(c.http_port, 2773);
        assert_eq!(c.ttl, Duration::from_secs(300));
        assert_eq!(c.cache_size, 1000);
        assert_eq!(c.max_conn, 800);
        assert_eq!(c.path_prefix, "/v1/");
        assert_eq!(c.ssrf_env_variables[0], "AWS_TOKEN");
        assert!(c.validate_credentials);
        assert_eq!(c.stale_if_error, Duration::ZERO);
    }

    #[test]
    fn keys_accept_numbers_and_strings() {
        let c = AgentConfig::from_toml(
            r#"
            log_level = "DEBUG"
            http_port = "4567"
            ttl_seconds = 60
            cache_size = "10"
            ssrf_headers = ["X-My-Token"]
            ssrf_env_variables = ["MY_TOKEN"]
            path_prefix = "/secrets/"
            max_conn = 5
            region = "eu-west-1"
            validate_credentials = false
            endpoint_url = "http://127.0.0.1:7150/"
            refresh_ahead = 0.5
            stale_if_error_seconds = 120
            follow_feed = false
            "#,
        )
        .unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.http_port, 4567);
        assert_eq!(c.ttl, Duration::from_secs(60));
        assert_eq!(c.cache_size, 10);
        assert_eq!(c.ssrf_headers, ["X-My-Token"]);
        assert_eq!(c.path_prefix, "/secrets/");
        assert_eq!(c.max_conn, 5);
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:7150"));
        assert_eq!(c.stale_if_error, Duration::from_secs(120));
        assert!(!c.follow_feed && !c.validate_credentials);
    }

    #[test]
    fn limits_are_aws_agents() {
        let bad = [
            ("http_port = 1023", "http_port"),
            ("http_port = 70000", "http_port"),
            ("ttl_seconds = 3601", "ttl_seconds"),
            ("ttl_seconds = -1", "ttl_seconds"),
            ("cache_size = 0", "cache_size"),
            ("cache_size = 1001", "cache_size"),
            ("max_conn = 0", "max_conn"),
            ("max_conn = 1001", "max_conn"),
            ("ssrf_headers = []", "ssrf_headers"),
            ("ssrf_env_variables = []", "ssrf_env_variables"),
            ("path_prefix = \"v1\"", "path_prefix"),
            ("log_level = \"LOUD\"", "log_level"),
            ("refresh_ahead = 1.0", "refresh_ahead"),
            ("endpoint_url = \"ftp://x\"", "endpoint_url"),
            ("bogus = 1", "unknown key"),
        ];
        for (text, key) in bad {
            let e = AgentConfig::from_toml(text).expect_err(text);
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        assert_eq!(
            AgentConfig::from_toml("ttl_seconds = 0").unwrap().ttl,
            Duration::ZERO
        );
    }
}
