//! What can go wrong, with what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An audit trail error.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file or directory of the trail could not be read or written.
    #[error(
        "cannot {action} {path}: {source} (check that the audit directory is on a writable \
         disk with free space and owned by the user keyroll runs as)"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process has the trail open for writing.
    #[error(
        "the audit trail in {dir} is already open for writing by another process (is another \
         `keyroll serve` using the same data directory? stop it, or give this one its own \
         --data-dir)"
    )]
    Locked { dir: PathBuf },
    /// There is no trail where one was looked for.
    #[error(
        "there is no audit trail at {dir}: `keyroll serve` writes one in DATA_DIR/audit; pass \
         --data-dir (or set KEYROLL_DATA_DIR) to the server's data directory"
    )]
    NoTrail { dir: PathBuf },
    /// An earlier write or fsync failed: what is on disk after that is unknown, so the log
    /// refuses further appends rather than writing a trail with a silent gap.
    #[error(
        "the audit log stopped after a failed write ({reason}); fix the disk problem and \
         restart keyroll: the trail resumes from its last complete record"
    )]
    Failed { reason: String },
    /// `append` after `close`.
    #[error("the audit log is closed; open it again with AuditLog::open to append")]
    Closed,
    /// A record could not be serialised (a bug: records are plain data).
    #[error("cannot serialise an audit record: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A line of the trail is not an audit record (while searching).
    #[error(
        "line {line} of {file} is not an audit record ({reason}); run `keyroll audit verify` \
         to check the trail"
    )]
    BadLine {
        file: String,
        line: u64,
        reason: String,
    },
    /// The trail has been changed, or is incomplete: the first problem found.
    #[error("{0}")]
    Integrity(Box<IntegrityError>),
}

impl AuditError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        AuditError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The integrity problem, when this is one.
    pub fn integrity(&self) -> Option<&IntegrityError> {
        match self {
            AuditError::Integrity(e) => Some(e),
            _ => None,
        }
    }
}

/// Where the trail stops being trustworthy, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityError {
    /// The file with the problem (`keyroll-audit-2026-12-07.jsonl` or `digests.jsonl`).
    pub file: String,
    /// 1-based line (record number) in that file, when the problem is a line.
    pub line: Option<u64>,
    /// The record's `eventID`, when its line still parses.
    pub event_id: Option<String>,
    pub kind: Problem,
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not a JSON audit record.
    NotARecord { reason: String },
    /// `previousRecordSha256` is not the hash of the line before it (`previous` names that
    /// line).
    BrokenChain { previous: String },
    /// The line after the last newline of the last file is incomplete (only reported where
    /// an incomplete line cannot be a crash: anywhere but the very end of the trail).
    IncompleteLine,
    /// A file listed in `digests.jsonl` is missing.
    MissingFile,
    /// A day file older than the newest one has no digest.
    UndigestedFile,
    /// A digest entry names a different file than the one at its place in the trail.
    DigestOrder { expected: String },
    /// The file's SHA-256 (or record count, first or last record) is not what its digest says.
    DigestMismatch { what: &'static str },
    /// A digest line is not a digest entry.
    BadDigest { reason: String },
    /// The first record of a day file after a closed one is not the `AuditDayFileClosed`
    /// record naming that file and the hash of its digest line.
    Unanchored { digest_line: u64 },
    /// `previousDigestSha256` is not the hash of the digest line before it.
    BrokenDigestChain,
}

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) if self.file.starts_with("digests") => write!(f, "line {n} of {}", self.file)?,
            Some(n) => write!(f, "record {n} of {}", self.file)?,
            None => write!(f, "{}", self.file)?,
        }
        if let Some(id) = &self.event_id {
            write!(f, " (eventID {id})")?;
        }
        let what = match &self.kind {
            Problem::NotARecord { reason } => {
                format!("is not an audit record ({reason}) — the line was changed or corrupted")
            }
            Problem::BrokenChain { previous } => format!(
                "previousRecordSha256 does not match the record before it, {previous} — that \
                 record or this one was changed, a record between them was removed, or records \
                 were reordered"
            ),
            Problem::IncompleteLine => "is incomplete and not at the end of the trail — the \
                 file was cut or changed"
                .to_string(),
            Problem::MissingFile => "is listed in digests.jsonl but missing — a closed day \
                 file was removed or renamed"
                .to_string(),
            Problem::UndigestedFile => "is followed by a newer day file but has no entry in \
                 digests.jsonl — the digest file was cut, or a file was added"
                .to_string(),
            Problem::DigestOrder { expected } => format!(
                "names a different file than the trail holds at its place ({expected}) — a \
                 closed day file was removed, or digests.jsonl was changed"
            ),
            Problem::DigestMismatch { what } => format!(
                "does not match its entry in digests.jsonl ({what} differs) — the closed file \
                 was changed after it was closed, or its digest was"
            ),
            Problem::BadDigest { reason } => {
                format!("is not a digest entry ({reason}) — digests.jsonl was changed")
            }
            Problem::Unanchored { digest_line } => format!(
                "is not the AuditDayFileClosed record of the file before it, with the SHA-256 \
                 of line {digest_line} of digests.jsonl — digests.jsonl or this record was \
                 changed"
            ),
            Problem::BrokenDigestChain => "previousDigestSha256 does not match the digest line \
                 before it — digests.jsonl was changed, or a line was removed or reordered"
                .to_string(),
        };
        write!(f, ": {what}")
    }
}
