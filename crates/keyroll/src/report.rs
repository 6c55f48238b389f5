//! `keyroll report`: every secret's rotation state, one row each — rotation enabled,
//! function, rules, last and next rotation, days since the last one, the last outcome,
//! failing, overdue and the age of an unfinished (`AWSPENDING`) rotation.
//!
//! Rows are streamed while ListSecrets is paged (100 at a time), in every format, so memory
//! does not grow with the number of secrets: JSON is written as one document element by
//! element, CSV line by line, and the table with fixed column widths (a long name widens its
//! own line only) instead of measuring every row first.
//!
//! Where the last outcome comes from: the embedded store (and `keyroll serve`'s data
//! directory, which `keyroll report --data-dir` reads safely while the server runs) keeps
//! keyroll's rotation status with each secret (`KeyrollRotationStatus` in DescribeSecret).
//! Through the AWS API (`--store aws`, `--endpoint-url`) there is no such field: the outcome
//! is then `Pending` when an `AWSPENDING` version is left (an unfinished or failed rotation)
//! and `Unknown` otherwise.

use std::fmt::Write as _;
use std::io::Write;

use clap::Args;
use keyroll_core::api::{ListSecretVersionIdsRequest, SecretIdRequest, SecretListEntry};
use keyroll_core::model::{AWSPENDING, RotationRules, RotationState, RotationStatus};
use keyroll_core::ports::RotationStore;
use keyroll_core::rotators;
use keyroll_core::time::Timestamp;
use serde::Serialize;

use crate::fleet::{Pager, SelectArgs};
use crate::output::Format;

const DAY_MS: f64 = 86_400_000.0;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    keyroll report --output table\n  \
    keyroll report --filter tag-key=critical --max-age-days 90 --fail-on overdue,failing\n  \
    keyroll report --output csv > rotation.csv\n  \
    keyroll report --endpoint-url http://127.0.0.1:7150 --output table")]
pub struct ReportArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Also count a secret as overdue when its last rotation (or, never rotated, its
    /// creation) is more than this many days ago, whatever its schedule.
    #[arg(long, value_name = "DAYS")]
    pub max_age_days: Option<f64>,
    /// Exit with code 8 when any selected secret is overdue and/or failing (for CI).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub fail_on: Vec<FailOn>,
    /// Evaluate as of this time (RFC 3339) instead of now, e.g. to see what will be overdue
    /// next week.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Overdue,
    Failing,
}

/// `--fail-on` found what it was asked to fail on.
#[derive(Debug, thiserror::Error)]
#[error(
    "{overdue} overdue and {failing} failing secrets (of {total}); rotate the overdue ones \
     (`keyroll rotate --secret-id NAME`) and run `keyroll doctor --secret-id NAME` on the \
     failing ones for the fix"
)]
pub struct Findings {
    pub overdue: u64,
    pub failing: u64,
    pub total: u64,
}

/// One secret's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    pub name: String,
    pub rotation_enabled: bool,
    pub function: Option<String>,
    pub rules: Option<String>,
    pub last_rotated: Option<String>,
    pub next_rotation: Option<String>,
    pub days_since_last_rotation: f64,
    /// `Succeeded`, `Failed`, `InProgress`, `Pending` (an `AWSPENDING` version with no
    /// recorded status), `Never` (never rotated) or `Unknown`.
    pub last_outcome: String,
    pub failed_step: Option<String>,
    pub error_type: Option<String>,
    pub attempts: Option<u32>,
    pub failing: bool,
    pub overdue: bool,
    pub pending_age_hours: Option<f64>,
}

/// The rules in one short string: `every 30 days`, `rate(12 hours)`, `cron(...)`, with
/// `, window 2h`.
pub fn rules_text(r: &RotationRules) -> String {
    let mut s = match (&r.schedule_expression, r.automatically_after_days) {
        (Some(e), _) => e.clone(),
        (None, Some(d)) => format!("every {d} days"),
        (None, None) => String::new(),
    };
    if let Some(d) = &r.duration {
        let _ = write!(s, ", window {d}");
    }
    s
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// Builds a row from a ListSecrets entry, keyroll's rotation status (when the store keeps
/// one), the pending version's creation time (when there is one) and `now`.
pub fn row(
    e: &SecretListEntry,
    status: Option<&RotationStatus>,
    pending_since: Option<Timestamp>,
    now: Timestamp,
    max_age_days: Option<f64>,
) -> Row {
    let enabled = e.rotation_enabled == Some(true);
    let pending = e
        .secret_versions_to_stages
        .as_ref()
        .and_then(|m| m.iter().find(|(_, st)| st.iter().any(|s| s == AWSPENDING)))
        .map(|(id, _)| id.clone());
    let since = e.last_rotated_date.unwrap_or(e.created_date);
    let days = (now.millis() - since.millis()) as f64 / DAY_MS;
    let (outcome, failed_step, error_type, attempts, failing) = match status {
        Some(s) => (
            match s.state {
                RotationState::Succeeded => "Succeeded",
                RotationState::Failed => "Failed",
                RotationState::InProgress => "InProgress",
            }
            .to_string(),
            s.failed_step.map(|st| st.as_str().to_string()),
            s.error_type.clone(),
            Some(s.attempts),
            s.state == RotationState::Failed,
        ),
        None if pending.is_some() => ("Pending".into(), None, None, None, false),
        None if e.last_rotated_date.is_none() => ("Never".into(), None, None, None, false),
        None => ("Unknown".into(), None, None, None, false),
    };
    let past_next = enabled
        && e.next_rotation_date
            .is_some_and(|n| n.millis() < now.millis());
    let too_old = max_age_days.is_some_and(|m| days > m);
    let pending_age_hours = pending.as_ref().map(|_| {
        let from = pending_since.or(status.map(|s| s.started)).unwrap_or(since);
        round(
            (now.millis() - from.millis()).max(0) as f64 / 3_600_000.0,
            2,
        )
    });
    Row {
        name: e.name.clone(),
        rotation_enabled: enabled,
        function: e
            .rotation_lambda_arn
            .as_deref()
            .map(|f| rotators::function_name(f).to_string()),
        rules: e.rotation_rules.as_ref().map(rules_text),
        last_rotated: e.last_rotated_date.map(|t| t.to_rfc3339()),
        next_rotation: e.next_rotation_date.map(|t| t.to_rfc3339()),
        days_since_last_rotation: round(days, 2),
        last_outcome: outcome,
        failed_step,
        error_type,
        attempts,
        failing,
        overdue: past_next || too_old,
        pending_age_hours,
    }
}

/// CSV columns, in order.
pub const COLUMNS: [&str; 14] = [
    "Name",
    "RotationEnabled",
    "Function",
    "Rules",
    "LastRotated",
    "NextRotation",
    "DaysSinceLastRotation",
    "LastOutcome",
    "FailedStep",
    "ErrorType",
    "Attempts",
    "Failing",
    "Overdue",
    "PendingAgeHours",
];

/// RFC 4180: quoted when it holds a comma, quote, CR or LF; quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Row {
    fn cells(&self) -> [String; 14] {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.name.clone(),
            self.rotation_enabled.to_string(),
            o(&self.function),
            o(&self.rules),
            o(&self.last_rotated),
            o(&self.next_rotation),
            self.days_since_last_rotation.to_string(),
            self.last_outcome.clone(),
            o(&self.failed_step),
            o(&self.error_type),
            self.attempts.map(|a| a.to_string()).unwrap_or_default(),
            self.failing.to_string(),
            self.overdue.to_string(),
            self.pending_age_hours
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ]
    }

    pub fn csv(&self) -> String {
        let cells = self.cells();
        let mut line = cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",");
        line.push_str("\r\n");
        line
    }

    /// One fixed-width table line.
    fn table_line(&self) -> String {
        let date = |v: &Option<String>| {
            v.as_deref()
                .map(|d| d.get(..16).unwrap_or(d).replace('T', " "))
                .unwrap_or_else(|| "-".into())
        };
        let flag = |b: bool, s: &str| if b { s.to_string() } else { String::new() };
        format!(
            "{:<40} {:<3} {:<22} {:<16} {:<16} {:>7.1} {:<10} {:<7} {:<7} {}\n",
            self.name,
            if self.rotation_enabled { "yes" } else { "no" },
            self.rules.as_deref().unwrap_or("-"),
            date(&self.last_rotated),
            date(&self.next_rotation),
            self.days_since_last_rotation,
            self.last_outcome,
            flag(self.failing, "FAILING"),
            flag(self.overdue, "OVERDUE"),
            self.pending_age_hours
                .map(|h| format!("{h:.1}h"))
                .unwrap_or_default(),
        )
    }
}

const TABLE_HEADER: &str = "NAME                                     ON  RULES                  LAST ROTATED     NEXT ROTATION       DAYS OUTCOME    FAILING OVERDUE PENDING\n";

/// Totals over the rows written.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportSummary {
    pub secrets: u64,
    pub rotation_enabled: u64,
    pub overdue: u64,
    pub failing: u64,
    pub pending: u64,
    pub as_of: String,
}

/// Writes rows in one format as they come.
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    first: bool,
    pub summary: ReportSummary,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: Format, as_of: Timestamp) -> std::io::Result<Self> {
        let mut w = Writer {
            out,
            format,
            first: true,
            summary: ReportSummary {
                as_of: as_of.to_rfc3339(),
                ..Default::default()
            },
        };
        match format {
            Format::Json => w.out.write_all(b"{\n    \"Secrets\": [")?,
            Format::Csv => {
                let header = COLUMNS.join(",") + "\r\n";
                w.out.write_all(header.as_bytes())?
            }
            Format::Table => w.out.write_all(TABLE_HEADER.as_bytes())?,
        }
        Ok(w)
    }

    pub fn row(&mut self, r: &Row) -> anyhow::Result<()> {
        let s = &mut self.summary;
        s.secrets += 1;
        s.rotation_enabled += u64::from(r.rotation_enabled);
        s.overdue += u64::from(r.overdue);
        s.failing += u64::from(r.failing);
        s.pending += u64::from(r.pending_age_hours.is_some());
        match self.format {
            Format::Json => {
                let sep: &[u8] = if self.first {
                    b"\n        "
                } else {
                    b",\n        "
                };
                self.out.write_all(sep)?;
                serde_json::to_writer(&mut self.out, r)?;
            }
            Format::Csv => self.out.write_all(r.csv().as_bytes())?,
            Format::Table => self.out.write_all(r.table_line().as_bytes())?,
        }
        self.first = false;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<(W, ReportSummary)> {
        let s = &self.summary;
        match self.format {
            Format::Json => {
                let close: &[u8] = if self.first { b"],\n" } else { b"\n    ],\n" };
                self.out.write_all(close)?;
                self.out.write_all(b"    \"Summary\": ")?;
                serde_json::to_writer(&mut self.out, s)?;
                self.out.write_all(b"\n}\n")?;
            }
            Format::Csv => {}
            Format::Table => writeln!(
                self.out,
                "\n{} secrets, {} with rotation enabled: {} overdue, {} failing, {} with an \
                 unfinished rotation (as of {})",
                s.secrets, s.rotation_enabled, s.overdue, s.failing, s.pending, s.as_of
            )?,
        }
        self.out.flush()?;
        Ok((self.out, self.summary))
    }
}

/// When the version `id` of `arn` was created (for a pending version without a status).
pub(crate) async fn version_created(
    store: &dyn RotationStore,
    arn: &str,
    id: &str,
) -> Option<Timestamp> {
    let mut req = ListSecretVersionIdsRequest {
        secret_id: arn.to_string(),
        max_results: Some(100),
        next_token: None,
        include_deprecated: None,
    };
    loop {
        let page = store.list_secret_version_ids(req.clone()).await.ok()?;
        if let Some(v) = page.versions.iter().find(|v| v.version_id == id) {
            return Some(v.created_date);
        }
        req.next_token = Some(page.next_token?);
    }
}

/// `statuses`: the store keeps keyroll's rotation status (the embedded store), read with one
/// DescribeSecret per secret; through the AWS API there is none, so no DescribeSecret is sent
/// (100,000 secrets would be 100,000 throttled calls for nothing).
pub async fn run(
    args: &ReportArgs,
    store: &dyn RotationStore,
    statuses: bool,
    format: Format,
) -> anyhow::Result<()> {
    let now = match &args.as_of {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| Timestamp::from_datetime(d.with_timezone(&chrono::Utc)))
            .map_err(|e| {
                crate::UsageError(format!(
                    "--as-of {t:?} is not an RFC 3339 time like 2026-12-31T00:00:00Z ({e})"
                ))
            })?,
        None => store.now(),
    };
    if let Some(m) = args.max_age_days
        && !(m.is_finite() && m >= 0.0)
    {
        anyhow::bail!(crate::UsageError(format!(
            "--max-age-days must be a number of days, 0 or more (got {m})"
        )));
    }
    let stdout = std::io::stdout().lock();
    let mut w = Writer::new(std::io::BufWriter::new(stdout), format, now)?;
    let mut pager = Pager::new(store, args.select.filters()?);
    while let Some(page) = pager.next_page().await? {
        for e in page {
            // keyroll's rotation status, where the store keeps it (not in ListSecrets).
            let status = if statuses {
                match store
                    .describe_secret(SecretIdRequest {
                        secret_id: e.arn.clone(),
                    })
                    .await
                {
                    Ok(d) => d.keyroll_rotation_status,
                    // Deleted since the page was listed.
                    Err(keyroll_core::SmError::ResourceNotFound(_)) => continue,
                    Err(err) => return Err(err.into()),
                }
            } else {
                None
            };
            let pending = e.secret_versions_to_stages.as_ref().and_then(|m| {
                m.iter()
                    .find(|(_, st)| st.iter().any(|s| s == AWSPENDING))
                    .map(|(id, _)| id.clone())
            });
            let pending_since = match (&pending, &status) {
                (Some(p), Some(s)) if &s.version_id == p => Some(s.started),
                (Some(p), _) => version_created(store, &e.arn, p).await,
                (None, _) => None,
            };
            w.row(&row(
                &e,
                status.as_ref(),
                pending_since,
                now,
                args.max_age_days,
            ))?;
        }
    }
    let (_, summary) = w.finish()?;
    let overdue = if args.fail_on.contains(&FailOn::Overdue) {
        summary.overdue
    } else {
        0
    };
    let failing = if args.fail_on.contains(&FailOn::Failing) {
        summary.failing
    } else {
        0
    };
    if overdue + failing > 0 {
        return Err(Findings {
            overdue,
            failing,
            total: summary.secrets,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(name: &str) -> SecretListEntry {
        serde_json::from_value(serde_json::json!({
            "ARN": format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-AbCdEf"),
            "Name": name,
            "CreatedDate": 1_700_000_000.0,
        }))
        .unwrap()
    }

    const DAY: i64 = 86_400_000;

    fn t0() -> Timestamp {
        Timestamp::from_secs(1_700_000_000)
    }

    #[test]
    fn overdue_past_next_rotation_or_too_old() {
        let mut e = entry("a");
        e.rotation_enabled = Some(true);
        e.last_rotated_date = Some(t0());
        e.next_rotation_date = Some(t0().plus_days(30));
        let r = row(&e, None, None, t0().plus_days(10), None);
        assert!(!r.overdue);
        assert_eq!(r.days_since_last_rotation, 10.0);
        assert_eq!(r.last_outcome, "Unknown");
        assert!(row(&e, None, None, t0().plus_days(31), None).overdue);
        assert!(row(&e, None, None, t0().plus_days(10), Some(9.5)).overdue);
        // Rotation disabled: a stale NextRotationDate does not make it overdue.
        e.rotation_enabled = Some(false);
        assert!(!row(&e, None, None, t0().plus_days(31), None).overdue);
    }

    #[test]
    fn failing_and_pending_from_the_status() {
        let mut e = entry("b");
        let mut m = BTreeMap::new();
        m.insert("v1".to_string(), vec!["AWSCURRENT".to_string()]);
        m.insert("v2".to_string(), vec!["AWSPENDING".to_string()]);
        e.secret_versions_to_stages = Some(m);
        let st = RotationStatus::begin("v2", t0(), None).failed(
            keyroll_core::model::Step::Set,
            "Unreachable".into(),
            "no route".into(),
            t0().plus_millis(5),
        );
        let r = row(&e, Some(&st), Some(t0()), t0().plus_millis(DAY / 2), None);
        assert!(r.failing);
        assert_eq!(r.last_outcome, "Failed");
        assert_eq!(r.failed_step.as_deref(), Some("setSecret"));
        assert_eq!(r.error_type.as_deref(), Some("Unreachable"));
        assert_eq!(r.pending_age_hours, Some(12.0));
        // Without a status (AWS API), a pending version is "Pending", not failing.
        let r = row(&e, None, Some(t0()), t0().plus_millis(DAY), None);
        assert_eq!(r.last_outcome, "Pending");
        assert!(!r.failing);
        assert_eq!(r.pending_age_hours, Some(24.0));
        assert_eq!(
            row(&entry("c"), None, None, t0(), None).last_outcome,
            "Never"
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let mut e = entry("x");
        e.rotation_rules = Some(RotationRules {
            automatically_after_days: None,
            duration: Some("2h".into()),
            schedule_expression: Some("cron(0 16 1,15 * ? *)".into()),
        });
        let line = row(&e, None, None, t0(), None).csv();
        assert!(
            line.contains("\"cron(0 16 1,15 * ? *), window 2h\""),
            "{line}"
        );
        assert!(line.ends_with("\r\n"));
    }

    #[test]
    fn json_document_is_valid_with_and_without_rows() {
        for n in [0, 1, 3] {
            let mut w = Writer::new(Vec::new(), Format::Json, t0()).unwrap();
            for i in 0..n {
                w.row(&row(&entry(&format!("s{i}")), None, None, t0(), None))
                    .unwrap();
            }
            let (out, _) = w.finish().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["Secrets"].as_array().unwrap().len(), n);
            assert_eq!(v["Summary"]["Secrets"], n);
        }
    }
}
