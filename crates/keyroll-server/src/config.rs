//! `keyroll.toml`: access keys, limits, the scheduler, and external rotation functions.
//!
//! ```toml
//! listen = "127.0.0.1:7150"          # --listen wins
//! account = "000000000000"
//! max_connections = 1024
//! max_body_bytes = 1048576
//! shutdown_grace_secs = 30
//!
//! [[access_keys]]
//! access_key_id = "AKIAEXAMPLE0000001"
//! secret_access_key = "..."
//! session_token = "..."              # optional: a temporary key, requests must carry it
//! name = "ci"
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
//! ca_bundle = "/etc/ssl/rds-global-bundle.pem"
//! password_length = 32
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    #[serde(default)]
    pub session_token: Option<SecretString>,
    #[serde(default)]
    pub name: Option<String>,
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
    pub scheduler: SchedulerConfig,
    pub functions: BTreeMap<String, FunctionConfig>,
    pub targets: TargetsConfig,
    /// `[notify]`: where RotationSucceeded / RotationFailed go (see docs/NOTIFICATIONS.md);
    /// `KEYROLL_NOTIFY_*` variables add to it.
    pub notify: keyroll_notify::NotifyConfig,
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
        t.password_length = self.password_length;
        t.exclude_characters = self.exclude_characters.clone();
        t.plain_fields = self.plain_fields.clone();
        t.iam_delete_previous_after = self
            .iam_delete_previous_after_days
            .map(|d| Duration::from_secs(d.saturating_mul(86_400)));
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
            scheduler: SchedulerConfig::default(),
            functions: BTreeMap::new(),
            targets: TargetsConfig::default(),
            notify: keyroll_notify::NotifyConfig::default(),
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
        for k in &self.access_keys {
            if k.access_key_id.len() < 16 || k.access_key_id.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "access key id {:?} must be at least 16 characters without '/'",
                    k.access_key_id
                )));
            }
        }
        Ok(())
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
    fn rejects_bad_configs() {
        for bad in [
            "account = \"1\"",
            "[functions.keyroll]\ncommand = [\"x\"]",
            "[functions.f]\ncommand = []",
            "[functions.f]\ncommand = [\"x\"]\nbuiltin = true",
            "unknown = 1",
            "[scheduler]\njitter = 2.0",
        ] {
            assert!(
                Config::from_toml(bad, Path::new("k.toml")).is_err(),
                "{bad}"
            );
        }
    }
}
