//! The agent against `keyroll serve`: AWS's agent's documented API, single flight, the change
//! feed (a rotation's new AWSCURRENT within a second) and a server restart.

mod common;

use std::time::{Duration, Instant};

use common::*;
use keyroll_agent::AgentConfig;

fn no_feed() -> AgentConfig {
    AgentConfig {
        follow_feed: false,
        ..AgentConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_aws_agent_does() {
    let s = serve().await;
    let c = s.client();
    let created = c
        .create_secret()
        .name("prod/db")
        .secret_string(r#"{"password":"one"}"#)
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    let v1 = created.version_id().unwrap().to_string();
    let a = agent(&s.url, credentials(&s.key), no_feed(), false).await;

    // /ping needs no token.
    assert_eq!(get_with(&a, "/ping", &[]).await, (200, "healthy".into()));
    // SSRF: no token, a wrong token, a forwarded request.
    assert_eq!(
        get_with(&a, "/secretsmanager/get?secretId=prod/db", &[]).await,
        (403, "Bad Token".into())
    );
    assert_eq!(
        get_with(
            &a,
            "/secretsmanager/get?secretId=prod/db",
            &[("X-Aws-Parameters-Secrets-Token", "wrong")]
        )
        .await,
        (403, "Bad Token".into())
    );
    assert_eq!(
        get_with(
            &a,
            "/secretsmanager/get?secretId=prod/db",
            &[
                ("X-Aws-Parameters-Secrets-Token", TOKEN),
                ("X-Forwarded-For", "10.0.0.1")
            ]
        )
        .await,
        (400, "Forwarded".into())
    );
    // The second default header works too.
    let (st, _) = get_with(
        &a,
        "/secretsmanager/get?secretId=prod/db",
        &[("X-Vault-Token", TOKEN)],
    )
    .await;
    assert_eq!(st, 200);
    // Not GET.
    let r = reqwest::Client::new()
        .post(format!("{}/secretsmanager/get?secretId=prod/db", a.url()))
        .header("X-Aws-Parameters-Secrets-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // Parameters.
    assert_eq!(
        get(&a, "/secretsmanager/get").await,
        (400, "missing parameter secretId".into())
    );
    assert_eq!(
        get(&a, "/secretsmanager/get?secretId=prod/db&x=1").await,
        (400, "unknown parameter: x".into())
    );
    assert_eq!(
        get(&a, "/secretsmanager/get?secretId=prod/db&refreshNow=maybe").await,
        (400, "invalid refreshNow value".into())
    );
    assert_eq!(get(&a, "/nothing").await, (404, "Not found".into()));
    // The answer: GetSecretValue's JSON, by name, ARN and the /v1/ path.
    for path in [
        "/secretsmanager/get?secretId=prod/db".to_string(),
        format!("/secretsmanager/get?secretId={arn}"),
        "/v1/prod/db".to_string(),
        "/v1/prod%2Fdb?versionStage=AWSCURRENT".to_string(),
    ] {
        let (st, body) = get(&a, &path).await;
        assert_eq!(st, 200, "{path}: {body}");
        let v = json(&body);
        assert_eq!(v["ARN"], arn.as_str());
        assert_eq!(v["Name"], "prod/db");
        assert_eq!(v["VersionId"], v1.as_str());
        assert_eq!(v["SecretString"], r#"{"password":"one"}"#);
        assert_eq!(v["VersionStages"][0], "AWSCURRENT");
        assert!(v["CreatedDate"].as_str().is_some(), "{body}");
    }
    // Errors are the service's, with its status.
    let (st, body) = get(&a, "/secretsmanager/get?secretId=missing").await;
    assert_eq!(st, 400);
    assert_eq!(json(&body)["__type"], "ResourceNotFoundException");
    let (st, body) = get(&a, "/secretsmanager/get?secretId=prod/db&versionStage=NOPE").await;
    assert_eq!(
        (st, json(&body)["__type"].clone()),
        (400, "ResourceNotFoundException".into())
    );

    // TTL: a new value is not seen until refreshNow (the feed is off here).
    let v2 = c
        .put_secret_value()
        .secret_id("prod/db")
        .secret_string(r#"{"password":"two"}"#)
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let (_, body) = get(&a, "/secretsmanager/get?secretId=prod/db").await;
    assert_eq!(json(&body)["VersionId"], v1.as_str());
    let (_, body) = get(&a, "/secretsmanager/get?secretId=prod/db&refreshNow=true").await;
    assert_eq!(json(&body)["VersionId"], v2.as_str());
    let (_, body) = get(&a, "/secretsmanager/get?secretId=prod/db").await;
    assert_eq!(json(&body)["VersionId"], v2.as_str());
    // By version id and by the previous label.
    let (_, body) = get(&a, &format!("/v1/prod/db?versionId={v1}")).await;
    let v = json(&body);
    assert_eq!(v["VersionId"], v1.as_str());
    assert_eq!(v["VersionStages"][0], "AWSPREVIOUS");
    let (_, body) = get(
        &a,
        "/secretsmanager/get?secretId=prod/db&versionStage=AWSPREVIOUS",
    )
    .await;
    assert_eq!(json(&body)["SecretString"], r#"{"password":"one"}"#);

    // /metrics: counters of the cache, no token needed.
    let (st, m) = get_with(&a, "/metrics", &[]).await;
    assert_eq!(st, 200);
    assert!(m.contains("keyroll_agent_cache_hits_total"), "{m}");
    assert!(m.contains("keyroll_agent_feed_connected 0"), "{m}");
    a.shutdown().await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_of_zero_reads_upstream_every_time() {
    let s = serve().await;
    let c = s.client();
    c.create_secret()
        .name("t")
        .secret_string("one")
        .send()
        .await
        .unwrap();
    let config = AgentConfig {
        ttl: Duration::ZERO,
        ..no_feed()
    };
    let a = agent(&s.url, credentials(&s.key), config, false).await;
    let before = s.get_secret_value_calls();
    for _ in 0..3 {
        assert_eq!(get(&a, "/v1/t").await.0, 200);
    }
    assert_eq!(s.get_secret_value_calls() - before, 3);
    a.shutdown().await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_first_reads_make_one_upstream_call() {
    let s = serve().await;
    s.client()
        .create_secret()
        .name("hot")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    let a = std::sync::Arc::new(agent(&s.url, credentials(&s.key), no_feed(), false).await);
    let before = s.get_secret_value_calls();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let a = a.clone();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            get(&a, "/secretsmanager/get?secretId=hot").await
        }));
    }
    for t in tasks {
        let (st, body) = t.await.unwrap();
        assert_eq!(st, 200, "{body}");
        assert_eq!(json(&body)["SecretString"], "v");
    }
    assert_eq!(s.get_secret_value_calls() - before, 1);
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_reaches_readers_within_a_second_through_the_feed() {
    let s = serve().await;
    let c = s.client();
    c.create_secret()
        .name("rot")
        .secret_string(r#"{"password":"old"}"#)
        .send()
        .await
        .unwrap();
    let a = agent(&s.url, credentials(&s.key), AgentConfig::default(), true).await;
    feed_connected(&a).await;
    let (_, body) = get(&a, "/secretsmanager/get?secretId=rot").await;
    let old = json(&body)["VersionId"].as_str().unwrap().to_string();
    c.rotate_secret()
        .secret_id("rot")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:keyroll")
        .send()
        .await
        .unwrap();
    // When the rotation has finished at the server …
    let new = within(Duration::from_secs(10), || async {
        let d = c.describe_secret().secret_id("rot").send().await.unwrap();
        let v = d.version_ids_to_stages()?;
        v.iter()
            .find(|(id, st)| st.iter().any(|s| s == "AWSCURRENT") && **id != old)
            .filter(|_| !v.values().any(|st| st.iter().any(|s| s == "AWSPENDING")))
            .map(|(id, _)| id.clone())
    })
    .await;
    let t0 = Instant::now();
    // … the agent serves the new AWSCURRENT within a second (its TTL is 300 s).
    within(Duration::from_secs(1), || async {
        let (_, body) = get(&a, "/secretsmanager/get?secretId=rot").await;
        (json(&body)["VersionId"] == new.as_str()).then_some(())
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(
        a.agent
            .feed_stats
            .events
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    a.shutdown().await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_serving_and_reconnects_when_the_server_restarts() {
    let s = serve().await;
    let addr = s.server.addr.to_string();
    let (regions, key, url) = (s.regions.clone(), s.key.clone(), s.url.clone());
    let c = s.client();
    c.create_secret()
        .name("app")
        .secret_string("one")
        .send()
        .await
        .unwrap();
    let a = agent(&url, credentials(&key), AgentConfig::default(), true).await;
    feed_connected(&a).await;
    assert_eq!(json(&get(&a, "/v1/app").await.1)["SecretString"], "one");

    s.server.shutdown().await;
    // The server is down: cached values are still served, the feed is lost.
    within(Duration::from_secs(10), || async {
        (!a.agent.feed_stats.is_connected()).then_some(())
    })
    .await;
    let (st, body) = get(&a, "/v1/app").await;
    assert_eq!(
        (st, json(&body)["SecretString"].clone()),
        (200, "one".into())
    );

    // Back on the same address, same secrets, a new feed epoch.
    let s = serve_on(regions, key, &addr).await;
    feed_connected(&a).await;
    s.client()
        .put_secret_value()
        .secret_id("app")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    within(Duration::from_secs(2), || async {
        let (_, body) = get(&a, "/v1/app").await;
        (json(&body)["SecretString"] == "two").then_some(())
    })
    .await;
    assert!(
        a.agent
            .feed_stats
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    a.shutdown().await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_shows_only_what_the_caller_may_describe() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use keyroll_agent::feed::poll_changes;
    use keyroll_server::credentials::{AccessKey, KeyStore};
    use keyroll_server::feed::{Feed, FeedRegions};
    use keyroll_server::identity::configured_principals;
    use std::sync::Arc;

    let config = keyroll_server::Config::from_toml(
        r#"
[[access_keys]]
access_key_id = "AKIAADMIN00000000001"
secret_access_key = "admin-secret-0000000000000000000000000000"
name = "admin"
admin = true

[[access_keys]]
access_key_id = "AKIAREADER0000000001"
secret_access_key = "reader-secret-000000000000000000000000000"
name = "reader"
policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:DescribeSecret","secretsmanager:GetSecretValue"],"Resource":"arn:aws:secretsmanager:*:*:secret:visible-*"}]}'
"#,
        std::path::Path::new("keyroll.toml"),
    )
    .unwrap();
    let keys = KeyStore::with_principals(configured_principals(&config, None).unwrap());
    let feed = Arc::new(Feed::default());
    let regions = keyroll_server::MemoryRegions::new(
        config.account.clone(),
        Arc::new(keyroll_core::time::SystemClock),
    );
    let app = keyroll_server::server::App::with_keys(
        FeedRegions::new(regions, feed.clone()),
        config,
        keys,
        Arc::new(keyroll_core::time::SystemClock),
    )
    .with_feed(feed);
    let listener = keyroll_server::server::bind("127.0.0.1:0").await.unwrap();
    let server = keyroll_server::server::start(Arc::new(app), listener, false).unwrap();
    let url = server.url();
    let key = |id: &str, secret: &str| AccessKey {
        access_key_id: id.into(),
        secret_access_key: secret.to_string().into(),
        session_token: None,
        name: id.into(),
    };
    let admin = key(
        "AKIAADMIN00000000001",
        "admin-secret-0000000000000000000000000000",
    );
    let reader = key(
        "AKIAREADER0000000001",
        "reader-secret-000000000000000000000000000",
    );
    let up = |k: &AccessKey| keyroll_agent::FeedUpstream {
        endpoint: url.clone(),
        region: "us-east-1".into(),
        credentials: SharedCredentialsProvider::new(credentials(k)),
    };
    let (st, start) = poll_changes(&up(&reader), None, 0).await.unwrap();
    assert_eq!(st, 200);
    let epoch = start["epoch"].as_str().unwrap().to_string();
    let c = sdk(&url, credentials(&admin));
    for name in ["visible-app", "hidden-app"] {
        c.create_secret()
            .name(name)
            .secret_string("v1")
            .send()
            .await
            .unwrap();
        c.put_secret_value()
            .secret_id(name)
            .secret_string("v2")
            .send()
            .await
            .unwrap();
    }
    let names = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["event"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (st, r) = poll_changes(&up(&reader), Some((&epoch, 0)), 0)
        .await
        .unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        names(&r),
        [
            ("visible-app".to_string(), "create".to_string()),
            ("visible-app".to_string(), "put".to_string())
        ]
    );
    assert!(!r.to_string().contains("hidden"), "{r}");
    assert_eq!(r["next"], 4);
    let (_, r) = poll_changes(&up(&admin), Some((&epoch, 0)), 0)
        .await
        .unwrap();
    assert_eq!(names(&r).len(), 4);
    // A long poll is answered by the next change.
    let waiting = tokio::spawn({
        let up = up(&reader);
        let epoch = epoch.clone();
        async move { poll_changes(&up, Some((&epoch, 4)), 30).await }
    });
    c.put_secret_value()
        .secret_id("visible-app")
        .secret_string("v3")
        .send()
        .await
        .unwrap();
    let (st, r) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((st, names(&r).len()), (200, 1));
    // Another epoch (a restart): resync.
    let (st, r) = poll_changes(&up(&reader), Some(("0000", 1)), 0)
        .await
        .unwrap();
    assert_eq!((st, r["__type"].as_str()), (410, Some("ResyncRequired")));
    assert_eq!(r["next"], 5);
    // Unsigned, or signed with an unknown key: refused, nothing listed.
    let r = reqwest::get(format!("{url}/keyroll/changes?since=0&epoch={epoch}"))
        .await
        .unwrap();
    assert_ne!(r.status().as_u16(), 200);
    assert!(!r.text().await.unwrap().contains("app"));
    let stranger = key(
        "AKIASTRANGER00000001",
        "nope-0000000000000000000000000000000000",
    );
    let (st, r) = poll_changes(&up(&stranger), Some((&epoch, 0)), 0)
        .await
        .unwrap();
    assert_ne!(st, 200);
    assert!(!r.to_string().contains("app"), "{r}");
    server.shutdown().await;
}
