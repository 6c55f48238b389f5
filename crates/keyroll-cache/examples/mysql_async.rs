//! A deadpool pool of mysql_async connections that follow a rotating secret, read through
//! Secrets Manager (real AWS, or `keyroll serve` with `AWS_ENDPOINT_URL`).
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:8080 KEYROLL_SECRET_ID=prod/app/mysql \
//!   cargo run -p keyroll-cache --example mysql_async --features mysql,aws-sdk
//! ```

use std::error::Error;

use keyroll_cache::db::RotatingCredentials;
use keyroll_cache::mysql::{RotatingMysqlManager, pool};
use keyroll_cache::{AwsSdkSource, CacheConfig, SecretCache};
use mysql_async::prelude::Queryable;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret_id = std::env::var("KEYROLL_SECRET_ID").unwrap_or_else(|_| "prod/app/mysql".into());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let source = AwsSdkSource::new(aws_sdk_secretsmanager::Client::new(&conf));
    let cache = SecretCache::new(source, CacheConfig::default())?;
    let creds = RotatingCredentials::new(cache, secret_id);
    let pool = pool(
        RotatingMysqlManager::new(creds, mysql_async::OptsBuilder::default()),
        8,
    )?;
    let mut conn = pool.get().await?;
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await?;
    println!("connected as {}", user.unwrap_or_default());
    Ok(())
}
