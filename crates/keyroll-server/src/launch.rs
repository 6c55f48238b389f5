//! Starting `keyroll serve` from a data directory: configuration, access keys (generating
//! the admin key file on first start), the embedded store, the listener and the scheduler.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyroll_core::time::{Clock, SystemClock};
use keyroll_store::embedded::{EmbeddedStore, OpenOptions, StoreError};

use crate::audit::Audit;
use crate::config::{Config, ConfigError};
use crate::credentials::{CredentialsError, KeyStore, admin_key, credentials_path};
use crate::feed::{Feed, FeedRegions};
use crate::identity::{Principal, aws_shaped_key_id, configured_principals};
use crate::regions::MemoryRegions;
use crate::server::{App, RunningServer, ServerError, bind, start_with_metrics};

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7150";
/// Read from the data directory when no `--config` is given.
pub const CONFIG_FILE: &str = "keyroll.toml";

#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub data_dir: PathBuf,
    /// `--listen`; else the config file's `listen`; else [`DEFAULT_LISTEN`].
    pub listen: Option<String>,
    /// `--config`; else `<data-dir>/keyroll.toml` when it exists.
    pub config: Option<PathBuf>,
    /// Keep secrets in memory only.
    pub in_memory: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: PathBuf, source: StoreError },
    #[error("cannot create the data directory {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("notifications: {0} (fix the [notify] section or the KEYROLL_NOTIFY_* variables)")]
    Notify(#[from] keyroll_notify::NotifyConfigError),
    #[error(
        "cannot use the TLS certificate {cert} and key {key}: {message} (fix tls_cert / tls_key: \
         PEM files, the key unencrypted, matching the certificate)"
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error(
        "cannot open the audit trail in {dir}: {source} (fix the directory's ownership or \
         permissions, stop the other keyroll serve using this data directory, or — not \
         recommended — set [audit] enabled = false)"
    )]
    Audit {
        dir: PathBuf,
        source: keyroll_audit::AuditError,
    },
}

/// A started server, whichever store it runs on.
pub enum Launched {
    Embedded(RunningServer<FeedRegions<EmbeddedStore>>),
    Memory(RunningServer<FeedRegions<MemoryRegions>>),
}

/// What was started, for the start-up banner.
pub struct Started {
    pub server: Launched,
    /// The generated (or reused) admin credentials file, when keys do not come from the
    /// configuration.
    pub credentials_file: Option<PathBuf>,
    /// Whether the credentials file was created by this start.
    pub credentials_generated: bool,
    pub config_file: Option<PathBuf>,
}

impl Launched {
    pub fn url(&self) -> String {
        match self {
            Launched::Embedded(s) => s.url(),
            Launched::Memory(s) => s.url(),
        }
    }

    /// The API listener's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        match self {
            Launched::Embedded(s) => s.addr,
            Launched::Memory(s) => s.addr,
        }
    }

    /// Whether the API listener speaks HTTPS.
    pub fn tls(&self) -> bool {
        match self {
            Launched::Embedded(s) => s.app.tls.is_some(),
            Launched::Memory(s) => s.app.tls.is_some(),
        }
    }

    pub async fn shutdown(self) {
        match self {
            Launched::Embedded(s) => s.shutdown().await,
            Launched::Memory(s) => s.shutdown().await,
        }
    }
}

impl Started {
    /// The lines printed at start: where to connect and with which credentials.
    pub fn banner(&self) -> Vec<String> {
        let url = self.server.url();
        let mut lines = vec![format!("keyroll listening on {url}")];
        if !self.server.tls() && !loopback_only(self.server.addr()) {
            lines.push(
                "WARNING: plaintext HTTP on a non-loopback address — secret values cross the \
                 network unencrypted; set tls_cert and tls_key"
                    .into(),
            );
        }
        if let Some(f) = &self.config_file {
            lines.push(format!("configuration file: {}", f.display()));
        }
        match &self.credentials_file {
            Some(f) => {
                lines.push(format!(
                    "credentials file: {}{}",
                    f.display(),
                    if self.credentials_generated {
                        " (generated now; keep it safe)"
                    } else {
                        ""
                    }
                ));
                lines.push("use it with:".into());
                lines.push(format!(
                    "  export AWS_SHARED_CREDENTIALS_FILE={} AWS_DEFAULT_REGION=us-east-1",
                    f.display()
                ));
                lines.push(format!(
                    "  aws --endpoint-url {url} secretsmanager list-secrets"
                ));
            }
            None => {
                lines.push("access keys: from the configuration file ([[access_keys]])".to_string())
            }
        }
        lines
    }
}

fn load_config(opts: &LaunchOptions) -> Result<(Config, Option<PathBuf>), ConfigError> {
    if let Some(p) = &opts.config {
        return Ok((Config::load(p)?, Some(p.clone())));
    }
    let default = opts.data_dir.join(CONFIG_FILE);
    if default.exists() {
        return Ok((Config::load(&default)?, Some(default)));
    }
    Ok((Config::default(), None))
}

/// Creates the data directory, private to this user (as the embedded store would).
fn ensure_dir(dir: &Path) -> Result<(), LaunchError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| LaunchError::DataDir {
            dir: dir.into(),
            source,
        })?;
    Ok(())
}

/// Opens the audit trail in `DATA_DIR/audit` (where `keyroll audit verify|search` look).
fn open_audit(
    config: &Config,
    data_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Option<Arc<Audit>>, LaunchError> {
    if !config.audit.enabled {
        tracing::warn!(
            "the audit trail is off ([audit] enabled = false): API calls and rotations are \
             not recorded"
        );
        return Ok(None);
    }
    let dir = data_dir.join("audit");
    let options = keyroll_audit::AuditOptions {
        clock: Arc::new(AuditClock(clock)),
        flush_interval: std::time::Duration::from_millis(config.audit.flush_interval_ms.max(1)),
        account_id: config.account.clone(),
        region: String::new(),
    };
    let log = keyroll_audit::AuditLog::open(&dir, options)
        .map_err(|source| LaunchError::Audit { dir, source })?;
    Ok(Some(Arc::new(Audit::new(
        Arc::new(log),
        &config.account,
        &config.audit,
    ))))
}

/// The store's clock, for the audit trail's own records.
struct AuditClock(Arc<dyn Clock>);

impl keyroll_audit::Clock for AuditClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.now().to_datetime()
    }
}

fn with_audit<R: crate::Regions>(app: App<R>, audit: Option<Arc<Audit>>) -> Arc<App<R>> {
    let app = match audit {
        Some(a) => {
            a.service_event(
                app.clock.now(),
                "KeyrollStarted",
                "",
                None,
                serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "accessKeys": app.keys.len(),
                }),
            );
            app.with_audit(a)
        }
        None => app,
    };
    Arc::new(app)
}

/// The rustls configuration for `tls_cert` / `tls_key` (PEM: a certificate chain, and a
/// PKCS#8, PKCS#1 or SEC1 private key).
pub fn tls_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, LaunchError> {
    use tokio_rustls::rustls;
    let fail = |message: String| LaunchError::Tls {
        cert: cert.into(),
        key: key.into(),
        message,
    };
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| fail(format!("cannot read {}: {e}", p.display())));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("the certificate file is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(fail(
            "the certificate file holds no CERTIFICATE block".into(),
        ));
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| fail(format!("the key file is not PEM: {e}")))?
        .ok_or_else(|| fail("the key file holds no PRIVATE KEY block".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| fail(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Whether `addr` only accepts connections from this host.
fn loopback_only(addr: std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Starts the server described by `opts` (on the system clock).
pub async fn launch(opts: LaunchOptions) -> Result<Started, LaunchError> {
    launch_with_clock(opts, Arc::new(SystemClock)).await
}

/// Starts the server with an injected clock for the store and the scheduler.
pub async fn launch_with_clock(
    opts: LaunchOptions,
    clock: Arc<dyn Clock>,
) -> Result<Started, LaunchError> {
    let (config, config_file) = load_config(&opts)?;
    ensure_dir(&opts.data_dir)?;
    let base = config_file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let mut keys = configured_principals(&config, base.as_deref())?;
    for (k, _) in &keys {
        if !aws_shaped_key_id(&k.access_key_id) {
            tracing::warn!(
                access_key = %k.access_key_id,
                user = %k.name,
                "this access key id does not look like an AWS one (16+ upper-case letters and \
                 digits); it works, but AWS tools may refuse it elsewhere"
            );
        }
    }
    let (mut credentials_file, mut generated) = (None, false);
    if keys.is_empty() {
        let (k, fresh) = admin_key(&opts.data_dir)?;
        let principal = Arc::new(Principal::admin(&config.account, &k.name));
        keys.push((k, principal));
        credentials_file = Some(credentials_path(&opts.data_dir));
        generated = fresh;
    }
    let keys = KeyStore::with_principals(keys);
    let audit = open_audit(&config, &opts.data_dir, clock.clone())?;
    let sts = crate::sts::Sts::from_config(&config, base.as_deref())?;
    let notifier = keyroll_notify::Notifier::from_config(&config.notify.clone().with_env()?)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let listen = opts.listen.clone().or_else(|| config.listen.clone());
    let listener = bind(listen.as_deref().unwrap_or(DEFAULT_LISTEN)).await?;
    let local = listener.local_addr().map_err(ServerError::LocalAddr)?;
    if tls.is_none() && !loopback_only(local) {
        tracing::warn!(
            listen = %local,
            "!!! PLAINTEXT ON A NON-LOOPBACK ADDRESS: secret values and signed requests cross \
             the network unencrypted. Set tls_cert and tls_key in keyroll.toml, or listen on \
             127.0.0.1 behind a TLS-terminating proxy !!!"
        );
    }
    let metrics_listener = match &config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    if config.metrics_listen.is_none() && config.metrics_token.is_none() && !loopback_only(local) {
        tracing::warn!(
            listen = %local,
            "GET /metrics is open to anyone who can reach this address: set metrics_listen \
             (e.g. 127.0.0.1:7151) or metrics_token"
        );
    }
    let server = if opts.in_memory {
        let feed = Arc::new(Feed::default());
        let regions = FeedRegions::new(
            MemoryRegions::new(config.account.clone(), clock.clone()),
            feed.clone(),
        );
        let mut app = App::with_keys(regions, config, keys, clock)
            .with_feed(feed)
            .with_notifier(notifier)
            .with_sts(sts);
        if let Some(t) = tls {
            app = app.with_tls(t);
        }
        let app = with_audit(app, audit);
        Launched::Memory(start_with_metrics(app, listener, metrics_listener, true)?)
    } else {
        let store = EmbeddedStore::open(
            OpenOptions::new(&opts.data_dir)
                .account(config.account.clone())
                .clock(clock.clone()),
        )
        .map_err(|source| LaunchError::Store {
            dir: opts.data_dir.clone(),
            source,
        })?;
        let feed = Arc::new(Feed::default());
        let mut app = App::with_keys(FeedRegions::new(store, feed.clone()), config, keys, clock)
            .with_feed(feed)
            .with_notifier(notifier)
            .with_sts(sts);
        if let Some(t) = tls {
            app = app.with_tls(t);
        }
        let app = with_audit(app, audit);
        Launched::Embedded(start_with_metrics(app, listener, metrics_listener, true)?)
    };
    Ok(Started {
        server,
        credentials_file,
        credentials_generated: generated,
        config_file,
    })
}
