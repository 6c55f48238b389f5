//! [`AgentHttpSource`]: GetSecretValue through the AWS Secrets Manager Agent's local HTTP API
//! (`GET /secretsmanager/get?secretId=…` with the `X-Aws-Parameters-Secrets-Token` header), as
//! served by AWS's agent or by `keyroll agent`.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Deserialize;

use crate::source::{SecretEntry, SecretPayload, SecretSource, SourceError, VersionSelector};

/// The header carrying the SSRF token.
pub const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";
/// The variables the agent reads its SSRF token from, first set wins.
pub const TOKEN_ENV_VARIABLES: [&str; 3] = [
    "AWS_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];
/// The agent's default address.
pub const DEFAULT_URL: &str = "http://localhost:2773";

/// A [`SecretSource`] over the agent's HTTP API.
#[derive(Clone)]
pub struct AgentHttpSource {
    client: reqwest::Client,
    base_url: String,
    token: SecretString,
}

impl fmt::Debug for AgentHttpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHttpSource")
            .field("base_url", &self.base_url)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

impl AgentHttpSource {
    /// An agent at `base_url` (e.g. `http://localhost:2773`) with the SSRF token `token`.
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| SourceError::Transport {
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(AgentHttpSource {
            client,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token,
        })
    }

    /// An agent at `base_url` with the token the agent itself reads: the first set of
    /// `AWS_TOKEN`, `AWS_SESSION_TOKEN`, `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    pub fn from_env(base_url: impl Into<String>) -> Result<Self, SourceError> {
        let token = TOKEN_ENV_VARIABLES
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|t| !t.is_empty()))
            .ok_or_else(|| SourceError::Transport {
                message: "no SSRF token: set AWS_TOKEN (or AWS_SESSION_TOKEN or \
                          AWS_CONTAINER_AUTHORIZATION_TOKEN) to the agent's token"
                    .to_string(),
            })?;
        Self::new(base_url, SecretString::from(token))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(rename = "ARN")]
    arn: String,
    name: String,
    version_id: String,
    #[serde(default)]
    secret_string: Option<String>,
    #[serde(default)]
    secret_binary: Option<String>,
    #[serde(default)]
    version_stages: Vec<String>,
    #[serde(default)]
    created_date: Option<serde_json::Value>,
}

fn error_code(body: &str) -> (Option<String>, String) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return (None, body.trim().to_string());
    };
    let code = ["__type", "code", "Code"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|c| c.as_str()))
        .map(|c| c.rsplit('#').next().unwrap_or(c).to_string());
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|c| c.as_str()))
        .unwrap_or("")
        .to_string();
    (code, message)
}

#[async_trait::async_trait]
impl SecretSource for AgentHttpSource {
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        let (vk, vv) = match version {
            VersionSelector::Stage(s) => ("versionStage", s.as_str()),
            VersionSelector::VersionId(v) => ("versionId", v.as_str()),
        };
        let resp = self
            .client
            .get(format!("{}/secretsmanager/get", self.base_url))
            .query(&[("secretId", secret_id), (vk, vv)])
            .header(TOKEN_HEADER, self.token.expose_secret())
            .send()
            .await
            .map_err(|e| SourceError::Transport {
                message: format!("{} ({e})", self.base_url),
            })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| SourceError::Transport {
            message: format!("reading the agent's answer: {e}"),
        })?;
        if !status.is_success() {
            let (code, message) = error_code(&body);
            let code = code.unwrap_or_else(|| match status.as_u16() {
                401 | 403 => "AccessDeniedException".to_string(),
                404 => "ResourceNotFoundException".to_string(),
                _ => "Unknown".to_string(),
            });
            return Err(SourceError::Service {
                code,
                message,
                status: Some(status.as_u16()),
            });
        }
        // The answer holds the secret: parse it from a buffer that is wiped afterwards.
        let body = zeroize::Zeroizing::new(body);
        let a: Answer = serde_json::from_str(&body).map_err(|e| SourceError::InvalidResponse {
            message: format!("not GetSecretValue JSON: {e}"),
        })?;
        let value = match (a.secret_string, a.secret_binary) {
            (Some(s), _) => SecretPayload::String(SecretString::from(s)),
            (None, Some(b64)) => {
                let b64 = zeroize::Zeroizing::new(b64);
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| SourceError::InvalidResponse {
                        message: format!("SecretBinary is not base64: {e}"),
                    })?;
                SecretPayload::Binary(SecretSlice::from(bytes))
            }
            (None, None) => {
                return Err(SourceError::InvalidResponse {
                    message: "no SecretString or SecretBinary".to_string(),
                });
            }
        };
        let created_date = a.created_date.and_then(|d| match d {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        Ok(SecretEntry {
            arn: a.arn,
            name: a.name,
            version_id: a.version_id,
            version_stages: a.version_stages,
            created_date,
            value,
        })
    }
}
