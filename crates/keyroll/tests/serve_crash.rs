//! Crash points of `keyroll serve`: the real binary is killed with SIGKILL at random moments
//! while it rotates real PostgreSQL 15 and MariaDB 10.11 secrets (single user and
//! alternating users), then started again on the same data directory. After the last
//! restart every rotation must be carried to its end: every secret's `AWSCURRENT` logs in and
//! no `AWSPENDING` is left within 30 s (tick and backoff at 1 s).
//!
//! `KEYROLL_CRASH_KILLS` sets the number of kills (default 10; the acceptance run uses 100);
//! `KEYROLL_CRASH_BIN` runs another `keyroll` binary than the one cargo built for the test
//! (e.g. a copy, for a long run on a build directory shared with other builds).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyroll_core::time::{Clock, SystemClock};
use keyroll_server::credentials::{AccessKey, generate_key};
use keyroll_testkit::mariadb::MariadbServer;
use keyroll_testkit::postgres::PostgresServer;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // base64 of 0..32
const INITIAL: &str = "Initial-Pa55word";
const KEYROLL_FN: &str = "arn:aws:lambda:us-east-1:000000000000:function:keyroll";

/// A draw in `0..n` (the OS CSPRNG through keyroll's own helper).
fn below(n: u32) -> u32 {
    keyroll_core::password::random_below(n)
}

/// A fresh 40-character idempotency token.
fn token() -> String {
    format!(
        "{:08x}{:08x}{:08x}{:08x}{:08x}",
        below(u32::MAX),
        below(u32::MAX),
        below(u32::MAX),
        below(u32::MAX),
        below(u32::MAX)
    )
}

/// One `keyroll serve` on a fixed port and data directory.
struct Serve {
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    key: AccessKey,
    child: Option<Child>,
}

impl Serve {
    fn new(dir: &Path, port: u16) -> Serve {
        let key = generate_key("crash-test").unwrap();
        let config = dir.join("crash.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\n\
                 [[access_keys]]\n\
                 access_key_id = \"{}\"\n\
                 secret_access_key = \"{}\"\n\
                 name = \"crash-test\"\n\
                 admin = true\n\
                 [scheduler]\n\
                 tick_secs = 1\n\
                 max_concurrent = 10\n\
                 max_attempts = 3\n\
                 backoff_initial_secs = 1\n\
                 backoff_max_secs = 1\n\
                 jitter = 0.0\n",
                key.access_key_id,
                key.secret_access_key.expose_secret()
            ),
        )
        .unwrap();
        Serve {
            dir: dir.join("data"),
            config,
            log: dir.join("serve.log"),
            port,
            key,
            child: None,
        }
    }

    fn start(&mut self) {
        let from = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let bin = std::env::var_os("KEYROLL_CRASH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_keyroll")));
        let child = Command::new(bin)
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("KEYROLL_MASTER_KEY", KEY)
            .env("RUST_LOG", "info")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start keyroll serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let text = std::fs::read(&self.log).unwrap_or_default();
                panic!(
                    "keyroll serve exited ({status}):\n{}",
                    String::from_utf8_lossy(&text[from.min(text.len())..])
                );
            }
            if self.call("ListSecrets", json!({})).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("keyroll serve not ready in 30 s:\n{}", self.log_tail());
    }

    /// SIGKILL: no shutdown, no drain, nothing flushed.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// One signed API call; `Err` carries the status and the answer.
    fn call(&self, op: &str, body: Value) -> Result<Value, (u16, String)> {
        let host = format!("127.0.0.1:{}", self.port);
        let body = body.to_string();
        let target = format!("secretsmanager.{op}");
        let hs = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let signed = keyroll_server::sigv4::sign(
            "POST",
            &host,
            "/",
            &hs,
            body.as_bytes(),
            &self.key,
            "us-east-1",
            SystemClock.now(),
        );
        let mut req = format!(
            "POST / HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (k, v) in hs {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in &signed {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let mut s = TcpStream::connect(&host).map_err(|e| (0, e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(req.as_bytes())
            .map_err(|e| (0, e.to_string()))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| (0, e.to_string()))?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, rest) = text.split_once("\r\n\r\n").ok_or((0, text.clone()))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked { dechunk(rest) } else { rest.into() };
        if status == 200 {
            Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
        } else {
            Err((status, body))
        }
    }

    fn describe(&self, id: &str) -> Value {
        self.call("DescribeSecret", json!({ "SecretId": id }))
            .unwrap()
    }

    fn current(&self, id: &str) -> Value {
        let v = self
            .call(
                "GetSecretValue",
                json!({ "SecretId": id, "VersionStage": "AWSCURRENT" }),
            )
            .unwrap();
        serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = s.split_once("\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            return out;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
}

fn has_pending(desc: &Value) -> bool {
    desc["VersionIdsToStages"].as_object().is_some_and(|m| {
        m.values()
            .filter_map(Value::as_array)
            .flatten()
            .any(|s| s == "AWSPENDING")
    })
}

/// A database and its command-line client.
enum Db {
    Pg(PostgresServer),
    Maria(MariadbServer),
}

impl Db {
    fn engine(&self) -> &'static str {
        match self {
            Db::Pg(_) => "postgres",
            Db::Maria(_) => "mariadb",
        }
    }

    fn port(&self) -> u16 {
        match self {
            Db::Pg(s) => s.port(),
            Db::Maria(s) => s.port(),
        }
    }

    fn admin(&self) -> (&str, &str) {
        match self {
            Db::Pg(s) => (s.superuser(), s.superuser_password()),
            Db::Maria(s) => (s.root_user(), s.root_password()),
        }
    }

    fn client(&self, user: &str, password: &str, sql: &str) -> Output {
        let port = self.port().to_string();
        match self {
            Db::Pg(_) => {
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
            Db::Maria(_) => Command::new("mariadb")
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

    fn logs_in(&self, user: &str, password: &str) -> bool {
        self.client(user, password, "SELECT 1").status.success()
    }

    fn create_user(&self, user: &str) {
        match self {
            Db::Pg(_) => self.admin_sql(&format!("CREATE ROLE {user} LOGIN PASSWORD '{INITIAL}'")),
            Db::Maria(_) => self.admin_sql(&format!(
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
            "ssl": false,
        });
        if let Db::Pg(_) = self {
            v["dbname"] = json!("postgres");
        }
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        v.to_string()
    }
}

#[test]
fn kill_9_during_rotations_never_locks_out_and_leaves_no_pending() {
    let kills: u32 = std::env::var("KEYROLL_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dbs = [
        Db::Pg(PostgresServer::start().unwrap()),
        Db::Maria(MariadbServer::start().unwrap()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let port = keyroll_testkit::process::free_port().unwrap();
    let mut serve = Serve::new(tmp.path(), port);
    serve.start();

    // Per database: three single-user secrets and two alternating-users secrets.
    let mut secrets: Vec<(usize, String)> = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        let (admin, admin_pw) = db.admin();
        let master = format!("{}/master", db.engine());
        serve
            .call(
                "CreateSecret",
                json!({ "Name": master, "ClientRequestToken": token(), "SecretString": db.secret(admin, admin_pw, json!({})) }),
            )
            .unwrap();
        let master_arn = serve.describe(&master)["ARN"].as_str().unwrap().to_string();
        for n in 0..5 {
            let user = format!("crash{n}");
            db.create_user(&user);
            let extra = if n >= 3 {
                json!({ "masterarn": master_arn })
            } else {
                json!({})
            };
            let name = format!("{}/{user}", db.engine());
            serve
                .call(
                    "CreateSecret",
                    json!({ "Name": name, "ClientRequestToken": token(), "SecretString": db.secret(&user, INITIAL, extra) }),
                )
                .unwrap();
            secrets.push((i, name));
        }
    }

    let started = Instant::now();
    let mut requested = 0u32;
    for _ in 0..kills {
        for (_, name) in &secrets {
            if serve
                .call(
                    "RotateSecret",
                    json!({
                        "SecretId": name,
                        "RotationLambdaARN": KEYROLL_FN,
                        "ClientRequestToken": token(),
                    }),
                )
                .is_ok()
            {
                requested += 1;
            }
        }
        // A random moment while the rotations (and the resumed ones) run.
        std::thread::sleep(Duration::from_millis(u64::from(below(400))));
        serve.kill();
        serve.start();
    }

    // After the last restart, every unfinished rotation must be carried on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending: Vec<String>;
    loop {
        pending = secrets
            .iter()
            .filter(|(_, name)| has_pending(&serve.describe(name)))
            .map(|(_, name)| name.clone())
            .collect();
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut locked_out = Vec::new();
    let mut rotated = 0;
    for (i, name) in &secrets {
        let cur = serve.current(name);
        let (user, pw) = (
            cur["username"].as_str().unwrap(),
            cur["password"].as_str().unwrap(),
        );
        if pw != INITIAL {
            rotated += 1;
        }
        if !dbs[*i].logs_in(user, pw) {
            locked_out.push(format!("{name} ({user})"));
        }
    }
    eprintln!(
        "{kills} kills of keyroll serve in {:.1} s, {requested} rotations requested, {rotated}/{} \
         secrets rotated at least once; AWSPENDING left: {pending:?}; locked out: {locked_out:?}",
        started.elapsed().as_secs_f64(),
        secrets.len()
    );
    assert!(
        pending.is_empty() && locked_out.is_empty(),
        "pending {pending:?}, locked out {locked_out:?}\n{}",
        serve.log_tail()
    );
    assert!(rotated > 0, "no rotation ever completed");
}
