//! Sentinel test (acceptance): a recognisable secret value is stored, read, rotated away and
//! around; it must then appear in no file of the data directory (database, `-wal`, `-shm`,
//! key file, lock files), in no log line (a TRACE-level subscriber captures everything), and
//! in no error's `Display` or `Debug` that the test can provoke.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use keyroll_core::api::*;
use keyroll_core::engine::{RotateOptions, Silent, rotate};
use keyroll_core::model::{AWSCURRENT, AWSPREVIOUS, Step};
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::testing::FlakyTarget;
use keyroll_store::embedded::{DB_FILE, EmbeddedStore, Env, MASTER_KEY_ENV, OpenOptions};
use keyroll_targets::none::NoneTarget;
use secrecy::{ExposeSecret, SecretSlice};

const SENTINEL: &str = "SENTINEL-5f1c9b7e2d4a4c3f8e6b1a0d9c7e5f3b";
const SENTINEL_BIN: &[u8] = b"\x00SENTINEL-BIN-a81f66c2\xff";
const SENTINEL_JSON_PW: &str = "SENTINEL-PW-0b3e9d51c7a24f68";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every form of the sentinels that must never show up.
fn needles() -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        SENTINEL.as_bytes().to_vec(),
        b64.encode(SENTINEL).into_bytes(),
        SENTINEL_BIN.to_vec(),
        b"SENTINEL-BIN".to_vec(),
        b64.encode(SENTINEL_BIN).into_bytes(),
        SENTINEL_JSON_PW.as_bytes().to_vec(),
    ]
}

fn assert_clean(what: &str, haystack: &[u8]) {
    for n in needles() {
        assert!(!contains(haystack, &n), "a sentinel leaked into {what}");
    }
}

fn assert_files_clean(dir: &std::path::Path) -> usize {
    let all = files(dir);
    for (path, bytes) in &all {
        assert_clean(&path.display().to_string(), bytes);
    }
    all.len()
}

#[test]
fn sentinel_values_never_reach_files_logs_or_errors() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let opts = || {
        OpenOptions::new(dir.path())
            .clock(Arc::new(clock.clone()))
            .env(Env::empty())
    };
    let store = EmbeddedStore::open(opts()).unwrap();
    let svc = store.region("us-east-1");
    let mut errors: Vec<String> = Vec::new();
    let mut record = |e: &dyn std::fmt::Debug, d: String| errors.push(format!("{d} / {e:?}"));

    rt().block_on(async {
        let plain = svc
            .create_secret(CreateSecretRequest {
                name: "sentinel/plain".into(),
                client_request_token: Some(token(1)),
                secret_string: s(SENTINEL),
                ..Default::default()
            })
            .await
            .unwrap();
        let json = serde_json::json!({"username": "app", "password": SENTINEL_JSON_PW});
        svc.create_secret(CreateSecretRequest {
            name: "sentinel/json".into(),
            client_request_token: Some(token(2)),
            secret_string: s(&json.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
        svc.create_secret(CreateSecretRequest {
            name: "sentinel/binary".into(),
            client_request_token: Some(token(3)),
            secret_binary: Some(SecretSlice::from(SENTINEL_BIN.to_vec())),
            ..Default::default()
        })
        .await
        .unwrap();

        let got = get(&svc, "sentinel/plain", None, None).await.unwrap();
        assert_eq!(
            got.secret_string.as_ref().unwrap().expose_secret(),
            SENTINEL
        );
        assert_clean(
            "a GetSecretValue response's Debug",
            format!("{got:?}").as_bytes(),
        );
        let value = got.value().unwrap();
        assert_clean("a SecretValue's Debug", format!("{value:?}").as_bytes());
        let bin = get(&svc, "sentinel/binary", None, None).await.unwrap();
        assert_eq!(bin.secret_binary.unwrap().expose_secret(), SENTINEL_BIN);

        // Rotate every text secret: the sentinels become AWSPREVIOUS, then deprecated.
        for name in ["sentinel/plain", "sentinel/json"] {
            svc.configure_rotation(name, Some("keyroll".into()), None)
                .await
                .unwrap();
            for _ in 0..2 {
                let r = rotate(
                    &svc,
                    &NoneTarget::new(),
                    name,
                    &RotateOptions::default(),
                    &Silent,
                )
                .await
                .unwrap();
                assert_clean("a rotation report's Debug", format!("{r:?}").as_bytes());
            }
        }
        assert_ne!(
            get_string(&svc, "sentinel/plain", AWSCURRENT)
                .await
                .as_deref(),
            Some(SENTINEL)
        );
        let old = get(&svc, "sentinel/plain", None, Some(&token(1)))
            .await
            .unwrap();
        assert_eq!(
            old.secret_string.unwrap().expose_secret(),
            SENTINEL,
            "still readable"
        );

        // A rotation failing at setSecret logs and records its error.
        let flaky = FlakyTarget::new(NoneTarget::new());
        flaky.fail_before(Step::Set, 1);
        let e = rotate(
            &svc,
            &flaky,
            "sentinel/json",
            &RotateOptions::default(),
            &Silent,
        )
        .await
        .unwrap_err();
        record(&e, e.to_string());
        rotate(
            &svc,
            &flaky,
            "sentinel/json",
            &RotateOptions::default(),
            &Silent,
        )
        .await
        .unwrap();
        // Binary secrets cannot be rotated by the none target: an error about that secret.
        svc.configure_rotation("sentinel/binary", Some("keyroll".into()), None)
            .await
            .unwrap();
        let e = rotate(
            &svc,
            &NoneTarget::new(),
            "sentinel/binary",
            &RotateOptions::default(),
            &Silent,
        )
        .await
        .unwrap_err();
        record(&e, e.to_string());

        // Same token, other value; unknown secret; unknown version; bad stage move.
        let e = svc
            .put_secret_value(PutSecretValueRequest {
                secret_id: plain.arn.clone(),
                client_request_token: Some(token(1)),
                secret_string: s(&format!("{SENTINEL}-changed")),
                ..Default::default()
            })
            .await
            .unwrap_err();
        record(&e, e.to_string());
        let e = get(&svc, "sentinel/none", None, None).await.unwrap_err();
        record(&e, e.to_string());
        let e = get(&svc, "sentinel/plain", None, Some(&token(99)))
            .await
            .unwrap_err();
        record(&e, e.to_string());
        let e = svc
            .update_secret_version_stage(UpdateSecretVersionStageRequest {
                secret_id: "sentinel/plain".into(),
                version_stage: AWSCURRENT.into(),
                move_to_version_id: Some(token(1)),
                remove_from_version_id: None,
            })
            .await
            .unwrap_err();
        record(&e, e.to_string());
        let e = svc
            .create_secret(CreateSecretRequest {
                name: "sentinel/plain".into(),
                client_request_token: Some(token(4)),
                secret_string: s(SENTINEL),
                ..Default::default()
            })
            .await
            .unwrap_err();
        record(&e, e.to_string());
        let d = svc
            .describe_secret(SecretIdRequest {
                secret_id: "sentinel/json".into(),
            })
            .await;
        assert_clean("DescribeSecret", format!("{d:?}").as_bytes());
        let l = svc
            .list_secrets(ListSecretsRequest::default())
            .await
            .unwrap();
        assert_clean("ListSecrets", serde_json::to_string(&l).unwrap().as_bytes());
        assert!(
            get_string(&svc, "sentinel/plain", AWSPREVIOUS)
                .await
                .is_some()
        );
    });

    // While the store is open (the log holds the recent commits) and after it is closed
    // (checkpointed into the database file).
    assert!(assert_files_clean(dir.path()) >= 4);
    assert_clean(
        "the store's Debug",
        format!("{store:?} {:?}", svc.backend()).as_bytes(),
    );
    drop(svc);
    drop(store);
    assert_files_clean(dir.path());

    // A wrong master key.
    let wrong = EmbeddedStore::open(opts().env(Env::from_pairs([(MASTER_KEY_ENV, OTHER_KEY_HEX)])))
        .unwrap_err();
    record(&wrong, wrong.to_string());
    // A malformed one.
    let malformed =
        EmbeddedStore::open(opts().env(Env::from_pairs([(MASTER_KEY_ENV, "nope")]))).unwrap_err();
    record(&malformed, malformed.to_string());

    // A value moved onto another version (tampering) fails to decrypt, and says so safely.
    {
        let c = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.execute(
            "UPDATE secret_values SET sealed = (SELECT sealed FROM secret_values WHERE \
             version_id = ?1) WHERE version_id = ?2",
            [token(1), token(2)],
        )
        .unwrap();
    }
    let store = EmbeddedStore::open(opts()).unwrap();
    let svc = store.region("us-east-1");
    let e = rt()
        .block_on(get(&svc, "sentinel/json", None, Some(&token(2))))
        .unwrap_err();
    assert_eq!(e.aws_type(), "DecryptionFailure");
    record(&e, e.to_string());
    assert!(
        rt().block_on(get_string(&svc, "sentinel/plain", AWSPREVIOUS))
            .is_some()
    );
    drop(svc);
    drop(store);
    assert_files_clean(dir.path());

    assert!(errors.len() >= 10, "{errors:?}");
    for e in &errors {
        assert_clean("an error message", e.as_bytes());
    }
    let captured = logs.0.lock().unwrap().clone();
    // The capture works: the store and the engine did log, at every level down to TRACE.
    let text = String::from_utf8_lossy(&captured);
    assert!(text.contains("committed"), "no TRACE lines captured");
    assert!(text.contains("finishSecret"), "no engine lines captured");
    assert!(text.contains("rotation step failed"), "no failure captured");
    assert_clean("the logs", &captured);
}
