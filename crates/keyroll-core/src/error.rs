//! The errors Secrets Manager models, with AWS's type names and wording.

use serde::{Deserialize, Serialize};

/// An error of the Secrets Manager API. Each variant is one of AWS's modelled exception types;
/// the message follows AWS's wording where AWS has a fixed one, and never contains a secret
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "__type", content = "Message")]
pub enum SmError {
    #[error("{0}")]
    #[serde(rename = "ResourceNotFoundException")]
    ResourceNotFound(String),
    #[error("{0}")]
    #[serde(rename = "InvalidParameterException")]
    InvalidParameter(String),
    #[error("{0}")]
    #[serde(rename = "InvalidRequestException")]
    InvalidRequest(String),
    #[error("{0}")]
    #[serde(rename = "ResourceExistsException")]
    ResourceExists(String),
    #[error("{0}")]
    #[serde(rename = "LimitExceededException")]
    LimitExceeded(String),
    #[error("{0}")]
    #[serde(rename = "MalformedPolicyDocumentException")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    #[serde(rename = "PreconditionNotMetException")]
    PreconditionNotMet(String),
    #[error("{0}")]
    #[serde(rename = "PublicPolicyException")]
    PublicPolicy(String),
    #[error("{0}")]
    #[serde(rename = "DecryptionFailure")]
    DecryptionFailure(String),
    #[error("{0}")]
    #[serde(rename = "EncryptionFailure")]
    EncryptionFailure(String),
    #[error("{0}")]
    #[serde(rename = "InvalidNextTokenException")]
    InvalidNextToken(String),
    #[error("{0}")]
    #[serde(rename = "InternalServiceError")]
    InternalServiceError(String),
    /// A request that breaks the service model's constraints (lengths, patterns, enums),
    /// answered in AWS's `1 validation error detected: …` form where AWS uses it.
    #[error("{0}")]
    #[serde(rename = "ValidationException")]
    Validation(String),
}

impl SmError {
    /// AWS's `__type` for this error.
    pub fn aws_type(&self) -> &'static str {
        match self {
            SmError::ResourceNotFound(_) => "ResourceNotFoundException",
            SmError::InvalidParameter(_) => "InvalidParameterException",
            SmError::InvalidRequest(_) => "InvalidRequestException",
            SmError::ResourceExists(_) => "ResourceExistsException",
            SmError::LimitExceeded(_) => "LimitExceededException",
            SmError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            SmError::PreconditionNotMet(_) => "PreconditionNotMetException",
            SmError::PublicPolicy(_) => "PublicPolicyException",
            SmError::DecryptionFailure(_) => "DecryptionFailure",
            SmError::EncryptionFailure(_) => "EncryptionFailure",
            SmError::InvalidNextToken(_) => "InvalidNextTokenException",
            SmError::InternalServiceError(_) => "InternalServiceError",
            SmError::Validation(_) => "ValidationException",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            SmError::ResourceNotFound(m)
            | SmError::InvalidParameter(m)
            | SmError::InvalidRequest(m)
            | SmError::ResourceExists(m)
            | SmError::LimitExceeded(m)
            | SmError::MalformedPolicyDocument(m)
            | SmError::PreconditionNotMet(m)
            | SmError::PublicPolicy(m)
            | SmError::DecryptionFailure(m)
            | SmError::EncryptionFailure(m)
            | SmError::InvalidNextToken(m)
            | SmError::InternalServiceError(m)
            | SmError::Validation(m) => m,
        }
    }

    /// Builds the error from AWS's `__type` (with or without a `namespace#` prefix).
    pub fn from_aws(aws_type: &str, message: impl Into<String>) -> Self {
        let t = aws_type.rsplit('#').next().unwrap_or(aws_type);
        let m = message.into();
        match t {
            "ResourceNotFoundException" => SmError::ResourceNotFound(m),
            "InvalidParameterException" => SmError::InvalidParameter(m),
            "InvalidRequestException" => SmError::InvalidRequest(m),
            "ResourceExistsException" => SmError::ResourceExists(m),
            "LimitExceededException" => SmError::LimitExceeded(m),
            "MalformedPolicyDocumentException" => SmError::MalformedPolicyDocument(m),
            "PreconditionNotMetException" => SmError::PreconditionNotMet(m),
            "PublicPolicyException" => SmError::PublicPolicy(m),
            "DecryptionFailure" => SmError::DecryptionFailure(m),
            "EncryptionFailure" => SmError::EncryptionFailure(m),
            "InvalidNextTokenException" => SmError::InvalidNextToken(m),
            "ValidationException" => SmError::Validation(m),
            _ => SmError::InternalServiceError(format!("{t}: {m}")),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, SmError::ResourceNotFound(_))
    }

    // ---- AWS's fixed wordings -------------------------------------------------------------

    pub fn secret_not_found() -> Self {
        SmError::ResourceNotFound("Secrets Manager can't find the specified secret.".into())
    }
    pub fn no_value_for_stage(stage: &str) -> Self {
        SmError::ResourceNotFound(format!(
            "Secrets Manager can't find the specified secret value for staging label: {stage}"
        ))
    }
    pub fn no_value_for_version(version_id: &str) -> Self {
        SmError::ResourceNotFound(format!(
            "Secrets Manager can't find the specified secret value for VersionId: {version_id}"
        ))
    }
    pub fn marked_for_deletion() -> Self {
        SmError::InvalidRequest(
            "You can't perform this operation on the secret because it was marked for deletion."
                .into(),
        )
    }
    pub fn version_exists() -> Self {
        SmError::ResourceExists(
            "You can't modify an existing version, you can only create a new version.".into(),
        )
    }
    /// AWS's answer to a secret name (or a `SecretId` that is not an ARN) with a character
    /// outside letters, digits and `/_+=.@-`.
    pub fn invalid_name() -> Self {
        SmError::Validation(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of \
             the following: -/_+=.@!"
                .into(),
        )
    }
    /// A `ClientRequestToken` already naming a version with another value.
    pub fn token_in_use(token: &str, arn: &str) -> Self {
        SmError::ResourceExists(format!(
            "You can't use ClientRequestToken {token} because that value is already in use for \
             a version of secret {arn}."
        ))
    }
    /// A write on a replica (AWS: `InvalidParameterException`).
    pub fn replica_write() -> Self {
        SmError::InvalidParameter(
            "Operation not permitted on a replica secret. Call must be made in primary secret's \
             region."
                .into(),
        )
    }
    pub fn secret_exists(name: &str) -> Self {
        SmError::ResourceExists(format!(
            "The operation failed because the secret {name} already exists."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_type_and_message() {
        let e = SmError::secret_not_found();
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["__type"], "ResourceNotFoundException");
        assert_eq!(
            j["Message"],
            "Secrets Manager can't find the specified secret."
        );
        assert_eq!(e.aws_type(), "ResourceNotFoundException");
    }

    #[test]
    fn from_aws_strips_namespace() {
        let e = SmError::from_aws("com.amazonaws.secretsmanager#InvalidRequestException", "x");
        assert_eq!(e, SmError::InvalidRequest("x".into()));
    }
}
