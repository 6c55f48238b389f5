//! CloudWatch Embedded Metric Format: one JSON line per event on stdout, which Lambda sends
//! to CloudWatch Logs and CloudWatch turns into metrics — no API call, no extra permission.
//!
//! Metrics (namespace `keyroll` unless `KEYROLL_METRICS_NAMESPACE` says otherwise).
//!
//! Each rotation step ([`emf_line`]) is published under three dimension sets, `[Step]`,
//! `[SecretName]` and `[SecretName, Step]` — per-step alarms over all secrets, and per-secret
//! alarms (`SecretName` is the secret's name: the event's ARN without its `-XXXXXX` suffix):
//!
//! - `StepDuration` (milliseconds), `StepSucceeded` / `StepFailed` (count);
//! - `RotationSucceeded` (count, 1 when `finishSecret` succeeds) and `RotationFailed` (count,
//!   1 when any step fails) — alarm on `RotationFailed`.
//!
//! The daily report ([`report_line`], one document per secret) is published under
//! `[SecretName]`:
//!
//! - `DaysSinceLastRotation` (days, fractional): since `LastRotatedDate`, or `CreatedDate` for
//!   a secret never rotated — alarm on it above the rotation interval;
//! - `RotationOverdue` (count, 1 when overdue), `RotationPending` (count, 1 when a version
//!   holds `AWSPENDING` without `AWSCURRENT`: a rotation running or stopped by a failure).
//!
//! Properties (searchable in Logs Insights, not metrics): `SecretId` (the ARN or name the
//! event named), `ClientRequestToken`, `ErrorType` (the stable error class), `Target`; for the
//! report `LastRotatedDate`, `NextRotationDate` and `RotationEnabled`. Nothing else: no
//! value, no message text.

use std::time::Duration;

use keyroll_core::Step;
use serde_json::json;

/// What one event did.
#[derive(Debug, Clone)]
pub struct StepRecord<'a> {
    pub step: Step,
    pub secret_id: &'a str,
    /// The `SecretName` dimension ([`secret_name`]).
    pub secret_name: &'a str,
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
                "Dimensions": [["Step"], ["SecretName"], ["SecretName", "Step"]],
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
        "SecretName": r.secret_name,
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

/// The `SecretName` dimension of a `SecretId`: the name inside a full ARN (without the
/// `-XXXXXX` suffix Secrets Manager appends), or the id itself when it is a name. Secrets
/// Manager always invokes a rotation function with the full ARN.
pub fn secret_name(secret_id: &str) -> String {
    keyroll_core::ids::name_from_arn(secret_id).unwrap_or_else(|| secret_id.to_string())
}

/// What the daily report found for one secret.
#[derive(Debug, Clone)]
pub struct AgeRecord<'a> {
    pub secret_name: &'a str,
    pub secret_id: &'a str,
    pub days_since_last_rotation: f64,
    pub overdue: bool,
    pub pending: bool,
    pub rotation_enabled: bool,
    /// RFC 3339, when the secret was ever rotated.
    pub last_rotated: Option<String>,
    /// RFC 3339, when Secrets Manager has a next rotation scheduled.
    pub next_rotation: Option<String>,
}

/// The EMF document of one secret in the daily report, as one line of JSON.
pub fn report_line(namespace: &str, timestamp_ms: i64, r: &AgeRecord<'_>) -> String {
    let doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["SecretName"]],
                "Metrics": [
                    {"Name": "DaysSinceLastRotation", "Unit": "None"},
                    {"Name": "RotationOverdue", "Unit": "Count"},
                    {"Name": "RotationPending", "Unit": "Count"},
                ],
            }],
        },
        "SecretName": r.secret_name,
        "DaysSinceLastRotation": (r.days_since_last_rotation * 1e3).round() / 1e3,
        "RotationOverdue": u8::from(r.overdue),
        "RotationPending": u8::from(r.pending),
        "SecretId": r.secret_id,
        "RotationEnabled": r.rotation_enabled,
        "LastRotatedDate": r.last_rotated,
        "NextRotationDate": r.next_rotation,
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
                secret_name: "db",
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
        // Every dimension of every set is a member too, and SecretName is one of them.
        let sets = decl["Dimensions"].as_array().unwrap();
        for set in sets {
            for d in set.as_array().unwrap() {
                assert!(v.get(d.as_str().unwrap()).is_some(), "{d} missing");
            }
        }
        assert!(sets.contains(&json!(["SecretName"])));
        assert!(sets.contains(&json!(["SecretName", "Step"])));
        assert!(sets.contains(&json!(["Step"])));
        assert_eq!(v["SecretName"], "db");
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
                secret_name: "s",
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

    #[test]
    fn secret_names_drop_the_arn_suffix() {
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"),
            "prod/db"
        );
        assert_eq!(secret_name("prod/db"), "prod/db");
    }

    #[test]
    fn report_documents_are_per_secret() {
        let line = report_line(
            "keyroll",
            5,
            &AgeRecord {
                secret_name: "prod/db",
                secret_id: "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf",
                days_since_last_rotation: 31.123_456,
                overdue: true,
                pending: false,
                rotation_enabled: true,
                last_rotated: Some("2026-11-06T00:00:00Z".into()),
                next_rotation: None,
            },
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let decl = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Dimensions"], json!([["SecretName"]]));
        for m in decl["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(v[name].is_number(), "{name} missing");
        }
        assert_eq!(v["SecretName"], "prod/db");
        assert_eq!(v["DaysSinceLastRotation"], 31.123);
        assert_eq!(v["RotationOverdue"], 1);
        assert_eq!(v["RotationPending"], 0);
        assert_eq!(v["NextRotationDate"], serde_json::Value::Null);
    }
}
