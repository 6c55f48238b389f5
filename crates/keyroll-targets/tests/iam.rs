//! Target `iam` against moto's IAM and STS (one `moto_server` per test): full rotations with
//! "never fewer than one working key" checked after every step, the retired key deactivated
//! then deleted, a crash after `CreateAccessKey` that must not leak a key, a foreign key in
//! use that must never be deleted, grace periods on an injected clock, and `testSecret`'s
//! bounded retries on an injected sleeper.
//!
//! moto does not refuse inactive keys, so "works" here means: listed as `Active` for the
//! user by IAM *and* accepted by STS `GetCallerIdentity` as that user.
#![cfg(feature = "aws")]

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::types::StatusType;
use keyroll_core::api::{GetSecretValueRequest, PutSecretValueRequest};
use keyroll_core::engine::{RotateOptions, Silent, rotate, run_step};
use keyroll_core::ids::Namespace;
use keyroll_core::memory::MemoryBackend;
use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Step};
use keyroll_core::ports::{RotationStore, SecretsApi, Target};
use keyroll_core::service::SecretsService;
use keyroll_core::testing::RecordingSleeper;
use keyroll_core::testing::{FlakyTarget, rotatable_secret};
use keyroll_core::time::{ManualClock, Timestamp};
use keyroll_targets::TargetPolicy;
use keyroll_targets::iam::{IamOptions, IamTarget};
use keyroll_testkit::moto::MotoServer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const USER: &str = "ci-deployer";

type Svc = SecretsService<MemoryBackend>;

/// The operator allows the test's user by name.
fn allowed() -> IamOptions {
    allowing(&[USER])
}

fn allowing(users: &[&str]) -> IamOptions {
    IamOptions {
        policy: TargetPolicy::parse(&[], &[], users).unwrap(),
        ..IamOptions::default()
    }
}

struct Env {
    _moto: MotoServer,
    sdk: SdkConfig,
    iam: aws_sdk_iam::Client,
    svc: Svc,
    clock: ManualClock,
    arn: String,
    sleeper: Arc<RecordingSleeper>,
}

async fn sdk_for(moto: &MotoServer) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(keyroll_targets::iam::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// moto, an IAM user with one key, and a secret holding that key in a store on a manual
/// clock.
async fn env(tags: &[(&str, &str)]) -> Env {
    let moto = MotoServer::start().expect("moto_server (scripts/test installs it)");
    let sdk = sdk_for(&moto).await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    iam.create_user().user_name(USER).send().await.unwrap();
    let k = iam
        .create_access_key()
        .user_name(USER)
        .send()
        .await
        .unwrap();
    let k = k.access_key().unwrap();
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let svc = SecretsService::new(MemoryBackend::new(
        Namespace::new("us-east-1", "000000000000"),
        Arc::new(clock.clone()),
    ));
    let value = json!({
        "engine": "iam",
        "username": USER,
        "accessKeyId": k.access_key_id(),
        "secretAccessKey": k.secret_access_key(),
        "note": "kept across rotations",
    });
    let arn = rotatable_secret(&svc, "iam/ci-deployer", &value.to_string(), tags, None)
        .await
        .unwrap();
    Env {
        _moto: moto,
        sdk,
        iam,
        svc,
        clock,
        arn,
        sleeper: Arc::new(RecordingSleeper::default()),
    }
}

impl Env {
    fn target(&self, options: IamOptions) -> IamTarget {
        IamTarget::with_sdk_config(
            self.sdk.clone(),
            IamOptions {
                clock: Arc::new(self.clock.clone()),
                sleeper: self.sleeper.clone(),
                ..options
            },
        )
    }

    async fn stage(&self, stage: &str) -> Option<Value> {
        let r = self
            .svc
            .get_secret_value(GetSecretValueRequest {
                secret_id: self.arn.clone(),
                version_id: None,
                version_stage: Some(stage.into()),
            })
            .await
            .ok()?;
        serde_json::from_str(r.secret_string?.expose_secret()).ok()
    }

    /// The user's keys: id → active.
    async fn keys(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .iam
            .list_access_keys()
            .user_name(USER)
            .send()
            .await
            .unwrap()
            .access_key_metadata()
            .iter()
            .map(|m| {
                (
                    m.access_key_id().unwrap().to_string(),
                    m.status() == Some(&StatusType::Active),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Whether a key pair works (see the module documentation).
    async fn works(&self, id: &str, secret: &str) -> bool {
        if !self
            .keys()
            .await
            .iter()
            .any(|(k, active)| k == id && *active)
        {
            return false;
        }
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                id, secret, None, None, "check",
            ))
            .build();
        match aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
        {
            Ok(out) => out
                .arn()
                .unwrap_or_default()
                .ends_with(&format!(":user/{USER}")),
            Err(_) => false,
        }
    }

    async fn stage_works(&self, stage: &str) -> bool {
        match self.stage(stage).await {
            Some(v) => {
                self.works(
                    v["accessKeyId"].as_str().unwrap(),
                    v["secretAccessKey"].as_str().unwrap(),
                )
                .await
            }
            None => false,
        }
    }

    /// The four steps one by one, as the service runs them, with the invariant checked
    /// before the first and after each.
    async fn rotate_stepwise(&self, target: &dyn Target) {
        let token = keyroll_core::ids::new_token();
        self.svc.begin_rotation(&self.arn, &token).await.unwrap();
        assert!(
            self.stage_works(AWSCURRENT).await,
            "AWSCURRENT works before createSecret"
        );
        for step in Step::ALL {
            run_step(&self.svc, target, step, &self.arn, &token)
                .await
                .unwrap();
            assert!(
                self.stage_works(AWSCURRENT).await,
                "AWSCURRENT works after {step}"
            );
            assert!(
                self.keys().await.iter().any(|(_, active)| *active),
                "at least one active key after {step}"
            );
        }
        self.svc.complete_rotation(&self.arn, &token).await.unwrap();
    }

    fn key_id(v: &Value) -> String {
        v["accessKeyId"].as_str().unwrap().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rotations_deactivate_then_delete_the_old_key_and_never_lock_out() {
    let e = env(&[]).await;
    let t = e.target(allowed());
    let k0 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());

    e.rotate_stepwise(&t).await;
    let cur = e.stage(AWSCURRENT).await.unwrap();
    let k1 = Env::key_id(&cur);
    assert_ne!(k1, k0);
    assert_eq!(cur["note"], "kept across rotations");
    assert_eq!(Env::key_id(&e.stage(AWSPREVIOUS).await.unwrap()), k0);
    let mut want = vec![(k0.clone(), false), (k1.clone(), true)];
    want.sort();
    assert_eq!(
        e.keys().await,
        want,
        "the old key is deactivated, not yet deleted"
    );
    assert!(!e.stage_works(AWSPREVIOUS).await);

    e.clock.advance_days(90);
    e.rotate_stepwise(&t).await;
    let k2 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    let mut want = vec![(k1.clone(), false), (k2.clone(), true)];
    want.sort();
    assert_eq!(
        e.keys().await,
        want,
        "k0 deleted at this rotation, k1 deactivated"
    );
    // The whole rotation again through the orchestrator.
    e.clock.advance_days(90);
    rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    assert!(e.stage_works(AWSCURRENT).await);
    assert_eq!(e.keys().await.len(), 2);
    assert!(
        e.sleeper.delays().is_empty(),
        "moto accepts new keys at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_left_by_an_interrupted_create_is_named_never_deleted() {
    let e = env(&[]).await;
    let t = FlakyTarget::new(e.target(allowed()));
    let k0 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    // CreateAccessKey ran, then the process "died" before PutSecretValue.
    t.fail_after(Step::Create, 1);
    rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert!(e.stage(AWSPENDING).await.is_none());
    let keys = e.keys().await;
    assert_eq!(keys.len(), 2, "the orphan exists: {keys:?}");
    let orphan = keys.iter().find(|(k, _)| k != &k0).unwrap().0.clone();
    assert!(e.stage_works(AWSCURRENT).await);

    // The retry does not delete a key no version of the secret records: it names it.
    let err = rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&orphan) && msg.contains("possibly left by a createSecret"),
        "{msg}"
    );
    assert_eq!(e.keys().await, keys, "nothing touched");
    // Once the operator removed it, the rotation completes.
    e.iam
        .delete_access_key()
        .user_name(USER)
        .access_key_id(&orphan)
        .send()
        .await
        .unwrap();
    rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let k1 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    let mut want = vec![(k0, false), (k1, true)];
    want.sort();
    assert_eq!(e.keys().await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_key_never_used_is_never_deleted() {
    let e = env(&[]).await;
    let k0 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    // An operator's fresh key for the same user, not used yet (newer than AWSCURRENT's).
    let other = e
        .iam
        .create_access_key()
        .user_name(USER)
        .send()
        .await
        .unwrap();
    let other = other.access_key().unwrap().access_key_id().to_string();
    let before = e.keys().await;
    let t = e.target(allowed());
    let err = rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Create));
    assert!(err.to_string().contains(&other), "{err}");
    assert_eq!(e.keys().await, before, "the operator's key is untouched");
    assert!(before.iter().all(|(_, active)| *active));
    assert_eq!(
        Env::key_id(&e.stage(AWSCURRENT).await.unwrap()),
        k0,
        "AWSCURRENT unchanged"
    );
    assert!(e.stage_works(AWSCURRENT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_in_use_is_never_deleted() {
    let e = env(&[]).await;
    // Someone else's key for the same user, in use.
    let other = e
        .iam
        .create_access_key()
        .user_name(USER)
        .send()
        .await
        .unwrap();
    let other = other.access_key().unwrap();
    assert!(
        e.works(other.access_key_id(), other.secret_access_key())
            .await
    );
    let before = e.stage(AWSCURRENT).await.unwrap();

    let t = e.target(allowed());
    let err = rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Create));
    assert_eq!(err.class(), "Rejected");
    let msg = err.to_string();
    assert!(
        msg.contains(other.access_key_id()) && msg.contains("already holds two access keys"),
        "{msg}"
    );
    assert!(!msg.contains(other.secret_access_key()));
    assert!(!msg.contains(before["secretAccessKey"].as_str().unwrap()));
    assert_eq!(e.stage(AWSCURRENT).await.unwrap(), before);
    assert!(
        e.keys().await.iter().all(|(_, active)| *active),
        "nothing deactivated"
    );
    assert!(e.stage_works(AWSCURRENT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_periods_on_an_injected_clock() {
    // Tag 0: the previous key is deleted right after its deactivation.
    let e = env(&[("keyroll:iam-delete-previous-after-days", "0")]).await;
    let t = e.target(allowed());
    e.rotate_stepwise(&t).await;
    let k1 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    assert_eq!(e.keys().await, [(k1, true)]);
    drop(e);

    // Seven days: the next rotation waits until the previous key's grace period is over.
    let e = env(&[]).await;
    let t = e.target(IamOptions {
        delete_previous_after: Some(Duration::from_secs(7 * 86_400)),
        ..allowed()
    });
    e.rotate_stepwise(&t).await;
    let k1 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    e.clock.advance_days(3);
    let err = rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("grace period keeps until"),
        "{err}"
    );
    assert_eq!(Env::key_id(&e.stage(AWSCURRENT).await.unwrap()), k1);
    assert!(e.stage_works(AWSCURRENT).await);
    e.clock.advance_days(5);
    rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let k2 = Env::key_id(&e.stage(AWSCURRENT).await.unwrap());
    let mut want = vec![(k1, false), (k2, true)];
    want.sort();
    assert_eq!(e.keys().await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_secret_retries_within_a_bound_then_fails_leaving_awscurrent() {
    let e = env(&[]).await;
    let t = e.target(IamOptions {
        test_timeout: Duration::from_secs(20),
        test_initial_delay: Duration::from_secs(1),
        ..allowed()
    });
    let before = e.stage(AWSCURRENT).await.unwrap();
    // A pending version whose key IAM never issued.
    let token = keyroll_core::ids::new_token();
    e.svc.begin_rotation(&e.arn, &token).await.unwrap();
    let mut bogus = before.clone();
    bogus["accessKeyId"] = json!("AKIAIOSFODNN7NOTREAL");
    bogus["secretAccessKey"] = json!("not-a-real-secret-key-value");
    e.svc
        .put_secret_value(PutSecretValueRequest {
            secret_id: e.arn.clone(),
            client_request_token: Some(token.clone()),
            secret_string: Some(SecretString::from(bogus.to_string())),
            secret_binary: None,
            version_stages: Some(vec![AWSPENDING.into()]),
            rotation_token: None,
        })
        .await
        .unwrap();
    let err = run_step(&e.svc, &t, Step::Test, &e.arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.class(), "TestFailed");
    let msg = err.to_string();
    assert!(
        msg.contains("AKIAIOSFODNN7NOTREAL") && msg.contains("not to user"),
        "{msg}"
    );
    assert!(!msg.contains("not-a-real-secret-key-value"));
    let delays = e.sleeper.delays();
    assert_eq!(
        delays,
        [1, 2, 4, 8, 10].map(Duration::from_secs),
        "growing delays, capped at 10 s, until 20 s were spent"
    );
    assert_eq!(e.stage(AWSCURRENT).await.unwrap(), before);
    assert!(e.stage_works(AWSCURRENT).await);
}

/// An IAM "endpoint" on loopback that only counts connections: whatever reaches it is an
/// IAM (or STS) call.
async fn counting_endpoint() -> (SdkConfig, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(keyroll_targets::iam::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    (sdk, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_outside_allow_users_fails_before_any_iam_call() {
    let (sdk, calls) = counting_endpoint().await;
    let svc: Svc = keyroll_core::memory::memory_service();
    let value = json!({"engine": "iam", "username": "admin", "accessKeyId": "AKIAADMIN",
                       "secretAccessKey": "SEKRET"});
    let arn = rotatable_secret(&svc, "iam/admin", &value.to_string(), &[], None)
        .await
        .unwrap();
    for options in [
        IamOptions::default(),
        allowing(&[USER]),
        allowing(&["ADMINS", "admin2"]),
    ] {
        let t = IamTarget::with_sdk_config(sdk.clone(), options);
        let err = rotate(&svc, &t, &arn, &RotateOptions::default(), &Silent)
            .await
            .unwrap_err();
        assert_eq!(err.failed_step(), Some(Step::Create), "{err}");
        assert_eq!(err.class(), "Misconfigured");
        let msg = err.to_string();
        assert!(
            msg.contains("IAM user \"admin\" is not allowed")
                && msg.contains("[targets.iam] allow_users")
                && msg.contains("--allow-iam-user")
                && msg.contains("KEYROLL_IAM_ALLOW_USERS")
                && !msg.contains("SEKRET"),
            "{msg}"
        );
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no IAM or STS call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_allowed_by_path_prefix_and_refused_outside_it() {
    let e = env(&[]).await;
    // USER has path "/": a /service/ prefix does not cover it. GetUser is the only call.
    let t = e.target(allowing(&["/service/"]));
    let err = rotate(&e.svc, &t, &e.arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Create));
    assert!(
        err.to_string().contains("(path /)") && err.to_string().contains("allow_users"),
        "{err}"
    );
    assert_eq!(e.keys().await.len(), 1, "no key created");

    // A user under /service/ rotates.
    e.iam
        .create_user()
        .user_name("svc-bot")
        .path("/service/batch/")
        .send()
        .await
        .unwrap();
    let k = e
        .iam
        .create_access_key()
        .user_name("svc-bot")
        .send()
        .await
        .unwrap();
    let k = k.access_key().unwrap();
    let value = json!({"engine": "iam", "username": "svc-bot",
                       "accessKeyId": k.access_key_id(), "secretAccessKey": k.secret_access_key()});
    let arn = rotatable_secret(&e.svc, "iam/svc-bot", &value.to_string(), &[], None)
        .await
        .unwrap();
    rotate(&e.svc, &t, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    let cur: Value = serde_json::from_str(
        e.svc
            .get_secret_value(GetSecretValueRequest {
                secret_id: arn.clone(),
                version_id: None,
                version_stage: None,
            })
            .await
            .unwrap()
            .secret_string
            .unwrap()
            .expose_secret(),
    )
    .unwrap();
    assert_ne!(cur["accessKeyId"], k.access_key_id());
}
