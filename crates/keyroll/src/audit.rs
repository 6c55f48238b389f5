//! `keyroll audit`: check and search the audit trail `keyroll serve` writes in
//! DATA_DIR/audit (see `keyroll_audit`).

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Days, NaiveDate, Utc};
use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use keyroll_audit::{AuditError, AuditRecord, Query, search, verify};

use crate::output::Format;

const VERIFY_ABOUT: &str = "Check that the audit trail is complete and unchanged";
const VERIFY_LONG: &str = "Check that the audit trail is complete and unchanged.

Every record carries previousRecordSha256, the SHA-256 of the line before it, so changing, \
removing or reordering a record breaks the chain at that point; every closed day file is \
fingerprinted in digests.jsonl, itself a chain, so a removed or edited day file is found \
too. Exit 0 prints `verified N records in M files, chain intact`; exit 1 names the first \
bad record (file, record number, eventID) and what is wrong with it.

Nothing can tell that records were cut off the end of the newest file from the files alone: \
note the `last record sha256` this prints somewhere else, and a later run that still \
verifies the chain through that record proves nothing up to it was touched.";

const VERIFY_AFTER: &str = "Examples:
  keyroll audit verify
  keyroll --data-dir /var/lib/keyroll audit verify
  KEYROLL_DATA_DIR=/var/lib/keyroll keyroll audit verify && echo intact";

const SEARCH_LONG: &str = "Find audit records: who did what to which secret, and when.

Every record is one JSON line shaped like an AWS CloudTrail event: eventTime, eventSource \
(secretsmanager.amazonaws.com, sts.amazonaws.com, or keyroll.local for rotation steps, \
starts and stops), eventName, userIdentity, sourceIPAddress, requestParameters (secret \
values and credentials are never recorded), errorCode for denied or failed requests. \
Filters combine (all must match); without any, every record is printed, oldest first. The \
trail is read one line at a time, so `--output json` streams any size of trail.";

const SEARCH_AFTER: &str = "Examples:
  keyroll audit search --secret-id prod/db/app --output table
  keyroll audit search --principal arn:aws:iam::111122223333:user/alice --since 2026-12-01
  keyroll audit search --event GetSecretValue --since 2026-12-07T08:00:00Z --until 2026-12-07T09:00:00Z
  keyroll audit search --event AssumeRole --output table
  keyroll audit search | jq -r 'select(.errorCode) | [.eventTime, .eventName, .errorCode] | @tsv'";

/// Check and search the audit trail that `keyroll serve` writes (DATA_DIR/audit).
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    #[command(about = VERIFY_ABOUT, long_about = VERIFY_LONG, after_help = VERIFY_AFTER)]
    Verify,
    #[command(
        about = "Find audit records by secret, principal, event and time",
        long_about = SEARCH_LONG,
        after_help = SEARCH_AFTER
    )]
    Search(SearchArgs),
}

/// Filters for `keyroll audit search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// A secret's name, full ARN, or partial ARN (without the 6-character suffix): matches
    /// the records' resources and SecretId, whichever form they name it in.
    #[arg(long, value_name = "NAME|ARN")]
    pub secret_id: Option<String>,
    /// Who made the request: an IAM user or role ARN, a user name, or an access key id.
    #[arg(long, value_name = "ARN|USER|KEY_ID")]
    pub principal: Option<String>,
    /// The API operation or keyroll event (eventName), case-insensitive: GetSecretValue,
    /// AssumeRole, AuditTornTail, ...
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    /// Only records at or after this time: RFC 3339 (2026-12-07T08:00:00Z) or a UTC day
    /// (2026-12-07, from its midnight).
    #[arg(long, value_name = "TIME|DAY", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Only records before this time: RFC 3339, or a UTC day (2026-12-07 includes that whole
    /// day).
    #[arg(long, value_name = "TIME|DAY", value_parser = parse_until)]
    pub until: Option<DateTime<Utc>>,
}

fn parse_time(s: &str, day_end: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        format!("`{s}` is neither an RFC 3339 time (2026-12-07T08:00:00Z) nor a day (2026-12-07)")
    })?;
    let day = if day_end {
        day.checked_add_days(Days::new(1))
            .ok_or_else(|| format!("`{s}` is too far in the future"))?
    } else {
        day
    };
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, false)
}

fn parse_until(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s, true)
}

impl AuditCmd {
    pub fn run(self, data_dir: &Path, format: Format) -> anyhow::Result<()> {
        let dir = data_dir.join("audit");
        match self {
            AuditCmd::Verify => run_verify(&dir),
            AuditCmd::Search(args) => run_search(&dir, args, format),
        }
    }
}

fn run_verify(dir: &Path) -> anyhow::Result<()> {
    let report = verify(dir)?;
    let mut out = std::io::stdout().lock();
    let files = if report.files == 1 { "file" } else { "files" };
    writeln!(
        out,
        "verified {} records in {} {files}, chain intact",
        report.records, report.files
    )?;
    writeln!(
        out,
        "  closed day files with a matching digest: {}",
        report.digests
    )?;
    writeln!(
        out,
        "  last record sha256: {} (keep it elsewhere: a later verify that still reaches it \
         proves nothing before it changed)",
        report.last_record_sha256
    )?;
    if let Some(file) = &report.incomplete_tail {
        writeln!(
            out,
            "  note: {file} ends in an incomplete line (keyroll stopped mid-write); the next \
             `keyroll serve` moves it aside and records an AuditTornTail event"
        )?;
    }
    if !report.torn_files.is_empty() {
        writeln!(
            out,
            "  torn lines moved aside earlier: {} (see `keyroll audit search --event \
             AuditTornTail`)",
            report.torn_files.join(", ")
        )?;
    }
    Ok(())
}

fn run_search(dir: &Path, args: SearchArgs, format: Format) -> anyhow::Result<()> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        return Err(crate::UsageError(format!(
            "--since {since} is not before --until {until}: nothing can match; widen the range"
        ))
        .into());
    }
    let query = Query {
        secret_id: args.secret_id,
        principal: args.principal,
        event: args.event,
        since: args.since,
        until: args.until,
    };
    let mut bad_lines = 0u64;
    let mut first_bad = None;
    let mut found = 0u64;
    let mut table = (format == Format::Table).then(new_table);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for item in search(dir, &query) {
        let rec = match item {
            Ok(rec) => rec,
            Err(e @ AuditError::BadLine { .. }) => {
                bad_lines += 1;
                first_bad.get_or_insert(e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        found += 1;
        match table.as_mut() {
            Some(t) => {
                t.add_row(row(&rec));
            }
            None => {
                let line = serde_json::to_string(&rec)?;
                if let Err(e) = writeln!(out, "{line}") {
                    // `| head` closed the pipe: stop quietly.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e.into());
                }
            }
        }
    }
    if let Some(t) = table {
        if found == 0 {
            writeln!(out, "(no matching records)")?;
        } else {
            writeln!(out, "{t}")?;
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    }
    if let Some(first) = first_bad {
        anyhow::bail!("{bad_lines} line(s) were skipped; the first: {first}");
    }
    Ok(())
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "eventTime",
            "eventName",
            "principal",
            "secret",
            "sourceIPAddress",
            "result",
        ]);
    t
}

fn row(rec: &AuditRecord) -> Vec<String> {
    let result = match (&rec.error_code, &rec.error_message) {
        (Some(code), _) => code.clone(),
        (None, Some(msg)) => msg.clone(),
        (None, None) => "ok".to_string(),
    };
    let principal = rec
        .principal()
        .or(rec.user_identity.invoked_by.as_deref())
        .unwrap_or_default();
    vec![
        rec.event_time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        format!("{} ({})", rec.event_name, rec.event_source),
        principal.to_string(),
        rec.subject().unwrap_or("").to_string(),
        rec.source_ip_address.clone().unwrap_or_default(),
        result,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_days() {
        assert_eq!(
            parse_since("2026-12-07").unwrap().to_rfc3339(),
            "2026-12-07T00:00:00+00:00"
        );
        assert_eq!(
            parse_until("2026-12-07").unwrap().to_rfc3339(),
            "2026-12-08T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-07T08:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-07T07:00:00+00:00"
        );
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
    }
}
