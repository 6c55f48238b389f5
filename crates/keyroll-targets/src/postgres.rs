//! PostgreSQL and Aurora PostgreSQL, over tokio-postgres with rustls.
//!
//! Passwords never reach the server in plaintext: `ALTER ROLE … PASSWORD` gets a verifier
//! computed here — SCRAM-SHA-256 (random salt, 4096 iterations) unless the server's
//! `password_encryption` is `md5` or the server is older than PostgreSQL 10 (which knows no
//! SCRAM and would store a SCRAM string as the password itself), then the MD5 form — so
//! neither the statement log
//! (`log_statement = all`) nor `pg_stat_activity` ever holds the password. Identifiers and
//! literals are quoted here (`"…"` with `""`, `'…'` with `''`, `E'…'` when a backslash
//! needs it); every statement goes through the simple-query protocol, one round trip each.
//!
//! Alternating users: the clone is created `IN ROLE` the original (membership, with the
//! default `INHERIT`), so it holds whatever the original is granted, now and later.
//!
//! A statement abandoned mid-flight (its step ran past its deadline and was dropped) is
//! cancelled: PostgreSQL does not notice a client that went away while a statement waits for
//! a lock, so an abandoned `ALTER ROLE` would otherwise change the password later, behind the
//! rotation's back, and leave AWSCURRENT unable to log in until the rotation is resumed. The
//! cancel request goes to the address of the session's own connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use keyroll_core::ports::TargetError;
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{CancelToken, Client, NoTls, SimpleQueryMessage, Socket};
use zeroize::Zeroizing;

use crate::TargetConfig;
use crate::database::{ClonePlan, DbTarget, Dialect, Failure, Io, Login, ProbeInfo, TlsAttempt};

/// The PostgreSQL target.
pub type PostgresTarget = DbTarget<Postgres>;

impl PostgresTarget {
    pub fn new(cfg: TargetConfig) -> Self {
        DbTarget::with_dialect(Postgres, cfg)
    }
}

/// The PostgreSQL dialect.
pub struct Postgres;

/// A session: the client and the task driving its connection.
pub struct PgConn {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
    cancel: Canceller,
}

/// What a cancel request needs: the session's token and the TLS it connected with.
struct Canceller {
    token: CancelToken,
    tls: CancelTls,
}

#[derive(Clone)]
enum CancelTls {
    Off,
    Rustls(Arc<rustls::ClientConfig>),
}

impl Canceller {
    /// Sends the cancel request from a task of its own (the caller is being dropped).
    fn cancel_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let token = self.token.clone();
        let tls = self.tls.clone();
        runtime.spawn(async move {
            let sent = match tls {
                CancelTls::Off => token.cancel_query(NoTls).await,
                CancelTls::Rustls(config) => {
                    let maker = MakeRustls {
                        config,
                        used: Arc::new(AtomicBool::new(false)),
                    };
                    token.cancel_query(maker).await
                }
            };
            match sent {
                Ok(()) => tracing::info!("cancelled a statement abandoned at its step's deadline"),
                Err(e) => tracing::warn!(
                    error = %chain(&e),
                    "could not cancel a statement abandoned at its step's deadline; it may \
                     still run until the server's lock_timeout/statement_timeout"
                ),
            }
        });
    }
}

/// Armed while a statement is in flight: dropped armed (the statement's future was dropped
/// before it finished), it cancels the statement on the server.
struct InFlight<'c>(Option<&'c Canceller>);

impl InFlight<'_> {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel_in_background();
        }
    }
}

/// `"name"`, with `"` doubled. Rejects NUL, which PostgreSQL identifiers cannot hold.
pub fn quote_ident(name: &str) -> Result<String, TargetError> {
    if name.contains('\0') {
        return Err(TargetError::InvalidSecret(
            "a PostgreSQL name cannot contain NUL".into(),
        ));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `'text'` with `'` doubled; `E'…'` with `\` doubled when the text holds a backslash (correct
/// whatever `standard_conforming_strings` says). Rejects NUL.
pub fn quote_literal(text: &str) -> Result<String, TargetError> {
    if text.contains('\0') {
        return Err(TargetError::InvalidSecret(
            "a PostgreSQL string cannot contain NUL".into(),
        ));
    }
    let body = text.replace('\'', "''");
    Ok(if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    })
}

/// Whether the server must be given the MD5 form: its `password_encryption` is `md5`, or it
/// is older than PostgreSQL 10 (`server_version_num` below 100000), where
/// `password_encryption` is `on`/`off`, SCRAM does not exist, and a SCRAM verifier would be
/// taken for a plaintext password (and then hashed with MD5 as one). An unreadable version
/// counts as current.
pub fn wants_md5(password_encryption: &str, server_version_num: &str) -> bool {
    let old = server_version_num
        .trim()
        .parse::<u32>()
        .is_ok_and(|v| v < 100_000);
    old || password_encryption.trim().eq_ignore_ascii_case("md5")
}

/// The verifier to store for `password`: MD5 (`md5…`, salted with the role name) when
/// [`wants_md5`] says so, SCRAM-SHA-256 otherwise.
pub fn password_verifier(
    password_encryption: &str,
    server_version_num: &str,
    role: &str,
    password: &SecretString,
) -> Zeroizing<String> {
    let pw = password.expose_secret().as_bytes();
    if wants_md5(password_encryption, server_version_num) {
        Zeroizing::new(postgres_protocol::password::md5(pw, role))
    } else {
        Zeroizing::new(postgres_protocol::password::scram_sha_256(pw))
    }
}

/// `ALTER ROLE "role" WITH [LOGIN] PASSWORD '<verifier>'`.
pub fn alter_role_password(
    role: &str,
    verifier: &str,
    login: bool,
) -> Result<Zeroizing<String>, TargetError> {
    Ok(Zeroizing::new(format!(
        "ALTER ROLE {} WITH {}PASSWORD {}",
        quote_ident(role)?,
        if login { "LOGIN " } else { "" },
        quote_literal(verifier)?
    )))
}

/// `CREATE ROLE "clone" WITH LOGIN PASSWORD '<verifier>' IN ROLE "original"`.
pub fn create_clone(
    clone: &str,
    original: &str,
    verifier: &str,
) -> Result<Zeroizing<String>, TargetError> {
    Ok(Zeroizing::new(format!(
        "CREATE ROLE {} WITH LOGIN PASSWORD {} IN ROLE {}",
        quote_ident(clone)?,
        quote_literal(verifier)?,
        quote_ident(original)?
    )))
}

/// The startup options of keyroll's sessions: no statement runs, and no lock is waited for,
/// longer than `limit` (at least 1 ms; PostgreSQL reads 0 as "no limit").
pub fn session_options(limit: std::time::Duration) -> String {
    let ms = limit.as_millis().clamp(1, i32::MAX as u128);
    format!("-c statement_timeout={ms} -c lock_timeout={ms}")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn classify(e: tokio_postgres::Error) -> Failure {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let msg = format!("{} [SQLSTATE {}]", db.message(), code.code());
        return if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Failure::Auth(msg)
        } else if *code == SqlState::CANNOT_CONNECT_NOW || *code == SqlState::TOO_MANY_CONNECTIONS {
            Failure::Unreachable(msg)
        } else {
            Failure::Rejected(msg)
        };
    }
    let text = chain(&e);
    if text.starts_with("error performing TLS handshake") {
        Failure::TlsFailed(text)
    } else {
        Failure::Unreachable(text)
    }
}

/// A statement error, with `secret` (a verifier) never shown.
fn statement_error(
    login: &Login<'_>,
    what: &str,
    e: tokio_postgres::Error,
    secret: Option<&str>,
) -> TargetError {
    let scope = login.scope();
    let Some(db) = e.as_db_error() else {
        return TargetError::Unreachable(format!("{scope}: {what}: {}", chain(&e)));
    };
    let code = db.code().clone();
    let mut msg = db.message().to_string();
    if let Some(s) = secret
        && (msg.contains(s) || code == SqlState::SYNTAX_ERROR)
    {
        msg = "(message withheld: it may quote the statement)".into();
    }
    let text = format!("{scope}: {what} failed: {msg} [SQLSTATE {}]", code.code());
    if code == SqlState::INSUFFICIENT_PRIVILEGE {
        TargetError::PermissionDenied(text)
    } else {
        TargetError::Rejected(text)
    }
}

impl Postgres {
    async fn simple(
        conn: &mut PgConn,
        io: &Io<'_>,
        login: &Login<'_>,
        what: &str,
        sql: &str,
        secret: Option<&str>,
    ) -> Result<Vec<Vec<Option<String>>>, TargetError> {
        io.stats.round_trip();
        let in_flight = InFlight(Some(&conn.cancel));
        let msgs = conn.client.simple_query(sql).await;
        in_flight.finished();
        let msgs = msgs.map_err(|e| statement_error(login, what, e, secret))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    async fn finish_connect<T>(
        io: &Io<'_>,
        cfg: &tokio_postgres::Config,
        tls: T,
        cancel_tls: CancelTls,
        used: &AtomicBool,
    ) -> Result<PgConn, Failure>
    where
        T: MakeTlsConnect<Socket> + Send,
        T::Stream: Send + 'static,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        io.stats.connection();
        match cfg.connect(tls).await {
            Ok((client, connection)) => {
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                io.stats.login(used.load(Ordering::Relaxed));
                let cancel = Canceller {
                    token: client.cancel_token(),
                    tls: cancel_tls,
                };
                Ok(PgConn {
                    client,
                    driver,
                    cancel,
                })
            }
            Err(e) => {
                let f = classify(e);
                if matches!(f, Failure::Auth(_)) {
                    io.stats.auth_failure();
                }
                Err(f)
            }
        }
    }
}

#[async_trait]
impl Dialect for Postgres {
    type Conn = PgConn;

    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn connect(
        &self,
        io: &Io<'_>,
        login: &Login<'_>,
        tls: TlsAttempt,
    ) -> Result<PgConn, Failure> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(login.host)
            .port(login.port)
            .user(login.user)
            .password(login.password.expose_secret())
            .dbname(login.dbname.unwrap_or("postgres"))
            .application_name("keyroll")
            .options(session_options(io.cfg.statement_timeout))
            .connect_timeout(io.cfg.connect_timeout);
        let used = Arc::new(AtomicBool::new(false));
        let (mode, config) = match tls {
            TlsAttempt::Off => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                return Self::finish_connect(io, &cfg, NoTls, CancelTls::Off, &used).await;
            }
            TlsAttempt::Prefer(t) => (
                tokio_postgres::config::SslMode::Prefer,
                t.client_config.clone(),
            ),
            TlsAttempt::Require(t) => (
                tokio_postgres::config::SslMode::Require,
                t.client_config.clone(),
            ),
        };
        cfg.ssl_mode(mode);
        let maker = MakeRustls {
            config: config.clone(),
            used: used.clone(),
        };
        Self::finish_connect(io, &cfg, maker, CancelTls::Rustls(config), &used).await
    }

    async fn close(&self, conn: PgConn) {
        let PgConn { client, driver, .. } = conn;
        drop(client);
        let _ = driver.await;
    }

    async fn change_own_password(
        &self,
        conn: &mut PgConn,
        io: &Io<'_>,
        login: &Login<'_>,
        new: &SecretString,
    ) -> Result<(), TargetError> {
        let rows = Self::simple(
            conn,
            io,
            login,
            "reading password_encryption",
            "SELECT current_setting('password_encryption'), session_user, \
             current_setting('server_version_num')",
            None,
        )
        .await?;
        let (enc, role, version) = match rows.first().map(|r| r.as_slice()) {
            Some([Some(enc), Some(role), Some(v)]) => (enc.clone(), role.clone(), v.clone()),
            _ => {
                return Err(TargetError::Rejected(format!(
                    "{}: unexpected answer to SELECT current_setting('password_encryption')",
                    login.scope()
                )));
            }
        };
        if role != login.user {
            return Err(TargetError::Rejected(format!(
                "{}: the session is role {role:?}, not the secret's user; refusing to change \
                 another role's password",
                login.scope()
            )));
        }
        let verifier = password_verifier(&enc, &version, &role, new);
        let sql = alter_role_password(&role, &verifier, false)?;
        Self::simple(
            conn,
            io,
            login,
            "ALTER ROLE … PASSWORD",
            &sql,
            Some(&verifier),
        )
        .await?;
        tracing::info!(scope = %login.scope(), "password changed");
        Ok(())
    }

    async fn probe(
        &self,
        conn: &mut PgConn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: Option<&ClonePlan<'_>>,
    ) -> Result<ProbeInfo, TargetError> {
        let Some(plan) = plan else {
            Self::simple(conn, io, login, "SELECT 1", "SELECT 1", None).await?;
            return Ok(ProbeInfo::default());
        };
        let sql = format!(
            "SELECT pg_has_role(r.oid, o.oid, 'USAGE') FROM pg_roles r, pg_roles o \
             WHERE r.rolname = {} AND o.rolname = {}",
            quote_literal(plan.clone)?,
            quote_literal(plan.original)?
        );
        let rows = Self::simple(
            conn,
            io,
            login,
            "checking the clone's membership",
            &sql,
            None,
        )
        .await?;
        let ok = rows
            .first()
            .and_then(|r| r.first())
            .is_some_and(|v| v.as_deref() == Some("t"));
        if !ok {
            return Err(TargetError::TestFailed(format!(
                "{}: role {:?} does not inherit the privileges of {:?} (it should be a member \
                 with INHERIT); grant it with GRANT {} TO {}",
                login.scope(),
                plan.clone,
                plan.original,
                quote_ident(plan.original)?,
                quote_ident(plan.clone)?
            )));
        }
        Ok(ProbeInfo {
            account_host: None,
            clone_checked: true,
        })
    }

    async fn apply_as_master(
        &self,
        conn: &mut PgConn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: &ClonePlan<'_>,
    ) -> Result<(), TargetError> {
        let sql = format!(
            "SELECT current_setting('password_encryption'), \
             EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {}), \
             EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {}), \
             current_setting('server_version_num')",
            quote_literal(plan.pending)?,
            quote_literal(plan.original)?
        );
        let rows = Self::simple(conn, io, login, "looking up the roles", &sql, None).await?;
        let (enc, pending_exists, original_exists, version) =
            match rows.first().map(|r| r.as_slice()) {
                Some([Some(enc), Some(p), Some(o), Some(v)]) => {
                    (enc.clone(), p == "t", o == "t", v.clone())
                }
                _ => {
                    return Err(TargetError::Rejected(format!(
                        "{}: unexpected answer while looking up roles",
                        login.scope()
                    )));
                }
            };
        if !original_exists {
            return Err(TargetError::Rejected(format!(
                "{}: role {:?} does not exist; alternating users need the original role",
                login.scope(),
                plan.original
            )));
        }
        let verifier = password_verifier(&enc, &version, plan.pending, plan.password);
        let sql = if plan.pending == plan.clone {
            if pending_exists {
                Zeroizing::new(format!(
                    "{}; GRANT {} TO {}",
                    *alter_role_password(plan.clone, &verifier, true)?,
                    quote_ident(plan.original)?,
                    quote_ident(plan.clone)?
                ))
            } else {
                create_clone(plan.clone, plan.original, &verifier)?
            }
        } else {
            alter_role_password(plan.pending, &verifier, false)?
        };
        Self::simple(
            conn,
            io,
            login,
            "setting the pending user's password",
            &sql,
            Some(&verifier),
        )
        .await?;
        tracing::info!(scope = %login.scope(), user = plan.pending, created = !pending_exists, "pending user's password set");
        Ok(())
    }

    async fn check_clone_as_master(
        &self,
        conn: &mut PgConn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: &ClonePlan<'_>,
    ) -> Result<(), TargetError> {
        self.probe(conn, io, login, Some(plan)).await.map(|_| ())
    }
}

/// rustls for tokio-postgres, remembering whether the server agreed to TLS.
#[derive(Clone)]
struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
    used: Arc<AtomicBool>,
}

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: Result<ServerName<'static>, String>,
    used: Arc<AtomicBool>,
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = std::io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, std::io::Error> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_string())
                .map_err(|e| format!("{domain:?} is not a valid TLS server name: {e}")),
            used: self.used.clone(),
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.map_err(std::io::Error::other)?;
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            self.used.store(true, Ordering::Relaxed);
            Ok(RustlsStream(Box::new(s)))
        })
    }
}

struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("app").unwrap(), "\"app\"");
        assert_eq!(
            quote_ident("\"x\"; DROP ROLE y; --").unwrap(),
            "\"\"\"x\"\"; DROP ROLE y; --\""
        );
        assert_eq!(quote_ident("o'brien").unwrap(), "\"o'brien\"");
        assert!(quote_ident("a\0b").is_err());
        assert_eq!(quote_literal("o'brien").unwrap(), "'o''brien'");
        assert_eq!(quote_literal("a\\b'c").unwrap(), "E'a\\\\b''c'");
        assert!(quote_literal("a\0").is_err());
    }

    #[test]
    fn verifiers_never_hold_the_password() {
        let pw = SecretString::from("Sentinel-Pa55word!".to_string());
        let scram = password_verifier("scram-sha-256", "150004", "app", &pw);
        assert!(scram.starts_with("SCRAM-SHA-256$4096:"), "{}", *scram);
        assert!(!scram.contains("Sentinel"));
        // A fresh salt every time.
        assert_ne!(
            *scram,
            *password_verifier("scram-sha-256", "150004", "app", &pw)
        );
        let md5 = password_verifier("md5", "150004", "app", &pw);
        assert!(md5.starts_with("md5") && md5.len() == 35, "{}", *md5);
        let sql = alter_role_password("we ird", &scram, false).unwrap();
        assert!(sql.starts_with("ALTER ROLE \"we ird\" WITH PASSWORD 'SCRAM-SHA-256$"));
        assert!(!sql.contains("Sentinel"));
    }

    #[test]
    fn sessions_are_bounded() {
        use std::time::Duration;
        assert_eq!(
            session_options(Duration::from_secs(30)),
            "-c statement_timeout=30000 -c lock_timeout=30000"
        );
        assert_eq!(
            session_options(Duration::ZERO),
            "-c statement_timeout=1 -c lock_timeout=1"
        );
    }

    #[test]
    fn servers_before_10_get_the_md5_form() {
        let pw = SecretString::from("Sentinel-pw".to_string());
        // PostgreSQL 9.x: password_encryption is a boolean and SCRAM does not exist.
        for (enc, version) in [("on", "90624"), ("off", "90500"), ("md5", "150004")] {
            assert!(wants_md5(enc, version), "{enc} {version}");
            let v = password_verifier(enc, version, "app", &pw);
            // md5(password || role), as PostgreSQL computes it.
            assert_eq!(*v, "md52d2782ca6b13aaac1723cc1a65eb5c09", "{enc} {version}");
        }
        for (enc, version) in [("scram-sha-256", "100000"), ("scram-sha-256", "x")] {
            assert!(!wants_md5(enc, version), "{enc} {version}");
            assert!(password_verifier(enc, version, "app", &pw).starts_with("SCRAM-SHA-256$"));
        }
    }

    #[test]
    fn clone_is_created_in_the_original_role() {
        let sql = create_clone("o'brien_clone", "o'brien", "SCRAM-SHA-256$x").unwrap();
        assert_eq!(
            *sql,
            "CREATE ROLE \"o'brien_clone\" WITH LOGIN PASSWORD 'SCRAM-SHA-256$x' IN ROLE \"o'brien\""
        );
    }
}
