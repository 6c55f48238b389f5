//! The daily report event against moto (Secrets Manager): one EMF document per secret with
//! `DaysSinceLastRotation`, `RotationOverdue` and `RotationPending` under the `SecretName`
//! dimension, ages measured with an injected clock; and the EMF of a rotation carries the
//! `SecretName` dimension too.

mod common;

use std::sync::{Arc, Mutex};

use common::{Aws, event};
use keyroll_core::Step;
use keyroll_core::time::{ManualClock, Timestamp};
use keyroll_lambda::{Function, Settings};
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

fn docs(lines: &Mutex<Vec<String>>) -> Vec<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).expect("EMF lines are JSON"))
        .collect()
}

fn declares(doc: &Value, dimension_set: Value, metric: &str) -> bool {
    let decl = &doc["_aws"]["CloudWatchMetrics"][0];
    decl["Dimensions"]
        .as_array()
        .is_some_and(|sets| sets.contains(&dimension_set))
        && decl["Metrics"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["Name"] == metric))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_report_emits_ages_per_secret_name() {
    let aws = Aws::start();
    let fresh = aws
        .create_secret("app/fresh", &json!({"password": "Sentinel-Report-1"}))
        .await;
    let stuck = aws
        .create_secret("app/stuck", &json!({"password": "Sentinel-Report-2"}))
        .await;
    let rotated = aws
        .create_secret("app/rotated", &json!({"password": "Sentinel-Report-3"}))
        .await;
    let created = aws
        .client
        .describe_secret()
        .secret_id(&fresh)
        .send()
        .await
        .unwrap()
        .created_date()
        .unwrap()
        .to_millis()
        .unwrap();

    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let clock = ManualClock::new(Timestamp(created));
    let function = Function::with_store(Settings::default(), aws.store())
        .with_metrics_sink(move |l| sink.lock().unwrap().push(l))
        .with_clock(clock.clone());

    // A rotation that completes (its EMF names the secret), one left with AWSPENDING.
    let token = aws.rotate_secret(&rotated).await;
    for step in Step::ALL {
        function
            .invoke(&event(step, &rotated, &token))
            .await
            .unwrap();
    }
    aws.complete(&rotated, &token).await;
    let steps = docs(&lines);
    assert_eq!(steps.len(), 4);
    for d in &steps {
        assert_eq!(d["SecretName"], "app/rotated", "{d}");
        assert!(declares(d, json!(["SecretName"]), "RotationFailed"), "{d}");
        assert!(declares(d, json!(["SecretName", "Step"]), "StepDuration"));
    }
    assert_eq!(steps[3]["RotationSucceeded"], 1);
    lines.lock().unwrap().clear();
    aws.rotate_secret(&stuck).await;

    // Forty days later, the report with a 35-day maximum age.
    clock.set(Timestamp(created + 40 * DAY_MS));
    let answer = function
        .invoke(&json!({
            "keyroll": "report",
            "secretIds": [fresh, stuck, "app/rotated"],
            "maxAgeDays": 35,
        }))
        .await
        .unwrap();
    let docs = docs(&lines);
    assert_eq!(docs.len(), 3, "one document per secret");
    let by_name = |n: &str| {
        docs.iter()
            .find(|d| d["SecretName"] == n)
            .unwrap_or_else(|| panic!("no document for {n}: {docs:?}"))
            .clone()
    };
    for d in &docs {
        assert!(declares(d, json!(["SecretName"]), "DaysSinceLastRotation"));
        assert!(declares(d, json!(["SecretName"]), "RotationOverdue"));
        assert_eq!(d["_aws"]["Timestamp"], created + 40 * DAY_MS);
    }
    let f = by_name("app/fresh");
    let days = f["DaysSinceLastRotation"].as_f64().unwrap();
    assert!((days - 40.0).abs() < 0.01, "{days}");
    assert_eq!(f["RotationOverdue"], 1, "older than maxAgeDays");
    assert_eq!(f["RotationPending"], 0);
    assert_eq!(f["SecretId"], fresh);
    let s = by_name("app/stuck");
    assert_eq!(s["RotationPending"], 1, "AWSPENDING without AWSCURRENT");
    let r = by_name("app/rotated");
    assert_eq!(r["RotationPending"], 0);
    assert!(r["LastRotatedDate"].is_string(), "{r}");
    assert_eq!(answer["secrets"].as_array().unwrap().len(), 3);
    assert_eq!(answer["pending"], 1);
    let everything = lines.lock().unwrap().join("\n");
    for n in 1..=3 {
        assert!(!everything.contains(&format!("Sentinel-Report-{n}")));
    }

    // A secret that cannot be described fails the invocation, after the others were emitted.
    lines.lock().unwrap().clear();
    let e = function
        .invoke(&json!({"keyroll": "report", "secretIds": ["app/fresh", "no/such/secret"]}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "ReportIncomplete");
    assert!(e.message.contains("no/such/secret"), "{e}");
    assert!(e.message.contains("DescribeSecret"), "{e}");
    assert_eq!(lines.lock().unwrap().len(), 1);

    // A malformed report event is an InvalidEvent, like a malformed step.
    let e = function
        .invoke(&json!({"keyroll": "report", "secretIds": []}))
        .await
        .unwrap_err();
    assert_eq!(e.error_type, "InvalidEvent");
}
