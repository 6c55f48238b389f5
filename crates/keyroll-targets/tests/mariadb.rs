//! The MySQL/MariaDB target against a real MariaDB 10.11 (keyroll-testkit), through the
//! rotation engine and the in-memory secret store. (MySQL 8 cannot run on the test machine;
//! its SQL is covered by the unit tests of `keyroll_targets::mysql::sql`.)

mod common;

use std::sync::Arc;

use common::scenarios::*;
use common::*;
use keyroll_testkit::mariadb::MariadbOptions;
use serde_json::json;

fn tls() -> MariadbOptions {
    MariadbOptions {
        tls: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn single_user_20_rotations() {
    let db = maria_with(tls(), "mysql_native_password").await;
    let s = twenty_rotations(&db, false).await;
    eprintln!("mariadb single user, per rotation: {s:?}");
    assert_eq!(s.logins, 2, "{s:?}");
    assert_eq!(s.connections, 2, "{s:?}");
    assert_eq!(s.tls_logins, 2, "{s:?}");
}

#[tokio::test]
async fn alternating_users_20_rotations() {
    let db = maria_with(tls(), "mysql_native_password").await;
    let s = twenty_rotations(&db, true).await;
    eprintln!("mariadb alternating users, per rotation: {s:?}");
    assert_eq!(s.connections, 4, "{s:?}");
}

#[tokio::test]
async fn ed25519_users_keep_their_plugin() {
    let db = maria_with(MariadbOptions::default(), "ed25519").await;
    twenty_rotations(&db, false).await;
    let db = maria_with(MariadbOptions::default(), "ed25519").await;
    twenty_rotations(&db, true).await;
    let plugins = db
        .query(
            "SELECT User, plugin FROM mysql.user WHERE User IN ('app', 'app_clone') ORDER BY User",
        )
        .await;
    assert_eq!(
        plugins,
        vec![
            vec![Some("app".to_string()), Some("ed25519".to_string())],
            vec![Some("app_clone".to_string()), Some("ed25519".to_string())],
        ]
    );
}

#[tokio::test]
async fn every_step_twice_single() {
    every_step_twice(&maria().await, false).await;
}

#[tokio::test]
async fn every_step_twice_alternating() {
    every_step_twice(&maria().await, true).await;
}

#[tokio::test]
async fn crash_between_steps_single() {
    crash_anywhere_then_rotate(&maria().await, false).await;
}

#[tokio::test]
async fn crash_between_steps_alternating() {
    crash_anywhere_then_rotate(&maria().await, true).await;
}

#[tokio::test]
async fn drift_single_user() {
    drift_single(&maria().await).await;
}

#[tokio::test]
async fn drift_alternating_users() {
    drift_alternating(&maria().await).await;
}

#[tokio::test]
async fn master_for_another_host_is_refused() {
    master_on_another_host_is_refused(&maria().await).await;
}

#[tokio::test]
async fn hostile_names_and_punctuation_single() {
    hostile_input(&maria().await, false).await;
}

#[tokio::test]
async fn hostile_names_and_punctuation_alternating() {
    hostile_input(&maria().await, true).await;
}

/// Passwords with `'`, `"` and `\` travel in a string literal (for an account with several
/// password methods, MariaDB hashes `PASSWORD('…')` for each): right with and without
/// `NO_BACKSLASH_ESCAPES`.
#[tokio::test]
async fn literals_are_right_in_both_sql_modes() {
    for mode in [None, Some("NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES")] {
        let db = maria_with(
            MariadbOptions {
                sql_mode: mode.map(str::to_string),
                ..Default::default()
            },
            "mysql_native_password",
        )
        .await;
        db.exec(
            "CREATE USER `chain`@`%` IDENTIFIED VIA mysql_native_password USING \
             PASSWORD('Initial-Pa55word') OR ed25519 USING PASSWORD('Initial-Pa55word'); GRANT SELECT ON appdb.app_data TO `chain`@`%`",
        )
        .await;
        let h = Harness::new(&db);
        let arn = h
            .put_secret("chain", &h.secret_json("chain", INITIAL, json!({})), &[])
            .await;
        for (i, pw) in ["a'b\"c\\d\\\\e''f", "\\", "'", "x\\'; DROP USER y; --"]
            .iter()
            .enumerate()
        {
            let mut pending = h.current(&arn).await.value;
            pending["password"] = json!(pw);
            h.begin_with_pending(&arn, &pending).await;
            h.rotate(&arn)
                .await
                .unwrap_or_else(|e| panic!("mode {mode:?}, password {i}: {e}"));
            assert_eq!(
                db.login("chain", pw).await,
                LoginOutcome::Ok,
                "mode {mode:?}, password {i}"
            );
        }
        // Generated passwords still work afterwards.
        h.rotate(&arn).await.unwrap();
        let cur = h.current(&arn).await;
        assert_eq!(db.login("chain", &cur.password).await, LoginOutcome::Ok);
    }
}

/// An account that also authenticates without a password (`unix_socket OR
/// mysql_native_password`): SET PASSWORD is refused for it, so the master restates every
/// method with ALTER USER, keeping `unix_socket`.
#[tokio::test]
async fn mixed_authentication_methods_are_kept() {
    let db = maria().await;
    db.exec(
        "CREATE USER `mix`@`%` IDENTIFIED VIA unix_socket OR mysql_native_password USING \
         PASSWORD('Initial-Pa55word'); GRANT SELECT ON appdb.app_data TO `mix`@`%`",
    )
    .await;
    let h = Harness::new(&db);
    let (admin, admin_pw) = db.admin();
    let master = h
        .put_secret("m", &h.secret_json(&admin, &admin_pw, json!({})), &[])
        .await;
    let arn = h
        .put_secret(
            "mix",
            &h.secret_json("mix", INITIAL, json!({ "masterarn": master })),
            &[],
        )
        .await;
    for round in 0..3 {
        h.rotate(&arn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let cur = h.current(&arn).await;
        assert_eq!(
            db.login(&cur.username, &cur.password).await,
            LoginOutcome::Ok,
            "round {round}"
        );
    }
    let create = db.query("SHOW CREATE USER `mix`@`%`").await;
    let create = create[0][0].clone().unwrap();
    assert!(
        create.contains("IDENTIFIED VIA unix_socket OR mysql_native_password USING '*"),
        "{create}"
    );
}

/// Alternating users replay the original's grants exactly: wildcards, host parts,
/// `WITH GRANT OPTION`, column grants, the TLS requirement — the same after many rotations.
#[tokio::test]
async fn grants_are_replayed_exactly() {
    let db = maria_with(tls(), "mysql_native_password").await;
    db.exec(
        "CREATE DATABASE `app_1`; CREATE DATABASE `appx1`; \
         CREATE USER `svc`@`127.0.0.1` IDENTIFIED BY 'Initial-Pa55word' REQUIRE SSL \
           WITH MAX_USER_CONNECTIONS 7; \
         GRANT SELECT, INSERT ON `app\\_1`.* TO `svc`@`127.0.0.1` WITH GRANT OPTION; \
         GRANT SELECT ON `app%`.* TO `svc`@`127.0.0.1`; \
         GRANT SELECT (`v`) ON `appdb`.`app_data` TO `svc`@`127.0.0.1`; \
         CREATE ROLE `reader`; GRANT SELECT ON `appdb`.* TO `reader`; \
         GRANT `reader` TO `svc`@`127.0.0.1`",
    )
    .await;
    let h = Harness::new(&db);
    let (admin, admin_pw) = db.admin();
    let master = h
        .put_secret("m", &h.secret_json(&admin, &admin_pw, json!({})), &[])
        .await;
    let arn = h
        .put_secret(
            "svc",
            &h.secret_json("svc", INITIAL, json!({ "masterarn": master })),
            &[],
        )
        .await;
    let grants = |user: &'static str| {
        let db = &db;
        async move {
            let mut g: Vec<String> = db
                .query(&format!("SHOW GRANTS FOR `{user}`@`127.0.0.1`"))
                .await
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .map(|l| {
                    // Compare without the grantee and the password hash.
                    let l = l.replace(&format!("`{user}`@`127.0.0.1`"), "<grantee>");
                    match l.find(" IDENTIFIED BY PASSWORD") {
                        Some(i) => {
                            let tail = &l[i..];
                            let rest = tail.find(" REQUIRE").map(|j| &tail[j..]).unwrap_or("");
                            format!("{}{rest}", &l[..i])
                        }
                        None => l,
                    }
                })
                .collect();
            g.sort();
            g
        }
    };
    let original = grants("svc").await;
    for round in 0..4 {
        h.rotate(&arn)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let clone = grants("svc_clone").await;
        assert_eq!(clone, original, "round {round}");
        assert_eq!(grants("svc").await, original, "round {round}");
    }
    assert!(
        original
            .iter()
            .any(|g| g.contains("`app\\_1`.*") && g.ends_with("WITH GRANT OPTION")),
        "{original:#?}"
    );
    assert!(
        original.iter().any(|g| g.contains("`app%`.*")),
        "{original:#?}"
    );
    assert!(
        original.iter().any(|g| g.contains("REQUIRE SSL")),
        "{original:#?}"
    );
    let limits = db
        .query("SELECT User, Host, max_user_connections, ssl_type FROM mysql.user WHERE User LIKE 'svc%' ORDER BY User")
        .await;
    assert_eq!(limits.len(), 2, "{limits:?}");
    for row in &limits {
        assert_eq!(row[1].as_deref(), Some("127.0.0.1"));
        assert_eq!(row[2].as_deref(), Some("7"));
        assert_eq!(row[3].as_deref(), Some("ANY"));
    }
}

/// MariaDB gets hashes, never the plaintext: the general query log holds no password.
#[tokio::test]
async fn plaintext_password_never_reaches_the_general_log() {
    for plugin in ["mysql_native_password", "ed25519"] {
        let db = maria_with(
            MariadbOptions {
                general_log: true,
                ..Default::default()
            },
            plugin,
        )
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
        let log = db.server.general_log();
        assert!(
            log.contains("SET PASSWORD FOR"),
            "statements are logged ({plugin})"
        );
        assert!(
            !log.contains("Sentinel-"),
            "a plaintext password reached the general log ({plugin})"
        );
    }
}

/// An application reading AWSCURRENT before each connection: no authentication failure
/// across 50 alternating-users rotations; single-user rotation's failures are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_downtime_with_alternating_users() {
    let db: SharedDb = Arc::new(maria().await);
    let (failures, attempts) = application_during_rotations(db.clone(), true, 50).await;
    eprintln!(
        "mariadb alternating users: {failures} authentication failures in {attempts} connections over 50 rotations"
    );
    assert_eq!(failures, 0);
    assert!(attempts >= 50);
    let db: SharedDb = Arc::new(maria().await);
    let (failures, attempts) = application_during_rotations(db, false, 50).await;
    eprintln!(
        "mariadb single user: {failures} authentication failures in {attempts} connections over 50 rotations"
    );
    assert!(attempts >= 50);
}

#[tokio::test]
async fn ssl_true_against_a_server_without_tls_fails_clearly() {
    ssl_true_without_server_tls(&maria().await).await;
}

#[tokio::test]
async fn ssl_modes_against_a_tls_server() {
    let db = maria_with(tls(), "mysql_native_password").await;
    tls_modes_against_tls_server(&db).await;
    // Server side: an account that REQUIRE SSL rotates with `ssl` absent, so the sessions
    // were TLS (the server refuses plaintext for it).
    db.exec("CREATE USER `tlsonly`@`%` IDENTIFIED BY 'Initial-Pa55word' REQUIRE SSL; GRANT SELECT ON appdb.app_data TO `tlsonly`@`%`").await;
    assert_eq!(
        db.login("tlsonly", INITIAL).await,
        LoginOutcome::AuthFailed,
        "plaintext is refused"
    );
    let h = Harness::new(&db);
    let arn = h
        .put_secret(
            "tlsonly",
            &h.secret_json("tlsonly", INITIAL, json!({})),
            &[],
        )
        .await;
    h.rotate(&arn).await.unwrap();
    h.rotate(&arn).await.unwrap();
    let s = h.target.stats();
    assert_eq!(s.tls_logins, s.logins, "{s:?}");
}
