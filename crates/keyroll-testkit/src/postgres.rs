//! A throwaway PostgreSQL 15 server.
//!
//! The cluster is initialised once per machine (`initdb`, SCRAM authentication for
//! everyone on 127.0.0.1, superuser `postgres` with a random password) and cached as a
//! template; each server copies it into its own temporary directory and starts on a free
//! port. Running as root, the server runs as the `postgres` account.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{
    self, LOOPBACK, ServerProcess, ServiceAccount, copy_tree, free_port, private_dir, run_as,
    service_account, template, write_private,
};
use crate::tls::{TestCa, TlsFiles};
use crate::{Result, TestkitError};

/// Where the server binaries are, unless `KEYROLL_PG_BIN` says otherwise.
pub const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The superuser every server has.
pub const SUPERUSER: &str = "postgres";

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Serve TLS with a certificate from a fresh throwaway CA (plaintext is still accepted).
    pub tls: bool,
    /// `log_statement = all`: every statement lands in [`PostgresServer::log`].
    pub log_statement_all: bool,
    /// `log_connections = on` (the log then says whether each session used TLS).
    pub log_connections: bool,
    /// Further `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

/// A running throwaway server; stopped and deleted on drop.
pub struct PostgresServer {
    process: ServerProcess,
    port: u16,
    password: String,
    tls: Option<TlsFiles>,
    log: PathBuf,
    ready_in: Duration,
    // Dropped last: the process must be gone before its directory is removed.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("pid", &self.process.pid())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresServer {
    /// A server with default options (no TLS).
    pub fn start() -> Result<Self> {
        Self::start_with(PostgresOptions::default())
    }

    pub fn start_with(opts: PostgresOptions) -> Result<Self> {
        process::retry_on_port_race(|| Self::try_start(&opts))
    }

    fn try_start(opts: &PostgresOptions) -> Result<Self> {
        let began = std::time::Instant::now();
        let postgres = pg_binary("postgres")?;
        let acct = service_account(&["postgres", "nobody"])?;
        let tpl = pg_template(acct.as_ref())?;
        let password = fs::read_to_string(tpl.join("password"))
            .map_err(TestkitError::io(
                "reading the template's superuser password",
            ))?
            .trim()
            .to_string();

        let dir = private_dir("keyroll-pg-", acct.as_ref())?;
        let data = dir.path().join("data");
        copy_tree(&tpl.join("data"), &data)?;
        let port = free_port()?;
        let log = dir.path().join("postgres.log");

        let mut cmd = Command::new(&postgres);
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string());
        let mut set = |k: &str, v: &str| {
            cmd.arg("-c").arg(format!("{k}={v}"));
        };
        set("listen_addresses", LOOPBACK);
        set("unix_socket_directories", &dir.path().display().to_string());
        set("fsync", "off");
        set("synchronous_commit", "off");
        set("full_page_writes", "off");
        set("shared_buffers", "16MB");
        set("max_connections", "60");
        set("dynamic_shared_memory_type", "mmap");
        set("logging_collector", "off");
        set("log_min_messages", "warning");
        if opts.log_statement_all {
            set("log_statement", "all");
        }
        if opts.log_connections {
            set("log_connections", "on");
        }
        let tls = if opts.tls {
            let files = TestCa::generate()?.write(dir.path(), acct.as_ref())?;
            set("ssl", "on");
            set("ssl_cert_file", &files.server_cert.display().to_string());
            set("ssl_key_file", &files.server_key.display().to_string());
            Some(files)
        } else {
            None
        };
        for (k, v) in &opts.settings {
            set(k, v);
        }
        write_private(&log, b"", 0o600, acct.as_ref())?;
        let mut process =
            ServerProcess::spawn("PostgreSQL", cmd, acct.as_ref(), &log, libc::SIGQUIT)?;
        let pidfile = data.join("postmaster.pid");
        process.wait_ready(Duration::from_secs(30), || {
            pid_file_says_ready(&pidfile) && TcpStream::connect((LOOPBACK, port)).is_ok()
        })?;
        let ready_in = began.elapsed();
        Ok(PostgresServer {
            process,
            port,
            password,
            tls,
            log,
            ready_in,
            _dir: dir,
        })
    }

    pub fn host(&self) -> &str {
        LOOPBACK
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// The PEM file of the CA that signed the server's certificate (TLS servers only).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// The server's log file (stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// How long the start took, copying the data directory included, until the server
    /// accepted connections.
    pub fn ready_in(&self) -> Duration {
        self.ready_in
    }

    /// A libpq-style connection string for the superuser (no TLS).
    pub fn superuser_conn_string(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname=postgres sslmode=disable",
            LOOPBACK, self.port, SUPERUSER, self.password
        )
    }

    /// Stops the server now (it is also stopped on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn pg_binary(name: &str) -> Result<PathBuf> {
    process::binary(
        "KEYROLL_PG_BIN",
        DEFAULT_BIN_DIR,
        name,
        "PostgreSQL 15 server binaries",
        "postgresql-15",
    )
}

/// Line 8 of `postmaster.pid` is the postmaster's status; `ready` once it accepts
/// connections.
fn pid_file_says_ready(path: &Path) -> bool {
    let mut text = String::new();
    if fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return false;
    }
    text.lines().nth(7).is_some_and(|l| l.trim() == "ready")
}

fn pg_template(acct: Option<&ServiceAccount>) -> Result<PathBuf> {
    let initdb = pg_binary("initdb")?;
    let owner = acct.map_or_else(|| "self".to_string(), |a| a.name.clone());
    template(&format!("postgres15-v1-{owner}"), |dir| {
        process::chown_tree(dir, acct)?;
        let password = process::random_hex(16)?;
        let pwfile = dir.join("password");
        write_private(&pwfile, password.as_bytes(), 0o600, acct)?;
        let mut cmd = Command::new(&initdb);
        cmd.arg("-D")
            .arg(dir.join("data"))
            .arg("-U")
            .arg(SUPERUSER)
            .arg("--auth=scram-sha-256")
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("--no-sync")
            .arg("--no-instructions")
            .arg("-E")
            .arg("UTF8")
            .arg("--locale=C");
        run_as("initdb", cmd, acct)
    })
}
