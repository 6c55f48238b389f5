//! Acceptance: an application on the sqlx helper queries continuously through 50 single-user
//! rotations (keyroll's engine, real MariaDB 10.11) with no failed query; the same
//! application on a plain sqlx pool configured once fails.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use keyroll_cache::db::RotatingCredentials;
use keyroll_cache::sqlx_pool::RotatingMySqlPool;
use keyroll_cache::{CacheConfig, SecretCache};
use keyroll_targets::TargetConfig;
use keyroll_targets::mysql::MysqlTarget;
use keyroll_testkit::mariadb::MariadbServer;
use serde_json::json;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlSslMode};
use sqlx::{Connection, Executor};

const ROTATIONS: usize = 50;
const WORKERS: usize = 4;
const POOL: u32 = 4;
/// Every third query closes its connection, so new ones are opened throughout.
const DROP_EVERY: u64 = 3;

struct Setup {
    server: MariadbServer,
    svc: Arc<Svc>,
    arn: String,
}

fn base() -> MySqlConnectOptions {
    MySqlConnectOptions::new().ssl_mode(MySqlSslMode::Disabled)
}

async fn setup() -> Setup {
    let server = MariadbServer::start().expect("MariaDB 10.11 starts");
    let root = base()
        .host(server.host())
        .port(server.port())
        .username(server.root_user())
        .password(server.root_password());
    let mut admin = sqlx::MySqlConnection::connect_with(&root).await.unwrap();
    for sql in [
        "CREATE DATABASE appdb",
        "CREATE TABLE appdb.app_data (v int)",
        "INSERT INTO appdb.app_data VALUES (1)",
        &format!("CREATE USER `app`@`%` IDENTIFIED BY '{INITIAL}'"),
        "GRANT SELECT ON appdb.app_data TO `app`@`%`",
    ] {
        admin.execute(sql).await.unwrap();
    }
    admin.close().await.unwrap();
    let svc = service();
    let arn = put_secret(
        &svc,
        "app/db",
        &json!({"engine": "mariadb", "host": server.host(), "port": server.port(),
                "username": "app", "password": INITIAL, "dbname": "appdb"}),
    )
    .await;
    Setup { server, svc, arn }
}

fn target() -> Arc<MysqlTarget> {
    Arc::new(MysqlTarget::new(TargetConfig::default()))
}

fn pool_options() -> MySqlPoolOptions {
    MySqlPoolOptions::new()
        .max_connections(POOL)
        .acquire_timeout(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_single_user_rotations_with_the_helper_fail_no_query() {
    let s = setup().await;
    let cache =
        SecretCache::new(KeyrollSource(Arc::clone(&s.svc)), CacheConfig::default()).unwrap();
    let creds = RotatingCredentials::new(cache.clone(), "app/db");
    let pool = Arc::new(
        RotatingMySqlPool::mysql(creds, base(), pool_options())
            .await
            .unwrap(),
    );
    let query = move |n: u64| {
        let pool = Arc::clone(&pool);
        async move {
            let mut c = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
            c.execute("SELECT v FROM app_data")
                .await
                .map_err(|e| format!("query: {e}"))?;
            if n.is_multiple_of(DROP_EVERY) {
                let _ = c.detach().close().await;
            }
            Ok(())
        }
    };
    let out = run(
        Arc::clone(&s.svc),
        target(),
        &s.arn,
        ROTATIONS,
        WORKERS,
        query,
    )
    .await;
    println!(
        "sqlx (MariaDB) with keyroll-cache: {out:?}, upstream calls {}",
        cache.metrics().upstream_total()
    );
    assert_eq!(out.failed, 0, "{out:?}");
    assert!(out.queries >= (ROTATIONS * QUERIES_BETWEEN) as u64);
    drop(s.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_helper_a_pool_configured_once_fails() {
    let s = setup().await;
    let opts = base()
        .host(s.server.host())
        .port(s.server.port())
        .username("app")
        .password(INITIAL)
        .database("appdb");
    let pool = pool_options().connect_lazy_with(opts);
    let query = move |n: u64| {
        let pool = pool.clone();
        async move {
            let mut c = pool.acquire().await.map_err(|e| format!("acquire: {e}"))?;
            c.execute("SELECT v FROM app_data")
                .await
                .map_err(|e| format!("query: {e}"))?;
            if n.is_multiple_of(DROP_EVERY) {
                let _ = c.detach().close().await;
            }
            Ok(())
        }
    };
    let out = run(
        Arc::clone(&s.svc),
        target(),
        &s.arn,
        ROTATIONS,
        WORKERS,
        query,
    )
    .await;
    println!("sqlx (MariaDB) configured once: {out:?}");
    assert!(out.failed > 0, "{out:?}");
}

/// The mysql_async helper (deadpool manager) through the same 50 rotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_async_through_fifty_rotations_fails_no_query() {
    use keyroll_cache::mysql::{RotatingMysqlManager, pool};
    use mysql_async::prelude::Queryable;

    let s = setup().await;
    let cache =
        SecretCache::new(KeyrollSource(Arc::clone(&s.svc)), CacheConfig::default()).unwrap();
    let creds = RotatingCredentials::new(cache, "app/db");
    let base = mysql_async::OptsBuilder::default().prefer_socket(false);
    let pool = pool(RotatingMysqlManager::new(creds, base), POOL as usize).unwrap();
    let query = move |n: u64| {
        let pool = pool.clone();
        async move {
            let mut c = pool.get().await.map_err(|e| format!("get: {e}"))?;
            c.query_drop("SELECT v FROM app_data")
                .await
                .map_err(|e| format!("query: {e}"))?;
            if n.is_multiple_of(DROP_EVERY) {
                let _ = deadpool::managed::Object::take(c).disconnect().await;
            }
            Ok(())
        }
    };
    let out = run(
        Arc::clone(&s.svc),
        target(),
        &s.arn,
        ROTATIONS,
        WORKERS,
        query,
    )
    .await;
    println!("mysql_async (MariaDB) with keyroll-cache: {out:?}");
    assert_eq!(out.failed, 0, "{out:?}");
}
