//! An in-memory [`Backend`]: the reference store for tests of everything above the
//! persistence layer. Nothing survives the process.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::SmError;
use crate::ids::{Namespace, SecretRef};
use crate::model::SecretRecord;
use crate::ports::RotationLock;
use crate::service::{Backend, Change, CommitError, SecretsService};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::value::SecretValue;

#[derive(Default)]
struct State {
    records: HashMap<String, SecretRecord>,
    values: HashMap<(String, String), SecretValue>,
}

/// Secrets kept in a `HashMap`, with rotation locks held in-process.
#[derive(Clone)]
pub struct MemoryBackend {
    ns: Namespace,
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<State>>,
    locks: Arc<Mutex<HashSet<String>>>,
}

impl MemoryBackend {
    pub fn new(ns: Namespace, clock: Arc<dyn Clock>) -> Self {
        MemoryBackend {
            ns,
            clock,
            state: Default::default(),
            locks: Default::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A [`SecretsService`] over a fresh [`MemoryBackend`] in `us-east-1`, account
/// `000000000000`, on the system clock.
pub fn memory_service() -> SecretsService<MemoryBackend> {
    SecretsService::new(MemoryBackend::new(
        Namespace::new("us-east-1", "000000000000"),
        Arc::new(SystemClock),
    ))
}

struct Unlock {
    arn: String,
    locks: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Unlock {
    fn drop(&mut self) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.arn);
    }
}

impl Backend for MemoryBackend {
    fn namespace(&self) -> &Namespace {
        &self.ns
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn find(&self, r: &SecretRef) -> Result<Option<SecretRecord>, SmError> {
        let st = self.state();
        if let SecretRef::Arn(_, full) = r
            && let Some(rec) = st.records.get(full)
        {
            return Ok(Some(rec.clone()));
        }
        Ok(st
            .records
            .values()
            .find(|rec| r.matches(&rec.arn, &rec.name))
            .cloned())
    }

    fn for_each(&self, f: &mut dyn FnMut(&SecretRecord)) -> Result<(), SmError> {
        let st = self.state();
        for r in st.records.values() {
            f(r);
        }
        Ok(())
    }

    fn read_value(&self, record: &SecretRecord, version_id: &str) -> Result<SecretValue, SmError> {
        self.state()
            .values
            .get(&(record.arn.clone(), version_id.to_string()))
            .cloned()
            .ok_or_else(|| SmError::no_value_for_version(version_id))
    }

    fn commit(&self, change: Change<'_>) -> Result<(), CommitError> {
        let mut st = self.state();
        match change {
            Change::Insert { record, value } => {
                if st.records.values().any(|r| r.name == record.name) {
                    return Err(CommitError::NameTaken);
                }
                st.records.insert(record.arn.clone(), record.clone());
                if let Some((vid, v)) = value {
                    st.values
                        .insert((record.arn.clone(), vid.to_string()), v.clone());
                }
            }
            Change::Update {
                record,
                value,
                removed_versions,
            } => {
                let stored = st.records.get(&record.arn).map(|r| r.revision);
                if stored != Some(record.revision - 1) {
                    return Err(CommitError::Conflict);
                }
                st.records.insert(record.arn.clone(), record.clone());
                if let Some((vid, v)) = value {
                    st.values
                        .insert((record.arn.clone(), vid.to_string()), v.clone());
                }
                for vid in removed_versions {
                    st.values.remove(&(record.arn.clone(), vid.clone()));
                }
            }
            Change::Purge { arn } => {
                st.records.remove(arn);
                st.values.retain(|(a, _), _| a != arn);
            }
        }
        Ok(())
    }

    fn try_lock_rotation(&self, arn: &str) -> Result<Option<RotationLock>, SmError> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if !locks.insert(arn.to_string()) {
            return Ok(None);
        }
        Ok(Some(RotationLock(Box::new(Unlock {
            arn: arn.to_string(),
            locks: self.locks.clone(),
        }))))
    }
}
