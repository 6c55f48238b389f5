//! Requests and responses of the Secrets Manager API, shaped exactly like AWS JSON 1.1
//! (PascalCase members, absent fields omitted, dates as epoch seconds), plus the pure
//! functions that build responses from a [`SecretRecord`].

use std::collections::BTreeMap;

use secrecy::{SecretSlice, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::{ReplicaStatus, RotationRules, RotationStatus, SecretRecord, Tag, VersionEntry};
use crate::time::Timestamp;
use crate::value::serde_secret;

macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name { $($body)* }
    };
}

wire! {
    pub struct ReplicaRegion {
        // Optional in AWS's model: an entry without it reaches the operation (a replica
        // refuses it as any other call), whose region check refuses "".
        #[serde(default)]
        pub region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_key_id: Option<String>,
    }
}

// ---- CreateSecret ----------------------------------------------------------------------------

wire! {
    pub struct CreateSecretRequest {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_request_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_key_id: Option<String>,
        #[serde(default, with = "serde_secret::string", skip_serializing_if = "Option::is_none")]
        pub secret_string: Option<SecretString>,
        #[serde(default, with = "serde_secret::binary", skip_serializing_if = "Option::is_none")]
        pub secret_binary: Option<SecretSlice<u8>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tags: Option<Vec<Tag>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub add_replica_regions: Option<Vec<ReplicaRegion>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub force_overwrite_replica_secret: Option<bool>,
    }
}

wire! {
    pub struct CreateSecretResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub replication_status: Option<Vec<ReplicaStatus>>,
    }
}

// ---- GetSecretValue / BatchGetSecretValue ----------------------------------------------------

wire! {
    pub struct GetSecretValueRequest {
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_stage: Option<String>,
    }
}

wire! {
    /// Carries the secret: never log it.
    pub struct GetSecretValueResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        pub version_id: String,
        #[serde(default, with = "serde_secret::string", skip_serializing_if = "Option::is_none")]
        pub secret_string: Option<SecretString>,
        #[serde(default, with = "serde_secret::binary", skip_serializing_if = "Option::is_none")]
        pub secret_binary: Option<SecretSlice<u8>>,
        pub version_stages: Vec<String>,
        pub created_date: Timestamp,
    }
}

impl GetSecretValueResponse {
    pub fn value(&self) -> Option<crate::value::SecretValue> {
        match (&self.secret_string, &self.secret_binary) {
            (Some(s), _) => Some(crate::value::SecretValue::String(s.clone())),
            (None, Some(b)) => Some(crate::value::SecretValue::Binary(b.clone())),
            (None, None) => None,
        }
    }
}

wire! {
    pub struct Filter {
        /// Empty when the caller left it out (AWS answers `Invalid filter key`).
        #[serde(default)]
        pub key: String,
        #[serde(default)]
        pub values: Vec<String>,
    }
}

wire! {
    pub struct BatchGetSecretValueRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub secret_id_list: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub filters: Option<Vec<Filter>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_results: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
    }
}

wire! {
    pub struct ApiErrorEntry {
        pub secret_id: String,
        pub error_code: String,
        pub message: String,
    }
}

wire! {
    pub struct BatchGetSecretValueResponse {
        pub secret_values: Vec<GetSecretValueResponse>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub errors: Vec<ApiErrorEntry>,
    }
}

// ---- PutSecretValue / UpdateSecret -----------------------------------------------------------

wire! {
    pub struct PutSecretValueRequest {
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_request_token: Option<String>,
        #[serde(default, with = "serde_secret::string", skip_serializing_if = "Option::is_none")]
        pub secret_string: Option<SecretString>,
        #[serde(default, with = "serde_secret::binary", skip_serializing_if = "Option::is_none")]
        pub secret_binary: Option<SecretSlice<u8>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_stages: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotation_token: Option<String>,
    }
}

wire! {
    pub struct PutSecretValueResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        pub version_id: String,
        pub version_stages: Vec<String>,
    }
}

wire! {
    pub struct UpdateSecretRequest {
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_request_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_key_id: Option<String>,
        #[serde(default, with = "serde_secret::string", skip_serializing_if = "Option::is_none")]
        pub secret_string: Option<SecretString>,
        #[serde(default, with = "serde_secret::binary", skip_serializing_if = "Option::is_none")]
        pub secret_binary: Option<SecretSlice<u8>>,
    }
}

wire! {
    pub struct UpdateSecretResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_id: Option<String>,
    }
}

// ---- UpdateSecretVersionStage ----------------------------------------------------------------

wire! {
    pub struct UpdateSecretVersionStageRequest {
        pub secret_id: String,
        pub version_stage: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub remove_from_version_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub move_to_version_id: Option<String>,
    }
}

wire! {
    /// The `ARN` + `Name` answer many operations give.
    pub struct ArnName {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
    }
}

// ---- DescribeSecret / ListSecrets ------------------------------------------------------------

wire! {
    pub struct SecretIdRequest {
        pub secret_id: String,
    }
}

wire! {
    pub struct DescribeSecretResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_key_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotation_enabled: Option<bool>,
        #[serde(rename = "RotationLambdaARN", default, skip_serializing_if = "Option::is_none")]
        pub rotation_lambda_arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotation_rules: Option<RotationRules>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_rotated_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_changed_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_accessed_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deleted_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_rotation_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tags: Option<Vec<Tag>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_ids_to_stages: Option<BTreeMap<String, Vec<String>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owning_service: Option<String>,
        pub created_date: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub primary_region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub replication_status: Option<Vec<ReplicaStatus>>,
        /// keyroll's extension: how the last rotation went (AWS clients ignore it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keyroll_rotation_status: Option<RotationStatus>,
    }
}

impl DescribeSecretResponse {
    /// The version holding `stage`, from `VersionIdsToStages`.
    pub fn holder(&self, stage: &str) -> Option<&str> {
        self.version_ids_to_stages
            .as_ref()?
            .iter()
            .find(|(_, st)| st.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    pub fn stages_of(&self, version_id: &str) -> Option<&[String]> {
        self.version_ids_to_stages
            .as_ref()?
            .get(version_id)
            .map(|v| v.as_slice())
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .as_ref()?
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

wire! {
    pub struct ListSecretsRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub include_planned_deletion: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_results: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub filters: Option<Vec<Filter>>,
        /// `asc` or `desc` (by creation date).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sort_order: Option<String>,
    }
}

wire! {
    pub struct SecretListEntry {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_key_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotation_enabled: Option<bool>,
        #[serde(rename = "RotationLambdaARN", default, skip_serializing_if = "Option::is_none")]
        pub rotation_lambda_arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotation_rules: Option<RotationRules>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_rotated_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_changed_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_accessed_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deleted_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_rotation_date: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tags: Option<Vec<Tag>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub secret_versions_to_stages: Option<BTreeMap<String, Vec<String>>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub owning_service: Option<String>,
        pub created_date: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub primary_region: Option<String>,
    }
}

wire! {
    pub struct ListSecretsResponse {
        pub secret_list: Vec<SecretListEntry>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
    }
}

// ---- ListSecretVersionIds --------------------------------------------------------------------

wire! {
    pub struct ListSecretVersionIdsRequest {
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_results: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub include_deprecated: Option<bool>,
    }
}

wire! {
    pub struct SecretVersionsListEntry {
        pub version_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_stages: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub last_accessed_date: Option<Timestamp>,
        pub created_date: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_key_ids: Option<Vec<String>>,
    }
}

wire! {
    pub struct ListSecretVersionIdsResponse {
        pub versions: Vec<SecretVersionsListEntry>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next_token: Option<String>,
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
    }
}

// ---- DeleteSecret / RestoreSecret ------------------------------------------------------------

wire! {
    pub struct DeleteSecretRequest {
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recovery_window_in_days: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub force_delete_without_recovery: Option<bool>,
    }
}

wire! {
    pub struct DeleteSecretResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        pub deletion_date: Timestamp,
    }
}

// ---- Tags ------------------------------------------------------------------------------------

wire! {
    pub struct TagResourceRequest {
        pub secret_id: String,
        pub tags: Vec<Tag>,
    }
}

wire! {
    pub struct UntagResourceRequest {
        pub secret_id: String,
        pub tag_keys: Vec<String>,
    }
}

wire! {
    /// An empty JSON object: the answer of `TagResource`, `UntagResource`.
    pub struct Empty {}
}

// ---- Rotation --------------------------------------------------------------------------------

wire! {
    pub struct RotateSecretRequest {
        pub secret_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_request_token: Option<String>,
        #[serde(rename = "RotationLambdaARN", default, skip_serializing_if = "Option::is_none")]
        pub rotation_lambda_arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotation_rules: Option<RotationRules>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rotate_immediately: Option<bool>,
    }
}

wire! {
    pub struct RotateSecretResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub version_id: Option<String>,
    }
}

// ---- GetRandomPassword -----------------------------------------------------------------------

wire! {
    pub struct GetRandomPasswordRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password_length: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exclude_characters: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exclude_numbers: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exclude_punctuation: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exclude_uppercase: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exclude_lowercase: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub include_space: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub require_each_included_type: Option<bool>,
    }
}

impl GetRandomPasswordRequest {
    pub fn policy(&self) -> Result<crate::password::PasswordPolicy, crate::error::SmError> {
        let d = crate::password::PasswordPolicy::default();
        let length = match self.password_length {
            None => d.length,
            Some(n) if (1..=crate::password::MAX_LENGTH as i64).contains(&n) => n as u32,
            // The model's bounds (botocore model: PasswordLength 1-4096), answered as AWS
            // answers a constraint: ValidationException.
            Some(n) if n < 1 => {
                return Err(crate::error::SmError::Validation(format!(
                    "1 validation error detected: Value '{n}' at 'passwordLength' failed to \
                     satisfy constraint: Member must have value greater than or equal to 1"
                )));
            }
            Some(n) => {
                return Err(crate::error::SmError::Validation(format!(
                    "1 validation error detected: Value '{n}' at 'passwordLength' failed to \
                     satisfy constraint: Member must have value less than or equal to {}",
                    crate::password::MAX_LENGTH
                )));
            }
        };
        Ok(crate::password::PasswordPolicy {
            length,
            exclude_characters: self.exclude_characters.clone().unwrap_or_default(),
            exclude_numbers: self.exclude_numbers.unwrap_or(false),
            exclude_punctuation: self.exclude_punctuation.unwrap_or(false),
            exclude_uppercase: self.exclude_uppercase.unwrap_or(false),
            exclude_lowercase: self.exclude_lowercase.unwrap_or(false),
            include_space: self.include_space.unwrap_or(false),
            require_each_included_type: self.require_each_included_type.unwrap_or(true),
        })
    }

    pub fn from_policy(p: &crate::password::PasswordPolicy) -> Self {
        GetRandomPasswordRequest {
            password_length: Some(p.length as i64),
            exclude_characters: (!p.exclude_characters.is_empty())
                .then(|| p.exclude_characters.clone()),
            exclude_numbers: Some(p.exclude_numbers),
            exclude_punctuation: Some(p.exclude_punctuation),
            exclude_uppercase: Some(p.exclude_uppercase),
            exclude_lowercase: Some(p.exclude_lowercase),
            include_space: Some(p.include_space),
            require_each_included_type: Some(p.require_each_included_type),
        }
    }
}

/// Carries a secret: never log it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordResponse {
    #[serde(with = "serde_secret::required_string")]
    pub random_password: SecretString,
}

// ---- Resource policies -----------------------------------------------------------------------

wire! {
    pub struct PutResourcePolicyRequest {
        pub secret_id: String,
        pub resource_policy: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub block_public_policy: Option<bool>,
    }
}

wire! {
    pub struct GetResourcePolicyResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub resource_policy: Option<String>,
    }
}

wire! {
    pub struct ValidateResourcePolicyRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub secret_id: Option<String>,
        pub resource_policy: String,
    }
}

wire! {
    pub struct ValidationErrorsEntry {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub check_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error_message: Option<String>,
    }
}

wire! {
    pub struct ValidateResourcePolicyResponse {
        pub policy_validation_passed: bool,
        #[serde(default)]
        pub validation_errors: Vec<ValidationErrorsEntry>,
    }
}

// ---- Replication -----------------------------------------------------------------------------

wire! {
    pub struct ReplicateSecretToRegionsRequest {
        pub secret_id: String,
        pub add_replica_regions: Vec<ReplicaRegion>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub force_overwrite_replica_secret: Option<bool>,
    }
}

wire! {
    pub struct RemoveRegionsFromReplicationRequest {
        pub secret_id: String,
        pub remove_replica_regions: Vec<String>,
    }
}

wire! {
    pub struct ReplicationStatusResponse {
        #[serde(rename = "ARN")]
        pub arn: String,
        #[serde(default)]
        pub replication_status: Vec<ReplicaStatus>,
    }
}

wire! {
    pub struct ArnOnly {
        #[serde(rename = "ARN")]
        pub arn: String,
    }
}

// ---- responses from records ------------------------------------------------------------------

fn opt_vec<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// `DescribeSecret` for a record: only fields that are set.
pub fn describe(rec: &SecretRecord) -> DescribeSecretResponse {
    let rotation_configured = rec.rotation.enabled || rec.rotation.lambda_arn.is_some();
    DescribeSecretResponse {
        arn: rec.arn.clone(),
        name: rec.name.clone(),
        // AWS does not return an empty description (recorded AWS responses).
        description: rec.description.clone().filter(|d| !d.is_empty()),
        kms_key_id: rec.kms_key_id.clone(),
        rotation_enabled: rotation_configured.then_some(rec.rotation.enabled),
        rotation_lambda_arn: rec.rotation.lambda_arn.clone(),
        rotation_rules: rec.rotation.rules.clone(),
        last_rotated_date: rec.last_rotated,
        last_changed_date: rec.last_changed,
        last_accessed_date: rec.last_accessed,
        deleted_date: rec.deleted_date,
        next_rotation_date: rec.rotation.enabled.then_some(rec.next_rotation).flatten(),
        tags: (rec.tagged || !rec.tags.is_empty()).then(|| rec.tags.clone()),
        // Omitted for a secret without versions (recorded AWS responses,
        // create_secret_version_from_empty_secret, secret_tags).
        version_ids_to_stages: Some(rec.version_ids_to_stages()).filter(|m| !m.is_empty()),
        owning_service: rec.owning_service.clone(),
        created_date: rec.created,
        primary_region: rec.primary_region.clone(),
        replication_status: opt_vec(&rec.replicas),
        keyroll_rotation_status: rec.rotation_status.clone(),
    }
}

/// A `ListSecrets` entry for a record.
pub fn list_entry(rec: &SecretRecord) -> SecretListEntry {
    let d = describe(rec);
    SecretListEntry {
        arn: d.arn,
        name: d.name,
        description: d.description,
        kms_key_id: d.kms_key_id,
        rotation_enabled: d.rotation_enabled,
        rotation_lambda_arn: d.rotation_lambda_arn,
        rotation_rules: d.rotation_rules,
        last_rotated_date: d.last_rotated_date,
        last_changed_date: d.last_changed_date,
        last_accessed_date: d.last_accessed_date,
        deleted_date: d.deleted_date,
        next_rotation_date: d.next_rotation_date,
        tags: d.tags,
        secret_versions_to_stages: d.version_ids_to_stages,
        owning_service: d.owning_service,
        created_date: d.created_date,
        primary_region: d.primary_region,
    }
}

/// What AWS names the default encryption key in `KmsKeyIds` (recorded AWS responses,
/// deprecated_secret_version_stage).
pub const DEFAULT_KMS_KEY_NAME: &str = "DefaultEncryptionKey";

/// A `ListSecretVersionIds` entry of a version of `rec`: a version without labels has no
/// `VersionStages` key, and `KmsKeyIds` names the secret's key (recorded AWS responses,
/// deprecated_secret_version_stage).
pub fn version_entry(rec: &SecretRecord, v: &VersionEntry) -> SecretVersionsListEntry {
    SecretVersionsListEntry {
        version_id: v.id.clone(),
        version_stages: opt_vec(&v.stages),
        last_accessed_date: v.last_accessed,
        created_date: v.created,
        kms_key_ids: Some(vec![
            rec.kms_key_id
                .clone()
                .unwrap_or_else(|| DEFAULT_KMS_KEY_NAME.to_string()),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn requests_parse_from_aws_json() {
        let r: PutSecretValueRequest = serde_json::from_str(
            r#"{"SecretId":"s","ClientRequestToken":"t","SecretBinary":"aGVsbG8=","VersionStages":["AWSPENDING"]}"#,
        )
        .unwrap();
        assert_eq!(r.secret_binary.unwrap().expose_secret(), b"hello");
        assert_eq!(r.version_stages.unwrap(), vec!["AWSPENDING"]);
    }

    #[test]
    fn absent_fields_are_omitted() {
        let rec = SecretRecord::new("arn:x".into(), "n".into(), Timestamp(1_000));
        let j = serde_json::to_value(describe(&rec)).unwrap();
        let o = j.as_object().unwrap();
        assert!(!o.contains_key("Description"));
        assert!(!o.contains_key("RotationEnabled"));
        assert_eq!(o["CreatedDate"], serde_json::json!(1.0));
        assert_eq!(o["ARN"], "arn:x");
    }

    #[test]
    fn random_password_request_defaults() {
        let p = GetRandomPasswordRequest::default().policy().unwrap();
        assert_eq!(p.length, 32);
        assert!(
            GetRandomPasswordRequest {
                password_length: Some(0),
                ..Default::default()
            }
            .policy()
            .is_err()
        );
    }
}

#[cfg(test)]
mod replica_region_tests {
    use super::*;

    #[test]
    fn a_replica_region_entry_may_omit_its_region() {
        let r: ReplicateSecretToRegionsRequest =
            serde_json::from_str(r#"{"SecretId":"s","AddReplicaRegions":[{}]}"#).unwrap();
        assert_eq!(r.add_replica_regions[0].region, "");
    }
}
