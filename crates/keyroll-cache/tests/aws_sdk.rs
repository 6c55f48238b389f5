//! `AwsSdkSource` under the cache, against moto's Secrets Manager.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use keyroll_cache::{
    AwsSdkSource, CacheConfig, SecretCache, SecretSource, SourceError, VersionSelector,
};
use keyroll_testkit::moto::MotoServer;

fn http() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

async fn sdk(endpoint: String) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_versions_and_follows_invalidation_by_arn() {
    let moto = MotoServer::start().expect("moto_server (scripts/test installs it)");
    let client = aws_sdk_secretsmanager::Client::new(&sdk(moto.endpoint()).await);
    let arn = client
        .create_secret()
        .name("app/db")
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let cache =
        SecretCache::new(AwsSdkSource::new(client.clone()), CacheConfig::default()).unwrap();

    let e = cache.get("app/db").await.unwrap();
    assert_eq!(e.secret_string(), Some("one"));
    assert_eq!(e.arn, arn);
    assert_eq!(e.name, "app/db");
    assert!(e.version_stages.iter().any(|s| s == "AWSCURRENT"));
    assert!(e.created_date.is_some());

    client
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    // Cached under the name until invalidated, here by ARN.
    assert_eq!(
        cache.get("app/db").await.unwrap().secret_string(),
        Some("one")
    );
    assert_eq!(cache.invalidate(&arn), 1);
    assert_eq!(
        cache.get("app/db").await.unwrap().secret_string(),
        Some("two")
    );
    let prev = cache
        .get_version("app/db", &VersionSelector::previous())
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some("one"));
    assert_eq!(cache.metrics().upstream_total(), 3);

    let err = cache.get("missing").await.unwrap_err();
    let src = err.source_error().unwrap();
    assert!(src.is_not_found(), "{err}");
    assert!(
        matches!(
            src,
            SourceError::Service {
                status: Some(400 | 404), // AWS answers 400, moto 404
                ..
            }
        ),
        "{src:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_is_not_there_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = aws_sdk_secretsmanager::Client::new(&sdk(format!("http://{addr}")).await);
    let err = AwsSdkSource::new(client)
        .get_secret_value("app/db", &VersionSelector::current())
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err}");
}
