//! The embedded store: secrets in a SQLite file (WAL, `synchronous=FULL`), values sealed
//! with envelope encryption, served from an in-memory index kept coherent with other
//! processes sharing the data directory. `docs/STORE.md` describes the design.
//!
//! ```no_run
//! use keyroll_store::embedded::{EmbeddedStore, OpenOptions};
//! # fn main() -> Result<(), keyroll_store::embedded::StoreError> {
//! let store = EmbeddedStore::open(OpenOptions::new("./keyroll-data"))?;
//! let us_east_1 = store.region("us-east-1"); // a `SecretsApi` + `RotationStore`
//! # let _ = us_east_1; Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`keys`]: the master key's sources (`KEYROLL_MASTER_KEY`, `master.key`, explicit).
//! - `crypto`: sealing values and wrapping data keys (XChaCha20-Poly1305).
//! - `schema`: the database file, its pragmas and migrations.
//! - `index`: the in-memory index and how it catches up with other processes' commits.
//! - `lock`: per-secret rotation locks (`flock`).

mod crypto;
mod error;
mod index;
pub mod keys;
mod lock;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use keyroll_core::SmError;
use keyroll_core::ids::{Namespace, SecretRef};
use keyroll_core::model::SecretRecord;
use keyroll_core::ports::RotationLock;
use keyroll_core::service::{Backend, Change, CommitError, SecretsService};
use keyroll_core::time::{Clock, SystemClock, Timestamp};
use keyroll_core::value::SecretValue;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

pub use error::StoreError;
pub use keys::{Env, KEY_FILE_NAME, MASTER_KEY_ENV, MasterKeySource};
pub use schema::{DB_FILE, SCHEMA_VERSION};

use crypto::{CryptoError, Key};
use index::{Index, KeySlot, LoadError, Written};

/// The account in ARNs unless [`OpenOptions::account`] says otherwise.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// The directory (inside the data directory) holding rotation lock files.
pub const LOCKS_DIR: &str = "locks";

/// The Secrets Manager API over one region of an [`EmbeddedStore`].
pub type RegionStore = SecretsService<EmbeddedBackend>;

/// How to open an [`EmbeddedStore`].
#[derive(Debug)]
pub struct OpenOptions {
    /// Holds `keyroll.db` (and its `-wal`/`-shm`), `master.key` (unless the key comes from
    /// elsewhere) and `locks/`. Created with mode 0700 if absent.
    pub data_dir: PathBuf,
    pub master_key: MasterKeySource,
    /// The account in new secrets' ARNs (default `000000000000`).
    pub account: String,
    /// "Now" for every date the store records (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// Where [`MasterKeySource::Auto`] reads `KEYROLL_MASTER_KEY` (default: the process
    /// environment; tests inject their own).
    pub env: Env,
}

impl OpenOptions {
    /// Defaults: [`MasterKeySource::Auto`], account `000000000000`, the system clock, the
    /// process environment.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        OpenOptions {
            data_dir: data_dir.into(),
            master_key: MasterKeySource::Auto,
            account: DEFAULT_ACCOUNT.to_string(),
            clock: Arc::new(SystemClock),
            env: Env::process(),
        }
    }

    pub fn master_key(mut self, source: MasterKeySource) -> Self {
        self.master_key = source;
        self
    }

    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }
}

struct Probe {
    conn: Connection,
    /// `PRAGMA data_version` when the index last caught up through this connection.
    data_version: Option<i64>,
}

struct Inner {
    dir: PathBuf,
    db: PathBuf,
    locks: PathBuf,
    account: String,
    clock: Arc<dyn Clock>,
    master: Key,
    /// Every write goes through this connection, one transaction per commit.
    writer: Mutex<Connection>,
    /// Detects other connections' commits and reads them into the index. Held from reading a
    /// snapshot to applying it, and by a writer applying its own commit, so an older snapshot
    /// is never applied over a newer state.
    probe: Mutex<Probe>,
    index: RwLock<Index>,
    /// The database's `-shm` file, opened on first use (see [`Inner::wal_index_header`]).
    shm: OnceLock<Option<std::fs::File>>,
    /// The WAL-index header seen by the last [`Inner::sync`] that completed; while the file
    /// still holds the same bytes, no connection has committed since.
    synced_header: RwLock<Option<[u8; WAL_INDEX_HEADER_LEN]>>,
}

/// SQLite's WAL-index header: the first 48 bytes of the `-shm` file, rewritten by every
/// commit of every connection (its change counter, frame count, salts and checksums; see
/// SQLite's "WAL-mode file format", section 2.2).
const WAL_INDEX_HEADER_LEN: usize = 48;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// A handle on a data directory. Cheap to clone; all clones share one index and one pair of
/// SQLite connections.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("data_dir", &self.inner.dir)
            .finish()
    }
}

fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    data_dir = %dir.display(),
                    mode = format!("{:o}", m.permissions().mode() & 0o777),
                    "the data directory is accessible to other users; restrict it with chmod 700"
                );
            }
            Ok(())
        }
        Ok(_) => Err(fail(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "it exists and is not a directory",
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail),
        Err(e) => Err(fail(e)),
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `opts.data_dir`.
    ///
    /// A wrong master key fails with [`StoreError::WrongMasterKey`] before anything is
    /// written; so do a database from a newer keyroll ([`StoreError::SchemaTooNew`]) and a
    /// missing key ([`StoreError::MissingMasterKey`]).
    pub fn open(opts: OpenOptions) -> Result<EmbeddedStore, StoreError> {
        let dir = opts.data_dir.clone();
        prepare_data_dir(&dir)?;
        let db = dir.join(DB_FILE);
        let state = schema::inspect(&db)?;
        let existing = matches!(state, schema::DbState::Existing { .. });
        let master = keys::resolve(&opts.master_key, &opts.env, &dir, !existing)?;
        if let schema::DbState::Existing { key_check } = &state {
            match crypto::verify_key_check(&master, key_check) {
                Ok(true) => {}
                Ok(false) => return Err(StoreError::WrongMasterKey { data_dir: dir }),
                Err(e) => {
                    return Err(StoreError::NotAKeyrollDatabase {
                        path: db,
                        detail: format!("its key check is damaged: {e}"),
                    });
                }
            }
        }
        let mut writer = schema::open_rw(&db)?;
        schema::migrate(&mut writer, &db, &dir, &master)?;
        if matches!(state, schema::DbState::Absent) {
            keys::sync_dir(&dir).map_err(|source| StoreError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        let probe = schema::open_rw(&db)?;
        let locks = dir.join(LOCKS_DIR);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&locks)
                .map_err(|source| StoreError::DataDir {
                    path: locks.clone(),
                    source,
                })?;
        }
        let inner = Inner {
            dir,
            db,
            locks,
            account: opts.account,
            clock: opts.clock,
            master,
            writer: Mutex::new(writer),
            probe: Mutex::new(Probe {
                conn: probe,
                data_version: None,
            }),
            index: RwLock::new(Index::new()),
            shm: OnceLock::new(),
            synced_header: RwLock::new(None),
        };
        inner.sync().map_err(|e| inner.open_error(e))?;
        tracing::debug!(
            data_dir = %inner.dir.display(),
            secrets = read(&inner.index).len(),
            schema = SCHEMA_VERSION,
            "embedded store opened"
        );
        Ok(EmbeddedStore {
            inner: Arc::new(inner),
        })
    }

    /// The Secrets Manager API over `region` (namespace: partition `aws`, this region, the
    /// store's account). Regions are separate namespaces in the same file.
    pub fn region(&self, region: &str) -> RegionStore {
        SecretsService::new(EmbeddedBackend {
            inner: self.inner.clone(),
            ns: Namespace::new(region, self.inner.account.clone()),
            region: Arc::from(region),
        })
    }

    /// Regions holding at least one secret, sorted (as committed by any process).
    pub fn regions(&self) -> Result<Vec<String>, StoreError> {
        self.inner.sync().map_err(|e| self.inner.open_error(e))?;
        Ok(read(&self.inner.index).regions())
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Inner {
    /// Catches the index up with commits made through other connections (other processes,
    /// or this store's writer).
    ///
    /// The fast path reads 48 bytes of the `-shm` file instead of querying SQLite under the
    /// probe lock: unchanged bytes mean no commit since the last sync. A commit that returned
    /// before this call began has already rewritten them, so the fast path never hides it; a
    /// torn read only sends us down the slow path.
    fn sync(&self) -> Result<(), LoadError> {
        let header = self.wal_index_header();
        if header.is_some() && *read(&self.synced_header) == header {
            return Ok(());
        }
        let mut probe = lock(&self.probe);
        let dv: i64 = probe
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if probe.data_version == Some(dv) {
            *write(&self.synced_header) = header;
            return Ok(());
        }
        let since = read(&self.index).last_seq;
        let snap = index::load_snapshot(&mut probe.conn, since)?;
        tracing::trace!(
            since,
            upto = snap.counter,
            full = snap.full,
            secrets = snap.secrets.len(),
            values = snap.values.len(),
            purged = snap.purged.len(),
            "index caught up"
        );
        write(&self.index).apply_snapshot(snap);
        probe.data_version = Some(dv);
        // The header read before the query: a commit after it changes the file again.
        *write(&self.synced_header) = header;
        Ok(())
    }

    /// The current WAL-index header, or `None` when it can't be read (then every sync
    /// queries SQLite).
    fn wal_index_header(&self) -> Option<[u8; WAL_INDEX_HEADER_LEN]> {
        use std::os::unix::fs::FileExt;
        let shm = self.shm.get_or_init(|| {
            let mut path = self.db.clone().into_os_string();
            path.push("-shm");
            std::fs::File::open(path).ok()
        });
        let mut buf = [0u8; WAL_INDEX_HEADER_LEN];
        shm.as_ref()?.read_exact_at(&mut buf, 0).ok()?;
        Some(buf)
    }

    fn open_error(&self, e: LoadError) -> StoreError {
        match e {
            LoadError::Sql(source) => StoreError::Sqlite {
                path: self.db.clone(),
                source,
            },
            LoadError::Damaged { arn, detail } => StoreError::NotAKeyrollDatabase {
                path: self.db.clone(),
                detail: format!("the record of {arn} is damaged: {detail}"),
            },
        }
    }

    fn load_error(&self, e: LoadError) -> SmError {
        match e {
            LoadError::Sql(e) => self.sql_error(e),
            LoadError::Damaged { arn, detail } => SmError::InternalServiceError(format!(
                "the stored record of {arn} in {} is damaged ({detail}); restore the data \
                 directory from a backup",
                self.db.display()
            )),
        }
    }

    fn sql_error(&self, e: rusqlite::Error) -> SmError {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => SmError::InternalServiceError(format!(
                "the embedded store {} stayed locked by another process for more than {} s; \
                 retry the request",
                self.db.display(),
                schema::BUSY_TIMEOUT.as_secs()
            )),
            _ => SmError::InternalServiceError(format!(
                "the embedded store {} failed: {e}; check the disk (space, permissions) and \
                 retry",
                self.db.display()
            )),
        }
    }

    fn encryption_error(&self, arn: &str, e: CryptoError) -> SmError {
        SmError::EncryptionFailure(format!("keyroll could not encrypt a value of {arn}: {e}"))
    }

    fn decryption_error(&self, arn: &str, version_id: &str, e: CryptoError) -> SmError {
        SmError::DecryptionFailure(format!(
            "keyroll can't decrypt version {version_id} of {arn}: {e}; the data directory {} \
             was altered or damaged: restore it from a backup",
            self.dir.display()
        ))
    }

    /// Persists `changes` in one transaction (one fsync), then applies them to the index.
    fn commit(&self, region: &Arc<str>, changes: &[Change<'_>]) -> Result<(), CommitError> {
        let sql = |e| CommitError::Sm(self.sql_error(e));
        let mut writer = lock(&self.writer);
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        tx.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'seq'")
            .and_then(|mut s| s.execute([]))
            .map_err(sql)?;
        let seq: i64 = tx
            .prepare_cached("SELECT value FROM meta WHERE key = 'seq'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sql)?;
        let mut written = Vec::with_capacity(changes.len());
        for change in changes {
            written.push(self.write_change(&tx, region, seq, change)?);
        }
        tx.commit().map_err(sql)?;
        tracing::trace!(seq, changes = changes.len(), "committed");

        let mut probe = lock(&self.probe);
        let reread = write(&self.index).apply_written(seq, written);
        for arn in reread {
            match index::load_secret(&writer, &arn) {
                Ok(state) => write(&self.index).apply_secret(&arn, state),
                Err(e) => {
                    // The commit stands; rebuild the index on the next read instead.
                    tracing::warn!(secret = %arn, error = ?e, "cannot read back a commit");
                    write(&self.index).last_seq = -1;
                    probe.data_version = None;
                    *write(&self.synced_header) = None;
                }
            }
        }
        Ok(())
    }

    fn write_change(
        &self,
        tx: &Transaction<'_>,
        region: &Arc<str>,
        seq: i64,
        change: &Change<'_>,
    ) -> Result<Written, CommitError> {
        let sql = |e| CommitError::Sm(self.sql_error(e));
        let revision = |r: &SecretRecord| {
            i64::try_from(r.revision).map_err(|_| {
                CommitError::Sm(SmError::InternalServiceError(format!(
                    "revision {} of {} is out of range",
                    r.revision, r.arn
                )))
            })
        };
        let to_json = |r: &SecretRecord| {
            serde_json::to_string(r).map_err(|e| {
                CommitError::Sm(SmError::InternalServiceError(format!(
                    "cannot encode the record of {}: {e}",
                    r.arn
                )))
            })
        };
        match change {
            Change::Insert { record, value } => {
                let arn = record.arn.as_str();
                let name_taken: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM secrets WHERE region = ?1 AND name = ?2)",
                    )
                    .and_then(|mut s| s.query_row(params![&**region, record.name], |r| r.get(0)))
                    .map_err(sql)?;
                if name_taken {
                    return Err(CommitError::NameTaken);
                }
                let arn_taken: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM secrets WHERE arn = ?1)")
                    .and_then(|mut s| s.query_row([arn], |r| r.get(0)))
                    .map_err(sql)?;
                if arn_taken {
                    return Err(CommitError::Conflict);
                }
                let enc = |e| CommitError::Sm(self.encryption_error(arn, e));
                let new_revision = revision(record)?;
                let json = to_json(record)?;
                let data_key = Key::random().map_err(enc)?;
                let wrapped = crypto::wrap_key(&self.master, arn, &data_key).map_err(enc)?;
                tx.prepare_cached(
                    "INSERT INTO secrets (arn, region, name, revision, seq, record, wrapped_key) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        arn,
                        &**region,
                        record.name,
                        new_revision,
                        seq,
                        json,
                        wrapped
                    ])
                })
                .map_err(sql)?;
                let value = match value {
                    Some((vid, v)) => {
                        let sealed = crypto::seal_value(&data_key, arn, vid, v).map_err(enc)?;
                        self.put_value(tx, arn, vid, seq, &sealed).map_err(sql)?;
                        Some((vid.to_string(), Arc::from(sealed)))
                    }
                    None => None,
                };
                Ok(Written::Insert {
                    region: region.clone(),
                    record: Arc::new((*record).clone()),
                    key: Arc::new(KeySlot::with_key(wrapped, data_key)),
                    value,
                })
            }
            Change::Update {
                record,
                value,
                removed_versions,
            } => {
                let arn = record.arn.as_str();
                let stored: Option<(i64, Vec<u8>)> = tx
                    .prepare_cached(
                        "SELECT revision, wrapped_key FROM secrets WHERE arn = ?1 AND region = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![arn, &**region], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(sql)?;
                let Some((stored_revision, wrapped)) = stored else {
                    return Err(CommitError::Conflict);
                };
                let new_revision = revision(record)?;
                if stored_revision + 1 != new_revision {
                    return Err(CommitError::Conflict);
                }
                let json = to_json(record)?;
                tx.prepare_cached(
                    "UPDATE secrets SET revision = ?2, seq = ?3, record = ?4 WHERE arn = ?1",
                )
                .and_then(|mut s| s.execute(params![arn, new_revision, seq, json]))
                .map_err(sql)?;
                let value = match value {
                    Some((vid, v)) => {
                        let slot = read(&self.index)
                            .cached_slot(arn, &wrapped)
                            .unwrap_or_else(|| Arc::new(KeySlot::new(wrapped)));
                        let data_key = slot
                            .key(&self.master, arn)
                            .map_err(|e| CommitError::Sm(self.decryption_error(arn, vid, e)))?;
                        let sealed = crypto::seal_value(data_key, arn, vid, v)
                            .map_err(|e| CommitError::Sm(self.encryption_error(arn, e)))?;
                        self.put_value(tx, arn, vid, seq, &sealed).map_err(sql)?;
                        Some((vid.to_string(), Arc::from(sealed)))
                    }
                    None => None,
                };
                for vid in removed_versions.iter() {
                    tx.prepare_cached(
                        "DELETE FROM secret_values WHERE arn = ?1 AND version_id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![arn, vid]))
                    .map_err(sql)?;
                }
                Ok(Written::Update {
                    region: region.clone(),
                    record: Arc::new((*record).clone()),
                    value,
                })
            }
            Change::Purge { arn } => {
                let deleted = tx
                    .prepare_cached("DELETE FROM secrets WHERE arn = ?1 AND region = ?2")
                    .and_then(|mut s| s.execute(params![arn, &**region]))
                    .map_err(sql)?;
                if deleted > 0 {
                    tx.prepare_cached("DELETE FROM secret_values WHERE arn = ?1")
                        .and_then(|mut s| s.execute([arn]))
                        .map_err(sql)?;
                    tx.prepare_cached(
                        "INSERT INTO purged (arn, seq) VALUES (?1, ?2) \
                         ON CONFLICT (arn) DO UPDATE SET seq = excluded.seq",
                    )
                    .and_then(|mut s| s.execute(params![arn, seq]))
                    .map_err(sql)?;
                    Self::prune_purged(tx).map_err(sql)?;
                }
                Ok(Written::Purge {
                    arn: arn.to_string(),
                })
            }
        }
    }

    fn put_value(
        &self,
        tx: &Transaction<'_>,
        arn: &str,
        version_id: &str,
        seq: i64,
        sealed: &[u8],
    ) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO secret_values (arn, version_id, seq, sealed) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (arn, version_id) DO UPDATE SET seq = excluded.seq, \
             sealed = excluded.sealed",
        )?
        .execute(params![arn, version_id, seq, sealed])?;
        Ok(())
    }

    /// Keeps the newest [`index::KEEP_PURGED`] purge markers; records the newest pruned one
    /// in `meta.purged_floor` so a process further behind reloads everything.
    fn prune_purged(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let count: i64 = tx
            .prepare_cached("SELECT count(*) FROM purged")?
            .query_row([], |r| r.get(0))?;
        if count <= index::KEEP_PURGED {
            return Ok(());
        }
        let cutoff: i64 = tx
            .prepare_cached("SELECT seq FROM purged ORDER BY seq DESC LIMIT 1 OFFSET ?1")?
            .query_row([index::KEEP_PURGED], |r| r.get(0))?;
        tx.prepare_cached("DELETE FROM purged WHERE seq <= ?1")?
            .execute([cutoff])?;
        tx.prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE key = 'purged_floor'")?
            .execute([cutoff])?;
        Ok(())
    }
}

/// One region of an [`EmbeddedStore`]: the persistence behind a [`RegionStore`].
#[derive(Clone)]
pub struct EmbeddedBackend {
    inner: Arc<Inner>,
    ns: Namespace,
    region: Arc<str>,
}

impl fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("data_dir", &self.inner.dir)
            .field("namespace", &self.ns)
            .finish()
    }
}

impl EmbeddedBackend {
    /// **For seeding benchmarks and tests only.** Inserts prebuilt records (each with an
    /// optional first value, stored under the given version id) in a single transaction —
    /// one fsync for the whole batch — without any of the API's validation. Fails with
    /// [`CommitError::NameTaken`] (and inserts nothing) if any name is taken.
    pub fn bulk_insert(
        &self,
        secrets: &[(SecretRecord, Option<(String, SecretValue)>)],
    ) -> Result<(), CommitError> {
        let changes: Vec<Change<'_>> = secrets
            .iter()
            .map(|(record, value)| Change::Insert {
                record,
                value: value.as_ref().map(|(vid, v)| (vid.as_str(), v)),
            })
            .collect();
        self.inner.commit(&self.region, &changes)
    }

    /// The store this region belongs to.
    pub fn store(&self) -> EmbeddedStore {
        EmbeddedStore {
            inner: self.inner.clone(),
        }
    }

    fn sealed(&self, arn: &str, version_id: &str) -> Option<(Arc<KeySlot>, Arc<[u8]>)> {
        let idx = read(&self.inner.index);
        let e = idx.get(arn).filter(|e| *e.region == *self.region)?;
        Some((e.key.clone(), e.values.get(version_id)?.clone()))
    }
}

impl Backend for EmbeddedBackend {
    fn namespace(&self) -> &Namespace {
        &self.ns
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn find(&self, r: &SecretRef) -> Result<Option<SecretRecord>, SmError> {
        self.inner.sync().map_err(|e| self.inner.load_error(e))?;
        let found = {
            let idx = read(&self.inner.index);
            let exact = match r {
                SecretRef::Arn(_, full) => idx.get(full).filter(|e| *e.region == *self.region),
                SecretRef::Name(_) => None,
            };
            exact
                .or_else(|| {
                    idx.by_name(&self.region, r.name_candidate())
                        .filter(|e| r.matches(&e.record.arn, &e.record.name))
                })
                .map(|e| e.record.clone())
        };
        Ok(found.map(|r| (*r).clone()))
    }

    fn for_each(&self, f: &mut dyn FnMut(&SecretRecord)) -> Result<(), SmError> {
        self.inner.sync().map_err(|e| self.inner.load_error(e))?;
        let records = read(&self.inner.index).records_in(&self.region);
        for r in &records {
            f(r);
        }
        Ok(())
    }

    fn read_value(&self, record: &SecretRecord, version_id: &str) -> Result<SecretValue, SmError> {
        let arn = record.arn.as_str();
        let found = match self.sealed(arn, version_id) {
            Some(s) => Some(s),
            None => {
                self.inner.sync().map_err(|e| self.inner.load_error(e))?;
                self.sealed(arn, version_id)
            }
        };
        let Some((slot, blob)) = found else {
            return Err(SmError::no_value_for_version(version_id));
        };
        let fail = |e| self.inner.decryption_error(arn, version_id, e);
        let data_key = slot.key(&self.inner.master, arn).map_err(fail)?;
        crypto::open_value(data_key, arn, version_id, &blob).map_err(fail)
    }

    fn commit(&self, change: Change<'_>) -> Result<(), CommitError> {
        self.inner
            .commit(&self.region, std::slice::from_ref(&change))
    }

    fn try_lock_rotation(&self, arn: &str) -> Result<Option<RotationLock>, SmError> {
        lock::try_lock(&self.inner.locks, arn)
    }
}
