//! [`AwsSdkSource`]: GetSecretValue through aws-sdk-secretsmanager — real AWS, or `keyroll
//! serve` when the client's endpoint URL points at it.
//!
//! The SDK is compiled with its default features off, so it brings no HTTPS client of its
//! own: build the [`aws_sdk_secretsmanager::Client`] from an `aws_config` loader with an HTTP
//! client (e.g. `aws-smithy-http-client` with rustls), as the examples do.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use secrecy::{SecretSlice, SecretString};

use crate::source::{SecretEntry, SecretPayload, SecretSource, SourceError, VersionSelector};

/// A [`SecretSource`] over an aws-sdk-secretsmanager client.
#[derive(Debug, Clone)]
pub struct AwsSdkSource {
    client: Client,
}

impl AwsSdkSource {
    pub fn new(client: Client) -> Self {
        AwsSdkSource { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn map_error<E>(e: SdkError<E>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let status = Some(se.raw().status().as_u16());
            SourceError::Service {
                code: err.code().unwrap_or("Unknown").to_string(),
                message: err.message().unwrap_or("").to_string(),
                status,
            }
        }
        SdkError::ResponseError(_) => SourceError::InvalidResponse {
            message: DisplayErrorContext(&e).to_string(),
        },
        _ => SourceError::Transport {
            message: DisplayErrorContext(&e).to_string(),
        },
    }
}

#[async_trait]
impl SecretSource for AwsSdkSource {
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        let req = self.client.get_secret_value().secret_id(secret_id);
        let req = match version {
            VersionSelector::Stage(s) => req.version_stage(s),
            VersionSelector::VersionId(v) => req.version_id(v),
        };
        let out = req.send().await.map_err(map_error)?;
        let missing = |field: &str| SourceError::InvalidResponse {
            message: format!("GetSecretValue's answer has no {field}"),
        };
        let value = match (out.secret_string, out.secret_binary) {
            (Some(s), _) => SecretPayload::String(SecretString::from(s)),
            (None, Some(b)) => SecretPayload::Binary(SecretSlice::from(b.into_inner())),
            (None, None) => return Err(missing("SecretString or SecretBinary")),
        };
        Ok(SecretEntry {
            arn: out.arn.ok_or_else(|| missing("ARN"))?,
            name: out.name.ok_or_else(|| missing("Name"))?,
            version_id: out.version_id.ok_or_else(|| missing("VersionId"))?,
            version_stages: out.version_stages.unwrap_or_default(),
            created_date: out.created_date.map(|d| d.as_secs_f64()),
            value,
        })
    }
}
