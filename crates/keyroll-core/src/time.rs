//! Time as the core sees it: milliseconds since the Unix epoch, from an injectable [`Clock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// On the wire (AWS JSON 1.1) it is epoch *seconds* with a millisecond fraction, e.g.
/// `1700000000.123`, which is how [`Serialize`] writes it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MILLIS_PER_SECOND: i64 = 1_000;
    pub const MILLIS_PER_HOUR: i64 = 3_600_000;
    pub const MILLIS_PER_DAY: i64 = 86_400_000;

    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }
    pub fn plus_days(self, days: i64) -> Self {
        self.plus_millis(days.saturating_mul(Self::MILLIS_PER_DAY))
    }
    /// Midnight UTC of this instant's day (AWS reports `LastAccessedDate` at day precision).
    pub fn floor_day(self) -> Self {
        Timestamp(self.0.div_euclid(Self::MILLIS_PER_DAY) * Self::MILLIS_PER_DAY)
    }
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
    pub fn from_datetime(dt: chrono::DateTime<chrono::Utc>) -> Self {
        Timestamp(dt.timestamp_millis())
    }
    /// RFC 3339 rendering for people (`2026-11-22T10:00:00.000Z`).
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Always a float, so whole seconds still read as `1700000000.0`, like AWS.
        s.serialize_f64(self.secs_f64())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        if !secs.is_finite() {
            return Err(serde::de::Error::custom(
                "timestamp must be a finite number",
            ));
        }
        Ok(Timestamp((secs * 1000.0).round() as i64))
    }
}

/// Waits between retries. Production uses [`TokioSleeper`]; tests inject one that returns at
/// once and records the delays ([`crate::testing::RecordingSleeper`]).
#[async_trait::async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, d: std::time::Duration);
}

/// `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait::async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, d: std::time::Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Where "now" comes from. Production uses [`SystemClock`]; tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
}

/// A clock that only moves when told to: deterministic tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
    pub fn advance_millis(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn advance_days(&self, days: i64) {
        self.advance_millis(days * Timestamp::MILLIS_PER_DAY);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_epoch_seconds_with_millis() {
        let t = Timestamp(1_700_000_000_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000.123");
        let back: Timestamp = serde_json::from_str("1700000000.123").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(5));
        assert_eq!(c.now(), Timestamp(5));
        c.advance_millis(10);
        assert_eq!(c.now(), Timestamp(15));
    }

    #[test]
    fn floor_day() {
        let t = Timestamp(Timestamp::MILLIS_PER_DAY * 3 + 12345);
        assert_eq!(t.floor_day(), Timestamp(Timestamp::MILLIS_PER_DAY * 3));
    }
}
