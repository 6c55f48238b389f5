//! Shared by the zero-downtime tests: keyroll's in-memory Secrets Manager as the cache's
//! source, rotations by keyroll's engine, and an application that queries continuously.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keyroll_cache::{SecretEntry, SecretPayload, SecretSource, SourceError, VersionSelector};
use keyroll_core::api::GetSecretValueRequest;
use keyroll_core::engine::{RotateOptions, Silent, rotate};
use keyroll_core::memory::{MemoryBackend, memory_service};
use keyroll_core::ports::{SecretsApi, Target};
use keyroll_core::service::SecretsService;
use tokio::sync::watch;

pub type Svc = SecretsService<MemoryBackend>;

pub const INITIAL: &str = "Initial-Pa55word";

/// Queries the application makes between two rotations (at least).
pub const QUERIES_BETWEEN: usize = 4;

/// keyroll's Secrets Manager (in memory) as a cache source.
#[derive(Clone)]
pub struct KeyrollSource(pub Arc<Svc>);

#[async_trait]
impl SecretSource for KeyrollSource {
    async fn get_secret_value(
        &self,
        secret_id: &str,
        version: &VersionSelector,
    ) -> Result<SecretEntry, SourceError> {
        let (version_id, version_stage) = match version {
            VersionSelector::Stage(s) => (None, Some(s.clone())),
            VersionSelector::VersionId(v) => (Some(v.clone()), None),
        };
        let r = self
            .0
            .get_secret_value(GetSecretValueRequest {
                secret_id: secret_id.into(),
                version_id,
                version_stage,
            })
            .await
            .map_err(|e| SourceError::Service {
                code: e.aws_type().to_string(),
                message: e.message().to_string(),
                status: Some(400),
            })?;
        let value = match (r.secret_string, r.secret_binary) {
            (Some(s), _) => SecretPayload::String(s),
            (None, Some(b)) => SecretPayload::Binary(b),
            (None, None) => {
                return Err(SourceError::InvalidResponse {
                    message: "no value".into(),
                });
            }
        };
        Ok(SecretEntry {
            arn: r.arn,
            name: r.name,
            version_id: r.version_id,
            version_stages: r.version_stages,
            created_date: None,
            value,
        })
    }
}

pub fn service() -> Arc<Svc> {
    Arc::new(memory_service())
}

/// Stores a rotatable single-user secret; returns its ARN.
pub async fn put_secret(svc: &Svc, name: &str, value: &serde_json::Value) -> String {
    keyroll_core::testing::rotatable_secret(svc, name, &value.to_string(), &[], None)
        .await
        .unwrap()
}

/// What an application saw while rotations ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub rotations: usize,
    pub queries: u64,
    pub failed: u64,
    pub elapsed_ms: u128,
}

/// Runs `workers` application tasks calling `query(n)` in a loop while `rotations`
/// rotations of `arn` run back to back, each once the application has made at least
/// [`QUERIES_BETWEEN`] more queries. Returns the counts; the first failures are printed.
pub async fn run<Q, Fut>(
    svc: Arc<Svc>,
    target: Arc<dyn Target>,
    arn: &str,
    rotations: usize,
    workers: usize,
    query: Q,
) -> Outcome
where
    Q: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let started = Instant::now();
    let (tx, mut rx) = watch::channel(0u64);
    let tx = Arc::new(tx);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (query, tx, stop, failed, errors) = (
            query.clone(),
            Arc::clone(&tx),
            Arc::clone(&stop),
            Arc::clone(&failed),
            Arc::clone(&errors),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = w as u64;
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = query(n).await {
                    failed.fetch_add(1, Ordering::SeqCst);
                    let mut errs = errors.lock().unwrap();
                    if errs.len() < 3 {
                        errs.push(e);
                    }
                }
                n += workers as u64;
                tx.send_modify(|q| *q += 1);
            }
        }));
    }
    let opts = RotateOptions::default();
    for i in 0..rotations {
        let want = *rx.borrow() + QUERIES_BETWEEN as u64;
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|q| *q >= want))
            .await
            .expect("the application keeps running")
            .unwrap();
        rotate(&*svc, &*target, arn, &opts, &Silent)
            .await
            .unwrap_or_else(|e| panic!("rotation {i}: {e}"));
    }
    let want = *rx.borrow() + QUERIES_BETWEEN as u64;
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|q| *q >= want))
        .await
        .expect("the application keeps running")
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let queries = *rx.borrow();
    for e in errors.lock().unwrap().iter() {
        eprintln!("failed query: {e}");
    }
    Outcome {
        rotations,
        queries,
        failed: failed.load(Ordering::SeqCst),
        elapsed_ms: started.elapsed().as_millis(),
    }
}
