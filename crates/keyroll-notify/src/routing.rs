//! Per-secret routing from tags, and which events a channel takes.
//!
//! | tag | value | effect |
//! | --- | --- | --- |
//! | `keyroll:notify` | `none` (or `off`) | no notification for this secret |
//! | `keyroll:notify` | `ops,security` | only the channels with these names (instead of the channels marked `default`) |
//! | `keyroll:notify-events` | `all`, `failures`, `successes`, `none` | which events, for every channel of this secret |
//! | `keyroll:notify-email` | `owner@example.com,oncall@example.com` | extra recipients on the e-mail channels used (e.g. the key's owner) |
//! | `keyroll:notify-sns-topic` | `arn:aws:sns:REGION:ACCOUNT:topic` (comma-separated) | extra SNS topics (needs the `sns` feature) |
//!
//! A tag that cannot be read is logged and ignored: notifications never fail a rotation.

use keyroll_core::api::DescribeSecretResponse;
use serde::{Deserialize, Serialize};

use crate::event::EventKind;

pub const NOTIFY_TAG: &str = "keyroll:notify";
pub const EVENTS_TAG: &str = "keyroll:notify-events";
pub const EMAIL_TAG: &str = "keyroll:notify-email";
pub const SNS_TOPIC_TAG: &str = "keyroll:notify-sns-topic";

/// Which events go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFilter {
    #[default]
    All,
    Failures,
    Successes,
    None,
}

impl EventFilter {
    /// Break-glass assumptions are alerts: `failures` channels take them too.
    pub fn admits(self, kind: EventKind) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Failures => {
                matches!(
                    kind,
                    EventKind::RotationFailed | EventKind::BreakGlassAssumed
                )
            }
            EventFilter::Successes => kind == EventKind::RotationSucceeded,
            EventFilter::None => false,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "both" => Some(EventFilter::All),
            "failures" | "failure" | "failed" => Some(EventFilter::Failures),
            "successes" | "success" | "succeeded" => Some(EventFilter::Successes),
            "none" | "off" => Some(EventFilter::None),
            _ => None,
        }
    }
}

/// Which channels a secret's events go to, from its tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ChannelChoice {
    /// The channels configured with `default = true` (no `keyroll:notify` tag).
    #[default]
    Defaults,
    /// `keyroll:notify=none`.
    Nothing,
    /// The named channels.
    Named(Vec<String>),
}

/// A secret's notification settings, read from its `keyroll:notify*` tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub channels: ChannelChoice,
    pub events: Option<EventFilter>,
    pub extra_email: Vec<String>,
    pub extra_sns_topics: Vec<String>,
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Routing {
    pub fn from_secret(secret: &DescribeSecretResponse) -> Self {
        Self::from_tags(|k| secret.tag(k), &secret.name)
    }

    /// Reads the tags through `tag` (key → value); `secret` names the secret in warnings.
    pub fn from_tags<'a>(tag: impl Fn(&str) -> Option<&'a str>, secret: &str) -> Self {
        let mut r = Routing::default();
        if let Some(v) = tag(NOTIFY_TAG) {
            let names = list(v);
            r.channels = if names.is_empty()
                || names
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case("none") || n.eq_ignore_ascii_case("off"))
            {
                ChannelChoice::Nothing
            } else {
                ChannelChoice::Named(names)
            };
        }
        if let Some(v) = tag(EVENTS_TAG) {
            match EventFilter::parse(v) {
                Some(f) => r.events = Some(f),
                None => tracing::warn!(
                    secret,
                    value = v,
                    "tag {EVENTS_TAG} must be all, failures, successes or none; ignored"
                ),
            }
        }
        if let Some(v) = tag(EMAIL_TAG) {
            for addr in list(v) {
                if addr.parse::<lettre::message::Mailbox>().is_ok() {
                    r.extra_email.push(addr);
                } else {
                    tracing::warn!(
                        secret,
                        address = %addr,
                        "tag {EMAIL_TAG} holds an address that is not valid; ignored"
                    );
                }
            }
        }
        if let Some(v) = tag(SNS_TOPIC_TAG) {
            for arn in list(v) {
                if arn.starts_with("arn:") && arn.split(':').count() == 6 {
                    r.extra_sns_topics.push(arn);
                } else {
                    tracing::warn!(
                        secret,
                        topic = %arn,
                        "tag {SNS_TOPIC_TAG} holds a value that is not an SNS topic ARN; ignored"
                    );
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn routing(tags: &[(&str, &str)]) -> Routing {
        let m: HashMap<&str, &str> = tags.iter().copied().collect();
        Routing::from_tags(|k| m.get(k).copied(), "s")
    }

    #[test]
    fn reads_every_tag() {
        assert_eq!(routing(&[]), Routing::default());
        assert_eq!(
            routing(&[(NOTIFY_TAG, "none")]).channels,
            ChannelChoice::Nothing
        );
        assert_eq!(
            routing(&[(NOTIFY_TAG, " ")]).channels,
            ChannelChoice::Nothing
        );
        assert_eq!(
            routing(&[(NOTIFY_TAG, "ops, security")]).channels,
            ChannelChoice::Named(vec!["ops".into(), "security".into()])
        );
        assert_eq!(
            routing(&[(EVENTS_TAG, "Failures")]).events,
            Some(EventFilter::Failures)
        );
        assert_eq!(routing(&[(EVENTS_TAG, "sometimes")]).events, None);
        let r = routing(&[
            (EMAIL_TAG, "owner@example.com, not an address"),
            (SNS_TOPIC_TAG, "arn:aws:sns:us-east-1:123456789012:t,nope"),
        ]);
        assert_eq!(r.extra_email, ["owner@example.com"]);
        assert_eq!(r.extra_sns_topics, ["arn:aws:sns:us-east-1:123456789012:t"]);
    }

    #[test]
    fn filters() {
        use EventKind::*;
        assert!(EventFilter::All.admits(RotationFailed));
        assert!(EventFilter::Failures.admits(RotationFailed));
        assert!(!EventFilter::Failures.admits(RotationSucceeded));
        assert!(EventFilter::Successes.admits(RotationSucceeded));
        assert!(!EventFilter::None.admits(RotationFailed));
        assert!(EventFilter::Failures.admits(BreakGlassAssumed));
        assert!(!EventFilter::Successes.admits(BreakGlassAssumed));
        assert!(!EventFilter::None.admits(BreakGlassAssumed));
    }
}
