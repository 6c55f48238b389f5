//! A deadpool-postgres pool whose connections follow a rotating secret, read through
//! Secrets Manager (real AWS, or `keyroll serve` with `AWS_ENDPOINT_URL`).
//!
//! ```sh
//! AWS_ENDPOINT_URL=http://127.0.0.1:8080 KEYROLL_SECRET_ID=prod/app/db \
//!   cargo run -p keyroll-cache --example deadpool_postgres --features postgres,aws-sdk
//! ```

use std::error::Error;
use std::time::Duration;

use keyroll_cache::db::RotatingCredentials;
use keyroll_cache::postgres::{RotatingPgManager, pool};
use keyroll_cache::{AwsSdkSource, CacheConfig, SecretCache};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let secret_id = std::env::var("KEYROLL_SECRET_ID").unwrap_or_else(|_| "prod/app/db".into());
    // The SDK is built without its own HTTPS client: give it one (rustls on ring).
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

    let mut base = tokio_postgres::Config::new();
    base.connect_timeout(Duration::from_secs(5))
        .application_name("keyroll-cache-example");
    let creds = RotatingCredentials::new(cache.clone(), secret_id);
    let pool = pool(
        RotatingPgManager::new(creds, base, tokio_postgres::NoTls),
        8,
    )?;

    for _ in 0..10 {
        let client = pool.get().await?;
        let row = client.query_one("SELECT current_user", &[]).await?;
        let user: String = row.get(0);
        println!("connected as {user}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    print!("{}", cache.metrics().render_prometheus("app"));
    Ok(())
}
