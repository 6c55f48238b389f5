//! sqlx (PostgreSQL with feature `sqlx-postgres`, MySQL/MariaDB with `sqlx-mysql`):
//! [`RotatingPool`], an `sqlx::Pool` whose connect options follow the secret. Healthy pooled
//! connections are kept through a rotation; when the pool opens a new one and the database
//! refuses it (PostgreSQL SQLSTATE 28P01, MySQL/MariaDB error 1045), the pool's connect
//! options are switched to a fresh AWSCURRENT, then to AWSPENDING, with capped jittered
//! back-off between rounds.
//!
//! TLS is the application's choice: enable one of sqlx's TLS features in your own
//! `Cargo.toml` and set the SSL mode on the base options.

use std::fmt;
use std::sync::Mutex;

use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{Connection, Database};

use crate::db::{AuthFailure, DbCredentials, DbError, RotatingCredentials};
use crate::source::SecretSource;

/// The connect options of database `DB`.
pub type ConnectOptions<DB> = <<DB as Database>::Connection as Connection>::Options;

impl AuthFailure for sqlx::Error {
    fn is_auth_failure(&self) -> bool {
        let sqlx::Error::Database(e) = self else {
            return false;
        };
        #[cfg(feature = "sqlx-postgres")]
        if e.code().as_deref() == Some("28P01") {
            return true;
        }
        #[cfg(feature = "sqlx-mysql")]
        if let Some(m) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            && m.number() == 1045
        {
            return true;
        }
        let _ = e;
        false
    }
}

/// An `sqlx::Pool` that connects with the secret's current credentials.
pub struct RotatingPool<S, DB: Database> {
    pool: sqlx::Pool<DB>,
    creds: RotatingCredentials<S>,
    base: ConnectOptions<DB>,
    apply: fn(&ConnectOptions<DB>, &DbCredentials) -> ConnectOptions<DB>,
    /// The secret version the pool's connect options hold now.
    applied: Mutex<Option<String>>,
}

impl<S, DB: Database> fmt::Debug for RotatingPool<S, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingPool")
            .field("creds", &self.creds)
            .field("size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

/// `base` with the secret's username and password, and its host, port and dbname when it has
/// them (PostgreSQL's and MySQL's sqlx options have the same setters, not a common trait).
#[cfg(any(feature = "sqlx-postgres", feature = "sqlx-mysql"))]
macro_rules! with_credentials {
    ($base:expr, $c:expr) => {{
        let (b, c) = ($base, $c);
        let mut o = b.clone().username(&c.username).password(c.password());
        if let Some(h) = &c.host {
            o = o.host(h);
        }
        if let Some(p) = c.port {
            o = o.port(p);
        }
        if let Some(d) = &c.dbname {
            o = o.database(d);
        }
        o
    }};
}

/// A rotation-aware PostgreSQL pool.
#[cfg(feature = "sqlx-postgres")]
pub type RotatingPgPool<S> = RotatingPool<S, sqlx::Postgres>;
/// A rotation-aware MySQL/MariaDB pool.
#[cfg(feature = "sqlx-mysql")]
pub type RotatingMySqlPool<S> = RotatingPool<S, sqlx::MySql>;

#[cfg(feature = "sqlx-postgres")]
impl<S: SecretSource> RotatingPool<S, sqlx::Postgres> {
    /// A pool (not yet connected) using `base` with the secret's username and password, and
    /// its host, port and dbname when it has them.
    pub async fn postgres(
        creds: RotatingCredentials<S>,
        base: sqlx::postgres::PgConnectOptions,
        options: PoolOptions<sqlx::Postgres>,
    ) -> Result<Self, DbError> {
        Self::build(creds, base, options, |b, c| with_credentials!(b, c)).await
    }
}

#[cfg(feature = "sqlx-mysql")]
impl<S: SecretSource> RotatingPool<S, sqlx::MySql> {
    /// A pool (not yet connected) using `base` with the secret's username and password, and
    /// its host, port and dbname when it has them.
    pub async fn mysql(
        creds: RotatingCredentials<S>,
        base: sqlx::mysql::MySqlConnectOptions,
        options: PoolOptions<sqlx::MySql>,
    ) -> Result<Self, DbError> {
        Self::build(creds, base, options, |b, c| with_credentials!(b, c)).await
    }
}

impl<S: SecretSource, DB: Database> RotatingPool<S, DB> {
    async fn build(
        creds: RotatingCredentials<S>,
        base: ConnectOptions<DB>,
        options: PoolOptions<DB>,
        apply: fn(&ConnectOptions<DB>, &DbCredentials) -> ConnectOptions<DB>,
    ) -> Result<Self, DbError> {
        let current = creds.current().await?;
        let pool = options.connect_lazy_with(apply(&base, &current));
        Ok(RotatingPool {
            pool,
            creds,
            base,
            apply,
            applied: Mutex::new(Some(current.version_id)),
        })
    }

    /// A connection: an idle pooled one, or a new one made with the current credentials
    /// (retrying authentication failures as the module describes).
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, DbError> {
        self.creds
            .connect_with(|c| {
                self.use_credentials(&c);
                self.pool.acquire()
            })
            .await
    }

    /// Points the pool's future connections at `c` (if not already).
    fn use_credentials(&self, c: &DbCredentials) {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if applied.as_deref() != Some(c.version_id.as_str()) {
            self.pool.set_connect_options((self.apply)(&self.base, c));
            *applied = Some(c.version_id.clone());
        }
    }

    /// The underlying pool (queries run on it directly connect with the last credentials
    /// applied, without the retries of [`RotatingPool::acquire`]).
    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }

    pub fn credentials(&self) -> &RotatingCredentials<S> {
        &self.creds
    }
}
