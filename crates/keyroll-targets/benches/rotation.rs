//! Rotation latency and cost against real local servers: 100 rotations per engine ×
//! strategy × TLS mode, through `keyroll_core::engine::rotate` and the in-memory store.
//! Prints the median and p99 latency and the database connections, logins and round trips
//! of one rotation. Run with `cargo bench -p keyroll-targets`.

use std::time::{Duration, Instant};

use keyroll_core::api::CreateSecretRequest;
use keyroll_core::engine::{RotateOptions, Silent, rotate};
use keyroll_core::memory::memory_service;
use keyroll_core::ports::{RotationStore, SecretsApi, Target};
use keyroll_targets::TargetConfig;
use keyroll_targets::database::StatsSnapshot;
use keyroll_targets::mysql::MysqlTarget;
use keyroll_targets::postgres::PostgresTarget;
use keyroll_testkit::mariadb::{MariadbOptions, MariadbServer};
use keyroll_testkit::postgres::{PostgresOptions, PostgresServer};
use mysql_async::prelude::Queryable;
use secrecy::SecretString;
use serde_json::{Value, json};

const ROTATIONS: usize = 100;
const WARM_UP: usize = 5;
const INITIAL: &str = "Initial-Pa55word";

struct Case {
    engine: &'static str,
    strategy: &'static str,
    ssl: &'static str,
}

struct Row {
    case: Case,
    median: Duration,
    p99: Duration,
    per_rotation: StatsSnapshot,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn measure(
    target: &dyn Target,
    stats: &dyn Fn() -> StatsSnapshot,
    secret: Value,
    master: Option<Value>,
) -> (Duration, Duration, StatsSnapshot) {
    let svc = memory_service();
    let mut secret = secret;
    if let Some(m) = master {
        let arn = svc
            .create_secret(CreateSecretRequest {
                name: "master".into(),
                client_request_token: Some(keyroll_core::ids::new_token()),
                secret_string: Some(SecretString::from(m.to_string())),
                ..Default::default()
            })
            .await
            .expect("master secret")
            .arn;
        secret["masterarn"] = json!(arn);
    }
    let arn = svc
        .create_secret(CreateSecretRequest {
            name: "app/db".into(),
            client_request_token: Some(keyroll_core::ids::new_token()),
            secret_string: Some(SecretString::from(secret.to_string())),
            ..Default::default()
        })
        .await
        .expect("secret")
        .arn;
    svc.configure_rotation(&arn, Some("keyroll".into()), None)
        .await
        .expect("rotation enabled");
    let opts = RotateOptions::default();
    for _ in 0..WARM_UP {
        rotate(&svc, target, &arn, &opts, &Silent)
            .await
            .expect("warm-up rotation");
    }
    let before = stats();
    let mut times = Vec::with_capacity(ROTATIONS);
    for _ in 0..ROTATIONS {
        let t = Instant::now();
        rotate(&svc, target, &arn, &opts, &Silent)
            .await
            .expect("rotation");
        times.push(t.elapsed());
    }
    let total = stats() - before;
    let n = ROTATIONS as u64;
    let per = StatsSnapshot {
        connections: total.connections / n,
        logins: total.logins / n,
        tls_logins: total.tls_logins / n,
        auth_failures: total.auth_failures / n,
        round_trips: total.round_trips / n,
    };
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), per)
}

fn db_secret(
    engine: &str,
    port: u16,
    user: &str,
    password: &str,
    dbname: &str,
    ssl: &str,
) -> Value {
    let mut v = json!({
        "engine": engine, "host": "127.0.0.1", "port": port,
        "username": user, "password": password, "dbname": dbname,
    });
    if ssl == "false" {
        v["ssl"] = json!(false);
    }
    v
}

async fn postgres(rows: &mut Vec<Row>) {
    let server = PostgresServer::start_with(PostgresOptions {
        tls: true,
        ..Default::default()
    })
    .expect("PostgreSQL 15 starts");
    println!("PostgreSQL 15 ready in {:?}", server.ready_in());
    let (admin, conn) =
        tokio_postgres::connect(&server.superuser_conn_string(), tokio_postgres::NoTls)
            .await
            .expect("superuser connects");
    tokio::spawn(conn);
    let cfg = TargetConfig {
        ca_bundle: server.ca_cert_path().map(|p| p.to_path_buf()),
        ..TargetConfig::default()
    };
    for (strategy, ssl) in [
        ("single", "absent"),
        ("alternating", "absent"),
        ("single", "false"),
    ] {
        let user = format!("{strategy}_{ssl}");
        admin
            .batch_execute(&format!("CREATE ROLE {user} LOGIN PASSWORD '{INITIAL}'"))
            .await
            .expect("role");
        let target = PostgresTarget::new(cfg.clone());
        let secret = db_secret("postgres", server.port(), &user, INITIAL, "postgres", ssl);
        let master = (strategy == "alternating").then(|| {
            db_secret(
                "postgres",
                server.port(),
                server.superuser(),
                server.superuser_password(),
                "postgres",
                ssl,
            )
        });
        let (median, p99, per_rotation) =
            measure(&target, &|| target.stats(), secret, master).await;
        rows.push(Row {
            case: Case {
                engine: "postgres",
                strategy,
                ssl,
            },
            median,
            p99,
            per_rotation,
        });
    }
}

async fn mariadb(rows: &mut Vec<Row>) {
    let server = MariadbServer::start_with(MariadbOptions {
        tls: true,
        ..Default::default()
    })
    .expect("MariaDB 10.11 starts");
    println!("MariaDB 10.11 ready in {:?}", server.ready_in());
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port())
        .user(Some(server.root_user()))
        .pass(Some(server.root_password()))
        .prefer_socket(false);
    let mut admin = mysql_async::Conn::new(opts).await.expect("root connects");
    admin
        .query_drop("CREATE DATABASE appdb; CREATE TABLE appdb.t (v int)")
        .await
        .expect("database");
    let cfg = TargetConfig {
        ca_bundle: server.ca_cert_path().map(|p| p.to_path_buf()),
        ..TargetConfig::default()
    };
    for (strategy, ssl) in [
        ("single", "absent"),
        ("alternating", "absent"),
        ("single", "false"),
    ] {
        let user = format!("{strategy}_{ssl}");
        admin
            .query_drop(format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{INITIAL}'; GRANT SELECT ON appdb.* TO '{user}'@'%'"
            ))
            .await
            .expect("user");
        let target = MysqlTarget::new(cfg.clone());
        let secret = db_secret("mariadb", server.port(), &user, INITIAL, "appdb", ssl);
        let master = (strategy == "alternating").then(|| {
            db_secret(
                "mariadb",
                server.port(),
                server.root_user(),
                server.root_password(),
                "appdb",
                ssl,
            )
        });
        let (median, p99, per_rotation) =
            measure(&target, &|| target.stats(), secret, master).await;
        rows.push(Row {
            case: Case {
                engine: "mariadb",
                strategy,
                ssl,
            },
            median,
            p99,
            per_rotation,
        });
    }
    let _ = admin.disconnect().await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows = Vec::new();
    rt.block_on(async {
        postgres(&mut rows).await;
        mariadb(&mut rows).await;
    });
    println!(
        "\n{ROTATIONS} rotations each (after {WARM_UP} warm-up), in-memory store, local servers, TLS on the server:\n"
    );
    println!(
        "| engine | strategy | `ssl` | median | p99 | connections | logins (TLS) | round trips |"
    );
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {} | {} ({}) | {} |",
            r.case.engine,
            r.case.strategy,
            r.case.ssl,
            r.median.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.per_rotation.connections,
            r.per_rotation.logins,
            r.per_rotation.tls_logins,
            r.per_rotation.round_trips,
        );
    }
}
