//! What the connection helpers share: the database secret's fields, the retry policy, and the
//! rotation-aware connect loop ([`RotatingCredentials::connect_with`]).
//!
//! On an authentication failure the loop reads `AWSCURRENT` fresh (bypassing the cache, which
//! it then updates for every other reader); if that fails too, it tries `AWSPENDING`, which
//! exists only while a rotation is in progress and is the password the database already has
//! between a rotation's `setSecret` and `finishSecret` steps. Then it backs off (capped,
//! jittered exponential) and starts again, up to `max_attempts`.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::cache::{CacheError, SecretCache};
use crate::source::{SecretEntry, SecretSource, SourceError, VersionSelector};

/// A database login from a secret in AWS's JSON format for database secrets
/// (`{"username", "password", "host", "port", "dbname", "engine", …}`).
#[derive(Clone)]
pub struct DbCredentials {
    pub username: String,
    pub password: SecretString,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub engine: Option<String>,
    /// The secret version these came from.
    pub version_id: String,
}

impl fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCredentials")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("engine", &self.engine)
            .field("version_id", &self.version_id)
            .finish()
    }
}

#[derive(Deserialize)]
struct Fields {
    username: String,
    password: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<serde_json::Value>,
    #[serde(default)]
    dbname: Option<String>,
    #[serde(default)]
    engine: Option<String>,
}

impl DbCredentials {
    /// Parses a secret version's JSON.
    pub fn from_entry(entry: &SecretEntry) -> Result<Self, DbError> {
        let text = entry.secret_string().ok_or_else(|| DbError::BadSecret {
            secret_id: entry.name.clone(),
            reason: "it is binary; store the credentials as a JSON SecretString".to_string(),
        })?;
        let f: Fields = serde_json::from_str(text).map_err(|e| DbError::BadSecret {
            secret_id: entry.name.clone(),
            // serde's message names the field, never the value.
            reason: format!(
                "it is not JSON with string fields \"username\" and \"password\" ({})",
                e.classify_msg()
            ),
        })?;
        let port = match f.port {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            Some(_) => None,
        };
        Ok(DbCredentials {
            username: f.username,
            password: SecretString::from(f.password),
            host: f.host,
            port,
            dbname: f.dbname,
            engine: f.engine,
            version_id: entry.version_id.clone(),
        })
    }

    /// The password.
    pub fn password(&self) -> &str {
        self.password.expose_secret()
    }
}

trait ClassifyMsg {
    fn classify_msg(&self) -> String;
}

impl ClassifyMsg for serde_json::Error {
    fn classify_msg(&self) -> String {
        match self.classify() {
            serde_json::error::Category::Data => {
                // "missing field `password`" names no value; type errors may quote one.
                let msg = self.to_string();
                match msg.split(" at line").next() {
                    Some(m) if m.starts_with("missing field") => m.to_string(),
                    _ => format!(
                        "a field has the wrong type, at line {} column {}",
                        self.line(),
                        self.column()
                    ),
                }
            }
            c => format!(
                "{c:?} error at line {} column {}",
                self.line(),
                self.column()
            ),
        }
    }
}

/// How often and how fast to retry a connection refused for its credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Rounds (each: cached value, fresh AWSCURRENT, AWSPENDING) before giving up.
    pub max_attempts: u32,
    /// Back-off after the first failed round; doubles each round.
    pub initial_backoff: Duration,
    /// Back-off never exceeds this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed round `round` (0-based): uniformly random between half and all
    /// of `min(max_backoff, initial_backoff * 2^round)`.
    pub fn backoff(&self, round: u32) -> Duration {
        let factor = 2u32.saturating_pow(round.min(30));
        let cap = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = cap / 2;
        let spread = u64::try_from((cap - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(fastrand::u64(0..=spread))
    }
}

/// Why a helper could not produce a connection.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot read the database secret {secret_id}: {source}")]
    Secret {
        secret_id: String,
        #[source]
        source: CacheError,
    },
    #[error("the database secret {secret_id} is unusable: {reason}")]
    BadSecret { secret_id: String, reason: String },
    #[error(
        "the database refused every credential of secret {secret_id} ({attempts} rounds of AWSCURRENT, a fresh AWSCURRENT and AWSPENDING): {last}; check that the secret's username and password match the database, and that no rotation failed half-way (keyroll secret describe)"
    )]
    AuthFailed {
        secret_id: String,
        attempts: u32,
        last: String,
    },
    /// A failure that is not about credentials (network, TLS, the database is down, …).
    #[error("database connection failed: {0}")]
    Connect(String),
    #[error("database error: {0}")]
    Query(String),
}

/// Whether a connect error is the database refusing the credentials.
pub trait AuthFailure {
    fn is_auth_failure(&self) -> bool;
}

/// The credentials of one secret, read through a [`SecretCache`], with the rotation-aware
/// connect loop. Cheap to clone.
pub struct RotatingCredentials<S> {
    cache: SecretCache<S>,
    secret_id: String,
    retry: RetryPolicy,
}

impl<S> Clone for RotatingCredentials<S> {
    fn clone(&self) -> Self {
        RotatingCredentials {
            cache: self.cache.clone(),
            secret_id: self.secret_id.clone(),
            retry: self.retry.clone(),
        }
    }
}

impl<S> fmt::Debug for RotatingCredentials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingCredentials")
            .field("secret_id", &self.secret_id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<S: SecretSource> RotatingCredentials<S> {
    pub fn new(cache: SecretCache<S>, secret_id: impl Into<String>) -> Self {
        RotatingCredentials {
            cache,
            secret_id: secret_id.into(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    pub fn cache(&self) -> &SecretCache<S> {
        &self.cache
    }

    /// AWSCURRENT as the cache has it.
    pub async fn current(&self) -> Result<DbCredentials, DbError> {
        let e = self
            .cache
            .get(&self.secret_id)
            .await
            .map_err(|source| self.secret_err(source))?;
        DbCredentials::from_entry(&e)
    }

    fn secret_err(&self, source: CacheError) -> DbError {
        DbError::Secret {
            secret_id: self.secret_id.clone(),
            source,
        }
    }

    /// Runs `connect` with the cached credentials; on an authentication failure, with a fresh
    /// AWSCURRENT, then AWSPENDING; then backs off and repeats, up to the policy's rounds.
    /// Errors other than authentication failures are returned at once.
    pub async fn connect_with<T, E, F, Fut>(&self, mut connect: F) -> Result<T, DbError>
    where
        F: FnMut(DbCredentials) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: AuthFailure + fmt::Display,
    {
        let mut last = String::new();
        for round in 0..self.retry.max_attempts.max(1) {
            if round > 0 {
                tokio::time::sleep(self.retry.backoff(round - 1)).await;
            }
            let cached = self.current().await?;
            let tried = cached.version_id.clone();
            match connect(cached).await {
                Ok(c) => return Ok(c),
                Err(e) if e.is_auth_failure() => last = e.to_string(),
                Err(e) => return Err(DbError::Connect(e.to_string())),
            }
            // The cached value may be out of date: read AWSCURRENT now (and cache it).
            let fresh = self
                .cache
                .refresh_now(&self.secret_id, &VersionSelector::current())
                .await
                .map_err(|source| self.secret_err(source))?;
            let fresh = DbCredentials::from_entry(&fresh)?;
            let fresh_version = fresh.version_id.clone();
            if fresh_version != tried {
                tracing::info!(secret_id = %self.secret_id, version = %fresh_version, "database credentials changed: retrying with the new AWSCURRENT");
                match connect(fresh).await {
                    Ok(c) => return Ok(c),
                    Err(e) if e.is_auth_failure() => last = e.to_string(),
                    Err(e) => return Err(DbError::Connect(e.to_string())),
                }
            }
            // A rotation may be in progress, with the database already on AWSPENDING.
            match self
                .cache
                .get_uncached(&self.secret_id, &VersionSelector::pending())
                .await
            {
                Ok(p) => {
                    let pending = DbCredentials::from_entry(&p)?;
                    if pending.version_id != fresh_version {
                        match connect(pending).await {
                            Ok(c) => {
                                tracing::info!(secret_id = %self.secret_id, "connected with AWSPENDING: a rotation is in progress");
                                return Ok(c);
                            }
                            Err(e) if e.is_auth_failure() => last = e.to_string(),
                            Err(e) => return Err(DbError::Connect(e.to_string())),
                        }
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(secret_id = %self.secret_id, error = %e, "cannot read AWSPENDING")
                }
            }
            tracing::warn!(secret_id = %self.secret_id, round, error = %last, "database refused the credentials; backing off");
        }
        Err(DbError::AuthFailed {
            secret_id: self.secret_id.clone(),
            attempts: self.retry.max_attempts.max(1),
            last,
        })
    }
}

impl From<SourceError> for DbError {
    fn from(e: SourceError) -> Self {
        DbError::Connect(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::cache::CacheConfig;
    use crate::testing::FakeSource;

    #[derive(Debug)]
    enum FakeErr {
        Auth,
        Down,
    }
    impl fmt::Display for FakeErr {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                FakeErr::Auth => "password authentication failed",
                FakeErr::Down => "connection refused",
            })
        }
    }
    impl AuthFailure for FakeErr {
        fn is_auth_failure(&self) -> bool {
            matches!(self, FakeErr::Auth)
        }
    }

    fn secret(pw: &str) -> String {
        format!(r#"{{"username":"app","password":"{pw}","host":"127.0.0.1","port":"5432"}}"#)
    }

    fn creds(src: &Arc<FakeSource>) -> RotatingCredentials<Arc<FakeSource>> {
        let cache = SecretCache::new(Arc::clone(src), CacheConfig::default()).unwrap();
        RotatingCredentials::new(cache, "db").with_retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        })
    }

    /// A database that accepts exactly one password.
    async fn login(db_pw: &str, c: DbCredentials) -> Result<String, FakeErr> {
        if c.password() == db_pw {
            Ok(c.version_id)
        } else {
            Err(FakeErr::Auth)
        }
    }

    #[tokio::test]
    async fn a_rotated_password_is_picked_up_on_the_first_refusal() {
        let src = Arc::new(FakeSource::new());
        src.put("db", &secret("old"));
        let c = creds(&src);
        assert_eq!(c.current().await.unwrap().password(), "old");
        src.put("db", &secret("new"));
        let v = c.connect_with(|cr| login("new", cr)).await.unwrap();
        assert_eq!(v, "v1");
        // The cache now holds the new value for everyone.
        assert_eq!(c.current().await.unwrap().password(), "new");
    }

    #[tokio::test]
    async fn during_a_rotation_awspending_is_tried() {
        let src = Arc::new(FakeSource::new());
        src.put("db", &secret("old"));
        src.set_pending("db", &secret("next"));
        let c = creds(&src);
        let v = c.connect_with(|cr| login("next", cr)).await.unwrap();
        assert_eq!(v, "vpending");
    }

    #[tokio::test]
    async fn gives_up_after_the_policy_s_rounds_naming_the_fix() {
        let src = Arc::new(FakeSource::new());
        src.put("db", &secret("old"));
        let c = creds(&src);
        let tries = AtomicU32::new(0);
        let err = c
            .connect_with(|cr| {
                tries.fetch_add(1, Ordering::SeqCst);
                login("other", cr)
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, DbError::AuthFailed { attempts: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("check that the secret"), "{err}");
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let src = Arc::new(FakeSource::new());
        src.put("db", &secret("old"));
        let c = creds(&src);
        let err = c
            .connect_with(|_| async { Err::<(), _>(FakeErr::Down) })
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Connect(_)), "{err}");
    }

    #[test]
    fn secrets_that_are_not_database_json_are_refused_without_printing_them() {
        let entry = |text: &str| SecretEntry {
            arn: "a".into(),
            name: "db".into(),
            version_id: "v".into(),
            version_stages: vec![],
            created_date: None,
            value: crate::source::SecretPayload::String(SecretString::from(text.to_string())),
        };
        let e =
            DbCredentials::from_entry(&entry(r#"{"username":"u","pass":"s3cr3t"}"#)).unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let e = DbCredentials::from_entry(&entry("s3cr3t-not-json")).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let e =
            DbCredentials::from_entry(&entry(r#"{"username":"u","password":987654}"#)).unwrap_err();
        assert!(!e.to_string().contains("987654"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let c = DbCredentials::from_entry(&entry(r#"{"username":"u","password":"p","port":3306}"#))
            .unwrap();
        assert_eq!(c.port, Some(3306));
        assert!(!format!("{c:?}").contains("\"p\""));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for round in 0..20 {
            let cap = Duration::from_millis(100)
                .saturating_mul(2u32.saturating_pow(round))
                .min(Duration::from_secs(1));
            let d = p.backoff(round);
            assert!(d >= cap / 2 && d <= cap, "round {round}: {d:?}");
        }
    }
}
