//! Acceptance scenarios, written once and run against each real server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use keyroll_core::engine::run_step;
use keyroll_core::model::Step;
use keyroll_core::ports::{RotationStore, StepContext, Target, TargetError};
use keyroll_core::testing::FlakyTarget;
use keyroll_core::value::SecretValue;
use serde_json::json;

use super::*;

/// A borrowed target as an owned one (for `FlakyTarget`).
pub struct Borrowed<'a>(pub &'a dyn Target);

#[async_trait]
impl Target for Borrowed<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        self.0.create(ctx).await
    }
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.0.set(ctx).await
    }
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.0.test(ctx).await
    }
    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.0.finish(ctx).await
    }
}

pub const INITIAL: &str = "Initial-Pa55word";

async fn make(h: &Harness<'_>, alternating: bool, user: &str, password: &str) -> String {
    if alternating {
        h.alternating("app/db", user, password).await
    } else {
        h.single_user("app/db", user, password).await
    }
}

/// 20 rotations in a row: each new AWSCURRENT logs in and keeps the app's privileges; the
/// replaced password stops working (single user) or keeps working until the next rotation
/// (alternating users). Returns the statistics of the last rotation.
pub async fn twenty_rotations(db: &dyn Db, alternating: bool) -> StatsSnapshot {
    let h = Harness::new(db);
    let arn = make(&h, alternating, "app", INITIAL).await;
    let mut history = vec![h.current(&arn).await];
    let mut last = StatsSnapshot::default();
    for i in 0..20 {
        let before = h.target.stats();
        h.rotate(&arn)
            .await
            .unwrap_or_else(|e| panic!("rotation {i}: {e}"));
        last = h.target.stats() - before;
        let cur = h.current(&arn).await;
        let prev = history.last().unwrap().clone();
        assert_ne!(cur.version, prev.version);
        assert_eq!(
            h.stage(&arn, "AWSPREVIOUS").await.unwrap().version,
            prev.version
        );
        assert_eq!(
            db.login(&cur.username, &cur.password).await,
            LoginOutcome::Ok,
            "rotation {i}"
        );
        assert!(
            db.can_read_app_data(&cur.username, &cur.password).await,
            "rotation {i}"
        );
        if alternating {
            assert_ne!(cur.username, prev.username);
            assert_eq!(
                db.login(&prev.username, &prev.password).await,
                LoginOutcome::Ok
            );
            if history.len() >= 2 {
                let older = &history[history.len() - 2];
                assert_eq!(older.username, cur.username);
                assert_eq!(
                    db.login(&older.username, &older.password).await,
                    LoginOutcome::AuthFailed
                );
            }
        } else {
            assert_eq!(cur.username, prev.username);
            assert_eq!(
                db.login(&prev.username, &prev.password).await,
                LoginOutcome::AuthFailed
            );
        }
        // Every other key of the secret is carried over.
        assert_eq!(cur.value["host"], prev.value["host"]);
        assert_eq!(cur.value["port"], prev.value["port"]);
        assert_eq!(cur.value.get("masterarn"), prev.value.get("masterarn"));
        history.push(cur);
    }
    last
}

/// Every step run twice in a row gives the same outcome as running it once.
pub async fn every_step_twice(db: &dyn Db, alternating: bool) {
    let h = Harness::new(db);
    let arn = make(&h, alternating, "app", INITIAL).await;
    for round in 0..3 {
        let old = h.current(&arn).await;
        let token = keyroll_core::ids::new_token();
        h.svc.begin_rotation(&arn, &token).await.unwrap();
        let t = h.target.as_target();
        run_step(&h.svc, t, Step::Create, &arn, &token)
            .await
            .unwrap();
        let pending = h.stage(&arn, "AWSPENDING").await.unwrap();
        run_step(&h.svc, t, Step::Create, &arn, &token)
            .await
            .unwrap();
        assert_eq!(
            h.stage(&arn, "AWSPENDING").await.unwrap(),
            pending,
            "round {round}"
        );
        for step in [Step::Set, Step::Test, Step::Finish] {
            for n in 0..2 {
                run_step(&h.svc, t, step, &arn, &token)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: {step} #{n}: {e}"));
                assert_eq!(
                    db.login(&pending.username, &pending.password).await,
                    LoginOutcome::Ok,
                    "round {round}: {step} #{n}"
                );
                // The replaced credentials: alternating users keep working; a single
                // user's old password stopped at setSecret.
                let expect = if alternating {
                    LoginOutcome::Ok
                } else {
                    LoginOutcome::AuthFailed
                };
                assert_eq!(
                    db.login(&old.username, &old.password).await,
                    expect,
                    "round {round}: {step} #{n}"
                );
            }
        }
        h.svc.complete_rotation(&arn, &token).await.unwrap();
        assert_eq!(h.current(&arn).await.version, pending.version);
    }
}

/// A crash between any two steps (and a failure inside each step, before or after it acted)
/// followed by a new rotation ends with a working AWSCURRENT.
pub async fn crash_anywhere_then_rotate(db: &dyn Db, alternating: bool) {
    let h = Harness::new(db);
    let arn = make(&h, alternating, "app", INITIAL).await;
    // Stop after step N (N = 1..3), then rotate: the rotation resumes the pending version.
    for stop_after in 1..=3 {
        let token = keyroll_core::ids::new_token();
        h.svc.begin_rotation(&arn, &token).await.unwrap();
        for step in Step::ALL.into_iter().take(stop_after) {
            run_step(&h.svc, h.target.as_target(), step, &arn, &token)
                .await
                .unwrap();
        }
        let cur = h.current(&arn).await;
        if stop_after >= 2 && !alternating {
            // Single user: between set and finish, AWSCURRENT is stale (the known window).
            assert_eq!(
                db.login(&cur.username, &cur.password).await,
                LoginOutcome::AuthFailed
            );
        } else {
            assert_eq!(
                db.login(&cur.username, &cur.password).await,
                LoginOutcome::Ok
            );
        }
        let report = h
            .rotate(&arn)
            .await
            .unwrap_or_else(|e| panic!("resume after {stop_after}: {e}"));
        assert!(report.resumed);
        assert_eq!(report.version_id, token);
        let cur = h.current(&arn).await;
        assert_eq!(cur.version, token);
        assert_eq!(
            db.login(&cur.username, &cur.password).await,
            LoginOutcome::Ok
        );
    }
    // Injected failures before and after each step's work.
    for step in Step::ALL {
        for after in [false, true] {
            let flaky = FlakyTarget::new(Borrowed(h.target.as_target()));
            if after {
                flaky.fail_after(step, 1);
            } else {
                flaky.fail_before(step, 1);
            }
            let before = h.current(&arn).await;
            let err = h.rotate_with(&flaky, &arn).await.unwrap_err();
            assert_eq!(err.failed_step(), Some(step));
            if step != Step::Finish {
                assert_eq!(
                    h.current(&arn).await.version,
                    before.version,
                    "{step} after={after}"
                );
            }
            h.rotate_with(&flaky, &arn)
                .await
                .unwrap_or_else(|e| panic!("retry after {step} (after={after}): {e}"));
            let cur = h.current(&arn).await;
            assert_ne!(cur.version, before.version);
            assert_eq!(
                db.login(&cur.username, &cur.password).await,
                LoginOutcome::Ok,
                "{step} after={after}"
            );
        }
    }
}

/// The password changed behind keyroll's back.
pub async fn drift_single(db: &dyn Db) {
    let h = Harness::new(db);
    let arn = make(&h, false, "app", INITIAL).await;
    h.rotate(&arn).await.unwrap();
    let cur = h.current(&arn).await;
    let prev = h.stage(&arn, "AWSPREVIOUS").await.unwrap();
    // Recoverable: the password was put back to the AWSPREVIOUS one (say, a restore).
    db.set_password("app", &prev.password).await;
    h.rotate(&arn).await.expect("recovered through AWSPREVIOUS");
    let now = h.current(&arn).await;
    assert_ne!(now.version, cur.version);
    assert_eq!(db.login("app", &now.password).await, LoginOutcome::Ok);

    // Not recoverable: a password keyroll never saw.
    let unknown = "Unknown-Drift-Pa55";
    db.set_password("app", unknown).await;
    let err = h.rotate(&arn).await.unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Set));
    assert_eq!(err.class(), "AuthenticationFailed", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("changed outside keyroll") && msg.contains("AWSCURRENT is unchanged"),
        "{msg}"
    );
    assert!(
        msg.contains("\"app\"") && msg.contains(&db.port().to_string()),
        "{msg}"
    );
    for secret in [unknown, &now.password, &prev.password, INITIAL] {
        assert!(!msg.contains(secret), "the error shows a password: {msg}");
    }
    assert_eq!(h.current(&arn).await.version, now.version);
    // Once the password is fixed, the same rotation resumes and completes.
    db.set_password("app", &now.password).await;
    let report = h.rotate(&arn).await.unwrap();
    assert!(report.resumed);
    let fixed = h.current(&arn).await;
    assert_eq!(db.login("app", &fixed.password).await, LoginOutcome::Ok);
}

/// Alternating users: the current user's password drifted; the master is not used.
pub async fn drift_alternating(db: &dyn Db) {
    let h = Harness::new(db);
    let arn = make(&h, true, "app", INITIAL).await;
    h.rotate(&arn).await.unwrap();
    let cur = h.current(&arn).await;
    assert_eq!(cur.username, "app_clone");
    db.set_password("app_clone", "Unknown-Drift-Pa55").await;
    let err = h.rotate(&arn).await.unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Set));
    assert_eq!(err.class(), "AuthenticationFailed");
    assert!(err.to_string().contains("confused-deputy"), "{err}");
    assert!(!err.to_string().contains("Unknown-Drift"), "{err}");
    assert_eq!(h.current(&arn).await.version, cur.version);
    // The other user was not touched.
    let prev = h.stage(&arn, "AWSPREVIOUS").await.unwrap();
    assert_eq!(
        db.login(&prev.username, &prev.password).await,
        LoginOutcome::Ok
    );
}

/// A master secret for another server is refused before anything is changed.
pub async fn master_on_another_host_is_refused(db: &dyn Db) {
    let h = Harness::new(db);
    db.create_app_user("app", INITIAL).await;
    let (admin, admin_pw) = db.admin();
    let mut master = h.secret_json(&admin, &admin_pw, json!({}));
    master["host"] = json!("localhost");
    let master = h.put_secret("elsewhere-master", &master, &[]).await;
    let arn = h
        .put_secret(
            "app/db",
            &h.secret_json("app", INITIAL, json!({ "masterarn": master })),
            &[],
        )
        .await;
    let err = h.rotate(&arn).await.unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Set));
    assert!(err.to_string().contains("confused-deputy"), "{err}");
    assert_eq!(
        db.login("app_clone", "anything").await,
        LoginOutcome::AuthFailed
    );
}

/// The hostile user names of the acceptance list.
pub const HOSTILE: [&str; 4] = [
    "o'brien",
    "we ird",
    "\"x\"; DROP ROLE y; --",
    "üñíçødé-ユーザー",
];

/// Hostile names and every allowed punctuation character: no injection, rotation works.
pub async fn hostile_input(db: &dyn Db, alternating: bool) {
    let h = Harness::new(db);
    let punct = allowed_punctuation(db.engine());
    // A canary the injected statement would drop.
    db.create_app_user("y", INITIAL).await;
    for (i, user) in HOSTILE.iter().enumerate() {
        let initial = format!("Aa1{punct}");
        db.create_app_user(user, &initial).await;
        let mut extra = json!({});
        if alternating {
            let (admin, admin_pw) = db.admin();
            let m = h
                .put_secret(
                    &format!("m{i}"),
                    &h.secret_json(&admin, &admin_pw, json!({})),
                    &[],
                )
                .await;
            extra = json!({ "masterarn": m });
        }
        let arn = h
            .put_secret(&format!("s{i}"), &h.secret_json(user, &initial, extra), &[])
            .await;
        for r in 0..3 {
            h.rotate(&arn)
                .await
                .unwrap_or_else(|e| panic!("{user:?} rotation {r}: {e}"));
            let cur = h.current(&arn).await;
            assert_eq!(
                db.login(&cur.username, &cur.password).await,
                LoginOutcome::Ok,
                "{user:?}"
            );
            assert!(
                db.can_read_app_data(&cur.username, &cur.password).await,
                "{user:?}"
            );
        }
        // A pending password made of every allowed punctuation character.
        let cur = h.current(&arn).await;
        let mut pending = cur.value.clone();
        let target_user = if alternating {
            keyroll_targets::database::alternate_username(
                &cur.username,
                keyroll_targets::database::Engine::parse(db.engine()).unwrap(),
            )
            .unwrap()
        } else {
            cur.username.clone()
        };
        let chosen = format!("Zz9{punct}{punct}");
        pending["username"] = json!(target_user);
        pending["password"] = json!(chosen);
        let token = h.begin_with_pending(&arn, &pending).await;
        let report = h
            .rotate(&arn)
            .await
            .unwrap_or_else(|e| panic!("{user:?} chosen password: {e}"));
        assert_eq!(report.version_id, token);
        assert_eq!(
            db.login(&target_user, &chosen).await,
            LoginOutcome::Ok,
            "{user:?}"
        );
    }
    assert_eq!(
        db.login("y", INITIAL).await,
        LoginOutcome::Ok,
        "the canary user is gone"
    );
}

/// An application that reads AWSCURRENT afresh before every new connection, running while
/// the secret rotates `rotations` times. Each rotation waits until the application has
/// completed a connection that started after the previous rotation finished (so the test
/// never outruns it). Returns (authentication failures, connection attempts).
pub async fn application_during_rotations(
    db: SharedDb,
    alternating: bool,
    rotations: usize,
) -> (u64, u64) {
    let h = Harness::new(&*db);
    let arn = make(&h, alternating, "app", INITIAL).await;
    let svc = SecretsService::new(h.svc.backend().clone());
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0u64);
    let epoch = Arc::new(AtomicU64::new(0));
    let app = {
        let (db, stop, failures, attempts, epoch, arn) = (
            db.clone(),
            stop.clone(),
            failures.clone(),
            attempts.clone(),
            epoch.clone(),
            arn.clone(),
        );
        tokio::spawn(async move {
            let app_harness = Harness {
                db: &*db,
                svc,
                target: db.target(TargetConfig::default()),
            };
            while !stop.load(Ordering::SeqCst) {
                let started_in = epoch.load(Ordering::SeqCst);
                let cur = app_harness.current(&arn).await;
                attempts.fetch_add(1, Ordering::SeqCst);
                match db.login(&cur.username, &cur.password).await {
                    LoginOutcome::Ok => {}
                    LoginOutcome::AuthFailed => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    LoginOutcome::Other(e) => panic!("application: {e}"),
                }
                let _ = seen_tx.send(started_in);
            }
        })
    };
    for r in 0..rotations {
        h.rotate(&arn)
            .await
            .unwrap_or_else(|e| panic!("rotation {r}: {e}"));
        let finished = epoch.fetch_add(1, Ordering::SeqCst) + 1;
        // Wait for a connection that began after this rotation finished.
        seen_rx
            .wait_for(|started| *started >= finished)
            .await
            .expect("the application is running");
    }
    stop.store(true, Ordering::SeqCst);
    app.await.unwrap();
    (
        failures.load(Ordering::SeqCst),
        attempts.load(Ordering::SeqCst),
    )
}

/// `ssl: true` against a server without TLS fails clearly and changes nothing.
pub async fn ssl_true_without_server_tls(db: &dyn Db) {
    let h = Harness::new(db);
    db.create_app_user("app", INITIAL).await;
    let arn = h
        .put_secret(
            "app/db",
            &h.secret_json("app", INITIAL, json!({ "ssl": true })),
            &[],
        )
        .await;
    let before = h.current(&arn).await;
    let err = h.rotate(&arn).await.unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Set));
    assert_eq!(err.class(), "Unreachable", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"ssl\": true forbids plaintext") && msg.contains("TLS"),
        "{msg}"
    );
    assert_eq!(h.current(&arn).await.version, before.version);
    assert_eq!(db.login("app", INITIAL).await, LoginOutcome::Ok);
}

/// Against a TLS server: `ssl` absent uses TLS; `ssl: true` with an untrusted CA fails
/// (no downgrade); `ssl: false` stays plaintext.
pub async fn tls_modes_against_tls_server(db: &dyn Db) {
    // `ssl` absent, CA trusted: TLS.
    let h = Harness::new(db);
    let arn = make(&h, false, "app", INITIAL).await;
    h.rotate(&arn).await.unwrap();
    let s = h.target.stats();
    assert!(s.logins >= 2 && s.tls_logins == s.logins, "{s:?}");
    assert_eq!(s.connections, s.logins, "{s:?}");

    // `ssl: true`, but the server's CA is not trusted (system roots): refused, not downgraded.
    let strict = Harness::with_config(db, TargetConfig::default());
    db.create_app_user("strict", INITIAL).await;
    let arn = strict
        .put_secret(
            "strict",
            &strict.secret_json("strict", INITIAL, json!({ "ssl": "true" })),
            &[],
        )
        .await;
    let err = strict.rotate(&arn).await.unwrap_err();
    assert_eq!(err.class(), "Unreachable", "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(strict.target.stats().logins, 0);
    assert_eq!(db.login("strict", INITIAL).await, LoginOutcome::Ok);

    // `ssl` absent, CA not trusted: the server offers TLS but the handshake fails, and
    // keyroll does not retry in plaintext (an attacker in the middle could provoke exactly
    // that failure).
    let fallback = Harness::with_config(db, TargetConfig::default());
    db.create_app_user("fallback", INITIAL).await;
    let arn = fallback
        .put_secret(
            "fallback",
            &fallback.secret_json("fallback", INITIAL, json!({})),
            &[],
        )
        .await;
    let err = fallback.rotate(&arn).await.unwrap_err();
    assert_eq!(err.class(), "Unreachable", "{err}");
    assert!(
        err.to_string().contains("does not retry in plaintext"),
        "{err}"
    );
    let s = fallback.target.stats();
    assert_eq!(s.logins, 0, "no session, TLS or plaintext: {s:?}");
    assert_eq!(db.login("fallback", INITIAL).await, LoginOutcome::Ok);

    // require_tls: `ssl` absent needs verified TLS; an explicit `"ssl": false` is refused
    // before any connection.
    let required = Harness::with_config(
        db,
        TargetConfig {
            require_tls: true,
            ..TargetConfig::default()
        },
    );
    db.create_app_user("required", INITIAL).await;
    let arn = required
        .put_secret(
            "required",
            &required.secret_json("required", INITIAL, json!({ "ssl": false })),
            &[],
        )
        .await;
    let err = required.rotate(&arn).await.unwrap_err();
    assert!(err.to_string().contains("require_tls"), "{err}");
    let s = required.target.stats();
    assert_eq!((s.connections, s.logins), (0, 0), "{s:?}");

    // `ssl: false`: plaintext even though the server offers TLS.
    let plain = Harness::new(db);
    db.create_app_user("plain", INITIAL).await;
    let arn = plain
        .put_secret(
            "plain",
            &plain.secret_json("plain", INITIAL, json!({ "ssl": false })),
            &[],
        )
        .await;
    plain.rotate(&arn).await.unwrap();
    let s = plain.target.stats();
    assert!(s.logins >= 2 && s.tls_logins == 0, "{s:?}");
}
