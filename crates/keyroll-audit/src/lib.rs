//! keyroll's audit trail: one JSON line per API request, rotation step, start and stop,
//! shaped like an AWS CloudTrail record and chained so that a change is detectable.
//!
//! # Format
//!
//! The trail lives in `DATA_DIR/audit` (created `0700`; every file in it `0600`):
//!
//! ```text
//! audit/
//!   keyroll-audit-2026-12-06.jsonl   closed: listed in digests.jsonl
//!   keyroll-audit-2026-12-07.jsonl   the current day file
//!   digests.jsonl                    one line per closed day file
//!   .lock                            flock'ed by the one process writing the trail
//!   keyroll-audit-2026-12-07.jsonl.1.torn   a torn last line moved aside (rare)
//! ```
//!
//! Each day file holds one [`AuditRecord`] per line (UTF-8 JSON, `\n`-terminated), with
//! CloudTrail's field names: `eventVersion`, `userIdentity` (`type` `IAMUser`,
//! `AssumedRole`, or `AWSService` for keyroll's own events, with `sessionContext` for
//! temporary credentials), `eventTime` (RFC 3339, UTC, to the second), `eventSource`
//! (`secretsmanager.amazonaws.com`, `sts.amazonaws.com`, or `keyroll.local`), `eventName`,
//! `awsRegion`, `sourceIPAddress`, `userAgent`, `errorCode`, `errorMessage`,
//! `requestParameters`, `responseElements`, `serviceEventDetails`, `requestID`, `eventID` (a
//! UUID v4), `readOnly`, `resources` (`[{ARN, accountId, type}]`), `eventType`
//! (`AwsApiCall` or `AwsServiceEvent`), `recipientAccountId`; optional fields are left out
//! when empty. Parameters go through [`sanitize_parameters`], an allow-list per operation:
//! no secret value, password, secret access key or session token is ever written.
//!
//! A record goes into the file of its `eventTime`'s UTC day — or of the current day file if
//! that is later (a record stamped 23:59:59 and appended after a 00:00:00 one): a file is
//! never reopened once closed, so records are in append order and every file's days are its
//! own or earlier.
//!
//! # The chain
//!
//! Every record's last member, `previousRecordSha256`, is the hex SHA-256 of the exact bytes
//! of the line before it (without its newline), across day files; the first record ever
//! has 64 zeros. Changing a byte of a record breaks the link of the record after it;
//! removing or reordering records breaks a link at the gap. [`verify`] names the first
//! broken link: its file, line number and `eventID`, and the record it should link to.
//!
//! # The digest file
//!
//! When the day changes (the first record of a later day is appended), the current file is
//! fsync'ed and closed, and a line is appended (and fsync'ed) to `digests.jsonl`:
//! `{file, sha256, records, firstRecordSha256, lastRecordSha256, previousDigestSha256,
//! closedAt}` — the whole file's SHA-256, its record count and first and last record
//! hashes, and the SHA-256 of the previous digest line (64 zeros for the first), so the
//! digest lines form a chain of their own. The first record of the next day file is a
//! `keyroll.local` `AuditDayFileClosed` record whose `serviceEventDetails` name the closed
//! file and carry the SHA-256 of its digest line (`digestSha256`): the digest chain is
//! anchored in the record chain, so not a byte of `digests.jsonl` can change unnoticed. [`verify`] checks that every day file but the
//! newest has its digest, in order, that each matches its file, and that the digest chain
//! is intact: removing a closed day file, changing one after it was closed, or editing
//! `digests.jsonl` is detected. Like CloudTrail's digests, this is evidence against
//! changes, not against an attacker who rewrites the whole trail: for that, copy
//! [`VerifyReport::last_record_sha256`] (printed by `keyroll audit verify`) somewhere else
//! from time to time; the chain then proves that nothing up to that record was changed. It
//! is also the only way to notice records cut off the end of the newest file.
//!
//! # Durability
//!
//! [`AuditLog::append`] takes a [`Durability`]:
//!
//! - [`Durability::Sync`] returns once the line is on disk. Concurrent `Sync` appends share
//!   fsyncs (group commit): the first to find no fsync running becomes the leader, writes
//!   every pending line and fsyncs once outside the lock; the appends that arrived meanwhile
//!   wait for it, and the next leader covers them all with one fsync. Use it for writes,
//!   denied requests and rotation steps: the record is durable before the response is sent.
//! - [`Durability::Buffered`] returns at once: the line is kept in memory and written to the
//!   OS within the flush interval ([`AuditOptions::flush_interval`], 1 s by default; a
//!   background thread writes it, or [`AuditLog::flush`]), or as soon as 256 KiB are
//!   pending. Use it for reads. A crash of the process can lose up to one
//!   interval of buffered records; a crash of the machine, what the OS had not yet written.
//!
//! [`AuditLog::close`] (and drop) writes and fsyncs everything. [`AuditLog::stats`] counts
//! appends and fsyncs (for metrics: under concurrency, fewer fsyncs than `Sync` appends). Any failed write or fsync
//! stops the log: later appends return [`AuditError::Failed`] rather than leave a gap that
//! the chain would hide; restart to resume.
//!
//! # Restart and torn tails
//!
//! [`AuditLog::open`] resumes the chain from the last complete line of the newest file. If
//! that file ends in an incomplete line (the process died mid-write, so the bytes after the
//! last newline are a prefix of a record), open moves those bytes into a new
//! `<file>.<n>.torn` file (0600, fsync'ed), cuts them off the day file, and appends a
//! `keyroll.local` `AuditTornTail` record (`Sync`) whose `serviceEventDetails` name the file,
//! the `.torn` file, its length and its SHA-256. No record in the chain referred to the torn
//! line, so the chain stays intact, [`verify`] passes, and the event is visible in
//! [`search`]. A torn last line of `digests.jsonl` (a crash while closing a day) is handled
//! the same way; the day file it was closing is closed again at the next change of day. A
//! newest day file with no complete line at all (created just before a crash, so its
//! `AuditDayFileClosed` anchor never reached the disk) is removed, and created again, anchor
//! first, by the next append.
//! Until keyroll starts again, [`verify`] reports an incomplete last line as
//! [`VerifyReport::incomplete_tail`] rather than as tampering; anywhere else it is.
//!
//! Only one process may write a trail: open takes an exclusive `flock` on `audit/.lock`.

mod call;
mod error;
mod files;
mod log;
mod record;
mod sanitize;
mod search;
mod stable;
mod verify;

pub use call::{ApiCall, EncodedIdentity, Identity, IdentityRef, IssuerRef, SessionRef};
pub use error::{AuditError, IntegrityError, Problem};
pub use files::{DIGESTS_FILE, DigestEntry, day_file_name};
pub use log::{AuditLog, AuditOptions, AuditStats, Clock, Durability, ManualClock, SystemClock};
pub use record::{
    API_CALL, AuditRecord, DAY_FILE_CLOSED_EVENT, EVENT_VERSION, GENESIS_SHA256, KEYROLL_SOURCE,
    Resource, SECRETS_MANAGER_SOURCE, SERVICE_EVENT, STS_SOURCE, SessionAttributes, SessionContext,
    SessionIssuer, TORN_TAIL_EVENT, UserIdentity,
};
pub use sanitize::{is_secret_bearing, sanitize_parameters};
pub use search::{Query, Search, search};
pub use verify::{VerifyReport, verify};
