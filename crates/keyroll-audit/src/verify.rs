//! Checking a trail: [`verify`].

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{AuditError, IntegrityError, Problem};
use crate::files::{self, DIGESTS_FILE, DigestEntry, Hash, Lines, ZERO, sha256};
use crate::record::{AuditRecord, DAY_FILE_CLOSED_EVENT, KEYROLL_SOURCE};

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Day files checked.
    pub files: usize,
    /// Records checked, across all files.
    pub records: u64,
    /// Entries of `digests.jsonl` checked (closed day files).
    pub digests: usize,
    /// Hex SHA-256 of the last record: keep it somewhere else, and a later `verify` that
    /// still finds it in the chain proves nothing before it was changed or cut off.
    pub last_record_sha256: String,
    /// The newest file ends in an incomplete line (keyroll stopped mid-write and has not
    /// started since; the next start moves it aside). Not counted as a record.
    pub incomplete_tail: Option<String>,
    /// Torn lines moved aside by earlier starts (`*.torn`), for information.
    pub torn_files: Vec<String>,
}

fn bad(file: &str, line: Option<u64>, event_id: Option<String>, kind: Problem) -> AuditError {
    AuditError::Integrity(Box::new(IntegrityError {
        file: file.to_string(),
        line,
        event_id,
        kind,
    }))
}

/// The `eventID` of a line that may not be a valid record.
fn event_id_of(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    Some(v.get("eventID")?.as_str()?.to_string())
}

/// Checks the whole trail in `dir`: every record's `previousRecordSha256` against the line
/// before it (across files, from 64 zeros), every closed day file against its entry in
/// `digests.jsonl` (file SHA-256, record count, first and last record), and the digest
/// file's own chain. Returns the first problem as [`AuditError::Integrity`], naming the
/// file, the record's line number and `eventID`.
///
/// What no chain can show on its own: records cut off the end of the newest file (or the
/// newest file removed, or its last record changed). Compare
/// [`VerifyReport::last_record_sha256`] with one kept elsewhere to cover that.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    if !dir.is_dir() {
        return Err(AuditError::NoTrail {
            dir: dir.to_path_buf(),
        });
    }
    let day_files = files::day_files(dir)?;
    let mut incomplete_tail = None;

    // The digest file's own chain.
    let mut digests: Vec<DigestEntry> = Vec::new();
    let mut digest_hashes: Vec<Hash> = Vec::new();
    let digests_path = dir.join(DIGESTS_FILE);
    if digests_path.exists() {
        let mut lines = Lines::open(&digests_path)?;
        let mut prev = ZERO;
        let mut n = 0u64;
        while let Some((line, complete)) = lines.next_line()? {
            n += 1;
            if !complete {
                // A crash while closing a day: the file it was closing is still the newest.
                incomplete_tail = Some(DIGESTS_FILE.to_string());
                break;
            }
            let entry: DigestEntry = serde_json::from_slice(line).map_err(|e| {
                bad(
                    DIGESTS_FILE,
                    Some(n),
                    None,
                    Problem::BadDigest {
                        reason: e.to_string(),
                    },
                )
            })?;
            if entry.previous_digest_sha256 != hex::encode(prev) {
                return Err(bad(DIGESTS_FILE, Some(n), None, Problem::BrokenDigestChain));
            }
            prev = sha256(line);
            let at = digests.len();
            match day_files.get(at) {
                Some((_, name)) if *name == entry.file => {}
                held => {
                    if !dir.join(&entry.file).exists() {
                        return Err(bad(&entry.file, None, None, Problem::MissingFile));
                    }
                    return Err(bad(
                        DIGESTS_FILE,
                        Some(n),
                        None,
                        Problem::DigestOrder {
                            expected: held
                                .map(|(_, name)| name.clone())
                                .unwrap_or_else(|| "no file".to_string()),
                        },
                    ));
                }
            }
            digests.push(entry);
            digest_hashes.push(prev);
        }
    }
    if day_files.len() > digests.len() + 1 {
        let (_, name) = &day_files[digests.len()];
        return Err(bad(name, None, None, Problem::UndigestedFile));
    }

    // Every record, in order, across files.
    let mut prev: Hash = ZERO;
    let mut prev_desc = "the start of the trail (64 zeros)".to_string();
    let mut records = 0u64;
    let count = day_files.len();
    for (i, (_, name)) in day_files.iter().enumerate() {
        let path = dir.join(name);
        let newest = i + 1 == count;
        let mut lines = Lines::open(&path)?;
        let mut file_hash = Sha256::new();
        let mut n = 0u64;
        let mut first: Option<Hash> = None;
        while let Some((line, complete)) = lines.next_line()? {
            n += 1;
            if !complete {
                if newest && digests.len() < count {
                    incomplete_tail = Some(name.clone());
                    n -= 1;
                    break;
                }
                return Err(bad(
                    name,
                    Some(n),
                    event_id_of(line),
                    Problem::IncompleteLine,
                ));
            }
            file_hash.update(line);
            file_hash.update(b"\n");
            let h = sha256(line);
            let rec: AuditRecord = serde_json::from_slice(line).map_err(|e| {
                bad(
                    name,
                    Some(n),
                    event_id_of(line),
                    Problem::NotARecord {
                        reason: e.to_string(),
                    },
                )
            })?;
            let event_id = rec.event_id.to_string();
            if rec.previous_record_sha256 != hex::encode(prev) {
                return Err(bad(
                    name,
                    Some(n),
                    Some(event_id),
                    Problem::BrokenChain {
                        previous: prev_desc,
                    },
                ));
            }
            if n == 1 && i > 0 {
                // The first record after a closed file anchors that file's digest line.
                let details = rec.service_event_details.as_ref();
                let anchored = rec.event_source == KEYROLL_SOURCE
                    && rec.event_name == DAY_FILE_CLOSED_EVENT
                    && details.and_then(|d| d.get("file")?.as_str())
                        == Some(day_files[i - 1].1.as_str())
                    && details.and_then(|d| d.get("digestSha256")?.as_str())
                        == digest_hashes.get(i - 1).map(hex::encode).as_deref();
                if !anchored {
                    return Err(bad(
                        name,
                        Some(n),
                        Some(event_id),
                        Problem::Unanchored {
                            digest_line: i as u64,
                        },
                    ));
                }
            }
            first.get_or_insert(h);
            prev = h;
            prev_desc = format!("record {n} of {name} (eventID {event_id})");
            records += 1;
        }
        if let Some(d) = digests.get(i) {
            let hex_opt = |h: Option<Hash>| h.map(hex::encode);
            let last = (n > 0).then_some(prev);
            let mismatch = if d.records != n {
                Some(("the record count", None))
            } else if d.first_record_sha256 != hex_opt(first) {
                Some(("firstRecordSha256", Some(1)))
            } else if d.last_record_sha256 != hex_opt(last) {
                Some(("lastRecordSha256", Some(n)))
            } else if d.sha256 != hex::encode(file_hash.finalize()) {
                Some(("the file's sha256", None))
            } else {
                None
            };
            if let Some((what, line)) = mismatch {
                return Err(bad(name, line, None, Problem::DigestMismatch { what }));
            }
        }
    }

    Ok(VerifyReport {
        files: count,
        records,
        digests: digests.len(),
        last_record_sha256: hex::encode(prev),
        incomplete_tail,
        torn_files: files::torn_files(dir)?,
    })
}
