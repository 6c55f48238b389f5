//! What a notification says: a rotation succeeded or failed (built from a secret's
//! description and what the driver knows about the run — never from a secret value, so no
//! payload can carry one), or a break-glass role was assumed (built from the session's
//! principal, role and tags — never from its credentials).

use keyroll_core::api::DescribeSecretResponse;
use keyroll_core::model::{RotationState, Step};
use keyroll_core::time::Timestamp;
use serde::{Serialize, Serializer};

use crate::routing::Routing;

/// Longest error message a notification carries (characters); longer ones are cut.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// The events keyroll notifies about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    RotationSucceeded,
    RotationFailed,
    /// `keyroll serve`'s STS issued a session of a role configured with `notify = true`.
    BreakGlassAssumed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RotationSucceeded => "RotationSucceeded",
            EventKind::RotationFailed => "RotationFailed",
            EventKind::BreakGlassAssumed => "BreakGlassAssumed",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rotation outcome. Serialized (camelCase, RFC 3339 times) as the generic webhook
/// payload and the SNS message; the e-mail and Slack renderings show the same fields.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationEvent {
    pub event: EventKind,
    /// Empty (and left out of the payload) for [`EventKind::BreakGlassAssumed`].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret_arn: String,
    /// The region from the ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The version being rotated to (`ClientRequestToken`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The step that failed.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "step_name")]
    pub step: Option<Step>,
    /// A stable error class (`AuthenticationFailed`, `TestFailed`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    /// What went wrong, as keyroll wrote it (never a secret value), cut to
    /// [`MAX_MESSAGE_CHARS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    pub finished_at: Timestamp,
    /// When the secret rotates next, if it is on a schedule.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt"
    )]
    pub next_rotation: Option<Timestamp>,
    /// Attempt number for this version (a resumed rotation counts again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Who ran the rotation: `keyroll rotate`, `keyroll serve`, `keyroll-lambda`, ...
    pub source: String,
    /// The secret's `keyroll:notify*` tags, read when the event was built.
    #[serde(skip)]
    pub routing: Routing,
    /// What a [`EventKind::BreakGlassAssumed`] event is about (its fields appear at the top
    /// level of the payload).
    #[serde(flatten)]
    pub break_glass: Option<BreakGlass>,
}

/// A break-glass role assumption: who, which role, why, from where, until when. Never a
/// key, secret or session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlass {
    /// The ARN of the user (or session) that assumed the role.
    pub principal_arn: String,
    pub role_name: String,
    pub role_arn: String,
    pub session_name: String,
    /// The session's `Justification` tag.
    pub justification: String,
    pub source_ip: String,
    /// Whether the assumption was MFA-authenticated.
    pub mfa: bool,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: Timestamp,
}

fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn rfc3339_opt<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339()),
        None => s.serialize_none(),
    }
}

fn step_name<S: Serializer>(step: &Option<Step>, s: S) -> Result<S::Ok, S::Error> {
    match step {
        Some(step) => s.serialize_str(step.as_str()),
        None => s.serialize_none(),
    }
}

/// The region of an ARN (`arn:aws:secretsmanager:REGION:...`).
pub fn arn_region(arn: &str) -> Option<String> {
    let region = arn.split(':').nth(3)?;
    (!region.is_empty()).then(|| region.to_string())
}

fn cut(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_string();
    }
    let mut s: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    s.push('…');
    s
}

impl RotationEvent {
    fn base(kind: EventKind, secret: &DescribeSecretResponse, started: Timestamp) -> Self {
        RotationEvent {
            event: kind,
            secret_name: secret.name.clone(),
            secret_arn: secret.arn.clone(),
            region: arn_region(&secret.arn),
            version_id: None,
            step: None,
            error_class: None,
            error_message: None,
            started_at: started,
            finished_at: started,
            next_rotation: secret.next_rotation_date,
            attempt: None,
            source: "keyroll".into(),
            routing: Routing::from_secret(secret),
            break_glass: None,
        }
    }

    /// A break-glass role assumption at `at`, sent to the default channels.
    pub fn break_glass_assumed(details: BreakGlass, at: Timestamp) -> Self {
        RotationEvent {
            event: EventKind::BreakGlassAssumed,
            secret_name: String::new(),
            secret_arn: String::new(),
            region: None,
            version_id: None,
            step: None,
            error_class: None,
            error_message: None,
            started_at: at,
            finished_at: at,
            next_rotation: None,
            attempt: None,
            source: "keyroll serve".into(),
            routing: Routing::default(),
            break_glass: Some(details),
        }
    }

    /// A successful rotation to `version_id` of `secret` (describe the secret after the
    /// rotation, so that its next rotation date is the new one).
    pub fn succeeded(
        secret: &DescribeSecretResponse,
        version_id: impl Into<String>,
        started: Timestamp,
        finished: Timestamp,
    ) -> Self {
        let mut e = Self::base(EventKind::RotationSucceeded, secret, started);
        e.version_id = Some(version_id.into());
        e.finished_at = finished;
        e
    }

    /// A failed rotation. `error_message` must be keyroll's own message (the engine's errors
    /// never carry a secret value); it is cut to [`MAX_MESSAGE_CHARS`].
    #[allow(clippy::too_many_arguments)]
    pub fn failed(
        secret: &DescribeSecretResponse,
        version_id: Option<String>,
        step: Option<Step>,
        error_class: &str,
        error_message: &str,
        started: Timestamp,
        finished: Timestamp,
    ) -> Self {
        let mut e = Self::base(EventKind::RotationFailed, secret, started);
        e.version_id = version_id;
        e.step = step;
        e.error_class = Some(error_class.to_string());
        e.error_message = Some(cut(error_message));
        e.finished_at = finished;
        e
    }

    /// The event for the rotation outcome keyroll recorded on the secret
    /// (`KeyrollRotationStatus`, as `DescribeSecret` shows it): `None` while a rotation is in
    /// progress or when none was recorded. What the embedded store's drivers (CLI, server)
    /// use after a rotation.
    pub fn from_rotation_status(secret: &DescribeSecretResponse) -> Option<Self> {
        let status = secret.keyroll_rotation_status.as_ref()?;
        let finished = status.ended.unwrap_or(status.started);
        let mut e = match status.state {
            RotationState::InProgress => return None,
            RotationState::Succeeded => {
                Self::succeeded(secret, status.version_id.clone(), status.started, finished)
            }
            RotationState::Failed => Self::failed(
                secret,
                Some(status.version_id.clone()),
                status.failed_step,
                status.error_type.as_deref().unwrap_or("RotationFailed"),
                status.message.as_deref().unwrap_or("the rotation failed"),
                status.started,
                finished,
            ),
        };
        if status.attempts > 0 {
            e.attempt = Some(status.attempts);
        }
        Some(e)
    }

    /// Names the driver that ran the rotation.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    pub fn is_failure(&self) -> bool {
        self.event == EventKind::RotationFailed
    }

    /// The event as the generic JSON payload.
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing plain strings, numbers and options cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A one-line summary: `Rotation failed: prod/db at setSecret (AuthenticationFailed)`.
    pub fn summary(&self) -> String {
        match self.event {
            EventKind::RotationSucceeded => format!("Rotation succeeded: {}", self.secret_name),
            EventKind::RotationFailed => {
                let mut s = format!("Rotation failed: {}", self.secret_name);
                if let Some(step) = self.step {
                    s.push_str(&format!(" at {step}"));
                }
                if let Some(c) = &self.error_class {
                    s.push_str(&format!(" ({c})"));
                }
                s
            }
            EventKind::BreakGlassAssumed => match &self.break_glass {
                Some(b) => format!(
                    "Break-glass role {} assumed by {}",
                    b.role_name, b.principal_arn
                ),
                None => "Break-glass role assumed".to_string(),
            },
        }
    }

    /// The fields shown to people (e-mail body, Slack attachment), in order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        if let Some(b) = &self.break_glass {
            return vec![
                ("Event", self.event.to_string()),
                ("Role", b.role_arn.clone()),
                ("Principal", b.principal_arn.clone()),
                ("Session", b.session_name.clone()),
                ("Justification", b.justification.clone()),
                ("Source IP", b.source_ip.clone()),
                ("MFA", if b.mfa { "yes" } else { "no" }.to_string()),
                ("Assumed", self.started_at.to_rfc3339()),
                ("Expires", b.expires_at.to_rfc3339()),
                ("Source", self.source.clone()),
            ];
        }
        let mut f = vec![
            ("Event", self.event.to_string()),
            ("Secret", self.secret_name.clone()),
            ("ARN", self.secret_arn.clone()),
        ];
        if let Some(v) = &self.version_id {
            f.push(("Version", v.clone()));
        }
        if let Some(s) = self.step {
            f.push(("Failed step", s.to_string()));
        }
        if let Some(c) = &self.error_class {
            f.push(("Error class", c.clone()));
        }
        if let Some(m) = &self.error_message {
            f.push(("Error", m.clone()));
        }
        f.push(("Started", self.started_at.to_rfc3339()));
        f.push(("Finished", self.finished_at.to_rfc3339()));
        if let Some(n) = self.next_rotation {
            f.push(("Next rotation", n.to_rfc3339()));
        }
        if let Some(a) = self.attempt {
            f.push(("Attempt", a.to_string()));
        }
        f.push(("Source", self.source.clone()));
        f
    }
}
