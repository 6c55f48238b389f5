//! The rotation function's notifications, configured the way a Lambda is (the
//! `KEYROLL_NOTIFY_*` variables): a failed step sends RotationFailed, a successful
//! finishSecret sends RotationSucceeded, and no secret value reaches a payload.

mod common;

use common::{Aws, event};
use keyroll_core::Step;
use keyroll_core::testing::FlakyTarget;
use keyroll_lambda::{Function, Settings};
use keyroll_notify::{Notifier, NotifyConfig};
use keyroll_testkit::webhook::WebhookReceiver;
use serde_json::{Value, json};

const SENTINEL: &str = "SENTINEL-lambda-notify-91ab";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_step_and_finished_rotation_are_notified() {
    let hook = WebhookReceiver::start().unwrap();
    let url = hook.url().to_string();
    let config = NotifyConfig::default()
        .with_vars(|k| (k == "KEYROLL_NOTIFY_WEBHOOK_URL").then(|| url.clone()))
        .unwrap();
    let notifier = Notifier::from_config(&config).unwrap();
    assert!(notifier.is_enabled());

    let aws = Aws::start();
    let arn = aws
        .create_secret("app/token", &json!({ "password": SENTINEL }))
        .await;
    let function = Function::with_store(Settings::default(), aws.store())
        .with_metrics_sink(|_| {})
        .with_notifier(notifier);
    let token = aws.rotate_secret(&arn).await;

    function
        .invoke(&event(Step::Create, &arn, &token))
        .await
        .unwrap();
    let target = FlakyTarget::new(function.target());
    target.fail_before(Step::Set, 1);
    let err = function
        .invoke_with_target(&event(Step::Set, &arn, &token), &target)
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "Rejected");
    {
        let got = hook.bodies();
        assert_eq!(got.len(), 1, "one event for the failed step: {got:?}");
        let e: Value = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(e["event"], "RotationFailed");
        assert_eq!(e["secretName"], "app/token");
        assert_eq!(e["step"], "setSecret");
    }
    // The service retries: the rest succeeds; only finishSecret reports success.
    for step in [Step::Set, Step::Test, Step::Finish] {
        function.invoke(&event(step, &arn, &token)).await.unwrap();
    }
    let got = hook.bodies();
    assert_eq!(got.len(), 2, "{got:?}");
    let e: Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(e["event"], "RotationSucceeded");
    assert_eq!(e["versionId"], token.as_str());
    let new_value = aws.value(&arn, "AWSCURRENT").await;
    let new_password = new_value["password"].as_str().unwrap();
    for b in &got {
        assert!(
            !b.contains(SENTINEL) && !b.contains(new_password),
            "secret in payload: {b}"
        );
    }
}
