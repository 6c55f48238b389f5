//! Where secrets come from: the [`SecretSource`] trait and what it returns.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// The staging label of a secret's current version.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The staging label of the version a rotation in progress is installing.
pub const AWSPENDING: &str = "AWSPENDING";
/// The staging label of the version AWSCURRENT replaced.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Which version of a secret to read: by staging label (default `AWSCURRENT`) or by version id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    Stage(String),
    VersionId(String),
}

impl VersionSelector {
    /// `AWSCURRENT`.
    pub fn current() -> Self {
        VersionSelector::Stage(AWSCURRENT.to_string())
    }
    /// `AWSPENDING`.
    pub fn pending() -> Self {
        VersionSelector::Stage(AWSPENDING.to_string())
    }
    /// `AWSPREVIOUS`.
    pub fn previous() -> Self {
        VersionSelector::Stage(AWSPREVIOUS.to_string())
    }
    pub fn stage(label: impl Into<String>) -> Self {
        VersionSelector::Stage(label.into())
    }
    pub fn version_id(id: impl Into<String>) -> Self {
        VersionSelector::VersionId(id.into())
    }
}

impl Default for VersionSelector {
    fn default() -> Self {
        VersionSelector::current()
    }
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSelector::Stage(s) => write!(f, "stage {s}"),
            VersionSelector::VersionId(v) => write!(f, "version {v}"),
        }
    }
}

/// A secret's value: text or bytes, wiped from memory on drop, never printed.
pub enum SecretPayload {
    String(SecretString),
    Binary(SecretSlice<u8>),
}

impl SecretPayload {
    /// The text, when the secret is a `SecretString`.
    pub fn expose_str(&self) -> Option<&str> {
        match self {
            SecretPayload::String(s) => Some(s.expose_secret()),
            SecretPayload::Binary(_) => None,
        }
    }
    /// The raw bytes (UTF-8 for text).
    pub fn expose_bytes(&self) -> &[u8] {
        match self {
            SecretPayload::String(s) => s.expose_secret().as_bytes(),
            SecretPayload::Binary(b) => b.expose_secret(),
        }
    }
    pub fn is_binary(&self) -> bool {
        matches!(self, SecretPayload::Binary(_))
    }
}

impl fmt::Debug for SecretPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretPayload::String(_) => f.write_str("SecretString([REDACTED])"),
            SecretPayload::Binary(_) => f.write_str("SecretBinary([REDACTED])"),
        }
    }
}

/// One version of a secret, as GetSecretValue returns it.
pub struct SecretEntry {
    /// The secret's full ARN (what invalidation by ARN matches).
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub version_stages: Vec<String>,
    /// Seconds since the Unix epoch, when the source reports it.
    pub created_date: Option<f64>,
    pub value: SecretPayload,
}

impl SecretEntry {
    /// The secret's text, when it is a `SecretString`.
    pub fn secret_string(&self) -> Option<&str> {
        self.value.expose_str()
    }
}

impl fmt::Debug for SecretEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretEntry")
            .field("arn", &self.arn)
            .field("name", &self.name)
            .field("version_id", &self.version_id)
            .field("version_stages", &self.version_stages)
            .field("created_date", &self.created_date)
            .field("value", &self.value)
            .finish()
    }
}

/// Why a source could not return a secret. Cloneable: one upstream failure is handed to every
/// reader that waited on the same call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The service answered with an error (`code` is AWS's error type, e.g.
    /// `ResourceNotFoundException`; `status` its HTTP status when known).
    #[error("{code}: {message}")]
    Service {
        code: String,
        message: String,
        status: Option<u16>,
    },
    /// The service could not be reached or did not answer.
    #[error(
        "could not reach the secrets service: {message} (check the endpoint URL, the network and that the service is running)"
    )]
    Transport { message: String },
    /// The service answered something this client cannot read.
    #[error(
        "the secrets service sent a response that is not GetSecretValue's: {message} (check that the endpoint URL points at Secrets Manager, keyroll serve or the agent)"
    )]
    InvalidResponse { message: String },
}

impl SourceError {
    /// AWS's error type, or `None` for transport and decoding failures.
    pub fn code(&self) -> Option<&str> {
        match self {
            SourceError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The secret (or the requested version or label) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("ResourceNotFoundException")
    }

    /// Worth retrying later: the service was unreachable, throttled or failed internally.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Transport { .. } => true,
            SourceError::InvalidResponse { .. } => false,
            SourceError::Service { code, status, .. } => {
                matches!(
                    code.as_str(),
                    "ThrottlingException" | "InternalServiceError" | "ServiceUnavailable"
                ) || status.is_some_and(|s| s >= 500 || s == 429)
            }
        }
    }
}

/// Anything that answers GetSecretValue: aws-sdk-secretsmanager (feature `aws-sdk`), the
/// Secrets Manager Agent's HTTP API (feature `agent-http`), or your own.
#[async_trait]
pub trait SecretSource: Send + Sync + 'static {
    /// One GetSecretValue call for `secret_id` (a name, a full ARN or a partial ARN).
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError>;
}

#[async_trait]
impl<S: SecretSource + ?Sized> SecretSource for Arc<S> {
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        (**self).get_secret_value(secret_id, version).await
    }
}

#[async_trait]
impl<S: SecretSource + ?Sized> SecretSource for Box<S> {
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        (**self).get_secret_value(secret_id, version).await
    }
}

/// Whether `id` names the secret whose full ARN is `arn` and whose name is `name`: the name,
/// the full ARN, or a partial ARN (the full one without the `-` and six random characters
/// Secrets Manager appends).
pub fn id_matches(id: &str, arn: &str, name: &str) -> bool {
    if id == arn || id == name {
        return true;
    }
    match arn.strip_prefix(id) {
        Some(rest) => rest.len() == 7 && rest.starts_with('-') && id.starts_with("arn:"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_debug_never_prints_the_value() {
        let e = SecretEntry {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf".into(),
            name: "db".into(),
            version_id: "v1".into(),
            version_stages: vec![AWSCURRENT.into()],
            created_date: None,
            value: SecretPayload::String(SecretString::from("hunter2".to_string())),
        };
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("REDACTED"));
        assert_eq!(e.secret_string(), Some("hunter2"));
    }

    #[test]
    fn ids_match_name_full_and_partial_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:app/db-AbCdEf";
        assert!(id_matches("app/db", arn, "app/db"));
        assert!(id_matches(arn, arn, "app/db"));
        assert!(id_matches(
            "arn:aws:secretsmanager:us-east-1:1:secret:app/db",
            arn,
            "app/db"
        ));
        assert!(!id_matches("app/d", arn, "app/db"));
        assert!(!id_matches(
            "arn:aws:secretsmanager:us-east-1:1:secret:app",
            arn,
            "app/db"
        ));
    }

    #[test]
    fn transient_errors() {
        let t = SourceError::Transport {
            message: "refused".into(),
        };
        assert!(t.is_transient());
        let nf = SourceError::Service {
            code: "ResourceNotFoundException".into(),
            message: "no".into(),
            status: Some(400),
        };
        assert!(nf.is_not_found() && !nf.is_transient());
        let throttled = SourceError::Service {
            code: "ThrottlingException".into(),
            message: "slow down".into(),
            status: Some(400),
        };
        assert!(throttled.is_transient());
    }
}
