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
//! - [`http`]: API keys held by an external HTTP API (rotate or set style).
//! - [`egress`]: the operator's allow-lists ([`TargetPolicy`]): which hosts and addresses
//!   HTTP targets may connect to, which IAM users may be rotated.
//! - `iam` (feature `aws`): IAM users' access keys.
//! - [`resolve`]: picks the target for a secret from its `engine` field; [`AutoTarget`] does
//!   that lazily, at the first step that needs it.
//! - `fuzzing` (feature `fuzzing`, and in tests): invariant checks of the database secret
//!   parser and the HTTP template substitution for the fuzz targets in `fuzz/` and the
//!   proptests.

pub mod auto;
pub mod database;
pub mod egress;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
#[cfg(feature = "aws")]
pub mod iam;
pub mod mysql;
pub mod none;
pub mod postgres;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auto::AutoTarget;
pub use egress::TargetPolicy;
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
    /// The JSON fields a plain secret (engine none) regenerates when it has no
    /// `keyroll:fields` tag. Default: `password`.
    pub plain_fields: Option<Vec<String>>,
    /// When an IAM user's deactivated previous key is deleted: `None` at the next rotation
    /// (default), zero right away in finishSecret, else at the first rotation at least this
    /// long after the last one. A secret's `keyroll:iam-delete-previous-after-days` tag wins.
    pub iam_delete_previous_after: Option<Duration>,
    /// How long one statement may run, or wait for a lock, on the database sessions keyroll
    /// opens: PostgreSQL `statement_timeout` and `lock_timeout`, MariaDB
    /// `max_statement_time`, MySQL and MariaDB `lock_wait_timeout` (whole seconds, at least
    /// 1). A statement blocked behind another session's lock on the role then fails instead
    /// of holding the rotation. Default 30 s.
    pub statement_timeout: Duration,
    /// Never connect to a database in plaintext: a secret without `"ssl"` then needs TLS
    /// with a verified certificate, as with `"ssl": true` (`[targets] require_tls`,
    /// `keyroll rotate --require-tls`, the Lambda's `KEYROLL_REQUIRE_TLS`). A secret's
    /// explicit `"ssl": false` is refused.
    pub require_tls: bool,
    /// Where secret-selected targets may be: the hosts and networks HTTP targets may
    /// connect to and the IAM users that may be rotated. The default allows none of them
    /// (see [`egress`]).
    pub policy: TargetPolicy,
}

/// keyroll's default [`TargetConfig::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            connect_timeout: database::DEFAULT_CONNECT_TIMEOUT,
            ca_bundle: None,
            password_length: None,
            exclude_characters: None,
            plain_fields: None,
            iam_delete_previous_after: None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            require_tls: false,
            policy: TargetPolicy::default(),
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
        None => Ok(Arc::new(none::NoneTarget::from_config(config))),
        Some("http") => Ok(Arc::new(http::HttpTarget::new(config.clone()))),
        Some("iam") => iam_target(desc, config),
        Some(e) => match Engine::parse(e).map(Engine::family) {
            Some(Family::Postgres) => Ok(Arc::new(postgres::PostgresTarget::new(config.clone()))),
            Some(Family::Mysql) => Ok(Arc::new(mysql::MysqlTarget::new(config.clone()))),
            None => Err(TargetError::Misconfigured(format!(
                "secret {} has engine {e:?}, which keyroll cannot rotate; supported engines: \
                 postgres, aurora-postgresql, mysql, aurora-mysql, mariadb, iam, http, or none \
                 (omit the field)",
                desc.name
            ))),
        },
    }
}

#[cfg(feature = "aws")]
fn iam_target(
    _desc: &DescribeSecretResponse,
    config: &TargetConfig,
) -> Result<SharedTarget, TargetError> {
    Ok(Arc::new(iam::IamTarget::new(iam::IamOptions {
        delete_previous_after: config.iam_delete_previous_after,
        policy: config.policy.clone(),
        ..Default::default()
    })))
}

#[cfg(not(feature = "aws"))]
fn iam_target(
    desc: &DescribeSecretResponse,
    _config: &TargetConfig,
) -> Result<SharedTarget, TargetError> {
    Err(TargetError::Misconfigured(format!(
        "secret {} has engine \"iam\", but this build of keyroll has no IAM support; build it \
         with the `aws` feature of keyroll-targets",
        desc.name
    )))
}
