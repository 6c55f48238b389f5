//! The agent against moto (a stand-in for AWS): the same API and answers, no change feed
//! (moto has none: the agent notices and follows the TTL only).

mod common;

use common::*;
use keyroll_agent::AgentConfig;
use keyroll_testkit::moto::MotoServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_against_moto() {
    let moto = MotoServer::start().expect("moto_server (scripts/test installs it)");
    let url = moto.endpoint();
    let env = moto.aws_env();
    let var = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    let creds = aws_credential_types::Credentials::new(
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "moto",
    );
    let c = sdk(&url, creds.clone());
    let created = c
        .create_secret()
        .name("svc/api-key")
        .secret_string("k1")
        .send()
        .await
        .unwrap();
    let v1 = created.version_id().unwrap().to_string();
    // The feed is asked for: moto answers 404 and the agent carries on with the TTL.
    let a = agent(&url, creds, AgentConfig::default(), true).await;

    assert_eq!(get_with(&a, "/ping", &[]).await, (200, "healthy".into()));
    assert_eq!(
        get_with(&a, "/v1/svc/api-key", &[]).await,
        (403, "Bad Token".into())
    );
    let (st, body) = get(&a, "/secretsmanager/get?secretId=svc/api-key").await;
    assert_eq!(st, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["Name"], "svc/api-key");
    assert_eq!(v["SecretString"], "k1");
    assert_eq!(v["VersionId"], v1.as_str());
    assert_eq!(v["VersionStages"][0], "AWSCURRENT");
    // The upstream's status is passed through, as AWS's agent does (moto says 404 where AWS
    // says 400).
    let (st, body) = get(&a, "/secretsmanager/get?secretId=nope").await;
    assert_eq!(st, 404, "{body}");
    assert_eq!(json(&body)["__type"], "ResourceNotFoundException");

    c.put_secret_value()
        .secret_id("svc/api-key")
        .secret_string("k2")
        .send()
        .await
        .unwrap();
    // Cached until the TTL or refreshNow.
    assert_eq!(
        json(&get(&a, "/v1/svc/api-key").await.1)["SecretString"],
        "k1"
    );
    assert_eq!(
        json(&get(&a, "/v1/svc/api-key?refreshNow=true").await.1)["SecretString"],
        "k2"
    );
    let (_, body) = get(&a, "/v1/svc/api-key?versionStage=AWSPREVIOUS").await;
    assert_eq!(json(&body)["SecretString"], "k1");
    assert!(!a.agent.feed_stats.is_connected());
    a.shutdown().await;
}
