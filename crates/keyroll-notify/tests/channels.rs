//! Every channel against a real receiver: webhooks (generic JSON and Slack) against a local
//! HTTP server, e-mail against a real SMTP sink (STARTTLS, TLS, AUTH), SNS against moto.
//! Events come from real rotations (the engine over the in-memory store) of a secret that
//! holds a sentinel value, which no payload may contain.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::HttpReceiver;
use common::smtp::{Security, SinkOptions, SmtpSink};
use common::*;
use keyroll_core::Step;
use keyroll_notify::{
    EmailConfig, EventFilter, Notifier, NotifyConfig, RetryConfig, SmtpSecurity, WebhookConfig,
    WebhookFormat,
};
use secrecy::SecretString;

fn webhook(name: &str, url: String, format: WebhookFormat) -> WebhookConfig {
    WebhookConfig {
        name: Some(name.into()),
        url: SecretString::from(url),
        format,
        headers: Default::default(),
        ca_file: None,
        timeout_secs: 5,
        events: None,
        default: true,
    }
}

fn email(sink: &SmtpSink, security: SmtpSecurity) -> EmailConfig {
    EmailConfig {
        name: Some("mail".into()),
        host: "127.0.0.1".into(),
        port: Some(sink.port()),
        security,
        username: None,
        password: None,
        from: "keyroll <keyroll@example.com>".into(),
        to: vec!["security@example.com".into()],
        ca_file: Some(sink.ca_file.clone()),
        subject_prefix: None,
        timeout_secs: 5,
        events: None,
        default: true,
    }
}

fn notifier(config: NotifyConfig, sleeper: Arc<RecordingSleeper>) -> Notifier {
    Notifier::from_config(&config)
        .unwrap()
        .with_sleeper(sleeper)
}

#[tokio::test]
async fn json_webhook_delivers_success_and_failure_with_the_right_content() {
    let rx = HttpReceiver::start().await;
    let config = NotifyConfig {
        webhook: vec![WebhookConfig {
            headers: [(
                "Authorization".to_string(),
                SecretString::from("Bearer hook-token".to_string()),
            )]
            .into_iter()
            .collect(),
            ..webhook(
                "audit",
                rx.url("/hooks/keyroll?token=abc"),
                WebhookFormat::Json,
            )
        }],
        ..Default::default()
    };
    let n = notifier(config, sleeper());

    let ok = rotated_secret("prod/api-token", &[], None).await;
    let desc = ok.describe().await;
    let event = event_of(&ok).await;
    let report = n.notify(&event).await;
    assert_eq!(report.delivered, ["audit"]);
    let req = rx.next().await;
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/keyroll?token=abc");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), Some("Bearer hook-token"));
    assert_eq!(req.header("x-keyroll-event"), Some("RotationSucceeded"));
    let body = req.json();
    assert_eq!(body["event"], "RotationSucceeded");
    assert_eq!(body["secretName"], "prod/api-token");
    assert_eq!(body["secretArn"], desc.arn.as_str());
    assert_eq!(body["region"], "us-east-1");
    assert_eq!(
        body["versionId"],
        desc.keyroll_rotation_status
            .as_ref()
            .unwrap()
            .version_id
            .as_str()
    );
    assert_eq!(
        body["nextRotation"],
        desc.next_rotation_date.unwrap().to_rfc3339().as_str()
    );
    assert_eq!(body["source"], "test");
    assert_eq!(body["attempt"], 1);
    assert!(body.get("errorClass").is_none() && body.get("step").is_none());
    assert!(body["startedAt"].as_str().unwrap().ends_with('Z'));

    let failed = rotated_secret("prod/api-token", &[], Some(Step::Set)).await;
    let report = n.notify(&event_of(&failed).await).await;
    assert_eq!(report.delivered, ["audit"]);
    let body = rx.next().await.json();
    assert_eq!(body["event"], "RotationFailed");
    assert_eq!(body["step"], "setSecret");
    assert_eq!(body["errorClass"], "Rejected");
    assert_eq!(body["errorMessage"], "injected failure at setSecret");
    assert_eq!(n.metrics().channel("audit").delivered, 2);
}

#[tokio::test]
async fn slack_webhook_gets_a_slack_message() {
    let rx = HttpReceiver::start().await;
    let config = NotifyConfig {
        webhook: vec![webhook(
            "slack",
            rx.url("/services/T0/B0/X"),
            WebhookFormat::Slack,
        )],
        ..Default::default()
    };
    let n = notifier(config, sleeper());
    let failed = rotated_secret("team/svc", &[], Some(Step::Test)).await;
    n.notify(&event_of(&failed).await).await;
    let msg = rx.next().await.json();
    assert_eq!(
        msg["text"],
        ":rotating_light: Rotation failed: team/svc at testSecret (Rejected)"
    );
    let att = &msg["attachments"][0];
    assert_eq!(att["color"], "#d40e0d");
    let field = |t: &str| {
        att["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["title"] == t)
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    assert_eq!(field("Secret").as_deref(), Some("team/svc"));
    assert_eq!(field("Failed step").as_deref(), Some("testSecret"));
    assert_eq!(
        field("Error").as_deref(),
        Some("injected failure at testSecret")
    );
    assert!(field("Next rotation").is_some());

    let ok = rotated_secret("team/svc", &[], None).await;
    n.notify(&event_of(&ok).await).await;
    let msg = rx.next().await.json();
    assert_eq!(
        msg["text"],
        ":white_check_mark: Rotation succeeded: team/svc"
    );
    assert_eq!(msg["attachments"][0]["color"], "#2eb886");
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff_and_counted() {
    let rx = HttpReceiver::start().await;
    rx.answer(&[503, 429]);
    let sleeps = sleeper();
    let config = NotifyConfig {
        retry: RetryConfig {
            attempts: 3,
            initial_backoff_ms: 200,
            max_backoff_ms: 1_000,
        },
        webhook: vec![webhook("ops", rx.url("/"), WebhookFormat::Json)],
        ..Default::default()
    };
    let n = notifier(config, sleeps.clone());
    let ev = event_of(&rotated_secret("a", &[], None).await).await;
    let report = n.notify(&ev).await;
    assert_eq!(report.delivered, ["ops"]);
    assert_eq!(rx.received().len(), 3);
    assert_eq!(
        sleeps.delays(),
        [Duration::from_millis(200), Duration::from_millis(400)]
    );
    let c = n.metrics().channel("ops");
    assert_eq!((c.delivered, c.failed, c.retries), (1, 0, 2));
}

#[tokio::test]
async fn permanent_refusals_are_not_retried_and_never_fail_the_caller() {
    let rx = HttpReceiver::start().await;
    rx.answer(&[404]);
    let sleeps = sleeper();
    let config = NotifyConfig {
        webhook: vec![webhook(
            "ops",
            rx.url("/gone/SECRET-PATH-TOKEN"),
            WebhookFormat::Json,
        )],
        ..Default::default()
    };
    let n = notifier(config, sleeps.clone());
    let report = n
        .notify(&event_of(&rotated_secret("a", &[], None).await).await)
        .await;
    assert!(report.delivered.is_empty());
    assert_eq!(report.failed.len(), 1);
    let (name, error) = &report.failed[0];
    assert_eq!(name, "ops");
    assert!(error.contains("HTTP 404"), "{error}");
    assert!(
        !error.contains("SECRET-PATH-TOKEN"),
        "the URL path is never shown: {error}"
    );
    assert_eq!(rx.received().len(), 1);
    assert!(sleeps.delays().is_empty());
    assert_eq!(n.metrics().channel("ops").failed, 1);
    assert!(n.metrics().render_prometheus().contains(
        "keyroll_notifications_total{channel=\"ops\",kind=\"webhook\",outcome=\"failed\"} 1"
    ));
}

#[tokio::test]
async fn an_unreachable_channel_is_retried_a_bounded_number_of_times_then_given_up() {
    // A port that was free a moment ago and has no listener.
    let port = keyroll_testkit::process::free_port().unwrap();
    let sleeps = sleeper();
    let config = NotifyConfig {
        retry: RetryConfig {
            attempts: 4,
            initial_backoff_ms: 100,
            max_backoff_ms: 250,
        },
        webhook: vec![webhook(
            "down",
            format!("http://127.0.0.1:{port}/T/B/SECRET-PATH-TOKEN"),
            WebhookFormat::Slack,
        )],
        ..Default::default()
    };
    let n = notifier(config, sleeps.clone());
    let report = n
        .notify(&event_of(&rotated_secret("a", &[], Some(Step::Create)).await).await)
        .await;
    assert_eq!(report.failed.len(), 1);
    let error = &report.failed[0].1;
    assert!(
        error.contains(&format!("http://127.0.0.1:{port}")),
        "{error}"
    );
    assert!(!error.contains("SECRET-PATH-TOKEN"), "{error}");
    assert_eq!(
        sleeps.delays(),
        [100, 200, 250].map(Duration::from_millis),
        "three waits between four attempts"
    );
    let c = n.metrics().channel("down");
    assert_eq!((c.delivered, c.failed, c.retries), (0, 1, 3));
}

#[tokio::test]
async fn routing_by_tags_and_event_filters() {
    let a = HttpReceiver::start().await;
    let b = HttpReceiver::start().await;
    let config = NotifyConfig {
        webhook: vec![
            webhook("a", a.url("/"), WebhookFormat::Json),
            WebhookConfig {
                default: false,
                events: Some(EventFilter::Failures),
                ..webhook("b", b.url("/"), WebhookFormat::Json)
            },
        ],
        ..Default::default()
    };
    let n = notifier(config, sleeper());

    // No tag: the default channels only.
    let r = n
        .notify(&event_of(&rotated_secret("s1", &[], None).await).await)
        .await;
    assert_eq!(
        (r.delivered, r.skipped),
        (vec!["a".to_string()], vec!["b".to_string()])
    );

    // keyroll:notify=none silences the secret.
    let r = n
        .notify(
            &event_of(&rotated_secret("s2", &[("keyroll:notify", "none")], Some(Step::Set)).await)
                .await,
        )
        .await;
    assert!(r.delivered.is_empty() && r.failed.is_empty());

    // Named channels; b takes failures only.
    let tags = [("keyroll:notify", "a,b,missing")];
    let r = n
        .notify(&event_of(&rotated_secret("s3", &tags, None).await).await)
        .await;
    assert_eq!(r.delivered, ["a"]);
    let r = n
        .notify(&event_of(&rotated_secret("s4", &tags, Some(Step::Test)).await).await)
        .await;
    assert_eq!(r.delivered, ["a", "b"]);

    // keyroll:notify-events overrides every channel's filter for the secret.
    let tags = [
        ("keyroll:notify", "a,b"),
        ("keyroll:notify-events", "failures"),
    ];
    let r = n
        .notify(&event_of(&rotated_secret("s5", &tags, None).await).await)
        .await;
    assert!(r.delivered.is_empty());

    let names = |rx: &HttpReceiver| -> Vec<String> {
        rx.received()
            .iter()
            .map(|c| c.json()["secretName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&a), ["s1", "s3", "s4"]);
    assert_eq!(names(&b), ["s4"]);
}

#[tokio::test]
async fn email_over_starttls_with_auth_like_ses() {
    let sink = SmtpSink::start(SinkOptions {
        credentials: Some(("AKIASMTPUSER".into(), "smtp-password".into())),
        ..SinkOptions::new(Security::StartTls)
    })
    .await;
    let config = NotifyConfig {
        email: vec![EmailConfig {
            username: Some("AKIASMTPUSER".into()),
            password: Some(SecretString::from("smtp-password".to_string())),
            ..email(&sink, SmtpSecurity::Starttls)
        }],
        allow_email_domains: vec!["example.com".into()],
        ..Default::default()
    };
    let n = notifier(config, sleeper());

    let failed = rotated_secret(
        "iam/ci-deployer",
        &[(
            "keyroll:notify-email",
            "owner@example.com, thief@attacker.example.net",
        )],
        Some(Step::Test),
    )
    .await;
    let desc = failed.describe().await;
    let report = n.notify(&event_of(&failed).await).await;
    assert_eq!(report.delivered, ["mail"], "{report:?}");
    assert_eq!(
        report.refused,
        ["keyroll:notify-email=thief@attacker.example.net"],
        "a domain outside [notify] allow_email_domains is refused"
    );
    let mail = sink.next().await;
    assert!(mail.tls, "upgraded with STARTTLS before anything was sent");
    assert_eq!(mail.authenticated_as.as_deref(), Some("AKIASMTPUSER"));
    assert_eq!(mail.from, "keyroll@example.com");
    assert_eq!(mail.to, ["security@example.com", "owner@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[keyroll] Rotation failed: iam/ci-deployer at testSecret (Rejected)")
    );
    let body = mail.body();
    for want in [
        "Rotation failed: iam/ci-deployer at testSecret (Rejected).",
        &format!("ARN:           {}", desc.arn),
        "Failed step:   testSecret",
        "Error class:   Rejected",
        "Error:         injected failure at testSecret",
        "AWSCURRENT is unchanged",
    ] {
        assert!(body.contains(want), "{want:?} not in:\n{body}");
    }

    let ok = rotated_secret("iam/ci-deployer", &[], None).await;
    n.notify(&event_of(&ok).await).await;
    let mail = sink.next().await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[keyroll] Rotation succeeded: iam/ci-deployer")
    );
    assert!(mail.body().contains("The new version is AWSCURRENT"));
    assert_eq!(mail.to, ["security@example.com"]);
}

#[tokio::test]
async fn email_over_implicit_tls() {
    let sink = SmtpSink::start(SinkOptions::new(Security::Tls)).await;
    let config = NotifyConfig {
        email: vec![email(&sink, SmtpSecurity::Tls)],
        ..Default::default()
    };
    let n = notifier(config, sleeper());
    let r = n
        .notify(&event_of(&rotated_secret("x", &[], None).await).await)
        .await;
    assert_eq!(r.delivered, ["mail"], "{r:?}");
    assert!(sink.next().await.tls);
}

#[tokio::test]
async fn required_starttls_is_never_downgraded() {
    // The server does not offer STARTTLS: nothing is sent in clear text.
    let sink = SmtpSink::start(SinkOptions::new(Security::Plain)).await;
    let config = NotifyConfig {
        retry: RetryConfig {
            attempts: 1,
            ..Default::default()
        },
        email: vec![email(&sink, SmtpSecurity::Starttls)],
        ..Default::default()
    };
    let n = notifier(config, sleeper());
    let r = n
        .notify(&event_of(&rotated_secret("x", &[], None).await).await)
        .await;
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn email_retries_a_busy_server_and_gives_up_on_a_refused_recipient() {
    let busy = SmtpSink::start(SinkOptions {
        transient_failures: 1,
        ..SinkOptions::new(Security::StartTls)
    })
    .await;
    let sleeps = sleeper();
    let n = notifier(
        NotifyConfig {
            email: vec![email(&busy, SmtpSecurity::Starttls)],
            ..Default::default()
        },
        sleeps.clone(),
    );
    let r = n
        .notify(&event_of(&rotated_secret("x", &[], None).await).await)
        .await;
    assert_eq!(r.delivered, ["mail"]);
    assert_eq!(sleeps.delays().len(), 1);
    assert_eq!(n.metrics().channel("mail").retries, 1);

    let refusing = SmtpSink::start(SinkOptions {
        reject_recipients: true,
        ..SinkOptions::new(Security::StartTls)
    })
    .await;
    let sleeps = sleeper();
    let n = notifier(
        NotifyConfig {
            email: vec![email(&refusing, SmtpSecurity::Starttls)],
            ..Default::default()
        },
        sleeps.clone(),
    );
    let r = n
        .notify(&event_of(&rotated_secret("x", &[], None).await).await)
        .await;
    assert_eq!(r.failed.len(), 1);
    assert!(
        r.failed[0].1.contains("550") || r.failed[0].1.to_lowercase().contains("permanent"),
        "{r:?}"
    );
    assert!(
        sleeps.delays().is_empty(),
        "a permanent refusal is not retried"
    );
}

#[tokio::test]
async fn the_sentinel_value_never_appears_in_any_payload() {
    let json = HttpReceiver::start().await;
    let slack = HttpReceiver::start().await;
    let sink = SmtpSink::start(SinkOptions::new(Security::StartTls)).await;
    let config = NotifyConfig {
        webhook: vec![
            webhook("json", json.url("/"), WebhookFormat::Json),
            webhook("slack", slack.url("/"), WebhookFormat::Slack),
        ],
        email: vec![email(&sink, SmtpSecurity::Starttls)],
        ..Default::default()
    };
    let n = notifier(config, sleeper());
    for step in [
        None,
        Some(Step::Create),
        Some(Step::Set),
        Some(Step::Test),
        Some(Step::Finish),
    ] {
        let r = rotated_secret("sentinel/secret", &[], step).await;
        let report = n.notify(&event_of(&r).await).await;
        assert_eq!(report.delivered, ["json", "mail", "slack"], "{report:?}");
    }
    let mut payloads: Vec<String> = Vec::new();
    payloads.extend(
        json.received()
            .into_iter()
            .map(|c| format!("{:?} {}", c.headers, c.body)),
    );
    payloads.extend(
        slack
            .received()
            .into_iter()
            .map(|c| format!("{:?} {}", c.headers, c.body)),
    );
    payloads.extend(sink.received().into_iter().map(|m| m.data));
    assert_eq!(payloads.len(), 15);
    for p in &payloads {
        assert!(
            p.contains("sentinel/secret"),
            "each payload names the secret"
        );
        assert!(
            !p.contains(SENTINEL),
            "a secret value leaked into a payload:\n{p}"
        );
        assert!(
            !p.contains("rotated-"),
            "a generated value leaked into a payload:\n{p}"
        );
    }
}

/// SNS against moto: a topic with an HTTP subscription to a local receiver; moto delivers
/// each published message to it.
#[cfg(feature = "sns")]
#[test]
fn sns_publishes_success_and_failure_events_to_a_topic() {
    use keyroll_notify::SnsConfig;
    let moto =
        keyroll_testkit::moto::MotoServer::start().expect("moto_server (scripts/test installs it)");
    // The SDK's default credential chain reads these; set before any thread starts.
    for (k, v) in moto.aws_env() {
        if k != "AWS_ENDPOINT_URL" {
            // SAFETY: single-threaded here; nextest runs each test in its own process.
            unsafe { std::env::set_var(k, v) };
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rx = HttpReceiver::start().await;
        let conf = aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .http_client(keyroll_notify::aws_https_client())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        let sns = aws_sdk_sns::Client::from_conf(conf);
        let topic = sns
            .create_topic()
            .name("keyroll-alerts")
            .send()
            .await
            .unwrap();
        let topic_arn = topic.topic_arn().unwrap().to_string();
        let extra = sns
            .create_topic()
            .name("key-owner")
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_string();
        for (arn, path) in [(&topic_arn, "/alerts"), (&extra, "/owner")] {
            sns.subscribe()
                .topic_arn(arn)
                .protocol("http")
                .endpoint(rx.url(path))
                .send()
                .await
                .unwrap();
        }
        let config = NotifyConfig {
            sns: vec![SnsConfig {
                name: Some("alerts".into()),
                topic_arn: topic_arn.clone(),
                region: None,
                endpoint_url: Some(moto.endpoint()),
                timeout_secs: 10,
                events: None,
                default: true,
            }],
            allow_sns_topics: vec![extra.clone()],
            ..Default::default()
        };
        let n = notifier(config, sleeper());

        let ok = rotated_secret("prod/db", &[], None).await;
        let r = n.notify(&event_of(&ok).await).await;
        assert_eq!(r.delivered, ["alerts"], "{r:?}");
        let env = rx.next().await.json();
        assert_eq!(env["Type"], "Notification");
        assert_eq!(env["TopicArn"], topic_arn.as_str());
        assert_eq!(env["Subject"], "keyroll: Rotation succeeded: prod/db");
        let msg: serde_json::Value =
            serde_json::from_str(env["Message"].as_str().unwrap()).unwrap();
        assert_eq!(msg["event"], "RotationSucceeded");
        assert_eq!(msg["secretName"], "prod/db");

        // A failure, with an extra topic from the secret's tag.
        // A second topic in the tag is not in allow_sns_topics: refused, never published.
        let tag = format!("{extra},arn:aws:sns:us-east-1:123456789012:not-allowed");
        let failed = rotated_secret(
            "prod/db",
            &[("keyroll:notify-sns-topic", &tag)],
            Some(Step::Set),
        )
        .await;
        let r = n.notify(&event_of(&failed).await).await;
        assert_eq!(r.delivered, ["alerts", "tag-sns-1"], "{r:?}");
        assert_eq!(
            r.refused,
            ["keyroll:notify-sns-topic=arn:aws:sns:us-east-1:123456789012:not-allowed"]
        );
        let mut got = vec![rx.next().await, rx.next().await];
        got.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(got[0].path, "/alerts");
        assert_eq!(got[1].path, "/owner");
        for c in &got {
            let env = c.json();
            assert_eq!(
                env["Subject"],
                "keyroll: Rotation failed: prod/db at setSecret (Rejected)"
            );
            let msg: serde_json::Value =
                serde_json::from_str(env["Message"].as_str().unwrap()).unwrap();
            assert_eq!(msg["event"], "RotationFailed");
            assert_eq!(msg["step"], "setSecret");
            assert_eq!(msg["errorClass"], "Rejected");
            assert!(!c.body.contains(SENTINEL));
        }

        // A topic that does not exist: a permanent error, given up at once, counted.
        let n = notifier(
            NotifyConfig {
                sns: vec![SnsConfig {
                    name: Some("gone".into()),
                    topic_arn: "arn:aws:sns:us-east-1:123456789012:no-such-topic".into(),
                    region: None,
                    endpoint_url: Some(moto.endpoint()),
                    timeout_secs: 10,
                    events: None,
                    default: true,
                }],
                ..Default::default()
            },
            sleeper(),
        );
        let r = n.notify(&event_of(&ok).await).await;
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert_eq!(n.metrics().channel("gone").failed, 1);
    });
}

#[cfg(not(feature = "sns"))]
#[test]
fn sns_channels_need_the_sns_feature() {
    let config = NotifyConfig {
        sns: vec![keyroll_notify::SnsConfig {
            name: None,
            topic_arn: "arn:aws:sns:us-east-1:123456789012:t".into(),
            region: None,
            endpoint_url: None,
            timeout_secs: 10,
            events: None,
            default: true,
        }],
        ..Default::default()
    };
    let e = Notifier::from_config(&config).unwrap_err().to_string();
    assert!(e.contains("`sns` feature"), "{e}");
}
