//! Secret names, ARNs, version ids and request tokens, validated exactly as AWS does.

use crate::error::SmError;
use crate::password::random_below;

/// Longest secret name AWS accepts.
pub const MAX_NAME_LEN: usize = 512;
/// Length of the random suffix AWS appends to the name in an ARN (`-a1B2c3`).
pub const ARN_SUFFIX_LEN: usize = 6;

const SUFFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Checks a secret name: 1–512 characters from `A-Z a-z 0-9 / _ + = . @ -`. AWS answers a
/// bad character with `ValidationException` (recorded AWS responses, invalid secret names).
pub fn validate_name(name: &str) -> Result<(), SmError> {
    if name.len() > MAX_NAME_LEN {
        return Err(SmError::Validation(format!(
            "1 validation error detected: Value at 'name' failed to satisfy constraint: Member \
             must have length less than or equal to {MAX_NAME_LEN}"
        )));
    }
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(SmError::invalid_name());
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-')
}

/// Checks a `ClientRequestToken` (which becomes the version id): 32–64 characters.
pub fn validate_token(token: &str) -> Result<(), SmError> {
    let n = token.chars().count();
    if !(32..=64).contains(&n) {
        return Err(SmError::InvalidParameter(
            "ClientRequestToken must be 32-64 characters long.".into(),
        ));
    }
    if token.chars().any(|c| c.is_control()) {
        return Err(SmError::InvalidParameter(
            "ClientRequestToken must not contain control characters.".into(),
        ));
    }
    Ok(())
}

/// Checks a staging label: 1–256 characters.
pub fn validate_stage(stage: &str) -> Result<(), SmError> {
    let n = stage.chars().count();
    if !(1..=256).contains(&n) {
        return Err(SmError::InvalidParameter(format!(
            "VersionStage must be 1-256 characters long (got {n})."
        )));
    }
    Ok(())
}

/// A fresh version id / request token: a random UUID, as the AWS SDKs generate.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Six random alphanumerics for a new ARN.
pub fn random_arn_suffix() -> String {
    (0..ARN_SUFFIX_LEN)
        .map(|_| SUFFIX_ALPHABET[random_below(SUFFIX_ALPHABET.len() as u32) as usize] as char)
        .collect()
}

/// Where a secret lives: the parts of its ARN other than the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Namespace {
    pub fn new(region: impl Into<String>, account: impl Into<String>) -> Self {
        Namespace {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
        }
    }

    /// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX`
    pub fn secret_arn(&self, name: &str, suffix: &str) -> String {
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{}-{}",
            self.partition, self.region, self.account, name, suffix
        )
    }
}

/// A parsed Secrets Manager ARN. `resource` is everything after `:secret:`, which is either
/// `NAME-SUFFIX` (a full ARN) or just `NAME` (a partial ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

/// Parses `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:RESOURCE`.
pub fn parse_arn(s: &str) -> Option<ParsedArn> {
    let mut parts = s.splitn(7, ':');
    let (arn, partition, service, region, account, kind, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "secretsmanager" || kind != "secret" || resource.is_empty() {
        return None;
    }
    Some(ParsedArn {
        partition: partition.into(),
        region: region.into(),
        account: account.into(),
        resource: resource.into(),
    })
}

/// What a caller's `SecretId` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A plain name: `prod/db`.
    Name(String),
    /// An ARN, full (`…:secret:prod/db-AbC123`) or partial (`…:secret:prod/db`). Try the full
    /// form first, then the resource as a name.
    Arn(ParsedArn, String),
}

impl SecretRef {
    pub fn parse(id: &str) -> Result<Self, SmError> {
        if id.is_empty() {
            return Err(SmError::InvalidParameter(
                "SecretId must not be empty.".into(),
            ));
        }
        if id.starts_with("arn:") {
            return match parse_arn(id) {
                Some(p) => Ok(SecretRef::Arn(p, id.to_string())),
                None => Err(SmError::InvalidParameter(format!(
                    "The ARN {id} is not a valid Secrets Manager secret ARN \
                     (expected arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)."
                ))),
            };
        }
        if id.len() > 2048 {
            return Err(SmError::Validation(
                "1 validation error detected: Value at 'secretId' failed to satisfy constraint: \
                 Member must have length less than or equal to 2048"
                    .into(),
            ));
        }
        // A SecretId that is not an ARN is a name, and AWS refuses one no secret could have
        // with the same error as CreateSecret (recorded AWS responses, invalid secret names).
        if !id.chars().all(is_name_char) {
            return Err(SmError::invalid_name());
        }
        Ok(SecretRef::Name(id.to_string()))
    }

    /// Does this reference name the secret with this ARN and name?
    pub fn matches(&self, arn: &str, name: &str) -> bool {
        match self {
            SecretRef::Name(n) => n == name,
            SecretRef::Arn(p, full) => {
                full == arn
                    || (p.resource == name
                        && parse_arn(arn).is_some_and(|a| {
                            a.region == p.region
                                && a.account == p.account
                                && a.partition == p.partition
                        }))
            }
        }
    }

    /// The name this reference would have if it is a name or a partial ARN.
    pub fn name_candidate(&self) -> &str {
        match self {
            SecretRef::Name(n) => n,
            SecretRef::Arn(p, _) => &p.resource,
        }
    }
}

/// The name part of a full secret ARN (strips the `-XXXXXX` suffix).
pub fn name_from_arn(arn: &str) -> Option<String> {
    let p = parse_arn(arn)?;
    let r = p.resource;
    if r.len() > ARN_SUFFIX_LEN + 1 && r.as_bytes()[r.len() - ARN_SUFFIX_LEN - 1] == b'-' {
        Some(r[..r.len() - ARN_SUFFIX_LEN - 1].to_string())
    } else {
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("prod/db-1_+=.@").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"a".repeat(512)).is_ok());
        assert!(validate_name(&"a".repeat(513)).is_err());
        assert!(validate_name("has space").is_err());
        assert!(validate_name("colon:").is_err());
        assert!(validate_name("ünicode").is_err());
        assert_eq!(
            validate_name("Inv Name").unwrap_err().aws_type(),
            "ValidationException"
        );
        assert_eq!(
            SecretRef::parse(" Inv*Name? ").unwrap_err(),
            SmError::invalid_name()
        );
    }

    #[test]
    fn tokens() {
        assert!(validate_token(&"a".repeat(31)).is_err());
        assert!(validate_token(&"a".repeat(32)).is_ok());
        assert!(validate_token(&"a".repeat(64)).is_ok());
        assert!(validate_token(&"a".repeat(65)).is_err());
        assert!(validate_token(&new_token()).is_ok());
    }

    #[test]
    fn arns_round_trip() {
        let ns = Namespace::new("eu-west-1", "123456789012");
        let suffix = random_arn_suffix();
        assert_eq!(suffix.len(), 6);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        let arn = ns.secret_arn("prod/db", &suffix);
        assert!(arn.starts_with("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-"));
        assert_eq!(name_from_arn(&arn).as_deref(), Some("prod/db"));
    }

    #[test]
    fn lookup_by_name_full_and_partial_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-AbC123";
        let name = "prod/db";
        assert!(SecretRef::parse("prod/db").unwrap().matches(arn, name));
        assert!(SecretRef::parse(arn).unwrap().matches(arn, name));
        let partial = "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db";
        assert!(SecretRef::parse(partial).unwrap().matches(arn, name));
        let other_region = "arn:aws:secretsmanager:us-west-2:000000000000:secret:prod/db";
        assert!(!SecretRef::parse(other_region).unwrap().matches(arn, name));
        let wrong_suffix = "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-XXXXXX";
        assert!(!SecretRef::parse(wrong_suffix).unwrap().matches(arn, name));
        assert!(SecretRef::parse("arn:aws:s3:::bucket").is_err());
    }
}
