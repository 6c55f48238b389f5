//! AWS Secrets Manager as a keyroll store: the [`SecretsApi`] over `aws-sdk-secretsmanager`,
//! and the parts of [`RotationStore`] that can be done from outside the service.
//!
//! Used by the Lambda rotation function (`keyroll-lambda`), where Secrets Manager itself
//! drives the rotation, and by `keyroll rotate --store aws`, which runs keyroll's
//! orchestrator from another machine against real Secrets Manager (for targets a Lambda
//! cannot reach).
//!
//! # What the service does that a client cannot
//!
//! - **Placeholder.** Only `RotateSecret` creates the value-less `AWSPENDING` version that
//!   starts a rotation. [`RotationStore::begin_rotation`] therefore answers
//!   [`Placeholder::Unsupported`]: the orchestrator lets `createSecret` create the pending
//!   version directly (`PutSecretValue` with `VersionStages=[AWSPENDING]`).
//! - **`LastRotatedDate`** is set by the service only (when its own rotation finishes, or on
//!   `PutSecretValue` with a `RotationToken` inside a Lambda). A rotation driven from outside
//!   changes `LastChangedDate`, never `LastRotatedDate`.
//! - **Rotation status** is not stored anywhere in Secrets Manager:
//!   [`RotationStore::record_rotation_status`] logs it (state, step, error class) and returns.
//! - **Exclusion.** [`RotationStore::try_lock_rotation`] excludes a second rotation of the
//!   same secret in this process only. Across machines: a second driver that starts while an
//!   `AWSPENDING` version exists resumes that same version (every step is idempotent, so two
//!   drivers on one version do the same work twice, harmlessly). Two drivers that start
//!   within the same `createSecret` both put a pending version; labels are unique, so the
//!   later `PutSecretValue` takes `AWSPENDING` and the earlier driver's next step fails the
//!   template's "token is not `AWSPENDING`" check before it touches the target. The remaining
//!   window — the earlier driver already inside `setSecret` when it loses `AWSPENDING` — is
//!   why only one driver per secret should be scheduled (the Lambda, *or* one
//!   `keyroll rotate` job); see `docs/DEPLOY.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::{Blob, DateTime};
use aws_sdk_secretsmanager::types as sdk;
use keyroll_core::SmError;
use keyroll_core::api::*;
use keyroll_core::model::{
    AWSPENDING, ReplicaStatus, RotationRules, RotationState, RotationStatus, Tag,
};
use keyroll_core::ports::{Placeholder, RotationLock, RotationStore, SecretsApi};
use keyroll_core::time::Timestamp;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// Where to find Secrets Manager. Everything left `None` comes from the standard AWS
/// configuration: environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, credentials), shared config and credentials files,
/// and the container / instance credential providers.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Overrides the region of the AWS configuration.
    pub region: Option<String>,
    /// Overrides the endpoint (e.g. a VPC endpoint, or a local moto / keyroll server).
    pub endpoint_url: Option<String>,
}

/// AWS Secrets Manager, through the AWS SDK.
#[derive(Clone)]
pub struct AwsStore {
    client: Client,
    locks: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for AwsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsStore").finish_non_exhaustive()
    }
}

/// The HTTPS client every AWS call goes through: hyper 1 with rustls on *ring*, the TLS stack
/// the rest of keyroll uses, trusting the system's roots (and plain HTTP for local endpoints).
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl AwsStore {
    /// Loads the AWS configuration (see [`AwsOptions`]) and builds a client. Nothing is sent
    /// until the first call; credentials are resolved then.
    pub async fn connect(opts: AwsOptions) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Ok(name) = aws_config::AppName::new("keyroll") {
            loader = loader.app_name(name);
        }
        if let Some(r) = opts.region {
            loader = loader.region(aws_config::Region::new(r));
        }
        if let Some(e) = opts.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.http_client(https_client()).load().await;
        Self::new(Client::new(&conf))
    }

    /// Wraps an SDK client built elsewhere.
    pub fn new(client: Client) -> Self {
        AwsStore {
            client,
            locks: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The region the client sends requests to, if one is configured.
    pub fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }
}

// ---- errors ------------------------------------------------------------------------------

/// Maps an SDK error to Secrets Manager's error model: a service error keeps its `__type`
/// and message (AWS's messages never contain secret values); a failure to send or to read
/// the answer becomes `InternalServiceError` with the cause and what to check.
fn sm_err<E, R>(op: &'static str, e: SdkError<E, R>) -> SmError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = &e {
        let err = se.err();
        if let Some(code) = err.code() {
            return SmError::from_aws(code, err.message().unwrap_or(code).to_string());
        }
    }
    SmError::InternalServiceError(format!(
        "{op}: could not complete the call to AWS Secrets Manager ({}); check the AWS \
         credentials, the region and the endpoint (AWS_ENDPOINT_URL, \
         AWS_ENDPOINT_URL_SECRETS_MANAGER)",
        DisplayErrorContext(&e)
    ))
}

// ---- conversions -------------------------------------------------------------------------

fn ts(d: &DateTime) -> Timestamp {
    Timestamp::from_millis(
        d.to_millis()
            .unwrap_or_else(|_| d.secs().saturating_mul(1000)),
    )
}

fn opt_ts(d: Option<&DateTime>) -> Option<Timestamp> {
    d.map(ts)
}

fn tags_out(t: &[sdk::Tag]) -> Option<Vec<Tag>> {
    (!t.is_empty()).then(|| {
        t.iter()
            .map(|t| Tag::new(t.key().unwrap_or_default(), t.value().unwrap_or_default()))
            .collect()
    })
}

fn tag_in(t: Tag) -> sdk::Tag {
    sdk::Tag::builder().key(t.key).value(t.value).build()
}

fn rules_out(r: Option<&sdk::RotationRulesType>) -> Option<RotationRules> {
    r.map(|r| RotationRules {
        automatically_after_days: r.automatically_after_days(),
        duration: r.duration().map(str::to_string),
        schedule_expression: r.schedule_expression().map(str::to_string),
    })
}

fn rules_in(r: RotationRules) -> sdk::RotationRulesType {
    sdk::RotationRulesType::builder()
        .set_automatically_after_days(r.automatically_after_days)
        .set_duration(r.duration)
        .set_schedule_expression(r.schedule_expression)
        .build()
}

fn replicas_out(r: &[sdk::ReplicationStatusType]) -> Option<Vec<ReplicaStatus>> {
    (!r.is_empty()).then(|| {
        r.iter()
            .map(|r| ReplicaStatus {
                region: r.region().unwrap_or_default().to_string(),
                kms_key_id: r.kms_key_id().map(str::to_string),
                status: r
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                status_message: r.status_message().map(str::to_string),
                last_accessed_date: opt_ts(r.last_accessed_date()),
            })
            .collect()
    })
}

fn stages_map(m: Option<&HashMap<String, Vec<String>>>) -> Option<BTreeMap<String, Vec<String>>> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn blob_in(b: Option<SecretSlice<u8>>) -> Option<Blob> {
    b.map(|b| Blob::new(b.expose_secret().to_vec()))
}

fn string_in(s: Option<SecretString>) -> Option<String> {
    s.map(|s| s.expose_secret().to_string())
}

/// A pagination token; an empty one means the last page (moto sends `""` where AWS sends
/// nothing, and a caller that followed it would loop forever).
fn page_token(t: Option<&str>) -> Option<String> {
    t.filter(|t| !t.is_empty()).map(str::to_string)
}

fn i32_param(name: &str, v: Option<i64>) -> Result<Option<i32>, SmError> {
    v.map(|n| {
        i32::try_from(n).map_err(|_| SmError::InvalidParameter(format!("{name} is out of range.")))
    })
    .transpose()
}

fn require(op: &'static str, field: &'static str, v: Option<&str>) -> Result<String, SmError> {
    v.map(str::to_string)
        .ok_or_else(|| SmError::InternalServiceError(format!("{op}: the response has no {field}")))
}

// ---- SecretsApi --------------------------------------------------------------------------

#[async_trait]
impl SecretsApi for AwsStore {
    async fn create_secret(
        &self,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, SmError> {
        let replicas = req.add_replica_regions.map(|v| {
            v.into_iter()
                .map(|r| {
                    sdk::ReplicaRegionType::builder()
                        .region(r.region)
                        .set_kms_key_id(r.kms_key_id)
                        .build()
                })
                .collect()
        });
        let out = self
            .client
            .create_secret()
            .name(req.name)
            .set_client_request_token(req.client_request_token)
            .set_description(req.description)
            .set_kms_key_id(req.kms_key_id)
            .set_secret_string(string_in(req.secret_string))
            .set_secret_binary(blob_in(req.secret_binary))
            .set_tags(req.tags.map(|t| t.into_iter().map(tag_in).collect()))
            .set_add_replica_regions(replicas)
            .set_force_overwrite_replica_secret(req.force_overwrite_replica_secret)
            .send()
            .await
            .map_err(|e| sm_err("CreateSecret", e))?;
        Ok(CreateSecretResponse {
            arn: require("CreateSecret", "ARN", out.arn())?,
            name: require("CreateSecret", "Name", out.name())?,
            version_id: out.version_id().map(str::to_string),
            replication_status: replicas_out(out.replication_status()),
        })
    }

    async fn get_secret_value(
        &self,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, SmError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(req.secret_id)
            .set_version_id(req.version_id)
            .set_version_stage(req.version_stage)
            .send()
            .await
            .map_err(|e| sm_err("GetSecretValue", e))?;
        Ok(GetSecretValueResponse {
            arn: require("GetSecretValue", "ARN", out.arn())?,
            name: require("GetSecretValue", "Name", out.name())?,
            version_id: require("GetSecretValue", "VersionId", out.version_id())?,
            secret_string: out
                .secret_string()
                .map(|s| SecretString::from(s.to_string())),
            secret_binary: out
                .secret_binary()
                .map(|b| SecretSlice::from(b.as_ref().to_vec())),
            version_stages: out.version_stages().to_vec(),
            created_date: opt_ts(out.created_date()).unwrap_or_default(),
        })
    }

    async fn put_secret_value(
        &self,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, SmError> {
        let out = self
            .client
            .put_secret_value()
            .secret_id(req.secret_id)
            .set_client_request_token(req.client_request_token)
            .set_secret_string(string_in(req.secret_string))
            .set_secret_binary(blob_in(req.secret_binary))
            .set_version_stages(req.version_stages)
            .set_rotation_token(req.rotation_token)
            .send()
            .await
            .map_err(|e| sm_err("PutSecretValue", e))?;
        Ok(PutSecretValueResponse {
            arn: require("PutSecretValue", "ARN", out.arn())?,
            name: require("PutSecretValue", "Name", out.name())?,
            version_id: require("PutSecretValue", "VersionId", out.version_id())?,
            version_stages: out.version_stages().to_vec(),
        })
    }

    async fn update_secret(
        &self,
        req: UpdateSecretRequest,
    ) -> Result<UpdateSecretResponse, SmError> {
        let out = self
            .client
            .update_secret()
            .secret_id(req.secret_id)
            .set_client_request_token(req.client_request_token)
            .set_description(req.description)
            .set_kms_key_id(req.kms_key_id)
            .set_secret_string(string_in(req.secret_string))
            .set_secret_binary(blob_in(req.secret_binary))
            .send()
            .await
            .map_err(|e| sm_err("UpdateSecret", e))?;
        Ok(UpdateSecretResponse {
            arn: require("UpdateSecret", "ARN", out.arn())?,
            name: require("UpdateSecret", "Name", out.name())?,
            version_id: out.version_id().map(str::to_string),
        })
    }

    async fn update_secret_version_stage(
        &self,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<ArnName, SmError> {
        let out = self
            .client
            .update_secret_version_stage()
            .secret_id(req.secret_id)
            .version_stage(req.version_stage)
            .set_remove_from_version_id(req.remove_from_version_id)
            .set_move_to_version_id(req.move_to_version_id)
            .send()
            .await
            .map_err(|e| sm_err("UpdateSecretVersionStage", e))?;
        Ok(ArnName {
            arn: require("UpdateSecretVersionStage", "ARN", out.arn())?,
            name: require("UpdateSecretVersionStage", "Name", out.name())?,
        })
    }

    async fn describe_secret(
        &self,
        req: SecretIdRequest,
    ) -> Result<DescribeSecretResponse, SmError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(req.secret_id)
            .send()
            .await
            .map_err(|e| sm_err("DescribeSecret", e))?;
        Ok(DescribeSecretResponse {
            arn: require("DescribeSecret", "ARN", out.arn())?,
            name: require("DescribeSecret", "Name", out.name())?,
            description: out.description().map(str::to_string),
            kms_key_id: out.kms_key_id().map(str::to_string),
            rotation_enabled: out.rotation_enabled(),
            rotation_lambda_arn: out.rotation_lambda_arn().map(str::to_string),
            rotation_rules: rules_out(out.rotation_rules()),
            last_rotated_date: opt_ts(out.last_rotated_date()),
            last_changed_date: opt_ts(out.last_changed_date()),
            last_accessed_date: opt_ts(out.last_accessed_date()),
            deleted_date: opt_ts(out.deleted_date()),
            next_rotation_date: opt_ts(out.next_rotation_date()),
            tags: tags_out(out.tags()),
            version_ids_to_stages: stages_map(out.version_ids_to_stages()),
            owning_service: out.owning_service().map(str::to_string),
            created_date: opt_ts(out.created_date()).unwrap_or_default(),
            primary_region: out.primary_region().map(str::to_string),
            replication_status: replicas_out(out.replication_status()),
            keyroll_rotation_status: None,
        })
    }

    async fn list_secrets(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, SmError> {
        let filters = req.filters.map(|fs| {
            fs.into_iter()
                .map(|f| {
                    sdk::Filter::builder()
                        .key(sdk::FilterNameStringType::from(f.key.as_str()))
                        .set_values(Some(f.values))
                        .build()
                })
                .collect()
        });
        let out = self
            .client
            .list_secrets()
            .set_include_planned_deletion(req.include_planned_deletion)
            .set_max_results(i32_param("MaxResults", req.max_results)?)
            .set_next_token(req.next_token)
            .set_filters(filters)
            .set_sort_order(req.sort_order.as_deref().map(sdk::SortOrderType::from))
            .send()
            .await
            .map_err(|e| sm_err("ListSecrets", e))?;
        let secret_list = out
            .secret_list()
            .iter()
            .map(|s| SecretListEntry {
                arn: s.arn().unwrap_or_default().to_string(),
                name: s.name().unwrap_or_default().to_string(),
                description: s.description().map(str::to_string),
                kms_key_id: s.kms_key_id().map(str::to_string),
                rotation_enabled: s.rotation_enabled(),
                rotation_lambda_arn: s.rotation_lambda_arn().map(str::to_string),
                rotation_rules: rules_out(s.rotation_rules()),
                last_rotated_date: opt_ts(s.last_rotated_date()),
                last_changed_date: opt_ts(s.last_changed_date()),
                last_accessed_date: opt_ts(s.last_accessed_date()),
                deleted_date: opt_ts(s.deleted_date()),
                next_rotation_date: opt_ts(s.next_rotation_date()),
                tags: tags_out(s.tags()),
                secret_versions_to_stages: stages_map(s.secret_versions_to_stages()),
                owning_service: s.owning_service().map(str::to_string),
                created_date: opt_ts(s.created_date()).unwrap_or_default(),
                primary_region: s.primary_region().map(str::to_string),
            })
            .collect();
        Ok(ListSecretsResponse {
            secret_list,
            next_token: page_token(out.next_token()),
        })
    }

    async fn list_secret_version_ids(
        &self,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse, SmError> {
        let out = self
            .client
            .list_secret_version_ids()
            .secret_id(req.secret_id)
            .set_max_results(i32_param("MaxResults", req.max_results)?)
            .set_next_token(req.next_token)
            .set_include_deprecated(req.include_deprecated)
            .send()
            .await
            .map_err(|e| sm_err("ListSecretVersionIds", e))?;
        let versions = out
            .versions()
            .iter()
            .map(|v| SecretVersionsListEntry {
                version_id: v.version_id().unwrap_or_default().to_string(),
                version_stages: Some(v.version_stages().to_vec()),
                last_accessed_date: opt_ts(v.last_accessed_date()),
                created_date: opt_ts(v.created_date()).unwrap_or_default(),
                kms_key_ids: (!v.kms_key_ids().is_empty()).then(|| v.kms_key_ids().to_vec()),
            })
            .collect();
        Ok(ListSecretVersionIdsResponse {
            versions,
            next_token: page_token(out.next_token()),
            arn: require("ListSecretVersionIds", "ARN", out.arn())?,
            name: require("ListSecretVersionIds", "Name", out.name())?,
        })
    }

    async fn delete_secret(
        &self,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, SmError> {
        let out = self
            .client
            .delete_secret()
            .secret_id(req.secret_id)
            .set_recovery_window_in_days(req.recovery_window_in_days)
            .set_force_delete_without_recovery(req.force_delete_without_recovery)
            .send()
            .await
            .map_err(|e| sm_err("DeleteSecret", e))?;
        Ok(DeleteSecretResponse {
            arn: require("DeleteSecret", "ARN", out.arn())?,
            name: require("DeleteSecret", "Name", out.name())?,
            deletion_date: opt_ts(out.deletion_date()).unwrap_or_default(),
        })
    }

    async fn restore_secret(&self, req: SecretIdRequest) -> Result<ArnName, SmError> {
        let out = self
            .client
            .restore_secret()
            .secret_id(req.secret_id)
            .send()
            .await
            .map_err(|e| sm_err("RestoreSecret", e))?;
        Ok(ArnName {
            arn: require("RestoreSecret", "ARN", out.arn())?,
            name: require("RestoreSecret", "Name", out.name())?,
        })
    }

    async fn tag_resource(&self, req: TagResourceRequest) -> Result<Empty, SmError> {
        self.client
            .tag_resource()
            .secret_id(req.secret_id)
            .set_tags(Some(req.tags.into_iter().map(tag_in).collect()))
            .send()
            .await
            .map_err(|e| sm_err("TagResource", e))?;
        Ok(Empty {})
    }

    async fn untag_resource(&self, req: UntagResourceRequest) -> Result<Empty, SmError> {
        self.client
            .untag_resource()
            .secret_id(req.secret_id)
            .set_tag_keys(Some(req.tag_keys))
            .send()
            .await
            .map_err(|e| sm_err("UntagResource", e))?;
        Ok(Empty {})
    }

    /// The service's `GetRandomPassword` (what AWS's rotation functions call), not the local
    /// generator.
    async fn get_random_password(
        &self,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, SmError> {
        let out = self
            .client
            .get_random_password()
            .set_password_length(req.password_length)
            .set_exclude_characters(req.exclude_characters)
            .set_exclude_numbers(req.exclude_numbers)
            .set_exclude_punctuation(req.exclude_punctuation)
            .set_exclude_uppercase(req.exclude_uppercase)
            .set_exclude_lowercase(req.exclude_lowercase)
            .set_include_space(req.include_space)
            .set_require_each_included_type(req.require_each_included_type)
            .send()
            .await
            .map_err(|e| sm_err("GetRandomPassword", e))?;
        let p = out.random_password().ok_or_else(|| {
            SmError::InternalServiceError("GetRandomPassword: the response has no password".into())
        })?;
        Ok(GetRandomPasswordResponse {
            random_password: SecretString::from(p.to_string()),
        })
    }
}

// ---- RotationStore -----------------------------------------------------------------------

struct LockGuard {
    locks: Arc<Mutex<HashSet<String>>>,
    arn: String,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.arn);
    }
}

#[async_trait]
impl RotationStore for AwsStore {
    /// `RotateSecret` with `RotateImmediately=false`: saves the function and schedule and
    /// enables rotation. Secrets Manager then checks the configuration by invoking the
    /// function's `testSecret` step, so `lambda_arn` must be a deployed rotation function.
    async fn configure_rotation(
        &self,
        secret_id: &str,
        lambda_arn: Option<String>,
        rules: Option<RotationRules>,
    ) -> Result<(), SmError> {
        self.client
            .rotate_secret()
            .secret_id(secret_id)
            .set_rotation_lambda_arn(lambda_arn)
            .set_rotation_rules(rules.map(rules_in))
            .rotate_immediately(false)
            .send()
            .await
            .map_err(|e| sm_err("RotateSecret", e))?;
        Ok(())
    }

    /// Only `RotateSecret` can create a value-less version: `createSecret` creates the
    /// pending version itself.
    async fn begin_rotation(&self, _secret_id: &str, _token: &str) -> Result<Placeholder, SmError> {
        Ok(Placeholder::Unsupported)
    }

    /// Removes `AWSPENDING` from `token` (if it still holds it). `LastRotatedDate` cannot be
    /// set from outside the service.
    async fn complete_rotation(&self, secret_id: &str, token: &str) -> Result<(), SmError> {
        let desc = self
            .describe_secret(SecretIdRequest {
                secret_id: secret_id.into(),
            })
            .await?;
        if desc.holder(AWSPENDING) != Some(token) {
            return Ok(());
        }
        self.update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_id: desc.arn,
            version_stage: AWSPENDING.into(),
            remove_from_version_id: Some(token.into()),
            move_to_version_id: None,
        })
        .await?;
        Ok(())
    }

    /// Secrets Manager has nowhere to keep keyroll's rotation status: it is logged.
    async fn record_rotation_status(
        &self,
        secret_id: &str,
        status: RotationStatus,
    ) -> Result<(), SmError> {
        match status.state {
            RotationState::Failed => tracing::warn!(
                secret = secret_id,
                version = %status.version_id,
                step = ?status.failed_step,
                error_type = ?status.error_type,
                attempts = status.attempts,
                "rotation failed"
            ),
            state => tracing::info!(
                secret = secret_id,
                version = %status.version_id,
                ?state,
                attempts = status.attempts,
                "rotation status"
            ),
        }
        Ok(())
    }

    /// Excludes a second rotation of `arn` in this process (see the module documentation for
    /// what holds across machines).
    fn try_lock_rotation(&self, arn: &str) -> Result<Option<RotationLock>, SmError> {
        let mut held = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(arn.to_string()) {
            return Ok(None);
        }
        Ok(Some(RotationLock(Box::new(LockGuard {
            locks: self.locks.clone(),
            arn: arn.to_string(),
        }))))
    }

    fn now(&self) -> Timestamp {
        use keyroll_core::time::Clock as _;
        keyroll_core::time::SystemClock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_keep_milliseconds() {
        let d = DateTime::from_millis(1_700_000_000_123);
        assert_eq!(ts(&d), Timestamp::from_millis(1_700_000_000_123));
    }

    #[test]
    fn an_empty_page_token_is_the_last_page() {
        assert_eq!(page_token(Some("")), None);
        assert_eq!(page_token(None), None);
        assert_eq!(page_token(Some("abc")).as_deref(), Some("abc"));
    }

    #[test]
    fn rotation_rules_round_trip() {
        let r = RotationRules {
            automatically_after_days: None,
            duration: Some("3h".into()),
            schedule_expression: Some("rate(10 days)".into()),
        };
        assert_eq!(rules_out(Some(&rules_in(r.clone()))), Some(r));
    }

    #[test]
    fn lock_is_per_secret_and_released_on_drop() {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .http_client(https_client())
            .build();
        let store = AwsStore::new(Client::from_conf(conf));
        let a = store.try_lock_rotation("arn:a").unwrap();
        assert!(a.is_some());
        assert!(store.try_lock_rotation("arn:a").unwrap().is_none());
        assert!(store.try_lock_rotation("arn:b").unwrap().is_some());
        drop(a);
        assert!(store.try_lock_rotation("arn:a").unwrap().is_some());
    }
}
