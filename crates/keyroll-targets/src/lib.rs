//! # keyroll-targets
//!
//! The systems that hold the credentials keyroll rotates, each a
//! [`keyroll_core::ports::Target`].
//!
//! # Layout
//!
//! - [`none`]: plain generated secrets (no external system).
//! - [`database`]: the rotation strategies of AWS's RDS functions (single user, alternating
//!   users), the secret format ([`database::DbSecret`]), TLS, connection statistics.
//! - [`postgres`]: PostgreSQL and Aurora PostgreSQL (tokio-postgres, SCRAM verifiers).
//! - [`mysql`]: MySQL, Aurora MySQL and MariaDB (mysql_async, `SHOW GRANTS` replay).
//! - [`resolve`]: picks the target for a secret from its `engine` field.

pub mod database;
pub mod mysql;
pub mod none;
pub mod postgres;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keyroll_core::api::DescribeSecretResponse;
use keyroll_core::ports::{SharedTarget, TargetError};
use keyroll_core::value::SecretValue;

use database::{Engine, Family};

/// How targets connect and which passwords they generate. Drivers (CLI, server, Lambda)
/// build one from their configuration; `TargetConfig::default()` is AWS's behaviour.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// How long one connection attempt (TCP, TLS and authentication) may take. Default 5 s.
    pub connect_timeout: Duration,
    /// A PEM file of CA certificates to trust for database TLS instead of the system's roots
    /// (e.g. the RDS global bundle).
    pub ca_bundle: Option<PathBuf>,
    /// Password length instead of the engine default (32). A secret's
    /// `keyroll:password-length` tag still wins.
    pub password_length: Option<u32>,
    /// Characters to exclude instead of the engine default (`/@"'\`, plus `:` for
    /// PostgreSQL). A secret's `keyroll:exclude-characters` tag adds to these.
    pub exclude_characters: Option<String>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            connect_timeout: database::DEFAULT_CONNECT_TIMEOUT,
            ca_bundle: None,
            password_length: None,
            exclude_characters: None,
        }
    }
}

/// Picks the target for a secret from the `engine` field of its current value: a value that
/// is not JSON, or has no `engine`, is a plain secret (target `none`); `postgres` and
/// `aurora-postgresql` rotate on PostgreSQL; `mysql`, `aurora-mysql` and `mariadb` on
/// MySQL/MariaDB. Whether users alternate is read from the secret at each step
/// (`masterarn`).
pub fn resolve(
    desc: &DescribeSecretResponse,
    current: &SecretValue,
    config: &TargetConfig,
) -> Result<SharedTarget, TargetError> {
    let engine = current
        .json_object()
        .and_then(|o| o.get("engine").and_then(|e| e.as_str().map(str::to_string)));
    match engine.as_deref() {
        None => Ok(Arc::new(none::NoneTarget::new())),
        Some(e) => match Engine::parse(e).map(Engine::family) {
            Some(Family::Postgres) => Ok(Arc::new(postgres::PostgresTarget::new(config.clone()))),
            Some(Family::Mysql) => Ok(Arc::new(mysql::MysqlTarget::new(config.clone()))),
            None => Err(TargetError::Misconfigured(format!(
                "secret {} has engine {e:?}, which keyroll cannot rotate; supported engines: \
                 postgres, aurora-postgresql, mysql, aurora-mysql, mariadb, or none (omit the \
                 field)",
                desc.name
            ))),
        },
    }
}
