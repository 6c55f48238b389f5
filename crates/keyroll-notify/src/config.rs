//! Where notifications go: the `[notify]` section of `keyroll.toml`, or environment
//! variables (the Lambda function).
//!
//! ```toml
//! [notify]
//! events = "all"                      # all | failures | successes | none
//! retry = { attempts = 3, initial_backoff_ms = 500, max_backoff_ms = 10000 }
//!
//! allow_email_domains = ["example.com"]        # where keyroll:notify-email tags may add recipients
//! allow_sns_topics = ["arn:aws:sns:eu-west-1:123456789012:team-*"]  # keyroll:notify-sns-topic
//!
//! [[notify.webhook]]
//! name = "ops-slack"
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//! format = "slack"                    # json (default) | slack
//! events = "failures"                 # this channel only; default: notify.events
//!
//! [[notify.webhook]]
//! name = "audit"
//! url = "https://audit.example.com/keyroll"
//! headers = { Authorization = "Bearer ..." }
//!
//! [[notify.email]]
//! name = "security"
//! host = "email-smtp.eu-west-1.amazonaws.com"   # SES's SMTP interface
//! port = 587
//! security = "starttls"               # starttls (default, port 587) | tls (465) | none (25, loopback only with credentials)
//! username = "AKIA..."                # SES SMTP credentials
//! password = "..."
//! from = "keyroll <keyroll@example.com>"
//! to = ["security@example.com"]
//!
//! [[notify.sns]]                      # needs keyroll built with the `sns` feature
//! name = "alerts"
//! topic_arn = "arn:aws:sns:eu-west-1:123456789012:keyroll-alerts"
//! default = true                      # used for secrets without a keyroll:notify tag
//! ```
//!
//! Environment variables (each adds a channel to whatever a file configured):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `KEYROLL_NOTIFY_EVENTS` | `all`, `failures`, `successes` or `none` |
//! | `KEYROLL_NOTIFY_RETRY_ATTEMPTS` | attempts per channel (1-10) |
//! | `KEYROLL_NOTIFY_SNS_TOPIC_ARN` | SNS topic ARN(s), comma-separated |
//! | `KEYROLL_NOTIFY_WEBHOOK_URL` | a webhook, `KEYROLL_NOTIFY_WEBHOOK_FORMAT` = `json` or `slack` |
//! | `KEYROLL_NOTIFY_SLACK_WEBHOOK_URL` | a Slack incoming webhook |
//! | `KEYROLL_NOTIFY_ALLOW_SNS_TOPICS` | topics `keyroll:notify-sns-topic` tags may add (comma-separated; a trailing `*` is a prefix) |
//! | `KEYROLL_NOTIFY_ALLOW_EMAIL_DOMAINS` | domains `keyroll:notify-email` tags may add recipients in (comma-separated; `*.example.com` for subdomains) |
//! | `KEYROLL_NOTIFY_SMTP_HOST` | an e-mail channel, with `..._PORT`, `..._SECURITY`, `..._USERNAME`, `..._PASSWORD`, `..._FROM`, `..._TO` (comma-separated) |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::routing::EventFilter;

/// Why a notification configuration cannot be used. Raised when a driver starts, never
/// during a rotation.
#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    #[error("cannot read the notification configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the notification configuration in {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
    #[error("notification channel {channel}: {message}")]
    Channel { channel: String, message: String },
    #[error(
        "notification channel {channel} is an SNS channel, but this build has no SNS support; \
         build keyroll with the `sns` feature"
    )]
    SnsUnsupported { channel: String },
    #[error("notification configuration: {0}")]
    Invalid(String),
}

/// How often a channel is tried before the notification is given up (logged and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per channel and event, the first included (1-10). Default 3.
    pub attempts: u32,
    /// Delay before the second attempt; doubled for each further one. Default 500 ms.
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts. Default 10 s.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 10_000,
        }
    }
}

impl RetryConfig {
    /// The delay after failed attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> std::time::Duration {
        let exp = n.saturating_sub(1).min(20);
        let ms = self
            .initial_backoff_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_backoff_ms);
        std::time::Duration::from_millis(ms)
    }
}

/// `[notify]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Events sent by channels that set none themselves. Default `all`.
    pub events: EventFilter,
    pub retry: RetryConfig,
    pub webhook: Vec<WebhookConfig>,
    pub email: Vec<EmailConfig>,
    pub sns: Vec<SnsConfig>,
    /// SNS topics a secret's `keyroll:notify-sns-topic` tag may add: exact ARNs, or a
    /// prefix ending in `*`. Default: none (the tag's topics are refused and logged).
    pub allow_sns_topics: Vec<String>,
    /// E-mail domains a secret's `keyroll:notify-email` tag may add recipients in:
    /// `example.com`, or `*.example.com` for its subdomains. Default: none.
    pub allow_email_domains: Vec<String>,
}

/// Payload style of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON (see [`crate::RotationEvent`]).
    #[default]
    Json,
    /// Slack's incoming-webhook message (`text` and `attachments`), also understood by
    /// Mattermost, Rocket.Chat and others.
    Slack,
}

/// `[[notify.webhook]]`: an HTTP POST per event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// Kept secret: webhook URLs (Slack's) embed a token. Logs and errors show the host only.
    pub url: SecretString,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Extra request headers (e.g. `Authorization`); values are kept secret.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// PEM file of CA certificates to trust instead of the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub events: Option<EventFilter>,
    /// Used for secrets without a `keyroll:notify` tag. Default true.
    #[serde(default = "yes")]
    pub default: bool,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS`, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (port 25): only for relays on loopback; refused with credentials
    /// unless the host is a loopback address.
    None,
}

impl SmtpSecurity {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starttls" => Some(SmtpSecurity::Starttls),
            "tls" | "ssl" | "smtps" => Some(SmtpSecurity::Tls),
            "none" | "plain" => Some(SmtpSecurity::None),
            _ => None,
        }
    }
}

/// `[[notify.email]]`: e-mail over SMTP (works with Amazon SES's SMTP interface).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// `Name <address>` or `address`.
    pub from: String,
    pub to: Vec<String>,
    /// PEM file of CA certificates to trust instead of the built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Prepended to every subject. Default `[keyroll]`.
    #[serde(default)]
    pub subject_prefix: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub events: Option<EventFilter>,
    #[serde(default = "yes")]
    pub default: bool,
}

/// `[[notify.sns]]`: a message per event on an SNS topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub topic_arn: String,
    /// Region of the client; default: the topic's.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint instead of AWS's (otherwise `AWS_ENDPOINT_URL_SNS` / `AWS_ENDPOINT_URL` are
    /// honoured, like every AWS SDK).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub events: Option<EventFilter>,
    #[serde(default = "yes")]
    pub default: bool,
}

fn default_timeout() -> u64 {
    10
}
fn yes() -> bool {
    true
}

/// A channel name usable as a tag value and a metrics label.
pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `scheme://host[:port]` of a URL, for logs and errors (never its path or query, which may
/// carry a token).
pub fn url_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl NotifyConfig {
    /// Whether any channel is configured.
    pub fn is_empty(&self) -> bool {
        self.webhook.is_empty() && self.email.is_empty() && self.sns.is_empty()
    }

    /// Parses the `[notify]` table of a TOML document (e.g. a whole `keyroll.toml`; other
    /// sections are ignored). No `[notify]` section: no channels.
    pub fn from_toml_document(text: &str, path: &Path) -> Result<Self, NotifyConfigError> {
        let parse_err = |message: String| NotifyConfigError::Parse {
            path: path.into(),
            message,
        };
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let Some(section) = doc.remove("notify") else {
            return Ok(NotifyConfig::default());
        };
        let c: NotifyConfig = section
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads the `[notify]` section of a TOML file.
    pub fn load(path: &Path) -> Result<Self, NotifyConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| NotifyConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml_document(&text, path)
    }

    /// Adds what the `KEYROLL_NOTIFY_*` environment variables configure.
    pub fn with_env(self) -> Result<Self, NotifyConfigError> {
        self.with_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`Self::with_env`] over any variable source (tests).
    pub fn with_vars(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, NotifyConfigError> {
        if let Some(v) = var("KEYROLL_NOTIFY_EVENTS") {
            self.events = EventFilter::parse(&v).ok_or(NotifyConfigError::Env {
                var: "KEYROLL_NOTIFY_EVENTS",
                message: format!("must be all, failures, successes or none (got {v:?})"),
            })?;
        }
        if let Some(v) = var("KEYROLL_NOTIFY_RETRY_ATTEMPTS") {
            self.retry.attempts = v.trim().parse().map_err(|_| NotifyConfigError::Env {
                var: "KEYROLL_NOTIFY_RETRY_ATTEMPTS",
                message: format!("must be a whole number (got {v:?})"),
            })?;
        }
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        if let Some(v) = var("KEYROLL_NOTIFY_ALLOW_SNS_TOPICS") {
            self.allow_sns_topics.extend(list(v));
        }
        if let Some(v) = var("KEYROLL_NOTIFY_ALLOW_EMAIL_DOMAINS") {
            self.allow_email_domains.extend(list(v));
        }
        if let Some(v) = var("KEYROLL_NOTIFY_SNS_TOPIC_ARN") {
            for (i, arn) in v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
            {
                self.sns.push(SnsConfig {
                    name: Some(format!("env-sns-{}", i + 1)),
                    topic_arn: arn.to_string(),
                    region: None,
                    endpoint_url: None,
                    timeout_secs: default_timeout(),
                    events: None,
                    default: true,
                });
            }
        }
        let webhook = |url: String, format: WebhookFormat, name: &str| WebhookConfig {
            name: Some(name.into()),
            url: SecretString::from(url),
            format,
            headers: BTreeMap::new(),
            ca_file: None,
            timeout_secs: default_timeout(),
            events: None,
            default: true,
        };
        if let Some(url) = var("KEYROLL_NOTIFY_WEBHOOK_URL") {
            let format = match var("KEYROLL_NOTIFY_WEBHOOK_FORMAT")
                .as_deref()
                .map(str::trim)
            {
                None | Some("json") => WebhookFormat::Json,
                Some("slack") => WebhookFormat::Slack,
                Some(other) => {
                    return Err(NotifyConfigError::Env {
                        var: "KEYROLL_NOTIFY_WEBHOOK_FORMAT",
                        message: format!("must be json or slack (got {other:?})"),
                    });
                }
            };
            self.webhook.push(webhook(url, format, "env-webhook"));
        }
        if let Some(url) = var("KEYROLL_NOTIFY_SLACK_WEBHOOK_URL") {
            self.webhook
                .push(webhook(url, WebhookFormat::Slack, "env-slack"));
        }
        if let Some(host) = var("KEYROLL_NOTIFY_SMTP_HOST") {
            let security = match var("KEYROLL_NOTIFY_SMTP_SECURITY") {
                None => SmtpSecurity::Starttls,
                Some(s) => SmtpSecurity::parse(&s).ok_or(NotifyConfigError::Env {
                    var: "KEYROLL_NOTIFY_SMTP_SECURITY",
                    message: format!("must be starttls, tls or none (got {s:?})"),
                })?,
            };
            let port = match var("KEYROLL_NOTIFY_SMTP_PORT") {
                None => None,
                Some(p) => Some(p.trim().parse().map_err(|_| NotifyConfigError::Env {
                    var: "KEYROLL_NOTIFY_SMTP_PORT",
                    message: format!("must be a port number (got {p:?})"),
                })?),
            };
            let from = var("KEYROLL_NOTIFY_SMTP_FROM").ok_or(NotifyConfigError::Env {
                var: "KEYROLL_NOTIFY_SMTP_FROM",
                message: "is required with KEYROLL_NOTIFY_SMTP_HOST (the sender address)".into(),
            })?;
            let to: Vec<String> = var("KEYROLL_NOTIFY_SMTP_TO")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            self.email.push(EmailConfig {
                name: Some("env-email".into()),
                host,
                port,
                security,
                username: var("KEYROLL_NOTIFY_SMTP_USERNAME"),
                password: var("KEYROLL_NOTIFY_SMTP_PASSWORD").map(SecretString::from),
                from,
                to,
                ca_file: None,
                subject_prefix: None,
                timeout_secs: default_timeout(),
                events: None,
                default: true,
            });
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), NotifyConfigError> {
        if !(1..=10).contains(&self.retry.attempts) {
            return Err(NotifyConfigError::Invalid(format!(
                "retry.attempts must be between 1 and 10 (got {})",
                self.retry.attempts
            )));
        }
        if self.retry.max_backoff_ms > 300_000 {
            return Err(NotifyConfigError::Invalid(
                "retry.max_backoff_ms must be at most 300000 (5 minutes)".into(),
            ));
        }
        for t in &self.allow_sns_topics {
            if !t.starts_with("arn:") {
                return Err(NotifyConfigError::Invalid(format!(
                    "allow_sns_topics entry {t:?} is not a topic ARN: write \
                     arn:aws:sns:REGION:ACCOUNT:TOPIC, or such a prefix ending in *"
                )));
            }
        }
        for d in &self.allow_email_domains {
            let name = d.strip_prefix("*.").unwrap_or(d);
            if name.is_empty()
                || name.contains(['@', '*', ' ', '/'])
                || !name.contains('.') && name != "localhost"
            {
                return Err(NotifyConfigError::Invalid(format!(
                    "allow_email_domains entry {d:?} is not a domain: write example.com, or \
                     *.example.com for its subdomains"
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (name, timeout) in self.channel_names() {
            if !valid_name(&name) {
                return Err(NotifyConfigError::Channel {
                    channel: name,
                    message: "names are 1-64 letters, digits, '-', '_' or '.'".into(),
                });
            }
            if !names.insert(name.clone()) {
                return Err(NotifyConfigError::Channel {
                    channel: name,
                    message: "two channels have this name; names must be unique".into(),
                });
            }
            if timeout == 0 || timeout > 300 {
                return Err(NotifyConfigError::Channel {
                    channel: name,
                    message: "timeout_secs must be between 1 and 300".into(),
                });
            }
        }
        for (i, w) in self.webhook.iter().enumerate() {
            let name = channel_name(&w.name, "webhook", i);
            let url = reqwest::Url::parse(w.url.expose_secret()).map_err(|_| {
                NotifyConfigError::Channel {
                    channel: name.clone(),
                    message: "url is not a valid URL".into(),
                }
            })?;
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Err(NotifyConfigError::Channel {
                    channel: name,
                    message: format!(
                        "url must be http:// or https:// with a host (got {})",
                        url_origin(w.url.expose_secret())
                    ),
                });
            }
        }
        for (i, e) in self.email.iter().enumerate() {
            let name = channel_name(&e.name, "email", i);
            let err = |message: String| NotifyConfigError::Channel {
                channel: name.clone(),
                message,
            };
            if e.host.trim().is_empty() {
                return Err(err("host is empty".into()));
            }
            e.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|_| err(format!("from {:?} is not an e-mail address", e.from)))?;
            if e.to.is_empty() {
                return Err(err("to must name at least one recipient".into()));
            }
            for to in &e.to {
                to.parse::<lettre::message::Mailbox>()
                    .map_err(|_| err(format!("to {to:?} is not an e-mail address")))?;
            }
            if e.username.is_some() != e.password.is_some() {
                return Err(err("username and password go together".into()));
            }
            if e.security == SmtpSecurity::None
                && e.username.is_some()
                && !is_loopback_host(&e.host)
            {
                return Err(err(
                    "security = \"none\" would send the SMTP password in clear text; use \
                     starttls or tls (SES: port 587 with starttls)"
                        .into(),
                ));
            }
        }
        for (i, s) in self.sns.iter().enumerate() {
            let name = channel_name(&s.name, "sns", i);
            let parts: Vec<&str> = s.topic_arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[3].is_empty() {
                return Err(NotifyConfigError::Channel {
                    channel: name,
                    message: format!(
                        "topic_arn {:?} is not an SNS topic ARN \
                         (arn:aws:sns:REGION:ACCOUNT:NAME)",
                        s.topic_arn
                    ),
                });
            }
        }
        Ok(())
    }

    fn channel_names(&self) -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for (i, w) in self.webhook.iter().enumerate() {
            v.push((channel_name(&w.name, "webhook", i), w.timeout_secs));
        }
        for (i, e) in self.email.iter().enumerate() {
            v.push((channel_name(&e.name, "email", i), e.timeout_secs));
        }
        for (i, s) in self.sns.iter().enumerate() {
            v.push((channel_name(&s.name, "sns", i), s.timeout_secs));
        }
        v
    }
}

/// A channel's name: its own, or `KIND-N` (1-based).
pub(crate) fn channel_name(name: &Option<String>, kind: &str, index: usize) -> String {
    name.clone()
        .unwrap_or_else(|| format!("{kind}-{}", index + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn parses_the_documented_example_and_never_prints_secrets() {
        let text = r#"
            listen = "127.0.0.1:7150"
            [scheduler]
            tick_secs = 5
            [notify]
            events = "all"
            retry = { attempts = 4, initial_backoff_ms = 100, max_backoff_ms = 1000 }
            [[notify.webhook]]
            name = "ops-slack"
            url = "https://hooks.slack.com/services/T000/B000/SEKRETTOKEN"
            format = "slack"
            events = "failures"
            [[notify.webhook]]
            url = "https://audit.example.com/keyroll"
            headers = { Authorization = "Bearer SEKRETBEARER" }
            [[notify.email]]
            name = "security"
            host = "email-smtp.eu-west-1.amazonaws.com"
            username = "AKIAEXAMPLE"
            password = "SEKRETSMTP"
            from = "keyroll <keyroll@example.com>"
            to = ["security@example.com"]
            [[notify.sns]]
            topic_arn = "arn:aws:sns:eu-west-1:123456789012:keyroll-alerts"
            default = false
        "#;
        let c = NotifyConfig::from_toml_document(text, Path::new("k.toml")).unwrap();
        assert_eq!(c.retry.attempts, 4);
        assert_eq!(c.webhook[0].format, WebhookFormat::Slack);
        assert_eq!(c.webhook[0].events, Some(EventFilter::Failures));
        assert!(c.webhook[1].default);
        assert_eq!(c.email[0].security, SmtpSecurity::Starttls);
        assert!(!c.sns[0].default);
        let names: Vec<String> = c.channel_names().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["ops-slack", "webhook-2", "security", "sns-1"]);
        let debug = format!("{c:?}");
        for s in ["SEKRETTOKEN", "SEKRETBEARER", "SEKRETSMTP"] {
            assert!(!debug.contains(s), "{s} in Debug output");
        }
    }

    #[test]
    fn no_notify_section_means_no_channels() {
        let c = NotifyConfig::from_toml_document("listen = \"x\"", Path::new("k.toml")).unwrap();
        assert!(c.is_empty());
    }

    #[test]
    fn rejects_bad_configs_with_the_channel_named() {
        for (bad, expect) in [
            ("[notify]\nretry = { attempts = 0 }", "retry.attempts"),
            ("[[notify.webhook]]\nurl = \"ftp://x/y\"", "webhook-1"),
            (
                "[notify]\nallow_sns_topics = [\"topic\"]",
                "allow_sns_topics",
            ),
            (
                "[notify]\nallow_email_domains = [\"a@b.example\"]",
                "allow_email_domains",
            ),
            ("[[notify.webhook]]\nurl = \"not a url\"", "not a valid URL"),
            (
                "[[notify.webhook]]\nname = \"a b\"\nurl = \"https://x/\"",
                "names are",
            ),
            (
                "[[notify.webhook]]\nname = \"a\"\nurl = \"https://x/\"\n[[notify.sns]]\nname = \"a\"\ntopic_arn = \"arn:aws:sns:r:1:t\"",
                "unique",
            ),
            (
                "[[notify.email]]\nhost = \"smtp.example.com\"\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]",
                "clear text",
            ),
            (
                "[[notify.email]]\nhost = \"h\"\nfrom = \"nope\"\nto = [\"b@example.com\"]",
                "from",
            ),
            (
                "[[notify.email]]\nhost = \"h\"\nfrom = \"a@example.com\"\nto = []",
                "recipient",
            ),
            ("[[notify.sns]]\ntopic_arn = \"my-topic\"", "SNS topic ARN"),
            ("[notify]\nunknown = 1", "unknown"),
        ] {
            let e = NotifyConfig::from_toml_document(bad, Path::new("k.toml"))
                .expect_err(bad)
                .to_string();
            assert!(e.contains(expect), "{bad}: {e}");
        }
        // Without credentials, a plain relay is fine; with them, only on loopback.
        let ok = "[[notify.email]]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nusername = \"u\"\npassword = \"p\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]";
        NotifyConfig::from_toml_document(ok, Path::new("k.toml")).unwrap();
    }

    #[test]
    fn environment_variables_add_channels() {
        let vars: HashMap<&str, &str> = [
            ("KEYROLL_NOTIFY_EVENTS", "failures"),
            ("KEYROLL_NOTIFY_RETRY_ATTEMPTS", "5"),
            (
                "KEYROLL_NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:a, arn:aws:sns:us-east-1:123456789012:b",
            ),
            ("KEYROLL_NOTIFY_WEBHOOK_URL", "https://example.com/hook"),
            (
                "KEYROLL_NOTIFY_SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/x",
            ),
            (
                "KEYROLL_NOTIFY_SMTP_HOST",
                "email-smtp.us-east-1.amazonaws.com",
            ),
            ("KEYROLL_NOTIFY_SMTP_SECURITY", "tls"),
            ("KEYROLL_NOTIFY_SMTP_USERNAME", "AKIA"),
            ("KEYROLL_NOTIFY_SMTP_PASSWORD", "pw"),
            ("KEYROLL_NOTIFY_SMTP_FROM", "keyroll@example.com"),
            ("KEYROLL_NOTIFY_SMTP_TO", "a@example.com,b@example.com"),
        ]
        .into_iter()
        .collect();
        let c = NotifyConfig::default()
            .with_vars(|k| vars.get(k).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(c.events, EventFilter::Failures);
        assert_eq!(c.retry.attempts, 5);
        assert_eq!(c.sns.len(), 2);
        assert_eq!(c.sns[1].topic_arn, "arn:aws:sns:us-east-1:123456789012:b");
        assert_eq!(c.webhook.len(), 2);
        assert_eq!(c.webhook[1].format, WebhookFormat::Slack);
        assert_eq!(c.email[0].security, SmtpSecurity::Tls);
        assert_eq!(c.email[0].to.len(), 2);

        let bad = |k: &'static str, v: &'static str| {
            NotifyConfig::default()
                .with_vars(|x| (x == k).then(|| v.to_string()))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("KEYROLL_NOTIFY_EVENTS", "loud").contains("KEYROLL_NOTIFY_EVENTS"));
        assert!(bad("KEYROLL_NOTIFY_SMTP_HOST", "h").contains("KEYROLL_NOTIFY_SMTP_FROM"));
        assert!(bad("KEYROLL_NOTIFY_RETRY_ATTEMPTS", "99").contains("retry.attempts"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let r = RetryConfig {
            attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 350,
        };
        let ms: Vec<u128> = (1..=4).map(|n| r.backoff(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 350, 350]);
    }

    #[test]
    fn url_origin_hides_paths() {
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T/B/SECRET"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            url_origin("http://127.0.0.1:8080/x?t=1"),
            "http://127.0.0.1:8080"
        );
        assert!(is_loopback_host("127.0.0.1") && is_loopback_host("[::1]"));
        assert!(!is_loopback_host("10.0.0.1"));
    }
}
