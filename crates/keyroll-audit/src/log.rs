//! The writer: [`AuditLog`].

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, SubsecRound, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::call::ApiCall;
use crate::error::AuditError;
use crate::files::{
    self, DIGESTS_FILE, DigestEntry, Hash, LOCK_FILE, Lines, ZERO, day_file_name, sha256,
};
use crate::record::{AuditRecord, DAY_FILE_CLOSED_EVENT, GENESIS_SHA256, TORN_TAIL_EVENT};
use crate::stable::write_call;

/// Where the time comes from: the system clock, or a test's.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says what it is told, for tests (crossing midnight, say).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(now))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How [`AuditLog::open`] behaves.
#[derive(Clone)]
pub struct AuditOptions {
    /// The time of keyroll's own records ([`AuditLog::now`], the torn-tail record) and of
    /// `closedAt` in the digest file.
    pub clock: Arc<dyn Clock>,
    /// The longest a [`Durability::Buffered`] record waits before it is written to the OS
    /// (default 1 s).
    pub flush_interval: Duration,
    /// `recipientAccountId` of keyroll's own records.
    pub account_id: String,
    /// `awsRegion` of keyroll's own records.
    pub region: String,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            clock: Arc::new(SystemClock),
            flush_interval: Duration::from_secs(1),
            account_id: "000000000000".to_string(),
            region: "us-east-1".to_string(),
        }
    }
}

impl fmt::Debug for AuditOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditOptions")
            .field("flush_interval", &self.flush_interval)
            .field("account_id", &self.account_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// When [`AuditLog::append`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the record is on disk (fsync'ed). Concurrent `Sync` appends share one fsync.
    Sync,
    /// At once; the record reaches the OS within the flush interval (and on `flush`,
    /// `close`, drop, or when 256 KiB are pending), and the disk at the next fsync.
    Buffered,
}

/// Counters of an [`AuditLog`] since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditStats {
    /// Records appended (including keyroll's own: day-file anchors, torn tails).
    pub appended: u64,
    /// fsyncs of day files: with group commit, fewer than `Sync` appends under concurrency.
    pub fsyncs: u64,
}

/// Pending bytes beyond which a buffered append writes at once.
const MAX_PENDING: usize = 256 * 1024;

/// The append-only, hash-chained audit trail of one directory (see the crate docs).
///
/// `Send + Sync`: share it in an `Arc`. One process at a time may have a directory open
/// (an exclusive `flock` on `.lock`).
pub struct AuditLog {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    dir: PathBuf,
    options: AuditOptions,
    state: Mutex<State>,
    /// Orders writes to the day file: a batch of buffered records is written outside the
    /// state lock while this is held, and every other write takes it (under the state lock)
    /// first. The lock order is always `state`, then `writer`.
    writer: Mutex<Writer>,
    /// Signalled when an fsync finishes.
    synced: Condvar,
    /// Wakes the flusher thread (to stop).
    wake: Condvar,
    /// Holds the `flock`.
    _lock: File,
}

struct State {
    /// The open day file; `None` before the first record after a day file was closed.
    current: Option<Current>,
    /// The day of the newest closed file, when there is no current one.
    closed_day: Option<NaiveDate>,
    /// Serialised lines not yet written to the OS.
    pending: Vec<u8>,
    last_hash: Hash,
    last_digest_hash: Hash,
    /// Lines appended, written to the OS, and fsync'ed (counts since open).
    appended: u64,
    written: u64,
    synced: u64,
    /// A thread is fsyncing (outside the lock); others wait on `synced`.
    syncing: bool,
    /// fsyncs of day files since open.
    fsyncs: u64,
    failed: Option<String>,
    closed: bool,
}

/// What the writer lock guards.
struct Writer {
    /// The buffer a batch is swapped into (its capacity is reused).
    spare: Vec<u8>,
    /// Why a batch written outside the state lock failed, for the next writer to record.
    failed: Option<String>,
}

/// The right to write pending lines to the day file, in order (see [`State::begin_write`]).
struct WriteTurn<'w> {
    writer: MutexGuard<'w, Writer>,
    file: Arc<File>,
    name: String,
}

struct Current {
    day: NaiveDate,
    name: String,
    file: Arc<File>,
    records: u64,
    first_hash: Option<Hash>,
}

fn lock_writer(m: &Mutex<Writer>) -> MutexGuard<'_, Writer> {
    // Nothing in `Writer` can be left half-updated by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave a half-written line in `pending` (lines
    // are added whole), so the state is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The 64 hex zeros `previousRecordSha256` is serialised with, patched under the lock.
const PLACEHOLDER: &[u8; 64] = b"0000000000000000000000000000000000000000000000000000000000000000";

impl AuditLog {
    /// Opens (creating it, 0700) the trail in `dir` — `DATA_DIR/audit` — and resumes its
    /// chain from the last complete record. A torn last line (a crash mid-write) is moved
    /// aside into `<file>.<n>.torn` and an `AuditTornTail` record is appended (see the crate
    /// docs).
    pub fn open(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        files::ensure_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| AuditError::io("open", &lock_path, e))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(AuditError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            return Err(AuditError::io("lock", &lock_path, err));
        }

        // The digest file: its chain, and the last file it closed.
        let digests_path = dir.join(DIGESTS_FILE);
        let mut torn = Vec::new();
        let mut last_digest: Option<DigestEntry> = None;
        let mut last_digest_hash = ZERO;
        if digests_path.exists() {
            let tail = scan(&digests_path, |line| {
                last_digest_hash = sha256(line);
                last_digest = serde_json::from_slice(line).ok();
            })?;
            if let Some(t) = move_torn_tail(dir, DIGESTS_FILE, tail)? {
                torn.push(t);
            }
        }

        let day_files = files::day_files(dir)?;
        let mut last_hash = last_digest
            .as_ref()
            .and_then(|d| d.last_record_sha256.as_deref())
            .and_then(parse_hash)
            .unwrap_or(ZERO);
        let mut current = None;
        let mut closed_day = None;
        if let Some((day, name)) = day_files.last() {
            if last_digest.as_ref().is_some_and(|d| &d.file == name) {
                closed_day = Some(*day);
            } else {
                let path = dir.join(name);
                let mut records = 0u64;
                let mut first_hash = None;
                let mut last = None;
                let tail = scan(&path, |line| {
                    let h = sha256(line);
                    records += 1;
                    first_hash.get_or_insert(h);
                    last = Some(h);
                })?;
                if let Some(t) = move_torn_tail(dir, name, tail)? {
                    torn.push(t);
                }
                if let Some(h) = last {
                    last_hash = h;
                    current = Some(Current {
                        day: *day,
                        name: name.clone(),
                        file: Arc::new(files::open_append(&path)?),
                        records,
                        first_hash,
                    });
                } else {
                    // No complete record: created just before a crash (its first lines,
                    // the day-file anchor among them, never reached the disk). Remove it;
                    // the next append creates it again, anchor first.
                    std::fs::remove_file(&path)
                        .map_err(|e| AuditError::io("remove the empty day file", &path, e))?;
                    files::sync_dir(dir)?;
                    closed_day = last_digest.as_ref().and_then(|d| files::day_of(&d.file));
                }
            }
        }

        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(State {
                current,
                closed_day,
                pending: Vec::with_capacity(MAX_PENDING + 4096),
                last_hash,
                last_digest_hash,
                appended: 0,
                written: 0,
                synced: 0,
                syncing: false,
                fsyncs: 0,
                failed: None,
                closed: false,
            }),
            writer: Mutex::new(Writer {
                spare: Vec::with_capacity(MAX_PENDING + 4096),
                failed: None,
            }),
            synced: Condvar::new(),
            wake: Condvar::new(),
            _lock: lock_file,
        });
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("keyroll-audit-flush".to_string())
                .spawn(move || inner.flush_loop())
                .map_err(|e| AuditError::io("start the flush thread for", dir, e))?
        };
        let log = AuditLog {
            inner,
            flusher: Mutex::new(Some(flusher)),
        };
        for t in torn {
            let now = log.now();
            let o = &log.inner.options;
            let rec = AuditRecord::service_event(
                now,
                TORN_TAIL_EVENT,
                &o.account_id,
                &o.region,
                json!({
                    "file": t.file,
                    "movedTo": t.moved_to,
                    "bytes": t.bytes,
                    "sha256": hex::encode(t.sha256),
                    "note": "the last line was incomplete (keyroll stopped mid-write); it was \
                             moved aside and the trail continues from the record before it",
                }),
            );
            log.append(rec, Durability::Sync)?;
        }
        Ok(log)
    }

    /// The clock's time to the second: the `eventTime` to give a record made now.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.options.clock.now().trunc_subsecs(0)
    }

    /// The directory of the trail.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &AuditOptions {
        &self.inner.options
    }

    /// Links `rec` to the record before it (`previousRecordSha256`), serialises it as one
    /// line and appends it to the file of its `eventTime`'s UTC day (or of the current day
    /// file, if that is later: files are never reopened once closed).
    pub fn append(&self, mut rec: AuditRecord, durability: Durability) -> Result<(), AuditError> {
        // Serialise outside the lock, with a placeholder link patched in below.
        let (mut line, at) = serialize(&mut rec)?;
        let day = rec.event_time.date_naive();
        let head = head_hash(&line, at);
        self.append_line(&mut line, at, head, day, durability)
    }

    /// [`AuditLog::append`] for one API request's record given by reference: the line is
    /// written straight from `call` into a per-thread buffer (the same bytes `append` would
    /// write for the equivalent [`AuditRecord`], parameters through the same allow-lists)
    /// and chained like any other.
    pub fn append_call(
        &self,
        call: &ApiCall<'_>,
        durability: Durability,
    ) -> Result<(), AuditError> {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(2048));
        }
        LINE.with(|cell| {
            // Re-entered only if a record were appended while this thread writes one (it
            // never is); a fresh buffer keeps that correct anyway.
            let mut fresh = Vec::new();
            let mut borrowed = cell.try_borrow_mut().ok();
            let line = borrowed.as_deref_mut().unwrap_or(&mut fresh);
            line.clear();
            let (link, head) = write_call(call, line).map_err(AuditError::Serialize)?;
            let day = call.event_time.date_naive();
            let result = self.append_line(line, link, head, day, durability);
            // Keep the buffer, unless one record made it unusually large.
            if line.capacity() > 64 * 1024 {
                *line = Vec::with_capacity(2048);
            }
            result
        })
    }

    /// Chains and appends one serialised record whose 64-zero link starts at `at`; `head`
    /// is [`head_hash`] of the line.
    fn append_line(
        &self,
        line: &mut [u8],
        at: usize,
        head: Sha256,
        day: NaiveDate,
        durability: Durability,
    ) -> Result<(), AuditError> {
        let inner = &*self.inner;
        let mut st = lock(&inner.state);
        st.usable()?;
        let day = match (&st.current, st.closed_day) {
            (Some(c), _) => day.max(c.day),
            (None, Some(closed)) => day.max(closed.succ_opt().unwrap_or(closed)),
            (None, None) => day,
        };
        if st.current.as_ref().is_some_and(|c| c.day < day) {
            inner.close_current(&mut st)?;
        }
        if st.current.is_none() {
            inner.open_day(&mut st, day)?;
        }

        let seq = st.push(line, at, head);

        match durability {
            Durability::Buffered => {
                // The flusher thread writes smaller batches within the flush interval.
                if st.pending.len() >= MAX_PENDING {
                    inner.write_batch(st)?;
                }
                Ok(())
            }
            Durability::Sync => inner.wait_synced(st, seq),
        }
    }

    /// Counters since open, for metrics.
    pub fn stats(&self) -> AuditStats {
        let st = lock(&self.inner.state);
        AuditStats {
            appended: st.appended,
            fsyncs: st.fsyncs,
        }
    }

    /// Writes buffered records to the OS (not necessarily to disk).
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut st = lock(&self.inner.state);
        st.usable()?;
        st.write_pending(&self.inner.writer)
    }

    /// Writes and fsyncs everything appended so far, and stops the log: later appends fail
    /// with [`AuditError::Closed`]. Idempotent. The current day file stays open for the next
    /// [`AuditLog::open`] to continue (day files are closed only when the day changes).
    pub fn close(&self) -> Result<(), AuditError> {
        let result = {
            let mut st = lock(&self.inner.state);
            if st.closed {
                Ok(())
            } else {
                // No appends from here on; everything before is written and fsync'ed.
                st.closed = true;
                match st.failed.clone() {
                    Some(reason) => Err(AuditError::Failed { reason }),
                    None => {
                        let seq = st.appended;
                        self.inner.wait_synced(st, seq)
                    }
                }
            }
        };
        self.inner.wake.notify_all();
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        result
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.inner.dir)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 state after the bytes of `line` before its link (which starts at `at`). The
/// link is the line's last member, so all but the last block or two of a line are hashed
/// before the lock that orders the chain is taken.
pub(crate) fn head_hash(line: &[u8], at: usize) -> Sha256 {
    Sha256::new_with_prefix(&line[..at])
}

/// The SHA-256 of a line from [`head_hash`] of its bytes before the link and the rest of it
/// (`tail`: the link and what follows): the same as [`sha256`] of the whole line.
pub(crate) fn finish_hash(mut head: Sha256, tail: &[u8]) -> Hash {
    head.update(tail);
    head.finalize().into()
}

impl State {
    /// Links a serialised record (`line`, placeholder at `at`) to the last one and queues
    /// it for the current file; returns its sequence number. `head` is [`head_hash`]
    /// of the same line: the hash of the bytes before the link, computed outside the lock.
    fn push(&mut self, line: &mut [u8], at: usize, head: Sha256) -> u64 {
        let mut hex_buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the hash length.
        let _ = hex::encode_to_slice(self.last_hash, &mut hex_buf);
        line[at..at + 64].copy_from_slice(&hex_buf);
        let hash = finish_hash(head, &line[at..]);
        self.pending.extend_from_slice(line);
        self.pending.push(b'\n');
        self.last_hash = hash;
        self.appended += 1;
        if let Some(c) = self.current.as_mut() {
            c.records += 1;
            c.first_hash.get_or_insert(hash);
        }
        self.appended
    }

    fn usable(&self) -> Result<(), AuditError> {
        if self.closed {
            return Err(AuditError::Closed);
        }
        match &self.failed {
            Some(reason) => Err(AuditError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: AuditError) -> AuditError {
        self.failed.get_or_insert_with(|| e.to_string());
        e
    }

    /// Takes the writer lock for writing the pending lines (after any batch being written
    /// outside the state lock) and returns it with the current file and its name; `None`
    /// when nothing is pending. Fails when an earlier batch could not be written, or when
    /// lines are pending with no day file open.
    fn begin_write<'w>(
        &mut self,
        writer: &'w Mutex<Writer>,
    ) -> Result<Option<WriteTurn<'w>>, AuditError> {
        let w = lock_writer(writer);
        if let Some(reason) = &w.failed {
            return Err(self.fail(AuditError::Failed {
                reason: reason.clone(),
            }));
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        match &self.current {
            Some(c) => Ok(Some(WriteTurn {
                writer: w,
                file: Arc::clone(&c.file),
                name: c.name.clone(),
            })),
            None => Err(self.fail(AuditError::Failed {
                reason: "records pending with no day file open (a bug)".to_string(),
            })),
        }
    }

    /// Writes the pending lines to the current file (to the OS), under the state lock, once
    /// any batch being written outside it is done.
    fn write_pending(&mut self, writer: &Mutex<Writer>) -> Result<(), AuditError> {
        // The writer lock is held (`_turn`) until the lines are written.
        let Some(WriteTurn {
            writer: _turn,
            file,
            name,
        }) = self.begin_write(writer)?
        else {
            return Ok(());
        };
        if let Err(e) = (&*file).write_all(&self.pending) {
            return Err(self.fail(AuditError::io("write", PathBuf::from(name), e)));
        }
        self.pending.clear();
        self.written = self.appended;
        Ok(())
    }
}

impl Inner {
    /// Group commit: returns once line `seq` is fsync'ed. The first waiter to find no fsync
    /// running becomes the leader: it writes everything pending and fsyncs once, outside the
    /// lock, for every line up to then; the others wait for it (or lead the next round).
    fn wait_synced<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        seq: u64,
    ) -> Result<(), AuditError> {
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(AuditError::Failed {
                    reason: reason.clone(),
                });
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.write_pending(&self.writer)?;
            let target = st.written;
            let Some(file) = st.current.as_ref().map(|c| Arc::clone(&c.file)) else {
                // Nothing open means the last file was closed, which fsyncs everything.
                st.synced = st.synced.max(target);
                continue;
            };
            let name = st
                .current
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            st.syncing = true;
            drop(st);
            let result = file.sync_data();
            st = lock(&self.state);
            st.syncing = false;
            st.fsyncs += 1;
            match result {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    st.fail(AuditError::io("fsync", self.dir.join(name), e));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Writes the pending lines of buffered records to the current file without holding the
    /// state lock during the `write(2)`: other threads go on appending meanwhile. The batch
    /// is swapped out under both locks, so batches reach the file in the order they were
    /// chained.
    fn write_batch(&self, mut st: MutexGuard<'_, State>) -> Result<(), AuditError> {
        let Some(WriteTurn {
            writer: mut w,
            file,
            name,
        }) = st.begin_write(&self.writer)?
        else {
            return Ok(());
        };
        let batch = &mut *w;
        // Empty unless a write panicked midway: never carry its lines into the chain again.
        batch.spare.clear();
        std::mem::swap(&mut batch.spare, &mut st.pending);
        // Whoever writes next waits for this batch (it takes the writer lock first).
        st.written = st.appended;
        drop(st);
        let result = (&*file).write_all(&batch.spare);
        batch.spare.clear();
        if let Err(e) = result {
            let e = AuditError::io("write", self.dir.join(name), e);
            w.failed = Some(e.to_string());
            drop(w);
            return Err(lock(&self.state).fail(e));
        }
        Ok(())
    }

    /// Closes the current day file: writes and fsyncs it, then appends its digest.
    fn close_current(&self, st: &mut State) -> Result<(), AuditError> {
        st.write_pending(&self.writer)?;
        let Some(c) = st.current.take() else {
            return Ok(());
        };
        let path = self.dir.join(&c.name);
        if let Err(e) = c.file.sync_all() {
            return Err(st.fail(AuditError::io("fsync", path, e)));
        }
        st.fsyncs += 1;
        st.synced = st.appended;
        self.synced.notify_all();
        let sha = match files::file_sha256(&path) {
            Ok(h) => h,
            Err(e) => return Err(st.fail(e)),
        };
        let entry = DigestEntry {
            file: c.name.clone(),
            sha256: hex::encode(sha),
            records: c.records,
            first_record_sha256: c.first_hash.map(hex::encode),
            last_record_sha256: (c.records > 0).then(|| hex::encode(st.last_hash)),
            previous_digest_sha256: hex::encode(st.last_digest_hash),
            closed_at: self
                .options
                .clock
                .now()
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        let line = serde_json::to_vec(&entry).map_err(AuditError::Serialize)?;
        let written = files::append_line_synced(&self.dir.join(DIGESTS_FILE), &line)
            .and_then(|()| files::sync_dir(&self.dir));
        if let Err(e) = written {
            return Err(st.fail(e));
        }
        st.last_digest_hash = sha256(&line);
        st.closed_day = Some(c.day);
        Ok(())
    }

    /// Creates (0600) the day file of `day` and makes it current.
    fn open_day(&self, st: &mut State, day: NaiveDate) -> Result<(), AuditError> {
        let name = day_file_name(day);
        let path = self.dir.join(&name);
        let created = files::open_append(&path).and_then(|f| {
            files::sync_dir(&self.dir)?;
            Ok(f)
        });
        match created {
            Ok(f) => {
                st.current = Some(Current {
                    day,
                    name,
                    file: Arc::new(f),
                    records: 0,
                    first_hash: None,
                });
                if let Some(closed) = st.closed_day {
                    // Anchor the digest chain in the record chain.
                    let o = &self.options;
                    let mut rec = AuditRecord::service_event(
                        o.clock.now().trunc_subsecs(0),
                        DAY_FILE_CLOSED_EVENT,
                        &o.account_id,
                        &o.region,
                        json!({
                            "file": day_file_name(closed),
                            "digestSha256": hex::encode(st.last_digest_hash),
                        }),
                    );
                    rec.read_only = Some(true);
                    let (mut line, at) = serialize(&mut rec)?;
                    let head = head_hash(&line, at);
                    st.push(&mut line, at, head);
                }
                Ok(())
            }
            Err(e) => Err(st.fail(e)),
        }
    }

    /// The flusher thread: writes buffered records every flush interval until closed.
    fn flush_loop(&self) {
        let mut st = lock(&self.state);
        loop {
            if st.closed {
                return;
            }
            let (guard, _) = self
                .wake
                .wait_timeout(st, self.options.flush_interval)
                .unwrap_or_else(|p| p.into_inner());
            st = guard;
            if st.closed {
                return;
            }
            // Whatever is pending was appended at most one interval ago: write it.
            if st.failed.is_none() && !st.pending.is_empty() {
                // A failure is recorded in the state and reported by the next append.
                let _ = st.write_pending(&self.writer);
            }
        }
    }
}

/// Calls `each` with every complete line of `path` and returns the bytes after the last
/// newline (a torn line), if any.
fn scan(path: &Path, mut each: impl FnMut(&[u8])) -> Result<Option<Vec<u8>>, AuditError> {
    let mut lines = Lines::open(path)?;
    while let Some((line, complete)) = lines.next_line()? {
        if !complete {
            return Ok(Some(line.to_vec()));
        }
        each(line);
    }
    Ok(None)
}

struct Torn {
    file: String,
    moved_to: String,
    bytes: usize,
    sha256: Hash,
}

/// Moves a torn tail of `dir/name` into a new `.torn` file and cuts it off the original.
fn move_torn_tail(
    dir: &Path,
    name: &str,
    tail: Option<Vec<u8>>,
) -> Result<Option<Torn>, AuditError> {
    let Some(tail) = tail else {
        return Ok(None);
    };
    let path = dir.join(name);
    let moved_to = files::torn_name(dir, name);
    let torn_path = dir.join(&moved_to);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&torn_path)
        .map_err(|e| AuditError::io("create", &torn_path, e))?;
    f.write_all(&tail)
        .and_then(|()| f.sync_all())
        .map_err(|e| AuditError::io("write", &torn_path, e))?;
    let len = std::fs::metadata(&path)
        .map_err(|e| AuditError::io("read", &path, e))?
        .len();
    let keep = len.saturating_sub(tail.len() as u64);
    let original = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| AuditError::io("open", &path, e))?;
    original
        .set_len(keep)
        .and_then(|()| original.sync_all())
        .map_err(|e| AuditError::io("cut the torn last line off", &path, e))?;
    files::sync_dir(dir)?;
    Ok(Some(Torn {
        file: name.to_string(),
        moved_to,
        bytes: tail.len(),
        sha256: sha256(&tail),
    }))
}

/// Serialises `rec` with a placeholder `previousRecordSha256` (its last member) and
/// returns the line and where the placeholder's 64 hex digits start.
fn serialize(rec: &mut AuditRecord) -> Result<(Vec<u8>, usize), AuditError> {
    rec.previous_record_sha256 = GENESIS_SHA256.to_string();
    let mut line = Vec::with_capacity(1024);
    serde_json::to_writer(&mut line, rec).map_err(AuditError::Serialize)?;
    let at = line
        .len()
        .checked_sub(2 + PLACEHOLDER.len())
        .filter(|&at| line.ends_with(b"\"}") && &line[at..at + PLACEHOLDER.len()] == PLACEHOLDER);
    match at {
        Some(at) => Ok((line, at)),
        None => Err(AuditError::Serialize(serde::ser::Error::custom(
            "previousRecordSha256 is not the last member of the record",
        ))),
    }
}

fn parse_hash(s: &str) -> Option<Hash> {
    let mut h = ZERO;
    hex::decode_to_slice(s, &mut h).ok()?;
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_split_at_the_link_is_the_hash_of_the_whole_line() {
        // Every split point around SHA-256's 64-byte blocks, and lines of 1 to 3 blocks.
        for len in [66usize, 100, 127, 128, 129, 191, 192, 193, 300] {
            let line: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            for at in 0..=len - 66 {
                assert_eq!(
                    finish_hash(head_hash(&line, at), &line[at..]),
                    sha256(&line),
                    "len {len}, link at {at}"
                );
            }
        }
    }
}
