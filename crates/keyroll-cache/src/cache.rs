//! [`SecretCache`]: TTL, a size bound (least recently used goes first), single flight, refresh
//! ahead, stale-if-error and invalidation by name or ARN.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::metrics::{CacheMetrics, Counters};
use crate::source::{SecretEntry, SecretSource, SourceError, VersionSelector, id_matches};

/// How the cache behaves. `Default` matches AWS's agent: 300 s TTL, 1,000 entries; refresh
/// ahead in the last 20% of the TTL; stale-if-error off.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// How long a value is served without asking upstream.
    pub ttl: Duration,
    /// Most entries kept; the least recently read is dropped first.
    pub max_entries: usize,
    /// A read in the last `refresh_ahead` fraction of the TTL (0.0 to below 1.0) returns the
    /// cached value and starts one background refresh. 0.0 turns it off.
    pub refresh_ahead: f64,
    /// How long past its TTL a value may still be served when upstream fails. Zero (the
    /// default) turns it off.
    pub stale_if_error: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(300),
            max_entries: 1000,
            refresh_ahead: 0.2,
            stale_if_error: Duration::ZERO,
        }
    }
}

/// Why the cache could not answer a read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The upstream call this read waited on never finished (its task panicked or the runtime
    /// shut down).
    #[error(
        "the upstream call for secret {secret_id} was abandoned before it answered (the source panicked or the runtime is shutting down); retry the read"
    )]
    Abandoned { secret_id: String },
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

impl CacheError {
    /// The source's error, when the failure came from upstream.
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            CacheError::Source(e) => Some(e),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    id: String,
    version: VersionSelector,
}

struct Slot {
    entry: Arc<SecretEntry>,
    fetched_at: Instant,
}

type FlightResult = Option<Result<Arc<SecretEntry>, CacheError>>;

/// One upstream call, shared by every reader that missed on its key while it ran.
struct Flight {
    tx: watch::Sender<FlightResult>,
    /// The invalidation epoch when the call started.
    epoch: u64,
}

enum Invalidated {
    All,
    Secret { id: String, arns: Vec<String> },
}

/// Invalidations kept to decide whether a call that was in flight during one may be cached.
const INVALIDATION_LOG: usize = 256;

struct State {
    entries: LruCache<Key, Slot>,
    inflight: HashMap<Key, Arc<Flight>>,
    epoch: u64,
    log: VecDeque<(u64, Invalidated)>,
}

impl State {
    /// Whether an invalidation since `epoch` covers `entry` fetched for `key`.
    fn invalidated_since(&self, epoch: u64, key: &Key, entry: &SecretEntry) -> bool {
        if epoch == self.epoch {
            return false;
        }
        match self.log.front() {
            Some((oldest, _)) if *oldest <= epoch + 1 => {}
            _ => return true, // the log no longer reaches back that far: assume it was
        }
        self.log
            .iter()
            .filter(|(e, _)| *e > epoch)
            .any(|(_, inv)| match inv {
                Invalidated::All => true,
                Invalidated::Secret { id, arns } => {
                    key.id == *id
                        || id_matches(id, &entry.arn, &entry.name)
                        || arns.contains(&entry.arn)
                }
            })
    }
}

struct Inner<S> {
    source: S,
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    counters: Counters,
}

impl<S> Inner<S> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (no multi-step updates
        // span a panic point), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A cache of secret values in front of a [`SecretSource`]. Cheap to clone (shared state).
///
/// Reads must run inside a Tokio runtime: upstream calls run in spawned tasks, so a reader
/// that gives up does not cancel the call other readers wait on.
pub struct SecretCache<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for SecretCache<S> {
    fn clone(&self) -> Self {
        SecretCache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for SecretCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache")
            .field("config", &self.inner.config)
            .field("entries", &self.inner.lock().entries.len())
            .finish_non_exhaustive()
    }
}

/// Sends `Abandoned` to the flight's readers if its task ends without an answer (panic or
/// runtime shutdown), so no reader waits forever.
struct FlightGuard<S: SecretSource> {
    inner: Arc<Inner<S>>,
    key: Key,
    flight: Arc<Flight>,
    answered: bool,
}

impl<S: SecretSource> Drop for FlightGuard<S> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut st = self.inner.lock();
        if st
            .inflight
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            st.inflight.remove(&self.key);
        }
        drop(st);
        self.flight.tx.send_replace(Some(Err(CacheError::Abandoned {
            secret_id: self.key.id.clone(),
        })));
    }
}

impl<S: SecretSource> SecretCache<S> {
    /// A cache over `source` with the real clock.
    pub fn new(source: S, config: CacheConfig) -> Result<Self, CacheError> {
        Self::with_clock(source, config, Arc::new(SystemClock))
    }

    /// A cache over `source` reading the time from `clock`.
    pub fn with_clock(
        source: S,
        config: CacheConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CacheError> {
        if !(0.0..1.0).contains(&config.refresh_ahead) {
            return Err(CacheError::Config(format!(
                "refresh_ahead must be at least 0.0 and below 1.0 (a fraction of the TTL), not {}",
                config.refresh_ahead
            )));
        }
        let cap = NonZeroUsize::new(config.max_entries)
            .ok_or_else(|| CacheError::Config("max_entries must be at least 1".to_string()))?;
        Ok(SecretCache {
            inner: Arc::new(Inner {
                source,
                config,
                clock,
                state: Mutex::new(State {
                    entries: LruCache::new(cap),
                    inflight: HashMap::new(),
                    epoch: 0,
                    log: VecDeque::new(),
                }),
                counters: Counters::default(),
            }),
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The source this cache reads from.
    pub fn source(&self) -> &S {
        &self.inner.source
    }

    /// The `AWSCURRENT` version of `secret_id` (a name, full ARN or partial ARN).
    pub async fn get(&self, secret_id: &str) -> Result<Arc<SecretEntry>, CacheError> {
        self.get_version(secret_id, &VersionSelector::current())
            .await
    }

    /// The version of `secret_id` that `version` selects, from the cache when fresh.
    pub async fn get_version(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<Arc<SecretEntry>, CacheError> {
        let key = Key {
            id: secret_id.to_string(),
            version: version.clone(),
        };
        let cfg = &self.inner.config;
        let now = self.inner.clock.now();
        let mut rx = {
            let mut st = self.inner.lock();
            let mut expired_too_long = false;
            if let Some(slot) = st.entries.get(&key) {
                let age = now.saturating_duration_since(slot.fetched_at);
                if age < cfg.ttl {
                    Counters::inc(&self.inner.counters.hits);
                    let entry = Arc::clone(&slot.entry);
                    let refresh_from = cfg.ttl.mul_f64(1.0 - cfg.refresh_ahead);
                    if cfg.refresh_ahead > 0.0
                        && age >= refresh_from
                        && !st.inflight.contains_key(&key)
                    {
                        Counters::inc(&self.inner.counters.refreshes_ahead);
                        self.start_flight(&mut st, key);
                    }
                    return Ok(entry);
                }
                expired_too_long = age >= cfg.ttl + cfg.stale_if_error;
            }
            if expired_too_long {
                // Past any use: drop it now rather than keep the secret in memory.
                st.entries.pop(&key);
            }
            Counters::inc(&self.inner.counters.misses);
            match st.inflight.get(&key) {
                Some(f) => {
                    Counters::inc(&self.inner.counters.coalesced);
                    f.tx.subscribe()
                }
                None => self.start_flight(&mut st, key.clone()).tx.subscribe(),
            }
        };
        match wait(&mut rx, secret_id).await {
            Ok(entry) => Ok(entry),
            Err(CacheError::Source(e)) => self.stale_or(&key, e),
            Err(e) => Err(e),
        }
    }

    /// Reads `secret_id` from upstream now, whatever the cache holds, and caches the answer
    /// (the agent's `refreshNow=true`). Does not join a call already in flight: the answer is
    /// at least as new as this call.
    pub async fn refresh_now(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<Arc<SecretEntry>, CacheError> {
        let key = Key {
            id: secret_id.to_string(),
            version: version.clone(),
        };
        let mut rx = {
            let mut st = self.inner.lock();
            self.start_flight(&mut st, key).tx.subscribe()
        };
        wait(&mut rx, secret_id).await
    }

    /// One upstream call, counted, neither read from nor written to the cache (for a
    /// credential that just failed, or `AWSPENDING` during a rotation).
    pub async fn get_uncached(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        let started = self.inner.clock.now();
        Counters::inc(&self.inner.counters.upstream_get_secret_value);
        let res = self.inner.source.get_secret_value(secret_id, version).await;
        self.inner
            .counters
            .observe_latency(self.inner.clock.now().saturating_duration_since(started));
        if res.is_err() {
            Counters::inc(&self.inner.counters.upstream_errors);
        }
        res
    }

    /// Drops every cached version of the secret `secret_or_arn` names (its name, full ARN or
    /// partial ARN), under whichever id it was read, and stops calls in flight for it from
    /// caching their answers. Returns how many entries were dropped.
    pub fn invalidate(&self, secret_or_arn: &str) -> usize {
        Counters::inc(&self.inner.counters.invalidations);
        let mut st = self.inner.lock();
        let arns: HashSet<String> = st
            .entries
            .iter()
            .filter(|(k, s)| {
                k.id == secret_or_arn || id_matches(secret_or_arn, &s.entry.arn, &s.entry.name)
            })
            .map(|(_, s)| s.entry.arn.clone())
            .collect();
        let mut ids: HashSet<String> = st
            .entries
            .iter()
            .filter(|(_, s)| arns.contains(&s.entry.arn))
            .map(|(k, _)| k.id.clone())
            .collect();
        ids.insert(secret_or_arn.to_string());
        let doomed: Vec<Key> = st
            .entries
            .iter()
            .filter(|(k, s)| ids.contains(&k.id) || arns.contains(&s.entry.arn))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            st.entries.pop(k);
        }
        st.inflight.retain(|k, _| !ids.contains(&k.id));
        st.epoch += 1;
        let epoch = st.epoch;
        st.log.push_back((
            epoch,
            Invalidated::Secret {
                id: secret_or_arn.to_string(),
                arns: arns.into_iter().collect(),
            },
        ));
        while st.log.len() > INVALIDATION_LOG {
            st.log.pop_front();
        }
        doomed.len()
    }

    /// Drops everything cached and stops calls in flight from caching their answers.
    pub fn invalidate_all(&self) {
        Counters::inc(&self.inner.counters.invalidations);
        let mut st = self.inner.lock();
        st.entries.clear();
        st.inflight.clear();
        st.epoch += 1;
        let epoch = st.epoch;
        st.log.push_back((epoch, Invalidated::All));
        while st.log.len() > INVALIDATION_LOG {
            st.log.pop_front();
        }
    }

    /// Entries held now (fresh, or expired but still usable by stale-if-error).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the counters.
    pub fn metrics(&self) -> CacheMetrics {
        let st = self.inner.lock();
        let (entries, inflight) = (st.entries.len(), st.inflight.len());
        drop(st);
        self.inner.counters.snapshot(entries, inflight)
    }

    /// After an upstream failure: the expired value when stale-if-error allows it.
    fn stale_or(&self, key: &Key, e: SourceError) -> Result<Arc<SecretEntry>, CacheError> {
        let cfg = &self.inner.config;
        if !cfg.stale_if_error.is_zero() {
            let now = self.inner.clock.now();
            let st = self.inner.lock();
            if let Some(slot) = st.entries.peek(key)
                && now.saturating_duration_since(slot.fetched_at) < cfg.ttl + cfg.stale_if_error
            {
                Counters::inc(&self.inner.counters.stale_served);
                tracing::warn!(secret_id = %key.id, error = %e, "serving a stale secret value: upstream failed");
                return Ok(Arc::clone(&slot.entry));
            }
        }
        Err(CacheError::Source(e))
    }

    /// Registers a new upstream call for `key` (replacing any registered one) and spawns it.
    fn start_flight(&self, st: &mut State, key: Key) -> Arc<Flight> {
        let (tx, _) = watch::channel(None);
        let flight = Arc::new(Flight {
            tx,
            epoch: st.epoch,
        });
        st.inflight.insert(key.clone(), Arc::clone(&flight));
        let mut guard = FlightGuard {
            inner: Arc::clone(&self.inner),
            key,
            flight: Arc::clone(&flight),
            answered: false,
        };
        tokio::spawn(async move {
            let inner = Arc::clone(&guard.inner);
            let started = inner.clock.now();
            Counters::inc(&inner.counters.upstream_get_secret_value);
            let res = inner
                .source
                .get_secret_value(&guard.key.id, &guard.key.version)
                .await;
            inner
                .counters
                .observe_latency(inner.clock.now().saturating_duration_since(started));
            let out = complete(&inner, &guard.key, &guard.flight, res, started);
            guard.answered = true;
            guard.flight.tx.send_replace(Some(out));
        });
        flight
    }
}

/// Records a finished upstream call: caches a success unless an invalidation since the call
/// started covers it, or another call has replaced it.
fn complete<S>(
    inner: &Inner<S>,
    key: &Key,
    flight: &Arc<Flight>,
    res: Result<SecretEntry, SourceError>,
    started: Instant,
) -> Result<Arc<SecretEntry>, CacheError> {
    let mut st = inner.lock();
    let registered = st.inflight.get(key).is_some_and(|f| Arc::ptr_eq(f, flight));
    if registered {
        st.inflight.remove(key);
    }
    match res {
        Ok(entry) => {
            let entry = Arc::new(entry);
            if registered && !st.invalidated_since(flight.epoch, key, &entry) {
                let slot = Slot {
                    entry: Arc::clone(&entry),
                    fetched_at: started,
                };
                if let Some((old, _)) = st.entries.push(key.clone(), slot)
                    && old != *key
                {
                    Counters::inc(&inner.counters.evictions);
                }
            }
            Ok(entry)
        }
        Err(e) => {
            Counters::inc(&inner.counters.upstream_errors);
            Err(CacheError::Source(e))
        }
    }
}

async fn wait(
    rx: &mut watch::Receiver<FlightResult>,
    secret_id: &str,
) -> Result<Arc<SecretEntry>, CacheError> {
    match rx.wait_for(|r| r.is_some()).await {
        Ok(r) => match &*r {
            Some(res) => res.clone(),
            None => Err(CacheError::Abandoned {
                secret_id: secret_id.to_string(),
            }),
        },
        Err(_) => Err(CacheError::Abandoned {
            secret_id: secret_id.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::testing::{ARN_PREFIX, FakeSource};

    struct Fixture {
        src: Arc<FakeSource>,
        clock: Arc<ManualClock>,
        cache: SecretCache<Arc<FakeSource>>,
    }

    fn fixture(config: CacheConfig) -> Fixture {
        let src = Arc::new(FakeSource::new());
        src.put("app/db", "one");
        src.put("other", "x");
        let clock = Arc::new(ManualClock::new());
        let cache = SecretCache::with_clock(Arc::clone(&src), config, clock.clone()).unwrap();
        Fixture { src, clock, cache }
    }

    fn cfg(ttl: u64) -> CacheConfig {
        CacheConfig {
            ttl: Duration::from_secs(ttl),
            ..CacheConfig::default()
        }
    }

    async fn value(cache: &SecretCache<Arc<FakeSource>>, id: &str) -> String {
        cache
            .get(id)
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_string()
    }

    /// Yields until `cond` holds (bounded: a test that never gets there fails).
    async fn until(mut cond: impl FnMut() -> bool) {
        for _ in 0..100_000 {
            if cond() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("condition never held");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixty_four_concurrent_first_reads_make_one_upstream_call() {
        let f = fixture(cfg(300));
        f.src.hold();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let c = f.cache.clone();
            tasks.push(tokio::spawn(async move { value(&c, "app/db").await }));
        }
        until(|| f.cache.metrics().misses == 64).await;
        f.src.release();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "one");
        }
        assert_eq!(f.src.calls(), 1);
        let m = f.cache.metrics();
        assert_eq!((m.misses, m.coalesced, m.upstream_total()), (64, 63, 1));
        assert_eq!(m.inflight, 0);
        assert_eq!(m.entries, 1);
    }

    #[tokio::test]
    async fn values_are_served_until_the_ttl_expires() {
        let f = fixture(CacheConfig {
            refresh_ahead: 0.0,
            ..cfg(60)
        });
        assert_eq!(value(&f.cache, "app/db").await, "one");
        f.src.put("app/db", "two");
        f.clock.advance(Duration::from_secs(59));
        assert_eq!(value(&f.cache, "app/db").await, "one");
        assert_eq!(f.src.calls(), 1);
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(value(&f.cache, "app/db").await, "two");
        assert_eq!(f.src.calls(), 2);
        let m = f.cache.metrics();
        assert_eq!((m.hits, m.misses), (1, 2));
    }

    #[tokio::test]
    async fn a_read_near_expiry_returns_at_once_and_refreshes_once_in_the_background() {
        let f = fixture(CacheConfig {
            refresh_ahead: 0.2,
            ..cfg(100)
        });
        assert_eq!(value(&f.cache, "app/db").await, "one");
        f.src.put("app/db", "two");
        f.clock.advance(Duration::from_secs(79));
        assert_eq!(value(&f.cache, "app/db").await, "one");
        assert_eq!(f.cache.metrics().refreshes_ahead, 0);
        f.clock.advance(Duration::from_secs(2));
        // Upstream is slow: readers still get the cached value without waiting.
        f.src.hold();
        for _ in 0..10 {
            assert_eq!(value(&f.cache, "app/db").await, "one");
        }
        assert_eq!(f.cache.metrics().refreshes_ahead, 1);
        f.src.release();
        until(|| f.cache.metrics().inflight == 0).await;
        assert_eq!(f.src.calls(), 2);
        // The refreshed value is fresh for a whole TTL from the refresh.
        f.clock.advance(Duration::from_secs(70));
        assert_eq!(value(&f.cache, "app/db").await, "two");
        assert_eq!(f.src.calls(), 2);
        assert_eq!(f.cache.metrics().misses, 1);
    }

    #[tokio::test]
    async fn stale_if_error_serves_an_expired_value_within_its_window_only() {
        let f = fixture(CacheConfig {
            stale_if_error: Duration::from_secs(30),
            refresh_ahead: 0.0,
            ..cfg(10)
        });
        assert_eq!(value(&f.cache, "app/db").await, "one");
        f.src.set_failing(true);
        f.clock.advance(Duration::from_secs(25));
        assert_eq!(value(&f.cache, "app/db").await, "one");
        assert_eq!(f.cache.metrics().stale_served, 1);
        assert_eq!(f.cache.metrics().upstream_errors, 1);
        f.clock.advance(Duration::from_secs(15));
        let err = f.cache.get("app/db").await.unwrap_err();
        assert!(
            matches!(err.source_error(), Some(SourceError::Transport { .. })),
            "{err}"
        );
        // Past the window the value is dropped, not kept in memory.
        assert_eq!(f.cache.len(), 0);
        f.src.set_failing(false);
        assert_eq!(value(&f.cache, "app/db").await, "one");
    }

    #[tokio::test]
    async fn without_stale_if_error_an_expired_value_is_not_served() {
        let f = fixture(cfg(10));
        assert_eq!(value(&f.cache, "app/db").await, "one");
        f.src.set_failing(true);
        f.clock.advance(Duration::from_secs(10));
        assert!(f.cache.get("app/db").await.is_err());
        assert_eq!(f.cache.metrics().stale_served, 0);
    }

    #[tokio::test]
    async fn invalidating_by_name_drops_entries_read_by_arn_too() {
        let f = fixture(cfg(300));
        let arn = FakeSource::arn("app/db");
        value(&f.cache, "app/db").await;
        value(&f.cache, &arn).await;
        f.cache
            .get_version("app/db", &VersionSelector::version_id("v0"))
            .await
            .unwrap();
        value(&f.cache, "other").await;
        assert_eq!(f.cache.len(), 4);
        f.src.put("app/db", "two");
        assert_eq!(f.cache.invalidate("app/db"), 3);
        assert_eq!(f.cache.len(), 1);
        assert_eq!(value(&f.cache, &arn).await, "two");
        assert_eq!(value(&f.cache, "app/db").await, "two");
    }

    #[tokio::test]
    async fn invalidating_by_full_or_partial_arn_drops_entries_read_by_name() {
        let f = fixture(cfg(300));
        value(&f.cache, "app/db").await;
        value(&f.cache, "other").await;
        assert_eq!(f.cache.invalidate(&FakeSource::arn("app/db")), 1);
        assert_eq!(f.cache.len(), 1);
        value(&f.cache, "app/db").await;
        assert_eq!(f.cache.invalidate(&format!("{ARN_PREFIX}app/db")), 1);
        assert_eq!(f.cache.len(), 1);
        // A partial ARN must not match a longer name.
        value(&f.cache, "app/db").await;
        assert_eq!(f.cache.invalidate(&format!("{ARN_PREFIX}app")), 0);
        assert_eq!(f.cache.invalidate("nothing"), 0);
        assert_eq!(f.cache.len(), 2);
        f.cache.invalidate_all();
        assert!(f.cache.is_empty());
        assert_eq!(f.cache.metrics().invalidations, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_in_flight_during_an_invalidation_is_not_cached() {
        let f = fixture(cfg(300));
        f.src.hold();
        let c = f.cache.clone();
        let reader = tokio::spawn(async move { value(&c, "app/db").await });
        until(|| f.src.calls() == 1).await;
        f.src.put("app/db", "two");
        f.cache.invalidate(&FakeSource::arn("app/db"));
        f.src.release();
        // The reader that was waiting gets an answer (whichever value the call read) ...
        reader.await.unwrap();
        // ... but it was not cached: the next read asks upstream again.
        assert_eq!(value(&f.cache, "app/db").await, "two");
        assert_eq!(f.src.calls(), 2);
    }

    #[tokio::test]
    async fn the_least_recently_read_entry_is_evicted() {
        let f = fixture(CacheConfig {
            max_entries: 2,
            ..cfg(300)
        });
        f.src.put("third", "3");
        value(&f.cache, "app/db").await;
        value(&f.cache, "other").await;
        value(&f.cache, "app/db").await; // "other" is now the least recently read
        value(&f.cache, "third").await;
        assert_eq!(f.cache.len(), 2);
        assert_eq!(f.cache.metrics().evictions, 1);
        assert_eq!(f.src.calls(), 3);
        value(&f.cache, "app/db").await;
        assert_eq!(f.src.calls(), 3);
        value(&f.cache, "other").await;
        assert_eq!(f.src.calls(), 4);
    }

    #[tokio::test]
    async fn refresh_now_always_asks_upstream_and_caches_the_answer() {
        let f = fixture(cfg(300));
        value(&f.cache, "app/db").await;
        f.src.put("app/db", "two");
        let e = f
            .cache
            .refresh_now("app/db", &VersionSelector::current())
            .await
            .unwrap();
        assert_eq!(e.secret_string(), Some("two"));
        assert_eq!(value(&f.cache, "app/db").await, "two");
        assert_eq!(f.src.calls(), 2);
    }

    #[tokio::test]
    async fn get_uncached_neither_reads_nor_fills_the_cache() {
        let f = fixture(cfg(300));
        value(&f.cache, "app/db").await;
        f.src.set_pending("app/db", "next");
        let p = f
            .cache
            .get_uncached("app/db", &VersionSelector::pending())
            .await
            .unwrap();
        assert_eq!(p.secret_string(), Some("next"));
        assert_eq!(f.cache.len(), 1);
        assert_eq!(f.cache.metrics().upstream_total(), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_say_what_failed() {
        let f = fixture(cfg(300));
        let err = f.cache.get("missing").await.unwrap_err();
        assert!(err.source_error().unwrap().is_not_found(), "{err}");
        f.src.put("missing", "now here");
        assert_eq!(value(&f.cache, "missing").await, "now here");
    }

    #[tokio::test]
    async fn a_panicking_source_does_not_leave_readers_waiting() {
        let f = fixture(cfg(300));
        f.src.set_panicking(true);
        let err = f.cache.get("app/db").await.unwrap_err();
        assert!(matches!(err, CacheError::Abandoned { .. }), "{err}");
        assert_eq!(f.cache.metrics().inflight, 0);
        f.src.set_panicking(false);
        assert_eq!(value(&f.cache, "app/db").await, "one");
    }

    #[test]
    fn bad_configurations_are_refused_with_the_fix() {
        let src = FakeSource::new();
        let e = SecretCache::new(
            src,
            CacheConfig {
                refresh_ahead: 1.0,
                ..CacheConfig::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("below 1.0"), "{e}");
        let e = SecretCache::new(
            FakeSource::new(),
            CacheConfig {
                max_entries: 0,
                ..CacheConfig::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }
}
