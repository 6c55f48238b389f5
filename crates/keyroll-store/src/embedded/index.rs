//! The in-memory index that serves reads: every secret's record, wrapped data key and sealed
//! values (never a plaintext), kept coherent with the database file.
//!
//! Every committed transaction takes the next value of a global change counter (`meta.seq`)
//! and stamps it on each row it writes (`secrets.seq`, `secret_values.seq`) and on a marker
//! for each secret it purges (`purged`). A process that has loaded everything up to
//! `last_seq` catches up by reading the rows with a larger `seq`, in one read transaction;
//! `PRAGMA data_version` tells cheaply whether any other connection committed at all. Purge
//! markers are pruned beyond [`KEEP_PURGED`]; `meta.purged_floor` remembers the newest pruned
//! one, and a process that is further behind reloads everything.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use keyroll_core::model::SecretRecord;
use rusqlite::{Connection, OptionalExtension, params};

use super::crypto::{self, CryptoError, Key};

/// Purge markers kept before the oldest are pruned.
pub const KEEP_PURGED: i64 = 10_000;

/// A secret's wrapped data key and, once needed, the unwrapped key (wiped on drop).
pub struct KeySlot {
    pub wrapped: Vec<u8>,
    plain: OnceLock<Key>,
}

impl KeySlot {
    pub fn new(wrapped: Vec<u8>) -> Self {
        KeySlot {
            wrapped,
            plain: OnceLock::new(),
        }
    }

    pub fn with_key(wrapped: Vec<u8>, key: Key) -> Self {
        let plain = OnceLock::new();
        let _ = plain.set(key);
        KeySlot { wrapped, plain }
    }

    /// The data key, unwrapped on first use.
    pub fn key(&self, master: &Key, arn: &str) -> Result<&Key, CryptoError> {
        if let Some(k) = self.plain.get() {
            return Ok(k);
        }
        let k = crypto::unwrap_key(master, arn, &self.wrapped)?;
        Ok(self.plain.get_or_init(|| k))
    }
}

/// One secret as the index holds it.
#[derive(Clone)]
pub struct Entry {
    pub region: Arc<str>,
    /// The change counter of the transaction that last wrote this secret.
    pub seq: i64,
    pub record: Arc<SecretRecord>,
    pub key: Arc<KeySlot>,
    /// Version id → sealed value.
    pub values: Arc<HashMap<String, Arc<[u8]>>>,
}

/// A `secrets` row, its record already parsed.
pub struct SecretRow {
    pub arn: String,
    pub region: String,
    pub seq: i64,
    pub record: SecretRecord,
    pub wrapped: Vec<u8>,
}

/// A `secret_values` row.
pub struct ValueRow {
    pub arn: String,
    pub version_id: String,
    pub sealed: Vec<u8>,
}

/// Rows read in one transaction.
pub struct Snapshot {
    /// Everything (the index is rebuilt) or only rows changed after the index's `last_seq`.
    pub full: bool,
    /// `meta.seq` when read: everything up to it is in the snapshot.
    pub counter: i64,
    pub secrets: Vec<SecretRow>,
    pub values: Vec<ValueRow>,
    pub purged: Vec<(String, i64)>,
}

/// Why the database could not be read into the index.
#[derive(Debug)]
pub enum LoadError {
    Sql(rusqlite::Error),
    /// A stored record does not parse.
    Damaged {
        arn: String,
        detail: String,
    },
}

impl From<rusqlite::Error> for LoadError {
    fn from(e: rusqlite::Error) -> Self {
        LoadError::Sql(e)
    }
}

fn parse_row(
    arn: String,
    region: String,
    seq: i64,
    json: &str,
    wrapped: Vec<u8>,
) -> Result<SecretRow, LoadError> {
    let record: SecretRecord = serde_json::from_str(json).map_err(|e| LoadError::Damaged {
        arn: arn.clone(),
        detail: e.to_string(),
    })?;
    if record.arn != arn {
        return Err(LoadError::Damaged {
            arn,
            detail: "the record names another ARN".into(),
        });
    }
    Ok(SecretRow {
        arn,
        region,
        seq,
        record,
        wrapped,
    })
}

/// Reads what changed after `since` (everything when `since` is negative, or when purge
/// markers newer than `since` were pruned), in one read transaction.
pub fn load_snapshot(conn: &mut Connection, since: i64) -> Result<Snapshot, LoadError> {
    let tx = conn.transaction()?;
    let meta = |k: &str| -> rusqlite::Result<i64> {
        tx.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([k], |r| r.get(0))
    };
    let counter = meta("seq")?;
    let floor = meta("purged_floor")?;
    let since = if since < floor { -1 } else { since };
    let mut secrets = Vec::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT arn, region, seq, record, wrapped_key FROM secrets WHERE seq > ?1",
        )?;
        let mut rows = st.query([since])?;
        while let Some(r) = rows.next()? {
            let json: String = r.get(3)?;
            secrets.push(parse_row(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                &json,
                r.get(4)?,
            )?);
        }
    }
    let values = {
        let mut st =
            tx.prepare_cached("SELECT arn, version_id, sealed FROM secret_values WHERE seq > ?1")?;
        st.query_map([since], |r| {
            Ok(ValueRow {
                arn: r.get(0)?,
                version_id: r.get(1)?,
                sealed: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let purged = if since < 0 {
        Vec::new()
    } else {
        tx.prepare_cached("SELECT arn, seq FROM purged WHERE seq > ?1")?
            .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.commit()?;
    Ok(Snapshot {
        full: since < 0,
        counter,
        secrets,
        values,
        purged,
    })
}

/// The committed state of one secret: its row (if it still exists) and all its values.
pub fn load_secret(
    conn: &Connection,
    arn: &str,
) -> Result<Option<(SecretRow, Vec<ValueRow>)>, LoadError> {
    let row = conn
        .prepare_cached("SELECT region, seq, record, wrapped_key FROM secrets WHERE arn = ?1")?
        .query_row([arn], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
            ))
        })
        .optional()?;
    let Some((region, seq, json, wrapped)) = row else {
        return Ok(None);
    };
    let row = parse_row(arn.to_string(), region, seq, &json, wrapped)?;
    let values = conn
        .prepare_cached("SELECT version_id, sealed FROM secret_values WHERE arn = ?1")?
        .query_map(params![arn], |r| {
            Ok(ValueRow {
                arn: arn.to_string(),
                version_id: r.get(0)?,
                sealed: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((row, values)))
}

/// What one of this process's own commits wrote, to apply without reading it back.
pub enum Written {
    Insert {
        region: Arc<str>,
        record: Arc<SecretRecord>,
        key: Arc<KeySlot>,
        value: Option<(String, Arc<[u8]>)>,
    },
    Update {
        region: Arc<str>,
        record: Arc<SecretRecord>,
        value: Option<(String, Arc<[u8]>)>,
    },
    Purge {
        arn: String,
    },
}

#[derive(Default)]
pub struct Index {
    entries: HashMap<String, Entry>,
    /// Region → name → ARN.
    names: HashMap<String, HashMap<String, String>>,
    /// Every commit up to this change counter is reflected (later ones may be, too).
    pub last_seq: i64,
}

impl Index {
    pub fn new() -> Self {
        Index {
            last_seq: -1,
            ..Default::default()
        }
    }

    pub fn get(&self, arn: &str) -> Option<&Entry> {
        self.entries.get(arn)
    }

    pub fn by_name(&self, region: &str, name: &str) -> Option<&Entry> {
        self.names
            .get(region)?
            .get(name)
            .and_then(|arn| self.entries.get(arn))
    }

    pub fn records_in(&self, region: &str) -> Vec<Arc<SecretRecord>> {
        let Some(names) = self.names.get(region) else {
            return Vec::new();
        };
        names
            .values()
            .filter_map(|arn| self.entries.get(arn))
            .map(|e| e.record.clone())
            .collect()
    }

    /// Regions holding at least one secret, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut r: Vec<String> = self.names.keys().cloned().collect();
        r.sort();
        r
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn put(&mut self, arn: String, entry: Entry) {
        let names = self.names.entry(entry.region.to_string()).or_default();
        names.insert(entry.record.name.clone(), arn.clone());
        self.entries.insert(arn, entry);
    }

    fn remove(&mut self, arn: &str) {
        let Some(e) = self.entries.remove(arn) else {
            return;
        };
        if let Some(names) = self.names.get_mut(&*e.region) {
            if names.get(&e.record.name).is_some_and(|a| a == arn) {
                names.remove(&e.record.name);
            }
            if names.is_empty() {
                self.names.remove(&*e.region);
            }
        }
    }

    /// The key slot to use for `wrapped`: the existing one when it is the same key, so an
    /// unwrapped key survives updates.
    fn slot_for(&self, arn: &str, wrapped: Vec<u8>) -> Arc<KeySlot> {
        match self.entries.get(arn) {
            Some(e) if e.key.wrapped == wrapped => e.key.clone(),
            _ => Arc::new(KeySlot::new(wrapped)),
        }
    }

    /// The existing key slot of `arn` if its wrapped key is `wrapped`.
    pub fn cached_slot(&self, arn: &str, wrapped: &[u8]) -> Option<Arc<KeySlot>> {
        self.entries
            .get(arn)
            .filter(|e| e.key.wrapped == wrapped)
            .map(|e| e.key.clone())
    }

    /// Replaces a secret with the row's state; `values` are all of its values when
    /// `complete`, else only those written after the entry's state (older ones are kept if
    /// their version still exists).
    fn upsert_row(&mut self, row: SecretRow, values: Vec<ValueRow>, complete: bool) {
        let old = self.entries.get(&row.arn);
        if old.is_some_and(|o| o.seq >= row.seq) {
            return;
        }
        let same_key = old.is_some_and(|o| o.key.wrapped == row.wrapped);
        let mut map: HashMap<String, Arc<[u8]>> = match old {
            Some(o) if same_key && !complete => o
                .values
                .iter()
                .filter(|(vid, _)| row.record.version(vid).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => HashMap::new(),
        };
        for v in values {
            map.insert(v.version_id, v.sealed.into());
        }
        let key = self.slot_for(&row.arn, row.wrapped);
        if !same_key {
            // A new generation of the ARN (purged and created again): drop the old name.
            self.remove(&row.arn);
        }
        self.put(
            row.arn,
            Entry {
                region: row.region.into(),
                seq: row.seq,
                record: Arc::new(row.record),
                key,
                values: Arc::new(map),
            },
        );
    }

    /// Applies rows read by [`load_snapshot`].
    pub fn apply_snapshot(&mut self, snap: Snapshot) {
        let mut values: HashMap<String, Vec<ValueRow>> = HashMap::new();
        for v in snap.values {
            values.entry(v.arn.clone()).or_default().push(v);
        }
        if snap.full {
            let mut fresh = Index {
                last_seq: snap.counter,
                ..Default::default()
            };
            for row in snap.secrets {
                // Keep unwrapped data keys across the reload.
                let key = self.slot_for(&row.arn, row.wrapped);
                let vals: HashMap<String, Arc<[u8]>> = values
                    .remove(&row.arn)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| (v.version_id, v.sealed.into()))
                    .collect();
                let entry = Entry {
                    region: row.region.into(),
                    seq: row.seq,
                    record: Arc::new(row.record),
                    key,
                    values: Arc::new(vals),
                };
                fresh.put(row.arn, entry);
            }
            *self = fresh;
            return;
        }
        for (arn, seq) in snap.purged {
            if self.entries.get(&arn).is_some_and(|e| e.seq < seq) {
                self.remove(&arn);
            }
        }
        for row in snap.secrets {
            let vals = values.remove(&row.arn).unwrap_or_default();
            self.upsert_row(row, vals, false);
        }
        self.last_seq = self.last_seq.max(snap.counter);
    }

    /// Applies the state one secret has in the database (`None`: it no longer exists).
    pub fn apply_secret(&mut self, arn: &str, state: Option<(SecretRow, Vec<ValueRow>)>) {
        match state {
            Some((row, values)) => self.upsert_row(row, values, true),
            None => self.remove(arn),
        }
    }

    /// Applies this process's own commit number `seq`. Returns the ARNs whose state could
    /// not be derived from what the index held (the caller reads them back).
    pub fn apply_written(&mut self, seq: i64, written: Vec<Written>) -> Vec<String> {
        let mut reread = Vec::new();
        for w in written {
            match w {
                Written::Insert {
                    region,
                    record,
                    key,
                    value,
                } => {
                    if self.entries.get(&record.arn).is_some_and(|e| e.seq >= seq) {
                        continue;
                    }
                    let arn = record.arn.clone();
                    self.remove(&arn);
                    let values: HashMap<_, _> = value.into_iter().collect();
                    self.put(
                        arn,
                        Entry {
                            region,
                            seq,
                            record,
                            key,
                            values: Arc::new(values),
                        },
                    );
                }
                Written::Update {
                    region,
                    record,
                    value,
                } => {
                    let Some(old) = self.entries.get(&record.arn) else {
                        reread.push(record.arn.clone());
                        continue;
                    };
                    if old.seq >= seq {
                        continue;
                    }
                    if old.record.revision + 1 != record.revision {
                        reread.push(record.arn.clone());
                        continue;
                    }
                    let mut values: HashMap<String, Arc<[u8]>> = old
                        .values
                        .iter()
                        .filter(|(vid, _)| record.version(vid).is_some())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    values.extend(value);
                    if record
                        .versions
                        .iter()
                        .any(|v| v.has_value && !values.contains_key(&v.id))
                    {
                        reread.push(record.arn.clone());
                        continue;
                    }
                    let key = old.key.clone();
                    let arn = record.arn.clone();
                    self.put(
                        arn,
                        Entry {
                            region,
                            seq,
                            record,
                            key,
                            values: Arc::new(values),
                        },
                    );
                }
                Written::Purge { arn } => {
                    if self.entries.get(&arn).is_some_and(|e| e.seq < seq) {
                        self.remove(&arn);
                    }
                }
            }
        }
        if self.last_seq == seq - 1 {
            self.last_seq = seq;
        }
        reread
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyroll_core::time::Timestamp;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:s-AbCdEf";

    /// A version id as long as AWS wants (32-64 characters).
    fn id(v: &str) -> String {
        format!("{v:-<32}")
    }

    fn record(revision: u64, versions: &[&str]) -> SecretRecord {
        let mut r = SecretRecord::new(ARN.into(), "s".into(), Timestamp(0));
        for v in versions {
            r.put_version(&id(v), None, Timestamp(0), |_| false)
                .unwrap();
        }
        r.revision = revision;
        r
    }

    fn row(seq: i64, rec: SecretRecord, wrapped: &[u8]) -> SecretRow {
        SecretRow {
            arn: ARN.into(),
            region: "us-east-1".into(),
            seq,
            record: rec,
            wrapped: wrapped.to_vec(),
        }
    }

    fn value(vid: &str) -> ValueRow {
        ValueRow {
            arn: ARN.into(),
            version_id: id(vid),
            sealed: vid.as_bytes().to_vec(),
        }
    }

    fn delta(
        counter: i64,
        secrets: Vec<SecretRow>,
        values: Vec<ValueRow>,
        purged: Vec<(String, i64)>,
    ) -> Snapshot {
        Snapshot {
            full: false,
            counter,
            secrets,
            values,
            purged,
        }
    }

    #[test]
    fn deltas_keep_older_values_and_skip_stale_rows() {
        let mut idx = Index::new();
        idx.apply_snapshot(Snapshot {
            full: true,
            counter: 1,
            secrets: vec![row(1, record(1, &["v1"]), b"k")],
            values: vec![value("v1")],
            purged: vec![],
        });
        assert_eq!(idx.last_seq, 1);
        idx.apply_snapshot(delta(
            2,
            vec![row(2, record(2, &["v1", "v2"]), b"k")],
            vec![value("v2")],
            vec![],
        ));
        let e = idx.by_name("us-east-1", "s").unwrap();
        assert_eq!((e.seq, e.values.len()), (2, 2));
        // An older state never replaces a newer one.
        idx.apply_snapshot(delta(
            2,
            vec![row(1, record(1, &["v1"]), b"k")],
            vec![],
            vec![],
        ));
        assert_eq!(idx.get(ARN).unwrap().record.revision, 2);
    }

    #[test]
    fn purge_markers_remove_older_states_only() {
        let mut idx = Index::new();
        idx.apply_snapshot(Snapshot {
            full: true,
            counter: 3,
            secrets: vec![row(3, record(1, &["v1"]), b"k")],
            values: vec![value("v1")],
            purged: vec![],
        });
        idx.apply_snapshot(delta(3, vec![], vec![], vec![(ARN.into(), 2)]));
        assert!(
            idx.get(ARN).is_some(),
            "a marker older than the state is ignored"
        );
        // Purged, then created again under the same ARN with another data key.
        idx.apply_snapshot(delta(
            6,
            vec![row(6, record(1, &["w1"]), b"k2")],
            vec![value("w1")],
            vec![(ARN.into(), 5)],
        ));
        let e = idx.get(ARN).unwrap();
        assert_eq!(e.key.wrapped, b"k2");
        assert_eq!(e.values.keys().cloned().collect::<Vec<_>>(), [id("w1")]);
        idx.apply_snapshot(delta(7, vec![], vec![], vec![(ARN.into(), 7)]));
        assert!(idx.get(ARN).is_none());
        assert!(idx.by_name("us-east-1", "s").is_none());
        assert!(idx.records_in("us-east-1").is_empty());
    }

    #[test]
    fn own_commits_apply_directly_or_ask_to_be_read_back() {
        let mut idx = Index::new();
        idx.apply_snapshot(Snapshot {
            full: true,
            counter: 1,
            secrets: vec![row(1, record(1, &["v1"]), b"k")],
            values: vec![value("v1")],
            purged: vec![],
        });
        let region: Arc<str> = "us-east-1".into();
        let next = Arc::new(record(2, &["v1", "v2"]));
        let reread = idx.apply_written(
            2,
            vec![Written::Update {
                region: region.clone(),
                record: next,
                value: Some((id("v2"), Arc::from(&b"v2"[..]))),
            }],
        );
        assert!(reread.is_empty());
        assert_eq!(
            idx.last_seq, 2,
            "nothing was missed, so the counter advances"
        );
        // A revision gap (a commit this index has not seen) or a missing value: read back.
        let gap = Arc::new(record(4, &["v1", "v2", "v3"]));
        let reread = idx.apply_written(
            4,
            vec![Written::Update {
                region: region.clone(),
                record: gap,
                value: None,
            }],
        );
        assert_eq!(reread, [ARN.to_string()]);
        assert_eq!(idx.last_seq, 2, "seq 3 is unknown: the counter stays");
        let missing = Arc::new(record(3, &["v1", "v2", "v3"]));
        let reread = idx.apply_written(
            5,
            vec![Written::Update {
                region,
                record: missing,
                value: None,
            }],
        );
        assert_eq!(reread, [ARN.to_string()]);
    }
}
