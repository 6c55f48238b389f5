//! The [`Notifier`]: sends an event to every channel that takes it, each retried a few
//! times with backoff, and never returns an error — an undeliverable notification is
//! logged and counted, and the rotation it reports on is unaffected.

use std::sync::Arc;

use crate::channel::{Deliver, DeliveryError};
use crate::config::{NotifyConfig, NotifyConfigError, RetryConfig, channel_name};
use crate::event::RotationEvent;
use crate::metrics::NotifyMetrics;
use crate::routing::{ChannelChoice, EventFilter, TagAllowList};
use keyroll_core::time::{Sleeper, TokioSleeper};

struct Channel {
    name: String,
    kind: &'static str,
    events: Option<EventFilter>,
    default: bool,
    sender: Box<dyn Deliver>,
}

struct Inner {
    channels: Vec<Arc<Channel>>,
    /// What secrets' tags may add (`[notify] allow_*`).
    tag_allow: TagAllowList,
    events: EventFilter,
    retry: RetryConfig,
    sleeper: Arc<dyn Sleeper>,
    metrics: Arc<NotifyMetrics>,
    #[cfg(feature = "sns")]
    sns_clients: Arc<crate::sns::SnsClients>,
    /// The endpoint of the first SNS channel, also used for topics named by tags.
    #[cfg(feature = "sns")]
    sns_endpoint: Option<String>,
}

/// Sends rotation events. Cheap to clone (shared channels and counters).
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .inner
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        f.debug_struct("Notifier")
            .field("channels", &names)
            .finish()
    }
}

/// What one [`Notifier::notify`] did, channel by channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Channels that delivered the event.
    pub delivered: Vec<String>,
    /// Channels that gave up, with the last error.
    pub failed: Vec<(String, String)>,
    /// Channels that exist but did not take this event (routing, event filter).
    pub skipped: Vec<String>,
    /// Destinations named by the secret's tags that the allow-lists refused
    /// (`TAG=value`).
    pub refused: Vec<String>,
}

impl Notifier {
    /// A notifier without channels: `notify` does nothing.
    pub fn disabled() -> Self {
        Notifier {
            inner: Arc::new(Inner {
                channels: Vec::new(),
                tag_allow: TagAllowList::default(),
                events: EventFilter::All,
                retry: RetryConfig::default(),
                sleeper: Arc::new(TokioSleeper),
                metrics: Arc::new(NotifyMetrics::default()),
                #[cfg(feature = "sns")]
                sns_clients: Default::default(),
                #[cfg(feature = "sns")]
                sns_endpoint: None,
            }),
        }
    }

    /// Builds the channels of `config` (validated first). Fails only on a configuration
    /// error, which drivers report at start-up; nothing is sent here.
    pub fn from_config(config: &NotifyConfig) -> Result<Self, NotifyConfigError> {
        config.validate()?;
        let mut channels = Vec::new();
        #[cfg(feature = "sns")]
        let sns_clients: Arc<crate::sns::SnsClients> = Default::default();
        for (i, w) in config.webhook.iter().enumerate() {
            let name = channel_name(&w.name, "webhook", i);
            channels.push(Channel {
                sender: Box::new(crate::webhook::Webhook::new(w, &name)?),
                name,
                kind: "webhook",
                events: w.events,
                default: w.default,
            });
        }
        for (i, e) in config.email.iter().enumerate() {
            let name = channel_name(&e.name, "email", i);
            channels.push(Channel {
                sender: Box::new(crate::email::Email::new(e, &name)?),
                name,
                kind: "email",
                events: e.events,
                default: e.default,
            });
        }
        #[cfg(not(feature = "sns"))]
        if let Some(s) = config.sns.first() {
            return Err(NotifyConfigError::SnsUnsupported {
                channel: channel_name(&s.name, "sns", 0),
            });
        }
        #[cfg(feature = "sns")]
        for (i, s) in config.sns.iter().enumerate() {
            let name = channel_name(&s.name, "sns", i);
            let region = s
                .region
                .clone()
                .or_else(|| s.topic_arn.split(':').nth(3).map(str::to_string))
                .unwrap_or_default();
            channels.push(Channel {
                sender: Box::new(crate::sns::Sns {
                    topic_arn: s.topic_arn.clone(),
                    region,
                    endpoint: s.endpoint_url.clone(),
                    timeout: std::time::Duration::from_secs(s.timeout_secs),
                    clients: sns_clients.clone(),
                }),
                name,
                kind: "sns",
                events: s.events,
                default: s.default,
            });
        }
        let metrics = Arc::new(NotifyMetrics::default());
        for c in &channels {
            metrics.register(&c.name, c.kind);
        }
        Ok(Notifier {
            inner: Arc::new(Inner {
                channels: channels.into_iter().map(Arc::new).collect(),
                tag_allow: TagAllowList {
                    sns_topics: config.allow_sns_topics.clone(),
                    email_domains: config.allow_email_domains.clone(),
                },
                events: config.events,
                retry: config.retry,
                sleeper: Arc::new(TokioSleeper),
                metrics,
                #[cfg(feature = "sns")]
                sns_clients,
                #[cfg(feature = "sns")]
                sns_endpoint: config.sns.iter().find_map(|s| s.endpoint_url.clone()),
            }),
        })
    }

    /// The channels of the `KEYROLL_NOTIFY_*` environment variables (what the Lambda
    /// function uses).
    pub fn from_env() -> Result<Self, NotifyConfigError> {
        Self::from_config(&NotifyConfig::default().with_env()?)
    }

    /// Replaces the sleeper between attempts (tests).
    pub fn with_sleeper(self, sleeper: Arc<dyn Sleeper>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.sleeper = sleeper;
                Notifier {
                    inner: Arc::new(inner),
                }
            }
            Err(shared) => {
                // Already cloned: rebuild around the same channels and counters.
                Notifier {
                    inner: Arc::new(Inner {
                        channels: shared.channels.clone(),
                        tag_allow: shared.tag_allow.clone(),
                        events: shared.events,
                        retry: shared.retry,
                        sleeper,
                        metrics: shared.metrics.clone(),
                        #[cfg(feature = "sns")]
                        sns_clients: shared.sns_clients.clone(),
                        #[cfg(feature = "sns")]
                        sns_endpoint: shared.sns_endpoint.clone(),
                    }),
                }
            }
        }
    }

    /// Whether any channel is configured.
    pub fn is_enabled(&self) -> bool {
        !self.inner.channels.is_empty()
    }

    /// The names of the configured channels.
    pub fn channel_names(&self) -> Vec<String> {
        self.inner.channels.iter().map(|c| c.name.clone()).collect()
    }

    /// Delivery counters (for a `/metrics` page: [`NotifyMetrics::render_prometheus`]).
    pub fn metrics(&self) -> &NotifyMetrics {
        &self.inner.metrics
    }

    /// A shared handle on the counters.
    pub fn metrics_handle(&self) -> Arc<NotifyMetrics> {
        self.inner.metrics.clone()
    }

    /// Sends `event` to every channel that takes it, concurrently, each retried with
    /// backoff. Never fails: what could not be delivered is logged (warn per attempt, error
    /// when given up) and counted, and the report says which channels did what.
    pub async fn notify(&self, event: &RotationEvent) -> DeliveryReport {
        let mut report = DeliveryReport::default();
        let (routing, refused) = self.inner.tag_allow.screen(&event.routing);
        let screened;
        let event = if refused.is_empty() {
            event
        } else {
            for r in &refused {
                tracing::warn!(
                    secret = %event.secret_name,
                    destination = %r,
                    "a notification tag names a destination the operator does not allow \
                     ([notify] allow_sns_topics / allow_email_domains); not sent there"
                );
            }
            report.refused = refused;
            screened = RotationEvent {
                routing,
                ..event.clone()
            };
            &screened
        };
        let targets = self.select(event, &mut report);
        if targets.is_empty() {
            return report;
        }
        let event = Arc::new(event.clone());
        let mut set = tokio::task::JoinSet::new();
        for ch in targets {
            let inner = self.inner.clone();
            let event = event.clone();
            set.spawn(async move {
                let r = deliver_with_retries(&inner, &ch, &event).await;
                (ch.name.clone(), r)
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((name, Ok(()))) => report.delivered.push(name),
                Ok((name, Err(e))) => report.failed.push((name, e.to_string())),
                Err(e) => {
                    tracing::error!(error = %e, "a notification task ended abnormally");
                }
            }
        }
        report.delivered.sort();
        report.failed.sort();
        report
    }

    /// [`Self::notify`] in the background (the server's scheduler); the handle may be
    /// dropped.
    pub fn spawn(&self, event: RotationEvent) -> tokio::task::JoinHandle<DeliveryReport> {
        let n = self.clone();
        tokio::spawn(async move { n.notify(&event).await })
    }

    fn select(&self, event: &RotationEvent, report: &mut DeliveryReport) -> Vec<Arc<Channel>> {
        let routing = &event.routing;
        let mut out = Vec::new();
        if routing.channels == ChannelChoice::Nothing {
            report.skipped = self.channel_names();
            return out;
        }
        if let ChannelChoice::Named(names) = &routing.channels {
            for n in names {
                if !self.inner.channels.iter().any(|c| &c.name == n) {
                    tracing::warn!(
                        secret = %event.secret_name,
                        channel = %n,
                        "tag keyroll:notify names a channel that is not configured; ignored"
                    );
                }
            }
        }
        for c in &self.inner.channels {
            let chosen = match &routing.channels {
                ChannelChoice::Defaults => c.default,
                ChannelChoice::Named(names) => names.iter().any(|n| n == &c.name),
                ChannelChoice::Nothing => false,
            };
            let filter = routing.events.or(c.events).unwrap_or(self.inner.events);
            if chosen && filter.admits(event.event) {
                out.push(c.clone());
            } else {
                report.skipped.push(c.name.clone());
            }
        }
        if !routing.extra_email.is_empty() && !out.iter().any(|c| c.kind == "email") {
            tracing::warn!(
                secret = %event.secret_name,
                "tag keyroll:notify-email is set but no e-mail channel takes this event; \
                 configure [[notify.email]]"
            );
        }
        let filter = routing.events.unwrap_or(self.inner.events);
        if !routing.extra_sns_topics.is_empty() && filter.admits(event.event) {
            self.extra_sns(event, &mut out);
        }
        out
    }

    #[cfg(feature = "sns")]
    fn extra_sns(&self, event: &RotationEvent, out: &mut Vec<Arc<Channel>>) {
        for (i, arn) in event.routing.extra_sns_topics.iter().enumerate() {
            let region = arn.split(':').nth(3).unwrap_or_default().to_string();
            let name = format!("tag-sns-{}", i + 1);
            self.inner.metrics.register(&name, "sns");
            out.push(Arc::new(Channel {
                name,
                kind: "sns",
                events: None,
                default: false,
                sender: Box::new(crate::sns::Sns {
                    topic_arn: arn.clone(),
                    region,
                    endpoint: self.inner.sns_endpoint.clone(),
                    timeout: std::time::Duration::from_secs(10),
                    clients: self.inner.sns_clients.clone(),
                }),
            }));
        }
    }

    #[cfg(not(feature = "sns"))]
    fn extra_sns(&self, event: &RotationEvent, _out: &mut Vec<Arc<Channel>>) {
        tracing::warn!(
            secret = %event.secret_name,
            "tag keyroll:notify-sns-topic is set but this build has no SNS support (feature \
             `sns`); ignored"
        );
    }
}

async fn deliver_with_retries(
    inner: &Inner,
    ch: &Channel,
    event: &RotationEvent,
) -> Result<(), DeliveryError> {
    let attempts = inner.retry.attempts.max(1);
    let mut n = 1;
    loop {
        match ch.sender.deliver(event).await {
            Ok(()) => {
                inner.metrics.delivered(&ch.name, ch.kind);
                tracing::info!(
                    channel = %ch.name,
                    kind = ch.kind,
                    target = %ch.sender.target(),
                    secret = %event.secret_name,
                    event = %event.event,
                    attempt = n,
                    "notification delivered"
                );
                return Ok(());
            }
            Err(e) if e.is_permanent() || n >= attempts => {
                inner.metrics.failed(&ch.name, ch.kind);
                tracing::error!(
                    channel = %ch.name,
                    kind = ch.kind,
                    secret = %event.secret_name,
                    event = %event.event,
                    attempts = n,
                    error = %e,
                    "notification could not be delivered; given up (the rotation is not affected)"
                );
                return Err(e);
            }
            Err(e) => {
                let delay = inner.retry.backoff(n);
                tracing::warn!(
                    channel = %ch.name,
                    kind = ch.kind,
                    secret = %event.secret_name,
                    attempt = n,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %e,
                    "notification attempt failed; will retry"
                );
                inner.metrics.retried(&ch.name, ch.kind);
                inner.sleeper.sleep(delay).await;
                n += 1;
            }
        }
    }
}
