//! `keyroll rotate`: one rotation, driven the way the Secrets Manager service drives it,
//! with each step and its duration printed as it happens.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use keyroll_core::api::{GetSecretValueRequest, SecretIdRequest};
use keyroll_core::engine::{RotateOptions, RotationObserver, StepError, rotate};
use keyroll_core::model::{AWSCURRENT, Step};
use keyroll_core::ports::{RotationStore, VersionedValue};
use keyroll_core::rotators;
use serde::Serialize;

use crate::input;
use crate::output::{self, Format};

#[derive(Debug, Args)]
#[command(
    after_help = "The first rotation of a secret enables rotation with keyroll's built-in \
rotator (the target is chosen from the secret's `engine` field: postgres, mysql, mariadb, ...; \
a secret without one is a plain generated secret). A failed rotation leaves AWSCURRENT \
untouched; running the command again resumes it. HTTP and IAM secrets rotate only where the \
operator allows: --allow-host / --allow-network / --allow-iam-user, or [targets.http] and \
[targets.iam] of --config (nothing is allowed by default).\n\nExamples:\n  \
keyroll rotate --secret-id prod/db\n  \
keyroll rotate --secret-id prod/db --rotation-rules AutomaticallyAfterDays=30\n  \
keyroll rotate --secret-id app/token --rotation-rules 'ScheduleExpression=\"rate(12 hours)\"'\n  \
keyroll rotate --secret-id partner/api-key --allow-host api.partner.example"
)]
pub struct RotateArgs {
    /// The secret's name, full ARN, or ARN without the random suffix.
    #[arg(long, required_unless_present_any = ["filter", "all"], conflicts_with_all = ["filter", "all"])]
    pub secret_id: Option<String>,
    /// Which rotator to use: `keyroll` or one of AWS's RDS rotation function names (as a
    /// function name or Lambda ARN). Saved with the secret. Default: the configured one, else
    /// `keyroll`.
    #[arg(long)]
    pub rotation_lambda_arn: Option<String>,
    /// Save a schedule with the secret: `AutomaticallyAfterDays=30`,
    /// `ScheduleExpression="rate(10 days)"`, optional `Duration=3h`, or JSON.
    #[arg(long)]
    pub rotation_rules: Option<String>,
    /// The version id of the new version (32-64 characters); a UUID by default.
    #[arg(long)]
    pub client_request_token: Option<String>,
    /// Throw away an unfinished rotation's AWSPENDING version and start over instead of
    /// resuming it. Only safe if that pending credential never reached the target system.
    #[arg(long)]
    pub discard_pending: bool,
    /// Don't print progress on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seconds one database connection attempt (TCP, TLS, login) may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// Seconds one rotation step may take; a step still running then is stopped and fails
    /// (AWSCURRENT untouched before setSecret; the next run resumes).
    #[arg(long, value_name = "SECONDS", default_value_t = keyroll_core::engine::DEFAULT_STEP_TIMEOUT.as_secs_f64())]
    pub step_timeout: f64,
    /// Seconds the whole rotation may take (each step gets at most what is left).
    #[arg(long, value_name = "SECONDS", default_value_t = keyroll_core::engine::DEFAULT_ROTATION_TIMEOUT.as_secs_f64())]
    pub rotation_timeout: f64,
    /// Seconds one database statement may run or wait for a lock (PostgreSQL
    /// statement_timeout/lock_timeout, MariaDB max_statement_time, lock_wait_timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = keyroll_targets::DEFAULT_STATEMENT_TIMEOUT.as_secs_f64())]
    pub statement_timeout: f64,
    /// PEM file of CA certificates to trust for database TLS instead of the system roots
    /// (e.g. the RDS global bundle).
    #[arg(long, value_name = "PEM", env = "KEYROLL_CA_BUNDLE")]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Length of generated database passwords (default 32; a secret's
    /// `keyroll:password-length` tag wins).
    #[arg(long)]
    pub password_length: Option<u32>,
    /// Characters never used in generated database passwords (default `/@"'\`, plus `:`
    /// for PostgreSQL).
    #[arg(long)]
    pub exclude_characters: Option<String>,
    /// Never connect to the database in plaintext: a secret without "ssl" needs verified TLS
    /// and "ssl": false is refused. Without it, plaintext is used only when the server
    /// offers no TLS at all — never after a failed TLS handshake.
    #[arg(long, env = "KEYROLL_REQUIRE_TLS")]
    pub require_tls: bool,
    /// A host HTTP-engine secrets may send requests to: a name, `*.example.com` (any name
    /// under it), an IP address, or `*` (any host). Repeat for more; adds to
    /// `[targets.http] allow_hosts` of --config. Default: none (HTTP secrets are refused).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// A network (CIDR, e.g. 10.20.0.0/16 or 127.0.0.1/32) whose non-public addresses
    /// (loopback, link-local, private, unique-local...) HTTP requests may reach. Repeat for
    /// more; adds to `[targets.http] allow_networks` of --config. Default: none.
    #[arg(long = "allow-network", value_name = "CIDR")]
    pub allow_networks: Vec<String>,
    /// An IAM user IAM-engine secrets may rotate: a user name, a path prefix (`/service/`),
    /// or `*`. Repeat for more; adds to `[targets.iam] allow_users` of --config. Default:
    /// none.
    #[arg(long = "allow-iam-user", value_name = "USER")]
    pub allow_iam_users: Vec<String>,
    /// keyroll.toml whose `[notify]` section says where RotationSucceeded / RotationFailed
    /// notifications go (webhooks, e-mail, SNS; `KEYROLL_NOTIFY_*` variables add channels),
    /// and whose `[targets.http]` / `[targets.iam]` allow-lists apply as in `keyroll serve`.
    #[arg(long, value_name = "FILE", env = "KEYROLL_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Send no notification for this run.
    #[arg(long)]
    pub no_notify: bool,
    /// Fleet rotation: many secrets in one run (see `crate::fleet`).
    #[command(flatten)]
    pub fleet: crate::fleet::FleetArgs,
}

/// `--name SECONDS` as a duration: positive and finite.
pub(crate) fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    match Duration::try_from_secs_f64(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => anyhow::bail!(crate::UsageError(format!(
            "--{flag} must be a positive number of seconds (got {v})"
        ))),
    }
}

impl RotateArgs {
    /// The one secret of a single rotation (`--secret-id`, which clap requires unless
    /// `--filter` or `--all` is given).
    pub fn one_secret(&self) -> anyhow::Result<&str> {
        self.secret_id.as_deref().ok_or_else(|| {
            anyhow::Error::new(crate::UsageError(
                "name the secret with --secret-id, or select many with --filter/--all".into(),
            ))
        })
    }

    pub fn target_config(&self) -> anyhow::Result<keyroll_targets::TargetConfig> {
        Ok(keyroll_targets::TargetConfig {
            connect_timeout: seconds("connect-timeout", self.connect_timeout)?,
            statement_timeout: seconds("statement-timeout", self.statement_timeout)?,
            ca_bundle: self.ca_bundle.clone(),
            password_length: self.password_length,
            exclude_characters: self.exclude_characters.clone(),
            require_tls: self.require_tls,
            policy: self.policy()?,
            ..Default::default()
        })
    }

    /// The allow-lists: `[targets.http]` / `[targets.iam]` of `--config`, plus the flags.
    fn policy(&self) -> anyhow::Result<keyroll_targets::TargetPolicy> {
        let mut policy = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    crate::UsageError(format!("cannot read {}: {e}", path.display()))
                })?;
                let file: FileSettings = toml::from_str(&text).map_err(|e| {
                    crate::UsageError(format!("{} is not valid: {e}", path.display()))
                })?;
                keyroll_targets::TargetPolicy {
                    allow_hosts: file.targets.http.allow_hosts,
                    allow_networks: file.targets.http.allow_networks,
                    allow_iam_users: file.targets.iam.allow_users,
                }
            }
            None => keyroll_targets::TargetPolicy::default(),
        };
        let flags = keyroll_targets::TargetPolicy::parse(
            &self.allow_hosts,
            &self.allow_networks,
            &self.allow_iam_users,
        )
        .map_err(|e| crate::UsageError(e.to_string()))?;
        policy.allow_hosts.extend(flags.allow_hosts);
        policy.allow_networks.extend(flags.allow_networks);
        policy.allow_iam_users.extend(flags.allow_iam_users);
        Ok(policy)
    }

    /// The notifier: the `[notify]` section of `--config` (or `$KEYROLL_CONFIG`), plus the
    /// `KEYROLL_NOTIFY_*` environment variables; none with `--no-notify`.
    pub fn notifier(&self) -> anyhow::Result<keyroll_notify::Notifier> {
        if self.no_notify {
            return Ok(keyroll_notify::Notifier::disabled());
        }
        let usage = |e: keyroll_notify::NotifyConfigError| crate::UsageError(e.to_string());
        let config = match &self.config {
            Some(path) => keyroll_notify::NotifyConfig::load(path).map_err(usage)?,
            None => keyroll_notify::NotifyConfig::default(),
        };
        let config = config.with_env().map_err(usage)?;
        Ok(keyroll_notify::Notifier::from_config(&config).map_err(usage)?)
    }
}

/// The parts of keyroll.toml `keyroll rotate` reads besides `[notify]`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct FileSettings {
    targets: FileTargets,
}

#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct FileTargets {
    http: keyroll_server::config::HttpTargetsConfig,
    iam: keyroll_server::config::IamTargetsConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StepReport {
    step: Step,
    duration_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(rename = "ARN")]
    arn: String,
    name: String,
    version_id: String,
    resumed: bool,
    steps: Vec<StepReport>,
    duration_ms: f64,
}

struct Progress<'a> {
    quiet: bool,
    /// Says which store, e.g. ` (AWS Secrets Manager)`.
    label: &'a str,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl RotationObserver for Progress<'_> {
    fn started(&self, arn: &str, token: &str, resumed: bool) {
        if !self.quiet {
            let what = if resumed {
                "resuming unfinished rotation of"
            } else {
                "rotating"
            };
            let label = self.label;
            let _ = writeln!(
                std::io::stderr(),
                "{what} {arn}{label}\n  new version {token}"
            );
        }
    }
    fn step_finished(&self, step: Step, elapsed: Duration, error: Option<&StepError>) {
        if !self.quiet {
            let status = if error.is_some() { "FAILED" } else { "ok" };
            let _ = writeln!(
                std::io::stderr(),
                "  {:<13} {:<6} {:>9.3} ms",
                step.as_str(),
                status,
                ms(elapsed)
            );
        }
    }
}

pub async fn run(
    args: RotateArgs,
    store: &dyn RotationStore,
    region: &str,
    account: &str,
    format: Format,
) -> anyhow::Result<()> {
    let rules = args
        .rotation_rules
        .as_deref()
        .map(input::rotation_rules)
        .transpose()?;
    let target_config = args.target_config()?;
    let notifier = args.notifier()?;
    let desc = store
        .describe_secret(SecretIdRequest {
            secret_id: args.one_secret()?.to_string(),
        })
        .await?;
    let configured = desc.rotation_lambda_arn.clone();
    let function = match (&args.rotation_lambda_arn, &configured) {
        (Some(f), _) => {
            if f.contains(":function:") {
                f.clone()
            } else {
                format!("arn:aws:lambda:{region}:{account}:function:{f}")
            }
        }
        (None, Some(c)) => c.clone(),
        (None, None) => rotators::builtin_arn(region, account),
    };
    if !rotators::is_builtin(&function) {
        anyhow::bail!(crate::UsageError(format!(
            "{} is not one of keyroll's built-in rotators ({}). Custom rotation functions run \
             under `keyroll serve`, mapped to a command in its config file.",
            rotators::function_name(&function),
            rotators::BUILTIN_FUNCTIONS.join(", ")
        )));
    }
    if desc.rotation_enabled != Some(true)
        || configured.as_deref() != Some(function.as_str())
        || rules.is_some()
    {
        store
            .configure_rotation(&desc.arn, Some(function), rules)
            .await?;
    }
    let how = How {
        target_config: &target_config,
        notifier: &notifier,
        allow_rotation_disabled: false,
        label: "",
    };
    execute(&args, store, &desc, &how, format).await
}

/// How [`execute`] runs: settings checked by the caller before it touched the store.
pub struct How<'a> {
    pub target_config: &'a keyroll_targets::TargetConfig,
    pub notifier: &'a keyroll_notify::Notifier,
    /// For drivers outside the service (`--store aws`).
    pub allow_rotation_disabled: bool,
    /// Appended to the progress line, e.g. ` (AWS Secrets Manager)`.
    pub label: &'a str,
}

/// What both stores share once the secret is known: pick the target from AWSCURRENT, rotate
/// with per-step progress on stderr, notify, print the report.
pub async fn execute(
    args: &RotateArgs,
    store: &dyn RotationStore,
    desc: &keyroll_core::api::DescribeSecretResponse,
    how: &How<'_>,
    format: Format,
) -> anyhow::Result<()> {
    let current = VersionedValue::from_response(
        store
            .get_secret_value(GetSecretValueRequest {
                secret_id: desc.arn.clone(),
                version_id: None,
                version_stage: Some(AWSCURRENT.into()),
            })
            .await?,
    )?;
    let target = keyroll_targets::resolve(desc, &current.value, how.target_config)?;
    drop(current);
    let opts = RotateOptions {
        token: args.client_request_token.clone(),
        discard_pending: args.discard_pending,
        allow_rotation_disabled: how.allow_rotation_disabled,
        cancel: None,
        step_timeout: Some(seconds("step-timeout", args.step_timeout)?),
        rotation_timeout: Some(seconds("rotation-timeout", args.rotation_timeout)?),
    };
    let progress = Progress {
        quiet: args.quiet,
        label: how.label,
    };
    // RotationSucceeded / RotationFailed, delivered before the process exits.
    let observer =
        keyroll_notify::NotifyingObserver::new(&progress, how.notifier, "keyroll rotate", || {
            store.now()
        });
    let result = rotate(store, target.as_ref(), &desc.arn, &opts, &observer).await;
    observer.flush().await;
    let report = result?;
    output::print(
        format,
        &Report {
            arn: report.arn,
            name: report.name,
            version_id: report.version_id,
            resumed: report.resumed,
            steps: report
                .steps
                .iter()
                .map(|(s, d)| StepReport {
                    step: *s,
                    duration_ms: ms(*d),
                })
                .collect(),
            duration_ms: ms(report.total),
        },
    )
}
