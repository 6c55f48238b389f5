//! Target `none`: plain generated secrets. Nothing outside the store holds the credential,
//! so rotating means generating a new value (seed 004's key/value secret on a schedule).
//!
//! - A JSON object secret gets new values in its password fields; every other key is kept.
//!   Which fields: the secret's `keyroll:fields` tag (comma-separated), else the driver's
//!   configuration ([`crate::TargetConfig::plain_fields`]), else `password`.
//! - Any other secret string is replaced whole by a new password.
//!
//! The password policy starts from AWS's `GetRandomPassword` defaults (32 characters from
//! every class), with the configured length and excluded characters
//! ([`crate::TargetConfig::password_length`], [`crate::TargetConfig::exclude_characters`]),
//! then the secret's tags:
//!
//! | tag | value |
//! | --- | --- |
//! | `keyroll:password-length` | characters (1-4096) |
//! | `keyroll:exclude-characters` | characters never to use (added to the configured ones) |
//! | `keyroll:exclude-punctuation`, `keyroll:exclude-numbers`, `keyroll:exclude-uppercase`, `keyroll:exclude-lowercase` | `true` or `false` |
//! | `keyroll:require-each-included-type` | `true` (default) or `false` |

use async_trait::async_trait;
use keyroll_core::password::PasswordPolicy;
use keyroll_core::ports::{StepContext, Target, TargetError};
use keyroll_core::value::SecretValue;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::TargetConfig;

/// Tag naming the JSON fields to regenerate, comma-separated (default `password`).
pub const FIELDS_TAG: &str = "keyroll:fields";
/// Tag overriding the password length.
pub const LENGTH_TAG: &str = "keyroll:password-length";
/// Tag listing characters never to use.
pub const EXCLUDE_TAG: &str = "keyroll:exclude-characters";
/// Tag `true` to generate passwords without punctuation.
pub const NO_PUNCTUATION_TAG: &str = "keyroll:exclude-punctuation";
/// Tag `true` to generate passwords without digits.
pub const NO_NUMBERS_TAG: &str = "keyroll:exclude-numbers";
/// Tag `true` to generate passwords without uppercase letters.
pub const NO_UPPERCASE_TAG: &str = "keyroll:exclude-uppercase";
/// Tag `true` to generate passwords without lowercase letters.
pub const NO_LOWERCASE_TAG: &str = "keyroll:exclude-lowercase";
/// Tag `false` to allow passwords that lack one of the included character types.
pub const REQUIRE_EACH_TYPE_TAG: &str = "keyroll:require-each-included-type";

/// Rotates plain secrets by generating new values.
#[derive(Debug, Clone, Default)]
pub struct NoneTarget {
    /// The JSON fields to regenerate whatever the tags say; `None` reads the secret's
    /// `keyroll:fields` tag, then `default_fields`, then uses `password`.
    pub fields: Option<Vec<String>>,
    /// The fields for secrets without a `keyroll:fields` tag (configuration).
    pub default_fields: Option<Vec<String>>,
    /// The policy for new values whatever the tags say; `None` applies the secret's tags to
    /// `base_policy`.
    pub policy: Option<PasswordPolicy>,
    /// The policy the tags start from (configuration). Default: AWS's defaults.
    pub base_policy: PasswordPolicy,
}

fn field_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl NoneTarget {
    /// AWS's defaults: field `password`, 32 characters from every class.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults of a driver's configuration (fields, length, excluded characters).
    pub fn from_config(config: &TargetConfig) -> Self {
        let mut base = PasswordPolicy::default();
        if let Some(l) = config.password_length {
            base.length = l;
        }
        if let Some(x) = &config.exclude_characters {
            base.exclude_characters = x.clone();
        }
        NoneTarget {
            fields: None,
            default_fields: config.plain_fields.clone().filter(|f| !f.is_empty()),
            policy: None,
            base_policy: base,
        }
    }

    fn fields(&self, ctx: &StepContext<'_>) -> Vec<String> {
        if let Some(f) = &self.fields {
            return f.clone();
        }
        if let Some(t) = ctx.description.tag(FIELDS_TAG) {
            let f = field_list(t);
            if !f.is_empty() {
                return f;
            }
        }
        self.default_fields
            .clone()
            .unwrap_or_else(|| vec!["password".to_string()])
    }

    fn policy(&self, ctx: &StepContext<'_>) -> Result<PasswordPolicy, TargetError> {
        if let Some(p) = &self.policy {
            return Ok(p.clone());
        }
        policy_from_tags(ctx, self.base_policy.clone())
    }
}

fn bool_tag(ctx: &StepContext<'_>, tag: &str) -> Result<Option<bool>, TargetError> {
    match ctx
        .description
        .tag(tag)
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Ok(None),
        Some(v) if v == "true" => Ok(Some(true)),
        Some(v) if v == "false" => Ok(Some(false)),
        Some(v) => Err(TargetError::Misconfigured(format!(
            "tag {tag} on {} must be true or false (got {v:?})",
            ctx.description.name
        ))),
    }
}

/// Applies the password tags of the secret (`keyroll:password-length`,
/// `keyroll:exclude-characters`, `keyroll:exclude-punctuation`, `keyroll:exclude-numbers`,
/// `keyroll:exclude-uppercase`, `keyroll:exclude-lowercase`,
/// `keyroll:require-each-included-type`) to `base`.
pub fn policy_from_tags(
    ctx: &StepContext<'_>,
    mut base: PasswordPolicy,
) -> Result<PasswordPolicy, TargetError> {
    if let Some(l) = ctx.description.tag(LENGTH_TAG) {
        base.length = l.trim().parse().map_err(|_| {
            TargetError::Misconfigured(format!(
                "tag {LENGTH_TAG} on {} must be a whole number of characters (got {l:?})",
                ctx.description.name
            ))
        })?;
    }
    if let Some(x) = ctx.description.tag(EXCLUDE_TAG) {
        base.exclude_characters.push_str(x);
    }
    if let Some(b) = bool_tag(ctx, NO_PUNCTUATION_TAG)? {
        base.exclude_punctuation = b;
    }
    if let Some(b) = bool_tag(ctx, NO_NUMBERS_TAG)? {
        base.exclude_numbers = b;
    }
    if let Some(b) = bool_tag(ctx, NO_UPPERCASE_TAG)? {
        base.exclude_uppercase = b;
    }
    if let Some(b) = bool_tag(ctx, NO_LOWERCASE_TAG)? {
        base.exclude_lowercase = b;
    }
    if let Some(b) = bool_tag(ctx, REQUIRE_EACH_TYPE_TAG)? {
        base.require_each_included_type = b;
    }
    Ok(base)
}

#[async_trait]
impl Target for NoneTarget {
    fn name(&self) -> &str {
        "none"
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        let current = ctx.current().await?;
        let policy = self.policy(ctx)?;
        let Some(text) = current.value.expose_str() else {
            return Err(TargetError::InvalidSecret(format!(
                "{} holds a SecretBinary; target none rotates text secrets only (store the \
                 value as SecretString, or rotate it with a custom rotation function)",
                ctx.description.name
            )));
        };
        let Some(mut obj) = current.value.json_object() else {
            // A plain string secret is replaced whole.
            let _ = text;
            let p = ctx.random_password(&policy).await?;
            return Ok(SecretValue::string(p.expose_secret().to_string()));
        };
        let fields = self.fields(ctx);
        let missing: Vec<&str> = fields
            .iter()
            .filter(|f| !obj.contains_key(f.as_str()))
            .map(|s| s.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::InvalidSecret(format!(
                "{} is a JSON object without the field(s) {} to regenerate; add them, or name \
                 the fields to rotate with the tag {FIELDS_TAG}=field1,field2",
                ctx.description.name,
                missing.join(", ")
            )));
        }
        for f in &fields {
            let p = ctx.random_password(&policy).await?;
            obj.insert(
                f.clone(),
                serde_json::Value::String(p.expose_secret().to_string()),
            );
        }
        let text = Zeroizing::new(serde_json::Value::Object(obj).to_string());
        Ok(SecretValue::string(text.as_str()))
    }

    async fn set(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }

    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let pending = ctx.pending().await?;
        let current = ctx.current().await?;
        if pending.version_id != current.version_id && pending.value.ct_eq(&current.value) {
            return Err(TargetError::TestFailed(format!(
                "the pending version of {} has the same value as the current one",
                ctx.description.name
            )));
        }
        if current.value.json_object().is_some() {
            let obj = pending.json()?;
            for f in self.fields(ctx) {
                if !obj.get(&f).is_some_and(|v| v.is_string()) {
                    return Err(TargetError::TestFailed(format!(
                        "the pending version of {} lacks a string field {f}",
                        ctx.description.name
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyroll_core::api::GetSecretValueRequest;
    use keyroll_core::engine::{RotateOptions, RotationError, Silent, rotate};
    use keyroll_core::memory::{MemoryBackend, memory_service};
    use keyroll_core::ports::SecretsApi;
    use keyroll_core::service::SecretsService;
    use keyroll_core::testing::rotatable_secret;
    use serde_json::Value;

    async fn secret(value: &str, tags: &[(&str, &str)]) -> (SecretsService<MemoryBackend>, String) {
        let svc = memory_service();
        let arn = rotatable_secret(&svc, "app/plain", value, tags, None)
            .await
            .unwrap();
        (svc, arn)
    }

    async fn current(svc: &SecretsService<MemoryBackend>, arn: &str) -> String {
        svc.get_secret_value(GetSecretValueRequest {
            secret_id: arn.into(),
            version_id: None,
            version_stage: Some("AWSCURRENT".into()),
        })
        .await
        .unwrap()
        .secret_string
        .unwrap()
        .expose_secret()
        .to_string()
    }

    async fn rotate_with(
        t: &NoneTarget,
        value: &str,
        tags: &[(&str, &str)],
    ) -> Result<Value, RotationError> {
        let (svc, arn) = secret(value, tags).await;
        rotate(&svc, t, &arn, &RotateOptions::default(), &Silent).await?;
        Ok(serde_json::from_str(&current(&svc, &arn).await).unwrap_or(Value::Null))
    }

    const VALUE: &str = r#"{"user":"app","password":"p0","token":"t0","apiSecret":"s0"}"#;

    #[tokio::test]
    async fn default_regenerates_password_only() {
        let v = rotate_with(&NoneTarget::new(), VALUE, &[]).await.unwrap();
        assert_eq!(
            (v["user"].as_str(), v["token"].as_str()),
            (Some("app"), Some("t0"))
        );
        let p = v["password"].as_str().unwrap();
        assert_eq!(p.len(), 32);
        assert_ne!(p, "p0");
    }

    #[tokio::test]
    async fn fields_from_the_tag_win_over_configuration() {
        let cfg = TargetConfig {
            plain_fields: Some(vec!["token".into()]),
            ..Default::default()
        };
        let t = NoneTarget::from_config(&cfg);
        let v = rotate_with(&t, VALUE, &[]).await.unwrap();
        assert_eq!(v["password"], "p0");
        assert_ne!(v["token"], "t0");
        let v = rotate_with(&t, VALUE, &[(FIELDS_TAG, "password, apiSecret")])
            .await
            .unwrap();
        assert_eq!(v["token"], "t0");
        assert_ne!(v["password"], "p0");
        assert_ne!(v["apiSecret"], "s0");
        assert_ne!(v["password"], v["apiSecret"]);
    }

    #[tokio::test]
    async fn policy_from_configuration_then_tags() {
        let cfg = TargetConfig {
            password_length: Some(20),
            exclude_characters: Some("abc".into()),
            ..Default::default()
        };
        let t = NoneTarget::from_config(&cfg);
        let v = rotate_with(&t, VALUE, &[]).await.unwrap();
        let p = v["password"].as_str().unwrap();
        assert_eq!(p.len(), 20);
        assert!(!p.contains(['a', 'b', 'c']));

        let tags = [
            (LENGTH_TAG, "64"),
            (NO_PUNCTUATION_TAG, "true"),
            (NO_UPPERCASE_TAG, "true"),
            (EXCLUDE_TAG, "xyz"),
        ];
        let v = rotate_with(&t, VALUE, &tags).await.unwrap();
        let p = v["password"].as_str().unwrap();
        assert_eq!(p.len(), 64);
        assert!(
            p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{p}"
        );
        assert!(
            !p.contains(['a', 'b', 'c', 'x', 'y', 'z']),
            "configured and tagged exclusions add up"
        );

        let v = rotate_with(
            &t,
            VALUE,
            &[
                (NO_LOWERCASE_TAG, "true"),
                (NO_UPPERCASE_TAG, "true"),
                (NO_PUNCTUATION_TAG, "true"),
            ],
        )
        .await
        .unwrap();
        assert!(
            v["password"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_digit())
        );
    }

    #[tokio::test]
    async fn plain_strings_are_replaced_whole() {
        let (svc, arn) = secret(
            "just-a-token",
            &[(LENGTH_TAG, "12"), (NO_NUMBERS_TAG, "true")],
        )
        .await;
        rotate(
            &svc,
            &NoneTarget::new(),
            &arn,
            &RotateOptions::default(),
            &Silent,
        )
        .await
        .unwrap();
        let v = current(&svc, &arn).await;
        assert_eq!(v.len(), 12);
        assert!(!v.chars().any(|c| c.is_ascii_digit()));
    }

    #[tokio::test]
    async fn bad_tags_and_missing_fields_fail_clearly_and_leave_awscurrent() {
        for (tags, want) in [
            (vec![(NO_PUNCTUATION_TAG, "yes")], "must be true or false"),
            (vec![(LENGTH_TAG, "long")], "whole number"),
            (
                vec![(FIELDS_TAG, "missing")],
                "without the field(s) missing",
            ),
        ] {
            let (svc, arn) = secret(VALUE, &tags).await;
            let e = rotate(
                &svc,
                &NoneTarget::new(),
                &arn,
                &RotateOptions::default(),
                &Silent,
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("p0"), "{e}");
            assert_eq!(current(&svc, &arn).await, VALUE);
        }
    }
}
