//! The HTTP side: a bounded accept loop over hyper's HTTP/1.1, `POST /` for the API (SigV4
//! verified first), `GET /health`, `GET /metrics`, and a graceful shutdown that lets running
//! rotations and in-flight requests finish.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use keyroll_core::time::{Clock, SystemClock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::credentials::{AccessKey, KeyStore};
use crate::dispatch::{self, Operation};
use crate::metrics::{Metrics, SecretGauge};
use crate::regions::{Regions, Store};
use crate::rotation::Rotations;
use crate::scheduler::Scheduler;
use crate::sigv4;
use crate::wire::{ApiError, error_response, json_response, request_id};

/// Everything a request or a rotation needs.
pub struct App<R: Regions> {
    pub store: Store<R>,
    pub keys: KeyStore,
    pub config: Config,
    pub metrics: Metrics,
    pub rotations: Rotations,
    /// The store's clock: schedules, deletion windows, rotation ages (injected in tests).
    pub clock: Arc<dyn Clock>,
    /// The clock requests' signatures are checked against.
    pub auth_clock: Arc<dyn Clock>,
    /// RotationSucceeded / RotationFailed after each rotation; never fails one.
    pub notifier: keyroll_notify::Notifier,
    /// Parsed resource policies, by text.
    pub policies: crate::authz::PolicyCache,
    /// The audit trail (`None`: not written, e.g. `[audit] enabled = false`).
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// STS: roles, the MFA reuse guard.
    pub sts: crate::sts::Sts,
    /// HTTPS on the API listener (`tls_cert`, `tls_key`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The change feed (`GET /keyroll/changes`); filled when the store is a
    /// [`crate::feed::FeedRegions`] sharing it (see [`App::with_feed`]).
    pub feed: Arc<crate::feed::Feed>,
    /// Bytes of request bodies buffered before their signatures are checked
    /// (`max_unauthenticated_bytes`).
    unauthenticated_bytes: Arc<Semaphore>,
    endpoint: OnceLock<String>,
}

impl<R: Regions> App<R> {
    pub fn new(regions: R, config: Config, keys: Vec<AccessKey>, clock: Arc<dyn Clock>) -> Self {
        let keys = KeyStore::admins(&config.account, keys);
        Self::with_keys(regions, config, keys, clock)
    }

    /// An app whose keys carry their principals (configured users with policies).
    pub fn with_keys(regions: R, config: Config, keys: KeyStore, clock: Arc<dyn Clock>) -> Self {
        let max = config.scheduler.max_concurrent;
        let sts = crate::sts::Sts::from_config_or_none(&config);
        let budget = config.max_unauthenticated_bytes.min(Semaphore::MAX_PERMITS);
        App {
            store: Store::new(regions),
            keys,
            config,
            metrics: Metrics::default(),
            rotations: Rotations::new(max),
            clock,
            auth_clock: Arc::new(SystemClock),
            notifier: keyroll_notify::Notifier::disabled(),
            policies: Default::default(),
            audit: None,
            sts,
            tls: None,
            feed: Arc::new(crate::feed::Feed::default()),
            unauthenticated_bytes: Arc::new(Semaphore::new(budget)),
            endpoint: OnceLock::new(),
        }
    }

    /// Sends rotation events through `notifier`.
    pub fn with_notifier(mut self, notifier: keyroll_notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Writes the audit trail.
    pub fn with_audit(mut self, audit: Arc<crate::audit::Audit>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// STS roles loaded with the configuration file's directory (for `file://` policies).
    pub fn with_sts(mut self, sts: crate::sts::Sts) -> Self {
        self.sts = sts;
        self
    }

    /// Serves `feed` on `GET /keyroll/changes` (the one the store's
    /// [`crate::feed::FeedRegions`] publishes to).
    pub fn with_feed(mut self, feed: Arc<crate::feed::Feed>) -> Self {
        self.feed = feed;
        self
    }

    /// Serves HTTPS with `tls` (see [`crate::launch::tls_config`]).
    pub fn with_tls(mut self, tls: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(tls));
        self
    }

    /// Checks signatures against another clock (tests of expired requests).
    pub fn with_auth_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.auth_clock = clock;
        self
    }

    /// The URL external rotation functions call back on.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .get()
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:7150".into())
    }

    /// The Prometheus exposition, including per-secret rotation ages.
    pub fn render_metrics(&self) -> String {
        let now = self.clock.now();
        let mut rows: Vec<(String, String, Option<f64>, bool, bool)> = Vec::new();
        if let Ok(regions) = self.store.all() {
            for (name, svc) in regions {
                let _ = keyroll_core::service::Backend::for_each(svc.backend(), &mut |r| {
                    if r.is_deleted() {
                        return;
                    }
                    let since = r.last_rotated.unwrap_or(r.created);
                    let age = (now.millis() - since.millis()) as f64 / 1000.0;
                    let failing = r
                        .rotation_status
                        .as_ref()
                        .is_some_and(|s| s.state == keyroll_core::model::RotationState::Failed);
                    rows.push((
                        name.clone(),
                        r.name.clone(),
                        Some(age),
                        r.rotation.enabled,
                        failing,
                    ));
                });
            }
        }
        let gauges: Vec<SecretGauge<'_>> = rows
            .iter()
            .map(|(region, name, age, enabled, failing)| SecretGauge {
                region,
                name,
                seconds_since_rotation: *age,
                rotation_enabled: *enabled,
                failing: *failing,
            })
            .collect();
        let mut text = self
            .metrics
            .render(&gauges, self.config.metrics_secret_labels);
        text.push_str(&self.notifier.metrics().render_prometheus());
        text
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read the listening socket's address: {0}")]
    LocalAddr(std::io::Error),
}

/// Binds `addr` (`127.0.0.1:0` picks a free port).
pub async fn bind(addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.into(),
            source,
        })
}

/// A server running in the background.
pub struct RunningServer<R: Regions> {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub app: Arc<App<R>>,
    pub scheduler: Option<Arc<Scheduler<R>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl<R: Regions> RunningServer<R> {
    pub fn url(&self) -> String {
        let scheme = if self.app.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting work and waits for in-flight requests and rotations.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts serving `app` on `listener`; with `scheduler`, also rotates secrets on schedule.
pub fn start<R: Regions>(
    app: Arc<App<R>>,
    listener: TcpListener,
    scheduler: bool,
) -> Result<RunningServer<R>, ServerError> {
    start_with_metrics(app, listener, None, scheduler)
}

/// [`start`], with `GET /metrics` served on `metrics` (`metrics_listen`) instead of the API
/// listener.
pub fn start_with_metrics<R: Regions>(
    app: Arc<App<R>>,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    scheduler: bool,
) -> Result<RunningServer<R>, ServerError> {
    let addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
    let metrics_addr = metrics
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(ServerError::LocalAddr)?;
    let scheme = if app.tls.is_some() { "https" } else { "http" };
    let callback = if addr.ip().is_unspecified() {
        if addr.is_ipv6() {
            format!("{scheme}://[::1]:{}", addr.port())
        } else {
            format!("{scheme}://127.0.0.1:{}", addr.port())
        }
    } else {
        format!("{scheme}://{addr}")
    };
    let _ = app.endpoint.set(callback);
    let (stop, stop_rx) = watch::channel(false);
    let sched = scheduler.then(|| Scheduler::new(app.clone()));
    if let Some(s) = &sched
        && app.config.scheduler.enabled
    {
        tokio::spawn(s.clone().run(stop_rx.clone()));
    }
    tokio::spawn(crate::sts::sessions::maintain(app.clone(), stop_rx.clone()));
    if let Some(m) = metrics {
        tokio::spawn(serve_metrics(app.clone(), m, stop_rx.clone()));
    }
    let task = tokio::spawn(serve(app.clone(), listener, stop_rx));
    Ok(RunningServer {
        addr,
        metrics_addr,
        app,
        scheduler: sched,
        stop,
        task,
    })
}

/// A connection as requests see it (a request extension).
#[derive(Clone)]
pub struct ConnInfo {
    /// The connection is TLS (`aws:SecureTransport`).
    pub secure: bool,
    slot: Arc<Slot>,
    pending: Arc<Pending>,
}

impl ConnInfo {
    /// A request on this connection passed signature verification: it is no longer subject
    /// to the first-request deadline nor closed to make room. (Every handler that verifies a
    /// signature — Secrets Manager's and STS's — calls this.)
    pub(crate) fn authenticated(&self) {
        if !self.slot.authenticated.swap(true, Ordering::AcqRel) {
            self.pending.remove(&self.slot);
        }
    }
}

/// One connection's place among those not yet authenticated.
struct Slot {
    id: u64,
    evict: Notify,
    authenticated: AtomicBool,
}

/// Connections that have not yet sent an authenticated request, oldest first: at most
/// `max_pending_connections` of them, each closed when its first request is not complete
/// within `request_deadline_secs` of its acceptance. Slow or silent clients therefore
/// cannot hold the slots that authenticated callers need.
#[derive(Default)]
struct Pending {
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next: AtomicU64,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, closing the oldest pending ones beyond `max`.
    fn admit(&self, max: usize) -> (Arc<Slot>, usize) {
        let slot = Arc::new(Slot {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            evict: Notify::new(),
            authenticated: AtomicBool::new(false),
        });
        let mut slots = self.lock();
        slots.insert(slot.id, slot.clone());
        let mut evicted = 0;
        while slots.len() > max {
            if let Some((_, oldest)) = slots.pop_first() {
                oldest.evict.notify_one();
                evicted += 1;
            }
        }
        (slot, evicted)
    }

    /// Closes the oldest pending connection (to make room at `max_connections`).
    fn evict_oldest(&self) -> bool {
        match self.lock().pop_first() {
            Some((_, oldest)) => {
                oldest.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn remove(&self, slot: &Slot) {
        self.lock().remove(&slot.id);
    }
}

async fn serve<R: Regions>(
    app: Arc<App<R>>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let now = app.auth_clock.now().millis().div_euclid(1000);
    match crate::sts::sessions::restore(&app, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "STS sessions restored"),
        Err(e) => tracing::error!(error = %e, "STS sessions could not be restored"),
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(app.config.max_connections));
    let pending = Arc::new(Pending::default());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At max_connections, the oldest connection that has not authenticated makes room for
        // this one; only authenticated connections make it wait.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if pending.evict_oldest() {
                    app.metrics
                        .connections_evicted
                        .fetch_add(1, Ordering::Relaxed);
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    _ = stop.changed() => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        app.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        app.metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let (slot, evicted) = pending.admit(app.config.max_pending_connections);
        if evicted > 0 {
            app.metrics
                .connections_evicted
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
        let a = app.clone();
        let pending = pending.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + a.config.request_deadline();
            let info = ConnInfo {
                secure: a.tls.is_some(),
                slot: slot.clone(),
                pending: pending.clone(),
            };
            match a.tls.clone() {
                Some(tls) => {
                    let handshake = tokio::select! {
                        r = tls.accept(stream) => r.ok(),
                        _ = tokio::time::sleep_until(deadline) => None,
                        _ = slot.evict.notified() => None,
                    };
                    if let Some(stream) = handshake {
                        connection(&a, stream, peer, info, deadline, watcher).await;
                    }
                }
                None => connection(&a, stream, peer, info, deadline, watcher).await,
            }
            pending.remove(&slot);
            a.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    app.feed.close();
    let grace = app.config.shutdown_grace();
    tracing::info!("shutting down: waiting for running rotations and in-flight requests");
    // Rotations first: external rotation functions call back into this server.
    if !app.rotations.drain(grace).await {
        tracing::warn!(
            running = app.rotations.active(),
            "rotations still running at the end of the grace period"
        );
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the end of the grace period");
    }
    if let Some(audit) = &app.audit {
        audit.service_event(
            app.clock.now(),
            "KeyrollStopped",
            "",
            None,
            serde_json::json!({ "reason": "shutdown" }),
        );
        audit.close();
    }
    tracing::info!("stopped");
}

/// About the largest request head (request line and headers) read: hyper refuses heads that
/// do not fit its read buffer of this size (431). AWS clients send about 1 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves one connection: closed when evicted, or at `deadline` if no request on it has
/// been authenticated by then.
async fn connection<R: Regions, S>(
    app: &Arc<App<R>>,
    stream: S,
    peer: SocketAddr,
    info: ConnInfo,
    deadline: tokio::time::Instant,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let a = app.clone();
    let i = info.clone();
    let svc = service_fn(move |req: Request<Incoming>| handle(a.clone(), peer, i.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.request_deadline())
        // A request head larger than this is refused (431): hyper's default (~400 KiB) would
        // let each waiting connection hold that much.
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), svc);
    let conn = watcher.watch(conn);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        _ = info.slot.evict.notified() => return,
        _ = tokio::time::sleep_until(deadline) => {}
    }
    if !info.slot.authenticated.load(Ordering::Acquire) {
        app.metrics
            .connections_timed_out
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    let _ = conn.await;
}

/// `GET /metrics` on its own listener (`metrics_listen`).
async fn serve_metrics<R: Regions>(
    app: Arc<App<R>>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(64));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Scrapers are few: beyond 64 at once, new connections are closed.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let a = app.clone();
        tokio::spawn(async move {
            let deadline = a.config.request_deadline();
            let svc = service_fn(move |req: Request<Incoming>| {
                let a = a.clone();
                async move {
                    let rid = request_id();
                    Ok::<_, Infallible>(match (req.method(), req.uri().path()) {
                        (&Method::GET, "/metrics") => metrics_response(&a, &req, &rid),
                        _ => error_response(
                            &ApiError::new(
                                StatusCode::NOT_FOUND,
                                "UnknownOperationException",
                                "Not found: this listener serves GET /metrics only.",
                            ),
                            &rid,
                        ),
                    })
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(deadline)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(deadline, conn).await;
            drop(permit);
        });
    }
}

/// The metrics page, or 401 when `metrics_token` is set and the request does not carry it.
fn metrics_response<R: Regions, B>(app: &App<R>, req: &Request<B>, rid: &str) -> Resp {
    if let Some(token) = &app.config.metrics_token {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let expected = token.expose_secret().as_bytes();
        if given.len() != expected.len() || !bool::from(given.as_bytes().ct_eq(expected)) {
            let mut r = error_response(
                &ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UnrecognizedClientException",
                    "GET /metrics needs the header Authorization: Bearer <metrics_token>.",
                ),
                rid,
            );
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    let mut r = Response::new(Full::new(Bytes::from(app.render_metrics())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// Reads a request body of at most `max` bytes within `deadline`, each byte counted against
/// the unauthenticated-bytes budget until the returned permit is dropped.
async fn read_body<R: Regions>(
    app: &App<R>,
    mut body: Incoming,
    max: usize,
    deadline: Duration,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("The request body is larger than {max} bytes."),
        )
    };
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Too many request bytes are waiting for authentication; retry shortly (the server's \
             limit is max_unauthenticated_bytes).",
        )
    };
    let read = async {
        let mut buf = bytes::BytesMut::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request(
                    "SerializationException",
                    format!("The request body could not be read: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > max {
                return Err(too_large());
            }
            let n = u32::try_from(data.len()).map_err(|_| too_large())?;
            let permit = app
                .unauthenticated_bytes
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| busy())?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            buf.extend_from_slice(&data);
        }
        Ok((buf.freeze(), held))
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            format!(
                "The request body did not arrive within {} s (request_deadline_secs).",
                deadline.as_secs()
            ),
        )),
    }
}

/// Marks the response so that hyper closes the connection after sending it.
fn closing(mut r: Resp) -> Resp {
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}

type Resp = Response<Full<Bytes>>;

async fn handle<R: Regions>(
    app: Arc<App<R>>,
    peer: SocketAddr,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let rid = request_id();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => {
            return Ok(json_response(
                StatusCode::OK,
                Bytes::from_static(b"{\"status\":\"ok\"}"),
                &rid,
            ));
        }
        (&Method::GET, "/metrics") if app.config.metrics_listen.is_none() => {
            return Ok(metrics_response(&app, &req, &rid));
        }
        (&Method::GET, crate::feed::PATH) => {
            return crate::feed::handle(app, peer, req, rid).await;
        }
        (&Method::POST, _) => {}
        _ => {
            let e = ApiError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "Not found: use POST / with X-Amz-Target, GET /health, GET /metrics or GET /keyroll/changes.",
            );
            return Ok(error_response(&e, &rid));
        }
    }
    let t0 = Instant::now();
    let (parts, body) = req.into_parts();
    let max = app.config.max_body_bytes;
    if parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max)
    {
        let e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("The request body is larger than {max} bytes."),
        );
        return Ok(closing(error_response(&e, &rid)));
    }
    // Requests that cannot be authenticated are refused before their body is read.
    let early = sigv4::precheck(&parts.headers, &app.keys, app.auth_clock.now()).err();
    let (body, unauthenticated) = if early.is_some() {
        (Bytes::new(), None)
    } else {
        match read_body(&app, body, max, app.config.request_deadline()).await {
            Ok(b) => b,
            Err(e) => return Ok(closing(error_response(&e, &rid))),
        }
    };
    let meta = crate::authz::RequestMeta {
        source_ip: peer.ip(),
        secure_transport: conn.secure,
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        now: app.auth_clock.now(),
    };
    if crate::sts::is_sts_request(&parts.headers) {
        let (resp, sts) = crate::sts::handle(&app, peer, &parts, &body, &rid, early).await;
        drop(unauthenticated);
        // As on the Secrets Manager path: a request that did not authenticate closes its
        // connection, which would otherwise stay open, unauthenticated, until the deadline.
        let resp = if sts.caller.is_some() {
            conn.authenticated();
            resp
        } else {
            closing(resp)
        };
        if let Some(audit) = &app.audit {
            let key_id = sigv4::claimed_access_key_id(&parts.headers);
            let read_only = matches!(sts.action.as_deref(), Some("GetCallerIdentity"));
            audit.api_call(crate::audit::ApiCall {
                source: crate::audit::ApiSource::Sts,
                event_name: sts.action.as_deref().unwrap_or("Unknown"),
                region: sigv4::claimed_region(&parts.headers).unwrap_or(""),
                caller: match &sts.caller {
                    Some(p) => crate::audit::Caller::Principal {
                        principal: p,
                        access_key_id: key_id.unwrap_or(""),
                    },
                    None => crate::audit::Caller::Unauthenticated {
                        access_key_id: key_id,
                    },
                },
                meta: &meta,
                request_id: &rid,
                params: sts.request_parameters,
                response: sts.response_elements.unwrap_or(serde_json::Value::Null),
                error: sts
                    .error_code
                    .map(|c| (c, sts.error_message.as_deref().unwrap_or(""))),
                read_only,
                resource_arn: None,
            });
        }
        return Ok(resp);
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let verified = match early {
        Some(e) => Err(e),
        None => sigv4::verify(
            &parts.method,
            &parts.uri,
            &parts.headers,
            &body,
            &app.keys,
            meta.now,
        ),
    };
    drop(unauthenticated);
    let caller = match verified {
        Ok(c) => {
            conn.authenticated();
            c
        }
        Err(e) => {
            app.metrics.auth_failure(e.aws_type());
            tracing::info!(request_id = %rid, error_type = e.aws_type(), "request refused by signature verification");
            let err: ApiError = e.into();
            if let Some(audit) = &app.audit {
                audit.refused(
                    target.strip_prefix("secretsmanager.").unwrap_or(target),
                    &parts.headers,
                    &meta,
                    &rid,
                    (&err.kind, &err.message),
                    false,
                );
            }
            return Ok(closing(error_response(&err, &rid)));
        }
    };
    let Some(op) = Operation::from_target(target) else {
        return Ok(error_response(&ApiError::unknown_operation(target), &rid));
    };
    let params = crate::authz::request_params(&body);
    let who = dispatch::Asker {
        principal: &caller.principal,
        params: &params,
        meta: &meta,
    };
    let (result, authorized) = dispatch::handle(&app, op, &caller.region, &body, &who).await;
    let elapsed = t0.elapsed();
    if let Some(audit) = &app.audit {
        let response = match &result {
            Ok(b) if op.writes() => serde_json::from_slice(b).unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        };
        audit.api_call(crate::audit::ApiCall {
            source: crate::audit::ApiSource::SecretsManager,
            event_name: op.name(),
            region: &caller.region,
            caller: crate::audit::Caller::Principal {
                principal: &caller.principal,
                access_key_id: &caller.access_key_id,
            },
            meta: &meta,
            request_id: &rid,
            params: serde_json::Value::Object(params),
            response,
            error: result
                .as_ref()
                .err()
                .map(|e| (e.kind.as_ref(), e.message.as_str())),
            read_only: !op.writes(),
            resource_arn: authorized.resource_arn.as_deref(),
        });
    }
    let resp = match result {
        Ok(b) => {
            tracing::debug!(request_id = %rid, operation = op.name(), region = %caller.region, access_key = %caller.access_key_id, latency_us = elapsed.as_micros() as u64, "ok");
            json_response(StatusCode::OK, b, &rid)
        }
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(request_id = %rid, operation = op.name(), region = %caller.region, error_type = %e.kind, error = %e.message, "request failed");
            } else {
                tracing::info!(request_id = %rid, operation = op.name(), region = %caller.region, access_key = %caller.access_key_id, error_type = %e.kind, error = %e.message, "request refused");
            }
            error_response(&e, &rid)
        }
    };
    app.metrics.request(op, resp.status().as_u16(), elapsed);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_connections_beyond_the_cap_close_the_oldest() {
        let p = Arc::new(Pending::default());
        let (a, _) = p.admit(2);
        let (b, _) = p.admit(2);
        let info = |slot: &Arc<Slot>| ConnInfo {
            secure: false,
            slot: slot.clone(),
            pending: p.clone(),
        };
        // `a` authenticates: it no longer counts, and is never the one closed.
        info(&a).authenticated();
        let (c, evicted) = p.admit(2);
        assert_eq!(evicted, 0);
        let (_d, evicted) = p.admit(2);
        assert_eq!(evicted, 1);
        // `b` was told to close (the permit is stored, so a later wait sees it at once).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), b.evict.notified())
                .await
                .expect("b evicted");
            assert!(
                tokio::time::timeout(Duration::from_millis(10), a.evict.notified())
                    .await
                    .is_err()
            );
        });
        // At max_connections the oldest still pending (`c`) makes room.
        assert!(p.evict_oldest());
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), c.evict.notified())
                .await
                .expect("c evicted");
        });
        assert!(p.evict_oldest());
        assert!(!p.evict_oldest(), "only authenticated connections remain");
    }
}
