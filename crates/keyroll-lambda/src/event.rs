//! The event Secrets Manager invokes a rotation function with.

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
}
