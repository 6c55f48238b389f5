//! The SAM and Terraform templates leave `EXCLUDE_CHARACTERS` unset by default
//! (scripts/checks.d/deploy_templates.py asserts it on every template variant), so each
//! engine keeps its own exclusions. Here the function runs with the templates' default
//! environment against real databases: PostgreSQL passwords never contain `:` (AWS's
//! PostgreSQL functions exclude it), MariaDB passwords may. Passwords of 4096 characters
//! make the contrast certain: with `:` allowed, a password without it has a probability
//! below e^-40.

mod common;

use std::collections::HashMap;

use common::{Aws, Db, event};
use keyroll_core::Step;
use keyroll_lambda::{Function, Settings};

/// What the templates set by default (no EXCLUDE_CHARACTERS), with long passwords.
fn template_default_settings() -> Settings {
    let env: HashMap<&str, &str> = HashMap::from([
        ("PASSWORD_LENGTH", "4096"),
        ("KEYROLL_METRICS_NAMESPACE", "keyroll"),
    ]);
    Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap()
}

async fn rotated_password(engine: &str) -> String {
    let db = Db::start(engine);
    let aws = Aws::start();
    db.create_user("app", "InitialPassw0rd1").await;
    let arn = aws
        .create_secret("db/app", &db.secret("app", "InitialPassw0rd1"))
        .await;
    let function =
        Function::with_store(template_default_settings(), aws.store()).with_metrics_sink(|_| {});
    let token = aws.rotate_secret(&arn).await;
    for step in Step::ALL {
        function
            .invoke(&event(step, &arn, &token))
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    let current = aws.value(&arn, "AWSCURRENT").await;
    assert!(db.logs_in(&current).await, "the new password logs in");
    current["password"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passwords_exclude_the_colon_by_default() {
    let p = rotated_password("postgres").await;
    assert_eq!(p.chars().count(), 4096);
    for c in [':', '/', '@', '"', '\'', '\\'] {
        assert!(!p.contains(c), "a PostgreSQL password contains {c:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_passwords_may_contain_the_colon() {
    let p = rotated_password("mariadb").await;
    assert_eq!(p.chars().count(), 4096);
    assert!(
        p.contains(':'),
        "':' is excluded for PostgreSQL only (AWS's MySQL/MariaDB functions allow it)"
    );
    for c in ['/', '@', '"', '\'', '\\'] {
        assert!(!p.contains(c), "a MariaDB password contains {c:?}");
    }
}
