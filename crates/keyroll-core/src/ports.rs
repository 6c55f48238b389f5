//! The two ports of a rotation: where secrets live ([`SecretsApi`], [`RotationStore`]) and
//! the system that holds the credential ([`Target`]).

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::*;
use crate::error::SmError;
use crate::model::{RotationRules, RotationStatus, Step};
use crate::value::SecretValue;

/// The Secrets Manager API, as a rotation function or a client sees it. Implemented by the
/// embedded store (one region of it) and by the AWS Secrets Manager adapter.
#[async_trait]
pub trait SecretsApi: Send + Sync {
    async fn create_secret(
        &self,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, SmError>;
    async fn get_secret_value(
        &self,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, SmError>;
    async fn put_secret_value(
        &self,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, SmError>;
    async fn update_secret(
        &self,
        req: UpdateSecretRequest,
    ) -> Result<UpdateSecretResponse, SmError>;
    async fn update_secret_version_stage(
        &self,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<ArnName, SmError>;
    async fn describe_secret(
        &self,
        req: SecretIdRequest,
    ) -> Result<DescribeSecretResponse, SmError>;
    async fn list_secrets(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, SmError>;
    async fn list_secret_version_ids(
        &self,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse, SmError>;
    async fn delete_secret(
        &self,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, SmError>;
    async fn restore_secret(&self, req: SecretIdRequest) -> Result<ArnName, SmError>;
    async fn tag_resource(&self, req: TagResourceRequest) -> Result<Empty, SmError>;
    async fn untag_resource(&self, req: UntagResourceRequest) -> Result<Empty, SmError>;

    /// `GetRandomPassword`. The default draws locally from the OS CSPRNG.
    async fn get_random_password(
        &self,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, SmError> {
        let policy = req.policy()?;
        Ok(GetRandomPasswordResponse {
            random_password: policy.generate()?,
        })
    }
}

/// Whether a store could add the value-less `AWSPENDING` version that starts a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The placeholder exists (the embedded store, like the Secrets Manager service).
    Created,
    /// The store cannot hold a version without a value (real Secrets Manager outside
    /// `RotateSecret`): `createSecret` creates the pending version directly.
    Unsupported,
}

/// Held while a rotation of one secret runs; dropping it lets the next one start.
pub struct RotationLock(pub Box<dyn Send + Sync>);

impl std::fmt::Debug for RotationLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RotationLock")
    }
}

/// What the Secrets Manager *service* does around a rotation function: the placeholder,
/// the clean-up, `LastRotatedDate`, and making sure one secret rotates once at a time.
#[async_trait]
pub trait RotationStore: SecretsApi {
    /// Saves the rotation configuration and enables rotation (what `RotateSecret` does with
    /// its `RotationLambdaARN` and `RotationRules`).
    async fn configure_rotation(
        &self,
        secret_id: &str,
        lambda_arn: Option<String>,
        rules: Option<RotationRules>,
    ) -> Result<(), SmError>;

    /// Attaches `AWSPENDING` to a new value-less version `token`.
    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<Placeholder, SmError>;

    /// [`Self::begin_rotation`] and [`Self::record_rotation_status`] together; stores that
    /// can do both in one write (one fsync) override it.
    async fn begin_rotation_with_status(
        &self,
        secret_id: &str,
        token: &str,
        status: &RotationStatus,
    ) -> Result<Placeholder, SmError> {
        let p = self.begin_rotation(secret_id, token).await?;
        self.record_rotation_status(secret_id, status.clone())
            .await?;
        Ok(p)
    }

    /// After `finishSecret`: removes `AWSPENDING` from `token`, sets `LastRotatedDate` (and the
    /// next rotation date) and records success.
    async fn complete_rotation(&self, secret_id: &str, token: &str) -> Result<(), SmError>;

    /// Records how a rotation is going or how it failed (visible in `DescribeSecret`).
    async fn record_rotation_status(
        &self,
        secret_id: &str,
        status: RotationStatus,
    ) -> Result<(), SmError>;

    /// Takes the per-secret rotation lock without waiting: `Ok(None)` when another rotation
    /// of the same secret (in this process or, for stores that can tell, another one) holds it.
    fn try_lock_rotation(&self, arn: &str) -> Result<Option<RotationLock>, SmError>;

    /// The store's clock (injected in tests).
    fn now(&self) -> crate::time::Timestamp;

    /// `ListSecrets` in pages of up to `page_size` entries, for callers that walk every
    /// secret (reports, fleet rotation). Through the AWS API a page holds at most 100 (this
    /// default); a store in this process answers larger pages, so that walking 100,000
    /// secrets takes a few passes over them rather than 1,000.
    async fn list_secrets_in_pages_of(
        &self,
        req: ListSecretsRequest,
        page_size: usize,
    ) -> Result<ListSecretsResponse, SmError> {
        let max_results = Some(page_size.clamp(1, 100) as i64);
        self.list_secrets(ListSecretsRequest { max_results, ..req })
            .await
    }
}

/// A secret value together with the version it came from.
#[derive(Debug, Clone)]
pub struct VersionedValue {
    pub version_id: String,
    pub stages: Vec<String>,
    pub value: SecretValue,
}

impl VersionedValue {
    pub fn from_response(r: GetSecretValueResponse) -> Result<Self, SmError> {
        let value = r
            .value()
            .ok_or_else(|| SmError::no_value_for_version(&r.version_id))?;
        Ok(VersionedValue {
            version_id: r.version_id,
            stages: r.version_stages,
            value,
        })
    }

    /// The value as a JSON object (database secrets and most others are). The error never
    /// quotes the value.
    pub fn json(&self) -> Result<serde_json::Map<String, serde_json::Value>, TargetError> {
        self.value.json_object().ok_or_else(|| {
            TargetError::InvalidSecret(format!(
                "version {} is not a JSON object (the value is not shown)",
                self.version_id
            ))
        })
    }
}

/// Why a target could not do its part. Messages name the system, the address, the user and
/// the step — never a password or any other secret value.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The secret's content cannot be used (missing field, wrong type...).
    #[error("{0}")]
    InvalidSecret(String),
    /// The system could not be reached (DNS, connection refused, timeout, TLS).
    #[error("{0}")]
    Unreachable(String),
    /// The system refused the credentials.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// Logged in, but not allowed to make the change.
    #[error("{0}")]
    PermissionDenied(String),
    /// The system refused or failed the change for another reason.
    #[error("{0}")]
    Rejected(String),
    /// The pending credential did not pass `testSecret`.
    #[error("{0}")]
    TestFailed(String),
    /// keyroll's own configuration is wrong for this secret.
    #[error("{0}")]
    Misconfigured(String),
    #[error("secret store: {0}")]
    Store(#[from] SmError),
}

impl TargetError {
    /// A stable class name for metrics, notifications and Lambda `errorType`s.
    pub fn class(&self) -> &'static str {
        match self {
            TargetError::InvalidSecret(_) => "InvalidSecret",
            TargetError::Unreachable(_) => "Unreachable",
            TargetError::AuthenticationFailed(_) => "AuthenticationFailed",
            TargetError::PermissionDenied(_) => "PermissionDenied",
            TargetError::Rejected(_) => "Rejected",
            TargetError::TestFailed(_) => "TestFailed",
            TargetError::Misconfigured(_) => "Misconfigured",
            TargetError::Store(_) => "StoreError",
        }
    }
}

/// The system holding a credential. Every method must be safe to call again after a crash
/// or a retry (check before acting).
#[async_trait]
pub trait Target: Send + Sync {
    /// Short name for logs and errors: `none`, `postgres`, `mysql`, ...
    fn name(&self) -> &str;

    /// `createSecret`: the pending value, usually the current one with a new password.
    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError>;

    /// `setSecret`: make the system accept the pending credential.
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError>;

    /// `testSecret`: prove the pending credential works.
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError>;

    /// After `finishSecret` moved `AWSCURRENT` to the pending version: retire what the
    /// previous version held, if the system needs that (IAM keys). In here, `ctx.pending()`
    /// is the promoted version and `ctx.previous()` the one it replaced.
    async fn finish(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }
}

/// Everything a target may look at during one step, fetched lazily and at most once.
pub struct StepContext<'a> {
    pub store: &'a dyn SecretsApi,
    pub step: Step,
    /// The secret's ARN.
    pub secret_id: &'a str,
    /// The version being rotated to (`ClientRequestToken`).
    pub token: &'a str,
    pub description: &'a DescribeSecretResponse,
    current: tokio::sync::OnceCell<VersionedValue>,
    pending: tokio::sync::OnceCell<VersionedValue>,
    previous: tokio::sync::OnceCell<Option<VersionedValue>>,
}

impl<'a> StepContext<'a> {
    pub fn new(
        store: &'a dyn SecretsApi,
        step: Step,
        secret_id: &'a str,
        token: &'a str,
        description: &'a DescribeSecretResponse,
    ) -> Self {
        StepContext {
            store,
            step,
            secret_id,
            token,
            description,
            current: Default::default(),
            pending: Default::default(),
            previous: Default::default(),
        }
    }

    async fn fetch(
        &self,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<VersionedValue, SmError> {
        let r = self
            .store
            .get_secret_value(GetSecretValueRequest {
                secret_id: self.secret_id.to_string(),
                version_id: version_id.map(str::to_string),
                version_stage: stage.map(str::to_string),
            })
            .await?;
        VersionedValue::from_response(r)
    }

    /// The `AWSCURRENT` version.
    pub async fn current(&self) -> Result<&VersionedValue, TargetError> {
        Ok(self
            .current
            .get_or_try_init(|| self.fetch(None, Some(crate::model::AWSCURRENT)))
            .await?)
    }

    /// The version being rotated to (by its id, the token).
    pub async fn pending(&self) -> Result<&VersionedValue, TargetError> {
        Ok(self
            .pending
            .get_or_try_init(|| self.fetch(Some(self.token), None))
            .await?)
    }

    /// The `AWSPREVIOUS` version, if the secret has one.
    pub async fn previous(&self) -> Result<Option<&VersionedValue>, TargetError> {
        let v = self
            .previous
            .get_or_try_init(|| async {
                match self.fetch(None, Some(crate::model::AWSPREVIOUS)).await {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(v.as_ref())
    }

    /// The `AWSCURRENT` value of another secret (an alternating-users master secret).
    pub async fn other_secret(&self, secret_id: &str) -> Result<VersionedValue, TargetError> {
        let r = self
            .store
            .get_secret_value(GetSecretValueRequest {
                secret_id: secret_id.to_string(),
                version_id: None,
                version_stage: Some(crate::model::AWSCURRENT.into()),
            })
            .await?;
        Ok(VersionedValue::from_response(r)?)
    }

    /// A password from the store's `GetRandomPassword` (local CSPRNG for the embedded store).
    pub async fn random_password(
        &self,
        policy: &crate::password::PasswordPolicy,
    ) -> Result<secrecy::SecretString, TargetError> {
        Ok(self
            .store
            .get_random_password(GetRandomPasswordRequest::from_policy(policy))
            .await?
            .random_password)
    }
}

/// Shared handles for drivers that keep targets around.
pub type SharedTarget = Arc<dyn Target>;
