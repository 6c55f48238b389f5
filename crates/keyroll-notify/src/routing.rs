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
//!
//! Tags are written by whoever may tag the secret, so the destinations they add are only
//! used when the operator allows them ([`TagAllowList`]: `[notify] allow_sns_topics` and
//! `allow_email_domains`; nothing by default). Channels the operator configured are always
//! allowed; a tag cannot name a webhook (only channels configured in `[[notify.webhook]]`,
//! by name), so webhook hosts need no list.

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

/// What a secret's tags may add: `[notify] allow_sns_topics` (exact topic ARNs, or a
/// prefix ending in `*`, e.g. `arn:aws:sns:eu-west-1:123456789012:team-*`) and
/// `allow_email_domains` (`example.com` exactly, `*.example.com` for its subdomains).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagAllowList {
    pub sns_topics: Vec<String>,
    pub email_domains: Vec<String>,
}

impl TagAllowList {
    pub fn sns_topic_allowed(&self, arn: &str) -> bool {
        self.sns_topics.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => arn.starts_with(prefix),
            None => p == arn,
        })
    }

    /// Whether the domain of `address` (`a@b.example` or `Name <a@b.example>`) is allowed.
    pub fn email_allowed(&self, address: &str) -> bool {
        let Ok(mb) = address.parse::<lettre::message::Mailbox>() else {
            return false;
        };
        let domain = mb.email.domain().trim_end_matches('.').to_ascii_lowercase();
        self.email_domains.iter().any(|p| {
            let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
            match p.strip_prefix("*.") {
                Some(suffix) => domain
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => domain == p,
            }
        })
    }

    /// `routing` without the destinations this list does not allow, and those refused.
    pub fn screen(&self, routing: &Routing) -> (Routing, Vec<String>) {
        let mut out = routing.clone();
        let mut refused = Vec::new();
        out.extra_email.retain(|a| {
            let ok = self.email_allowed(a);
            if !ok {
                refused.push(format!("{EMAIL_TAG}={a}"));
            }
            ok
        });
        out.extra_sns_topics.retain(|t| {
            let ok = self.sns_topic_allowed(t);
            if !ok {
                refused.push(format!("{SNS_TOPIC_TAG}={t}"));
            }
            ok
        });
        (out, refused)
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
    fn tag_destinations_need_the_operators_allow_list() {
        let r = routing(&[
            (
                EMAIL_TAG,
                "owner@example.com, Ops <ops@team.example.com>, x@evil.test, y@notexample.com",
            ),
            (
                SNS_TOPIC_TAG,
                "arn:aws:sns:us-east-1:123456789012:team-a,arn:aws:sns:us-east-1:999999999999:x",
            ),
        ]);
        let (kept, refused) = TagAllowList::default().screen(&r);
        assert!(kept.extra_email.is_empty() && kept.extra_sns_topics.is_empty());
        assert_eq!(refused.len(), 6);
        let allow = TagAllowList {
            sns_topics: vec!["arn:aws:sns:us-east-1:123456789012:team-*".into()],
            email_domains: vec!["example.com".into(), "*.example.com".into()],
        };
        let (kept, refused) = allow.screen(&r);
        assert_eq!(
            kept.extra_email,
            ["owner@example.com", "Ops <ops@team.example.com>"]
        );
        assert_eq!(
            kept.extra_sns_topics,
            ["arn:aws:sns:us-east-1:123456789012:team-a"]
        );
        assert_eq!(
            refused,
            [
                "keyroll:notify-email=x@evil.test",
                "keyroll:notify-email=y@notexample.com",
                "keyroll:notify-sns-topic=arn:aws:sns:us-east-1:999999999999:x"
            ]
        );
        let only_sub = TagAllowList {
            email_domains: vec!["*.example.com".into()],
            ..Default::default()
        };
        assert!(!only_sub.email_allowed("owner@example.com"));
        assert!(only_sub.email_allowed("a@b.example.com"));
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
