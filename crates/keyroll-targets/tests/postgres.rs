//! The PostgreSQL target against a real PostgreSQL 15 (keyroll-testkit), through the
//! rotation engine and the in-memory secret store.

mod common;

use std::sync::Arc;

use common::scenarios::*;
use common::*;
use keyroll_testkit::postgres::PostgresOptions;
use serde_json::json;

fn tls() -> PostgresOptions {
    PostgresOptions {
        tls: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn single_user_20_rotations() {
    let db = pg_with(tls()).await;
    let s = twenty_rotations(&db, false).await;
    eprintln!("postgres single user, per rotation: {s:?}");
    assert_eq!(s.logins, 2, "{s:?}");
    assert_eq!(s.connections, 2, "{s:?}");
    assert_eq!(s.tls_logins, 2, "{s:?}");
}

#[tokio::test]
async fn alternating_users_20_rotations() {
    let db = pg_with(tls()).await;
    let s = twenty_rotations(&db, true).await;
    eprintln!("postgres alternating users, per rotation: {s:?}");
    assert_eq!(s.connections, 3, "{s:?}");
}

#[tokio::test]
async fn every_step_twice_single() {
    every_step_twice(&pg().await, false).await;
}

#[tokio::test]
async fn every_step_twice_alternating() {
    every_step_twice(&pg().await, true).await;
}

#[tokio::test]
async fn crash_between_steps_single() {
    crash_anywhere_then_rotate(&pg().await, false).await;
}

#[tokio::test]
async fn crash_between_steps_alternating() {
    crash_anywhere_then_rotate(&pg().await, true).await;
}

#[tokio::test]
async fn drift_single_user() {
    drift_single(&pg().await).await;
}

#[tokio::test]
async fn drift_alternating_users() {
    drift_alternating(&pg().await).await;
}

#[tokio::test]
async fn master_for_another_host_is_refused() {
    master_on_another_host_is_refused(&pg().await).await;
}

#[tokio::test]
async fn hostile_names_and_punctuation_single() {
    hostile_input(&pg().await, false).await;
}

#[tokio::test]
async fn hostile_names_and_punctuation_alternating() {
    hostile_input(&pg().await, true).await;
}

/// With `log_statement = all`, the server log never holds the new password.
#[tokio::test]
async fn plaintext_password_never_reaches_the_server_log() {
    let db = pg_with(PostgresOptions {
        log_statement_all: true,
        ..Default::default()
    })
    .await;
    let h = Harness::new(&db);
    for (name, alternating) in [("single", false), ("alternating", true)] {
        let user = format!("{name}_user");
        let arn = if alternating {
            h.alternating(name, &user, INITIAL).await
        } else {
            h.single_user(name, &user, INITIAL).await
        };
        for round in 0..2 {
            let cur = h.current(&arn).await;
            let sentinel = format!("Sentinel-{name}-{round}-Qx7!");
            let mut pending = cur.value.clone();
            if alternating {
                let other = if cur.username.ends_with("_clone") {
                    user.clone()
                } else {
                    format!("{user}_clone")
                };
                pending["username"] = json!(other);
            }
            pending["password"] = json!(sentinel);
            h.begin_with_pending(&arn, &pending).await;
            h.rotate(&arn).await.unwrap();
            let now = h.current(&arn).await;
            assert_eq!(db.login(&now.username, &sentinel).await, LoginOutcome::Ok);
        }
    }
    let log = db.server.log();
    assert!(
        log.contains("ALTER ROLE") && log.contains("SCRAM-SHA-256$"),
        "statements are logged"
    );
    assert!(log.contains("CREATE ROLE \"alternating_user_clone\""));
    assert!(
        !log.contains("Sentinel-"),
        "a plaintext password reached the server log"
    );
}

/// An application reading AWSCURRENT before each connection: no authentication failure
/// across 50 alternating-users rotations; single-user rotation's failures are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_downtime_with_alternating_users() {
    let db: SharedDb = Arc::new(pg().await);
    let (failures, attempts) = application_during_rotations(db.clone(), true, 50).await;
    eprintln!(
        "postgres alternating users: {failures} authentication failures in {attempts} connections over 50 rotations"
    );
    assert_eq!(failures, 0);
    assert!(attempts >= 50);
    let db: SharedDb = Arc::new(pg().await);
    let (failures, attempts) = application_during_rotations(db, false, 50).await;
    eprintln!(
        "postgres single user: {failures} authentication failures in {attempts} connections over 50 rotations"
    );
    assert!(attempts >= 50);
}

#[tokio::test]
async fn ssl_true_against_a_server_without_tls_fails_clearly() {
    ssl_true_without_server_tls(&pg().await).await;
}

#[tokio::test]
async fn ssl_modes_against_a_tls_server() {
    let db = pg_with(PostgresOptions {
        tls: true,
        log_connections: true,
        ..Default::default()
    })
    .await;
    tls_modes_against_tls_server(&db).await;
    // Server side: the rotated user's sessions used TLS ("app" has no "ssl" field).
    let log = db.server.log();
    let app: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("connection authorized: user=app ") && l.contains("application_name=keyroll")
        })
        .collect();
    assert!(!app.is_empty(), "{log}");
    assert!(app.iter().all(|l| l.contains("SSL enabled")), "{app:#?}");
    let plain: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("connection authorized: user=plain ")
                && l.contains("application_name=keyroll")
        })
        .collect();
    assert!(
        !plain.is_empty() && plain.iter().all(|l| !l.contains("SSL enabled")),
        "{plain:#?}"
    );
    // `ssl` absent with an untrusted certificate: no session at all for that user, in
    // particular none without TLS (no plaintext retry).
    assert!(
        !log.lines()
            .any(|l| l.contains("connection authorized: user=fallback ")
                && l.contains("application_name=keyroll")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_blocked_on_a_role_lock_fails_at_its_deadline_while_another_rotation_completes() {
    use keyroll_core::engine::{RotateOptions, Silent, rotate};
    use keyroll_core::model::Step;
    use std::time::{Duration, Instant};
    let db = pg().await;
    let h = Harness::new(&db);
    let blocked = h
        .single_user("app/blocked", "blocked_user", "Initial-pw-1")
        .await;
    let free = h.single_user("app/free", "free_user", "Initial-pw-2").await;
    // Another session holds the role's row lock in an open transaction: ALTER ROLE on it
    // waits.
    let (locker, conn) =
        tokio_postgres::connect(&db.server.superuser_conn_string(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; ALTER ROLE blocked_user CONNECTION LIMIT 10")
        .await
        .unwrap();
    let deadline = Duration::from_secs(2);
    let opts = RotateOptions {
        step_timeout: Some(deadline),
        ..RotateOptions::default()
    };
    let t0 = Instant::now();
    let (stuck, other) = tokio::join!(
        rotate(&h.svc, h.target.as_target(), &blocked, &opts, &Silent),
        async {
            let r = rotate(&h.svc, h.target.as_target(), &free, &opts, &Silent).await;
            (r, t0.elapsed())
        }
    );
    let took = t0.elapsed();
    let err = stuck.unwrap_err();
    assert_eq!(err.failed_step(), Some(Step::Set), "{err}");
    assert_eq!(err.class(), "Timeout", "{err}");
    assert!(
        took >= deadline && took < deadline * 4,
        "failed after {took:?}"
    );
    let (other, other_took) = other;
    assert!(!other.unwrap().resumed);
    assert!(
        other_took < deadline,
        "the other secret's rotation completed meanwhile ({other_took:?})"
    );
    let cur = h.current(&free).await;
    assert!(matches!(
        db.login(&cur.username, &cur.password).await,
        LoginOutcome::Ok
    ));
    // AWSCURRENT of the blocked secret still logs in.
    let cur = h.current(&blocked).await;
    assert!(matches!(
        db.login(&cur.username, &cur.password).await,
        LoginOutcome::Ok
    ));
    // The abandoned ALTER ROLE is cancelled while the lock is still held: PostgreSQL alone
    // would leave it waiting for the lock (it does not notice the client gave up), and once
    // the lock went it would change the password behind the rotation's back.
    let mut waited = Duration::ZERO;
    loop {
        let running: i64 = locker
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND state = 'active' \
                 AND query ILIKE 'ALTER ROLE%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if running == 0 {
            break;
        }
        assert!(
            waited < Duration::from_secs(10),
            "the abandoned ALTER ROLE is still waiting for the lock: it was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    locker.batch_execute("ROLLBACK").await.unwrap();
    // With the lock gone, AWSCURRENT still logs in: nothing changed the password.
    assert!(matches!(
        db.login(&cur.username, &cur.password).await,
        LoginOutcome::Ok
    ));
    // The next run resumes the same version and completes.
    let report = h.rotate(&blocked).await.unwrap();
    assert!(report.resumed);
    let now = h.current(&blocked).await;
    assert_ne!(now.password, cur.password);
    assert!(matches!(
        db.login(&now.username, &now.password).await,
        LoginOutcome::Ok
    ));
}
