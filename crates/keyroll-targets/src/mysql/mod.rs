//! MySQL, Aurora MySQL and MariaDB, over mysql_async with rustls.
//!
//! Single user: the session asks `CURRENT_USER()` which account it actually matched (never a
//! hard-coded `'%'`) and `SHOW CREATE USER` which plugin that account uses, then sets the
//! password keeping the plugin (see [`sql::set_password_statement`]). On MariaDB the
//! statement carries a hash computed here, never the plaintext.
//!
//! Alternating users: the clone is `user_clone` on the original's host part. The master
//! creates it on first use with the original's plugin, sets the pending user's password,
//! replays the original's `SHOW GRANTS` onto the clone exactly (wildcards, host parts,
//! `WITH GRANT OPTION`) and copies the TLS requirement and resource limits. `testSecret`
//! compares both accounts' grants through the master.

pub mod sql;

use async_trait::async_trait;
use keyroll_core::ports::TargetError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts, Value};
use secrecy::{ExposeSecret, SecretString};

use crate::TargetConfig;
use crate::database::{ClonePlan, DbTarget, Dialect, Failure, Io, Login, ProbeInfo, TlsAttempt};
use sql::{AccountOptions, Backslash, Flavor, Grant};

/// The MySQL / MariaDB target.
pub type MysqlTarget = DbTarget<Mysql>;

impl MysqlTarget {
    pub fn new(cfg: TargetConfig) -> Self {
        DbTarget::with_dialect(Mysql, cfg)
    }
}

/// The MySQL / MariaDB dialect.
pub struct Mysql;

/// A session.
pub struct MyConn {
    conn: Conn,
}

fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        other => Some(other.as_sql(true)),
    }
}

fn classify(e: mysql_async::Error) -> Failure {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        Error::Server(s) => {
            let msg = format!("{} [error {}, SQLSTATE {}]", s.message, s.code, s.state);
            match s.code {
                // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR,
                // ER_ACCOUNT_HAS_BEEN_LOCKED, ER_MUST_CHANGE_PASSWORD_LOGIN
                1045 | 1698 | 3118 | 1862 => Failure::Auth(msg),
                // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, ER_HOST_IS_BLOCKED
                1040 | 1203 | 1129 => Failure::Unreachable(msg),
                _ => Failure::Rejected(msg),
            }
        }
        Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            Failure::TlsNotOffered("the server does not offer TLS".into())
        }
        Error::Io(IoError::Tls(t)) => Failure::TlsFailed(t.to_string()),
        // tokio-rustls reports handshake and certificate errors as I/O errors.
        Error::Io(IoError::Io(io))
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Failure::TlsFailed(io.to_string())
        }
        Error::Io(IoError::Io(io)) => Failure::Unreachable(io.to_string()),
        Error::Driver(d) => Failure::Rejected(d.to_string()),
        other => Failure::Unreachable(other.to_string()),
    }
}

/// A statement error; `secret_bearing` statements never show the server's message (a syntax
/// error quotes the statement, which holds a password or hash).
fn statement_error(
    login: &Login<'_>,
    what: &str,
    e: mysql_async::Error,
    secret_bearing: bool,
) -> TargetError {
    let scope = login.scope();
    match e {
        mysql_async::Error::Server(s) => {
            let msg = if secret_bearing {
                "(message withheld: it may quote the statement)".to_string()
            } else {
                s.message.clone()
            };
            let text = format!(
                "{scope}: {what} failed: {msg} [error {}, SQLSTATE {}]",
                s.code, s.state
            );
            match s.code {
                // ER_SPECIFIC_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR,
                // ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR,
                // ER_ACCESS_DENIED_ERROR, ER_PASSWORD_NOT_ALLOWED, ER_CANT_CREATE_USER_WITH_GRANT
                1227 | 1044 | 1142 | 1143 | 1045 | 1131 | 1132 | 1410 => {
                    TargetError::PermissionDenied(text)
                }
                // ER_NOT_VALID_PASSWORD (validate_password / simple_password_check)
                1819 => TargetError::Rejected(format!(
                    "{text}; the server's password policy refused the generated password — \
                     adjust the tags keyroll:password-length / keyroll:exclude-characters"
                )),
                _ => TargetError::Rejected(text),
            }
        }
        other => TargetError::Unreachable(format!("{scope}: {what}: {other}")),
    }
}

/// What a session reports about itself.
struct SessionInfo {
    current_user: String,
    flavor: Flavor,
    mode: Backslash,
}

impl Mysql {
    /// Runs `sql` (possibly several statements) and returns every result set.
    async fn sets(
        conn: &mut MyConn,
        io: &Io<'_>,
        login: &Login<'_>,
        what: &str,
        sql: &str,
        secret_bearing: bool,
    ) -> Result<Vec<Vec<Row>>, TargetError> {
        io.stats.round_trip();
        let err = |e| statement_error(login, what, e, secret_bearing);
        let mut result = conn.conn.query_iter(sql).await.map_err(err)?;
        let mut sets = Vec::new();
        loop {
            let rows: Vec<Row> = result.collect().await.map_err(err)?;
            sets.push(rows);
            if result.is_empty() {
                break;
            }
        }
        Ok(sets)
    }

    async fn exec(
        conn: &mut MyConn,
        io: &Io<'_>,
        login: &Login<'_>,
        what: &str,
        sql: &str,
        secret_bearing: bool,
    ) -> Result<(), TargetError> {
        io.stats.round_trip();
        conn.conn
            .query_drop(sql)
            .await
            .map_err(|e| statement_error(login, what, e, secret_bearing))
    }

    fn session_info(login: &Login<'_>, row: Option<&Row>) -> Result<SessionInfo, TargetError> {
        let row = row.ok_or_else(|| {
            TargetError::Rejected(format!(
                "{}: SELECT CURRENT_USER() returned nothing",
                login.scope()
            ))
        })?;
        Ok(SessionInfo {
            current_user: text(row, 0).unwrap_or_default(),
            flavor: Flavor::parse(&text(row, 1).unwrap_or_default()),
            mode: Backslash::from_sql_mode(&text(row, 2).unwrap_or_default()),
        })
    }

    /// The host part of the account the session matched, checking its user part is the
    /// secret's user (not an anonymous or proxied account).
    fn account_host(login: &Login<'_>, current_user: &str) -> Result<String, TargetError> {
        current_user
            .strip_prefix(login.user)
            .and_then(|rest| rest.strip_prefix('@'))
            .map(str::to_string)
            .ok_or_else(|| {
                TargetError::Rejected(format!(
                    "{}: the session matched the account {current_user:?}, not one of user {:?} \
                     (an anonymous or proxy account?); refusing to act on another account",
                    login.scope(),
                    login.user
                ))
            })
    }

    fn options_of(row: &Row) -> AccountOptions {
        let num = |i| {
            text(row, i)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        };
        AccountOptions {
            ssl_type: text(row, 3).unwrap_or_default(),
            ssl_cipher: text(row, 4).unwrap_or_default(),
            x509_issuer: text(row, 5).unwrap_or_default(),
            x509_subject: text(row, 6).unwrap_or_default(),
            max_questions: num(7).max(0) as u64,
            max_updates: num(8).max(0) as u64,
            max_connections: num(9).max(0) as u64,
            max_user_connections: num(10),
        }
    }

    /// `SELECT` of both accounts' rows of `mysql.user` (user, plugin, TLS, limits).
    fn accounts_query(plan: &ClonePlan<'_>, host: &str) -> String {
        format!(
            "SELECT User, Host, plugin, ssl_type, ssl_cipher, x509_issuer, x509_subject, \
             max_questions, max_updates, max_connections, max_user_connections \
             FROM mysql.user WHERE Host = {} AND User IN ({}, {})",
            sql::hex_literal(host),
            sql::hex_literal(plan.original),
            sql::hex_literal(plan.clone)
        )
    }
}

/// The statement run at the start of every session keyroll opens: no lock is waited for,
/// and (MariaDB, in an executable comment MySQL skips) no statement runs, longer than
/// `limit` (whole seconds, at least 1).
pub fn session_limits(limit: std::time::Duration) -> String {
    let secs = limit.as_secs().max(1);
    format!("SET SESSION lock_wait_timeout = {secs} /*M!, max_statement_time = {secs} */")
}

#[async_trait]
impl Dialect for Mysql {
    type Conn = MyConn;

    fn name(&self) -> &'static str {
        "mysql"
    }

    async fn connect(
        &self,
        io: &Io<'_>,
        login: &Login<'_>,
        tls: TlsAttempt,
    ) -> Result<MyConn, Failure> {
        let ssl = match &tls {
            TlsAttempt::Off => None,
            TlsAttempt::Prefer(t) | TlsAttempt::Require(t) => {
                // With no system roots, mysql_async's built-in webpki roots stay on.
                let own_roots = !t.root_ders.is_empty();
                Some(
                    SslOpts::default()
                        .with_disable_built_in_roots(own_roots)
                        .with_root_certs(
                            t.root_ders
                                .iter()
                                .map(|d| d.as_ref().to_vec().into())
                                .collect(),
                        ),
                )
            }
        };
        let uses_tls = ssl.is_some();
        let opts = OptsBuilder::default()
            .ip_or_hostname(login.host.to_string())
            .tcp_port(login.port)
            .user(Some(login.user.to_string()))
            .pass(Some(login.password.expose_secret().to_string()))
            .db_name(login.dbname.map(str::to_string))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .max_allowed_packet(Some(16 * 1024 * 1024))
            .wait_timeout(Some(28_800))
            .init(vec![session_limits(io.cfg.statement_timeout)])
            .ssl_opts(ssl);
        // A refused login is tried once more: mysql_async drops a trailing zero byte of the
        // 32-byte nonce MariaDB's ed25519 plugin sends, so about one ed25519 login in 256 is
        // refused with the right password (a fresh nonce then succeeds).
        let mut refusals = 0;
        loop {
            io.stats.connection();
            match Conn::new(opts.clone()).await {
                Ok(conn) => {
                    io.stats.login(uses_tls);
                    return Ok(MyConn { conn });
                }
                Err(e) => {
                    let f = classify(e);
                    if matches!(f, Failure::Auth(_)) {
                        io.stats.auth_failure();
                        refusals += 1;
                        if refusals < 2 {
                            continue;
                        }
                    }
                    return Err(f);
                }
            }
        }
    }

    async fn close(&self, conn: MyConn) {
        let _ = conn.conn.disconnect().await;
    }

    async fn change_own_password(
        &self,
        conn: &mut MyConn,
        io: &Io<'_>,
        login: &Login<'_>,
        new: &SecretString,
    ) -> Result<(), TargetError> {
        let sets = Self::sets(
            conn,
            io,
            login,
            "reading the session's account",
            "SELECT CURRENT_USER(), VERSION(), @@SESSION.sql_mode; SHOW CREATE USER CURRENT_USER",
            false,
        )
        .await?;
        let info = Self::session_info(login, sets.first().and_then(|s| s.first()))?;
        let host = Self::account_host(login, &info.current_user)?;
        let create = sets
            .get(1)
            .and_then(|s| s.first())
            .and_then(|r| text(r, 0))
            .unwrap_or_default();
        let methods = sql::auth_methods(&create);
        let acct = sql::account(login.user, &host)?;
        let stmt = sql::set_password_statement(info.flavor, &acct, &methods, new, info.mode)?;
        Self::exec(conn, io, login, "changing the password", &stmt, true).await?;
        tracing::info!(scope = %login.scope(), account = %acct, "password changed");
        Ok(())
    }

    async fn probe(
        &self,
        conn: &mut MyConn,
        io: &Io<'_>,
        login: &Login<'_>,
        _plan: Option<&ClonePlan<'_>>,
    ) -> Result<ProbeInfo, TargetError> {
        let sets = Self::sets(
            conn,
            io,
            login,
            "SELECT CURRENT_USER()",
            "SELECT CURRENT_USER(), VERSION(), @@SESSION.sql_mode",
            false,
        )
        .await?;
        let info = Self::session_info(login, sets.first().and_then(|s| s.first()))?;
        let host = Self::account_host(login, &info.current_user)?;
        Ok(ProbeInfo {
            account_host: Some(host),
            clone_checked: false,
        })
    }

    async fn apply_as_master(
        &self,
        conn: &mut MyConn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: &ClonePlan<'_>,
    ) -> Result<(), TargetError> {
        let host = plan.account_host.unwrap_or("%");
        let original = sql::account(plan.original, host)?;
        let clone = sql::account(plan.clone, host)?;
        let pending = sql::account(plan.pending, host)?;
        let inspect = format!(
            "SELECT CURRENT_USER(), VERSION(), @@SESSION.sql_mode; {}; SHOW GRANTS FOR {original}; \
             SHOW CREATE USER {original}",
            Self::accounts_query(plan, host)
        );
        let sets = Self::sets(
            conn,
            io,
            login,
            "reading the original account",
            &inspect,
            false,
        )
        .await?;
        let info = Self::session_info(login, sets.first().and_then(|s| s.first()))?;
        let rows = sets.get(1).map(Vec::as_slice).unwrap_or_default();
        let row_of = |u: &str| rows.iter().find(|r| text(r, 0).as_deref() == Some(u));
        let Some(orig_row) = row_of(plan.original) else {
            return Err(TargetError::Rejected(format!(
                "{}: the account {original} does not exist",
                login.scope()
            )));
        };
        let grants: Vec<String> = sets
            .get(2)
            .map(|s| s.iter().filter_map(|r| text(r, 0)).collect())
            .unwrap_or_default();
        let orig_methods = sql::auth_methods(
            &sets
                .get(3)
                .and_then(|s| s.first())
                .and_then(|r| text(r, 0))
                .unwrap_or_default(),
        );
        let clone_exists = row_of(plan.clone).is_some();
        // The pending user's password, keeping its plugin (a new clone takes the original's).
        let stmt = if plan.pending == plan.clone && !clone_exists {
            sql::create_user_statement(
                info.flavor,
                &pending,
                &orig_methods,
                plan.password,
                info.mode,
            )?
        } else {
            let plugins = if plan.pending == plan.original {
                orig_methods.clone()
            } else {
                row_of(plan.clone)
                    .and_then(|r| text(r, 2))
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        vec![sql::AuthMethod {
                            plugin: p.to_ascii_lowercase(),
                            using: None,
                        }]
                    })
                    .unwrap_or_else(|| orig_methods.clone())
            };
            sql::set_password_statement(info.flavor, &pending, &plugins, plan.password, info.mode)?
        };
        Self::exec(
            conn,
            io,
            login,
            "setting the pending user's password",
            &stmt,
            true,
        )
        .await?;
        // The clone gets the original's privileges, TLS requirement and limits.
        let mut batch: Vec<String> = sql::grants_to_replay(&grants)
            .iter()
            .map(|g| g.for_account(&clone))
            .collect();
        batch.push(Self::options_of(orig_row).alter_statement(&clone, info.mode)?);
        Self::exec(
            conn,
            io,
            login,
            "giving the clone the original's privileges",
            &batch.join("; "),
            false,
        )
        .await?;
        tracing::info!(scope = %login.scope(), user = plan.pending, created = !clone_exists, grants = batch.len() - 1, "pending user's password set");
        Ok(())
    }

    async fn check_clone_as_master(
        &self,
        conn: &mut MyConn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: &ClonePlan<'_>,
    ) -> Result<(), TargetError> {
        let host = plan.account_host.unwrap_or("%");
        let original = sql::account(plan.original, host)?;
        let clone = sql::account(plan.clone, host)?;
        let q = format!(
            "{}; SHOW GRANTS FOR {original}; SHOW GRANTS FOR {clone}",
            Self::accounts_query(plan, host)
        );
        let sets = Self::sets(conn, io, login, "reading both accounts' grants", &q, false).await?;
        let lines = |i: usize| -> Vec<String> {
            sets.get(i)
                .map(|s| s.iter().filter_map(|r| text(r, 0)).collect())
                .unwrap_or_default()
        };
        let have: std::collections::BTreeSet<Grant> =
            sql::grants_to_replay(&lines(2)).into_iter().collect();
        let missing: Vec<String> = sql::grants_to_replay(&lines(1))
            .into_iter()
            .filter(|g| !have.contains(g))
            .map(|g| g.for_account(&clone))
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::TestFailed(format!(
                "{}: {clone} lacks privileges of {original}: {}",
                login.scope(),
                missing.join("; ")
            )));
        }
        let rows = sets.first().map(Vec::as_slice).unwrap_or_default();
        let opts = |u: &str| {
            rows.iter()
                .find(|r| text(r, 0).as_deref() == Some(u))
                .map(Self::options_of)
        };
        if opts(plan.original) != opts(plan.clone) {
            return Err(TargetError::TestFailed(format!(
                "{}: {clone} does not have the TLS requirement and resource limits of {original}",
                login.scope()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod session_tests {
    use super::*;

    #[test]
    fn sessions_are_bounded() {
        use std::time::Duration;
        assert_eq!(
            session_limits(Duration::from_millis(30_500)),
            "SET SESSION lock_wait_timeout = 30 /*M!, max_statement_time = 30 */"
        );
        assert_eq!(
            session_limits(Duration::ZERO),
            "SET SESSION lock_wait_timeout = 1 /*M!, max_statement_time = 1 */"
        );
    }
}
