//! The trail on disk: file names, permissions, hashing, the digest entry.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AuditError;

/// The digest file's name.
pub const DIGESTS_FILE: &str = "digests.jsonl";
/// The name of the file whose `flock` marks the writer.
pub const LOCK_FILE: &str = ".lock";
const PREFIX: &str = "keyroll-audit-";
const SUFFIX: &str = ".jsonl";

pub type Hash = [u8; 32];
pub const ZERO: Hash = [0; 32];

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// The day file of `day`: `keyroll-audit-2026-12-07.jsonl`.
pub fn day_file_name(day: NaiveDate) -> String {
    format!("{PREFIX}{}{SUFFIX}", day.format("%Y-%m-%d"))
}

/// The day of a day file's name; `None` for any other name.
pub fn day_of(name: &str) -> Option<NaiveDate> {
    let date = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    // Only the canonical spelling: `2026-12-7` would sort out of order.
    (day_file_name(day) == name).then_some(day)
}

/// The day files in `dir`, oldest first.
pub fn day_files(dir: &Path) -> Result<Vec<(NaiveDate, String)>, AuditError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| AuditError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io("list", dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && let Some(day) = day_of(name)
        {
            out.push((day, name.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// The `.torn` files in `dir` (torn last lines moved aside), sorted.
pub fn torn_files(dir: &Path) -> Result<Vec<String>, AuditError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| AuditError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io("list", dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && name.ends_with(".torn")
        {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// One line of `digests.jsonl`: a closed day file's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestEntry {
    /// The day file's name.
    pub file: String,
    /// Hex SHA-256 of the whole file, as closed.
    pub sha256: String,
    /// How many records (lines) it holds.
    pub records: u64,
    /// Hex SHA-256 of its first line (without the newline); `null` for an empty file.
    pub first_record_sha256: Option<String>,
    /// Hex SHA-256 of its last line: the next file's first record links to it.
    pub last_record_sha256: Option<String>,
    /// Hex SHA-256 of the previous line of `digests.jsonl`; 64 zeros for the first.
    pub previous_digest_sha256: String,
    /// When the file was closed (RFC 3339, UTC).
    pub closed_at: String,
}

/// Creates `dir` (and its parents) if needed and makes it 0700.
pub fn ensure_dir(dir: &Path) -> Result<(), AuditError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AuditError::io("create the audit directory", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| AuditError::io("restrict (chmod 0700) the audit directory", dir, e))
}

/// Opens `path` for appending, creating it 0600.
pub fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AuditError::io("open for appending", path, e))
}

/// Makes a new directory entry durable.
pub fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("sync the directory", dir, e))
}

/// Appends `line` and a newline to `path` (0600) and fsyncs it.
pub fn append_line_synced(path: &Path, line: &[u8]) -> Result<(), AuditError> {
    let mut f = open_append(path)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line);
    bytes.push(b'\n');
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| AuditError::io("write", path, e))
}

/// SHA-256 of a whole file, read in chunks.
pub fn file_sha256(path: &Path) -> Result<Hash, AuditError> {
    let mut f = File::open(path).map_err(|e| AuditError::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| AuditError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Reads a file line by line with bounded memory: each call gives the next line without
/// its newline, and whether it had one (only the last line of a file can lack it).
pub struct Lines {
    reader: BufReader<File>,
    path: PathBuf,
    buf: Vec<u8>,
}

impl Lines {
    pub fn open(path: &Path) -> Result<Lines, AuditError> {
        let f = File::open(path).map_err(|e| AuditError::io("open", path, e))?;
        Ok(Lines {
            reader: BufReader::with_capacity(64 * 1024, f),
            path: path.to_path_buf(),
            buf: Vec::new(),
        })
    }

    /// The next line and whether it ended with a newline; `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<(&[u8], bool)>, AuditError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| AuditError::io("read", &self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        let complete = self.buf.last() == Some(&b'\n');
        let len = self.buf.len() - usize::from(complete);
        Ok(Some((&self.buf[..len], complete)))
    }
}

/// A free name for moving `name`'s torn tail aside: `name.1.torn`, `name.2.torn`, ...
pub fn torn_name(dir: &Path, name: &str) -> String {
    (1u32..)
        .map(|n| format!("{name}.{n}.torn"))
        .find(|candidate| !dir.join(candidate).exists())
        .unwrap_or_else(|| format!("{name}.torn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_file_names_round_trip_and_reject_others() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        assert_eq!(day_file_name(d), "keyroll-audit-2026-12-07.jsonl");
        assert_eq!(day_of("keyroll-audit-2026-12-07.jsonl"), Some(d));
        assert_eq!(day_of("keyroll-audit-2026-12-7.jsonl"), None);
        assert_eq!(day_of("keyroll-audit-2026-12-07.jsonl.1.torn"), None);
        assert_eq!(day_of(DIGESTS_FILE), None);
    }
}
