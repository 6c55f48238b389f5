//! `keyroll doctor` end to end on real PostgreSQL 15 and MariaDB 10.11 (keyroll-testkit):
//! a password changed out of band, a stuck AWSPENDING, and what `--repair` fixes (finish a
//! rotation whose AWSPENDING logs in; drop an AWSPENDING that logs in nowhere) and refuses
//! (nothing logs in; AWSCURRENT refused without a pending version) — one test per case.

mod common;
use common::keyroll;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyroll_testkit::mariadb::MariadbServer;
use keyroll_testkit::postgres::PostgresServer;
use serde_json::{Value, json};

const INITIAL: &str = "Initial-Pa55word";
const OTHER: &str = "Changed-0ut-of-band";

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "keyroll failed ({:?}):\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

enum Db {
    Pg(PostgresServer),
    Maria(MariadbServer),
}

impl Db {
    fn pg() -> Db {
        Db::Pg(PostgresServer::start().expect("PostgreSQL 15 starts"))
    }
    fn maria() -> Db {
        Db::Maria(MariadbServer::start().expect("MariaDB 10.11 starts"))
    }

    fn admin_sql(&self, sql: &str) {
        let o = match self {
            Db::Pg(s) => {
                let bin = std::env::var_os("KEYROLL_PG_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(keyroll_testkit::postgres::DEFAULT_BIN_DIR));
                Command::new(bin.join("psql"))
                    .args(["-h", "127.0.0.1", "-p", &s.port().to_string()])
                    .args(["-U", s.superuser(), "-d", "postgres", "-w", "-X", "-q"])
                    .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
                    .env("PGPASSWORD", s.superuser_password())
                    .env("PGSSLMODE", "disable")
                    .stdin(Stdio::null())
                    .output()
                    .expect("run psql")
            }
            Db::Maria(s) => Command::new("mariadb")
                .args([
                    "--no-defaults",
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &s.port().to_string(),
                ])
                .args(["-u", s.root_user(), "-e", sql])
                .env("MYSQL_PWD", s.root_password())
                .stdin(Stdio::null())
                .output()
                .expect("run the mariadb client"),
        };
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn set_password(&self, user: &str, password: &str) {
        match self {
            Db::Pg(_) => self.admin_sql(&format!("ALTER ROLE {user} PASSWORD '{password}'")),
            Db::Maria(_) => self.admin_sql(&format!(
                "ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"
            )),
        }
    }

    fn create_user(&self, user: &str) {
        match self {
            Db::Pg(_) => self.admin_sql(&format!("CREATE ROLE {user} LOGIN PASSWORD '{INITIAL}'")),
            Db::Maria(_) => self.admin_sql(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{INITIAL}'"
            )),
        }
    }

    fn value(&self, user: &str, password: &str) -> String {
        match self {
            Db::Pg(s) => json!({"engine": "postgres", "host": "127.0.0.1", "port": s.port(),
                "username": user, "password": password, "dbname": "postgres"}),
            Db::Maria(s) => json!({"engine": "mariadb", "host": "127.0.0.1", "port": s.port(),
                "username": user, "password": password}),
        }
        .to_string()
    }
}

/// A secret `db/app` for user `app` holding `INITIAL`, with rotation enabled; with
/// `pending`, an AWSPENDING version holding that password too.
fn setup(db: &Db, dir: &Path, pending: Option<&str>) {
    db.create_user("app");
    ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "db/app",
            "--secret-string",
            &db.value("app", INITIAL),
        ],
    ));
    if let Some(p) = pending {
        ok(&keyroll(
            dir,
            &[
                "secret",
                "put",
                "--secret-id",
                "db/app",
                "--secret-string",
                &db.value("app", p),
                "--version-stages",
                "AWSPENDING",
            ],
        ));
    }
}

fn findings(o: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("JSON: {}", String::from_utf8_lossy(&o.stderr)));
    v["Findings"].as_array().unwrap().clone()
}

fn finding(f: &[Value], check: &str) -> Value {
    f.iter()
        .find(|x| x["Check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding in {f:?}"))
        .clone()
}

fn current_password(dir: &Path) -> String {
    let v = ok(&keyroll(dir, &["secret", "get", "--secret-id", "db/app"]));
    let s: Value = serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap();
    s["password"].as_str().unwrap().to_string()
}

fn healthy_and_out_of_band(db: Db) {
    let d = tempfile::tempdir().unwrap();
    setup(&db, d.path(), None);
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app"]);
    ok(&o);
    let f = findings(&o);
    assert_eq!(finding(&f, "AWSCURRENT login")["Status"], "Ok");
    assert_eq!(
        finding(&f, "TLS")["Status"],
        "Warn",
        "no TLS on the test server"
    );
    assert_eq!(finding(&f, "password policy")["Status"], "Ok");

    // Changed out of band: found, and --repair refuses (it cannot know the new password).
    db.set_password("app", OTHER);
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app"]);
    assert_eq!(o.status.code(), Some(8));
    let f = findings(&o);
    let cur = finding(&f, "AWSCURRENT login");
    assert_eq!(cur["Status"], "Fail");
    assert!(cur["Detail"].as_str().unwrap().contains("app"), "{cur}");
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app", "--repair"]);
    assert_eq!(o.status.code(), Some(8));
    let r = finding(&findings(&o), "repair");
    assert_eq!(r["Status"], "Refused");
    assert!(
        r["Fix"].as_str().unwrap().contains("keyroll secret put"),
        "{r}"
    );
    assert_eq!(current_password(d.path()), INITIAL, "nothing changed");
}

#[test]
fn postgres_password_changed_out_of_band() {
    healthy_and_out_of_band(Db::pg());
}

#[test]
fn mariadb_password_changed_out_of_band() {
    healthy_and_out_of_band(Db::maria());
}

/// AWSCURRENT refused, AWSPENDING logs in (setSecret ran, finishSecret did not): --repair
/// finishes the rotation through the engine, audited.
fn finishes_a_rotation_whose_pending_logs_in(db: Db) {
    let d = tempfile::tempdir().unwrap();
    setup(&db, d.path(), Some(OTHER));
    db.set_password("app", OTHER);
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app"]);
    assert_eq!(o.status.code(), Some(8));
    let f = findings(&o);
    assert_eq!(finding(&f, "AWSPENDING")["Status"], "Warn");
    let r = finding(&f, "repair");
    assert_eq!(r["Status"], "Fail");
    assert!(r["Fix"].as_str().unwrap().contains("--repair"), "{r}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("can be repaired safely"));
    assert_eq!(
        current_password(d.path()),
        INITIAL,
        "doctor alone changes nothing"
    );

    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app", "--repair"]);
    ok(&o);
    assert_eq!(finding(&findings(&o), "repair")["Status"], "Repaired");
    assert_eq!(current_password(d.path()), OTHER);
    let v = ok(&keyroll(
        d.path(),
        &["secret", "describe", "--secret-id", "db/app"],
    ));
    let stages = v["VersionIdsToStages"].to_string();
    assert!(!stages.contains("AWSPENDING"), "{stages}");
    assert!(v["LastRotatedDate"].is_number(), "{v}");
    // Now healthy.
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app"]);
    ok(&o);
    // Audited.
    let a = keyroll(
        d.path(),
        &[
            "audit",
            "search",
            "--secret-id",
            "db/app",
            "--event",
            "DoctorRepair",
        ],
    );
    let text = String::from_utf8_lossy(&a.stdout);
    assert!(text.contains("FinishRotation"), "{text}");
    ok(&keyroll(d.path(), &["audit", "verify"]));
}

#[test]
fn postgres_repair_finishes_a_rotation() {
    finishes_a_rotation_whose_pending_logs_in(Db::pg());
}

#[test]
fn mariadb_repair_finishes_a_rotation() {
    finishes_a_rotation_whose_pending_logs_in(Db::maria());
}

/// A stuck AWSPENDING that logs in nowhere while AWSCURRENT does: dropped.
#[test]
fn postgres_repair_drops_a_stuck_pending() {
    let db = Db::pg();
    let d = tempfile::tempdir().unwrap();
    setup(&db, d.path(), Some("never-set-on-the-server"));
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app"]);
    assert_eq!(o.status.code(), Some(8));
    let f = findings(&o);
    let p = finding(&f, "AWSPENDING");
    assert!(
        p["Detail"].as_str().unwrap().contains("does not log in"),
        "{p}"
    );
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app", "--repair"]);
    ok(&o);
    let r = finding(&findings(&o), "repair");
    assert_eq!(r["Status"], "Repaired", "{r}");
    let v = ok(&keyroll(
        d.path(),
        &["secret", "describe", "--secret-id", "db/app"],
    ));
    assert!(!v["VersionIdsToStages"].to_string().contains("AWSPENDING"));
    assert_eq!(current_password(d.path()), INITIAL);
    let a = keyroll(
        d.path(),
        &[
            "audit",
            "search",
            "--secret-id",
            "db/app",
            "--event",
            "DoctorRepair",
        ],
    );
    assert!(String::from_utf8_lossy(&a.stdout).contains("DropPending"));
    // The next rotation starts afresh and succeeds.
    ok(&keyroll(
        d.path(),
        &["rotate", "--secret-id", "db/app", "--quiet"],
    ));
}

/// Neither version logs in: --repair refuses and changes nothing.
#[test]
fn postgres_repair_refuses_when_nothing_logs_in() {
    let db = Db::pg();
    let d = tempfile::tempdir().unwrap();
    setup(&db, d.path(), Some("pending-but-wrong"));
    db.set_password("app", OTHER);
    let o = keyroll(d.path(), &["doctor", "--secret-id", "db/app", "--repair"]);
    assert_eq!(o.status.code(), Some(8));
    let r = finding(&findings(&o), "repair");
    assert_eq!(r["Status"], "Refused");
    assert!(r["Detail"].as_str().unwrap().contains("neither"), "{r}");
    let v = ok(&keyroll(
        d.path(),
        &["secret", "describe", "--secret-id", "db/app"],
    ));
    assert!(v["VersionIdsToStages"].to_string().contains("AWSPENDING"));
    assert_eq!(current_password(d.path()), INITIAL);
}

/// Schedule, function and policy checks need no database.
#[test]
fn plain_secret_and_policy_checks() {
    let d = tempfile::tempdir().unwrap();
    ok(&keyroll(
        d.path(),
        &[
            "secret",
            "create",
            "--name",
            "plain",
            "--secret-string",
            "{\"password\":\"x\"}",
        ],
    ));
    ok(&keyroll(
        d.path(),
        &[
            "rotate",
            "--secret-id",
            "plain",
            "--rotation-rules",
            "AutomaticallyAfterDays=30",
            "--quiet",
        ],
    ));
    let o = keyroll(d.path(), &["doctor", "--output", "table"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("every 30 days"), "{text}");
    assert!(text.contains("nothing to log in to"), "{text}");
    // A PostgreSQL password with ':' and exclusions that drop it.
    ok(&keyroll(
        d.path(),
        &[
            "secret",
            "create",
            "--name",
            "db/colon",
            "--secret-string",
            r#"{"engine":"postgres","host":"127.0.0.1","port":1,"username":"u","password":"a:b"}"#,
        ],
    ));
    let o = keyroll(
        d.path(),
        &[
            "doctor",
            "--secret-id",
            "db/colon",
            "--connect-timeout",
            "1",
        ],
    );
    let f = findings(&o);
    let p = finding(&f, "password policy");
    assert_eq!(p["Status"], "Warn");
    assert!(p["Detail"].as_str().unwrap().contains(':'), "{p}");
    let o = keyroll(
        d.path(),
        &[
            "doctor",
            "--secret-id",
            "db/colon",
            "--exclude-characters",
            "/@",
            "--connect-timeout",
            "1",
        ],
    );
    let p = finding(&findings(&o), "password policy");
    assert!(
        p["Fix"].as_str().unwrap().contains("--exclude-characters"),
        "{p}"
    );
}
