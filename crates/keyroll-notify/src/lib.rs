//! # keyroll-notify
//!
//! Rotation events — [`EventKind::RotationSucceeded`] and [`EventKind::RotationFailed`] — and
//! break-glass role assumptions ([`EventKind::BreakGlassAssumed`], from `keyroll serve`'s STS) —
//! to SNS topics, e-mail over SMTP and webhooks (generic JSON or Slack-compatible). An event
//! carries the secret's name and ARN, the version, the failed step, the error class and
//! message, times and the next rotation date: never a secret value (events are built from
//! a secret's *description*, which has none).
//!
//! Drivers wire it in a few lines:
//!
//! ```no_run
//! # async fn demo(desc: keyroll_core::api::DescribeSecretResponse) -> Result<(), keyroll_notify::NotifyConfigError> {
//! use keyroll_notify::{Notifier, RotationEvent};
//! let notifier = Notifier::from_env()?; // or Notifier::from_config(&config.notify)?
//! // after a rotation, with the secret described again:
//! if let Some(event) = RotationEvent::from_rotation_status(&desc) {
//!     notifier.notify(&event.with_source("keyroll serve")).await; // never fails
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`event`]: [`RotationEvent`] and its constructors.
//! - [`config`]: [`NotifyConfig`] (`[notify]` in `keyroll.toml`, `KEYROLL_NOTIFY_*`
//!   environment variables).
//! - [`routing`]: per-secret tags (`keyroll:notify`, `keyroll:notify-events`,
//!   `keyroll:notify-email`, `keyroll:notify-sns-topic`) and event filters.
//! - [`notifier`]: [`Notifier`] — selection, concurrent delivery, bounded retries with
//!   backoff (injectable [`Sleeper`]), logs.
//! - [`observer`]: [`NotifyingObserver`] — the engine observer every orchestrating driver
//!   (`keyroll rotate`, `keyroll serve`) wraps its own in, so that one code path turns a
//!   rotation's outcome into an event.
//! - [`metrics`]: per-channel counters and their Prometheus rendering.
//! - [`format`]: the payloads (JSON, Slack, e-mail, SNS).
//! - `webhook`, `email`, `sns` (feature `sns`): the channels.

pub mod channel;
pub mod config;
mod email;
pub mod event;
pub mod format;
pub mod metrics;
pub mod notifier;
pub mod observer;
pub mod routing;
#[cfg(feature = "sns")]
mod sns;
#[cfg(feature = "sns")]
pub use sns::https_client as aws_https_client;
mod webhook;

pub use channel::DeliveryError;
pub use config::{
    EmailConfig, NotifyConfig, NotifyConfigError, RetryConfig, SmtpSecurity, SnsConfig,
    WebhookConfig, WebhookFormat,
};
pub use event::{BreakGlass, EventKind, RotationEvent};
pub use keyroll_core::time::{Sleeper, TokioSleeper};
pub use metrics::{ChannelCounters, ChannelStats, NotifyMetrics};
pub use notifier::{DeliveryReport, Notifier};
pub use observer::NotifyingObserver;
pub use routing::{EventFilter, Routing, TagAllowList};
