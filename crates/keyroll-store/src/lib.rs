//! # keyroll-store
//!
//! Where keyroll keeps secrets. Every store is a [`keyroll_core::service::Backend`]: the
//! Secrets Manager semantics live once in [`keyroll_core::service::SecretsService`], and a
//! store only persists records and sealed values.
//!
//! # Layout
//!
//! - [`embedded`]: a SQLite file in a data directory (WAL, `synchronous=FULL`), values under
//!   envelope encryption (XChaCha20-Poly1305, a data key per secret wrapped by a master key),
//!   reads from an in-memory index kept coherent with other processes. See `docs/STORE.md`.
//! - [`aws`] (feature `aws`): AWS Secrets Manager through the AWS SDK, for the Lambda
//!   rotation function and `keyroll --store aws`.

#[cfg(feature = "aws")]
pub mod aws;
pub mod embedded;
