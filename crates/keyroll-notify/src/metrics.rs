//! Counters of notifications per channel, for logs, tests and a server's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counts of one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    /// Events delivered.
    pub delivered: u64,
    /// Events given up after every attempt (or a permanent error).
    pub failed: u64,
    /// Attempts after the first.
    pub retries: u64,
}

/// One channel's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStats {
    pub channel: String,
    /// `webhook`, `email` or `sns`.
    pub kind: &'static str,
    pub counters: ChannelCounters,
}

/// Notification counters, shared by every clone of a [`crate::Notifier`].
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    by_channel: Mutex<BTreeMap<(String, &'static str), ChannelCounters>>,
}

impl NotifyMetrics {
    fn with(&self, channel: &str, kind: &'static str, f: impl FnOnce(&mut ChannelCounters)) {
        let mut m = self.by_channel.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry((channel.to_string(), kind)).or_default());
    }

    pub(crate) fn register(&self, channel: &str, kind: &'static str) {
        self.with(channel, kind, |_| {});
    }
    pub(crate) fn delivered(&self, channel: &str, kind: &'static str) {
        self.with(channel, kind, |c| c.delivered += 1);
    }
    pub(crate) fn failed(&self, channel: &str, kind: &'static str) {
        self.with(channel, kind, |c| c.failed += 1);
    }
    pub(crate) fn retried(&self, channel: &str, kind: &'static str) {
        self.with(channel, kind, |c| c.retries += 1);
    }

    /// Every channel's counters, sorted by channel name.
    pub fn snapshot(&self) -> Vec<ChannelStats> {
        self.by_channel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((channel, kind), c)| ChannelStats {
                channel: channel.clone(),
                kind,
                counters: *c,
            })
            .collect()
    }

    /// The counters of one channel (zero if it never sent anything).
    pub fn channel(&self, name: &str) -> ChannelCounters {
        self.snapshot()
            .into_iter()
            .find(|s| s.channel == name)
            .map(|s| s.counters)
            .unwrap_or_default()
    }

    /// All channels added up.
    pub fn totals(&self) -> ChannelCounters {
        self.snapshot()
            .iter()
            .fold(ChannelCounters::default(), |mut t, s| {
                t.delivered += s.counters.delivered;
                t.failed += s.counters.failed;
                t.retries += s.counters.retries;
                t
            })
    }

    /// The counters in Prometheus' text format, to append to a `/metrics` page:
    /// `keyroll_notifications_total{channel,kind,outcome}` and
    /// `keyroll_notification_retries_total{channel,kind}`. Channel names are restricted to
    /// letters, digits, `-`, `_` and `.`, so labels need no escaping.
    pub fn render_prometheus(&self) -> String {
        let snap = self.snapshot();
        let mut out = String::new();
        out.push_str(
            "# HELP keyroll_notifications_total Rotation notifications by channel and outcome \
             (failed: given up after every attempt).\n# TYPE keyroll_notifications_total counter\n",
        );
        for s in &snap {
            for (outcome, n) in [
                ("delivered", s.counters.delivered),
                ("failed", s.counters.failed),
            ] {
                let _ = writeln!(
                    out,
                    "keyroll_notifications_total{{channel=\"{}\",kind=\"{}\",outcome=\"{outcome}\"}} {n}",
                    s.channel, s.kind
                );
            }
        }
        out.push_str(
            "# HELP keyroll_notification_retries_total Notification attempts after the first.\n\
             # TYPE keyroll_notification_retries_total counter\n",
        );
        for s in &snap {
            let _ = writeln!(
                out,
                "keyroll_notification_retries_total{{channel=\"{}\",kind=\"{}\"}} {}",
                s.channel, s.kind, s.counters.retries
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = NotifyMetrics::default();
        m.register("ops", "webhook");
        m.register("mail", "email");
        m.delivered("ops", "webhook");
        m.retried("ops", "webhook");
        m.failed("mail", "email");
        assert_eq!(
            m.channel("ops"),
            ChannelCounters {
                delivered: 1,
                failed: 0,
                retries: 1
            }
        );
        assert_eq!(m.totals().failed, 1);
        let text = m.render_prometheus();
        assert!(text.contains(
            "keyroll_notifications_total{channel=\"ops\",kind=\"webhook\",outcome=\"delivered\"} 1"
        ));
        assert!(text.contains(
            "keyroll_notifications_total{channel=\"mail\",kind=\"email\",outcome=\"failed\"} 1"
        ));
        assert!(
            text.contains("keyroll_notification_retries_total{channel=\"mail\",kind=\"email\"} 0")
        );
    }
}
