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

/// AWS's regions (commercial, GovCloud, China, European Sovereign Cloud): the only region
/// names a request may create a namespace for, so that a caller cannot make the server hold
/// an unbounded number of them.
pub const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Whether `name` is one of [`AWS_REGIONS`].
pub fn is_aws_region(name: &str) -> bool {
    AWS_REGIONS.binary_search(&name).is_ok()
}

fn unknown_region(name: &str) -> SmError {
    let shown: String = name.chars().take(64).collect();
    SmError::InvalidParameter(format!(
        "{shown:?} is not an AWS region. Use one of AWS's region names, e.g. us-east-1 or \
         eu-west-1 (the region of your client's configuration, AWS_REGION or --region)."
    ))
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
        if name.starts_with('_') {
            // keyroll's internal namespaces are reached through `internal_region` only.
            return Err(unknown_region(name));
        }
        self.open_region(name, false)
    }

    /// One of keyroll's own namespaces (`_…`, e.g. STS sessions): never a request's region
    /// (SigV4 scopes cannot name it, and [`Store::region`] refuses it), never listed by
    /// [`Store::all`].
    pub fn internal_region(&self, name: &str) -> Result<Service<R>, SmError> {
        if !name.starts_with('_') {
            return Err(SmError::InternalServiceError(format!(
                "{name:?} is not an internal region name (they start with '_')"
            )));
        }
        self.open_region(name, true)
    }

    fn open_region(&self, name: &str, internal: bool) -> Result<Service<R>, SmError> {
        if let Some(s) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(s.clone());
        }
        // Regions outside AWS's list stay reachable only if the store already holds secrets
        // there (written before this check existed).
        if !internal && !is_aws_region(name) && !self.regions.known()?.iter().any(|k| k == name) {
            return Err(unknown_region(name));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_list_is_sorted_and_well_formed() {
        assert!(AWS_REGIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(AWS_REGIONS.iter().all(|r| {
            r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }));
        assert!(is_aws_region("us-east-1") && is_aws_region("eu-west-3"));
        assert!(!is_aws_region("us-east-9") && !is_aws_region("attacker-1"));
    }

    #[test]
    fn only_aws_regions_open_new_namespaces() {
        let clock: Arc<dyn Clock> = Arc::new(keyroll_core::time::SystemClock);
        let store = Store::new(MemoryRegions::new("000000000000", clock));
        assert!(store.region("eu-west-1").is_ok());
        for bad in ["zz-fake-1", "x", ""] {
            let e = store.region(bad).err().expect("refused");
            assert_eq!(e.aws_type(), "InvalidParameterException");
            assert!(e.message().contains("us-east-1"), "{e}");
        }
        assert_eq!(store.all().unwrap().len(), 1);
    }
}
