//! `keyroll doctor`: checks each secret's live state without changing anything, and prints
//! every finding with the exact fix.
//!
//! Per secret: the schedule parses; the rotation function is one keyroll can run; the
//! password policy fits the engine (PostgreSQL's `:` exclusion); `AWSCURRENT` logs in (the
//! target's own `testSecret` check run against the current version: a database login, IAM
//! `GetCallerIdentity`, the HTTP test request) and over TLS; for alternating users, the
//! master secret is for the same server (genuine) and logs in; a stale `AWSPENDING` and
//! whether it logs in.
//!
//! `--repair` does only what cannot lock anyone out:
//! - `AWSCURRENT` refused and `AWSPENDING` logs in (a rotation that stopped after setSecret,
//!   or a password changed out of band to the pending one): the rotation is finished through
//!   the engine (`keyroll_core::engine::rotate` resumes the pending version);
//! - `AWSPENDING` logs in nowhere while `AWSCURRENT` does: the pending label is removed.
//!
//! Everything else is refused with the reason. Each repair is written to the audit trail
//! (`DATA_DIR/audit`, as `keyroll serve` writes it; through the AWS API, CloudTrail records
//! the calls) and notified (RotationSucceeded for a finished rotation, RotationFailed with
//! class `PendingDiscarded` for a dropped one).
//!
//! Findings are collected and printed at the end (doctor is meant for a few secrets at a
//! time; it logs in to each).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use keyroll_core::api::{GetSecretValueRequest, SecretIdRequest, UpdateSecretVersionStageRequest};
use keyroll_core::engine::{RotateOptions, Silent};
use keyroll_core::model::{AWSCURRENT, AWSPENDING, Step};
use keyroll_core::ports::{
    RotationStore, SecretsApi, StepContext, Target, TargetError, VersionedValue,
};
use keyroll_core::rotators;
use keyroll_targets::database::{DbSecret, SslMode};
use serde::Serialize;

use crate::fleet::{Pager, SelectArgs, TargetCache};
use crate::output::Format;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    keyroll doctor --secret-id prod/db\n  \
    keyroll doctor --filter tag-key=critical --output table\n  \
    keyroll doctor --secret-id prod/db --repair")]
pub struct DoctorArgs {
    /// The secret to check (default: every secret, or those --filter selects).
    #[arg(long, conflicts_with = "filter")]
    pub secret_id: Option<String>,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Carry out the repairs that cannot lock anyone out (finish a rotation whose AWSPENDING
    /// logs in while AWSCURRENT does not; drop an AWSPENDING that logs in nowhere while
    /// AWSCURRENT does); refuse the rest with the reason.
    #[arg(long)]
    pub repair: bool,
    /// Seconds one connection attempt (TCP, TLS, login) may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// PEM file of CA certificates to trust for database TLS instead of the system roots.
    #[arg(long, value_name = "PEM", env = "KEYROLL_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// The exclusions your rotations use (`keyroll rotate --exclude-characters`), checked
    /// against the engine's.
    #[arg(long)]
    pub exclude_characters: Option<String>,
    /// keyroll.toml whose `[notify]` section says where repair notifications go.
    #[arg(long, value_name = "FILE", env = "KEYROLL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Send no notification for repairs.
    #[arg(long)]
    pub no_notify: bool,
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// `--repair` fixed it.
    Repaired,
    /// `--repair` would not: it could lock someone out.
    Refused,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    pub secret: String,
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// `keyroll doctor` found problems it did not repair.
#[derive(Debug, thiserror::Error)]
#[error(
    "{problems} problems found in {secrets} secrets; each finding above names its fix{}",
    if *.repairable > 0 { format!(" ({} can be repaired safely with --repair)", .repairable) } else { String::new() }
)]
pub struct Problems {
    pub problems: usize,
    pub secrets: usize,
    pub repairable: usize,
}

struct Doctor<'a> {
    store: &'a dyn RotationStore,
    targets: TargetCache,
    exclude: Option<String>,
    repair: bool,
    notifier: keyroll_notify::Notifier,
    audit: Option<keyroll_audit::AuditLog>,
    region: String,
    account: String,
    findings: Vec<Finding>,
    repairable: usize,
}

/// One login: the target's `testSecret` run against `version_id` as if it were pending.
async fn login(
    store: &dyn RotationStore,
    target: &dyn Target,
    desc: &keyroll_core::api::DescribeSecretResponse,
    version_id: &str,
) -> Result<(), TargetError> {
    let ctx = StepContext::new(
        store as &dyn SecretsApi,
        Step::Test,
        &desc.arn,
        version_id,
        desc,
    );
    target.test(&ctx).await
}

/// An ARN's region and account (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:…`).
fn arn_parts(arn: &str) -> (String, String) {
    let mut p = arn.split(':').skip(3);
    (
        p.next().unwrap_or_default().to_string(),
        p.next().unwrap_or_default().to_string(),
    )
}

impl Doctor<'_> {
    fn add(
        &mut self,
        secret: &str,
        check: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        self.findings.push(Finding {
            secret: secret.to_string(),
            check,
            status,
            detail: detail.into(),
            fix,
        });
    }

    fn audit(&self, event: &str, arn: &str, details: serde_json::Value) -> Result<(), String> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let mut r = keyroll_audit::AuditRecord::service_event(
            chrono::Utc::now(),
            event,
            &self.account,
            &self.region,
            details,
        );
        r.resources
            .push(keyroll_audit::Resource::secret(arn, &self.account));
        log.append(r, keyroll_audit::Durability::Sync)
            .map_err(|e| e.to_string())
    }

    async fn check(&mut self, secret_id: &str) -> anyhow::Result<()> {
        let store = self.store;
        let desc = store
            .describe_secret(SecretIdRequest {
                secret_id: secret_id.to_string(),
            })
            .await?;
        let name = desc.name.clone();
        let enabled = desc.rotation_enabled == Some(true);
        let rotate_cmd = format!("keyroll rotate --secret-id {name}");

        // The schedule.
        match &desc.rotation_rules {
            Some(r) => match keyroll_core::schedule::validate(r) {
                Ok(()) => self.add(
                    &name,
                    "schedule",
                    Status::Ok,
                    crate::report::rules_text(r),
                    None,
                ),
                Err(e) => self.add(
                    &name,
                    "schedule",
                    Status::Fail,
                    format!("the rotation rules do not parse: {e}"),
                    Some(format!(
                        "{rotate_cmd} --rotation-rules AutomaticallyAfterDays=30 (or a valid \
                         rate()/cron() expression)"
                    )),
                ),
            },
            None if enabled => self.add(
                &name,
                "schedule",
                Status::Warn,
                "rotation is enabled without a schedule: it rotates only when asked",
                Some(format!(
                    "{rotate_cmd} --rotation-rules AutomaticallyAfterDays=30"
                )),
            ),
            None => self.add(
                &name,
                "schedule",
                Status::Ok,
                "rotation not configured",
                None,
            ),
        }

        // The function.
        match &desc.rotation_lambda_arn {
            Some(f) if rotators::is_builtin(f) => self.add(
                &name,
                "function",
                Status::Ok,
                format!("built-in rotator {}", rotators::function_name(f)),
                None,
            ),
            Some(f) if self.audit.is_some() => self.add(
                &name,
                "function",
                Status::Warn,
                format!(
                    "{} is a custom function: only `keyroll serve` can run it, mapped to a \
                     command in its config file",
                    rotators::function_name(f)
                ),
                Some(format!(
                    "map {} under [functions] in keyroll.toml, or switch to the built-in \
                     rotator: {rotate_cmd} --rotation-lambda-arn keyroll",
                    rotators::function_name(f)
                )),
            ),
            Some(f) => self.add(
                &name,
                "function",
                Status::Ok,
                format!("Lambda function {f} (not invoked by doctor)"),
                None,
            ),
            None => self.add(&name, "function", Status::Ok, "none configured", None),
        }

        // The current value and its target.
        let current = match store
            .get_secret_value(GetSecretValueRequest {
                secret_id: desc.arn.clone(),
                version_id: None,
                version_stage: Some(AWSCURRENT.into()),
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| Ok(VersionedValue::from_response(r)?))
        {
            Ok(v) => v,
            Err(e) => {
                self.add(
                    &name,
                    "AWSCURRENT",
                    Status::Fail,
                    format!("cannot read AWSCURRENT: {e}"),
                    Some(format!(
                        "keyroll secret put --secret-id {name} --secret-string file://value.json"
                    )),
                );
                return Ok(());
            }
        };
        let target = match self.targets.get(&desc, &current) {
            Ok(t) => t,
            Err(e) => {
                self.add(
                    &name,
                    "target",
                    Status::Fail,
                    e.to_string(),
                    Some("fix the secret's \"engine\" field".into()),
                );
                return Ok(());
            }
        };
        if target.name() == "none" {
            self.add(
                &name,
                "login",
                Status::Ok,
                "a generated secret: nothing to log in to",
                None,
            );
            return Ok(());
        }
        let db = DbSecret::parse(&current.value, &format!("the AWSCURRENT version of {name}")).ok();
        let family = db.as_ref().map(|d| d.engine.family());

        // The password policy.
        if let Some(d) = &db {
            let policy = d.engine.default_policy();
            let bad: String = {
                use secrecy::ExposeSecret;
                let pw = d.password().expose_secret();
                let mut b: Vec<char> = policy
                    .exclude_characters
                    .chars()
                    .filter(|c| pw.contains(*c))
                    .collect();
                b.dedup();
                b.into_iter().collect()
            };
            let dropped: String = match &self.exclude {
                Some(x) => policy
                    .exclude_characters
                    .chars()
                    .filter(|c| !x.contains(*c))
                    .collect(),
                None => String::new(),
            };
            if !dropped.is_empty() {
                self.add(
                    &name,
                    "password policy",
                    Status::Warn,
                    format!(
                        "--exclude-characters leaves out {dropped:?}, which {} passwords must \
                         not contain",
                        d.engine
                    ),
                    Some(format!(
                        "add {dropped:?} to --exclude-characters (or leave the option out)"
                    )),
                );
            } else if !bad.is_empty() {
                self.add(
                    &name,
                    "password policy",
                    Status::Warn,
                    format!(
                        "the current password contains {bad:?}, which {}'s policy excludes \
                         (it breaks connection URIs and .pgpass files)",
                        d.engine
                    ),
                    Some(format!(
                        "{rotate_cmd} (the new password follows the policy)"
                    )),
                );
            } else {
                self.add(
                    &name,
                    "password policy",
                    Status::Ok,
                    format!(
                        "fits {}'s (excludes {:?})",
                        d.engine, policy.exclude_characters
                    ),
                    None,
                );
            }
        }

        // AWSCURRENT logs in, and over TLS?
        let before = family.map(|f| self.targets.stats(f));
        let cur = login(store, target.as_ref(), &desc, &current.version_id).await;
        match &cur {
            Ok(()) => self.add(&name, "AWSCURRENT login", Status::Ok, "logs in", None),
            Err(e) => self.add(
                &name,
                "AWSCURRENT login",
                Status::Fail,
                // The target's testSecret speaks of "pending": here it tested AWSCURRENT.
                e.to_string()
                    .replace("the pending credentials", "the AWSCURRENT credentials"),
                Some(
                    "the password was changed outside keyroll, or the user is gone: see the \
                     repair finding below"
                        .into(),
                ),
            ),
        }
        if let (Some(d), Some(f), Some(before)) = (&db, family, before) {
            let delta = self.targets.stats(f) - before;
            match (d.ssl, cur.is_ok(), delta.tls_logins > 0) {
                (SslMode::Disable, _, _) => self.add(
                    &name,
                    "TLS",
                    Status::Warn,
                    "the secret says \"ssl\": false: the password crosses the network in \
                     plaintext",
                    Some(format!(
                        "enable TLS on {} and set \"ssl\": true in the secret",
                        d.endpoint()
                    )),
                ),
                (_, true, false) => self.add(
                    &name,
                    "TLS",
                    Status::Warn,
                    format!("{} offers no TLS: the login used plaintext", d.endpoint()),
                    Some(format!(
                        "enable TLS on {} (then set \"ssl\": true in the secret, or rotate \
                         with --require-tls)",
                        d.endpoint()
                    )),
                ),
                (_, true, true) => self.add(&name, "TLS", Status::Ok, "the login used TLS", None),
                (_, false, _) => {}
            }
        }

        // Alternating users: the master.
        if let Some(d) = &db
            && let Some(master_arn) = &d.masterarn
        {
            self.check_master(&name, d, master_arn).await;
        }

        // A stale AWSPENDING.
        let pending = desc
            .holder(AWSPENDING)
            .filter(|p| *p != current.version_id)
            .map(str::to_string);
        let Some(p) = pending else {
            if cur.is_err() {
                self.refuse(
                    &name,
                    "AWSCURRENT does not log in and there is no AWSPENDING to finish: keyroll \
                     cannot know the password the system now has",
                    format!(
                        "set the user's password on the system back to AWSCURRENT's, or store \
                         the working credentials: keyroll secret put --secret-id {name} \
                         --secret-string file://working.json; then keyroll doctor --secret-id \
                         {name}"
                    ),
                );
            }
            return Ok(());
        };
        let pend = login(store, target.as_ref(), &desc, &p).await;
        let age = crate::report::version_created(store, &desc.arn, &p)
            .await
            .map(|t| {
                format!(
                    " (created {:.1} h ago)",
                    (store.now().millis() - t.millis()) as f64 / 3_600_000.0
                )
            })
            .unwrap_or_default();
        match &pend {
            Ok(()) => self.add(
                &name,
                "AWSPENDING",
                Status::Warn,
                format!("an unfinished rotation: version {p}{age} logs in"),
                Some(format!("{rotate_cmd} finishes it")),
            ),
            Err(e) => self.add(
                &name,
                "AWSPENDING",
                Status::Warn,
                format!(
                    "an unfinished rotation: version {p}{age} does not log in ({})",
                    e.to_string()
                        .replace("the pending credentials", "the AWSPENDING credentials")
                ),
                Some(format!(
                    "{rotate_cmd} resumes it; if the system never accepted it, \
                     {rotate_cmd} --discard-pending starts over"
                )),
            ),
        }
        match (cur.is_ok(), pend.is_ok()) {
            (false, true) => self.finish(&name, &desc.arn, target.as_ref(), &p).await,
            (true, false) => self.drop_pending(&desc, &p).await,
            (false, false) => self.refuse(
                &name,
                "neither AWSCURRENT nor AWSPENDING logs in: finishing or dropping the \
                 rotation could leave no working credential",
                format!(
                    "set the user's password on the system to AWSCURRENT's (keyroll secret get \
                     --secret-id {name}), then keyroll doctor --secret-id {name} again"
                ),
            ),
            (true, true) => {}
        }
        Ok(())
    }

    async fn check_master(&mut self, name: &str, current: &DbSecret, master_arn: &str) {
        let store = self.store;
        let master = async {
            let desc = store
                .describe_secret(SecretIdRequest {
                    secret_id: master_arn.to_string(),
                })
                .await?;
            let value = VersionedValue::from_response(
                store
                    .get_secret_value(GetSecretValueRequest {
                        secret_id: desc.arn.clone(),
                        version_id: None,
                        version_stage: Some(AWSCURRENT.into()),
                    })
                    .await?,
            )?;
            anyhow::Ok((desc, value))
        }
        .await;
        let (mdesc, mval) = match master {
            Ok(m) => m,
            Err(e) => {
                self.add(
                    name,
                    "master",
                    Status::Fail,
                    format!("the master secret {master_arn} cannot be read: {e}"),
                    Some("fix \"masterarn\" in the secret, or create the master secret".into()),
                );
                return;
            }
        };
        let genuine = DbSecret::parse(&mval.value, "the master secret")
            .map(|m| m.same_server(current))
            .unwrap_or(false);
        if !genuine {
            self.add(
                name,
                "master",
                Status::Fail,
                format!(
                    "the master secret {} is not a database secret for {}: keyroll refuses to \
                     use it (confused-deputy guard)",
                    mdesc.name,
                    current.endpoint()
                ),
                Some("point \"masterarn\" at the master secret of the same server".into()),
            );
            return;
        }
        let target = match self.targets.get(&mdesc, &mval) {
            Ok(t) => t,
            Err(e) => {
                self.add(name, "master", Status::Fail, e.to_string(), None);
                return;
            }
        };
        match login(store, target.as_ref(), &mdesc, &mval.version_id).await {
            Ok(()) => self.add(
                name,
                "master",
                Status::Ok,
                format!("{} is for the same server and logs in", mdesc.name),
                None,
            ),
            Err(e) => self.add(
                name,
                "master",
                Status::Fail,
                format!("the master secret {} does not log in: {e}", mdesc.name),
                Some(format!(
                    "keyroll doctor --secret-id {} shows why",
                    mdesc.name
                )),
            ),
        }
    }

    fn refuse(&mut self, name: &str, why: &str, fix: String) {
        let status = if self.repair {
            Status::Refused
        } else {
            Status::Fail
        };
        self.add(name, "repair", status, why.to_string(), Some(fix));
    }

    /// AWSCURRENT refused, AWSPENDING logs in: the engine resumes and finishes the rotation.
    async fn finish(&mut self, name: &str, arn: &str, target: &dyn Target, pending: &str) {
        if !self.repair {
            self.repairable += 1;
            self.add(
                name,
                "repair",
                Status::Fail,
                format!(
                    "AWSCURRENT is refused but AWSPENDING {pending} logs in: the rotation \
                     stopped after setSecret (or the password was changed to the pending one)"
                ),
                Some(format!(
                    "keyroll doctor --secret-id {name} --repair finishes it"
                )),
            );
            return;
        }
        if let Err(e) = self.audit(
            "DoctorRepairStarted",
            arn,
            serde_json::json!({"repair": "FinishRotation", "versionId": pending}),
        ) {
            self.refuse(
                name,
                &format!("the repair cannot be audited: {e}"),
                "run keyroll doctor --repair where DATA_DIR/audit is writable (stop a \
                 keyroll serve holding it, or use its RotateSecret)"
                    .into(),
            );
            return;
        }
        let store = self.store;
        let opts = RotateOptions {
            allow_rotation_disabled: true,
            step_timeout: Some(keyroll_core::engine::DEFAULT_STEP_TIMEOUT),
            rotation_timeout: Some(keyroll_core::engine::DEFAULT_ROTATION_TIMEOUT),
            ..Default::default()
        };
        let observer = keyroll_notify::NotifyingObserver::new(
            &Silent,
            &self.notifier,
            "keyroll doctor",
            || store.now(),
        );
        let r = keyroll_core::engine::rotate(store, target, arn, &opts, &observer).await;
        observer.flush().await;
        drop(observer);
        let outcome = match &r {
            Ok(rep) => {
                serde_json::json!({"repair": "FinishRotation", "versionId": rep.version_id, "outcome": "Succeeded"})
            }
            Err(e) => {
                serde_json::json!({"repair": "FinishRotation", "versionId": pending, "outcome": "Failed", "errorClass": e.class()})
            }
        };
        let audited = self.audit("DoctorRepair", arn, outcome);
        match r {
            Ok(rep) => {
                // The refused AWSCURRENT is no longer current.
                for f in self.findings.iter_mut().filter(|f| {
                    f.secret == name && f.check == "AWSCURRENT login" && f.status == Status::Fail
                }) {
                    f.status = Status::Repaired;
                }
                self.add(
                    name,
                    "repair",
                    Status::Repaired,
                    format!(
                        "finished the rotation: AWSCURRENT is now version {} (which logs in)",
                        rep.version_id
                    ),
                    audited
                        .err()
                        .map(|e| format!("the audit record could not be written: {e}")),
                )
            }
            Err(e) => self.add(
                name,
                "repair",
                Status::Fail,
                format!("finishing the rotation failed: {e}"),
                Some(format!("keyroll rotate --secret-id {name} shows each step")),
            ),
        }
    }

    /// AWSPENDING logs in nowhere, AWSCURRENT does: the pending label is removed.
    async fn drop_pending(
        &mut self,
        desc: &keyroll_core::api::DescribeSecretResponse,
        pending: &str,
    ) {
        let name = desc.name.clone();
        if !self.repair {
            self.repairable += 1;
            self.add(
                &name,
                "repair",
                Status::Fail,
                format!(
                    "AWSPENDING {pending} logs in nowhere while AWSCURRENT does: a rotation \
                     that never reached the system"
                ),
                Some(format!(
                    "keyroll doctor --secret-id {name} --repair drops it (or {} \
                     --discard-pending to start over now)",
                    format_args!("keyroll rotate --secret-id {name}")
                )),
            );
            return;
        }
        let details = serde_json::json!({"repair": "DropPending", "versionId": pending});
        if let Err(e) = self.audit("DoctorRepairStarted", &desc.arn, details.clone()) {
            self.refuse(
                &name,
                &format!("the repair cannot be audited: {e}"),
                "run keyroll doctor --repair where DATA_DIR/audit is writable".into(),
            );
            return;
        }
        let started = self.store.now();
        let r = self
            .store
            .update_secret_version_stage(UpdateSecretVersionStageRequest {
                secret_id: desc.arn.clone(),
                version_stage: AWSPENDING.into(),
                remove_from_version_id: Some(pending.to_string()),
                move_to_version_id: None,
            })
            .await;
        match r {
            Ok(_) => {
                let audited = self.audit("DoctorRepair", &desc.arn, details);
                let event = keyroll_notify::RotationEvent::failed(
                    desc,
                    Some(pending.to_string()),
                    None,
                    "PendingDiscarded",
                    "keyroll doctor --repair dropped AWSPENDING: that version logged in \
                     nowhere while AWSCURRENT does; the next rotation starts over",
                    started,
                    self.store.now(),
                )
                .with_source("keyroll doctor");
                self.notifier.notify(&event).await;
                self.add(
                    &name,
                    "repair",
                    Status::Repaired,
                    format!("dropped AWSPENDING {pending}; AWSCURRENT is unchanged and logs in"),
                    audited
                        .err()
                        .map(|e| format!("the audit record could not be written: {e}")),
                );
            }
            Err(e) => self.add(
                &name,
                "repair",
                Status::Fail,
                format!("could not remove AWSPENDING: {e}"),
                Some(format!(
                    "keyroll secret update-stage --secret-id {name} --version-stage AWSPENDING \
                     --remove-from-version-id {pending}"
                )),
            ),
        }
    }
}

fn notifier(args: &DoctorArgs) -> anyhow::Result<keyroll_notify::Notifier> {
    if args.no_notify || !args.repair {
        return Ok(keyroll_notify::Notifier::disabled());
    }
    let usage = |e: keyroll_notify::NotifyConfigError| crate::UsageError(e.to_string());
    let config = match &args.config {
        Some(path) => keyroll_notify::NotifyConfig::load(path).map_err(usage)?,
        None => keyroll_notify::NotifyConfig::default(),
    };
    let config = config.with_env().map_err(usage)?;
    Ok(keyroll_notify::Notifier::from_config(&config).map_err(usage)?)
}

pub async fn run(
    args: &DoctorArgs,
    store: &dyn RotationStore,
    data_dir: Option<&Path>,
    format: Format,
) -> anyhow::Result<()> {
    let connect_timeout = match Duration::try_from_secs_f64(args.connect_timeout) {
        Ok(d) if !d.is_zero() => d,
        _ => anyhow::bail!(crate::UsageError(format!(
            "--connect-timeout must be a positive number of seconds (got {})",
            args.connect_timeout
        ))),
    };
    let config = keyroll_targets::TargetConfig {
        connect_timeout,
        ca_bundle: args.ca_bundle.clone(),
        exclude_characters: args.exclude_characters.clone(),
        ..Default::default()
    };
    let mut doctor = Doctor {
        store,
        targets: TargetCache::new(config),
        exclude: args.exclude_characters.clone(),
        repair: args.repair,
        notifier: notifier(args)?,
        audit: None,
        region: String::new(),
        account: String::new(),
        findings: Vec::new(),
        repairable: 0,
    };
    let mut ids = Vec::new();
    match &args.secret_id {
        Some(id) => ids.push(id.clone()),
        None => {
            let mut pager = Pager::new(store, args.select.filters()?);
            while let Some(page) = pager.next_page().await? {
                ids.extend(page.into_iter().map(|e| e.arn));
            }
        }
    }
    if args.repair
        && let Some(dir) = data_dir
        && let Some(first) = ids.first()
    {
        let arn = store
            .describe_secret(SecretIdRequest {
                secret_id: first.clone(),
            })
            .await?
            .arn;
        let (region, account) = arn_parts(&arn);
        let options = keyroll_audit::AuditOptions {
            account_id: account.clone(),
            region: region.clone(),
            ..Default::default()
        };
        doctor.audit = Some(
            keyroll_audit::AuditLog::open(&dir.join("audit"), options).map_err(|e| {
                crate::UsageError(format!(
                    "--repair writes each repair to the audit trail in {}, which cannot be \
                     opened: {e} (a running keyroll serve holds it: repair through the server, \
                     or stop it first)",
                    dir.join("audit").display()
                ))
            })?,
        );
        doctor.region = region;
        doctor.account = account;
    }
    let secrets = ids.len();
    for id in &ids {
        doctor.check(id).await?;
    }
    if let Some(log) = &doctor.audit {
        log.close()
            .map_err(|e| anyhow::anyhow!("closing the audit trail: {e}"))?;
    }
    let problems = doctor
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Fail | Status::Refused))
        .count();
    let out = serde_json::json!({ "Findings": doctor.findings });
    crate::output::print(
        if format == Format::Csv {
            Format::Table
        } else {
            format
        },
        &out,
    )?;
    if problems > 0 {
        return Err(Problems {
            problems,
            secrets,
            repairable: doctor.repairable,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts_reads_region_and_account() {
        assert_eq!(
            arn_parts("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"),
            ("eu-west-1".to_string(), "123456789012".to_string())
        );
    }

    #[test]
    fn problems_message_names_the_repair() {
        let e = Problems {
            problems: 2,
            secrets: 1,
            repairable: 1,
        };
        assert!(e.to_string().contains("--repair"));
        let e = Problems {
            problems: 1,
            secrets: 1,
            repairable: 0,
        };
        assert!(!e.to_string().contains("--repair"));
    }
}
