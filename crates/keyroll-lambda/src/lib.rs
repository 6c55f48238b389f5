//! # keyroll-lambda
//!
//! keyroll's rotation engine as an AWS Lambda rotation function: a drop-in for AWS's
//! `SecretsManagerRDS*Rotation*` Python functions, run by Secrets Manager with the four step
//! events, on the `provided.al2023` runtime (the binary is `bootstrap`).
//!
//! # Layout
//!
//! - [`event`]: the event Secrets Manager sends ([`RotationEvent`]: `Step`, `SecretId`,
//!   `ClientRequestToken`, optional `RotationToken`), and the daily report's
//!   ([`ReportEvent`]: `{"keyroll": "report", "secretIds": [...], "maxAgeDays": N}`, sent by
//!   an EventBridge schedule).
//! - [`settings`]: the function's environment variables, named like AWS's functions
//!   (`SECRETS_MANAGER_ENDPOINT`, `PASSWORD_LENGTH`, `EXCLUDE_CHARACTERS`, ...).
//! - [`store`]: the Secrets Manager view one event works through: `RotationToken` passed on
//!   to `PutSecretValue`, passwords drawn locally with the function's settings, one
//!   `DescribeSecret` per event and values cached by version across a warm container's
//!   events (8 Secrets Manager calls per single-user rotation at most).
//! - [`target`]: the target, picked from the secret's `engine` when a step first needs it.
//! - [`metrics`]: CloudWatch Embedded Metric Format records (outcome, duration per step, by
//!   `Step` and by `SecretName`; the report's `DaysSinceLastRotation`, `RotationOverdue`,
//!   `RotationPending` by `SecretName`).
//! - [`report`]: the daily report's view of one secret's description (age, overdue, pending).
//! - [`memory`]: dropping the executable's clean pages after start-up (the relocation table,
//!   set-up code), so a warm container's resident peak is its events'.
//! - [`function`]: [`Function::invoke`], what `bootstrap` runs for each event; errors become
//!   Lambda diagnostics whose `errorType` is the stable error class.
//!
//! The entry validation is [`keyroll_core::engine::run_step`]'s, which is that of AWS's
//! rotation-function template: rotation enabled; the token is a version of the secret; a
//! token already `AWSCURRENT` means there is nothing to do; otherwise it must be `AWSPENDING`.
//!
//! No secret value is ever written to a log line, an error, a metric or a panic message.

pub mod event;
pub mod function;
pub mod memory;
pub mod metrics;
pub mod report;
pub mod settings;
pub mod store;
pub mod target;

pub use event::{Invocation, ReportEvent, RotationEvent};
pub use function::{Function, InvokeError};
pub use settings::{PasswordSettings, Settings, SettingsError};
pub use store::ValueCache;
