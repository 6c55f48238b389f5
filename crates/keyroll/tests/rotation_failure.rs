//! A generic rotation failing at setSecret on the real embedded store: AWSCURRENT is
//! unchanged, the failure is recorded, and a re-run completes.

use keyroll_core::api::{CreateSecretRequest, GetSecretValueRequest, SecretIdRequest};
use keyroll_core::engine::{RotateOptions, Silent, rotate};
use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, RotationState, Step};
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::testing::FlakyTarget;
use keyroll_store::embedded::{EmbeddedStore, MasterKeySource, OpenOptions};
use keyroll_targets::none::NoneTarget;
use secrecy::{ExposeSecret, SecretString};

async fn value(s: &dyn SecretsApi, stage: &str) -> Option<String> {
    s.get_secret_value(GetSecretValueRequest {
        secret_id: "db/app".into(),
        version_id: None,
        version_stage: Some(stage.into()),
    })
    .await
    .ok()
    .and_then(|r| r.secret_string.map(|v| v.expose_secret().to_string()))
}

#[tokio::test]
async fn failure_at_set_secret_keeps_current_and_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        EmbeddedStore::open(
            OpenOptions::new(dir.path())
                .master_key(MasterKeySource::File(dir.path().join("master.key"))),
        )
        .unwrap()
        .region("us-east-1")
    };
    let store = open();
    store
        .create_secret(CreateSecretRequest {
            name: "db/app".into(),
            client_request_token: Some(keyroll_core::ids::new_token()),
            secret_string: Some(SecretString::from(r#"{"password":"p0"}"#.to_string())),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .configure_rotation("db/app", Some("keyroll".into()), None)
        .await
        .unwrap();

    let target = FlakyTarget::new(NoneTarget::new());
    target.fail_before(Step::Set, 1);
    let err = rotate(
        &store,
        &target,
        "db/app",
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Set));
    assert_eq!(
        value(&store, AWSCURRENT).await.unwrap(),
        r#"{"password":"p0"}"#
    );
    let pending = value(&store, AWSPENDING).await.unwrap();

    // The failure is visible after a restart (a new process would see the same).
    drop(store);
    let store = open();
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: "db/app".into(),
        })
        .await
        .unwrap();
    let status = desc.keyroll_rotation_status.unwrap();
    assert_eq!(status.state, RotationState::Failed);
    assert_eq!(status.failed_step, Some(Step::Set));
    assert!(status.message.unwrap().contains("injected failure"));

    let report = rotate(
        &store,
        &target,
        "db/app",
        &RotateOptions::default(),
        &Silent,
    )
    .await
    .unwrap();
    assert!(report.resumed);
    assert_eq!(
        value(&store, AWSCURRENT).await.unwrap(),
        pending,
        "the resumed rotation promotes the same pending value"
    );
    assert_eq!(
        value(&store, AWSPREVIOUS).await.unwrap(),
        r#"{"password":"p0"}"#
    );
    assert!(value(&store, AWSPENDING).await.is_none());
}
