//! One step, validated the way AWS's rotation-function template does.

use std::time::Duration;

use super::StepError;
use crate::api::{
    GetSecretValueRequest, PutSecretValueRequest, SecretIdRequest, UpdateSecretVersionStageRequest,
};
use crate::model::{AWSCURRENT, AWSPENDING, Step};
use crate::ports::{SecretsApi, StepContext, Target};

/// How strictly to check an event before running a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// AWS's template: the token must be a version of the secret.
    Full,
    /// The store could not hold a placeholder: `createSecret` may create the version.
    TokenMayBeAbsent,
}

/// Runs one step for version `token` of `secret_id`, after the checks of AWS's template:
/// rotation must be enabled; the token must be a version of the secret; a token already
/// `AWSCURRENT` means the step has nothing to do; otherwise the token must be `AWSPENDING`.
/// Every step is idempotent.
pub async fn run_step(
    store: &dyn SecretsApi,
    target: &dyn Target,
    step: Step,
    secret_id: &str,
    token: &str,
) -> Result<(), StepError> {
    run_step_checked(store, target, step, secret_id, token, Check::Full, true).await
}

/// [`run_step`] bounded by `limit`: a step still running then is stopped and fails with
/// [`StepError::TimedOut`] (every step is idempotent, so the next attempt carries it on).
pub async fn run_step_within(
    store: &dyn SecretsApi,
    target: &dyn Target,
    step: Step,
    secret_id: &str,
    token: &str,
    limit: Option<Duration>,
) -> Result<(), StepError> {
    bounded(step, limit, run_step(store, target, step, secret_id, token)).await
}

/// Runs `f` for at most `limit`.
pub(super) async fn bounded(
    step: Step,
    limit: Option<Duration>,
    f: impl std::future::Future<Output = Result<(), StepError>>,
) -> Result<(), StepError> {
    match limit {
        None => f.await,
        Some(after) if after.is_zero() => Err(StepError::TimedOut { step, after }),
        Some(after) => match tokio::time::timeout(after, f).await {
            Ok(r) => r,
            Err(_) => Err(StepError::TimedOut { step, after }),
        },
    }
}

pub(super) async fn run_step_checked(
    store: &dyn SecretsApi,
    target: &dyn Target,
    step: Step,
    secret_id: &str,
    token: &str,
    check: Check,
    require_enabled: bool,
) -> Result<(), StepError> {
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: secret_id.into(),
        })
        .await?;
    if require_enabled && desc.rotation_enabled != Some(true) {
        return Err(StepError::Invalid(format!(
            "Secret {} is not enabled for rotation.",
            desc.arn
        )));
    }
    match desc.stages_of(token) {
        None if check == Check::TokenMayBeAbsent && step == Step::Create => {}
        None => {
            return Err(StepError::Invalid(format!(
                "Secret version {token} has no stage for rotation of secret {}.",
                desc.arn
            )));
        }
        Some(stages) if stages.iter().any(|s| s == AWSCURRENT) => {
            if step == Step::Finish && stages.iter().any(|s| s == AWSPENDING) {
                // Promoted, but the clean-up after the promotion (revoking or deactivating
                // what the previous version held) has not succeeded yet: retry it.
                let arn = desc.arn.clone();
                let ctx = StepContext::new(store, step, &arn, token, &desc);
                tracing::info!(secret = %arn, version = token, "finishSecret: retrying the clean-up of the previous version");
                target.finish(&ctx).await?;
                return Ok(());
            }
            tracing::info!(secret = %desc.arn, version = token, %step, "version already AWSCURRENT; nothing to do");
            return Ok(());
        }
        Some(stages) if !stages.iter().any(|s| s == AWSPENDING) => {
            return Err(StepError::Invalid(format!(
                "Secret version {token} not set as AWSPENDING for rotation of secret {}.",
                desc.arn
            )));
        }
        Some(_) => {}
    }
    let arn = desc.arn.clone();
    let ctx = StepContext::new(store, step, &arn, token, &desc);
    match step {
        Step::Create => create_secret(&ctx, target).await,
        Step::Set => Ok(target.set(&ctx).await?),
        Step::Test => Ok(target.test(&ctx).await?),
        Step::Finish => finish_secret(&ctx, target).await,
    }
}

async fn create_secret(ctx: &StepContext<'_>, target: &dyn Target) -> Result<(), StepError> {
    // The current version must exist; the template fails the rotation otherwise.
    ctx.current().await?;
    let existing = ctx
        .store
        .get_secret_value(GetSecretValueRequest {
            secret_id: ctx.secret_id.into(),
            version_id: Some(ctx.token.into()),
            version_stage: Some(AWSPENDING.into()),
        })
        .await;
    match existing {
        Ok(_) => {
            tracing::info!(
                secret = ctx.secret_id,
                version = ctx.token,
                "createSecret: pending value already exists"
            );
            return Ok(());
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let value = target.create(ctx).await?;
    value.validate()?;
    let (secret_string, secret_binary) = value.into_parts();
    ctx.store
        .put_secret_value(PutSecretValueRequest {
            secret_id: ctx.secret_id.into(),
            client_request_token: Some(ctx.token.into()),
            secret_string,
            secret_binary,
            version_stages: Some(vec![AWSPENDING.into()]),
            rotation_token: None,
        })
        .await?;
    tracing::info!(
        secret = ctx.secret_id,
        version = ctx.token,
        "createSecret: pending value stored"
    );
    Ok(())
}

async fn finish_secret(ctx: &StepContext<'_>, target: &dyn Target) -> Result<(), StepError> {
    let current = ctx.description.holder(AWSCURRENT).map(str::to_string);
    if current.as_deref() == Some(ctx.token) {
        return Ok(());
    }
    ctx.store
        .update_secret_version_stage(UpdateSecretVersionStageRequest {
            secret_id: ctx.secret_id.into(),
            version_stage: AWSCURRENT.into(),
            move_to_version_id: Some(ctx.token.into()),
            remove_from_version_id: current.clone(),
        })
        .await?;
    tracing::info!(secret = ctx.secret_id, version = ctx.token, previous = ?current, "finishSecret: AWSCURRENT moved");
    target.finish(ctx).await?;
    Ok(())
}
