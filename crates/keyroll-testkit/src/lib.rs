//! # keyroll-testkit
//!
//! Throwaway real servers for keyroll's tests. Each server runs in its own temporary
//! directory, listens on a free loopback port, is ready within a couple of seconds and is
//! stopped (its whole process group) when the handle is dropped — or when the test process
//! dies, through the parent-death signal.
//!
//! # Layout
//!
//! - [`postgres`]: PostgreSQL 15 (`/usr/lib/postgresql/15/bin`), optional TLS and
//!   `log_statement = all`.
//! - [`mariadb`]: MariaDB 10.11 (`mariadbd`, `mariadb-install-db`), optional TLS, the
//!   `ed25519` authentication plugin loaded, configurable `sql_mode`.
//! - [`tls`]: a throwaway CA and a server certificate for `127.0.0.1` / `localhost` (rcgen).
//! - [`process`]: what every server module shares: free ports, dropping root privileges to a
//!   service account, process-group clean-up, readiness polling with a deadline, and
//!   initialised data directories cached as templates.
//!
//! - [`moto`]: moto's server (Secrets Manager, IAM, STS, SNS) from the test venv.
//! - [`lambda_runtime`]: a local Lambda Runtime API for exercising a real `bootstrap`.
//! - [`webhook`]: a receiver that keeps the bodies of the webhooks sent to it.
//!
//! Other servers (a keyroll server) get their own module next to these.

pub mod lambda_runtime;
pub mod mariadb;
pub mod moto;
pub mod postgres;
pub mod process;
pub mod tls;
pub mod webhook;

use std::path::PathBuf;

/// Why a throwaway server could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "{what} not found at {path}; install it (Debian: {package}) or set {env} to its directory"
    )]
    MissingBinary {
        what: &'static str,
        path: PathBuf,
        package: &'static str,
        env: &'static str,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}); output:\n{output}")]
    CommandFailed {
        what: String,
        status: String,
        output: String,
    },
    #[error("{what} was not ready within {waited_ms} ms; log tail:\n{log}")]
    NotReady {
        what: String,
        waited_ms: u128,
        log: String,
    },
    #[error("{what} exited during start-up ({status}); log tail:\n{log}")]
    Exited {
        what: String,
        status: String,
        log: String,
    },
    #[error("running as root, but none of the accounts {0:?} exists to run the server as")]
    NoServiceAccount(Vec<String>),
    #[error("TLS material: {0}")]
    Tls(#[from] rcgen::Error),
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
        let context = context.into();
        move |source| TestkitError::Io { context, source }
    }
}

pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
