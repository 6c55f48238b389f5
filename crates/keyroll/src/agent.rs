//! `keyroll agent`: AWS's Secrets Manager Agent's HTTP API on 127.0.0.1 (see `keyroll-agent`).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The configuration file (AWS's agent's TOML keys: http_port, ttl_seconds, cache_size,
    /// ssrf_headers, ssrf_env_variables, path_prefix, max_conn, region, log_level,
    /// validate_credentials; and keyroll's endpoint_url, refresh_ahead, stale_if_error_seconds,
    /// follow_feed).
    #[arg(long, short = 'c', env = "KEYROLL_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Upstream: keyroll serve's URL (e.g. http://127.0.0.1:7150); overrides endpoint_url.
    /// Without either, AWS (or AWS_ENDPOINT_URL).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Overrides http_port (0: any free port, printed at start).
    #[arg(long)]
    pub port: Option<u16>,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(p) => keyroll_agent::AgentConfig::from_file(p)?,
        None => keyroll_agent::AgentConfig::default(),
    };
    if let Some(u) = &args.endpoint_url {
        config.endpoint_url = Some(keyroll_agent::config::check_endpoint(u)?);
    }
    let port = args.port.unwrap_or(config.http_port);
    let token = keyroll_agent::SsrfToken::from_env(&config.ssrf_env_variables)?;
    let (source, feed) = keyroll_agent::upstream(&config).await?;
    let listener = keyroll_agent::bind(port).await?;
    let following = feed.is_some();
    let running = keyroll_agent::start(config, token, source, feed, listener)?;
    eprintln!(
        "keyroll agent listening on {} (change feed: {})",
        running.url(),
        if following { "followed" } else { "off" }
    );
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
