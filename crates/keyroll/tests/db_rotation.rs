//! `keyroll rotate` on database secrets, end to end: the real binary, an embedded store in a
//! temp dir, and real PostgreSQL 15 / MariaDB 10.11 servers from keyroll-testkit. Logins are
//! checked with the servers' own command-line clients (`psql`, `mariadb`).

mod common;
use common::keyroll;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyroll_testkit::mariadb::MariadbServer;
use keyroll_testkit::postgres::PostgresServer;
use serde_json::{Value, json};

const INITIAL: &str = "Initial-Pa55word";

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "keyroll failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn stage(dir: &Path, id: &str, stage: &str) -> Value {
    let v = ok(&keyroll(
        dir,
        &["secret", "get", "--secret-id", id, "--version-stage", stage],
    ));
    serde_json::from_str(v["SecretString"].as_str().expect("a SecretString")).unwrap()
}

#[derive(Debug, PartialEq, Eq)]
enum Login {
    Ok,
    Refused,
}

/// A server and how to talk to it with its command-line client.
enum Server {
    Pg(PostgresServer),
    Maria(MariadbServer),
}

impl Server {
    fn engine(&self) -> &'static str {
        match self {
            Server::Pg(_) => "postgres",
            Server::Maria(_) => "mariadb",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Server::Pg(s) => s.port(),
            Server::Maria(s) => s.port(),
        }
    }

    fn admin(&self) -> (&str, &str) {
        match self {
            Server::Pg(s) => (s.superuser(), s.superuser_password()),
            Server::Maria(s) => (s.root_user(), s.root_password()),
        }
    }

    /// MariaDB secrets carry no `dbname` (optional in AWS's format).
    fn dbname(&self) -> Option<&'static str> {
        match self {
            Server::Pg(_) => Some("postgres"),
            Server::Maria(_) => None,
        }
    }

    fn client(&self, user: &str, password: &str, sql: &str) -> Output {
        let port = self.port().to_string();
        match self {
            Server::Pg(_) => {
                let bin = std::env::var_os("KEYROLL_PG_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(keyroll_testkit::postgres::DEFAULT_BIN_DIR));
                Command::new(bin.join("psql"))
                    .args(["-h", "127.0.0.1", "-p", &port, "-U", user, "-d", "postgres"])
                    .args(["-w", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
                    .env("PGPASSWORD", password)
                    .env("PGSSLMODE", "disable")
                    .env("PGCONNECT_TIMEOUT", "5")
                    .stdin(Stdio::null())
                    .output()
                    .expect("run psql")
            }
            Server::Maria(_) => Command::new("mariadb")
                .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port, "-u", user])
                .args(["--connect-timeout=5", "-e", sql])
                .env("MYSQL_PWD", password)
                .stdin(Stdio::null())
                .output()
                .expect("run the mariadb client"),
        }
    }

    fn admin_sql(&self, sql: &str) {
        let (u, p) = self.admin();
        let o = self.client(u, p, sql);
        assert!(
            o.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn login(&self, user: &str, password: &str) -> Login {
        let o = self.client(user, password, "SELECT 1");
        if o.status.success() {
            return Login::Ok;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("password authentication failed") || err.contains("Access denied"),
            "unexpected client error: {err}"
        );
        Login::Refused
    }

    fn create_user(&self, user: &str) {
        match self {
            Server::Pg(_) => {
                self.admin_sql(&format!("CREATE ROLE {user} LOGIN PASSWORD '{INITIAL}'"))
            }
            Server::Maria(_) => self.admin_sql(&format!(
                "CREATE USER '{user}'@'%' IDENTIFIED BY '{INITIAL}'"
            )),
        }
    }

    fn secret(&self, user: &str, password: &str, extra: Value) -> String {
        let mut v = json!({
            "engine": self.engine(),
            "host": "127.0.0.1",
            "port": self.port(),
            "username": user,
            "password": password,
        });
        if let Some(db) = self.dbname() {
            v["dbname"] = json!(db);
        }
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        v.to_string()
    }
}

fn rotate_three_times(server: &Server, alternating: bool) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    server.create_user("app");
    let extra = if alternating {
        let (u, p) = server.admin();
        let m = ok(&keyroll(
            dir,
            &[
                "secret",
                "create",
                "--name",
                "db/master",
                "--secret-string",
                &server.secret(u, p, json!({})),
            ],
        ));
        json!({ "masterarn": m["ARN"] })
    } else {
        json!({})
    };
    ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "db/app",
            "--secret-string",
            &server.secret("app", INITIAL, extra),
        ],
    ));
    let mut history = vec![stage(dir, "db/app", "AWSCURRENT")];
    for round in 0..3 {
        ok(&keyroll(
            dir,
            &["rotate", "--secret-id", "db/app", "--quiet"],
        ));
        let cur = stage(dir, "db/app", "AWSCURRENT");
        let prev = history.last().unwrap().clone();
        let user = |v: &Value| v["username"].as_str().unwrap().to_string();
        let pw = |v: &Value| v["password"].as_str().unwrap().to_string();
        assert_ne!(pw(&cur), pw(&prev), "round {round}");
        assert_eq!(stage(dir, "db/app", "AWSPREVIOUS"), prev, "round {round}");
        assert_eq!(
            server.login(&user(&cur), &pw(&cur)),
            Login::Ok,
            "round {round}"
        );
        if alternating {
            assert_ne!(user(&cur), user(&prev));
            // The replaced credentials keep working until the next rotation...
            assert_eq!(
                server.login(&user(&prev), &pw(&prev)),
                Login::Ok,
                "round {round}"
            );
            // ...which changes that user's password.
            if history.len() >= 2 {
                let older = &history[history.len() - 2];
                assert_eq!(
                    server.login(&user(older), &pw(older)),
                    Login::Refused,
                    "round {round}"
                );
            }
        } else {
            assert_eq!(user(&cur), "app");
            assert_eq!(
                server.login("app", &pw(&prev)),
                Login::Refused,
                "round {round}"
            );
        }
        history.push(cur);
    }
}

#[test]
fn postgres_single_user() {
    let s = Server::Pg(PostgresServer::start().expect("PostgreSQL 15 starts"));
    rotate_three_times(&s, false);
}

#[test]
fn postgres_alternating_users() {
    let s = Server::Pg(PostgresServer::start().expect("PostgreSQL 15 starts"));
    rotate_three_times(&s, true);
}

#[test]
fn mariadb_single_user() {
    let s = Server::Maria(MariadbServer::start().expect("MariaDB 10.11 starts"));
    rotate_three_times(&s, false);
}

#[test]
fn mariadb_alternating_users() {
    let s = Server::Maria(MariadbServer::start().expect("MariaDB 10.11 starts"));
    rotate_three_times(&s, true);
}
