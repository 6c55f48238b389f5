//! An sqlx PostgreSQL pool whose new connections follow a rotating secret, read through the
//! Secrets Manager Agent's HTTP API (AWS's agent or `keyroll agent`; token from `AWS_TOKEN`).
//!
//! ```sh
//! AWS_TOKEN=… KEYROLL_SECRET_ID=prod/app/db \
//!   cargo run -p keyroll-cache --example sqlx_postgres --features sqlx-postgres,agent-http
//! ```

use std::error::Error;

use keyroll_cache::db::RotatingCredentials;
use keyroll_cache::sqlx_pool::RotatingPgPool;
use keyroll_cache::{AgentHttpSource, CacheConfig, SecretCache};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret_id = std::env::var("KEYROLL_SECRET_ID").unwrap_or_else(|_| "prod/app/db".into());
    let agent = std::env::var("KEYROLL_AGENT_URL")
        .unwrap_or_else(|_| keyroll_cache::agent_http::DEFAULT_URL.into());
    let cache = SecretCache::new(AgentHttpSource::from_env(agent)?, CacheConfig::default())?;
    let creds = RotatingCredentials::new(cache, secret_id);
    let pool = RotatingPgPool::postgres(
        creds,
        PgConnectOptions::new().application_name("keyroll-cache-example"),
        PgPoolOptions::new().max_connections(8),
    )
    .await?;
    let mut conn = pool.acquire().await?;
    let row = sqlx::query("SELECT current_user")
        .fetch_one(&mut *conn)
        .await?;
    let user: String = row.try_get(0)?;
    println!("connected as {user}");
    Ok(())
}
