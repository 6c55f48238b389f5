//! MySQL/MariaDB through mysql_async and deadpool: [`RotatingMysqlManager`] reads the
//! credentials from the cache for every new connection and retries an authentication failure
//! (error 1045) with a fresh AWSCURRENT, then AWSPENDING; pooled connections stay open
//! through a rotation.

use std::fmt;

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, OptsBuilder};

use crate::db::{AuthFailure, DbCredentials, DbError, RotatingCredentials};
use crate::source::SecretSource;

/// A deadpool pool of rotation-aware MySQL/MariaDB connections.
pub type Pool<S> = deadpool::managed::Pool<RotatingMysqlManager<S>>;
/// A connection borrowed from [`Pool`] (derefs to [`mysql_async::Conn`]).
pub type Object<S> = deadpool::managed::Object<RotatingMysqlManager<S>>;

/// MySQL's and MariaDB's "Access denied for user".
pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;

impl AuthFailure for mysql_async::Error {
    fn is_auth_failure(&self) -> bool {
        matches!(self, mysql_async::Error::Server(e) if e.code == ER_ACCESS_DENIED_ERROR)
    }
}

/// Creates pooled mysql_async connections with the secret's current credentials.
pub struct RotatingMysqlManager<S> {
    creds: RotatingCredentials<S>,
    base: OptsBuilder,
}

impl<S> fmt::Debug for RotatingMysqlManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingMysqlManager")
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource> RotatingMysqlManager<S> {
    /// Connections use `base` (TLS, timeouts, …) with the secret's username and password, and
    /// its host, port and dbname when it has them.
    pub fn new(creds: RotatingCredentials<S>, base: OptsBuilder) -> Self {
        RotatingMysqlManager { creds, base }
    }

    pub fn credentials(&self) -> &RotatingCredentials<S> {
        &self.creds
    }

    /// The connection settings for `c`.
    pub fn opts_for(&self, c: &DbCredentials) -> OptsBuilder {
        let mut o = self
            .base
            .clone()
            .user(Some(c.username.clone()))
            .pass(Some(c.password().to_string()));
        if let Some(h) = &c.host {
            o = o.ip_or_hostname(h.clone());
        }
        if let Some(p) = c.port {
            o = o.tcp_port(p);
        }
        if let Some(d) = &c.dbname {
            o = o.db_name(Some(d.clone()));
        }
        o
    }

    /// One new connection, with the rotation-aware retries.
    pub async fn connect(&self) -> Result<Conn, DbError> {
        self.creds
            .connect_with(|c| Conn::new(self.opts_for(&c)))
            .await
    }
}

impl<S: SecretSource> deadpool::managed::Manager for RotatingMysqlManager<S> {
    type Type = Conn;
    type Error = DbError;

    async fn create(&self) -> Result<Conn, DbError> {
        self.connect().await
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<DbError> {
        conn.ping()
            .await
            .map_err(|e| RecycleError::Backend(DbError::Query(e.to_string())))
    }
}

/// A pool of at most `max_size` connections from `manager`.
pub fn pool<S: SecretSource>(
    manager: RotatingMysqlManager<S>,
    max_size: usize,
) -> Result<Pool<S>, DbError> {
    deadpool::managed::Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Connect(format!("cannot build the pool: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_is_an_authentication_failure() {
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1045,
            message: "Access denied".into(),
            state: "28000".into(),
        });
        assert!(e.is_auth_failure());
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1049,
            message: "Unknown database".into(),
            state: "42000".into(),
        });
        assert!(!e.is_auth_failure());
    }
}
