//! `keyroll.toml`: access keys, limits, the scheduler, and external rotation functions.
//!
//! ```toml
//! listen = "127.0.0.1:7150"          # --listen wins
//! account = "000000000000"
//! max_connections = 1024
//! max_body_bytes = 1048576
//! shutdown_grace_secs = 30
//! request_deadline_secs = 10         # headers and body of one request, from its first byte
//! max_pending_connections = 256      # connections without an authenticated request yet
//! max_unauthenticated_bytes = 16777216  # request bytes buffered before signatures are checked
//! tls_cert = "/etc/keyroll/cert.pem" # optional: HTTPS on the API listener (with tls_key)
//! tls_key = "/etc/keyroll/key.pem"
//! metrics_listen = "127.0.0.1:7151"  # optional: /metrics only there
//! metrics_token = "..."              # optional: /metrics needs Authorization: Bearer ...
//! metrics_secret_labels = false      # secret names as metric labels (opt-in)
//!
//! [[access_keys]]                    # the IAM user arn:aws:iam::ACCOUNT:user/NAME
//! name = "ci"                        # required, unique
//! access_key_id = "AKIAEXAMPLE0000001"
//! secret_access_key = "..."
//! policy = "file://ci-policy.json"   # or inline JSON; or admin = true
//! tags = { team = "platform" }       # aws:PrincipalTag/team
//! session_token = "..."              # optional: a temporary key, requests must carry it
//!
//! [[roles]]                          # sts:AssumeRole targets (e.g. break-glass)
//! name = "break-glass"
//! policy = "file://break-glass.json"
//! trusted = ["alice"]
//! require_mfa = true
//! required_session_tags = ["Justification"]
//! notify = true
//!
//! [scheduler]
//! enabled = true
//! tick_secs = 60
//! max_concurrent = 4
//! max_attempts = 5
//! backoff_initial_secs = 30
//! backoff_max_secs = 3600
//! step_timeout_secs = 120            # one rotation step at most (then it fails, resumable)
//! rotation_timeout_secs = 600        # one whole rotation at most
//!
//! [functions.my-api-key-rotator]     # the function name of a RotationLambdaARN
//! command = ["python3", "/opt/rotators/api_key.py"]
//! timeout_secs = 60
//! env = { API_BASE = "http://127.0.0.1:9000" }
//!
//! [functions.SecretsRotationFunction] # an existing Lambda's name, rotated by keyroll's engine
//! builtin = true
//!
//! [targets]                           # the built-in rotator's database connections
//! connect_timeout_secs = 5
//! statement_timeout_secs = 30        # one statement (or lock wait) on keyroll's sessions
//! require_tls = false                # true: never plaintext to a database
//! ca_bundle = "/etc/ssl/rds-global-bundle.pem"
//! password_length = 32
//!
//! [targets.http]                      # where HTTP-engine secrets may send requests
//! allow_hosts = ["api.example.com", "*.partner.example"]   # default: none
//! allow_networks = ["10.20.0.0/16"]  # non-public addresses allowed (default: none)
//!
//! [targets.iam]                       # which IAM users IAM-engine secrets may rotate
//! allow_users = ["ci-deployer", "/service/"]               # default: none
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::credentials::AccessKey;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the configuration is not valid: {0}")]
    Invalid(String),
}

/// One `[[access_keys]]` entry: the IAM user `arn:aws:iam::ACCOUNT:user/NAME`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    #[serde(default)]
    pub session_token: Option<SecretString>,
    /// The IAM user name (required, unique): `arn:aws:iam::ACCOUNT:user/NAME`.
    #[serde(default)]
    pub name: Option<String>,
    /// An IAM identity policy: inline JSON, or `file://PATH` (relative to the configuration
    /// file's directory).
    #[serde(default)]
    pub policy: Option<String>,
    /// Principal tags, for `aws:PrincipalTag/KEY` and `${aws:PrincipalTag/KEY}`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Full access (still subject to explicit denies in resource policies, as in AWS).
    #[serde(default)]
    pub admin: bool,
    /// Base32 TOTP seed of the user's virtual MFA device (`arn:aws:iam::ACCOUNT:mfa/NAME`),
    /// for `GetSessionToken` / `AssumeRole` with `SerialNumber` and `TokenCode`.
    #[serde(default)]
    pub mfa_totp_secret: Option<SecretString>,
}

/// One `[[roles]]` entry: a role that `sts:AssumeRole` can reach
/// (`arn:aws:iam::ACCOUNT:role/NAME`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    /// The role's identity policy: inline JSON or `file://PATH`.
    pub policy: String,
    /// Who may assume it: user names, user ARNs, or the account (`ACCOUNT` / its root ARN).
    pub trusted: Vec<String>,
    /// `AssumeRole` needs `SerialNumber` + `TokenCode` (or a caller session with MFA).
    #[serde(default)]
    pub require_mfa: bool,
    /// Longest session (`DurationSeconds` is capped to it). Default 3600.
    #[serde(default = "default_max_session_secs")]
    pub max_session_secs: u64,
    /// Session tags `AssumeRole` must carry, e.g. `["Justification"]`.
    #[serde(default)]
    pub required_session_tags: Vec<String>,
    /// Send a `BreakGlassAssumed` notification at each assumption.
    #[serde(default)]
    pub notify: bool,
    /// Role tags (principal tags of its sessions, below session tags).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// IAM user and role names: 1–64 of `[A-Za-z0-9+=,.@_-]`.
pub fn valid_iam_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn default_max_session_secs() -> u64 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    pub enabled: bool,
    /// How often due secrets are looked for.
    pub tick_secs: u64,
    /// Rotations running at once (scheduled and `RotateSecret`'s together).
    pub max_concurrent: usize,
    /// Failed attempts after which the secret is marked failing (it is still retried, at most
    /// `backoff_max_secs` apart).
    pub max_attempts: u32,
    pub backoff_initial_secs: u64,
    pub backoff_max_secs: u64,
    /// Fraction of each backoff delay drawn at random (0–1).
    pub jitter: f64,
    /// The longest one rotation step may run before it is stopped and fails.
    pub step_timeout_secs: u64,
    /// The longest one whole rotation may run.
    pub rotation_timeout_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            tick_secs: 60,
            max_concurrent: 4,
            max_attempts: 5,
            backoff_initial_secs: 30,
            backoff_max_secs: 3600,
            jitter: 0.5,
            step_timeout_secs: 120,
            rotation_timeout_secs: 600,
        }
    }
}

/// A rotation function by name: an external command that reads one Lambda event on stdin,
/// or (`builtin = true`) another name for keyroll's built-in rotator, so that secrets
/// configured with an existing Lambda function's ARN rotate unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub builtin: bool,
    #[serde(default = "default_function_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
}

fn default_function_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: Option<String>,
    pub account: String,
    pub max_connections: usize,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
    pub access_keys: Vec<KeyConfig>,
    /// `[[roles]]`: roles for `sts:AssumeRole` (break-glass, scoped access).
    pub roles: Vec<RoleConfig>,
    pub scheduler: SchedulerConfig,
    pub functions: BTreeMap<String, FunctionConfig>,
    pub targets: TargetsConfig,
    /// `[notify]`: where RotationSucceeded / RotationFailed go (see docs/NOTIFICATIONS.md);
    /// `KEYROLL_NOTIFY_*` variables add to it.
    pub notify: keyroll_notify::NotifyConfig,
    /// `[audit]`: the tamper-evident audit trail (on by default).
    pub audit: crate::audit::AuditConfig,
    /// The whole of a request — TLS handshake, headers and body — must arrive within this
    /// many seconds (for a new connection, counted from its acceptance). Default 10.
    pub request_deadline_secs: u64,
    /// Connections that have not yet sent an authenticated request; beyond this, the oldest
    /// of them is closed. Default 256.
    pub max_pending_connections: usize,
    /// Request bytes buffered, all connections together, before their signatures are checked;
    /// beyond this, requests are refused with 503 until some complete. Default 16 MiB.
    pub max_unauthenticated_bytes: usize,
    /// PEM certificate chain for HTTPS on the API listener (needs `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serves `GET /metrics` on this address only (not on the API listener).
    pub metrics_listen: Option<String>,
    /// `GET /metrics` requires `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<SecretString>,
    /// Secret names as metric labels (per-secret rotation gauges). Off by default: metrics
    /// then show per-region totals only.
    pub metrics_secret_labels: bool,
}

/// How the built-in rotator reaches databases and which passwords it generates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetsConfig {
    /// One connection attempt's limit (TCP, TLS, authentication). Default 5 s.
    pub connect_timeout_secs: Option<u64>,
    /// One statement's (and one lock wait's) limit on keyroll's database sessions.
    /// Default 30 s.
    pub statement_timeout_secs: Option<u64>,
    /// PEM CA bundle to trust for database TLS instead of the system roots.
    pub ca_bundle: Option<PathBuf>,
    /// Generated password length (default 32).
    pub password_length: Option<u32>,
    /// Characters generated passwords never contain (default: AWS's per-engine set).
    pub exclude_characters: Option<String>,
    /// JSON fields a plain generated secret regenerates (default `password`; a secret's
    /// `keyroll:fields` tag wins).
    pub plain_fields: Option<Vec<String>>,
    /// Days after which a retired IAM access key is deleted (default: at the next rotation).
    pub iam_delete_previous_after_days: Option<u64>,
    /// Never connect to a database in plaintext: secrets without `"ssl"` need verified TLS,
    /// `"ssl": false` is refused (default false: plaintext only when the server offers no
    /// TLS at all, never after a failed handshake).
    pub require_tls: bool,
    /// `[targets.http]`: where HTTP-engine secrets may send requests.
    pub http: HttpTargetsConfig,
    /// `[targets.iam]`: which IAM users IAM-engine secrets may rotate.
    pub iam: IamTargetsConfig,
}

/// `[targets.http]`. Nothing is allowed by default: an HTTP-engine secret then fails
/// `createSecret` with an error naming `allow_hosts`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTargetsConfig {
    /// Host names requests may go to: exact names, `*.example.com` (any name under it),
    /// IP addresses, or `*` (any host).
    pub allow_hosts: Vec<keyroll_targets::egress::HostPattern>,
    /// Networks (CIDR) whose non-public addresses — loopback, link-local, private,
    /// unique-local, ... — requests may reach; public addresses need no entry.
    pub allow_networks: Vec<keyroll_targets::egress::Network>,
}

/// `[targets.iam]`. No user is allowed by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IamTargetsConfig {
    /// User names, path prefixes (`/service/`), or `*`.
    pub allow_users: Vec<keyroll_targets::egress::UserPattern>,
}

impl TargetsConfig {
    pub fn target_config(&self) -> keyroll_targets::TargetConfig {
        let mut t = keyroll_targets::TargetConfig::default();
        if let Some(s) = self.connect_timeout_secs {
            t.connect_timeout = Duration::from_secs(s);
        }
        if let Some(s) = self.statement_timeout_secs {
            t.statement_timeout = Duration::from_secs(s);
        }
        t.ca_bundle = self.ca_bundle.clone();
        t.require_tls = self.require_tls;
        t.password_length = self.password_length;
        t.exclude_characters = self.exclude_characters.clone();
        t.plain_fields = self.plain_fields.clone();
        t.iam_delete_previous_after = self
            .iam_delete_previous_after_days
            .map(|d| Duration::from_secs(d.saturating_mul(86_400)));
        t.policy = keyroll_targets::TargetPolicy {
            allow_hosts: self.http.allow_hosts.clone(),
            allow_networks: self.http.allow_networks.clone(),
            allow_iam_users: self.iam.allow_users.clone(),
        };
        t
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: None,
            account: "000000000000".into(),
            max_connections: 1024,
            // A 64 KiB secret, base64-encoded, plus the rest of the request.
            max_body_bytes: 1024 * 1024,
            shutdown_grace_secs: 30,
            access_keys: Vec::new(),
            roles: Vec::new(),
            scheduler: SchedulerConfig::default(),
            functions: BTreeMap::new(),
            targets: TargetsConfig::default(),
            notify: keyroll_notify::NotifyConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            request_deadline_secs: 10,
            max_pending_connections: 256,
            max_unauthenticated_bytes: 16 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            metrics_listen: None,
            metrics_token: None,
            metrics_secret_labels: false,
        }
    }
}

impl Config {
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        c.validate()?;
        c.notify
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.account.len() != 12 || !self.account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid(format!(
                "account must be 12 digits (got {:?})",
                self.account
            )));
        }
        if self.max_connections == 0 || self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1 and max_body_bytes at least 1024".into(),
            ));
        }
        if self.request_deadline_secs == 0 || self.request_deadline_secs > 3600 {
            return Err(ConfigError::Invalid(
                "request_deadline_secs must be between 1 and 3600".into(),
            ));
        }
        if self.max_pending_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_pending_connections must be at least 1".into(),
            ));
        }
        if self.max_unauthenticated_bytes < self.max_body_bytes {
            return Err(ConfigError::Invalid(format!(
                "max_unauthenticated_bytes ({}) must be at least max_body_bytes ({}), or no \
                 request of the largest allowed size could be read",
                self.max_unauthenticated_bytes, self.max_body_bytes
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together: set both (PEM files) for HTTPS, or neither"
                    .into(),
            ));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            return Err(ConfigError::Invalid(
                "metrics_token must be at least 16 characters (e.g. openssl rand -hex 32)".into(),
            ));
        }
        let s = &self.scheduler;
        if s.max_concurrent == 0 || s.max_attempts == 0 || s.tick_secs == 0 {
            return Err(ConfigError::Invalid(
                "scheduler.max_concurrent, max_attempts and tick_secs must be at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&s.jitter) {
            return Err(ConfigError::Invalid(
                "scheduler.jitter must be between 0 and 1".into(),
            ));
        }
        for (name, f) in &self.functions {
            if f.command.is_empty() != f.builtin {
                return Err(ConfigError::Invalid(format!(
                    "functions.{name} needs either command = [\"program\", \"arg\", ...] or \
                     builtin = true (not both)"
                )));
            }
            if keyroll_core::rotators::is_builtin(name) {
                return Err(ConfigError::Invalid(format!(
                    "functions.{name}: {name} is a built-in rotation function and cannot be \
                     mapped to a command"
                )));
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for k in &self.access_keys {
            if k.access_key_id.is_empty()
                || k.access_key_id.len() > 128
                || !k
                    .access_key_id
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/')
            {
                return Err(ConfigError::Invalid(format!(
                    "access key id {:?} must be 1 to 128 printable characters without '/'",
                    k.access_key_id
                )));
            }
            if !ids.insert(k.access_key_id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "access key id {:?} is configured twice",
                    k.access_key_id
                )));
            }
            let Some(name) = k.name.as_deref() else {
                return Err(ConfigError::Invalid(format!(
                    "access key {:?} needs a name: add name = \"USER\" (it becomes the IAM user \
                     arn:aws:iam::{}:user/USER that policies and the audit trail name)",
                    k.access_key_id, self.account
                )));
            };
            if !valid_iam_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "access key name {name:?} is not an IAM user name: 1 to 64 letters, digits \
                     and +=,.@_-"
                )));
            }
            if !names.insert(name) {
                return Err(ConfigError::Invalid(format!(
                    "the access key name {name:?} is used twice; names must be unique"
                )));
            }
            if k.policy.is_none() && !k.admin {
                return Err(ConfigError::Invalid(format!(
                    "access key {name:?} has neither a policy nor admin = true. Give it \
                     policy = '{{\"Version\":\"2012-10-17\",\"Statement\":[...]}}' (or \
                     policy = \"file://PATH\") to say what it may do, or admin = true for full \
                     access; keyroll never grants full access silently"
                )));
            }
        }
        let mut roles = std::collections::HashSet::new();
        for r in &self.roles {
            if !valid_iam_name(&r.name) {
                return Err(ConfigError::Invalid(format!(
                    "role name {:?} is not an IAM role name: 1 to 64 letters, digits and +=,.@_-",
                    r.name
                )));
            }
            if !roles.insert(r.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "the role name {:?} is used twice; names must be unique",
                    r.name
                )));
            }
            if r.trusted.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "role {:?} trusts nobody: add trusted = [\"USER\", ...] (user names, user \
                     ARNs, or the account id)",
                    r.name
                )));
            }
            if !(900..=43_200).contains(&r.max_session_secs) {
                return Err(ConfigError::Invalid(format!(
                    "role {:?}: max_session_secs must be between 900 and 43200 (as in IAM)",
                    r.name
                )));
            }
        }
        Ok(())
    }

    /// Reads a policy setting: inline JSON, or `file://PATH` relative to `base`.
    pub fn policy_text(value: &str, base: Option<&Path>) -> Result<String, ConfigError> {
        match value.strip_prefix("file://") {
            Some(path) => {
                let p = Path::new(path);
                let p = match base {
                    Some(b) if p.is_relative() => b.join(p),
                    _ => p.to_path_buf(),
                };
                std::fs::read_to_string(&p).map_err(|source| ConfigError::Read { path: p, source })
            }
            None => Ok(value.to_string()),
        }
    }

    pub fn keys(&self) -> Vec<AccessKey> {
        self.access_keys
            .iter()
            .map(|k| AccessKey {
                access_key_id: k.access_key_id.clone(),
                secret_access_key: k.secret_access_key.clone(),
                session_token: k.session_token.clone(),
                name: k.name.clone().unwrap_or_else(|| k.access_key_id.clone()),
            })
            .collect()
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn request_deadline(&self) -> Duration {
        Duration::from_secs(self.request_deadline_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
            listen = "127.0.0.1:7150"
            [[access_keys]]
            access_key_id = "AKIAEXAMPLE0000001"
            secret_access_key = "s3cr3t"
            session_token = "tok"
            name = "ci"
            admin = true
            [scheduler]
            tick_secs = 5
            [functions.my-rotator]
            command = ["python3", "rotate.py"]
            env = { A = "b" }
            [functions.SecretsRotationFunction]
            builtin = true
        "#;
        let c = Config::from_toml(text, Path::new("k.toml")).unwrap();
        assert_eq!(c.scheduler.tick_secs, 5);
        assert_eq!(c.scheduler.max_attempts, 5);
        assert_eq!(c.functions["my-rotator"].timeout_secs, 60);
        assert_eq!(c.keys()[0].access_key_id, "AKIAEXAMPLE0000001");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn target_allow_lists_default_to_nothing_and_reach_the_targets() {
        let c = Config::from_toml("", Path::new("k.toml")).unwrap();
        assert_eq!(
            c.targets.target_config().policy,
            keyroll_targets::TargetPolicy::default()
        );
        let text = r#"
            [targets.http]
            allow_hosts = ["api.example.com", "*.partner.example"]
            allow_networks = ["10.20.0.0/16", "127.0.0.1"]
            [targets.iam]
            allow_users = ["ci-deployer", "/service/"]
        "#;
        let c = Config::from_toml(text, Path::new("k.toml")).unwrap();
        let p = c.targets.target_config().policy;
        assert_eq!(
            p,
            keyroll_targets::TargetPolicy::parse(
                &["api.example.com", "*.partner.example"],
                &["10.20.0.0/16", "127.0.0.1/32"],
                &["ci-deployer", "/service/"],
            )
            .unwrap()
        );
        assert!(
            p.decide("api.example.com", "10.20.1.2".parse().unwrap())
                .is_ok()
        );
        assert!(
            p.decide("api.example.com", "169.254.169.254".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn rejects_bad_configs() {
        for bad in [
            "account = \"1\"",
            "[functions.keyroll]\ncommand = [\"x\"]",
            "[functions.f]\ncommand = []",
            "[functions.f]\ncommand = [\"x\"]\nbuiltin = true",
            "unknown = 1",
            "[scheduler]\njitter = 2.0",
            // no name; no policy and not admin; a duplicate name
            "[[access_keys]]\naccess_key_id = \"AKIAEXAMPLE0000001\"\nsecret_access_key = \"s\"\nadmin = true",
            "[[access_keys]]\naccess_key_id = \"AKIAEXAMPLE0000001\"\nsecret_access_key = \"s\"\nname = \"a\"",
            "[[access_keys]]\naccess_key_id = \"A1\"\nsecret_access_key = \"s\"\nname = \"a\"\nadmin = true\n[[access_keys]]\naccess_key_id = \"A2\"\nsecret_access_key = \"s\"\nname = \"a\"\nadmin = true",
            "[[roles]]\nname = \"r\"\npolicy = \"{}\"\ntrusted = []",
            "request_deadline_secs = 0",
            "max_pending_connections = 0",
            "max_unauthenticated_bytes = 1024",
            "tls_cert = \"c.pem\"",
            "metrics_token = \"short\"",
            "[targets.http]\nallow_hosts = [\"http://api.example.com\"]",
            "[targets.http]\nallow_networks = [\"10.0.0.1/8\"]",
            "[targets.http]\nallow_host = [\"a\"]",
            "[targets.iam]\nallow_users = [\"service/\"]",
        ] {
            assert!(
                Config::from_toml(bad, Path::new("k.toml")).is_err(),
                "{bad}"
            );
        }
    }
}
