//! `keyroll`: automated, zero-downtime rotation of credentials.
//!
//! # Layout
//! - `secret`: the Secrets Manager API from the command line (`keyroll secret ...`).
//! - `rotate`: one rotation with per-step progress (`keyroll rotate`).
//! - `input` / `output`: aws-CLI-style arguments and JSON/table output.
//! - `serve`: the Secrets Manager-compatible server (`keyroll serve`, see `keyroll-server`).
//! - `agent`: AWS's Secrets Manager Agent's HTTP API (`keyroll agent`, see `keyroll-agent`).
//! - `audit`: checking and searching the server's audit trail (`keyroll audit`, see
//!   `keyroll-audit`).
//! - `store`: opening the embedded store; `aws`: `--store aws` (AWS Secrets Manager).

mod agent;
mod audit;
mod aws;
mod doctor;
mod fleet;
mod input;
mod output;
mod report;
mod rotate;
mod secret;
mod serve;
mod store;

/// mimalloc instead of glibc's malloc: under load, `keyroll serve`'s worker threads waited
/// on glibc's arena locks (futex waits inside `realloc` and `free`, profiled in
/// docs/BENCHMARKS.md); mimalloc's per-thread heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keyroll_core::SmError;
use keyroll_core::engine::RotationError;

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  unexpected error (a bug, or an I/O failure)
  2  usage error: bad flags or arguments
  3  not found: no such secret, version or label (ResourceNotFoundException)
  4  invalid request or parameter (InvalidRequestException, InvalidParameterException, ...)
  5  conflict: the secret or version already exists, or a rotation is already running
  6  rotation failed at a step (AWSCURRENT is unchanged; run `keyroll rotate` again to resume)
  6  rotation failed at a step; with --filter/--all: at least one rotation failed
  7  the store cannot be opened (wrong master key, permissions, damaged or newer data)
  8  `keyroll report --fail-on` or `keyroll doctor` found what it was asked to fail on
130  `keyroll rotate --filter/--all` interrupted (Ctrl-C)";

#[derive(Debug, Parser)]
#[command(
    name = "keyroll",
    version,
    about = "Automated, zero-downtime rotation of credentials",
    long_about = "keyroll rotates database passwords, API keys and generated secrets with the AWS \
Secrets Manager protocol (createSecret, setSecret, testSecret, finishSecret), on one machine \
with an embedded encrypted store, or against AWS.",
    after_help = concat!("Quick start:
  keyroll secret create --name demo/token --secret-string 'first-value'
  keyroll rotate --secret-id demo/token
  keyroll secret get --secret-id demo/token --version-stage AWSPREVIOUS

Secrets are encrypted in DATA_DIR with a master key from $KEYROLL_MASTER_KEY (base64 of 32 \
bytes) or DATA_DIR/master.key, created on first use: back it up.

", "Exit codes: 0 ok, 2 usage, 3 not found, 4 invalid, 5 conflict, 6 rotation failed, 7 store \
unavailable (see `keyroll help exit-codes`).")
)]
struct Cli {
    /// Where the embedded store keeps its files.
    #[arg(
        long,
        global = true,
        env = "KEYROLL_DATA_DIR",
        default_value = "./keyroll-data"
    )]
    data_dir: PathBuf,
    /// Where secrets live: `embedded` (DATA_DIR) or `aws` (AWS Secrets Manager, with the
    /// standard AWS credentials, region and endpoint configuration; AWS_ENDPOINT_URL honoured).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "KEYROLL_STORE",
        default_value_t = store::StoreKind::Embedded
    )]
    store: store::StoreKind,
    /// Talk to this Secrets Manager endpoint (e.g. `keyroll serve` at http://127.0.0.1:7150);
    /// implies `--store aws`.
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS region namespace to work in (also $AWS_DEFAULT_REGION).
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// The account id in the ARNs of new secrets.
    #[arg(
        long,
        global = true,
        env = "KEYROLL_ACCOUNT_ID",
        default_value = "000000000000"
    )]
    account_id: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = output::Format::Json)]
    output: output::Format,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More log output on stderr (-v info, -vv debug); $KEYROLL_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, read, change, list and delete secrets.
    #[command(subcommand)]
    Secret(secret::SecretCmd),
    /// Rotate a secret now: createSecret, setSecret, testSecret, finishSecret; or many
    /// (`--filter`, `--all`) with a progress line and a summary.
    Rotate(rotate::RotateArgs),
    /// Every secret's rotation state: last rotated, next, overdue, failing, pending.
    Report(report::ReportArgs),
    /// Check each secret's live state (logins, pending versions, schedule, TLS) and print
    /// the fix; `--repair` fixes what cannot lock anyone out.
    Doctor(doctor::DoctorArgs),
    /// Run a Secrets Manager-compatible server that also rotates secrets on schedule.
    Serve(serve::ServeArgs),
    /// Serve secrets to local applications like AWS's Secrets Manager Agent (port 2773),
    /// cached, refreshed by keyroll serve's change feed.
    Agent(agent::AgentArgs),
    /// Check (verify) and search the audit trail `keyroll serve` writes in DATA_DIR/audit.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Print what each exit code means.
    ExitCodes,
}

/// A usage mistake the arguments parser could not catch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A read-only command pointed at a data directory that does not exist.
#[derive(Debug, thiserror::Error)]
#[error(
    "there is no keyroll data directory at {0}: pass --data-dir (or set KEYROLL_DATA_DIR) to \
     the directory your secrets are in, or create a secret first"
)]
pub struct NoDataDir(pub String);

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let serving = matches!(cli.command, Command::Serve(_) | Command::Agent(_));
    let default = match cli.verbose {
        0 if serving => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("KEYROLL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Maps an error to its exit code and, where one helps, a hint.
fn classify(e: &anyhow::Error) -> (u8, Option<&'static str>) {
    if let Some(sm) = e.downcast_ref::<SmError>() {
        return sm_code(sm);
    }
    if let Some(r) = e.downcast_ref::<RotationError>() {
        return match r {
            RotationError::AlreadyRunning { .. } => (5, None),
            RotationError::NotEnabled { .. } => (4, None),
            RotationError::Step { .. } => (6, None),
            RotationError::Store(sm) => sm_code(sm),
        };
    }
    if e.downcast_ref::<keyroll_core::ports::TargetError>()
        .is_some()
    {
        return (4, None);
    }
    if e.downcast_ref::<UsageError>().is_some() || e.downcast_ref::<input::InputError>().is_some() {
        return (2, None);
    }
    if e.downcast_ref::<keyroll_agent::ConfigError>().is_some() {
        return (2, None);
    }
    if let Some(f) = e.downcast_ref::<fleet::FleetError>() {
        return match f {
            fleet::FleetError::Failed { .. } => (6, None),
            fleet::FleetError::Interrupted { .. } => (130, None),
        };
    }
    if e.downcast_ref::<report::Findings>().is_some()
        || e.downcast_ref::<doctor::Problems>().is_some()
    {
        return (8, None);
    }
    if e.downcast_ref::<NoDataDir>().is_some() {
        return (3, None);
    }
    if e.downcast_ref::<keyroll_store::embedded::StoreError>()
        .is_some()
    {
        return (7, None);
    }
    (1, None)
}

fn sm_code(e: &SmError) -> (u8, Option<&'static str>) {
    match e {
        SmError::ResourceNotFound(_) => (
            3,
            Some(
                "check the name or ARN with `keyroll secret list`, and the --region and --data-dir",
            ),
        ),
        SmError::ResourceExists(_) => (5, None),
        SmError::LimitExceeded(_) => (5, None),
        SmError::InvalidParameter(_)
        | SmError::InvalidRequest(_)
        | SmError::InvalidNextToken(_)
        | SmError::MalformedPolicyDocument(_)
        | SmError::PreconditionNotMet(_)
        | SmError::PublicPolicy(_)
        | SmError::Validation(_) => (4, None),
        SmError::DecryptionFailure(_) | SmError::EncryptionFailure(_) => (7, None),
        SmError::InternalServiceError(_) => (1, None),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let region = cli
        .region
        .clone()
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_string());
    let store_kind = if cli.endpoint_url.is_some() {
        store::StoreKind::Aws
    } else {
        cli.store
    };
    let endpoint = cli.endpoint_url.clone();
    match cli.command {
        Command::ExitCodes => {
            println!("{EXIT_CODES}");
            Ok(())
        }
        Command::Rotate(args) if args.fleet.is_fleet() => {
            let (store, outside): (std::sync::Arc<dyn keyroll_core::ports::RotationStore>, bool) =
                match store_kind {
                    store::StoreKind::Aws => {
                        (aws::open_store(cli.region.clone(), endpoint).await?, true)
                    }
                    store::StoreKind::Embedded => (
                        std::sync::Arc::new(store::open_embedded(
                            &cli.data_dir,
                            &region,
                            &cli.account_id,
                            args.fleet.dry_run,
                        )?),
                        false,
                    ),
                };
            let builtin = keyroll_core::rotators::builtin_arn(&region, &cli.account_id);
            fleet::run(&args, &args.fleet, store, builtin, outside, cli.output).await
        }
        Command::Report(args) => {
            let store: std::sync::Arc<dyn keyroll_core::ports::RotationStore> = match store_kind {
                store::StoreKind::Aws => aws::open_store(cli.region.clone(), endpoint).await?,
                store::StoreKind::Embedded => std::sync::Arc::new(store::open_embedded(
                    &cli.data_dir,
                    &region,
                    &cli.account_id,
                    true,
                )?),
            };
            let statuses = store_kind == store::StoreKind::Embedded;
            report::run(&args, store.as_ref(), statuses, cli.output).await
        }
        Command::Doctor(args) => {
            let (store, data_dir): (std::sync::Arc<dyn keyroll_core::ports::RotationStore>, _) =
                match store_kind {
                    store::StoreKind::Aws => {
                        (aws::open_store(cli.region.clone(), endpoint).await?, None)
                    }
                    store::StoreKind::Embedded => (
                        std::sync::Arc::new(store::open_embedded(
                            &cli.data_dir,
                            &region,
                            &cli.account_id,
                            !args.repair,
                        )?),
                        Some(cli.data_dir.clone()),
                    ),
                };
            doctor::run(&args, store.as_ref(), data_dir.as_deref(), cli.output).await
        }
        Command::Secret(cmd) if store_kind == store::StoreKind::Aws => {
            aws::secret(cmd, cli.region.clone(), endpoint, cli.output).await
        }
        Command::Rotate(args) if store_kind == store::StoreKind::Aws => {
            aws::rotate(args, cli.region.clone(), endpoint, cli.output).await
        }
        Command::Secret(cmd) => {
            let store = if cmd.needs_store() {
                Some(store::open_embedded(
                    &cli.data_dir,
                    &region,
                    &cli.account_id,
                    cmd.read_only(),
                )?)
            } else {
                None
            };
            let store_ref = store
                .as_ref()
                .map(|s| s as &dyn keyroll_core::ports::RotationStore);
            cmd.run(store_ref, cli.output).await
        }
        Command::Serve(args) => serve::run(args, cli.data_dir).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Audit(cmd) => cmd.run(&cli.data_dir, cli.output),
        Command::Rotate(args) => {
            let store = store::open_embedded(&cli.data_dir, &region, &cli.account_id, false)?;
            rotate::run(args, &store, &region, &cli.account_id, cli.output).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyroll: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (code, hint) = classify(&e);
            let top = e.to_string();
            eprintln!("keyroll: error: {top}");
            // Print causes that the message does not already include.
            let mut source = e.source();
            while let Some(s) = source {
                let text = s.to_string();
                if !top.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                source = s.source();
            }
            if let Some(h) = hint {
                eprintln!("  hint: {h}");
            }
            ExitCode::from(code)
        }
    }
}
