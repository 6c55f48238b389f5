//! `--store aws`: the real `keyroll` binary against moto as AWS Secrets Manager (endpoint from
//! `AWS_ENDPOINT_URL`) and a real PostgreSQL 15, logins checked with `psql`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use keyroll_testkit::moto::MotoServer;
use keyroll_testkit::postgres::PostgresServer;
use serde_json::{Value, json};

const INITIAL: &str = "Initial-Aws-Pa55word";

fn keyroll(moto: &MotoServer, args: &[&str]) -> Output {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyroll"));
    cmd.arg("--store")
        .arg("aws")
        .args(args)
        // No AWS profile of the machine's user may leak in.
        .env("HOME", empty.path())
        .env("AWS_CONFIG_FILE", empty.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            empty.path().join("credentials"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("KEYROLL_STORE")
        .stdin(Stdio::null());
    for (k, v) in moto.aws_env() {
        cmd.env(k, v);
    }
    cmd.output().expect("run keyroll")
}

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "keyroll failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// The AWSCURRENT value, asked for by label: moto answers a GetSecretValue without a label
/// from its own default version, which UpdateSecretVersionStage does not move (AWS answers
/// AWSCURRENT).
fn current(moto: &MotoServer, id: &str) -> Value {
    let v = ok(&keyroll(
        moto,
        &[
            "secret",
            "get",
            "--secret-id",
            id,
            "--version-stage",
            "AWSCURRENT",
        ],
    ));
    serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap()
}

fn psql(pg: &PostgresServer, user: &str, password: &str, sql: &str) -> bool {
    let bin = Path::new(keyroll_testkit::postgres::DEFAULT_BIN_DIR).join("psql");
    Command::new(bin)
        .args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-h", pg.host()])
        .arg("-p")
        .arg(pg.port().to_string())
        .args(["-U", user, "-d", "postgres", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
        .status
        .success()
}

#[test]
fn rotate_store_aws_rotates_a_moto_secret_on_postgres() {
    let pg = PostgresServer::start().expect("PostgreSQL 15");
    let moto = MotoServer::start().expect("moto_server (scripts/test installs it)");
    assert!(psql(
        &pg,
        pg.superuser(),
        pg.superuser_password(),
        &format!("CREATE ROLE app LOGIN PASSWORD '{INITIAL}'")
    ));
    let secret = json!({
        "engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": "app",
        "password": INITIAL, "dbname": "postgres",
    });
    let created = ok(&keyroll(
        &moto,
        &[
            "secret",
            "create",
            "--name",
            "prod/app/db",
            "--secret-string",
            &secret.to_string(),
        ],
    ));
    assert!(
        created["ARN"]
            .as_str()
            .unwrap()
            .contains(":123456789012:secret:prod/app/db-")
    );

    // Rotation is not enabled on the secret (no Lambda): keyroll drives it from here.
    let described = ok(&keyroll(
        &moto,
        &["secret", "describe", "--secret-id", "prod/app/db"],
    ));
    assert_ne!(described["RotationEnabled"], json!(true));

    let out = keyroll(&moto, &["rotate", "--secret-id", "prod/app/db"]);
    let report = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("finishSecret"), "{stderr}");
    assert_eq!(report["Steps"].as_array().unwrap().len(), 4);
    let new = current(&moto, "prod/app/db");
    let password = new["password"].as_str().unwrap();
    assert_ne!(password, INITIAL);
    assert!(
        psql(&pg, "app", password, "SELECT 1"),
        "the new AWSCURRENT logs in"
    );
    assert!(
        !psql(&pg, "app", INITIAL, "SELECT 1"),
        "the old password is gone"
    );
    assert!(!stderr.contains(password) && !stderr.contains(INITIAL));

    // AWSPENDING is cleaned up and AWSPREVIOUS holds the old value.
    let versions = ok(&keyroll(
        &moto,
        &["secret", "versions", "--secret-id", "prod/app/db"],
    ));
    let labels: Vec<String> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["VersionStages"].as_array().cloned().unwrap_or_default())
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert!(!labels.contains(&"AWSPENDING".to_string()), "{labels:?}");
    let previous = ok(&keyroll(
        &moto,
        &[
            "secret",
            "get",
            "--secret-id",
            "prod/app/db",
            "--version-stage",
            "AWSPREVIOUS",
        ],
    ));
    assert!(previous["SecretString"].as_str().unwrap().contains(INITIAL));

    // A second rotation works too.
    ok(&keyroll(
        &moto,
        &["rotate", "--secret-id", "prod/app/db", "--quiet"],
    ));
    let third = current(&moto, "prod/app/db");
    assert!(psql(
        &pg,
        "app",
        third["password"].as_str().unwrap(),
        "SELECT 1"
    ));
}

#[test]
fn store_aws_errors_keep_their_exit_codes() {
    let moto = MotoServer::start().expect("moto_server");
    let o = keyroll(
        &moto,
        &["secret", "describe", "--secret-id", "does/not/exist"],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = keyroll(
        &moto,
        &[
            "rotate",
            "--secret-id",
            "x",
            "--rotation-rules",
            "AutomaticallyAfterDays=30",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&keyroll(
        &moto,
        &["secret", "create", "--name", "dup", "--secret-string", "v"],
    ));
    let o = keyroll(
        &moto,
        &["secret", "create", "--name", "dup", "--secret-string", "v"],
    );
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
