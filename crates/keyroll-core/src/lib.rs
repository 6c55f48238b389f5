//! # keyroll-core
//!
//! The pure centre of keyroll: AWS Secrets Manager's semantics and the rotation engine,
//! with no network, database or AWS crate.
//!
//! # Layout
//!
//! - [`model`]: a secret's versions and staging labels and every rule about them
//!   (`AWSCURRENT` / `AWSPENDING` / `AWSPREVIOUS`, deprecation, deletion, tags).
//! - [`ids`]: names, ARNs (`…:secret:NAME-XXXXXX`), tokens; look-up by name or full/partial ARN.
//! - [`value`]: secret values in `secrecy` boxes that never print.
//! - [`password`]: `GetRandomPassword` from the OS CSPRNG.
//! - [`api`]: requests and responses shaped like AWS JSON 1.1.
//! - [`service`]: the API implemented once over a persistence [`service::Backend`];
//!   [`memory`] is the in-memory backend; [`listing`] pages `ListSecrets` by keyset cursor.
//! - [`ports`]: the [`ports::SecretsApi`] / [`ports::RotationStore`] and [`ports::Target`] traits.
//! - [`engine`]: [`engine::run_step`] (one step, validated like AWS's template) and
//!   [`engine::rotate`] (the whole rotation, as the service drives it).
//! - [`schedule`]: when a secret rotates next.
//! - [`operations`]: batch reads, resource policies, rotation switches, replication.
//! - [`time`]: timestamps and injectable clocks.
//! - `fuzzing` (feature `fuzzing`, and in tests): invariant checks of the schedule parser for
//!   the fuzz targets in `fuzz/` and the proptests.

pub mod api;
pub mod engine;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ids;
pub mod listing;
pub mod memory;
pub mod model;
pub mod operations;
pub mod password;
pub mod ports;
pub mod rotators;
pub mod schedule;
pub mod service;
pub mod testing;
pub mod time;
pub mod value;

pub use error::SmError;
pub use model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, Step};
pub use value::SecretValue;
