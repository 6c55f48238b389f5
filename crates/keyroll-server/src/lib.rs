//! # keyroll-server
//!
//! `keyroll serve`: a Secrets Manager-compatible server that the unmodified aws CLI, boto3 and
//! every AWS SDK can use through `--endpoint-url`, with SigV4 authentication, built-in
//! rotation and a rotation scheduler.
//!
//! # Layout
//!
//! - [`server`]: the [`server::App`] (store, keys, config, metrics, rotations), the bounded
//!   HTTP/1.1 accept loop, `/health`, `/metrics`, graceful shutdown.
//! - [`sigv4`]: Signature Version 4 verification (and a signer for tools and tests).
//! - [`audit`]: the audit trail's records of requests, rotations, starts and stops.
//! - [`authz`]: IAM-style authorization of every call (actions, resources, condition keys,
//!   AWS's denial messages) over [`keyroll_policy`].
//! - [`identity`]: principals (IAM users, role sessions) and their policies.
//! - [`dispatch`]: the 23 operations of AWS JSON 1.1 onto a region's `SecretsService`,
//!   replication, the replica guard.
//! - [`feed`]: the change feed (`GET /keyroll/changes`), published on every commit.
//! - [`rotation`]: `RotateSecret`, built-in and external rotation functions, running rotations.
//! - [`scheduler`]: rotation on schedule, windows, retries with backoff, the purge job.
//! - [`regions`]: regions as separate namespaces over any store ([`regions::Regions`]).
//! - [`sts`]: STS on the same endpoint (`GetCallerIdentity`, `GetSessionToken`, `AssumeRole`),
//!   temporary credentials, TOTP MFA, break-glass notifications.
//! - [`credentials`]: access keys and the generated admin key file.
//! - [`config`]: the configuration file, `keyroll.toml`.
//! - [`launch`]: starting from a data directory (what `keyroll serve` runs).
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`wire`]: error bodies and request ids.
//! - `fuzzing` (feature `fuzzing`, and in tests): invariant checks of the SigV4 parser and
//!   canonicaliser and of every operation's request decoder, for the fuzz targets in `fuzz/`
//!   and the proptests.

pub mod audit;
pub mod authz;
pub mod config;
pub mod credentials;
pub mod dispatch;
pub mod feed;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod identity;
pub mod launch;
pub mod metrics;
pub mod regions;
pub mod rotation;
pub mod scheduler;
pub mod server;
pub mod sigv4;
pub mod sts;
pub mod wire;

pub use config::Config;
pub use regions::{MemoryRegions, Regions};
pub use server::{App, RunningServer, bind, start};
