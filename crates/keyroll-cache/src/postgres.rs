//! PostgreSQL through tokio-postgres and deadpool: [`RotatingPgManager`], a deadpool manager
//! that reads the credentials from the cache for every new connection (and retries an
//! authentication failure, SQLSTATE 28P01, with a fresh AWSCURRENT, then AWSPENDING), so a
//! rotation never drops healthy pooled connections and new ones use the current password.
//!
//! ```no_run
//! # async fn demo(cache: keyroll_cache::SecretCache<keyroll_cache::testing::FakeSource>) -> Result<(), Box<dyn std::error::Error>> {
//! use keyroll_cache::db::RotatingCredentials;
//! use keyroll_cache::postgres::{RotatingPgManager, pool};
//!
//! let creds = RotatingCredentials::new(cache, "prod/app/db");
//! let manager = RotatingPgManager::new(creds, tokio_postgres::Config::new(), tokio_postgres::NoTls);
//! let pool = pool(manager, 16)?;
//! let client = pool.get().await?;
//! client.simple_query("SELECT 1").await?;
//! # Ok(()) }
//! ```

use std::fmt;

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Config, Socket};

use crate::db::{AuthFailure, DbCredentials, DbError, RotatingCredentials};
use crate::source::SecretSource;

/// A deadpool pool of rotation-aware PostgreSQL connections.
pub type Pool<S, T> = deadpool::managed::Pool<RotatingPgManager<S, T>>;
/// A connection borrowed from [`Pool`] (derefs to [`tokio_postgres::Client`]).
pub type Object<S, T> = deadpool::managed::Object<RotatingPgManager<S, T>>;

impl AuthFailure for tokio_postgres::Error {
    fn is_auth_failure(&self) -> bool {
        self.code() == Some(&SqlState::INVALID_PASSWORD)
            || self.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    }
}

/// Creates pooled PostgreSQL connections with the secret's current credentials.
pub struct RotatingPgManager<S, T> {
    creds: RotatingCredentials<S>,
    base: Config,
    tls: T,
}

impl<S, T> fmt::Debug for RotatingPgManager<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingPgManager")
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource, T> RotatingPgManager<S, T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    /// Connections use `base` (timeouts, SSL mode, application name, …) with the secret's
    /// username and password, and its host, port and dbname when it has them.
    pub fn new(creds: RotatingCredentials<S>, base: Config, tls: T) -> Self {
        RotatingPgManager { creds, base, tls }
    }

    pub fn credentials(&self) -> &RotatingCredentials<S> {
        &self.creds
    }

    /// The connection settings for `c`.
    pub fn config_for(&self, c: &DbCredentials) -> Config {
        let mut cfg = self.base.clone();
        cfg.user(&c.username).password(c.password());
        if let Some(h) = &c.host {
            cfg.host(h);
        }
        if let Some(p) = c.port {
            cfg.port(p);
        }
        if let Some(d) = &c.dbname {
            cfg.dbname(d);
        }
        cfg
    }

    /// One new connection, with the rotation-aware retries.
    pub async fn connect(&self) -> Result<ClientWrapper, DbError> {
        self.creds
            .connect_with(|c| {
                let cfg = self.config_for(&c);
                let tls = self.tls.clone();
                async move { cfg.connect(tls).await }
            })
            .await
            .map(|(client, connection)| {
                let task = tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "PostgreSQL connection closed");
                    }
                });
                ClientWrapper::new(client, task)
            })
    }
}

impl<S: SecretSource, T> deadpool::managed::Manager for RotatingPgManager<S, T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    type Type = ClientWrapper;
    type Error = DbError;

    async fn create(&self) -> Result<ClientWrapper, DbError> {
        self.connect().await
    }

    async fn recycle(&self, client: &mut ClientWrapper, _: &Metrics) -> RecycleResult<DbError> {
        if client.is_closed() {
            return Err(RecycleError::message("the connection is closed"));
        }
        // A live session keeps working after its password rotates: keep it.
        client
            .simple_query("")
            .await
            .map(|_| ())
            .map_err(|e| RecycleError::Backend(DbError::Query(e.to_string())))
    }
}

/// A pool of at most `max_size` connections from `manager`.
pub fn pool<S: SecretSource, T>(
    manager: RotatingPgManager<S, T>,
    max_size: usize,
) -> Result<Pool<S, T>, DbError>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    deadpool::managed::Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Connect(format!("cannot build the pool: {e}")))
}
