//! A throwaway MariaDB 10.11 server.
//!
//! The data directory is initialised once per machine (`mariadb-install-db`) and cached as a
//! template; each server copies it into its own temporary directory and starts on a free
//! port with the `ed25519` authentication plugin loaded. `root@127.0.0.1` gets a random
//! password at every start (through `--init-file`). Running as root, the server runs as the
//! `mysql` account.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Result;
use crate::process::{
    self, LOOPBACK, ServerProcess, ServiceAccount, copy_tree, free_port, private_dir, run_as,
    service_account, template, write_private,
};
use crate::tls::{TestCa, TlsFiles};

/// The administrator every server has (on host `127.0.0.1`).
pub const ROOT: &str = "root";

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct MariadbOptions {
    /// Serve TLS with a certificate from a fresh throwaway CA (plaintext is still accepted).
    pub tls: bool,
    /// The global `sql_mode` (e.g. with `NO_BACKSLASH_ESCAPES`); the server default if `None`.
    pub sql_mode: Option<String>,
    /// Log every statement to [`MariadbServer::general_log`].
    pub general_log: bool,
    /// Further `--name=value` server options.
    pub options: Vec<String>,
}

/// A running throwaway server; stopped and deleted on drop.
pub struct MariadbServer {
    process: ServerProcess,
    port: u16,
    password: String,
    tls: Option<TlsFiles>,
    log: PathBuf,
    general_log: PathBuf,
    ready_in: Duration,
    // Dropped last: the process must be gone before its directory is removed.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for MariadbServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariadbServer")
            .field("port", &self.port)
            .field("pid", &self.process.pid())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MariadbServer {
    /// A server with default options (no TLS, default `sql_mode`).
    pub fn start() -> Result<Self> {
        Self::start_with(MariadbOptions::default())
    }

    pub fn start_with(opts: MariadbOptions) -> Result<Self> {
        process::retry_on_port_race(|| Self::try_start(&opts))
    }

    fn try_start(opts: &MariadbOptions) -> Result<Self> {
        let began = std::time::Instant::now();
        let mariadbd = server_binary()?;
        let acct = service_account(&["mysql", "nobody"])?;
        let tpl = mariadb_template(acct.as_ref())?;
        let dir = private_dir("keyroll-mariadb-", acct.as_ref())?;
        let data = dir.path().join("data");
        copy_tree(&tpl.join("data"), &data)?;
        let port = free_port()?;
        let log = dir.path().join("mariadb.log");
        let general_log = dir.path().join("general.log");
        let password = process::random_hex(16)?;
        let init = dir.path().join("init.sql");
        write_private(
            &init,
            format!("ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';\n").as_bytes(),
            0o600,
            acct.as_ref(),
        )?;

        let mut cmd = Command::new(&mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--bind-address={LOOPBACK}"))
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--init-file={}", init.display()))
            .arg("--skip-name-resolve")
            .arg("--skip-log-bin")
            .arg("--innodb-buffer-pool-size=16M")
            .arg("--innodb-log-file-size=8M")
            .arg("--innodb-flush-log-at-trx-commit=0")
            .arg("--skip-innodb-doublewrite")
            .arg("--plugin-load-add=auth_ed25519")
            .arg("--max-connections=100");
        if let Some(mode) = &opts.sql_mode {
            cmd.arg(format!("--sql-mode={mode}"));
        }
        if opts.general_log {
            cmd.arg("--general-log=1")
                .arg(format!("--general-log-file={}", general_log.display()));
        }
        let tls = if opts.tls {
            let files = TestCa::generate()?.write(dir.path(), acct.as_ref())?;
            cmd.arg(format!("--ssl-ca={}", files.ca_cert.display()))
                .arg(format!("--ssl-cert={}", files.server_cert.display()))
                .arg(format!("--ssl-key={}", files.server_key.display()));
            Some(files)
        } else {
            None
        };
        for o in &opts.options {
            cmd.arg(o);
        }
        write_private(&log, b"", 0o600, acct.as_ref())?;
        let mut process = ServerProcess::spawn("MariaDB", cmd, acct.as_ref(), &log, libc::SIGKILL)?;
        process.wait_ready(Duration::from_secs(30), || greets(port))?;
        let ready_in = began.elapsed();
        Ok(MariadbServer {
            process,
            port,
            password,
            tls,
            log,
            general_log,
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

    /// `root`, whose host part is `127.0.0.1`.
    pub fn root_user(&self) -> &str {
        ROOT
    }

    pub fn root_password(&self) -> &str {
        &self.password
    }

    /// The PEM file of the CA that signed the server's certificate (TLS servers only).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// The error log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything in the general query log so far (empty unless started with
    /// `general_log`).
    pub fn general_log(&self) -> String {
        fs::read(&self.general_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// How long the start took, copying the data directory included, until the server
    /// greeted clients.
    pub fn ready_in(&self) -> Duration {
        self.ready_in
    }

    /// Stops the server now (it is also stopped on drop).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn server_binary() -> Result<PathBuf> {
    process::binary(
        "KEYROLL_MARIADB_SBIN",
        "/usr/sbin",
        "mariadbd",
        "the MariaDB server (mariadbd)",
        "mariadb-server",
    )
}

/// The server accepts TCP connections and sends a protocol-10 greeting (not an error
/// packet).
fn greets(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((LOOPBACK, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && head[4] == 10
}

fn mariadb_template(acct: Option<&ServiceAccount>) -> Result<PathBuf> {
    let install = process::binary(
        "KEYROLL_MARIADB_BIN",
        "/usr/bin",
        "mariadb-install-db",
        "mariadb-install-db",
        "mariadb-server",
    )?;
    let owner = acct.map_or_else(|| "self".to_string(), |a| a.name.clone());
    template(&format!("mariadb-v1-{owner}"), |dir| {
        process::chown_tree(dir, acct)?;
        let mut cmd = Command::new(&install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve")
            .arg("--innodb-log-file-size=8M");
        if let Some(a) = acct {
            cmd.arg(format!("--user={}", a.name));
        }
        run_as("mariadb-install-db", cmd, acct)
    })
}
