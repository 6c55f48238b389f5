//! How an event reads on each channel: JSON, a Slack message, an e-mail, an SNS subject.

use serde_json::{Value, json};

use crate::event::{EventKind, RotationEvent};

/// What happens to the secret after this event, for people.
fn consequence(e: &RotationEvent) -> &'static str {
    match e.event {
        EventKind::RotationSucceeded => {
            "The new version is AWSCURRENT; the version it replaced is AWSPREVIOUS."
        }
        EventKind::RotationFailed => {
            "AWSCURRENT is unchanged and still works. AWSPENDING is kept: the next rotation \
             resumes it once the cause is fixed."
        }
        EventKind::BreakGlassAssumed => {
            "Break-glass credentials are live until they expire. Confirm the justification \
             with the principal; see the break-glass runbook in docs/SECURITY.md."
        }
    }
}

/// Slack's escaping for text in messages: `&`, `<` and `>`.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook message: a `text` line and an attachment with the fields.
pub fn slack_payload(e: &RotationEvent) -> Value {
    let (icon, color) = match e.event {
        EventKind::RotationSucceeded => (":white_check_mark:", "#2eb886"),
        EventKind::RotationFailed | EventKind::BreakGlassAssumed => (":rotating_light:", "#d40e0d"),
    };
    let fields: Vec<Value> = e
        .fields()
        .into_iter()
        .filter(|(k, _)| *k != "Event")
        .map(|(k, v)| {
            json!({
                "title": k,
                "value": slack_escape(&v),
                "short": !matches!(k, "ARN" | "Error"),
            })
        })
        .collect();
    json!({
        "text": format!("{icon} {}", slack_escape(&e.summary())),
        "attachments": [{
            "fallback": slack_escape(&e.summary()),
            "color": color,
            "fields": fields,
            "footer": format!("keyroll · {}", slack_escape(consequence(e))),
            "ts": e.finished_at.millis() / 1000,
        }],
    })
}

/// The e-mail subject (without the configured prefix).
pub fn email_subject(e: &RotationEvent) -> String {
    one_line(&e.summary())
}

/// The plain-text e-mail body.
pub fn email_body(e: &RotationEvent) -> String {
    let mut s = String::new();
    s.push_str(&e.summary());
    s.push_str(".\n\n");
    let fields = e.fields();
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in fields {
        s.push_str(&format!("{:<width$} {}\n", format!("{k}:"), one_line(&v)));
    }
    s.push('\n');
    s.push_str(consequence(e));
    s.push_str("\n\n-- \nSent by keyroll. Secret values are never included in notifications.\n");
    s
}

/// An SNS subject: printable ASCII, one line, at most 100 characters.
pub fn sns_subject(e: &RotationEvent) -> String {
    let s: String = format!("keyroll: {}", e.summary())
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.len() <= 100 {
        s
    } else {
        format!("{}...", &s[..97])
    }
}

/// The SNS message: the JSON event for machines (`default`), and the e-mail text for e-mail
/// subscriptions (`MessageStructure=json`).
pub fn sns_message(e: &RotationEvent) -> String {
    json!({
        "default": e.to_json().to_string(),
        "email": email_body(e),
        "email-json": e.to_json().to_string(),
    })
    .to_string()
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Routing;
    use keyroll_core::Step;
    use keyroll_core::time::Timestamp;

    fn event(kind: EventKind) -> RotationEvent {
        RotationEvent {
            event: kind,
            secret_name: "prod/<db>".into(),
            secret_arn: "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db-AbCdEf"
                .into(),
            region: Some("us-east-1".into()),
            version_id: Some("v1".into()),
            step: (kind == EventKind::RotationFailed).then_some(Step::Set),
            error_class: (kind == EventKind::RotationFailed).then(|| "Unreachable".into()),
            error_message: (kind == EventKind::RotationFailed)
                .then(|| "connection refused\nat 127.0.0.1:5432".into()),
            started_at: Timestamp::from_secs(1_700_000_000),
            finished_at: Timestamp::from_secs(1_700_000_003),
            next_rotation: Some(Timestamp::from_secs(1_702_592_000)),
            attempt: Some(2),
            source: "test".into(),
            routing: Routing::default(),
            break_glass: None,
        }
    }

    #[test]
    fn slack_message_escapes_and_colours() {
        let p = slack_payload(&event(EventKind::RotationFailed));
        let text = p["text"].as_str().unwrap();
        assert!(text.contains("Rotation failed: prod/&lt;db&gt; at setSecret (Unreachable)"));
        assert_eq!(p["attachments"][0]["color"], "#d40e0d");
        assert_eq!(p["attachments"][0]["ts"], 1_700_000_003);
        let ok = slack_payload(&event(EventKind::RotationSucceeded));
        assert_eq!(ok["attachments"][0]["color"], "#2eb886");
    }

    #[test]
    fn email_has_every_field_on_one_line_each() {
        let b = email_body(&event(EventKind::RotationFailed));
        assert!(b.contains("Failed step:   setSecret"), "{b}");
        assert!(
            b.contains("Error:         connection refused at 127.0.0.1:5432"),
            "{b}"
        );
        assert!(b.contains("Next rotation: 2023-12-14T22:13:20.000Z"), "{b}");
        assert!(b.contains("AWSCURRENT is unchanged"));
        assert_eq!(
            email_subject(&event(EventKind::RotationSucceeded)),
            "Rotation succeeded: prod/<db>"
        );
    }

    #[test]
    fn sns_subject_is_short_ascii() {
        let mut e = event(EventKind::RotationFailed);
        e.secret_name = format!("é{}", "x".repeat(200));
        let s = sns_subject(&e);
        assert!(s.len() <= 100 && s.is_ascii() && s.starts_with("keyroll: Rotation failed: ?x"));
        let m: Value = serde_json::from_str(&sns_message(&e)).unwrap();
        let default: Value = serde_json::from_str(m["default"].as_str().unwrap()).unwrap();
        assert_eq!(default["event"], "RotationFailed");
        assert_eq!(default["step"], "setSecret");
    }

    #[test]
    fn break_glass_payloads_name_role_principal_and_justification() {
        let e = RotationEvent::break_glass_assumed(
            crate::event::BreakGlass {
                principal_arn: "arn:aws:iam::000000000000:user/alice".into(),
                role_name: "break-glass".into(),
                role_arn: "arn:aws:iam::000000000000:role/break-glass".into(),
                session_name: "incident-42".into(),
                justification: "INC-42 <db down>".into(),
                source_ip: "127.0.0.1".into(),
                mfa: true,
                expires_at: Timestamp::from_secs(1_700_003_600),
            },
            Timestamp::from_secs(1_700_000_000),
        );
        let j = e.to_json();
        assert_eq!(j["event"], "BreakGlassAssumed");
        assert_eq!(j["roleArn"], "arn:aws:iam::000000000000:role/break-glass");
        assert_eq!(j["principalArn"], "arn:aws:iam::000000000000:user/alice");
        assert_eq!(j["justification"], "INC-42 <db down>");
        assert_eq!(j["expiresAt"], "2023-11-14T23:13:20.000Z");
        assert!(j.get("secretName").is_none() && j.get("secretArn").is_none());
        assert_eq!(
            e.summary(),
            "Break-glass role break-glass assumed by arn:aws:iam::000000000000:user/alice"
        );
        let p = slack_payload(&e);
        assert_eq!(p["attachments"][0]["color"], "#d40e0d");
        assert!(p.to_string().contains("INC-42 &lt;db down&gt;"));
        let b = email_body(&e);
        assert!(b.contains("Justification: INC-42 <db down>"), "{b}");
        assert!(b.contains("runbook"), "{b}");
    }
}
