//! Target `none`: plain generated secrets. Nothing outside the store holds the credential,
//! so rotating means generating a new value.
//!
//! - A JSON object secret gets new values in its password fields (`password` by default);
//!   every other key is kept.
//! - Any other secret string is replaced whole by a new password.

use async_trait::async_trait;
use keyroll_core::password::PasswordPolicy;
use keyroll_core::ports::{StepContext, Target, TargetError};
use keyroll_core::value::SecretValue;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

/// Tag naming the JSON fields to regenerate, comma-separated (default `password`).
pub const FIELDS_TAG: &str = "keyroll:fields";
/// Tag overriding the password length.
pub const LENGTH_TAG: &str = "keyroll:password-length";
/// Tag listing characters never to use.
pub const EXCLUDE_TAG: &str = "keyroll:exclude-characters";
/// Tag `true` to generate passwords without punctuation.
pub const NO_PUNCTUATION_TAG: &str = "keyroll:exclude-punctuation";

/// Rotates plain secrets by generating new values.
#[derive(Debug, Clone, Default)]
pub struct NoneTarget {
    /// The JSON fields to regenerate; `None` reads the secret's `keyroll:fields` tag and
    /// falls back to `password`.
    pub fields: Option<Vec<String>>,
    /// The policy for new values; `None` reads the secret's tags, then uses AWS's defaults.
    pub policy: Option<PasswordPolicy>,
}

impl NoneTarget {
    pub fn new() -> Self {
        Self::default()
    }

    fn fields(&self, ctx: &StepContext<'_>) -> Vec<String> {
        if let Some(f) = &self.fields {
            return f.clone();
        }
        match ctx.description.tag(FIELDS_TAG) {
            Some(t) => t
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec!["password".to_string()],
        }
    }

    fn policy(&self, ctx: &StepContext<'_>) -> Result<PasswordPolicy, TargetError> {
        if let Some(p) = &self.policy {
            return Ok(p.clone());
        }
        policy_from_tags(ctx, PasswordPolicy::default())
    }
}

/// Applies the `keyroll:password-length`, `keyroll:exclude-characters` and
/// `keyroll:exclude-punctuation` tags of the secret to `base`.
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
    if let Some(p) = ctx.description.tag(NO_PUNCTUATION_TAG) {
        base.exclude_punctuation = p.trim().eq_ignore_ascii_case("true");
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
