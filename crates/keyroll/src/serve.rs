//! `keyroll serve`: the Secrets Manager-compatible server (see `keyroll_server`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use keyroll_server::launch::{LaunchOptions, launch};

/// Run a Secrets Manager-compatible server (AWS JSON 1.1, SigV4) that rotates secrets on
/// schedule. Use it with any AWS SDK or the aws CLI through `--endpoint-url`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:7150, or `listen` in the configuration file).
    /// Port 0 picks a free port; the bound address is printed.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Configuration file (access keys, limits, scheduler, external rotation functions).
    /// Default: DATA_DIR/keyroll.toml when it exists.
    #[arg(long, value_name = "FILE", env = "KEYROLL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep secrets in memory only: nothing but the credentials file is written, and every
    /// secret is gone when the server stops.
    #[arg(long)]
    pub in_memory: bool,
}

/// Serves until SIGTERM or Ctrl-C, then lets in-flight requests and rotations finish.
pub async fn run(args: ServeArgs, data_dir: PathBuf) -> anyhow::Result<()> {
    let started = launch(LaunchOptions {
        data_dir: data_dir.clone(),
        listen: args.listen,
        config: args.config,
        in_memory: args.in_memory,
    })
    .await
    .with_context(|| {
        format!(
            "keyroll serve could not start (data directory {})",
            data_dir.display()
        )
    })?;
    {
        let mut out = std::io::stdout().lock();
        for line in started.banner() {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    shutdown_signal().await?;
    tracing::info!("signal received: finishing in-flight requests and rotations");
    started.server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}
