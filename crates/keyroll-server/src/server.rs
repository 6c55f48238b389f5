//! The HTTP side: a bounded accept loop over hyper's HTTP/1.1, `POST /` for the API (SigV4
//! verified first), `GET /health`, `GET /metrics`, and a graceful shutdown that lets running
//! rotations and in-flight requests finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use keyroll_core::time::{Clock, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
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
        let mut text = self.metrics.render(&gauges);
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
    pub app: Arc<App<R>>,
    pub scheduler: Option<Arc<Scheduler<R>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl<R: Regions> RunningServer<R> {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
    let addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
    let callback = if addr.ip().is_unspecified() {
        if addr.is_ipv6() {
            format!("http://[::1]:{}", addr.port())
        } else {
            format!("http://127.0.0.1:{}", addr.port())
        }
    } else {
        format!("http://{addr}")
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
    let task = tokio::spawn(serve(app.clone(), listener, stop_rx));
    Ok(RunningServer {
        addr,
        app,
        scheduler: sched,
        stop,
        task,
    })
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
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
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
        let _ = stream.set_nodelay(true);
        app.metrics
            .connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.metrics
            .connections_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let a = app.clone();
        let svc = service_fn(move |req| handle(a.clone(), peer, req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        let a = app.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            a.metrics
                .connections_open
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
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

type Resp = Response<Full<Bytes>>;

async fn handle<R: Regions>(
    app: Arc<App<R>>,
    peer: SocketAddr,
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
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Full::new(Bytes::from(app.render_metrics())));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(r);
        }
        (&Method::POST, _) => {}
        _ => {
            let e = ApiError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "Not found: use POST / with X-Amz-Target, GET /health or GET /metrics.",
            );
            return Ok(error_response(&e, &rid));
        }
    }
    let t0 = Instant::now();
    let (parts, body) = req.into_parts();
    let max = app.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("The request body is larger than {max} bytes."),
        )
    };
    if parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max)
    {
        return Ok(error_response(&too_large(), &rid));
    }
    let body = match Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error_response(&too_large(), &rid)),
    };
    let meta = crate::authz::RequestMeta {
        source_ip: peer.ip(),
        secure_transport: false,
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        now: app.auth_clock.now(),
    };
    if crate::sts::is_sts_request(&parts.headers) {
        let (resp, sts) = crate::sts::handle(&app, peer, &parts, &body, &rid).await;
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
    let caller = match sigv4::verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
        &app.keys,
        meta.now,
    ) {
        Ok(c) => c,
        Err(e) => {
            app.metrics.auth_failure(e.aws_type());
            tracing::info!(request_id = %rid, error_type = e.aws_type(), "request refused by signature verification");
            let err: ApiError = e.into();
            if let Some(audit) = &app.audit {
                audit.api_call(crate::audit::ApiCall {
                    source: crate::audit::ApiSource::SecretsManager,
                    event_name: target.strip_prefix("secretsmanager.").unwrap_or(target),
                    region: sigv4::claimed_region(&parts.headers).unwrap_or(""),
                    caller: crate::audit::Caller::Unauthenticated {
                        access_key_id: sigv4::claimed_access_key_id(&parts.headers),
                    },
                    meta: &meta,
                    request_id: &rid,
                    params: serde_json::Value::Null,
                    response: serde_json::Value::Null,
                    error: Some((&err.kind, &err.message)),
                    read_only: false,
                    resource_arn: None,
                });
            }
            return Ok(error_response(&err, &rid));
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
