//! `keyroll audit verify|search` end to end: the built binary on a trail generated with
//! `keyroll-audit` in a temp data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use keyroll_audit::{
    AuditLog, AuditOptions, AuditRecord, Durability, ManualClock, Resource, SECRETS_MANAGER_SOURCE,
    STS_SOURCE, UserIdentity, sanitize_parameters,
};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const DAY6: &str = "keyroll-audit-2026-12-06.jsonl";
const DAY7: &str = "keyroll-audit-2026-12-07.jsonl";
const SENTINEL: &str = "SENTINEL-cli-secret-4242";

fn t(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, h, m, 0).unwrap()
}

fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-AbC123")
}

/// Two days: on the 6th alice creates app/db and bob reads it; on the 7th bob is denied
/// a put on app/api and alice assumes a role. The 7th starts with the day-file anchor.
fn generate(data_dir: &Path) {
    let clock = Arc::new(ManualClock::new(t(6, 9, 0)));
    let log = AuditLog::open(
        &data_dir.join("audit"),
        AuditOptions {
            clock: clock.clone(),
            account_id: ACCOUNT.into(),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    let call = |time, source: &str, op: &str, user: &str, secret: Option<&str>, req: Value| {
        let mut r = AuditRecord::api_call(time, source, op);
        r.user_identity =
            UserIdentity::iam_user(ACCOUNT, user, &format!("AKID{}", user.to_uppercase()));
        r.aws_region = "us-east-1".into();
        r.source_ip_address = Some("127.0.0.1".into());
        r.request_parameters = sanitize_parameters(op, req);
        if let Some(s) = secret {
            r.resources.push(Resource::secret(&arn(s), ACCOUNT));
        }
        r
    };
    let create = call(
        t(6, 9, 0),
        SECRETS_MANAGER_SOURCE,
        "CreateSecret",
        "alice",
        Some("app/db"),
        json!({"Name": "app/db", "SecretString": SENTINEL}),
    );
    log.append(create, Durability::Sync).unwrap();
    let get = call(
        t(6, 10, 0),
        SECRETS_MANAGER_SOURCE,
        "GetSecretValue",
        "bob",
        Some("app/db"),
        json!({"SecretId": "app/db"}),
    );
    log.append(get, Durability::Buffered).unwrap();
    clock.set(t(7, 8, 0));
    let mut denied = call(
        t(7, 8, 0),
        SECRETS_MANAGER_SOURCE,
        "PutSecretValue",
        "bob",
        Some("app/api"),
        json!({"SecretId": "app/api", "SecretString": SENTINEL}),
    );
    denied.error_code = Some("AccessDeniedException".into());
    denied.error_message = Some("not authorized".into());
    log.append(denied, Durability::Sync).unwrap();
    let assume = call(
        t(7, 9, 0),
        STS_SOURCE,
        "AssumeRole",
        "alice",
        None,
        json!({"RoleArn": format!("arn:aws:iam::{ACCOUNT}:role/rotator"), "RoleSessionName": "s"}),
    );
    log.append(assume, Durability::Sync).unwrap();
    log.close().unwrap();
}

struct Env {
    _tmp: tempfile::TempDir,
    data: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data);
    Env { _tmp: tmp, data }
}

fn keyroll(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyroll"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("KEYROLL_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "keyroll failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn verify_passes_on_an_intact_trail() {
    let e = env();
    let out = stdout(&keyroll(&e.data, &["audit", "verify"]));
    assert!(
        out.starts_with("verified 5 records in 2 files, chain intact"),
        "{out}"
    );
    assert!(out.contains("last record sha256: "), "{out}");
}

#[test]
fn verify_honours_keyroll_data_dir() {
    let e = env();
    let o = Command::new(env!("CARGO_BIN_EXE_keyroll"))
        .args(["audit", "verify"])
        .env("KEYROLL_DATA_DIR", &e.data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(stdout(&o).contains("chain intact"));
}

#[test]
fn verify_names_the_first_bad_record_and_exits_1() {
    let e = env();
    let path = e.data.join("audit").join(DAY7);
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let changed = lines[1].replace("not authorized", "all fine");
    assert_ne!(changed, lines[1]);
    let next: Value = serde_json::from_str(lines[2]).unwrap();
    fs::write(&path, format!("{}\n{changed}\n{}\n", lines[0], lines[2])).unwrap();
    let o = keyroll(&e.data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let id = next["eventID"].as_str().unwrap();
    assert!(
        err.contains(&format!("record 3 of {DAY7} (eventID {id})")),
        "{err}"
    );
    assert!(err.contains(&format!("record 2 of {DAY7}")), "{err}");
    assert!(err.contains("previousRecordSha256 does not match"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn verify_detects_a_removed_day_file() {
    let e = env();
    fs::remove_file(e.data.join("audit").join(DAY6)).unwrap();
    let o = keyroll(&e.data, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(DAY6) && err.contains("removed"), "{err}");
}

#[test]
fn search_filters_by_secret_principal_event_and_time() {
    let e = env();
    let names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["audit", "search"];
        full.extend(args);
        json_lines(&keyroll(&e.data, &full))
            .iter()
            .map(|r| r["eventName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&[]).len(), 5);
    assert_eq!(
        names(&["--secret-id", "app/db"]),
        ["CreateSecret", "GetSecretValue"]
    );
    assert_eq!(names(&["--secret-id", &arn("app/api")]), ["PutSecretValue"]);
    assert_eq!(
        names(&["--principal", "bob"]),
        ["GetSecretValue", "PutSecretValue"]
    );
    assert_eq!(
        names(&["--principal", &format!("arn:aws:iam::{ACCOUNT}:user/alice")]),
        ["CreateSecret", "AssumeRole"]
    );
    assert_eq!(names(&["--event", "assumerole"]), ["AssumeRole"]);
    assert_eq!(
        names(&["--until", "2026-12-06"]),
        ["CreateSecret", "GetSecretValue"]
    );
    assert_eq!(names(&["--since", "2026-12-07T08:30:00Z"]), ["AssumeRole"]);
    assert!(names(&["--event", "DeleteSecret"]).is_empty());
}

#[test]
fn search_output_never_holds_a_secret() {
    let e = env();
    let out = stdout(&keyroll(&e.data, &["audit", "search"]));
    assert!(out.contains("CreateSecret"));
    assert!(!out.contains(SENTINEL));
    for entry in fs::read_dir(e.data.join("audit")).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(SENTINEL));
    }
}

#[test]
fn search_table_output() {
    let e = env();
    let out = stdout(&keyroll(
        &e.data,
        &["audit", "search", "--principal", "bob", "--output", "table"],
    ));
    for needle in [
        "eventTime",
        "eventName",
        "principal",
        "GetSecretValue",
        "AccessDeniedException",
        "2026-12-07T08:00:00Z",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    assert!(!out.contains("CreateSecret"), "{out}");
    let none = stdout(&keyroll(
        &e.data,
        &["audit", "search", "--event", "Nothing", "--output", "table"],
    ));
    assert!(none.contains("no matching records"), "{none}");
}

#[test]
fn bad_arguments_and_a_missing_trail_explain_themselves() {
    let e = env();
    let o = keyroll(&e.data, &["audit", "search", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
    let o = keyroll(
        &e.data,
        &[
            "audit",
            "search",
            "--since",
            "2026-12-08",
            "--until",
            "2026-12-07",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let empty = tempfile::tempdir().unwrap();
    let o = keyroll(empty.path(), &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no audit trail") && err.contains("--data-dir"),
        "{err}"
    );
}

#[test]
fn help_teaches() {
    let e = env();
    let out = stdout(&keyroll(&e.data, &["audit", "search", "--help"]));
    for needle in [
        "--secret-id",
        "--principal",
        "--since",
        "Examples:",
        "CloudTrail",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    let out = stdout(&keyroll(&e.data, &["audit", "verify", "--help"]));
    assert!(
        out.contains("previousRecordSha256") && out.contains("digests.jsonl"),
        "{out}"
    );
}
