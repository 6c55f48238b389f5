//! Acceptance: an application on the deadpool-postgres helper queries continuously through 50
//! single-user rotations (keyroll's engine, real PostgreSQL 15) with no failed query; the same
//! application on a plain deadpool-postgres pool configured once fails.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use keyroll_cache::db::RotatingCredentials;
use keyroll_cache::postgres::{RotatingPgManager, pool};
use keyroll_cache::{CacheConfig, SecretCache};
use keyroll_targets::TargetConfig;
use keyroll_targets::postgres::PostgresTarget;
use keyroll_testkit::postgres::PostgresServer;
use serde_json::json;

const ROTATIONS: usize = 50;
const WORKERS: usize = 2;
const POOL: usize = 4;
/// Every this many queries a connection is closed, so new ones are opened throughout.
const DROP_EVERY: u64 = 5;

struct Setup {
    server: PostgresServer,
    svc: Arc<Svc>,
    arn: String,
    _admin: tokio_postgres::Client,
}

async fn setup() -> Setup {
    let server = PostgresServer::start().expect("PostgreSQL 15 starts");
    let (admin, conn) =
        tokio_postgres::connect(&server.superuser_conn_string(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let verifier = postgres_protocol::password::scram_sha_256(INITIAL.as_bytes());
    admin
        .batch_execute(&format!(
            "CREATE TABLE app_data (v int); INSERT INTO app_data VALUES (1);
             CREATE ROLE app LOGIN PASSWORD '{verifier}'; GRANT SELECT ON app_data TO app"
        ))
        .await
        .unwrap();
    let svc = service();
    let arn = put_secret(
        &svc,
        "app/db",
        &json!({"engine": "postgres", "host": server.host(), "port": server.port(),
                "username": "app", "password": INITIAL, "dbname": "postgres"}),
    )
    .await;
    Setup {
        server,
        svc,
        arn,
        _admin: admin,
    }
}

fn base() -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.connect_timeout(Duration::from_secs(5));
    c
}

/// One application query; every `DROP_EVERY`th closes its connection.
macro_rules! query_on {
    ($pool:expr) => {{
        let pool = $pool.clone();
        move |n: u64| {
            let pool = pool.clone();
            async move {
                let client = pool.get().await.map_err(|e| format!("get: {e}"))?;
                client
                    .simple_query("SELECT v FROM app_data")
                    .await
                    .map_err(|e| format!("query: {e}"))?;
                if n.is_multiple_of(DROP_EVERY) {
                    drop(deadpool::managed::Object::take(client));
                }
                Ok(())
            }
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_single_user_rotations_with_the_helper_fail_no_query() {
    let s = setup().await;
    // A long TTL: the helper must not depend on expiry to pick up a rotation.
    let cache =
        SecretCache::new(KeyrollSource(Arc::clone(&s.svc)), CacheConfig::default()).unwrap();
    let creds = RotatingCredentials::new(cache.clone(), "app/db");
    let pool = pool(
        RotatingPgManager::new(creds, base(), tokio_postgres::NoTls),
        POOL,
    )
    .unwrap();
    let target = Arc::new(PostgresTarget::new(TargetConfig::default()));
    let out = run(
        Arc::clone(&s.svc),
        target,
        &s.arn,
        ROTATIONS,
        WORKERS,
        query_on!(pool),
    )
    .await;
    println!(
        "deadpool-postgres with keyroll-cache: {out:?}, upstream calls {}",
        cache.metrics().upstream_total()
    );
    assert_eq!(out.failed, 0, "{out:?}");
    assert!(out.queries >= (ROTATIONS * QUERIES_BETWEEN) as u64);
    drop(s.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_helper_a_pool_configured_once_fails() {
    let s = setup().await;
    let mut cfg = base();
    cfg.host(s.server.host())
        .port(s.server.port())
        .user("app")
        .password(INITIAL)
        .dbname("postgres");
    let mgr = deadpool_postgres::Manager::new(cfg, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(mgr)
        .max_size(POOL)
        .build()
        .unwrap();
    let target = Arc::new(PostgresTarget::new(TargetConfig::default()));
    let out = run(
        Arc::clone(&s.svc),
        target,
        &s.arn,
        ROTATIONS,
        WORKERS,
        query_on!(pool),
    )
    .await;
    println!("deadpool-postgres configured once: {out:?}");
    assert!(out.failed > 0, "{out:?}");
}

/// The sqlx helper on PostgreSQL (fewer rotations: the deadpool test above is the 50-rotation
/// acceptance; this one checks that sqlx's 28P01 is recognised and retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_postgres_through_ten_rotations_fails_no_query() {
    use keyroll_cache::sqlx_pool::RotatingPgPool;
    use sqlx::Executor;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};

    let s = setup().await;
    let cache =
        SecretCache::new(KeyrollSource(Arc::clone(&s.svc)), CacheConfig::default()).unwrap();
    let creds = RotatingCredentials::new(cache, "app/db");
    let pool = Arc::new(
        RotatingPgPool::postgres(
            creds,
            PgConnectOptions::new().ssl_mode(PgSslMode::Disable),
            PgPoolOptions::new()
                .max_connections(POOL as u32)
                .acquire_timeout(Duration::from_secs(10)),
        )
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
                let _ = sqlx::Connection::close(c.detach()).await;
            }
            Ok(())
        }
    };
    let target = Arc::new(PostgresTarget::new(TargetConfig::default()));
    let out = run(Arc::clone(&s.svc), target, &s.arn, 10, WORKERS, query).await;
    println!("sqlx (PostgreSQL) with keyroll-cache: {out:?}");
    assert_eq!(out.failed, 0, "{out:?}");
}
