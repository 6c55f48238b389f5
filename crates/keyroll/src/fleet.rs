//! Fleet rotation: `keyroll rotate --filter … | --all`, many secrets in one run.
//!
//! Secrets are selected with ListSecrets' filters and rotated while the listing is paged, at
//! most `--concurrency` at a time, so memory stays bounded by the concurrency and one page
//! whatever the fleet's size. Each secret goes through the same engine as a single
//! `keyroll rotate` (`keyroll_core::engine::rotate`, notifications included); targets are
//! shared per engine family for the whole run (one TLS set-up, one set of counters).
//!
//! Output: one JSON line per secret on stdout as it ends (`--output json`, the default), then
//! a summary line; or, with `--output table`, a table of every secret and a summary. On a
//! terminal, stderr shows a progress line (count, rate, ETA, failures).
//!
//! Ctrl-C stops starting rotations; rotations that have not reached setSecret are cancelled
//! (their pending version is discarded, nothing changed on the target) and those past it run
//! to the end, exactly as `CancelRotateSecret` does in `keyroll serve`.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use keyroll_core::api::{Filter, GetSecretValueRequest, ListSecretsRequest, SecretListEntry};
use keyroll_core::engine::{RotateOptions, RotationError, Silent, StepError, rotate};
use keyroll_core::model::AWSCURRENT;
use keyroll_core::ports::{RotationStore, SharedTarget, TargetError, VersionedValue};
use keyroll_core::rotators;
use keyroll_targets::database::{Engine, Family};
use keyroll_targets::mysql::MysqlTarget;
use keyroll_targets::postgres::PostgresTarget;
use serde::Serialize;

use crate::output::Format;
use crate::rotate::RotateArgs;

/// The default `--concurrency`: enough rotations in flight to hide database round trips on
/// a small machine without exhausting a server's connection slots (each rotation holds at
/// most one database session at a time).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Selecting many secrets (`keyroll rotate`, `keyroll report`, `keyroll doctor`).
#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// Select secrets with ListSecrets' filters: `tag-key=critical`, `name=prod/,staging/`,
    /// `Key=tag-value,Values=!legacy` or a JSON array. Repeatable; a secret must match
    /// every filter (prefix match; `!` negates). Keys: name, description, tag-key,
    /// tag-value, primary-region, owning-service, all.
    #[arg(long, num_args = 1.., value_name = "FILTER")]
    pub filter: Vec<String>,
}

impl SelectArgs {
    /// The filters as ListSecrets takes them.
    pub fn filters(&self) -> anyhow::Result<Vec<Filter>> {
        parse_filters(&self.filter)
    }
}

/// `key=v1,v2` as well as the aws CLI's `Key=key,Values=v1,v2` and JSON.
pub fn parse_filters(args: &[String]) -> anyhow::Result<Vec<Filter>> {
    let mut out = Vec::new();
    for a in args {
        if a.trim_start().starts_with('[') || a.starts_with("Key=") {
            out.extend(crate::input::filters(std::slice::from_ref(a))?);
            continue;
        }
        let Some((key, values)) = a.split_once('=') else {
            anyhow::bail!(crate::UsageError(format!(
                "--filter {a:?}: write it as KEY=VALUE[,VALUE...], e.g. tag-key=critical or \
                 name=prod/ (keys: name, description, tag-key, tag-value, primary-region, \
                 owning-service, all)"
            )));
        };
        out.push(Filter {
            key: key.to_string(),
            values: values.split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// Secrets per page when walking a store: 100 through the AWS API, more in this process
/// (the embedded store), where a page costs one pass over every secret.
pub(crate) const PAGE: usize = 5_000;

/// Pages through ListSecrets: only one page is held at once.
pub struct Pager<'a> {
    store: &'a dyn RotationStore,
    req: ListSecretsRequest,
    done: bool,
}

impl<'a> Pager<'a> {
    pub fn new(store: &'a dyn RotationStore, filters: Vec<Filter>) -> Self {
        Pager {
            store,
            req: ListSecretsRequest {
                include_planned_deletion: None,
                max_results: Some(100),
                next_token: None,
                filters: (!filters.is_empty()).then_some(filters),
                sort_order: None,
            },
            done: false,
        }
    }

    /// The next page, `None` after the last one.
    pub async fn next_page(&mut self) -> anyhow::Result<Option<Vec<SecretListEntry>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .list_secrets_in_pages_of(self.req.clone(), PAGE)
            .await?;
        match page.next_token {
            Some(t) => self.req.next_token = Some(t),
            None => self.done = true,
        }
        Ok(Some(page.secret_list))
    }
}

/// The fleet flags of `keyroll rotate`.
#[derive(Debug, Args, Clone)]
pub struct FleetArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Rotate every selected secret, including those whose rotation is not enabled yet
    /// (enabled with the built-in rotator, as a single `keyroll rotate` does). Without
    /// --filter: every secret in the store.
    #[arg(long)]
    pub all: bool,
    /// Rotations in flight at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// List what would be rotated; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl FleetArgs {
    /// Whether this `keyroll rotate` is a fleet run.
    pub fn is_fleet(&self) -> bool {
        !self.select.filter.is_empty() || self.all
    }
}

/// Why a fleet run did not succeed (the per-secret outcomes were printed already).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "{failed} of {total} rotations failed (AWSCURRENT is unchanged for each; fix the cause \
         shown per secret and run the same command again to resume them)"
    )]
    Failed { failed: u64, total: u64 },
    #[error(
        "interrupted: {done} rotations ended, {cancelled} cancelled before setSecret, the rest \
         not started; run the same command again to carry on"
    )]
    Interrupted { done: u64, cancelled: u64 },
}

/// One secret's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    Rotated,
    Failed,
    /// Not rotated: rotation not enabled (without --all) or a custom function.
    Skipped,
    /// Ctrl-C before setSecret: nothing changed.
    Cancelled,
    /// `--dry-run`.
    WouldRotate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretOutcome {
    pub name: String,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub selected: u64,
    pub rotated: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub would_rotate: u64,
    pub seconds: f64,
    pub rotations_per_second: f64,
    /// Database connections opened (TCP), all targets together.
    pub database_connections: u64,
    pub concurrency: usize,
}

/// One target per database family for the whole run; other engines resolved per secret.
pub(crate) struct TargetCache {
    config: keyroll_targets::TargetConfig,
    postgres: Arc<PostgresTarget>,
    mysql: Arc<MysqlTarget>,
}

impl TargetCache {
    pub(crate) fn new(config: keyroll_targets::TargetConfig) -> Self {
        TargetCache {
            postgres: Arc::new(PostgresTarget::new(config.clone())),
            mysql: Arc::new(MysqlTarget::new(config.clone())),
            config,
        }
    }

    pub(crate) fn get(
        &self,
        desc: &keyroll_core::api::DescribeSecretResponse,
        current: &VersionedValue,
    ) -> Result<SharedTarget, TargetError> {
        let engine = current.value.json_object().and_then(|o| {
            o.get("engine")
                .and_then(|e| e.as_str())
                .and_then(Engine::parse)
        });
        match engine.map(Engine::family) {
            Some(Family::Postgres) => Ok(self.postgres.clone()),
            Some(Family::Mysql) => Ok(self.mysql.clone()),
            None => keyroll_targets::resolve(desc, &current.value, &self.config),
        }
    }

    /// What the database target of `family` has done so far.
    pub(crate) fn stats(&self, family: Family) -> keyroll_targets::database::StatsSnapshot {
        match family {
            Family::Postgres => self.postgres.stats(),
            Family::Mysql => self.mysql.stats(),
        }
    }

    fn connections(&self) -> u64 {
        self.postgres.stats().connections + self.mysql.stats().connections
    }
}

/// What every rotation of a run shares.
struct Run {
    store: Arc<dyn RotationStore>,
    targets: TargetCache,
    notifier: keyroll_notify::Notifier,
    opts: RotateOptions,
    builtin: String,
    /// Enable rotation with the built-in rotator where it is not (embedded store, `--all`).
    configure: bool,
    /// The store lets a client rotate a secret whose rotation is off (`--store aws`).
    allow_rotation_disabled: bool,
    all: bool,
    dry_run: bool,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Run {
    async fn one(&self, e: SecretListEntry) -> SecretOutcome {
        let started = Instant::now();
        let mut out = SecretOutcome {
            name: e.name.clone(),
            arn: e.arn.clone(),
            outcome: Outcome::Rotated,
            version_id: None,
            failed_step: None,
            error_type: None,
            message: None,
            duration_ms: 0.0,
        };
        let enabled = e.rotation_enabled == Some(true);
        let function = e.rotation_lambda_arn.clone();
        let custom = function
            .as_deref()
            .is_some_and(|f| !rotators::is_builtin(f));
        let skip = if !enabled && !self.all {
            Some(
                "rotation is not enabled for this secret; pass --all to enable it with the \
                 built-in rotator and rotate it"
                    .to_string(),
            )
        } else if custom && !self.allow_rotation_disabled {
            Some(format!(
                "rotated by the custom function {}, which runs under `keyroll serve`; rotate it \
                 there (aws secretsmanager rotate-secret --endpoint-url ...)",
                rotators::function_name(function.as_deref().unwrap_or_default())
            ))
        } else {
            None
        };
        if let Some(why) = skip {
            out.outcome = Outcome::Skipped;
            out.message = Some(why);
            return out;
        }
        if self.dry_run {
            out.outcome = Outcome::WouldRotate;
            return out;
        }
        let result = self.rotate(&e, enabled).await;
        out.duration_ms = ms(started.elapsed());
        match result {
            Ok(version) => out.version_id = Some(version),
            Err(err) => {
                let (outcome, step, class, message) = describe_error(&err);
                out.outcome = outcome;
                out.failed_step = step;
                out.error_type = Some(class);
                out.message = Some(message);
            }
        }
        out
    }

    async fn rotate(&self, e: &SecretListEntry, enabled: bool) -> anyhow::Result<String> {
        let store = self.store.as_ref();
        if !enabled && self.configure {
            store
                .configure_rotation(&e.arn, Some(self.builtin.clone()), None)
                .await?;
        }
        let desc = store
            .describe_secret(keyroll_core::api::SecretIdRequest {
                secret_id: e.arn.clone(),
            })
            .await?;
        let current = VersionedValue::from_response(
            store
                .get_secret_value(GetSecretValueRequest {
                    secret_id: e.arn.clone(),
                    version_id: None,
                    version_stage: Some(AWSCURRENT.into()),
                })
                .await?,
        )?;
        let target = self.targets.get(&desc, &current)?;
        drop(current);
        let observer = keyroll_notify::NotifyingObserver::new(
            &Silent,
            &self.notifier,
            "keyroll rotate",
            || store.now(),
        );
        let result = rotate(store, target.as_ref(), &e.arn, &self.opts, &observer).await;
        observer.flush().await;
        Ok(result?.version_id)
    }
}

fn describe_error(err: &anyhow::Error) -> (Outcome, Option<String>, String, String) {
    if let Some(r) = err.downcast_ref::<RotationError>() {
        let outcome = match r {
            RotationError::Step {
                error: StepError::Cancelled(_),
                ..
            } => Outcome::Cancelled,
            _ => Outcome::Failed,
        };
        return (
            outcome,
            r.failed_step().map(|s| s.as_str().to_string()),
            r.class().to_string(),
            r.to_string(),
        );
    }
    let class = if let Some(t) = err.downcast_ref::<TargetError>() {
        t.class()
    } else if err.downcast_ref::<keyroll_core::SmError>().is_some() {
        "StoreError"
    } else {
        "Error"
    };
    (Outcome::Failed, None, class.to_string(), format!("{err:#}"))
}

/// Counters the progress line and the summary read.
#[derive(Default)]
struct Counts {
    selected: AtomicU64,
    ended: AtomicU64,
    rotated: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    cancelled: AtomicU64,
    would: AtomicU64,
}

impl Counts {
    fn add(&self, o: Outcome) {
        self.ended.fetch_add(1, Ordering::Relaxed);
        let c = match o {
            Outcome::Rotated => &self.rotated,
            Outcome::Failed => &self.failed,
            Outcome::Skipped => &self.skipped,
            Outcome::Cancelled => &self.cancelled,
            Outcome::WouldRotate => &self.would,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// `[ 412/1000]  83.1/s  ETA 7s  failures 0`; the total grows as pages are listed.
fn progress_line(c: &Counts, elapsed: Duration, listing: bool) -> String {
    let done = c.ended.load(Ordering::Relaxed);
    let total = c.selected.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = done as f64 / secs;
    let eta = if rate > 0.0 && total >= done {
        format!("{:.0}s", (total - done) as f64 / rate)
    } else {
        "?".into()
    };
    let more = if listing { "+" } else { "" };
    format!(
        "[{done:>6}/{total}{more}] {rate:>7.1}/s  ETA {eta:<6} failures {}",
        c.failed.load(Ordering::Relaxed)
    )
}

fn finished(
    r: Result<SecretOutcome, tokio::task::JoinError>,
    emit: &dyn Fn(SecretOutcome) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match r {
        Ok(o) => emit(o),
        Err(e) => {
            tracing::error!(error = %e, "a rotation task stopped unexpectedly");
            Ok(())
        }
    }
}

/// Runs a fleet rotation and prints its outcomes; errors when any rotation failed or the run
/// was interrupted.
pub async fn run(
    args: &RotateArgs,
    fleet: &FleetArgs,
    store: Arc<dyn RotationStore>,
    builtin: String,
    allow_rotation_disabled: bool,
    format: Format,
) -> anyhow::Result<()> {
    if format == Format::Csv {
        anyhow::bail!(crate::UsageError(
            "--output csv is only for `keyroll report`; fleet rotation prints json lines or a \
             table"
                .into()
        ));
    }
    if fleet.concurrency == 0 || fleet.concurrency > 1024 {
        anyhow::bail!(crate::UsageError(format!(
            "--concurrency must be between 1 and 1024 (got {})",
            fleet.concurrency
        )));
    }
    if args.client_request_token.is_some() || args.discard_pending {
        anyhow::bail!(crate::UsageError(
            "--client-request-token and --discard-pending name one rotation; use them with \
             --secret-id, not with --filter/--all"
                .into()
        ));
    }
    let filters = fleet.select.filters()?;
    let cancel = Arc::new(AtomicBool::new(false));
    let run = Arc::new(Run {
        store,
        targets: TargetCache::new(args.target_config()?),
        notifier: args.notifier()?,
        opts: RotateOptions {
            token: None,
            discard_pending: false,
            allow_rotation_disabled,
            cancel: Some(cancel.clone()),
            step_timeout: Some(crate::rotate::seconds("step-timeout", args.step_timeout)?),
            rotation_timeout: Some(crate::rotate::seconds(
                "rotation-timeout",
                args.rotation_timeout,
            )?),
        },
        builtin,
        configure: !allow_rotation_disabled,
        allow_rotation_disabled,
        all: fleet.all,
        dry_run: fleet.dry_run,
    });
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.store(true, Ordering::SeqCst);
            }
        });
    }
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let listing = Arc::new(AtomicBool::new(true));
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let (counts, listing) = (counts.clone(), listing.clone());
        tokio::spawn(async move {
            loop {
                let line =
                    progress_line(&counts, started.elapsed(), listing.load(Ordering::Relaxed));
                let _ = write!(std::io::stderr(), "\r{line}\x1b[K");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });

    let rows: Mutex<Vec<SecretOutcome>> = Mutex::new(Vec::new());
    let emit = |o: SecretOutcome| -> anyhow::Result<()> {
        counts.add(o.outcome);
        match format {
            Format::Json => {
                let mut line = serde_json::to_vec(&o)?;
                line.push(b'\n');
                let mut out = std::io::stdout().lock();
                out.write_all(&line)?;
                out.flush()?;
            }
            Format::Table | Format::Csv => rows.lock().unwrap_or_else(|p| p.into_inner()).push(o),
        }
        Ok(())
    };

    let sem = Arc::new(tokio::sync::Semaphore::new(fleet.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut pager = Pager::new(run.store.as_ref(), filters);
    let listed: anyhow::Result<()> = async {
        'pages: while let Some(page) = pager.next_page().await? {
            for e in page {
                if cancel.load(Ordering::SeqCst) {
                    break 'pages;
                }
                // ListSecrets pages can repeat an entry when the store changes meanwhile.
                if !seen.insert(e.arn.clone()) {
                    continue;
                }
                counts.selected.fetch_add(1, Ordering::Relaxed);
                let permit = sem.clone().acquire_owned().await?;
                while let Some(r) = tasks.try_join_next() {
                    finished(r, &emit)?;
                }
                let run = run.clone();
                tasks.spawn(async move {
                    let o = run.one(e).await;
                    drop(permit);
                    o
                });
            }
        }
        Ok(())
    }
    .await;
    listing.store(false, Ordering::Relaxed);
    while let Some(r) = tasks.join_next().await {
        finished(r, &emit)?;
    }
    if let Err(e) = listed {
        if let Some(b) = &bar {
            b.abort();
        }
        return Err(e);
    }
    let interrupted = cancel.load(Ordering::SeqCst);
    if let Some(b) = bar {
        b.abort();
        let line = progress_line(&counts, started.elapsed(), false);
        let _ = writeln!(std::io::stderr(), "\r{line}\x1b[K");
    }
    let elapsed = started.elapsed();
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = Summary {
        selected: get(&counts.selected),
        rotated: get(&counts.rotated),
        failed: get(&counts.failed),
        skipped: get(&counts.skipped),
        cancelled: get(&counts.cancelled),
        would_rotate: get(&counts.would),
        seconds: (elapsed.as_secs_f64() * 1e3).round() / 1e3,
        rotations_per_second: ((get(&counts.rotated) as f64 / elapsed.as_secs_f64().max(1e-9))
            * 10.0)
            .round()
            / 10.0,
        database_connections: run.targets.connections(),
        concurrency: fleet.concurrency,
    };
    match format {
        Format::Json => {
            let mut line = serde_json::to_vec(&serde_json::json!({ "Summary": summary }))?;
            line.push(b'\n');
            std::io::stdout().lock().write_all(&line)?;
        }
        Format::Table | Format::Csv => {
            let rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
            crate::output::print(
                Format::Table,
                &serde_json::json!({ "Secrets": rows, "Summary": summary }),
            )?;
        }
    }
    if interrupted {
        return Err(FleetError::Interrupted {
            done: summary.rotated + summary.failed,
            cancelled: summary.cancelled,
        }
        .into());
    }
    if summary.failed > 0 {
        return Err(FleetError::Failed {
            failed: summary.failed,
            total: summary.selected,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_short_and_long_forms() {
        let f = parse_filters(&["tag-key=critical".into()]).unwrap();
        assert_eq!(f[0].key, "tag-key");
        assert_eq!(f[0].values, vec!["critical"]);
        let f =
            parse_filters(&["name=prod/,dev/".into(), "Key=tag-value,Values=!x".into()]).unwrap();
        assert_eq!(f[0].values, vec!["prod/", "dev/"]);
        assert_eq!(f[1].key, "tag-value");
        assert_eq!(f[1].values, vec!["!x"]);
        assert!(parse_filters(&["critical".into()]).is_err());
    }

    #[test]
    fn progress_shows_rate_eta_and_failures() {
        let c = Counts::default();
        c.selected.store(100, Ordering::Relaxed);
        for _ in 0..40 {
            c.add(Outcome::Rotated);
        }
        c.add(Outcome::Failed);
        let line = progress_line(&c, Duration::from_secs(2), false);
        assert!(line.contains("41/100]"), "{line}");
        assert!(line.contains("20.5/s"), "{line}");
        assert!(line.contains("ETA 3s"), "{line}");
        assert!(line.ends_with("failures 1"), "{line}");
        assert!(progress_line(&c, Duration::from_secs(2), true).contains("100+]"));
    }
}
