//! [`FakeSource`]: an in-memory [`SecretSource`] for tests of code built on the cache. It
//! counts calls, can fail or be held (each call waits until released) and rotates on demand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::source::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretEntry, SecretPayload, SecretSource, SourceError,
    VersionSelector,
};

/// The ARN prefix of the fake's secrets.
pub const ARN_PREFIX: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:";

#[derive(Default)]
struct FakeSecret {
    /// Values by version number (version id `v{n}`); the last is AWSCURRENT.
    versions: Vec<String>,
    pending: Option<String>,
}

/// An in-memory secret source.
#[derive(Default)]
pub struct FakeSource {
    secrets: Mutex<HashMap<String, FakeSecret>>,
    calls: AtomicU64,
    failing: AtomicBool,
    panicking: AtomicBool,
    gate: Mutex<Option<Arc<Semaphore>>>,
}

impl FakeSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// The full ARN of secret `name` (suffix `-AbCdEf`).
    pub fn arn(name: &str) -> String {
        format!("{ARN_PREFIX}{name}-AbCdEf")
    }

    /// Adds a new AWSCURRENT version of `name` holding `value` (creating the secret).
    pub fn put(&self, name: &str, value: &str) {
        let mut s = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        let secret = s.entry(name.to_string()).or_default();
        secret.versions.push(value.to_string());
        secret.pending = None;
    }

    /// Stages `value` as AWSPENDING of `name` (a rotation in progress).
    pub fn set_pending(&self, name: &str, value: &str) {
        let mut s = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        s.entry(name.to_string()).or_default().pending = Some(value.to_string());
    }

    /// Upstream calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// While set, every call fails with a transport error.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// While set, every call panics (to test abandoned calls).
    pub fn set_panicking(&self, panicking: bool) {
        self.panicking.store(panicking, Ordering::SeqCst);
    }

    /// From now on every call waits until [`FakeSource::release`].
    pub fn hold(&self) {
        *self.gate.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets held calls (and later ones) through.
    pub fn release(&self) {
        if let Some(g) = self.gate.lock().unwrap_or_else(|p| p.into_inner()).take() {
            g.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    fn name_of(id: &str) -> String {
        match id.strip_prefix(ARN_PREFIX) {
            Some(rest) => match rest.rsplit_once('-') {
                Some((name, suffix)) if suffix.len() == 6 => name.to_string(),
                _ => rest.to_string(),
            },
            None => id.to_string(),
        }
    }
}

fn not_found(msg: String) -> SourceError {
    SourceError::Service {
        code: "ResourceNotFoundException".into(),
        message: msg,
        status: Some(400),
    }
}

#[async_trait]
impl SecretSource for FakeSource {
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(g) = gate {
            let permit = g.acquire().await.map_err(|_| SourceError::Transport {
                message: "gate closed".into(),
            })?;
            permit.forget();
        }
        if self.panicking.load(Ordering::SeqCst) {
            panic!("FakeSource told to panic");
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(SourceError::Transport {
                message: "connection refused (FakeSource told to fail)".into(),
            });
        }
        let name = Self::name_of(secret_id);
        let s = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        let secret = s.get(&name).ok_or_else(|| {
            not_found(format!(
                "Secrets Manager can't find the specified secret {name}"
            ))
        })?;
        let last = secret.versions.len().checked_sub(1);
        let (n, value, stages) = match version {
            VersionSelector::Stage(st) if st == AWSCURRENT => {
                let n = last.ok_or_else(|| not_found("no AWSCURRENT".into()))?;
                (n.to_string(), secret.versions[n].clone(), vec![AWSCURRENT])
            }
            VersionSelector::Stage(st) if st == AWSPREVIOUS => {
                let n = last
                    .and_then(|l| l.checked_sub(1))
                    .ok_or_else(|| not_found("no AWSPREVIOUS".into()))?;
                (n.to_string(), secret.versions[n].clone(), vec![AWSPREVIOUS])
            }
            VersionSelector::Stage(st) if st == AWSPENDING => {
                let v = secret
                    .pending
                    .clone()
                    .ok_or_else(|| not_found("no AWSPENDING".into()))?;
                ("pending".to_string(), v, vec![AWSPENDING])
            }
            VersionSelector::Stage(st) => return Err(not_found(format!("no label {st}"))),
            VersionSelector::VersionId(id) => {
                let n: usize = id
                    .strip_prefix('v')
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n < secret.versions.len())
                    .ok_or_else(|| not_found(format!("no version {id}")))?;
                (n.to_string(), secret.versions[n].clone(), vec![])
            }
        };
        Ok(SecretEntry {
            arn: Self::arn(&name),
            name,
            version_id: format!("v{n}"),
            version_stages: stages.into_iter().map(String::from).collect(),
            created_date: None,
            value: SecretPayload::String(SecretString::from(value)),
        })
    }
}
