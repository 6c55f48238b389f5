//! The rotation engine over the in-memory store: the service's flow, failure handling,
//! resumption, idempotent steps and the AWS template's validation.

use keyroll_core::api::*;
use keyroll_core::engine::{
    RotateOptions, RotationError, RotationFunction, Silent, StepError, StepRunner, rotate,
    rotate_with, run_step, test_rotation,
};
use keyroll_core::memory::{MemoryBackend, memory_service};
use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Step};
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::service::SecretsService;
use keyroll_core::testing::{CounterTarget, FlakyTarget};
use keyroll_core::value::SecretValue;
use secrecy::{ExposeSecret, SecretString};

type Svc = SecretsService<MemoryBackend>;

async fn create(svc: &Svc, name: &str, value: &str) -> String {
    svc.create_secret(CreateSecretRequest {
        name: name.into(),
        client_request_token: Some(keyroll_core::ids::new_token()),
        secret_string: Some(SecretString::from(value.to_string())),
        ..Default::default()
    })
    .await
    .unwrap()
    .arn
}

async fn value(svc: &Svc, id: &str, stage: &str) -> Option<String> {
    svc.get_secret_value(GetSecretValueRequest {
        secret_id: id.into(),
        version_stage: Some(stage.into()),
        version_id: None,
    })
    .await
    .ok()
    .and_then(|r| r.secret_string.map(|s| s.expose_secret().to_string()))
}

async fn enable(svc: &Svc, id: &str) {
    svc.configure_rotation(id, Some("keyroll".into()), None)
        .await
        .unwrap();
}

async fn stages(svc: &Svc, id: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    svc.describe_secret(SecretIdRequest {
        secret_id: id.into(),
    })
    .await
    .unwrap()
    .version_ids_to_stages
    .unwrap()
}

#[tokio::test]
async fn rotation_promotes_pending_and_cleans_up() {
    let svc = memory_service();
    let arn = create(&svc, "app/token", "v0").await;
    enable(&svc, &arn).await;
    let before = svc
        .describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap();
    assert!(before.last_rotated_date.is_none());
    let report = rotate(
        &svc,
        &CounterTarget::default(),
        "app/token",
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert_eq!(report.steps.len(), 4);
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-0");
    assert_eq!(value(&svc, &arn, AWSPREVIOUS).await.unwrap(), "v0");
    assert!(value(&svc, &arn, AWSPENDING).await.is_none());
    let st = stages(&svc, &arn).await;
    assert!(!st.values().flatten().any(|s| s == AWSPENDING), "{st:?}");
    let after = svc
        .describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap();
    assert!(after.last_rotated_date.is_some());
    let status = after.keyroll_rotation_status.unwrap();
    assert_eq!(status.state, keyroll_core::model::RotationState::Succeeded);
}

#[tokio::test]
async fn failure_at_each_step_keeps_current_and_a_rerun_completes() {
    for step in Step::ALL {
        for after in [false, true] {
            let svc = memory_service();
            let arn = create(&svc, "s", "v0").await;
            enable(&svc, &arn).await;
            let target = FlakyTarget::new(CounterTarget::default());
            if after {
                target.fail_after(step, 1);
            } else {
                target.fail_before(step, 1);
            }
            let err = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
                .await
                .unwrap_err();
            assert_eq!(err.failed_step(), Some(step), "{err}");
            let current = value(&svc, &arn, AWSCURRENT).await.unwrap();
            if step == Step::Finish {
                // The target's finish hook runs after AWSCURRENT moved to the tested value:
                // the new value is current and valid, and the rerun only cleans up.
                assert_eq!(current, "v0-rotated-0");
            } else {
                assert_eq!(current, "v0", "{step} after={after}");
            }
            let desc = svc
                .describe_secret(SecretIdRequest {
                    secret_id: arn.clone(),
                })
                .await
                .unwrap();
            let status = desc.keyroll_rotation_status.clone().unwrap();
            assert_eq!(status.failed_step, Some(step));
            assert!(desc.holder(AWSPENDING).is_some());

            let report = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
                .await
                .unwrap();
            assert!(report.resumed);
            if step == Step::Finish {
                // Only the clean-up was left to do, and it ran again.
                assert_eq!(report.steps.len(), 1);
                assert_eq!(report.steps[0].0, Step::Finish);
            }
            // A createSecret that failed before storing its value generates again on resume.
            let expected = if step == Step::Create && after {
                "v0-rotated-1"
            } else {
                "v0-rotated-0"
            };
            assert_eq!(
                value(&svc, &arn, AWSCURRENT).await.unwrap(),
                expected,
                "{step} after={after}"
            );
            assert_eq!(value(&svc, &arn, AWSPREVIOUS).await.unwrap(), "v0");
            assert!(value(&svc, &arn, AWSPENDING).await.is_none());
        }
    }
}

#[tokio::test]
async fn every_step_is_idempotent() {
    let svc = memory_service();
    let arn = create(&svc, "s", "v0").await;
    enable(&svc, &arn).await;
    let token = keyroll_core::ids::new_token();
    svc.begin_rotation(&arn, &token).await.unwrap();
    let t = CounterTarget::default();
    for step in Step::ALL {
        for _ in 0..3 {
            run_step(&svc, &t, step, &arn, &token).await.unwrap();
        }
    }
    // createSecret ran three times but generated once.
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-0");
}

#[tokio::test]
async fn step_validation_follows_the_template() {
    let svc = memory_service();
    let arn = create(&svc, "s", "v0").await;
    let t = CounterTarget::default();
    let token = keyroll_core::ids::new_token();
    // Rotation not enabled.
    let e = run_step(&svc, &t, Step::Create, &arn, &token)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StepError::Invalid(ref m) if m.contains("not enabled")),
        "{e}"
    );
    enable(&svc, &arn).await;
    // Unknown token.
    let e = run_step(&svc, &t, Step::Create, &arn, &token)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StepError::Invalid(ref m) if m.contains("has no stage")),
        "{e}"
    );
    // Token that is AWSCURRENT: success, nothing done.
    let current = svc
        .describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap();
    let cur = current.holder(AWSCURRENT).unwrap().to_string();
    run_step(&svc, &t, Step::Set, &arn, &cur).await.unwrap();
    // Token that is neither current nor pending.
    let other = keyroll_core::ids::new_token();
    svc.put_secret_value(PutSecretValueRequest {
        secret_id: arn.clone(),
        client_request_token: Some(other.clone()),
        secret_string: Some(SecretString::from("x".to_string())),
        version_stages: Some(vec!["CUSTOM".into()]),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = run_step(&svc, &t, Step::Set, &arn, &other)
        .await
        .unwrap_err();
    assert!(
        matches!(e, StepError::Invalid(ref m) if m.contains("not set as AWSPENDING")),
        "{e}"
    );
}

#[tokio::test]
async fn concurrent_rotation_is_refused() {
    let svc = memory_service();
    let arn = create(&svc, "s", "v0").await;
    enable(&svc, &arn).await;
    let _held = svc.try_lock_rotation(&arn).unwrap().unwrap();
    let e = rotate(
        &svc,
        &CounterTarget::default(),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RotationError::AlreadyRunning { .. }), "{e}");
    assert!(e.to_string().contains("already running"));
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0");
    drop(_held);
    rotate(
        &svc,
        &CounterTarget::default(),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn not_enabled_is_a_clear_error() {
    let svc = memory_service();
    let arn = create(&svc, "s", "v0").await;
    let e = rotate(
        &svc,
        &CounterTarget::default(),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RotationError::NotEnabled { .. }));
}

/// A driver outside the service (keyroll rotate --store aws) may rotate a secret whose
/// RotationEnabled is false; the Lambda entry point (`run_step`) still refuses.
#[tokio::test]
async fn allow_rotation_disabled_skips_only_the_orchestrators_check() {
    let svc = memory_service();
    let arn = create(&svc, "s", "v0").await;
    let opts = RotateOptions {
        allow_rotation_disabled: true,
        ..Default::default()
    };
    let r = rotate(&svc, &CounterTarget::default(), &arn, &opts, &Silent)
        .await
        .unwrap();
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-0");
    assert_eq!(value(&svc, &arn, AWSPREVIOUS).await.unwrap(), "v0");
    let e = run_step(
        &svc,
        &CounterTarget::default(),
        Step::Set,
        &arn,
        &r.version_id,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StepError::Invalid(_)), "{e}");
}

#[tokio::test]
async fn discard_pending_starts_over() {
    let svc = memory_service();
    let arn = create(&svc, "s", "v0").await;
    enable(&svc, &arn).await;
    let target = FlakyTarget::new(CounterTarget::default());
    target.fail_before(Step::Set, 1);
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    let stale = svc
        .describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap()
        .holder(AWSPENDING)
        .unwrap()
        .to_string();
    let opts = RotateOptions {
        discard_pending: true,
        ..Default::default()
    };
    let r = rotate(&svc, &target, &arn, &opts, &Silent).await.unwrap();
    assert!(!r.resumed);
    assert_ne!(r.version_id, stale);
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-1");
}

#[tokio::test]
async fn binary_secret_round_trip_and_value_kinds() {
    let svc = memory_service();
    svc.create_secret(CreateSecretRequest {
        name: "bin".into(),
        client_request_token: Some(keyroll_core::ids::new_token()),
        secret_binary: Some(secrecy::SecretSlice::from(vec![0u8, 1, 2, 255])),
        ..Default::default()
    })
    .await
    .unwrap();
    let r = svc
        .get_secret_value(GetSecretValueRequest {
            secret_id: "bin".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.value().unwrap().expose_bytes(), &[0u8, 1, 2, 255]);
    assert!(matches!(r.value(), Some(SecretValue::Binary(_))));
}

/// Counts commits, to keep a rotation's fsyncs (the embedded store's main cost) in check.
struct Counting {
    inner: MemoryBackend,
    commits: std::sync::atomic::AtomicUsize,
}

impl keyroll_core::service::Backend for Counting {
    fn namespace(&self) -> &keyroll_core::ids::Namespace {
        self.inner.namespace()
    }
    fn now(&self) -> keyroll_core::time::Timestamp {
        self.inner.now()
    }
    fn find(
        &self,
        r: &keyroll_core::ids::SecretRef,
    ) -> Result<Option<keyroll_core::model::SecretRecord>, keyroll_core::SmError> {
        self.inner.find(r)
    }
    fn for_each(
        &self,
        f: &mut dyn FnMut(&keyroll_core::model::SecretRecord),
    ) -> Result<(), keyroll_core::SmError> {
        self.inner.for_each(f)
    }
    fn read_value(
        &self,
        record: &keyroll_core::model::SecretRecord,
        version_id: &str,
    ) -> Result<SecretValue, keyroll_core::SmError> {
        self.inner.read_value(record, version_id)
    }
    fn commit(
        &self,
        change: keyroll_core::service::Change<'_>,
    ) -> Result<(), keyroll_core::service::CommitError> {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.commit(change)
    }
    fn try_lock_rotation(
        &self,
        arn: &str,
    ) -> Result<Option<keyroll_core::ports::RotationLock>, keyroll_core::SmError> {
        self.inner.try_lock_rotation(arn)
    }
}

#[tokio::test]
async fn a_rotation_takes_four_commits() {
    let svc = SecretsService::new(Counting {
        inner: MemoryBackend::new(
            keyroll_core::ids::Namespace::new("us-east-1", "000000000000"),
            std::sync::Arc::new(keyroll_core::time::SystemClock),
        ),
        commits: Default::default(),
    });
    let arn = svc
        .create_secret(CreateSecretRequest {
            name: "s".into(),
            client_request_token: Some(keyroll_core::ids::new_token()),
            secret_string: Some(SecretString::from("v0".to_string())),
            ..Default::default()
        })
        .await
        .unwrap()
        .arn;
    svc.configure_rotation(&arn, Some("keyroll".into()), None)
        .await
        .unwrap();
    let target = CounterTarget::default();
    // The first read of the day records LastAccessedDate: get that out of the way.
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let before = svc
        .backend()
        .commits
        .load(std::sync::atomic::Ordering::SeqCst);
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let n = svc
        .backend()
        .commits
        .load(std::sync::atomic::Ordering::SeqCst)
        - before;
    // Placeholder with the in-progress status, createSecret's put, the first read of the
    // new version (its LastAccessedDate: AWS dates every version read), finishSecret's label
    // move, and the clean-up with LastRotatedDate.
    assert_eq!(n, 5, "commits per rotation");
}

#[tokio::test]
async fn a_cancelled_rotation_stops_before_set_and_discards_pending() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let svc = memory_service();
    let arn = create(&svc, "app/cancel", "v0").await;
    enable(&svc, &arn).await;
    let opts = RotateOptions {
        cancel: Some(Arc::new(AtomicBool::new(true))),
        ..RotateOptions::default()
    };
    let target = CounterTarget::default();
    let err = rotate(&svc, &target, &arn, &opts, &Silent)
        .await
        .unwrap_err();
    match &err {
        RotationError::Step { step, error, .. } => {
            assert_eq!(*step, Step::Create);
            assert!(matches!(error, StepError::Cancelled(Step::Create)));
        }
        other => panic!("expected a cancelled step, got {other}"),
    }
    assert_eq!(err.class(), "Cancelled");
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0");
    let desc = svc
        .describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap();
    assert!(
        desc.holder(AWSPENDING).is_none(),
        "nothing was set: the pending version is discarded"
    );
    let status = desc.keyroll_rotation_status.unwrap();
    assert_eq!(status.error_type.as_deref(), Some("Cancelled"));
    // The next run starts afresh and completes.
    let report = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    assert!(!report.resumed);
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-0");
}

/// Sets the cancel flag and disables rotation (what `CancelRotateSecret` does) while
/// setSecret runs.
struct CancelDuringSet<'a> {
    svc: &'a Svc,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl keyroll_core::ports::Target for CancelDuringSet<'_> {
    fn name(&self) -> &str {
        "cancel-during-set"
    }
    async fn create(
        &self,
        ctx: &keyroll_core::ports::StepContext<'_>,
    ) -> Result<SecretValue, keyroll_core::ports::TargetError> {
        CounterTarget::default().create(ctx).await
    }
    async fn set(
        &self,
        ctx: &keyroll_core::ports::StepContext<'_>,
    ) -> Result<(), keyroll_core::ports::TargetError> {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.svc.cancel_rotation(ctx.secret_id)?;
        Ok(())
    }
    async fn test(
        &self,
        ctx: &keyroll_core::ports::StepContext<'_>,
    ) -> Result<(), keyroll_core::ports::TargetError> {
        ctx.pending().await.map(|_| ())
    }
}

#[tokio::test]
async fn a_cancel_after_set_lets_the_rotation_complete() {
    let svc = memory_service();
    let arn = create(&svc, "app/late-cancel", "v0").await;
    enable(&svc, &arn).await;
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let target = CancelDuringSet {
        svc: &svc,
        flag: flag.clone(),
    };
    let opts = RotateOptions {
        cancel: Some(flag),
        ..RotateOptions::default()
    };
    let report = rotate(&svc, &target, &arn, &opts, &Silent).await.unwrap();
    assert_eq!(report.steps.len(), 4);
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-0");
    assert!(value(&svc, &arn, AWSPENDING).await.is_none());
    let desc = svc
        .describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        desc.rotation_enabled,
        Some(false),
        "future rotations stay off"
    );
}

#[tokio::test]
async fn a_rotation_interrupted_after_set_resumes_with_rotation_disabled() {
    let svc = memory_service();
    let arn = create(&svc, "app/interrupted", "v0").await;
    enable(&svc, &arn).await;
    let target = FlakyTarget::new(CounterTarget::default());
    target.fail_after(Step::Set, 1);
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    // Rotation switched off (CancelRotateSecret) after setSecret changed the target.
    svc.cancel_rotation(&arn).unwrap();
    let report = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    assert!(report.resumed);
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0-rotated-0");
    // A rotation that never reached setSecret is not resumed once rotation is off.
    let arn2 = create(&svc, "app/never-set", "v0").await;
    enable(&svc, &arn2).await;
    target.fail_before(Step::Create, 1);
    rotate(&svc, &target, &arn2, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    svc.cancel_rotation(&arn2).unwrap();
    let err = rotate(&svc, &target, &arn2, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert_eq!(err.class(), "RotationNotEnabled");
}

async fn status(svc: &Svc, arn: &str) -> keyroll_core::model::RotationStatus {
    svc.describe_secret(SecretIdRequest {
        secret_id: arn.into(),
    })
    .await
    .unwrap()
    .keyroll_rotation_status
    .unwrap()
}

#[tokio::test]
async fn an_interruption_is_not_a_failed_attempt() {
    let svc = memory_service();
    let arn = create(&svc, "app/attempts", "v0").await;
    enable(&svc, &arn).await;
    let target = FlakyTarget::new(CounterTarget::default());
    target.fail_before(Step::Test, 1);
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    let failed = status(&svc, &arn).await;
    assert_eq!((failed.attempts, failed.failures()), (1, 1));
    // A run that begins and is killed leaves InProgress with attempt 2 ...
    let running =
        keyroll_core::model::RotationStatus::begin(&failed.version_id, svc.now(), Some(&failed));
    assert_eq!((running.attempts, running.failures()), (2, 1));
    svc.record_rotation_status(&arn, running).await.unwrap();
    // ... and the run that carries it on keeps that number: one failure so far.
    let report = rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    assert!(report.resumed);
    let done = status(&svc, &arn).await;
    assert_eq!(done.attempts, 2);
}

/// A target whose setSecret never returns (a statement waiting on a lock).
struct Hangs;

#[async_trait::async_trait]
impl keyroll_core::ports::Target for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }
    async fn create(
        &self,
        ctx: &keyroll_core::ports::StepContext<'_>,
    ) -> Result<SecretValue, keyroll_core::ports::TargetError> {
        CounterTarget::default().create(ctx).await
    }
    async fn set(
        &self,
        _ctx: &keyroll_core::ports::StepContext<'_>,
    ) -> Result<(), keyroll_core::ports::TargetError> {
        std::future::pending().await
    }
    async fn test(
        &self,
        _ctx: &keyroll_core::ports::StepContext<'_>,
    ) -> Result<(), keyroll_core::ports::TargetError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_step_past_its_deadline_fails_and_is_resumable() {
    use std::time::Duration;
    let svc = memory_service();
    let arn = create(&svc, "app/hangs", "v0").await;
    enable(&svc, &arn).await;
    let ms = Duration::from_millis;
    for (step_timeout, rotation_timeout) in [
        (Some(ms(50)), None),
        (Some(Duration::from_secs(600)), Some(ms(80))),
    ] {
        let opts = RotateOptions {
            step_timeout,
            rotation_timeout,
            ..RotateOptions::default()
        };
        let err = rotate(&svc, &Hangs, &arn, &opts, &Silent)
            .await
            .unwrap_err();
        assert_eq!(err.failed_step(), Some(Step::Set));
        assert_eq!(err.class(), "Timeout");
        match &err {
            RotationError::Step {
                error: StepError::TimedOut { after, .. },
                ..
            } => match step_timeout {
                Some(s) if rotation_timeout.is_none() => assert_eq!(*after, s),
                _ => assert!(*after <= ms(80), "{after:?}"),
            },
            other => panic!("expected a timeout, got {other}"),
        }
        assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0");
    }
    // Resumable: the same pending version completes with a target that answers.
    let report = rotate(
        &svc,
        &CounterTarget::default(),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert!(
        value(&svc, &arn, AWSCURRENT)
            .await
            .unwrap()
            .starts_with("v0-rotated-")
    );
}

/// A rotation function that does each step itself through the store, like a Lambda; with
/// `promote: false` its finishSecret forgets to move AWSCURRENT.
struct SelfServiceFunction<'a> {
    svc: &'a Svc,
    promote: bool,
}

#[async_trait::async_trait]
impl RotationFunction for SelfServiceFunction<'_> {
    async fn invoke(&self, step: Step, secret_id: &str, token: &str) -> Result<(), StepError> {
        match step {
            Step::Create => {
                self.svc
                    .put_secret_value(PutSecretValueRequest {
                        secret_id: secret_id.into(),
                        client_request_token: Some(token.into()),
                        secret_string: Some(SecretString::from("from-the-function".to_string())),
                        version_stages: Some(vec![AWSPENDING.into()]),
                        ..Default::default()
                    })
                    .await?;
            }
            Step::Finish if self.promote => {
                let desc = self
                    .svc
                    .describe_secret(SecretIdRequest {
                        secret_id: secret_id.into(),
                    })
                    .await?;
                self.svc
                    .update_secret_version_stage(UpdateSecretVersionStageRequest {
                        secret_id: secret_id.into(),
                        version_stage: AWSCURRENT.into(),
                        move_to_version_id: Some(token.into()),
                        remove_from_version_id: desc.holder(AWSCURRENT).map(str::to_string),
                    })
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_rotation_function_runs_the_steps_and_must_promote() {
    let svc = memory_service();
    let arn = create(&svc, "app/function", "v0").await;
    enable(&svc, &arn).await;
    let forgetful = SelfServiceFunction {
        svc: &svc,
        promote: false,
    };
    let err = rotate_with(
        &svc,
        StepRunner::Function(&forgetful),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Finish));
    assert_eq!(err.class(), "FinishIncomplete");
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0");
    assert_eq!(
        value(&svc, &arn, AWSPENDING).await.unwrap(),
        "from-the-function"
    );

    let good = SelfServiceFunction {
        svc: &svc,
        promote: true,
    };
    let report = rotate_with(
        &svc,
        StepRunner::Function(&good),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert_eq!(
        value(&svc, &arn, AWSCURRENT).await.unwrap(),
        "from-the-function"
    );
    assert_eq!(value(&svc, &arn, AWSPREVIOUS).await.unwrap(), "v0");
    assert!(value(&svc, &arn, AWSPENDING).await.is_none());
}

#[tokio::test]
async fn test_only_runs_test_secret_through_the_engine_and_removes_the_placeholder() {
    let svc = memory_service();
    let arn = create(&svc, "app/test-only", "v0").await;
    enable(&svc, &arn).await;
    // The caller's own placeholder (what RotateSecret adds before answering).
    let token = keyroll_core::ids::new_token();
    svc.begin_rotation(&arn, &token).await.unwrap();
    let opts = RotateOptions {
        token: Some(token.clone()),
        ..RotateOptions::default()
    };
    let target = FlakyTarget::new(CounterTarget::default());
    let report = test_rotation(&svc, StepRunner::Builtin(&target), &arn, &opts, &Silent)
        .await
        .unwrap();
    assert!(!report.resumed);
    assert_eq!(report.version_id, token);
    assert_eq!(report.steps.len(), 1);
    assert_eq!(report.steps[0].0, Step::Test);
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0");
    assert!(
        !stages(&svc, &arn).await.contains_key(&token),
        "placeholder removed"
    );
    // A failing test is recorded, and changes nothing either.
    target.fail_before(Step::Test, 1);
    let err = test_rotation(
        &svc,
        StepRunner::Builtin(&target),
        &arn,
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Test));
    let st = status(&svc, &arn).await;
    assert_eq!(st.failed_step, Some(Step::Test));
    assert!(
        !stages(&svc, &arn)
            .await
            .values()
            .flatten()
            .any(|s| s == AWSPENDING)
    );
    assert_eq!(value(&svc, &arn, AWSCURRENT).await.unwrap(), "v0");
}

#[tokio::test]
async fn the_callers_own_placeholder_is_a_fresh_rotation() {
    let svc = memory_service();
    let arn = create(&svc, "app/own", "v0").await;
    enable(&svc, &arn).await;
    let token = keyroll_core::ids::new_token();
    svc.begin_rotation(&arn, &token).await.unwrap();
    let opts = RotateOptions {
        token: Some(token.clone()),
        ..RotateOptions::default()
    };
    let report = rotate(&svc, &CounterTarget::default(), &arn, &opts, &Silent)
        .await
        .unwrap();
    assert!(!report.resumed);
    assert_eq!(report.version_id, token);
    assert_eq!(status(&svc, &arn).await.attempts, 1);
}

#[tokio::test]
async fn a_clients_new_current_value_counts_as_a_rotation_whichever_driver_writes() {
    let svc = memory_service();
    let arn = create(&svc, "app/manual", "v0").await;
    svc.configure_rotation(
        &arn,
        Some("keyroll".into()),
        Some(keyroll_core::model::RotationRules {
            automatically_after_days: Some(10),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let describe = || async {
        svc.describe_secret(SecretIdRequest {
            secret_id: arn.clone(),
        })
        .await
        .unwrap()
    };
    assert!(describe().await.last_rotated_date.is_none());
    // A pending value (what rotation functions put) does not count.
    svc.put_secret_value(PutSecretValueRequest {
        secret_id: arn.clone(),
        client_request_token: Some(keyroll_core::ids::new_token()),
        secret_string: Some(SecretString::from("p".to_string())),
        version_stages: Some(vec![AWSPENDING.into()]),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(describe().await.last_rotated_date.is_none());
    // A new AWSCURRENT put straight to the service (as `keyroll secret put` does) counts.
    svc.put_secret_value(PutSecretValueRequest {
        secret_id: arn.clone(),
        client_request_token: Some(keyroll_core::ids::new_token()),
        secret_string: Some(SecretString::from("v1".to_string())),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = describe().await;
    let rotated = d.last_rotated_date.expect("counted as a rotation");
    assert_eq!(
        d.next_rotation_date.unwrap().millis() - rotated.millis(),
        10 * 86_400_000
    );
}

#[tokio::test]
async fn rotate_secret_checks_and_placeholder_live_in_the_engine() {
    use keyroll_core::SmError;
    use keyroll_core::engine::begin_request;
    let svc = memory_service();
    let arn = create(&svc, "app/request", "v0").await;
    let ok = |_: &str| -> Result<(), SmError> { Ok(()) };
    let req = |token: Option<&str>| RotateSecretRequest {
        secret_id: arn.clone(),
        client_request_token: token.map(str::to_string),
        rotation_lambda_arn: Some("keyroll".into()),
        ..Default::default()
    };
    let err = begin_request(&svc, &req(None), |_| false, ok)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("You must provide a ClientRequestToken value"),
        "{err}"
    );
    // The service's own rule about the function runs before anything is saved.
    let refuse = |_: &str| -> Result<(), SmError> { Err(SmError::InvalidRequest("no".into())) };
    let token = keyroll_core::ids::new_token();
    begin_request(&svc, &req(Some(&token)), |_| false, refuse)
        .await
        .unwrap_err();
    assert!(stages(&svc, &arn).await.len() == 1, "nothing saved");
    // A running rotation is a conflict.
    begin_request(&svc, &req(Some(&token)), |_| true, ok)
        .await
        .unwrap_err();
    let begun = begin_request(&svc, &req(Some(&token)), |_| false, ok)
        .await
        .unwrap();
    assert!(!begun.retry);
    assert_eq!(begun.version_id, token);
    assert_eq!(stages(&svc, &arn).await[&token], [AWSPENDING]);
    // A retry of the same request answers again; another token is a conflict.
    let again = begin_request(&svc, &req(Some(&token)), |_| false, ok)
        .await
        .unwrap();
    assert!(again.retry);
    let other = keyroll_core::ids::new_token();
    let err = begin_request(&svc, &req(Some(&other)), |_| false, ok)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("A previous rotation isn't complete"),
        "{err}"
    );
    // The run that follows is a fresh rotation under the request's token.
    let opts = RotateOptions {
        token: Some(token.clone()),
        ..RotateOptions::default()
    };
    let report = rotate(&svc, &CounterTarget::default(), &arn, &opts, &Silent)
        .await
        .unwrap();
    assert!(!report.resumed);
    assert_eq!(report.version_id, token);
}
