//! Who is calling: principals (IAM users from `[[access_keys]]`, sessions from STS) with the
//! policies, tags and MFA state that authorization and the audit trail use.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use keyroll_policy::Policy;

use crate::config::{Config, ConfigError};
use crate::credentials::AccessKey;

/// The policy an `admin = true` key carries: everything, still subject to explicit denies in
/// resource policies (as with AWS's `AdministratorAccess`).
pub const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// What kind of principal signed a request (CloudTrail's `userIdentity.type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An `[[access_keys]]` entry, or a `GetSessionToken` session of one.
    User,
    /// An `AssumeRole` session: `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    AssumedRole {
        role_name: String,
        role_arn: String,
        session_name: String,
        /// The ARN of the user who assumed the role.
        source_arn: String,
    },
}

/// A principal and everything evaluation needs about it. Built once per key (or session),
/// shared by every request it signs.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// `arn:aws:iam::ACCOUNT:user/NAME` or the assumed-role session ARN.
    pub arn: String,
    /// The user name (`aws:username`); for role sessions, the session name.
    pub name: String,
    pub account: String,
    /// `aws:userid`: `AIDA…` for users, `AROA…:SESSION` for role sessions.
    pub user_id: String,
    pub admin: bool,
    pub policies: Vec<Arc<Policy>>,
    /// `aws:PrincipalTag/…` (role sessions: role tags overridden by session tags).
    pub tags: BTreeMap<String, String>,
    /// Epoch seconds of the MFA authentication of this session, if any.
    pub mfa_authenticated_at: Option<i64>,
    /// Epoch seconds the session was issued (temporary credentials only).
    pub issued_at: Option<i64>,
    /// Epoch seconds the credentials stop working (temporary credentials only).
    pub expires_at: Option<i64>,
    /// ARNs this principal also matches in a resource policy's `Principal` (a role session
    /// matches its role).
    pub aliases: Vec<String>,
    /// Its `userIdentity` in the audit trail, serialised on its first audited request.
    pub audit_identity: crate::audit::IdentityCache,
}

impl Principal {
    pub fn user_arn(account: &str, name: &str) -> String {
        format!("arn:aws:iam::{account}:user/{name}")
    }

    /// An IAM user with the given policies.
    pub fn user(account: &str, name: &str, admin: bool, policies: Vec<Arc<Policy>>) -> Self {
        Principal {
            kind: PrincipalKind::User,
            arn: Self::user_arn(account, name),
            name: name.to_string(),
            account: account.to_string(),
            user_id: unique_id("AIDA", account, name),
            admin,
            policies,
            tags: BTreeMap::new(),
            mfa_authenticated_at: None,
            issued_at: None,
            expires_at: None,
            aliases: Vec::new(),
            audit_identity: Default::default(),
        }
    }

    /// An admin user (keys generated on first start, keys handed to `App::new` in tests).
    pub fn admin(account: &str, name: &str) -> Self {
        Self::user(account, name, true, vec![admin_policy()])
    }

    /// CloudTrail's `userIdentity.type`.
    pub fn identity_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::User => "IAMUser",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
        }
    }

    pub fn mfa_authenticated(&self) -> bool {
        self.mfa_authenticated_at.is_some()
    }

    /// The user name, for IAM users only (`aws:username` is absent for role sessions).
    pub fn username(&self) -> Option<&str> {
        matches!(self.kind, PrincipalKind::User).then_some(self.name.as_str())
    }
}

/// A stable, AWS-shaped unique id (`AIDA` + 17 characters) derived from the account and name,
/// so the same user keeps the same `aws:userid` across restarts.
pub fn unique_id(prefix: &str, account: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(format!("{prefix}:{account}:{name}").as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| ALPHABET[(*b as usize) & 31] as char)
        .collect();
    format!("{prefix}{tail}")
}

pub fn admin_policy() -> Arc<Policy> {
    static ADMIN: std::sync::OnceLock<Arc<Policy>> = std::sync::OnceLock::new();
    ADMIN
        .get_or_init(|| {
            Arc::new(Policy::parse(ADMIN_POLICY).unwrap_or_else(|e| {
                // The constant is tested below; a failure here is a programming error.
                panic!("the built-in admin policy does not parse: {e}")
            }))
        })
        .clone()
}

/// Parses a configured policy (inline or `file://`), naming where it came from on error.
pub fn load_policy(value: &str, base: Option<&Path>, what: &str) -> Result<Policy, ConfigError> {
    let text = Config::policy_text(value, base)?;
    Policy::parse(&text)
        .map_err(|e| ConfigError::Invalid(format!("the policy of {what} is not valid: {e}")))
}

/// The configured keys with their principals. `base` is the configuration file's directory
/// (for `file://` policies).
pub fn configured_principals(
    config: &Config,
    base: Option<&Path>,
) -> Result<Vec<(AccessKey, Arc<Principal>)>, ConfigError> {
    let mut out = Vec::with_capacity(config.access_keys.len());
    for k in &config.access_keys {
        let name = k.name.clone().unwrap_or_else(|| k.access_key_id.clone());
        let mut policies = Vec::new();
        if k.admin {
            policies.push(admin_policy());
        }
        if let Some(p) = &k.policy {
            policies.push(Arc::new(load_policy(
                p,
                base,
                &format!("access key {name:?}"),
            )?));
        }
        let mut principal = Principal::user(&config.account, &name, k.admin, policies);
        principal.tags = k.tags.clone();
        out.push((
            AccessKey {
                access_key_id: k.access_key_id.clone(),
                secret_access_key: k.secret_access_key.clone(),
                session_token: k.session_token.clone(),
                name,
            },
            Arc::new(principal),
        ));
    }
    Ok(out)
}

/// Whether an access key id looks like AWS's (`AKIA…`/`ASIA…`-style: 16–128 upper-case
/// letters and digits). Others work, with a warning at start.
pub fn aws_shaped_key_id(id: &str) -> bool {
    (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_policy_parses_and_ids_are_stable() {
        assert_eq!(admin_policy().statement_count(), 1);
        let a = unique_id("AIDA", "000000000000", "alice");
        assert_eq!(a.len(), 21);
        assert!(a.starts_with("AIDA"));
        assert_eq!(a, unique_id("AIDA", "000000000000", "alice"));
        assert_ne!(a, unique_id("AIDA", "000000000000", "bob"));
    }

    #[test]
    fn key_id_shapes() {
        assert!(aws_shaped_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(!aws_shaped_key_id("test"));
        assert!(!aws_shaped_key_id("akiaiosfodnn7example"));
    }
}
