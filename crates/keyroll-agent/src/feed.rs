//! Following `keyroll serve`'s change feed (`GET /keyroll/changes`, a SigV4-signed long poll):
//! every change of a secret invalidates what the cache holds for it, so the next read gets
//! the new `AWSCURRENT` at once instead of when the TTL runs out. When the server cannot be
//! reached the agent keeps serving its cache and reconnects with capped, jittered backoff;
//! when the server says the cursor cannot be served (it restarted, or the agent fell behind)
//! the whole cache is invalidated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use keyroll_cache::{SecretCache, SecretSource};
use serde::Deserialize;
use tokio::sync::watch;

/// How long one poll waits for a change at the server.
pub const POLL_WAIT_SECS: u64 = 20;

/// Counters and state of the follower (for `/metrics`).
#[derive(Debug, Default)]
pub struct FeedStats {
    /// 1 while the last poll succeeded.
    pub connected: AtomicU64,
    pub events: AtomicU64,
    pub invalidations: AtomicU64,
    pub resyncs: AtomicU64,
    pub failures: AtomicU64,
    /// Successful polls (each one a long poll answered).
    pub polls: AtomicU64,
}

impl FeedStats {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire) == 1
    }
}

/// Where and as whom to poll.
#[derive(Clone)]
pub struct FeedUpstream {
    /// `keyroll serve`'s base URL, e.g. `http://127.0.0.1:7150`.
    pub endpoint: String,
    pub region: String,
    pub credentials: SharedCredentialsProvider,
}

impl std::fmt::Debug for FeedUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedUpstream")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Event {
    arn: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Answer {
    epoch: String,
    next: u64,
    #[serde(default)]
    events: Vec<Event>,
}

/// What one poll came to.
#[derive(Debug)]
enum Outcome {
    Events(Answer),
    /// 410: start over from `next` of `epoch`, everything invalidated.
    Resync {
        epoch: String,
        next: u64,
    },
    /// The upstream has no change feed (404: not keyroll serve).
    NoFeed,
    Failed(String),
}

/// Why a poll could not even be signed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no AWS credentials to sign the change feed's requests with: {0}")]
    Credentials(String),
    #[error("cannot sign the change feed request: {0}")]
    Sign(String),
}

async fn signed_get(
    client: &reqwest::Client,
    up: &FeedUpstream,
    url: &str,
    timeout: Duration,
) -> Result<reqwest::Response, String> {
    let creds = up
        .credentials
        .provide_credentials()
        .await
        .map_err(|e| FeedError::Credentials(e.to_string()).to_string())?;
    let identity = creds.into();
    let settings = aws_sigv4::http_request::SigningSettings::default();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&up.region)
        .name("secretsmanager")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| FeedError::Sign(e.to_string()).to_string())?
        .into();
    let host = url
        .split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or(""))
        .unwrap_or("");
    let headers = [("host", host)];
    let signable = aws_sigv4::http_request::SignableRequest::new(
        "GET",
        url,
        headers.into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(b""),
    )
    .map_err(|e| FeedError::Sign(e.to_string()).to_string())?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| FeedError::Sign(e.to_string()).to_string())?
        .into_parts();
    let mut req = client.get(url).timeout(timeout);
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    req.send().await.map_err(|e| e.to_string())
}

async fn poll_once(
    client: &reqwest::Client,
    up: &FeedUpstream,
    cursor: Option<(&str, u64)>,
    wait: u64,
) -> Outcome {
    let url = match cursor {
        Some((epoch, since)) => format!(
            "{}/keyroll/changes?epoch={epoch}&since={since}&wait={wait}",
            up.endpoint
        ),
        None => format!("{}/keyroll/changes", up.endpoint),
    };
    let resp = match signed_get(client, up, &url, Duration::from_secs(wait + 10)).await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e),
    };
    let status = resp.status().as_u16();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match status {
        200 => match serde_json::from_slice::<Answer>(&body) {
            Ok(a) => Outcome::Events(a),
            Err(e) => Outcome::Failed(format!("the change feed's answer is not readable: {e}")),
        },
        410 => match serde_json::from_slice::<Answer>(&body) {
            Ok(a) => Outcome::Resync {
                epoch: a.epoch,
                next: a.next,
            },
            Err(e) => Outcome::Failed(format!("the change feed's answer is not readable: {e}")),
        },
        404 => Outcome::NoFeed,
        s => Outcome::Failed(format!(
            "HTTP {s}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        )),
    }
}

/// One signed `GET /keyroll/changes` (for tools and tests): the status and the JSON body.
/// `cursor` is `(epoch, since)`; `None` asks for the current position.
pub async fn poll_changes(
    up: &FeedUpstream,
    cursor: Option<(&str, u64)>,
    wait: u64,
) -> Result<(u16, serde_json::Value), String> {
    let client = reqwest::Client::new();
    let url = match cursor {
        Some((epoch, since)) => format!(
            "{}/keyroll/changes?epoch={epoch}&since={since}&wait={wait}",
            up.endpoint
        ),
        None => format!("{}/keyroll/changes", up.endpoint),
    };
    let resp = signed_get(&client, up, &url, Duration::from_secs(wait + 10)).await?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((status, v))
}

/// Reconnection delays: from 50 ms doubling to 2 s, with jitter.
fn backoff(failures: u32) -> Duration {
    let base = 50u64 << failures.min(6);
    let capped = base.min(2000);
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) % (capped / 2 + 1))
        .unwrap_or(0);
    Duration::from_millis(capped / 2 + jitter)
}

/// Follows the feed until `stop` turns true, invalidating `cache` on every change.
pub async fn follow<S: SecretSource>(
    up: FeedUpstream,
    cache: SecretCache<S>,
    stats: Arc<FeedStats>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the change feed's HTTP client cannot be built; following the TTL only");
            return;
        }
    };
    let mut cursor: Option<(String, u64)> = None;
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let outcome = tokio::select! {
            o = poll_once(&client, &up, cursor.as_ref().map(|(e, s)| (e.as_str(), *s)), POLL_WAIT_SECS) => o,
            _ = stop.changed() => return,
        };
        match outcome {
            Outcome::Events(a) => {
                stats.polls.fetch_add(1, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(endpoint = %up.endpoint, "change feed reconnected");
                }
                failures = 0;
                match &cursor {
                    // A fresh subscription (at start): changes before it were not seen.
                    None => {
                        cache.invalidate_all();
                        stats.invalidations.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {
                        for e in &a.events {
                            stats.events.fetch_add(1, Ordering::Relaxed);
                            cache.invalidate(&e.arn);
                            cache.invalidate(&e.name);
                            stats.invalidations.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                cursor = Some((a.epoch, a.next));
                stats.connected.store(1, Ordering::Release);
            }
            Outcome::Resync { epoch, next } => {
                tracing::info!(
                    "change feed: resync (the server restarted or the agent fell behind); cache invalidated"
                );
                stats.polls.fetch_add(1, Ordering::Relaxed);
                stats.resyncs.fetch_add(1, Ordering::Relaxed);
                failures = 0;
                cache.invalidate_all();
                stats.invalidations.fetch_add(1, Ordering::Relaxed);
                cursor = Some((epoch, next));
                stats.connected.store(1, Ordering::Release);
            }
            Outcome::NoFeed => {
                tracing::info!(endpoint = %up.endpoint, "upstream has no change feed (not keyroll serve): values follow the TTL only");
                stats.connected.store(0, Ordering::Release);
                return;
            }
            Outcome::Failed(e) => {
                stats.connected.store(0, Ordering::Release);
                stats.failures.fetch_add(1, Ordering::Relaxed);
                if failures == 0 {
                    tracing::warn!(endpoint = %up.endpoint, error = %e, "change feed lost; serving cached values and reconnecting");
                }
                let d = backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for f in 0..20 {
            let d = backoff(f);
            assert!(d <= Duration::from_millis(2000), "{f}: {d:?}");
            assert!(d >= Duration::from_millis(25), "{f}: {d:?}");
        }
        assert!(backoff(10) >= Duration::from_millis(1000));
    }
}
