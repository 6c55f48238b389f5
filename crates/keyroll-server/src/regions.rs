//! Regions: each is a separate namespace of secrets, its own [`SecretsService`]. The server
//! works over any store that hands out one service per region ([`Regions`]); the embedded
//! store and the in-memory backend both do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use keyroll_core::SmError;
use keyroll_core::ids::Namespace;
use keyroll_core::memory::MemoryBackend;
use keyroll_core::model::ReplicaStatus;
use keyroll_core::operations::{record_replica_status, sync_replica};
use keyroll_core::service::{Backend, SecretsService};
use keyroll_core::time::Clock;

/// A store made of regions.
pub trait Regions: Send + Sync + 'static {
    type Backend: Backend + 'static;
    /// The service of one region (created on first use).
    fn open(&self, region: &str) -> Result<SecretsService<Self::Backend>, SmError>;
    /// Every region that holds secrets (for the scheduler, the purge job and metrics).
    fn known(&self) -> Result<Vec<String>, SmError>;
}

/// Regions kept in memory: nothing survives the process. For tests and `--in-memory` runs.
#[derive(Clone)]
pub struct MemoryRegions {
    account: String,
    clock: Arc<dyn Clock>,
    backends: Arc<Mutex<HashMap<String, MemoryBackend>>>,
}

impl MemoryRegions {
    pub fn new(account: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        MemoryRegions {
            account: account.into(),
            clock,
            backends: Default::default(),
        }
    }
}

impl Regions for MemoryRegions {
    type Backend = MemoryBackend;

    fn open(&self, region: &str) -> Result<SecretsService<MemoryBackend>, SmError> {
        let mut b = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        let backend = b
            .entry(region.to_string())
            .or_insert_with(|| {
                MemoryBackend::new(
                    Namespace::new(region, self.account.clone()),
                    self.clock.clone(),
                )
            })
            .clone();
        Ok(SecretsService::new(backend))
    }

    fn known(&self) -> Result<Vec<String>, SmError> {
        let b = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = b.keys().cloned().collect();
        v.sort();
        Ok(v)
    }
}

/// Services by region, opened once and shared.
pub struct Store<R: Regions> {
    regions: R,
    cache: RwLock<HashMap<String, Arc<SecretsService<R::Backend>>>>,
}

pub type Service<R> = Arc<SecretsService<<R as Regions>::Backend>>;

impl<R: Regions> Store<R> {
    pub fn new(regions: R) -> Self {
        Store {
            regions,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn regions(&self) -> &R {
        &self.regions
    }

    pub fn region(&self, name: &str) -> Result<Service<R>, SmError> {
        if let Some(s) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(s.clone());
        }
        let mut w = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = w.get(name) {
            return Ok(s.clone());
        }
        let s = Arc::new(self.regions.open(name)?);
        w.insert(name.to_string(), s.clone());
        Ok(s)
    }

    /// Every region with secrets, plus the ones opened since start; not keyroll's internal
    /// regions (STS sessions), which the scheduler, the purge job and metrics must not see.
    pub fn all(&self) -> Result<Vec<(String, Service<R>)>, SmError> {
        let mut names = self.regions.known()?;
        names.extend(
            self.cache
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned(),
        );
        names.retain(|n| !crate::sts::sessions::is_internal_region(n));
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| Ok((n.clone(), self.region(&n)?)))
            .collect()
    }

    /// Brings every replica of the primary secret `arn` (in `region`) up to date, recording
    /// each replica's status on the primary. Does nothing for a secret without replicas.
    pub fn sync_replicas(&self, region: &str, arn: &str) -> Result<(), SmError> {
        let primary = self.region(region)?;
        let rec = match primary.find(arn) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if rec.replicas.is_empty() || rec.is_replica() {
            return Ok(());
        }
        for r in &rec.replicas {
            let replica = self.region(&r.region)?;
            let outcome = sync_replica(&primary, &replica, &rec.arn, false);
            let (status, message) = match &outcome {
                Ok(()) => ("InSync", None),
                Err(e) => ("Failed", Some(e.message().to_string())),
            };
            if r.status != status || r.status_message != message {
                record_replica_status(
                    &primary,
                    &rec.arn,
                    ReplicaStatus {
                        region: r.region.clone(),
                        kms_key_id: r.kms_key_id.clone(),
                        status: status.into(),
                        status_message: message,
                        last_accessed_date: None,
                    },
                )?;
            }
            if let Err(e) = outcome {
                tracing::warn!(secret = %rec.arn, replica = %r.region, error = %e, "replica out of sync");
            }
        }
        Ok(())
    }
}

/// The embedded store: regions share one encrypted SQLite file.
impl Regions for keyroll_store::embedded::EmbeddedStore {
    type Backend = keyroll_store::embedded::EmbeddedBackend;

    fn open(&self, region: &str) -> Result<SecretsService<Self::Backend>, SmError> {
        Ok(self.region(region))
    }

    fn known(&self) -> Result<Vec<String>, SmError> {
        self.regions()
            .map_err(|e| SmError::InternalServiceError(e.to_string()))
    }
}
