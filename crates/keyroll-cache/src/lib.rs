//! keyroll-cache: a secrets cache for applications, and database connection helpers that keep
//! working through credential rotation.
//!
//! [`SecretCache`] sits in front of any [`SecretSource`] (aws-sdk-secretsmanager with feature
//! `aws-sdk`, the Secrets Manager Agent's HTTP API with `agent-http`, or your own) and adds a
//! TTL, a size bound, single flight (concurrent misses for one secret make one upstream call),
//! refresh ahead of expiry, an optional stale-if-error window, invalidation by name or ARN, and
//! counters ([`CacheMetrics`]). It depends on no other keyroll crate.

pub mod cache;
pub mod clock;
pub mod metrics;
pub mod source;

pub use cache::{CacheConfig, CacheError, SecretCache};
pub use clock::{Clock, ManualClock, SystemClock};
pub use metrics::{CacheMetrics, LatencyHistogram};
pub use source::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretEntry, SecretPayload, SecretSource, SourceError,
    VersionSelector,
};
pub mod testing;

#[cfg(feature = "agent-http")]
pub mod agent_http;
#[cfg(feature = "aws-sdk")]
pub mod aws;

#[cfg(feature = "agent-http")]
pub use agent_http::AgentHttpSource;
#[cfg(feature = "aws-sdk")]
pub use aws::AwsSdkSource;
