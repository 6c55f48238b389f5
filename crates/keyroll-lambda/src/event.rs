//! The events the function is invoked with: the four rotation steps Secrets Manager sends,
//! and keyroll's daily report (sent by an EventBridge schedule).

use keyroll_core::Step;
use serde::{Deserialize, Serialize};

/// One step of a rotation, as Secrets Manager sends it:
///
/// ```json
/// {"Step": "createSecret", "SecretId": "arn:aws:secretsmanager:…", "ClientRequestToken": "…",
///  "RotationToken": "…"}
/// ```
///
/// `RotationToken` is sent by Secrets Manager when it invokes the function; when present it
/// is passed on to `PutSecretValue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationEvent {
    #[serde(rename = "Step")]
    pub step: Step,
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub client_request_token: String,
    #[serde(
        rename = "RotationToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rotation_token: Option<String>,
}

/// Why an event could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(
        "the event is not a JSON object; expected {{\"Step\", \"SecretId\", \"ClientRequestToken\"}}"
    )]
    NotAnObject,
    #[error("the event has no {0} string")]
    Missing(&'static str),
    #[error(
        "Invalid step parameter {0:?} for secret rotation; expected createSecret, setSecret, \
         testSecret or finishSecret"
    )]
    UnknownStep(String),
    #[error(
        "unknown keyroll event {0:?}; the only one is {{\"keyroll\": \"report\", \"secretIds\": [...]}}"
    )]
    UnknownKeyrollEvent(String),
    #[error("secretIds must be a non-empty array of secret ARNs or names")]
    BadSecretIds,
    #[error(
        "the report names {0} secrets; at most {max} per event (split them over several schedule targets)",
        max = MAX_REPORT_SECRETS
    )]
    TooManySecrets(usize),
    #[error("maxAgeDays must be a whole number of days from 1 to 3650")]
    BadMaxAge,
}

/// The daily report: an EventBridge scheduled rule invokes the same function with this
/// constant input (the rule target's `Input`):
///
/// ```json
/// {"keyroll": "report", "secretIds": ["arn:aws:secretsmanager:…:secret:prod/db-AbCdEf"],
///  "maxAgeDays": 35}
/// ```
///
/// For each secret the function reads `DescribeSecret` and emits `DaysSinceLastRotation`,
/// `RotationOverdue` and `RotationPending` (see [`crate::metrics`]). `maxAgeDays` is optional:
/// without it a secret is overdue only when Secrets Manager's `NextRotationDate` has passed by
/// more than a day (the longest rotation window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEvent {
    pub secret_ids: Vec<String>,
    pub max_age_days: Option<u32>,
}

/// The most secrets one report event may name (each is one `DescribeSecret` within the
/// invocation's time limit).
pub const MAX_REPORT_SECRETS: usize = 500;

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Step(RotationEvent),
    Report(ReportEvent),
}

impl Invocation {
    /// A report when the object has a `keyroll` member, a rotation step otherwise.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, EventError> {
        if v.get("keyroll").is_some() {
            ReportEvent::from_json(v).map(Invocation::Report)
        } else {
            RotationEvent::from_json(v).map(Invocation::Step)
        }
    }
}

impl ReportEvent {
    /// Reads `{"keyroll": "report", "secretIds": [...], "maxAgeDays": N}`.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, EventError> {
        let o = v.as_object().ok_or(EventError::NotAnObject)?;
        match o.get("keyroll").and_then(|k| k.as_str()) {
            Some("report") => {}
            other => {
                return Err(EventError::UnknownKeyrollEvent(
                    other.unwrap_or("").chars().take(40).collect(),
                ));
            }
        }
        let ids = o
            .get("secretIds")
            .and_then(|x| x.as_array())
            .ok_or(EventError::Missing("secretIds array"))?;
        let mut secret_ids = Vec::with_capacity(ids.len());
        for id in ids {
            match id.as_str() {
                Some(s) if !s.is_empty() => secret_ids.push(s.to_string()),
                _ => return Err(EventError::BadSecretIds),
            }
        }
        if secret_ids.is_empty() {
            return Err(EventError::BadSecretIds);
        }
        if secret_ids.len() > MAX_REPORT_SECRETS {
            return Err(EventError::TooManySecrets(secret_ids.len()));
        }
        let max_age_days = match o.get("maxAgeDays") {
            None | Some(serde_json::Value::Null) => None,
            Some(n) => Some(
                n.as_u64()
                    .filter(|d| (1..=3650).contains(d))
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or(EventError::BadMaxAge)?,
            ),
        };
        Ok(ReportEvent {
            secret_ids,
            max_age_days,
        })
    }
}

impl RotationEvent {
    /// Reads an event, with an error that names the field at fault (AWS's template raises
    /// `ValueError("Invalid step parameter")` for an unknown step; so does this, with the
    /// list of valid ones). Never quotes anything but the `Step` value.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, EventError> {
        let o = v.as_object().ok_or(EventError::NotAnObject)?;
        let field = |name: &'static str| {
            o.get(name)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or(EventError::Missing(name))
        };
        let step_name = field("Step")?;
        let step = Step::parse(&step_name).ok_or_else(|| {
            // Bound what is echoed back: an event is not a secret, but keep errors short.
            EventError::UnknownStep(step_name.chars().take(40).collect())
        })?;
        Ok(RotationEvent {
            step,
            secret_id: field("SecretId")?,
            client_request_token: field("ClientRequestToken")?,
            rotation_token: o
                .get("RotationToken")
                .and_then(|x| x.as_str())
                .map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_service_event() {
        let e = RotationEvent::from_json(&json!({
            "Step": "setSecret", "SecretId": "arn:x", "ClientRequestToken": "t",
            "RotationToken": "r"
        }))
        .unwrap();
        assert_eq!(e.step, Step::Set);
        assert_eq!(e.rotation_token.as_deref(), Some("r"));
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["Step"], "setSecret");
        assert_eq!(back["ClientRequestToken"], "t");
    }

    #[test]
    fn rotation_token_is_optional() {
        let e = RotationEvent::from_json(
            &json!({"Step": "finishSecret", "SecretId": "s", "ClientRequestToken": "t"}),
        )
        .unwrap();
        assert_eq!(e.rotation_token, None);
    }

    #[test]
    fn bad_events_are_named() {
        let err = RotationEvent::from_json(
            &json!({"Step": "dropSecret", "SecretId": "s", "ClientRequestToken": "t"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("dropSecret"), "{err}");
        let err =
            RotationEvent::from_json(&json!({"Step": "setSecret", "SecretId": "s"})).unwrap_err();
        assert!(err.to_string().contains("ClientRequestToken"), "{err}");
        assert!(matches!(
            RotationEvent::from_json(&json!([1])),
            Err(EventError::NotAnObject)
        ));
    }

    #[test]
    fn report_events_are_recognised() {
        let i = Invocation::from_json(&json!({
            "keyroll": "report", "secretIds": ["arn:a", "b"], "maxAgeDays": 35
        }))
        .unwrap();
        assert_eq!(
            i,
            Invocation::Report(ReportEvent {
                secret_ids: vec!["arn:a".into(), "b".into()],
                max_age_days: Some(35),
            })
        );
        let i = Invocation::from_json(&json!({"keyroll": "report", "secretIds": ["a"]})).unwrap();
        assert!(matches!(
            i,
            Invocation::Report(ReportEvent {
                max_age_days: None,
                ..
            })
        ));
        let i = Invocation::from_json(
            &json!({"Step": "testSecret", "SecretId": "s", "ClientRequestToken": "t"}),
        )
        .unwrap();
        assert!(matches!(i, Invocation::Step(_)));
    }

    #[test]
    fn bad_report_events_say_what_to_fix() {
        for (event, needle) in [
            (json!({"keyroll": "rotate", "secretIds": ["a"]}), "rotate"),
            (json!({"keyroll": "report"}), "secretIds"),
            (json!({"keyroll": "report", "secretIds": []}), "non-empty"),
            (json!({"keyroll": "report", "secretIds": [1]}), "non-empty"),
            (
                json!({"keyroll": "report", "secretIds": ["a"], "maxAgeDays": 0}),
                "maxAgeDays",
            ),
            (
                json!({"keyroll": "report", "secretIds": ["a"], "maxAgeDays": "30"}),
                "maxAgeDays",
            ),
        ] {
            let e = Invocation::from_json(&event).unwrap_err();
            assert!(e.to_string().contains(needle), "{event}: {e}");
        }
        let many: Vec<String> = (0..=MAX_REPORT_SECRETS).map(|i| format!("s{i}")).collect();
        let e =
            Invocation::from_json(&json!({"keyroll": "report", "secretIds": many})).unwrap_err();
        assert!(matches!(e, EventError::TooManySecrets(501)), "{e}");
    }
}
