//! `RotateSecret`'s part before it answers ([`begin_request`]) and `RotateImmediately=false`
//! ([`test_rotation`]).

use std::time::Instant;

use super::{
    RotateOptions, RotationError, RotationObserver, RotationReport, StepError, StepRunner, bounded,
    discard, record_failure,
};
use crate::api::SecretIdRequest;
use crate::error::SmError;
use crate::model::{AWSCURRENT, AWSPENDING, RotationStatus, Step};
use crate::ports::{RotationStore, StepContext};

/// `RotateImmediately=false`: tests the rotation configuration without rotating. Under the
/// rotation lock, a value-less `AWSPENDING` placeholder (under `opts.token`, or the caller's
/// own placeholder already there) stands for the run; keyroll's steps test the *current*
/// credentials with the target's `testSecret` (the placeholder has no value yet), a
/// [`RotationFunction`](super::RotationFunction) gets the `testSecret` event for the placeholder. The placeholder is
/// removed afterwards, whatever the outcome; a failure is recorded like a failed rotation.
pub async fn test_rotation(
    store: &dyn RotationStore,
    runner: StepRunner<'_>,
    secret_id: &str,
    opts: &RotateOptions,
    observer: &dyn RotationObserver,
) -> Result<RotationReport, RotationError> {
    let started = Instant::now();
    let (_lock, desc) = super::lock_and_describe(store, secret_id).await?;
    let arn = desc.arn.clone();
    let token = opts.token.clone().unwrap_or_else(crate::ids::new_token);
    if desc.holder(AWSPENDING) != Some(token.as_str()) {
        store.begin_rotation(&arn, &token).await?;
    }
    let status = RotationStatus::begin(&token, store.now(), None);
    observer.started(&arn, &token, false);
    observer.step_started(Step::Test);
    let t = Instant::now();
    let work = async {
        match runner {
            StepRunner::Builtin(target) => {
                let current = desc.holder(AWSCURRENT).ok_or_else(|| {
                    StepError::Invalid(format!(
                        "Secret {} has no AWSCURRENT version to test.",
                        desc.arn
                    ))
                })?;
                let ctx = StepContext::new(store, Step::Test, &arn, current, &desc);
                Ok(target.test(&ctx).await?)
            }
            StepRunner::Function(f) => f.invoke(Step::Test, &arn, &token).await,
        }
    };
    let result = bounded(Step::Test, opts.limit(None), work).await;
    let elapsed = t.elapsed();
    observer.step_finished(Step::Test, elapsed, result.as_ref().err());
    if let Err(e) = discard(store, &arn, &token).await {
        tracing::warn!(secret = %arn, version = %token, error = %e, "could not remove the test's placeholder");
    }
    match result {
        Ok(()) => Ok(RotationReport {
            arn,
            name: desc.name,
            version_id: token,
            resumed: false,
            steps: vec![(Step::Test, elapsed)],
            total: started.elapsed(),
        }),
        Err(error) => {
            record_failure(store, &arn, status, Step::Test, &error).await;
            Err(RotationError::Step {
                step: Step::Test,
                token,
                error,
            })
        }
    }
}

/// What [`begin_request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub arn: String,
    pub name: String,
    /// The request's `ClientRequestToken`: the new version's id.
    pub version_id: String,
    /// A retry of a request whose placeholder is already there: its rotation is under way
    /// (or will be resumed); nothing is to be started.
    pub retry: bool,
}

/// `RotateSecret`'s checks and its placeholder, the same for every service that implements
/// the API: the token is required and valid; the secret exists, is not scheduled for
/// deletion and is not a replica; a rotation function is named (in the request or stored),
/// and `check_function` accepts it (the service's own rule, e.g. `keyroll serve` refuses a
/// function it cannot run) before anything is saved; the rules are valid; no rotation is
/// pending (a retry under the same token answers again) or `running`; there is an
/// `AWSCURRENT` to rotate. Then the function and rules are saved and a value-less
/// `AWSPENDING` placeholder is added under the request's token; the caller starts the run
/// ([`rotate_with`](super::rotate_with) with `RotateOptions::token` = that token is a fresh rotation, or
/// [`test_rotation`] for `RotateImmediately=false`).
pub async fn begin_request<E: From<SmError>>(
    store: &dyn RotationStore,
    req: &crate::api::RotateSecretRequest,
    running: impl Fn(&str) -> bool,
    check_function: impl Fn(&str) -> Result<(), E>,
) -> Result<Begun, E> {
    // AWS's wording, and for RotateSecret its type (recorded AWS responses,
    // no_client_request_token[RotateSecret]). SDKs and the aws CLI generate a token.
    let token = req.client_request_token.clone().ok_or_else(|| {
        SmError::InvalidParameter(
            "You must provide a ClientRequestToken value. We recommend a UUID-type value.".into(),
        )
    })?;
    crate::ids::validate_token(&token)?;
    // The rules' bounds come before any look-up and before the missing-function error.
    if let Some(rules) = &req.rotation_rules {
        rules.validate_basic()?;
        crate::schedule::validate(rules)?;
    }
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: req.secret_id.clone(),
        })
        .await?;
    if desc.deleted_date.is_some() {
        return Err(SmError::marked_for_deletion().into());
    }
    let own_region = crate::ids::parse_arn(&desc.arn).map(|a| a.region.to_string());
    if desc
        .primary_region
        .as_deref()
        .is_some_and(|p| own_region.as_deref() != Some(p))
    {
        return Err(SmError::replica_write().into());
    }
    let lambda = req
        .rotation_lambda_arn
        .clone()
        .or_else(|| desc.rotation_lambda_arn.clone())
        .ok_or_else(|| {
            SmError::InvalidRequest(
                "No Lambda rotation function ARN is associated with this secret.".into(),
            )
        })?;
    // A function that cannot run is refused before anything is saved.
    check_function(&lambda)?;
    let pending_conflict = || {
        SmError::InvalidRequest(
            "A previous rotation isn't complete. That rotation will be reattempted.".into(),
        )
    };
    // Also a promoted version that still holds AWSPENDING: its clean-up is pending, and a
    // new placeholder would take the label that records it.
    if let Some(p) = desc.holder(AWSPENDING) {
        if p == token {
            return Ok(Begun {
                arn: desc.arn.clone(),
                name: desc.name.clone(),
                version_id: token,
                retry: true,
            });
        }
        return Err(pending_conflict().into());
    }
    if running(&desc.arn) {
        return Err(pending_conflict().into());
    }
    if desc.holder(AWSCURRENT).is_none() {
        return Err(SmError::InvalidRequest(
            "The secret has no AWSCURRENT version to rotate: put a value first.".into(),
        )
        .into());
    }
    store
        .configure_rotation(&desc.arn, Some(lambda), req.rotation_rules.clone())
        .await?;
    store.begin_rotation(&desc.arn, &token).await?;
    Ok(Begun {
        arn: desc.arn,
        name: desc.name,
        version_id: token,
        retry: false,
    })
}
