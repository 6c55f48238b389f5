//! The change feed: `GET /keyroll/changes?since=SEQ&wait=SECS[&epoch=E]`, a SigV4-signed,
//! resumable long poll that lists `{seq, arn, name, version_id, stages, event}` after every
//! change of a secret, so that caches (`keyroll agent`) learn of a new `AWSCURRENT` at once
//! instead of when a TTL runs out.
//!
//! - **Where changes come from**: [`FeedRegions`] wraps a store's backends; every successful
//!   commit (create, put, label move, update, delete, restore, purge, rotation status — the
//!   API's, the scheduler's and rotation functions' alike) appends one [`ChangeEvent`]. A
//!   change made by another process on the same data directory is not seen.
//! - **Bounded**: the events live in a ring of [`Feed::capacity`] events. A cursor older than
//!   the ring, from another epoch (the server restarted) or from the future is answered
//!   `410 ResyncRequired` with the cursor to continue from: the client must re-read what it
//!   caches, then follow the feed from there.
//! - **Authorization**: the call itself needs only a valid signature; each event is shown
//!   only if the caller may `secretsmanager:DescribeSecret` the secret (its identity policies
//!   and the secret's resource policy), so names it cannot see never leak. `next` counts
//!   every change of the region, visible or not.
//! - **Audited** as `ListSecretChanges` (read-only).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use keyroll_core::SmError;
use keyroll_core::ids::{Namespace, SecretRef};
use keyroll_core::model::SecretRecord;
use keyroll_core::service::{Backend, Change, CommitError, SecretsService};
use keyroll_core::time::Timestamp;
use keyroll_core::value::SecretValue;
use serde::Serialize;
use tokio::sync::watch;

use crate::dispatch::Operation;
use crate::regions::Regions;
use crate::server::{App, ConnInfo};
use crate::sigv4;
use crate::wire::{ApiError, error_response};

/// The feed's path on the API listener.
pub const PATH: &str = "/keyroll/changes";

/// Events kept by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The longest a poll may wait for a change (`wait`, seconds).
pub const MAX_WAIT_SECS: u64 = 60;

/// What happened to a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `CreateSecret` (or a replica created).
    Create,
    /// A new version or a value for a placeholder (`PutSecretValue`, `UpdateSecret` with a
    /// value, a rotation's `createSecret`).
    Put,
    /// Staging labels moved (`UpdateSecretVersionStage`, a rotation's `finishSecret`, its
    /// clean-up).
    Stage,
    /// Rotation began (its `AWSPENDING` placeholder) or its status changed.
    Rotation,
    /// Other metadata (description, tags, policy, rotation settings, replication).
    Update,
    /// Scheduled for deletion.
    Delete,
    /// Deletion cancelled.
    Restore,
    /// Removed for good.
    Purge,
}

/// One change, as listed by the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    pub seq: u64,
    /// The region (namespace) of the secret.
    pub region: String,
    pub arn: String,
    pub name: String,
    /// The version concerned (the new one for `put`, the one that gained a label for `stage`,
    /// else the `AWSCURRENT` version); `None` when the secret has none (purged).
    pub version_id: Option<String>,
    /// That version's staging labels after the change.
    pub stages: Vec<String>,
    pub event: ChangeKind,
}

struct Ring {
    events: VecDeque<Arc<ChangeEvent>>,
    /// The seq of the last event appended (0: none yet).
    latest: u64,
}

/// The change feed: a bounded ring of events and a signal for waiting polls.
pub struct Feed {
    epoch: String,
    capacity: usize,
    ring: Mutex<Ring>,
    latest: watch::Sender<u64>,
    closed: AtomicBool,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("epoch", &self.epoch)
            .field("capacity", &self.capacity)
            .field("latest", &self.latest())
            .finish()
    }
}

/// Where a poll stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// Events after the cursor (possibly none) and the cursor to send next.
    Events {
        events: Vec<Arc<ChangeEvent>>,
        next: u64,
    },
    /// The cursor cannot be served: re-read everything, then continue from `next`.
    Resync { next: u64 },
}

impl Feed {
    /// A feed keeping the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        Feed {
            epoch: hex::encode(b),
            capacity: capacity.max(1),
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                latest: 0,
            }),
            latest: watch::channel(0).0,
            closed: AtomicBool::new(false),
        }
    }

    /// This run's identity: a cursor from another epoch (before a restart) must resync.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The seq of the last change (0: none since start).
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a change; returns its seq.
    pub fn publish(
        &self,
        region: &str,
        rec: &SecretRecord,
        event: ChangeKind,
        version: Option<&str>,
    ) -> u64 {
        let version = version
            .and_then(|v| rec.versions.iter().find(|x| x.id == v))
            .or_else(|| rec.versions.iter().find(|x| x.has_stage("AWSCURRENT")));
        let seq = {
            let mut ring = self.lock();
            ring.latest += 1;
            let seq = ring.latest;
            if ring.events.len() >= self.capacity {
                ring.events.pop_front();
            }
            ring.events.push_back(Arc::new(ChangeEvent {
                seq,
                region: region.to_string(),
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: version.map(|v| v.id.clone()),
                stages: version.map(|v| v.stages.clone()).unwrap_or_default(),
                event,
            }));
            seq
        };
        self.latest.send_replace(seq);
        seq
    }

    /// The events after `since` (all regions); `Resync` when the ring no longer holds them.
    pub fn after(&self, since: u64) -> Poll {
        let ring = self.lock();
        if since > ring.latest {
            return Poll::Resync { next: ring.latest };
        }
        let oldest = ring.events.front().map_or(ring.latest + 1, |e| e.seq);
        if since + 1 < oldest {
            return Poll::Resync { next: ring.latest };
        }
        let skip = (since + 1 - oldest) as usize;
        Poll::Events {
            events: ring.events.iter().skip(skip).cloned().collect(),
            next: ring.latest,
        }
    }

    /// Wakes every waiting poll and makes later ones answer at once (server shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.latest.send_modify(|_| {});
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Waits until a change after `seen` or `deadline`, whichever first (or the feed closes).
    pub async fn wait_past(&self, seen: u64, deadline: tokio::time::Instant) {
        let mut rx = self.latest.subscribe();
        loop {
            if self.is_closed() || *rx.borrow_and_update() > seen {
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// What a commit changed, as one event (the most telling one).
fn classify(old: Option<&SecretRecord>, new: &SecretRecord) -> (ChangeKind, Option<String>) {
    let Some(old) = old else {
        return (ChangeKind::Create, None);
    };
    match (old.deleted_date.is_some(), new.deleted_date.is_some()) {
        (false, true) => return (ChangeKind::Delete, None),
        (true, false) => return (ChangeKind::Restore, None),
        _ => {}
    }
    let mut placeholder = None;
    for v in &new.versions {
        match old.versions.iter().find(|o| o.id == v.id) {
            None if v.has_value => return (ChangeKind::Put, Some(v.id.clone())),
            None => placeholder = Some(v.id.clone()),
            Some(o) if v.has_value && !o.has_value => {
                return (ChangeKind::Put, Some(v.id.clone()));
            }
            Some(_) => {}
        }
    }
    if let Some(p) = placeholder {
        return (ChangeKind::Rotation, Some(p));
    }
    let mut gained: Option<&str> = None;
    let mut moved = false;
    for v in &new.versions {
        let before = old.versions.iter().find(|o| o.id == v.id);
        let added = v
            .stages
            .iter()
            .any(|s| before.is_none_or(|o| !o.has_stage(s)));
        if added && (gained.is_none() || v.has_stage("AWSCURRENT")) {
            gained = Some(&v.id);
        }
        if before.is_none_or(|o| o.stages != v.stages) {
            moved = true;
        }
    }
    moved |= old.versions.len() != new.versions.len();
    if moved {
        return (ChangeKind::Stage, gained.map(str::to_string));
    }
    if old.rotation_status != new.rotation_status {
        return (ChangeKind::Rotation, None);
    }
    (ChangeKind::Update, None)
}

/// Whether `new` differs from `old` only in when it was last read (`GetSecretValue` records
/// `LastAccessedDate`): not a change of the secret, and no event (else every first read of the
/// day would invalidate the caches that made it).
fn only_accessed(old: &SecretRecord, new: &SecretRecord) -> bool {
    let mut a = old.clone();
    let mut b = new.clone();
    for r in [&mut a, &mut b] {
        r.last_accessed = None;
        r.revision = 0;
        for v in &mut r.versions {
            v.last_accessed = None;
        }
    }
    a == b
}

/// A backend that publishes every successful commit to a [`Feed`].
#[derive(Clone)]
pub struct FeedBackend<B> {
    inner: B,
    region: String,
    feed: Arc<Feed>,
}

impl<B: Backend> FeedBackend<B> {
    fn previous(&self, arn: &str) -> Option<SecretRecord> {
        let r = SecretRef::parse(arn).ok()?;
        self.inner.find(&r).ok().flatten()
    }
}

impl<B: Backend> Backend for FeedBackend<B> {
    fn namespace(&self) -> &Namespace {
        self.inner.namespace()
    }

    fn now(&self) -> Timestamp {
        self.inner.now()
    }

    fn find(&self, r: &SecretRef) -> Result<Option<SecretRecord>, SmError> {
        self.inner.find(r)
    }

    fn for_each(&self, f: &mut dyn FnMut(&SecretRecord)) -> Result<(), SmError> {
        self.inner.for_each(f)
    }

    fn read_value(&self, record: &SecretRecord, version_id: &str) -> Result<SecretValue, SmError> {
        self.inner.read_value(record, version_id)
    }

    fn commit(&self, change: Change<'_>) -> Result<(), CommitError> {
        match change {
            Change::Insert { record, value } => {
                self.inner.commit(Change::Insert { record, value })?;
                self.feed
                    .publish(&self.region, record, ChangeKind::Create, None);
            }
            Change::Update {
                record,
                value,
                removed_versions,
            } => {
                let old = self.previous(&record.arn);
                self.inner.commit(Change::Update {
                    record,
                    value,
                    removed_versions,
                })?;
                if !old.as_ref().is_some_and(|o| only_accessed(o, record)) {
                    let (kind, version) = classify(old.as_ref(), record);
                    self.feed
                        .publish(&self.region, record, kind, version.as_deref());
                }
            }
            Change::Purge { arn } => {
                let old = self.previous(arn);
                self.inner.commit(Change::Purge { arn })?;
                if let Some(mut old) = old {
                    old.versions.clear();
                    self.feed
                        .publish(&self.region, &old, ChangeKind::Purge, None);
                }
            }
        }
        Ok(())
    }

    fn try_lock_rotation(
        &self,
        arn: &str,
    ) -> Result<Option<keyroll_core::ports::RotationLock>, SmError> {
        self.inner.try_lock_rotation(arn)
    }
}

/// A store whose every commit is published to a [`Feed`] (what `keyroll serve` runs).
pub struct FeedRegions<R> {
    inner: R,
    feed: Arc<Feed>,
}

impl<R> FeedRegions<R> {
    pub fn new(inner: R, feed: Arc<Feed>) -> Self {
        FeedRegions { inner, feed }
    }

    pub fn inner(&self) -> &R {
        &self.inner
    }

    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }
}

impl<R: Regions> Regions for FeedRegions<R>
where
    R::Backend: Clone,
{
    type Backend = FeedBackend<R::Backend>;

    fn open(&self, region: &str) -> Result<SecretsService<Self::Backend>, SmError> {
        let svc = self.inner.open(region)?;
        Ok(SecretsService::new(FeedBackend {
            inner: svc.backend().clone(),
            region: region.to_string(),
            feed: self.feed.clone(),
        }))
    }

    fn known(&self) -> Result<Vec<String>, SmError> {
        self.inner.known()
    }
}

/// The poll's query string.
#[derive(Debug, Default, PartialEq, Eq)]
struct Query {
    since: Option<u64>,
    wait: u64,
    epoch: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("InvalidParameterException", message)
}

fn parse_query(q: Option<&str>) -> Result<Query, ApiError> {
    let mut out = Query::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "since" => {
                out.since = Some(v.parse().map_err(|_| {
                    bad("since must be a change number (the `next` of the previous answer).")
                })?)
            }
            "wait" => {
                let w: u64 = v.parse().map_err(|_| {
                    bad(format!(
                        "wait must be a number of seconds, 0 to {MAX_WAIT_SECS}."
                    ))
                })?;
                if w > MAX_WAIT_SECS {
                    return Err(bad(format!(
                        "wait must be a number of seconds, 0 to {MAX_WAIT_SECS}."
                    )));
                }
                out.wait = w;
            }
            "epoch" => out.epoch = Some(v.to_string()),
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(bad(format!(
                    "Unknown parameter {shown:?}: use since, wait and epoch."
                )));
            }
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct Answer<'a> {
    epoch: &'a str,
    next: u64,
    events: Vec<&'a ChangeEvent>,
}

fn json(status: StatusCode, body: Vec<u8>, rid: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(rid) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

/// Whether `principal` may `DescribeSecret` the secret of `e` (its current record's resource
/// policy applies; a purged secret is judged on its ARN alone).
fn visible<R: Regions>(
    app: &App<R>,
    caller: &sigv4::Caller,
    meta: &crate::authz::RequestMeta,
    e: &ChangeEvent,
) -> bool {
    let secret = app
        .store
        .region(&e.region)
        .ok()
        .and_then(|svc| svc.find(&e.arn).ok());
    let mut params = crate::authz::RequestParams::new();
    params.insert("SecretId".into(), serde_json::Value::String(e.arn.clone()));
    crate::authz::check(
        &crate::authz::Question {
            op: Operation::DescribeSecret,
            action: "secretsmanager:DescribeSecret",
            region: &e.region,
            principal: &caller.principal,
            params: &params,
            meta,
            secret: secret.as_ref(),
            resource: &e.arn,
        },
        &app.policies,
    )
    .is_ok()
}

/// Serves `GET /keyroll/changes`.
pub async fn handle<R: Regions>(
    app: Arc<App<R>>,
    peer: SocketAddr,
    req: Request<Incoming>,
    rid: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, _body) = req.into_parts();
    let meta = crate::authz::RequestMeta {
        source_ip: peer.ip(),
        secure_transport: parts.extensions.get::<ConnInfo>().is_some_and(|c| c.secure),
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        now: app.auth_clock.now(),
    };
    let verified = sigv4::precheck(&parts.headers, &app.keys, meta.now).and_then(|()| {
        sigv4::verify(
            &parts.method,
            &parts.uri,
            &parts.headers,
            b"",
            &app.keys,
            meta.now,
        )
    });
    let caller = match verified {
        Ok(c) => c,
        Err(e) => {
            app.metrics.auth_failure(e.aws_type());
            let err: ApiError = e.into();
            if let Some(audit) = &app.audit {
                audit.refused(
                    "ListSecretChanges",
                    &parts.headers,
                    &meta,
                    &rid,
                    (&err.kind, &err.message),
                    true,
                );
            }
            return Ok(error_response(&err, &rid));
        }
    };
    if let Some(c) = parts.extensions.get::<ConnInfo>() {
        c.authenticated();
    }
    let query = parse_query(parts.uri.query());
    let params = match &query {
        Ok(q) => serde_json::json!({
            "since": q.since, "wait": q.wait, "epoch": q.epoch,
        }),
        Err(_) => serde_json::Value::Null,
    };
    let result = match query {
        Ok(q) => Ok(poll(&app, &caller, &meta, q).await),
        Err(e) => Err(e),
    };
    if let Some(audit) = &app.audit {
        audit.api_call(crate::audit::ApiCall {
            source: crate::audit::ApiSource::SecretsManager,
            event_name: "ListSecretChanges",
            region: &caller.region,
            caller: crate::audit::Caller::Principal {
                principal: &caller.principal,
                access_key_id: &caller.access_key_id,
            },
            meta: &meta,
            request_id: &rid,
            params,
            response: serde_json::Value::Null,
            error: result
                .as_ref()
                .err()
                .map(|e| (e.kind.as_ref(), e.message.as_str())),
            read_only: true,
            resource_arn: None,
        });
    }
    Ok(match result {
        Ok(r) => r,
        Err(e) => error_response(&e, &rid),
    })
    .map(|mut r| {
        if let Ok(v) = http::HeaderValue::from_str(&rid) {
            r.headers_mut().entry("x-amzn-requestid").or_insert(v);
        }
        r
    })
}

async fn poll<R: Regions>(
    app: &App<R>,
    caller: &sigv4::Caller,
    meta: &crate::authz::RequestMeta,
    q: Query,
) -> Response<Full<Bytes>> {
    let feed = &app.feed;
    let rid = crate::wire::request_id();
    let resync = |next: u64| {
        let body = serde_json::json!({
            "__type": "ResyncRequired",
            "Message": "The cursor is older than the change feed holds, or from before the \
                        server restarted: re-read the secrets you cache, then poll again \
                        with since=next and epoch.",
            "epoch": feed.epoch(),
            "next": next,
        });
        json(
            StatusCode::GONE,
            serde_json::to_vec(&body).unwrap_or_default(),
            &rid,
        )
    };
    if q.epoch.as_deref().is_some_and(|e| e != feed.epoch()) {
        return resync(feed.latest());
    }
    let Some(mut since) = q.since else {
        // A subscription starts now.
        let a = Answer {
            epoch: feed.epoch(),
            next: feed.latest(),
            events: Vec::new(),
        };
        return json(
            StatusCode::OK,
            serde_json::to_vec(&a).unwrap_or_default(),
            &rid,
        );
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait);
    loop {
        match feed.after(since) {
            Poll::Resync { next } => return resync(next),
            Poll::Events { events, next } => {
                let shown: Vec<&ChangeEvent> = events
                    .iter()
                    .filter(|e| e.region == caller.region && visible(app, caller, meta, e))
                    .map(|e| e.as_ref())
                    .collect();
                if !shown.is_empty()
                    || q.wait == 0
                    || feed.is_closed()
                    || tokio::time::Instant::now() >= deadline
                {
                    let a = Answer {
                        epoch: feed.epoch(),
                        next,
                        events: shown,
                    };
                    return json(
                        StatusCode::OK,
                        serde_json::to_vec(&a).unwrap_or_default(),
                        &rid,
                    );
                }
                since = next;
                feed.wait_past(next, deadline).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyroll_core::model::VersionEntry;

    fn rec(versions: &[(&str, &[&str], bool)]) -> SecretRecord {
        let mut r = SecretRecord::new(
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf".into(),
            "app".into(),
            Timestamp::from_millis(0),
        );
        r.versions = versions
            .iter()
            .map(|(id, stages, has_value)| VersionEntry {
                id: id.to_string(),
                created: Timestamp::from_millis(0),
                stages: stages.iter().map(|s| s.to_string()).collect(),
                last_accessed: None,
                has_value: *has_value,
            })
            .collect();
        r
    }

    #[test]
    fn classify_names_the_change_and_its_version() {
        let a = rec(&[("v1", &["AWSCURRENT"], true)]);
        assert_eq!(classify(None, &a), (ChangeKind::Create, None));
        let pending = rec(&[
            ("v1", &["AWSCURRENT"], true),
            ("v2", &["AWSPENDING"], false),
        ]);
        assert_eq!(
            classify(Some(&a), &pending),
            (ChangeKind::Rotation, Some("v2".into()))
        );
        let created = rec(&[("v1", &["AWSCURRENT"], true), ("v2", &["AWSPENDING"], true)]);
        assert_eq!(
            classify(Some(&pending), &created),
            (ChangeKind::Put, Some("v2".into()))
        );
        let finished = rec(&[
            ("v1", &["AWSPREVIOUS"], true),
            ("v2", &["AWSPENDING", "AWSCURRENT"], true),
        ]);
        assert_eq!(
            classify(Some(&created), &finished),
            (ChangeKind::Stage, Some("v2".into()))
        );
        let mut deleted = finished.clone();
        deleted.deleted_date = Some(Timestamp::from_millis(5));
        assert_eq!(
            classify(Some(&finished), &deleted),
            (ChangeKind::Delete, None)
        );
        assert_eq!(
            classify(Some(&deleted), &finished),
            (ChangeKind::Restore, None)
        );
        let mut described = finished.clone();
        described.description = Some("x".into());
        assert_eq!(
            classify(Some(&finished), &described),
            (ChangeKind::Update, None)
        );
    }

    #[test]
    fn reads_are_not_changes() {
        let a = rec(&[("v1", &["AWSCURRENT"], true)]);
        let mut read = a.clone();
        read.last_accessed = Some(Timestamp::from_millis(86_400_000));
        read.versions[0].last_accessed = read.last_accessed;
        read.revision += 1;
        assert!(only_accessed(&a, &read));
        read.description = Some("changed".into());
        assert!(!only_accessed(&a, &read));
    }

    #[test]
    fn the_ring_is_bounded_and_old_cursors_resync() {
        let feed = Feed::new(3);
        let r = rec(&[("v1", &["AWSCURRENT"], true)]);
        assert_eq!(
            feed.after(0),
            Poll::Events {
                events: vec![],
                next: 0
            }
        );
        for _ in 0..5 {
            feed.publish("us-east-1", &r, ChangeKind::Put, Some("v1"));
        }
        assert_eq!(feed.latest(), 5);
        // Events 3, 4, 5 are kept: a cursor at 2 is served, at 1 it must resync.
        match feed.after(2) {
            Poll::Events { events, next } => {
                assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
                assert_eq!(next, 5);
                assert_eq!(events[0].version_id.as_deref(), Some("v1"));
                assert_eq!(events[0].stages, ["AWSCURRENT"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(feed.after(1), Poll::Resync { next: 5 });
        assert_eq!(feed.after(9), Poll::Resync { next: 5 });
        match feed.after(5) {
            Poll::Events { events, .. } => assert!(events.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_waiting_poll_wakes_on_publish_and_on_close() {
        let feed = Arc::new(Feed::new(8));
        let f = feed.clone();
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        let waiter = tokio::spawn(async move { f.wait_past(0, far).await });
        feed.publish(
            "us-east-1",
            &rec(&[("v1", &["AWSCURRENT"], true)]),
            ChangeKind::Create,
            None,
        );
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        let f = feed.clone();
        let waiter = tokio::spawn(async move { f.wait_past(1, far).await });
        feed.close();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn query_is_checked() {
        assert_eq!(
            parse_query(Some("since=4&wait=20&epoch=ab")).unwrap(),
            Query {
                since: Some(4),
                wait: 20,
                epoch: Some("ab".into())
            }
        );
        assert_eq!(parse_query(None).unwrap(), Query::default());
        assert!(parse_query(Some("since=x")).is_err());
        assert!(parse_query(Some("wait=61")).is_err());
        assert!(parse_query(Some("foo=1")).is_err());
    }
}
