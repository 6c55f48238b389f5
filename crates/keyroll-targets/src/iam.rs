//! Target `iam`: an IAM user's access key (feature `aws`).
//!
//! Secret: `{"engine":"iam","username":"ci-deployer","accessKeyId":"AKIA…","secretAccessKey":"…"}`
//! (other fields are kept). keyroll calls IAM with its own identity (the standard AWS chain:
//! environment, profile, container or instance role; `AWS_ENDPOINT_URL_IAM` /
//! `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` honoured), which needs `iam:ListAccessKeys`,
//! `iam:CreateAccessKey`, `iam:UpdateAccessKey`, `iam:DeleteAccessKey` and
//! `iam:GetAccessKeyLastUsed` on the user.
//!
//! - `createSecret`: makes room, then `CreateAccessKey`; the new key is stored as
//!   `AWSPENDING` (so the pending version records the key keyroll created). A user holds at
//!   most two keys. keyroll only ever touches the keys recorded in this secret's versions:
//!   the `AWSCURRENT` key is never touched; the `AWSPREVIOUS` key (retired by an earlier
//!   rotation) is deactivated if still active, then deleted — once the grace period, if one
//!   is configured, has passed since the last rotation; before that the rotation fails and
//!   says when it can run. Any other key — an operator's, active or not, used or not — is
//!   left alone: when it takes the second slot the rotation fails, naming it, and changes
//!   nothing. (A key left by a `createSecret` that stopped between `CreateAccessKey` and
//!   storing it is such a key: its secret half is lost, and the message says so when the key
//!   was never used.)
//! - `setSecret`: nothing (IAM made the key).
//! - `testSecret`: STS `GetCallerIdentity` signed with the pending key must name the user.
//!   New keys take a few seconds to work everywhere (eventual consistency), so refusals are
//!   retried with growing delays up to a bound (default 60 s).
//! - after `finishSecret` promoted the new key: the previous key (recorded in `AWSPREVIOUS`)
//!   is deactivated (so it
//!   cannot be used, but can be re-activated by hand if something still needs it) and deleted
//!   at the next rotation — or right away with a grace period of 0
//!   ([`IamOptions::delete_previous_after`], tag `keyroll:iam-delete-previous-after-days`).
//!
//! Only users the operator allows are rotated ([`crate::egress`]: `allow_iam_users`, exact
//! names, path prefixes such as `/service/`, or `*`; nothing by default). The user named by
//! the secret is checked at every step before any IAM or STS call; a user allowed by name
//! needs no call at all, and only when path prefixes are configured and the name is not
//! listed does keyroll call `iam:GetUser` to learn the user's path (so that permission is
//! then needed too).
//!
//! At every moment the `AWSCURRENT` key is active: a key is only deactivated after its
//! successor passed `testSecret` and was promoted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::StatusType;
use keyroll_core::ports::{StepContext, Target, TargetError};
use keyroll_core::time::{Clock, Sleeper, SystemClock, Timestamp, TokioSleeper};
use keyroll_core::value::SecretValue;

use crate::egress::{Refusal, TargetPolicy, UserDecision};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// hyper 1 + rustls on *ring* (keyroll's one TLS stack) for the AWS SDK, instead of its
/// default client's aws-lc-rs.
pub fn https_client() -> aws_sdk_iam::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Bounds on every IAM and STS call: connecting, each attempt, and the whole operation with
/// the SDK's retries — so that an unreachable endpoint fails the step instead of holding it.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build()
}

/// Tag: days an inactive previous key is kept before deletion (0 = delete in finishSecret).
pub const DELETE_AFTER_TAG: &str = "keyroll:iam-delete-previous-after-days";

/// How the IAM target behaves.
#[derive(Clone)]
pub struct IamOptions {
    /// When the deactivated previous key is deleted: `None` at the next rotation (default);
    /// `Some(ZERO)` right after deactivation in finishSecret; `Some(d)` at the first rotation
    /// at least `d` after the last one. A secret's `keyroll:iam-delete-previous-after-days`
    /// tag wins.
    pub delete_previous_after: Option<Duration>,
    /// How long `testSecret` keeps retrying a new key that STS does not accept yet.
    pub test_timeout: Duration,
    /// First delay between `testSecret` attempts (doubled each time, at most 10 s).
    pub test_initial_delay: Duration,
    pub clock: Arc<dyn Clock>,
    pub sleeper: Arc<dyn Sleeper>,
    /// Which users may be rotated (`allow_iam_users`); the default allows none.
    pub policy: TargetPolicy,
}

impl Default for IamOptions {
    fn default() -> Self {
        IamOptions {
            delete_previous_after: None,
            test_timeout: Duration::from_secs(60),
            test_initial_delay: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(TokioSleeper),
            policy: TargetPolicy::default(),
        }
    }
}

/// The fields of an IAM secret (the secret key stays in the JSON map).
struct IamSecret {
    username: String,
    access_key_id: String,
}

fn field(obj: &Map<String, Value>, name: &str, secret: &str) -> Result<String, TargetError> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(TargetError::InvalidSecret(format!(
            "{secret} has engine \"iam\" but no string field {name} (the secret needs \
             username, accessKeyId and secretAccessKey)"
        ))),
    }
}

impl IamSecret {
    fn parse(obj: &Map<String, Value>, secret: &str) -> Result<Self, TargetError> {
        field(obj, "secretAccessKey", secret)?;
        Ok(IamSecret {
            username: field(obj, "username", secret)?,
            access_key_id: field(obj, "accessKeyId", secret)?,
        })
    }
}

/// Maps an SDK error to a target error naming the call (never a secret key).
fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    what: &str,
    e: SdkError<E>,
) -> TargetError {
    let code = e.code().map(str::to_string);
    let text = format!("{what}: {}", DisplayErrorContext(&e));
    match (&e, code.as_deref()) {
        (SdkError::ServiceError(_), Some("AccessDenied" | "AccessDeniedException")) => {
            TargetError::PermissionDenied(text)
        }
        (
            SdkError::ServiceError(_),
            Some(
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "UnrecognizedClientException",
            ),
        ) => TargetError::AuthenticationFailed(text),
        (SdkError::ServiceError(_), _) => TargetError::Rejected(text),
        (SdkError::ConstructionFailure(_), _) => TargetError::Misconfigured(text),
        _ => TargetError::Unreachable(text),
    }
}

fn is_code<E: ProvideErrorMetadata>(e: &SdkError<E>, code: &str) -> bool {
    e.code() == Some(code)
}

/// One of the user's keys, from `ListAccessKeys`.
#[derive(Debug, Clone)]
struct KeyInfo {
    id: String,
    active: bool,
    created_secs: i64,
}

/// The target for `engine: "iam"`.
pub struct IamTarget {
    options: IamOptions,
    sdk: tokio::sync::OnceCell<SdkConfig>,
}

impl IamTarget {
    /// AWS configuration from the environment, loaded at the first step.
    pub fn new(options: IamOptions) -> Self {
        IamTarget {
            options,
            sdk: tokio::sync::OnceCell::new(),
        }
    }

    /// With an explicit AWS configuration (endpoint, credentials, region).
    pub fn with_sdk_config(sdk: SdkConfig, options: IamOptions) -> Self {
        IamTarget {
            options,
            sdk: tokio::sync::OnceCell::new_with(Some(sdk)),
        }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let region = aws_config::meta::region::RegionProviderChain::default_provider()
                    .or_else(Region::new("us-east-1"));
                aws_config::defaults(BehaviorVersion::latest())
                    .region(region)
                    .http_client(https_client())
                    .timeout_config(sdk_timeouts())
                    .load()
                    .await
            })
            .await
    }

    async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(self.sdk().await)
    }

    /// Refuses a user outside `allow_iam_users`, before any IAM call (unless only a path
    /// prefix could allow it: then `GetUser` tells the path).
    async fn check_user(&self, user: &str) -> Result<(), TargetError> {
        match self.options.policy.iam_user(user) {
            UserDecision::Allowed => Ok(()),
            UserDecision::Refused => Err(Refusal::IamUserNotAllowed {
                user: user.to_string(),
                path: None,
            }
            .into()),
            UserDecision::NeedsPath => {
                let out = self
                    .iam()
                    .await
                    .get_user()
                    .user_name(user)
                    .send()
                    .await
                    .map_err(|e| {
                        sdk_error(
                            &format!(
                                "IAM GetUser for user {user} (to check its path against \
                                 [targets.iam] allow_users)"
                            ),
                            e,
                        )
                    })?;
                let path = out.user().map_or("/", |u| u.path());
                Ok(self.options.policy.check_iam_user(user, path)?)
            }
        }
    }

    fn delete_after(&self, ctx: &StepContext<'_>) -> Result<Option<Duration>, TargetError> {
        match ctx.description.tag(DELETE_AFTER_TAG) {
            None => Ok(self.options.delete_previous_after),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(|d| Some(Duration::from_secs(d * 86_400)))
                .map_err(|_| {
                    TargetError::Misconfigured(format!(
                        "tag {DELETE_AFTER_TAG} on {} must be a whole number of days (got {v:?})",
                        ctx.description.name
                    ))
                }),
        }
    }

    async fn list_keys(
        &self,
        iam: &aws_sdk_iam::Client,
        user: &str,
    ) -> Result<Vec<KeyInfo>, TargetError> {
        let out = iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("IAM ListAccessKeys for user {user}"), e))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .filter_map(|m| {
                Some(KeyInfo {
                    id: m.access_key_id()?.to_string(),
                    active: m.status() == Some(&StatusType::Active),
                    created_secs: m.create_date().map_or(0, |d| d.secs()),
                })
            })
            .collect())
    }

    async fn deactivate(
        &self,
        iam: &aws_sdk_iam::Client,
        user: &str,
        key: &str,
    ) -> Result<(), TargetError> {
        match iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(StatusType::Inactive)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(user, access_key_id = key, "IAM access key deactivated");
                Ok(())
            }
            Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
            Err(e) => Err(sdk_error(
                &format!("IAM UpdateAccessKey (deactivate {key} of user {user})"),
                e,
            )),
        }
    }

    async fn delete(
        &self,
        iam: &aws_sdk_iam::Client,
        user: &str,
        key: &str,
    ) -> Result<(), TargetError> {
        match iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(user, access_key_id = key, "IAM access key deleted");
                Ok(())
            }
            Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
            Err(e) => Err(sdk_error(
                &format!("IAM DeleteAccessKey ({key} of user {user})"),
                e,
            )),
        }
    }

    async fn last_used(
        &self,
        iam: &aws_sdk_iam::Client,
        key: &str,
    ) -> Result<Option<i64>, TargetError> {
        let out = iam
            .get_access_key_last_used()
            .access_key_id(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("IAM GetAccessKeyLastUsed ({key})"), e))?;
        Ok(out
            .access_key_last_used()
            .and_then(|u| u.last_used_date())
            .map(|d| d.secs()))
    }

    /// Frees a slot for the new key (see the module documentation for the rules).
    async fn make_room(
        &self,
        ctx: &StepContext<'_>,
        iam: &aws_sdk_iam::Client,
        cur: &IamSecret,
    ) -> Result<(), TargetError> {
        let user = cur.username.as_str();
        let keys = self.list_keys(iam, user).await?;
        let current = keys.iter().find(|k| k.id == cur.access_key_id).cloned();
        if current.is_none() {
            tracing::warn!(
                secret = %ctx.description.name,
                user,
                access_key_id = %cur.access_key_id,
                "the AWSCURRENT access key is not a key of this user; a new key is created"
            );
        }
        let previous_id = match ctx.previous().await? {
            Some(p) => p.json().ok().and_then(|o| {
                o.get("accessKeyId")
                    .and_then(|v| v.as_str().map(str::to_string))
            }),
            None => None,
        };
        let delete_after = self.delete_after(ctx)?;
        let mut remaining = keys.len();
        for k in keys.iter().filter(|k| k.id != cur.access_key_id) {
            if previous_id.as_deref() == Some(k.id.as_str()) {
                if k.active {
                    // Its successor (AWSCURRENT) was tested and promoted long ago.
                    self.deactivate(iam, user, &k.id).await?;
                }
                if let (Some(grace), Some(last)) = (delete_after, ctx.description.last_rotated_date)
                {
                    let until = last.plus_millis(grace.as_millis() as i64);
                    if self.options.clock.now() < until {
                        return Err(TargetError::Rejected(format!(
                            "user {user} holds the previous access key {} (inactive), which the \
                             grace period keeps until {until}; IAM allows two keys, so the next \
                             rotation can run after that (or shorten {DELETE_AFTER_TAG})",
                            k.id
                        )));
                    }
                }
                self.delete(iam, user, &k.id).await?;
                remaining -= 1;
            } else if remaining >= 2 {
                let used = self.last_used(iam, &k.id).await?;
                let state = if k.active { "active" } else { "inactive" };
                let hint = match used {
                    Some(s) => format!("last used {}", Timestamp::from_secs(s)),
                    None if k.active
                        && current
                            .as_ref()
                            .is_some_and(|c| k.created_secs >= c.created_secs) =>
                    {
                        format!(
                            "never used, created {} — possibly left by a createSecret that stopped \
                         before storing it, whose secret half is lost",
                            Timestamp::from_secs(k.created_secs)
                        )
                    }
                    None => "never used".into(),
                };
                return Err(TargetError::Rejected(format!(
                    "user {user} already holds two access keys: the current one ({}) and {} \
                     ({state}, {hint}), which is not a key of this secret. keyroll only touches \
                     the keys recorded in the secret's versions: delete {} yourself (after \
                     checking that nothing uses it), then rotate again",
                    cur.access_key_id, k.id, k.id
                )));
            }
        }
        Ok(())
    }

    async fn caller_identity(&self, key_id: &str, secret: &str) -> Result<String, TargetError> {
        let creds =
            aws_sdk_sts::config::Credentials::new(key_id, secret, None, None, "keyroll-pending");
        let conf = aws_sdk_sts::config::Builder::from(self.sdk().await)
            .credentials_provider(creds)
            .build();
        let sts = aws_sdk_sts::Client::from_conf(conf);
        let out = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk_error(&format!("STS GetCallerIdentity with key {key_id}"), e))?;
        Ok(out.arn().unwrap_or_default().to_string())
    }
}

/// Whether `arn` (`arn:aws:iam::ACCOUNT:user/PATH/NAME`) names user `user`.
fn names_user(arn: &str, user: &str) -> bool {
    arn.split(':').nth(5).is_some_and(|res| {
        res.strip_prefix("user/")
            .is_some_and(|p| p.rsplit('/').next() == Some(user))
    })
}

#[async_trait]
impl Target for IamTarget {
    fn name(&self) -> &str {
        "iam"
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        let mut obj = ctx.current().await?.json()?;
        let cur = IamSecret::parse(&obj, &ctx.description.name)?;
        self.check_user(&cur.username).await?;
        let iam = self.iam().await;
        self.make_room(ctx, &iam, &cur).await?;
        let out = iam
            .create_access_key()
            .user_name(&cur.username)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("IAM CreateAccessKey for user {}", cur.username), e))?;
        let key = out.access_key().ok_or_else(|| {
            TargetError::Rejected(format!(
                "IAM CreateAccessKey for user {} answered without a key",
                cur.username
            ))
        })?;
        tracing::info!(
            secret = %ctx.description.name,
            user = %cur.username,
            access_key_id = key.access_key_id(),
            "IAM access key created"
        );
        obj.insert(
            "accessKeyId".into(),
            Value::String(key.access_key_id().to_string()),
        );
        obj.insert(
            "secretAccessKey".into(),
            Value::String(key.secret_access_key().to_string()),
        );
        let text = Zeroizing::new(Value::Object(obj).to_string());
        Ok(SecretValue::string(text.as_str()))
    }

    async fn set(&self, _ctx: &StepContext<'_>) -> Result<(), TargetError> {
        Ok(())
    }

    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let obj = ctx.pending().await?.json()?;
        let p = IamSecret::parse(&obj, &ctx.description.name)?;
        self.check_user(&p.username).await?;
        let secret = Zeroizing::new(field(&obj, "secretAccessKey", &ctx.description.name)?);
        let mut delay = self.options.test_initial_delay;
        let mut waited = Duration::ZERO;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = match self.caller_identity(&p.access_key_id, &secret).await {
                Ok(arn) if names_user(&arn, &p.username) => return Ok(()),
                Ok(arn) => format!(
                    "STS says the key belongs to {arn}, not to user {}",
                    p.username
                ),
                // keyroll's own configuration problems do not get better by waiting.
                Err(e @ TargetError::Misconfigured(_)) => return Err(e),
                Err(e) => e.to_string(),
            };
            if waited >= self.options.test_timeout {
                return Err(TargetError::TestFailed(format!(
                    "the new access key {} of user {} did not work after {attempts} attempts \
                     over {}s: {outcome}",
                    p.access_key_id,
                    p.username,
                    waited.as_secs()
                )));
            }
            tracing::info!(
                access_key_id = %p.access_key_id,
                attempt = attempts,
                retry_in_ms = delay.as_millis() as u64,
                reason = %outcome,
                "new IAM key not accepted yet (IAM is eventually consistent); retrying"
            );
            self.options.sleeper.sleep(delay).await;
            waited += delay;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        // AWSCURRENT is the new key now; AWSPREVIOUS the one it replaced.
        let cur = IamSecret::parse(&ctx.current().await?.json()?, &ctx.description.name)?;
        self.check_user(&cur.username).await?;
        let Some(prev) = ctx.previous().await? else {
            return Ok(());
        };
        let Ok(prev) = IamSecret::parse(&prev.json()?, &ctx.description.name) else {
            return Ok(());
        };
        if prev.access_key_id == cur.access_key_id {
            return Ok(());
        }
        if prev.username != cur.username {
            tracing::warn!(
                secret = %ctx.description.name,
                "the previous version names another user; its key is left alone"
            );
            return Ok(());
        }
        let iam = self.iam().await;
        self.deactivate(&iam, &cur.username, &prev.access_key_id)
            .await?;
        if self.delete_after(ctx)? == Some(Duration::ZERO) {
            self.delete(&iam, &cur.username, &prev.access_key_id)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_arns() {
        assert!(names_user("arn:aws:iam::123456789012:user/ci", "ci"));
        assert!(names_user("arn:aws:iam::123456789012:user/team/a/ci", "ci"));
        assert!(!names_user("arn:aws:iam::123456789012:user/moto", "ci"));
        assert!(!names_user(
            "arn:aws:sts::123456789012:assumed-role/r/ci",
            "ci"
        ));
        assert!(!names_user("", "ci"));
    }

    #[test]
    fn secrets_need_their_fields() {
        let ok: Map<String, Value> = serde_json::from_str(
            r#"{"engine":"iam","username":"u","accessKeyId":"AKIA1","secretAccessKey":"SEKRET"}"#,
        )
        .unwrap();
        let s = IamSecret::parse(&ok, "x").unwrap();
        assert_eq!(
            (s.username.as_str(), s.access_key_id.as_str()),
            ("u", "AKIA1")
        );
        let mut bad = ok.clone();
        bad.remove("secretAccessKey");
        let e = IamSecret::parse(&bad, "x").err().unwrap().to_string();
        assert!(e.contains("secretAccessKey") && !e.contains("SEKRET"));
    }
}
