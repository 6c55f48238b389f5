//! `keyroll report` end to end: an embedded store holding a healthy, an overdue, a failing
//! and a pending secret, reported in each format (CSV parsed back), then the same store
//! through `keyroll serve` (`--endpoint-url`), and moto as AWS Secrets Manager.

mod common;
use common::{KEY, keyroll};

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyroll_server::credentials::generate_key;
use keyroll_testkit::moto::MotoServer;
use secrecy::ExposeSecret;
use serde_json::Value;

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "keyroll failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// healthy (rotated, long schedule), overdue (1-day schedule), failing (its database
/// refuses connections), pending (an AWSPENDING version put by hand).
fn populate(dir: &Path) {
    let create = |name: &str, value: &str| {
        ok(&keyroll(
            dir,
            &["secret", "create", "--name", name, "--secret-string", value],
        ));
    };
    create("app/healthy", r#"{"password":"a"}"#);
    ok(&keyroll(
        dir,
        &[
            "rotate",
            "--secret-id",
            "app/healthy",
            "--rotation-rules",
            "AutomaticallyAfterDays=1000",
            "--quiet",
        ],
    ));
    create("app/overdue", r#"{"password":"b"}"#);
    ok(&keyroll(
        dir,
        &[
            "rotate",
            "--secret-id",
            "app/overdue",
            "--rotation-rules",
            "AutomaticallyAfterDays=1",
            "--quiet",
        ],
    ));
    // Nothing listens on this port: setSecret cannot connect.
    let port = free_port();
    create(
        "db/failing",
        &format!(
            r#"{{"engine":"postgres","host":"127.0.0.1","port":{port},"username":"u","password":"p","dbname":"postgres"}}"#
        ),
    );
    let o = keyroll(
        dir,
        &[
            "rotate",
            "--secret-id",
            "db/failing",
            "--rotation-rules",
            "AutomaticallyAfterDays=1000",
            "--quiet",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    create("app/pending", r#"{"password":"c"}"#);
    ok(&keyroll(
        dir,
        &[
            "secret",
            "put",
            "--secret-id",
            "app/pending",
            "--secret-string",
            r#"{"password":"d"}"#,
            "--version-stages",
            "AWSPENDING",
        ],
    ));
}

fn by_name(rows: &[Value], name: &str) -> Value {
    rows.iter()
        .find(|r| r["Name"] == name)
        .unwrap_or_else(|| panic!("{name} in {rows:?}"))
        .clone()
}

/// Three days from now: the 1-day schedule is overdue, the 1000-day one is not.
fn in_three_days() -> String {
    let t = chrono::Utc::now() + chrono::Duration::days(3);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn check_rows(rows: &[Value]) {
    assert_eq!(rows.len(), 4, "{rows:?}");
    let h = by_name(rows, "app/healthy");
    assert_eq!(h["Overdue"], false);
    assert_eq!(h["Failing"], false);
    assert_eq!(h["RotationEnabled"], true);
    assert_eq!(h["Rules"], "every 1000 days");
    assert_eq!(h["Function"], "keyroll");
    let o = by_name(rows, "app/overdue");
    assert_eq!(o["Overdue"], true);
    assert_eq!(o["Failing"], false);
    let f = by_name(rows, "db/failing");
    assert_eq!(f["Failing"], true);
    assert_eq!(f["LastOutcome"], "Failed");
    assert_eq!(f["FailedStep"], "setSecret");
    assert_eq!(f["ErrorType"], "Unreachable");
    assert!(f["PendingAgeHours"].is_number(), "{f}");
    let p = by_name(rows, "app/pending");
    assert_eq!(p["LastOutcome"], "Pending");
    // Put just now, reported as of three days from now.
    let age = p["PendingAgeHours"].as_f64().unwrap();
    assert!((71.0..73.0).contains(&age), "{p}");
    assert_eq!(p["Failing"], false);
}

/// Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into JSON-ish rows.
fn parse_csv(text: &str) -> Vec<Value> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let (mut field, mut record, mut quoted) = (String::new(), Vec::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) => quoted = true,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (c, _) => field.push(c),
        }
    }
    let header = records.remove(0);
    records
        .into_iter()
        .map(|r| {
            assert_eq!(r.len(), header.len(), "{r:?}");
            let mut m = serde_json::Map::new();
            for (k, v) in header.iter().zip(r) {
                let v = match v.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "" => Value::Null,
                    s => s
                        .parse::<f64>()
                        .ok()
                        .filter(|_| k.ends_with("Hours") || k.starts_with("Days"))
                        .map(|n| serde_json::json!(n))
                        .unwrap_or(Value::String(v)),
                };
                m.insert(k.clone(), v);
            }
            Value::Object(m)
        })
        .collect()
}

#[test]
fn report_embedded_store_in_every_format() {
    let d = tempfile::tempdir().unwrap();
    populate(d.path());
    let asof = in_three_days();

    let json: Value =
        serde_json::from_str(&ok(&keyroll(d.path(), &["report", "--as-of", &asof]))).unwrap();
    check_rows(json["Secrets"].as_array().unwrap());
    assert_eq!(json["Summary"]["Overdue"], 1);
    assert_eq!(json["Summary"]["Failing"], 1);
    assert_eq!(json["Summary"]["Pending"], 2);

    let csv = ok(&keyroll(
        d.path(),
        &["report", "--as-of", &asof, "--output", "csv"],
    ));
    check_rows(&parse_csv(&csv));

    let table = ok(&keyroll(
        d.path(),
        &["report", "--as-of", &asof, "--output", "table"],
    ));
    let line = |n: &str| {
        table
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap()
            .to_string()
    };
    assert!(line("db/failing").contains("FAILING"), "{table}");
    assert!(line("app/overdue").contains("OVERDUE"), "{table}");
    assert!(!line("app/healthy").contains("OVERDUE"), "{table}");
    assert!(table.contains("4 secrets"), "{table}");

    // --filter, --max-age-days, --fail-on.
    let o = keyroll(d.path(), &["report", "--filter", "name=app/h"]);
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["Secrets"].as_array().unwrap().len(), 1);
    let o = keyroll(
        d.path(),
        &[
            "report",
            "--filter",
            "name=app/h",
            "--max-age-days",
            "0",
            "--fail-on",
            "overdue",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = keyroll(d.path(), &["report", "--fail-on", "failing"]);
    assert_eq!(o.status.code(), Some(8));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 failing"));
    let o = keyroll(
        d.path(),
        &[
            "report",
            "--filter",
            "name=app/",
            "--fail-on",
            "overdue,failing",
        ],
    );
    ok(&o);
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn report_through_keyroll_serve_and_moto() {
    let d = tempfile::tempdir().unwrap();
    populate(d.path());
    let key = generate_key("report").unwrap();
    let port = free_port();
    let config = d.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[[access_keys]]\naccess_key_id = \"{}\"\n\
             secret_access_key = \"{}\"\nname = \"report\"\nadmin = true\n",
            key.access_key_id,
            key.secret_access_key.expose_secret()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.path().join("serve.log")).unwrap();
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_keyroll"))
            .arg("--data-dir")
            .arg(d.path())
            .args(["serve", "--config"])
            .arg(&config)
            .env("KEYROLL_MASTER_KEY", KEY)
            .env_remove("AWS_REGION")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "keyroll serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let empty = tempfile::tempdir().unwrap();
    let client = |args: &[&str], env: &[(&str, String)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_keyroll"));
        c.args(args)
            .env("HOME", empty.path())
            .env("AWS_CONFIG_FILE", empty.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                empty.path().join("credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("KEYROLL_STORE")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let creds = [
        ("AWS_ACCESS_KEY_ID", key.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            key.secret_access_key.expose_secret().to_string(),
        ),
    ];
    let endpoint = format!("http://127.0.0.1:{port}");
    let asof = in_three_days();
    let o = client(
        &["report", "--endpoint-url", &endpoint, "--as-of", &asof],
        &creds,
    );
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    let rows = v["Secrets"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(by_name(rows, "app/overdue")["Overdue"], true);
    assert_eq!(by_name(rows, "app/healthy")["Overdue"], false);
    // The AWS API carries no rotation status: an AWSPENDING left shows as Pending.
    assert_eq!(by_name(rows, "db/failing")["LastOutcome"], "Pending");
    assert_eq!(by_name(rows, "app/pending")["LastOutcome"], "Pending");
    let csv = ok(&client(
        &["report", "--endpoint-url", &endpoint, "--output", "csv"],
        &creds,
    ));
    assert_eq!(parse_csv(&csv).len(), 4);

    // moto as AWS Secrets Manager.
    let moto = MotoServer::start().expect("moto starts");
    let env: Vec<(&str, String)> = moto.aws_env();
    for (name, value) in [("m/one", "x"), ("m/two", "y")] {
        ok(&client(
            &[
                "--store",
                "aws",
                "secret",
                "create",
                "--name",
                name,
                "--secret-string",
                value,
            ],
            &env,
        ));
    }
    let v: Value = serde_json::from_str(&ok(&client(
        &["--store", "aws", "report", "--filter", "name=m/"],
        &env,
    )))
    .unwrap();
    let rows = v["Secrets"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(by_name(rows, "m/one")["RotationEnabled"], false);
    assert_eq!(by_name(rows, "m/one")["LastOutcome"], "Never");
    let o = client(
        &[
            "--store",
            "aws",
            "report",
            "--max-age-days",
            "0",
            "--fail-on",
            "overdue",
        ],
        &env,
    );
    assert_eq!(
        o.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let table = ok(&client(
        &["--store", "aws", "report", "--output", "table"],
        &env,
    ));
    assert!(table.contains("m/two"), "{table}");
}
