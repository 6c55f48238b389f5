//! Fleet rotation (`keyroll rotate --filter …`) end to end: the real binary, an embedded store
//! in a temp dir, one real PostgreSQL 15 from keyroll-testkit. The secrets are created
//! in-process through the store's API (fast), then one `keyroll rotate` rotates them all.
//!
//! `bench_fleet_1000` (ignored; `bench/fleet.sh` runs it) is the benchmark of
//! docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use keyroll_core::api::{CreateSecretRequest, SecretIdRequest};
use keyroll_core::model::Tag;
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_store::embedded::{EmbeddedStore, MasterKeySource, OpenOptions};
use keyroll_testkit::postgres::PostgresServer;
use serde_json::{Value, json};

const INITIAL: &str = "Initial-Pa55word";

fn psql(pg: &PostgresServer, sql: &str) {
    let bin = std::env::var_os("KEYROLL_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(keyroll_testkit::postgres::DEFAULT_BIN_DIR));
    let o = Command::new(bin.join("psql"))
        .args(["-h", "127.0.0.1", "-p", &pg.port().to_string()])
        .args(["-U", pg.superuser(), "-d", "postgres", "-w", "-X", "-q"])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", pg.superuser_password())
        .env("PGSSLMODE", "disable")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `n` roles `fleetN` on the server and a secret `fleet/N` for each, tagged `critical`, with
/// rotation enabled. The secrets of `wrong` hold a password the server refuses.
async fn populate(dir: &Path, pg: &PostgresServer, n: usize, wrong: &[usize]) {
    psql(
        pg,
        &format!(
            "DO $$ BEGIN FOR i IN 0..{} LOOP EXECUTE format('CREATE ROLE fleet%s LOGIN \
             PASSWORD %L', i, '{INITIAL}'); END LOOP; END $$",
            n - 1
        ),
    );
    let store = EmbeddedStore::open(
        OpenOptions::new(dir)
            .master_key(MasterKeySource::File(dir.join("master.key")))
            .account("000000000000"),
    )
    .unwrap()
    .region("us-east-1");
    for i in 0..n {
        let password = if wrong.contains(&i) {
            "not-the-password"
        } else {
            INITIAL
        };
        let value = json!({
            "engine": "postgres", "host": "127.0.0.1", "port": pg.port(),
            "username": format!("fleet{i}"), "password": password, "dbname": "postgres",
        });
        let r = store
            .create_secret(CreateSecretRequest {
                name: format!("fleet/{i:04}"),
                client_request_token: Some(keyroll_core::ids::new_token()),
                secret_string: Some(value.to_string().into()),
                tags: Some(vec![Tag {
                    key: "critical".into(),
                    value: "yes".into(),
                }]),
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .configure_rotation(
                &r.arn,
                Some(keyroll_core::rotators::builtin_arn(
                    "us-east-1",
                    "000000000000",
                )),
                None,
            )
            .await
            .unwrap();
    }
    // An untagged secret the filter must leave alone.
    store
        .create_secret(CreateSecretRequest {
            name: "other/plain".into(),
            client_request_token: Some(keyroll_core::ids::new_token()),
            secret_string: Some("x".to_string().into()),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn keyroll(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyroll"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("KEYROLL_MASTER_KEY")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("KEYROLL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run keyroll")
}

/// The JSON lines of a fleet run: per-secret outcomes and the summary.
fn lines(o: &Output) -> (Vec<Value>, Value) {
    let mut rows = Vec::new();
    let mut summary = Value::Null;
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Value = serde_json::from_str(l).expect("a JSON line");
        if v.get("Summary").is_some() {
            summary = v["Summary"].clone();
        } else {
            rows.push(v);
        }
    }
    (rows, summary)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn fleet_of_200_reports_exactly_the_3_failures() {
    let pg = PostgresServer::start().expect("PostgreSQL 15 starts");
    let d = tempfile::tempdir().unwrap();
    let wrong = [7, 99, 180];
    rt().block_on(populate(d.path(), &pg, 200, &wrong));

    // --dry-run lists and changes nothing.
    let o = keyroll(
        d.path(),
        &["rotate", "--filter", "tag-key=critical", "--dry-run"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rows, summary) = lines(&o);
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|r| r["Outcome"] == "WouldRotate"));
    assert_eq!(summary["WouldRotate"], 200);

    let o = keyroll(
        d.path(),
        &[
            "rotate",
            "--filter",
            "tag-key=critical",
            "--concurrency",
            "8",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (rows, summary) = lines(&o);
    assert_eq!(rows.len(), 200, "the untagged secret is not selected");
    let mut failed: Vec<&str> = rows
        .iter()
        .filter(|r| r["Outcome"] == "Failed")
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["fleet/0007", "fleet/0099", "fleet/0180"]);
    for r in rows.iter().filter(|r| r["Outcome"] == "Failed") {
        assert_eq!(r["FailedStep"], "setSecret", "{r}");
        assert_eq!(r["ErrorType"], "AuthenticationFailed", "{r}");
    }
    assert_eq!(summary["Rotated"], 197);
    assert_eq!(summary["Failed"], 3);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("3 of 200 rotations failed"), "{stderr}");

    // The store agrees: the rotated ones have a new AWSCURRENT, the failed ones kept theirs.
    let o = keyroll(d.path(), &["secret", "get", "--secret-id", "fleet/0001"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cur: Value = serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap();
    assert_ne!(cur["password"], INITIAL);
    let o = keyroll(d.path(), &["secret", "get", "--secret-id", "fleet/0099"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cur: Value = serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap();
    assert_eq!(cur["password"], "not-the-password");
}

#[test]
fn secrets_without_rotation_need_all() {
    let d = tempfile::tempdir().unwrap();
    let create = |name: &str| {
        let o = keyroll(
            d.path(),
            &[
                "secret",
                "create",
                "--name",
                name,
                "--secret-string",
                "{\"password\":\"a\"}",
                "--tags",
                "Key=team,Value=x",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    create("plain/a");
    create("plain/b");
    let o = keyroll(d.path(), &["rotate", "--filter", "tag-key=team"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rows, summary) = lines(&o);
    assert!(rows.iter().all(|r| r["Outcome"] == "Skipped"), "{rows:?}");
    assert_eq!(summary["Skipped"], 2);
    let o = keyroll(d.path(), &["rotate", "--all", "--output", "table"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Rotated"), "{out}");
    assert!(out.contains("plain/b"), "{out}");
    // Now enabled: the filter alone rotates them.
    let o = keyroll(d.path(), &["rotate", "--filter", "name=plain/"]);
    let (rows, _) = lines(&o);
    assert!(rows.iter().all(|r| r["Outcome"] == "Rotated"), "{rows:?}");
    // A secret id and a filter together are refused.
    let o = keyroll(
        d.path(),
        &[
            "rotate",
            "--secret-id",
            "plain/a",
            "--filter",
            "name=plain/",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

/// The benchmark: 1,000 PostgreSQL single-user secrets rotated by one `keyroll rotate
/// --filter` against one local PostgreSQL. `KEYROLL_FLEET_N` and `KEYROLL_FLEET_CONCURRENCY`
/// override the size and the concurrency.
#[test]
#[ignore = "benchmark: bench/fleet.sh"]
fn bench_fleet_1000() {
    let n: usize = std::env::var("KEYROLL_FLEET_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let conc = std::env::var("KEYROLL_FLEET_CONCURRENCY").unwrap_or_else(|_| "16".into());
    let pg = PostgresServer::start_with(keyroll_testkit::postgres::PostgresOptions {
        settings: vec![("max_connections".into(), "200".into())],
        ..Default::default()
    })
    .expect("PostgreSQL 15 starts");
    let d = tempfile::tempdir().unwrap();
    let t = Instant::now();
    rt().block_on(populate(d.path(), &pg, n, &[]));
    eprintln!("set-up: {n} roles and secrets in {:.1?}", t.elapsed());
    let t = Instant::now();
    // keyroll's own CPU time and peak memory from /usr/bin/time (PostgreSQL's backends are
    // other processes).
    let o = Command::new("/usr/bin/time")
        .args(["-f", "CPU user=%Us sys=%Ss peak RSS=%MKiB"])
        .arg(env!("CARGO_BIN_EXE_keyroll"))
        .arg("--data-dir")
        .arg(d.path())
        .args([
            "rotate",
            "--filter",
            "tag-key=critical",
            "--concurrency",
            &conc,
        ])
        .env_remove("KEYROLL_MASTER_KEY")
        .env_remove("KEYROLL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run keyroll");
    let wall = t.elapsed();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rows, summary) = lines(&o);
    assert_eq!(rows.len(), n);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let cpu = stderr.lines().find(|l| l.starts_with("CPU ")).unwrap_or("");
    eprintln!(
        "BENCH fleet: {n} secrets, concurrency {conc}: wall {:.2}s, {cpu}, summary {summary}",
        wall.as_secs_f64()
    );
    assert_eq!(summary["Failed"], 0);
    // Spot-check one rotation really happened on the server.
    let store = EmbeddedStore::open(
        OpenOptions::new(d.path())
            .master_key(MasterKeySource::File(d.path().join("master.key")))
            .account("000000000000"),
    )
    .unwrap()
    .region("us-east-1");
    let desc = rt()
        .block_on(store.describe_secret(SecretIdRequest {
            secret_id: "fleet/0000".into(),
        }))
        .unwrap();
    assert!(desc.last_rotated_date.is_some());
}

/// The report benchmark: `keyroll report` over 100,000 secrets in the embedded store (seeded
/// in bulk), each format, with wall time and peak memory (`/usr/bin/time`).
/// `KEYROLL_REPORT_N` overrides the size.
#[test]
#[ignore = "benchmark: bench/fleet.sh"]
fn bench_report_100k() {
    use keyroll_core::model::SecretRecord;
    use keyroll_core::service::Backend;
    use keyroll_core::value::SecretValue;
    let n: usize = std::env::var("KEYROLL_REPORT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let d = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        OpenOptions::new(d.path())
            .master_key(MasterKeySource::File(d.path().join("master.key")))
            .account("000000000000"),
    )
    .unwrap()
    .region("us-east-1");
    let ns = store.backend().namespace().clone();
    let t0 = keyroll_core::time::Timestamp::from_secs(1_780_000_000);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 10_000).min(n))
            .map(|i| {
                let name = format!("bench/app-{i:06}/db");
                let mut rec = SecretRecord::new(
                    ns.secret_arn(&name, &keyroll_core::ids::random_arn_suffix()),
                    name,
                    t0,
                );
                let vid = keyroll_core::ids::new_token();
                rec.put_version(&vid, None, t0, |_| false).unwrap();
                rec.rotation.enabled = i % 2 == 0;
                rec.revision = 1;
                let value = SecretValue::string(format!(r#"{{"password":"p{i:020}"}}"#));
                (rec, Some((vid, value)))
            })
            .collect();
        store.backend().bulk_insert(&batch).unwrap();
        i += batch.len();
    }
    drop(store);
    eprintln!("set-up: {n} secrets in {:.1?}", t.elapsed());
    for format in ["csv", "json", "table"] {
        let t = Instant::now();
        let o = Command::new("/usr/bin/time")
            .args(["-f", "MAXRSS_KB=%M"])
            .arg(env!("CARGO_BIN_EXE_keyroll"))
            .arg("--data-dir")
            .arg(d.path())
            .args(["report", "--output", format, "--max-age-days", "90"])
            .env_remove("KEYROLL_MASTER_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let wall = t.elapsed();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stderr = String::from_utf8_lossy(&o.stderr);
        let rss = stderr
            .lines()
            .find_map(|l| l.strip_prefix("MAXRSS_KB="))
            .unwrap_or("?")
            .to_string();
        let rows = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("bench/app-"))
            .count();
        assert_eq!(rows, n, "{format}");
        eprintln!(
            "BENCH report: {n} secrets, --output {format}: wall {:.2}s, peak RSS {rss} KiB, {} bytes out",
            wall.as_secs_f64(),
            o.stdout.len()
        );
    }
}
