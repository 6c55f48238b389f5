//! CloudWatch Embedded Metric Format: one JSON line per event on stdout, which Lambda sends
//! to CloudWatch Logs and CloudWatch turns into metrics — no API call, no extra permission.
//!
//! Metrics (namespace `keyroll` unless `KEYROLL_METRICS_NAMESPACE` says otherwise), with the
//! dimension `Step` (`createSecret` … `finishSecret`):
//!
//! - `StepDuration` (milliseconds), `StepSucceeded` / `StepFailed` (count);
//! - `RotationSucceeded` (count, 1 when `finishSecret` succeeds) and `RotationFailed` (count,
//!   1 when any step fails) — alarm on `RotationFailed`.
//!
//! Properties (searchable in Logs Insights, not metrics): `SecretId` (the ARN or name the
//! event named), `ClientRequestToken`, `ErrorType` (the stable error class), `Target`.
//! Nothing else: no value, no message text.

use std::time::Duration;

use keyroll_core::Step;
use serde_json::json;

/// What one event did.
#[derive(Debug, Clone)]
pub struct StepRecord<'a> {
    pub step: Step,
    pub secret_id: &'a str,
    pub token: &'a str,
    pub target: &'a str,
    pub duration: Duration,
    /// The error class when the step failed.
    pub error_type: Option<&'a str>,
}

/// The EMF document for one event, as one line of JSON.
pub fn emf_line(namespace: &str, timestamp_ms: i64, r: &StepRecord<'_>) -> String {
    let failed = r.error_type.is_some();
    let doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Step"]],
                "Metrics": [
                    {"Name": "StepDuration", "Unit": "Milliseconds"},
                    {"Name": "StepSucceeded", "Unit": "Count"},
                    {"Name": "StepFailed", "Unit": "Count"},
                    {"Name": "RotationSucceeded", "Unit": "Count"},
                    {"Name": "RotationFailed", "Unit": "Count"},
                ],
            }],
        },
        "Step": r.step.as_str(),
        "StepDuration": (r.duration.as_secs_f64() * 1e6).round() / 1e3,
        "StepSucceeded": u8::from(!failed),
        "StepFailed": u8::from(failed),
        "RotationSucceeded": u8::from(!failed && r.step == Step::Finish),
        "RotationFailed": u8::from(failed),
        "SecretId": r.secret_id,
        "ClientRequestToken": r.token,
        "Target": r.target,
        "ErrorType": r.error_type.unwrap_or("None"),
    });
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_its_metrics() {
        let line = emf_line(
            "keyroll",
            1_700_000_000_000,
            &StepRecord {
                step: Step::Finish,
                secret_id: "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf",
                token: "t",
                target: "postgres",
                duration: Duration::from_micros(12_345),
                error_type: None,
            },
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let decl = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], "keyroll");
        // Every declared metric and dimension is a member of the document (EMF rule).
        for m in decl["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(v.get(name).is_some(), "{name} missing");
        }
        assert_eq!(v["Step"], "finishSecret");
        assert_eq!(v["StepDuration"], 12.345);
        assert_eq!(v["RotationSucceeded"], 1);
        assert_eq!(v["RotationFailed"], 0);
    }

    #[test]
    fn a_failure_counts_as_failed_rotation() {
        let line = emf_line(
            "ns",
            0,
            &StepRecord {
                step: Step::Set,
                secret_id: "s",
                token: "t",
                target: "mysql",
                duration: Duration::ZERO,
                error_type: Some("AuthenticationFailed"),
            },
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["StepFailed"], 1);
        assert_eq!(v["RotationFailed"], 1);
        assert_eq!(v["RotationSucceeded"], 0);
        assert_eq!(v["ErrorType"], "AuthenticationFailed");
    }
}
