//! Database targets: the rotation strategies of AWS's RDS functions, written once over a
//! [`Dialect`] (PostgreSQL in [`crate::postgres`], MySQL and MariaDB in [`crate::mysql`]).
//!
//! - **Single user** (no `masterarn`): `setSecret` logs in with `AWSCURRENT` and changes the
//!   user's own password. Only when that login is refused does it try `AWSPENDING` (a crashed
//!   earlier run already set it: done) and then `AWSPREVIOUS` (same user and server only).
//!   `testSecret` logs in with `AWSPENDING`. Two connections per rotation when nothing fails.
//! - **Alternating users** (`masterarn`): the pending user is the current one with `_clone`
//!   added or removed. `setSecret` first proves the `AWSCURRENT` credentials genuine by
//!   logging in with them, checks that the master secret is for the same server (AWS's
//!   confused-deputy guard), then with the master's credentials creates the clone on first
//!   use, sets the pending user's password and gives the clone the original's privileges.
//!   `testSecret` logs in as the pending user and checks the clone's privileges.

pub mod secret;
pub(crate) mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use keyroll_core::model::Step;
use keyroll_core::password::PasswordPolicy;
use keyroll_core::ports::{StepContext, Target, TargetError};
use keyroll_core::value::SecretValue;
use secrecy::SecretString;

use crate::TargetConfig;
use secret::{CLONE_SUFFIX, endpoint};
pub use secret::{DbSecret, Engine, Family, SslMode, alternate_username};
use tls::TlsSetup;

/// Counters of what a database target did, for benchmarks and tests.
#[derive(Debug, Default)]
pub struct DbStats {
    connections: AtomicU64,
    logins: AtomicU64,
    tls_logins: AtomicU64,
    auth_failures: AtomicU64,
    round_trips: AtomicU64,
}

/// A copy of [`DbStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// TCP connections opened (a refused TLS attempt followed by plaintext counts twice).
    pub connections: u64,
    /// Sessions that authenticated.
    pub logins: u64,
    /// Of those, sessions that used TLS.
    pub tls_logins: u64,
    /// Logins the server refused.
    pub auth_failures: u64,
    /// Statements sent after logging in (a multi-statement batch counts once).
    pub round_trips: u64,
}

impl std::ops::Sub for StatsSnapshot {
    type Output = StatsSnapshot;
    fn sub(self, o: StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            connections: self.connections - o.connections,
            logins: self.logins - o.logins,
            tls_logins: self.tls_logins - o.tls_logins,
            auth_failures: self.auth_failures - o.auth_failures,
            round_trips: self.round_trips - o.round_trips,
        }
    }
}

impl DbStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections: self.connections.load(Ordering::Relaxed),
            logins: self.logins.load(Ordering::Relaxed),
            tls_logins: self.tls_logins.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            round_trips: self.round_trips.load(Ordering::Relaxed),
        }
    }
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn login(&self, tls: bool) {
        self.logins.fetch_add(1, Ordering::Relaxed);
        if tls {
            self.tls_logins.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whom to log in as, where, and how.
pub(crate) struct Login<'a> {
    pub engine: Engine,
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a SecretString,
    pub dbname: Option<&'a str>,
    pub ssl: SslMode,
    /// Whose credentials these are, for messages: `AWSCURRENT`, `AWSPENDING`, ...
    pub label: &'a str,
    pub step: Step,
}

impl<'a> Login<'a> {
    fn of(s: &'a DbSecret, label: &'a str, step: Step) -> Login<'a> {
        Login {
            engine: s.engine,
            host: &s.host,
            port: s.port,
            user: &s.username,
            password: s.password(),
            dbname: s.dbname.as_deref(),
            ssl: s.ssl,
            label,
            step,
        }
    }

    /// `<step>: <engine> at <host:port> as user "<user>"` — the start of every message.
    pub fn scope(&self) -> String {
        format!(
            "{}: {} at {} as user {:?}",
            self.step,
            self.engine,
            endpoint(self.host, self.port),
            self.user
        )
    }
}

/// How a connection attempt uses TLS.
pub(crate) enum TlsAttempt {
    Off,
    /// Use TLS if the server offers it; a server that does not is a
    /// [`Failure::TlsNotOffered`] (PostgreSQL continues in plaintext on the same connection
    /// instead).
    Prefer(Arc<TlsSetup>),
    Require(Arc<TlsSetup>),
}

/// The TLS mode a login uses: the secret's, made `Require` by the operator's `require_tls`,
/// which also refuses a secret's explicit `"ssl": false`.
pub(crate) fn effective_ssl(secret: SslMode, require_tls: bool) -> Result<SslMode, String> {
    match (secret, require_tls) {
        (SslMode::Disable, true) => Err("the secret says \"ssl\": false but require_tls \
             forbids plaintext; remove \"ssl\" (or set it to true) and enable TLS on the \
             server, or turn require_tls off"
            .into()),
        (_, true) => Ok(SslMode::Require),
        (mode, false) => Ok(mode),
    }
}

/// Why a login did not happen.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server refused the credentials.
    Auth(String),
    /// The server does not offer TLS at all (the only case where a secret without `"ssl"`
    /// may go on in plaintext).
    TlsNotOffered(String),
    /// TLS was offered but failed: handshake or certificate verification. Never followed
    /// by a plaintext attempt — that is what an attacker in the middle would provoke.
    TlsFailed(String),
    /// The server could not be reached or did not answer.
    Unreachable(String),
    /// The server refused the session for another reason (unknown database, ...).
    Rejected(String),
    /// keyroll's own configuration is wrong.
    Config(TargetError),
}

impl Failure {
    fn into_error(self, login: &Login<'_>) -> TargetError {
        let scope = login.scope();
        let label = login.label;
        match self {
            Failure::Auth(m) => TargetError::AuthenticationFailed(format!(
                "{scope}: the {label} credentials were refused ({m})"
            )),
            Failure::TlsNotOffered(m) | Failure::TlsFailed(m) if login.ssl == SslMode::Require => {
                TargetError::Unreachable(format!(
                    "{scope}: no verified TLS session ({m}); the secret's \"ssl\": true forbids \
                     plaintext (as does require_tls) — enable TLS on the server, trust its CA \
                     (CA bundle setting), or set \"ssl\": false"
                ))
            }
            Failure::TlsFailed(m) => TargetError::Unreachable(format!(
                "{scope}: TLS failed ({m}); keyroll does not retry in plaintext after a failed \
                 handshake — trust the server's CA (CA bundle setting), fix its certificate, or \
                 set \"ssl\": false in the secret if plaintext is really meant"
            )),
            Failure::TlsNotOffered(m) => {
                TargetError::Unreachable(format!("{scope}: TLS failed ({m})"))
            }
            Failure::Unreachable(m) => {
                TargetError::Unreachable(format!("{scope}: cannot connect ({m})"))
            }
            Failure::Rejected(m) => TargetError::Rejected(format!(
                "{scope}: the server refused the {label} session ({m})"
            )),
            Failure::Config(e) => e,
        }
    }
}

/// What a probe learned about the session.
#[derive(Debug, Default)]
pub(crate) struct ProbeInfo {
    /// MySQL/MariaDB: the host part of the account the session matched (`CURRENT_USER()`).
    pub account_host: Option<String>,
    /// The clone's privileges were checked in this session.
    pub clone_checked: bool,
}

/// The pair of users of the alternating-users strategy, and what to set.
pub(crate) struct ClonePlan<'a> {
    /// The user without the suffix: the source of privileges.
    pub original: &'a str,
    /// The user with the suffix.
    pub clone: &'a str,
    /// The user whose password is being set (one of the two).
    pub pending: &'a str,
    pub password: &'a SecretString,
    /// MySQL/MariaDB: the host part of both accounts.
    pub account_host: Option<&'a str>,
}

/// Per-step services handed to a dialect.
pub(crate) struct Io<'a> {
    pub stats: &'a DbStats,
    pub cfg: &'a TargetConfig,
    tls: &'a OnceLock<Result<Arc<TlsSetup>, String>>,
}

impl Io<'_> {
    fn tls(&self) -> Result<Arc<TlsSetup>, TargetError> {
        self.tls
            .get_or_init(|| {
                TlsSetup::load(self.cfg.ca_bundle.as_deref())
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(TargetError::Misconfigured)
    }
}

/// What a database engine must provide to the strategies.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + 'static {
    type Conn: Send;

    fn name(&self) -> &'static str;

    /// One connection attempt (counted in `io.stats`).
    async fn connect(
        &self,
        io: &Io<'_>,
        login: &Login<'_>,
        tls: TlsAttempt,
    ) -> Result<Self::Conn, Failure>;

    async fn close(&self, conn: Self::Conn);

    /// Single user: the session's own account gets `new` as its password.
    async fn change_own_password(
        &self,
        conn: &mut Self::Conn,
        io: &Io<'_>,
        login: &Login<'_>,
        new: &SecretString,
    ) -> Result<(), TargetError>;

    /// A query proving the session works; with a plan, also checks the clone's privileges
    /// when the session can see them.
    async fn probe(
        &self,
        conn: &mut Self::Conn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: Option<&ClonePlan<'_>>,
    ) -> Result<ProbeInfo, TargetError>;

    /// Alternating users, in the master's session: create the clone if needed, set the
    /// pending user's password, give the clone the original's privileges.
    async fn apply_as_master(
        &self,
        conn: &mut Self::Conn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: &ClonePlan<'_>,
    ) -> Result<(), TargetError>;

    /// Alternating users, in the master's session: the clone holds the original's
    /// privileges.
    async fn check_clone_as_master(
        &self,
        conn: &mut Self::Conn,
        io: &Io<'_>,
        login: &Login<'_>,
        plan: &ClonePlan<'_>,
    ) -> Result<(), TargetError>;
}

/// A database target: the strategies over one dialect.
pub struct DbTarget<D> {
    dialect: D,
    cfg: TargetConfig,
    stats: Arc<DbStats>,
    tls: OnceLock<Result<Arc<TlsSetup>, String>>,
}

// `Dialect` is sealed (crate-private): only this crate's engines implement it.
#[allow(private_bounds)]
impl<D: Dialect> DbTarget<D> {
    pub(crate) fn with_dialect(dialect: D, cfg: TargetConfig) -> Self {
        DbTarget {
            dialect,
            cfg,
            stats: Arc::new(DbStats::default()),
            tls: OnceLock::new(),
        }
    }

    /// What this target has done so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    fn io(&self) -> Io<'_> {
        Io {
            stats: &self.stats,
            cfg: &self.cfg,
            tls: &self.tls,
        }
    }

    /// Opens a session: TLS as the secret's `ssl` says, within the connect timeout.
    async fn open(&self, io: &Io<'_>, login: &Login<'_>) -> Result<D::Conn, Failure> {
        let attempt = |tls: TlsAttempt| async move {
            let timeout = io.cfg.connect_timeout;
            match tokio::time::timeout(timeout, self.dialect.connect(io, login, tls)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Unreachable(format!(
                    "no session within the connect timeout of {timeout:?}"
                ))),
            }
        };
        let tls = |io: &Io<'_>| io.tls().map_err(Failure::Config);
        match effective_ssl(login.ssl, io.cfg.require_tls).map_err(|e| {
            Failure::Config(TargetError::InvalidSecret(format!(
                "{}: {e}",
                login.scope()
            )))
        })? {
            SslMode::Disable => attempt(TlsAttempt::Off).await,
            SslMode::Require => attempt(TlsAttempt::Require(tls(io)?)).await,
            SslMode::Prefer => match attempt(TlsAttempt::Prefer(tls(io)?)).await {
                // Only a server without TLS at all; never after a failed handshake.
                Err(Failure::TlsNotOffered(why)) => {
                    tracing::warn!(
                        scope = %login.scope(),
                        reason = %why,
                        "no TLS; falling back to plaintext because the secret has no \"ssl\" \
                         field (set \"ssl\": true to forbid this)"
                    );
                    attempt(TlsAttempt::Off).await
                }
                r => r,
            },
        }
    }

    async fn open_or_fail(&self, io: &Io<'_>, login: &Login<'_>) -> Result<D::Conn, TargetError> {
        self.open(io, login).await.map_err(|f| f.into_error(login))
    }

    fn policy(&self, ctx: &StepContext<'_>, engine: Engine) -> Result<PasswordPolicy, TargetError> {
        let mut base = engine.default_policy();
        if let Some(n) = self.cfg.password_length {
            base.length = n;
        }
        if let Some(x) = &self.cfg.exclude_characters {
            base.exclude_characters = x.clone();
        }
        crate::none::policy_from_tags(ctx, base)
    }

    fn check_family(&self, s: &DbSecret, what: &str) -> Result<(), TargetError> {
        let want = match self.dialect.name() {
            "postgres" => Family::Postgres,
            _ => Family::Mysql,
        };
        if s.engine.family() != want {
            return Err(TargetError::InvalidSecret(format!(
                "{what} has engine {}, but this rotation runs the {} target; keep the engine \
                 of every version (and of the master secret) in one family",
                s.engine,
                self.dialect.name()
            )));
        }
        Ok(())
    }

    async fn secrets(&self, ctx: &StepContext<'_>) -> Result<(DbSecret, DbSecret), TargetError> {
        let name = &ctx.description.name;
        let current = DbSecret::parse(
            &ctx.current().await?.value,
            &format!("the AWSCURRENT version of {name}"),
        )?;
        let pending = DbSecret::parse(
            &ctx.pending().await?.value,
            &format!("the pending version {} of {name}", ctx.token),
        )?;
        self.check_family(&current, &format!("the AWSCURRENT version of {name}"))?;
        self.check_family(&pending, &format!("the pending version of {name}"))?;
        Ok((current, pending))
    }

    async fn set_single(
        &self,
        ctx: &StepContext<'_>,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), TargetError> {
        let io = self.io();
        let step = ctx.step;
        if pending.username != current.username {
            return Err(TargetError::InvalidSecret(format!(
                "{step}: the pending version is for user {:?} but AWSCURRENT is for user {:?}; \
                 single-user rotation only changes the current user's password",
                pending.username, current.username
            )));
        }
        if !pending.same_server(current) {
            return Err(TargetError::InvalidSecret(format!(
                "{step}: the pending version is for {} but AWSCURRENT is for {}; a rotation \
                 never moves a user to another server",
                pending.endpoint(),
                current.endpoint()
            )));
        }
        let new = pending.password();
        // The normal case: AWSCURRENT logs in and changes its own password.
        let cur_login = Login::of(current, "AWSCURRENT", step);
        let cur_refusal = match self.open(&io, &cur_login).await {
            Ok(mut conn) => {
                let r = self
                    .dialect
                    .change_own_password(&mut conn, &io, &cur_login, new)
                    .await;
                self.dialect.close(conn).await;
                return r;
            }
            Err(Failure::Auth(m)) => m,
            Err(f) => return Err(f.into_error(&cur_login)),
        };
        // A crashed earlier run may already have set the pending password.
        let pend_login = Login::of(pending, "AWSPENDING", step);
        match self.open(&io, &pend_login).await {
            Ok(conn) => {
                self.dialect.close(conn).await;
                tracing::info!(scope = %pend_login.scope(), "the pending password is already set");
                return Ok(());
            }
            Err(Failure::Auth(_)) => {}
            Err(f) => return Err(f.into_error(&pend_login)),
        }
        // The password may have been put back to the previous one (e.g. a restore).
        let mut tried = "AWSCURRENT and AWSPENDING";
        if let Some(prev) = ctx.previous().await? {
            match DbSecret::parse(
                &prev.value,
                &format!("the AWSPREVIOUS version of {}", ctx.description.name),
            ) {
                Ok(p) if p.username == pending.username && p.same_server(pending) => {
                    tried = "AWSCURRENT, AWSPENDING and AWSPREVIOUS";
                    // The previous password, with today's connection settings.
                    let prev_login = Login {
                        password: p.password(),
                        label: "AWSPREVIOUS",
                        ..Login::of(current, "AWSPREVIOUS", step)
                    };
                    match self.open(&io, &prev_login).await {
                        Ok(mut conn) => {
                            tracing::warn!(
                                scope = %prev_login.scope(),
                                "AWSCURRENT was refused but AWSPREVIOUS logs in: the password \
                                 was reset outside keyroll; setting the pending one"
                            );
                            let r = self
                                .dialect
                                .change_own_password(&mut conn, &io, &prev_login, new)
                                .await;
                            self.dialect.close(conn).await;
                            return r;
                        }
                        Err(Failure::Auth(_)) => {}
                        Err(f) => return Err(f.into_error(&prev_login)),
                    }
                }
                Ok(_) => tracing::info!("AWSPREVIOUS is for another user or server; not trying it"),
                Err(e) => tracing::info!(error = %e, "AWSPREVIOUS is not usable; not trying it"),
            }
        }
        Err(TargetError::AuthenticationFailed(format!(
            "{}: the {tried} passwords were all refused ({cur_refusal}); the password was \
             changed outside keyroll. AWSCURRENT is unchanged. Set the user's password to the \
             AWSCURRENT value (or store the working password as a new AWSCURRENT version) and \
             rotate again",
            cur_login.scope()
        )))
    }

    /// Loads and checks the master secret (AWS's confused-deputy guard: it must be for the
    /// same server as the secret being rotated).
    async fn master(
        &self,
        ctx: &StepContext<'_>,
        current: &DbSecret,
    ) -> Result<DbSecret, TargetError> {
        let arn = current.masterarn.as_deref().unwrap_or_default();
        let what = format!(
            "the master secret {arn} (masterarn of {})",
            ctx.description.name
        );
        let v = ctx.other_secret(arn).await.map_err(|e| match e {
            TargetError::Store(s) => {
                TargetError::Misconfigured(format!("{}: cannot read {what}: {s}", ctx.step))
            }
            other => other,
        })?;
        let master = DbSecret::parse(&v.value, &what)?;
        self.check_family(&master, &what)?;
        if !master.same_server(current) {
            return Err(TargetError::Misconfigured(format!(
                "{}: {what} is for {}, but the secret being rotated is for {}; keyroll uses a \
                 master secret only on its own server (confused-deputy guard)",
                ctx.step,
                master.endpoint(),
                current.endpoint()
            )));
        }
        Ok(master)
    }

    fn plan<'a>(
        current: &'a DbSecret,
        pending: &'a DbSecret,
        account_host: Option<&'a str>,
    ) -> ClonePlan<'a> {
        let (original, clone) = if pending.username.ends_with(CLONE_SUFFIX) {
            (current.username.as_str(), pending.username.as_str())
        } else {
            (pending.username.as_str(), current.username.as_str())
        };
        ClonePlan {
            original,
            clone,
            pending: &pending.username,
            password: pending.password(),
            account_host,
        }
    }

    fn master_login<'a>(master: &'a DbSecret, current: &'a DbSecret, step: Step) -> Login<'a> {
        Login {
            // The master logs in to the database of the user being rotated (as AWS's
            // functions do).
            dbname: current.dbname.as_deref(),
            ..Login::of(master, "master secret", step)
        }
    }

    async fn set_alternating(
        &self,
        ctx: &StepContext<'_>,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(), TargetError> {
        let io = self.io();
        let step = ctx.step;
        let expected = alternate_username(&current.username, current.engine)?;
        if pending.username != expected {
            return Err(TargetError::InvalidSecret(format!(
                "{step}: the pending version is for user {:?}, but alternating users only \
                 switch between {:?} and {expected:?}",
                pending.username, current.username
            )));
        }
        if !pending.same_server(current) {
            return Err(TargetError::InvalidSecret(format!(
                "{step}: the pending version is for {} but AWSCURRENT is for {}",
                pending.endpoint(),
                current.endpoint()
            )));
        }
        // The current credentials must be genuine before the master acts for them.
        let cur_login = Login::of(current, "AWSCURRENT", step);
        let mut conn = self.open(&io, &cur_login).await.map_err(|f| match f {
            Failure::Auth(m) => TargetError::AuthenticationFailed(format!(
                "{}: the AWSCURRENT credentials were refused ({m}); keyroll uses the master \
                 secret only for a user whose current credentials log in (confused-deputy \
                 guard). AWSCURRENT is unchanged: fix the user's password and rotate again",
                cur_login.scope()
            )),
            f => f.into_error(&cur_login),
        })?;
        let probed = self.dialect.probe(&mut conn, &io, &cur_login, None).await;
        self.dialect.close(conn).await;
        let info = probed?;
        let master = self.master(ctx, current).await?;
        let m_login = Self::master_login(&master, current, step);
        let plan = Self::plan(current, pending, info.account_host.as_deref());
        let mut conn = self.open_or_fail(&io, &m_login).await?;
        let r = self
            .dialect
            .apply_as_master(&mut conn, &io, &m_login, &plan)
            .await;
        self.dialect.close(conn).await;
        r
    }
}

#[async_trait]
impl<D: Dialect> Target for DbTarget<D> {
    fn name(&self) -> &str {
        self.dialect.name()
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        let name = &ctx.description.name;
        let what = format!("the AWSCURRENT version of {name}");
        let current = DbSecret::parse(&ctx.current().await?.value, &what)?;
        self.check_family(&current, &what)?;
        let user = match current.masterarn {
            Some(_) => alternate_username(&current.username, current.engine)?,
            None => current.username.clone(),
        };
        let policy = self.policy(ctx, current.engine)?;
        let password = ctx.random_password(&policy).await?;
        Ok(current.with_credentials(&user, &password))
    }

    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (current, pending) = self.secrets(ctx).await?;
        if current.masterarn.is_some() {
            self.set_alternating(ctx, &current, &pending).await
        } else {
            self.set_single(ctx, &current, &pending).await
        }
    }

    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (current, pending) = self.secrets(ctx).await?;
        let io = self.io();
        let login = Login::of(&pending, "AWSPENDING", ctx.step);
        let mut conn = self.open(&io, &login).await.map_err(|f| match f {
            Failure::Auth(m) => TargetError::TestFailed(format!(
                "{}: the pending credentials do not log in ({m})",
                login.scope()
            )),
            f => f.into_error(&login),
        })?;
        let alternating = current.masterarn.is_some() && current.username != pending.username;
        let plan = alternating.then(|| Self::plan(&current, &pending, None));
        let probed = self
            .dialect
            .probe(&mut conn, &io, &login, plan.as_ref())
            .await;
        self.dialect.close(conn).await;
        let info = probed?;
        if let Some(plan) = plan
            && !info.clone_checked
        {
            let plan = ClonePlan {
                account_host: info.account_host.as_deref(),
                ..plan
            };
            let master = self.master(ctx, &current).await?;
            let m_login = Self::master_login(&master, &current, ctx.step);
            let mut conn = self.open_or_fail(&io, &m_login).await?;
            let r = self
                .dialect
                .check_clone_as_master(&mut conn, &io, &m_login, &plan)
                .await;
            self.dialect.close(conn).await;
            r?;
        }
        Ok(())
    }
}

/// The connect timeout AWS's functions use, and keyroll's default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tls_mode_tests {
    use super::{SslMode, effective_ssl};

    #[test]
    fn require_tls_upgrades_and_refuses_plaintext() {
        assert_eq!(effective_ssl(SslMode::Prefer, false), Ok(SslMode::Prefer));
        assert_eq!(effective_ssl(SslMode::Disable, false), Ok(SslMode::Disable));
        assert_eq!(effective_ssl(SslMode::Prefer, true), Ok(SslMode::Require));
        assert_eq!(effective_ssl(SslMode::Require, true), Ok(SslMode::Require));
        assert!(
            effective_ssl(SslMode::Disable, true)
                .unwrap_err()
                .contains("require_tls")
        );
    }
}
