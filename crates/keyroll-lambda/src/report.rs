//! The daily report: how long ago each secret was rotated, whether it is overdue, whether a
//! rotation is pending — read from `DescribeSecret` only (never a value), so the function's
//! existing permission on its secret is enough.

use keyroll_core::api::DescribeSecretResponse;
use keyroll_core::time::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// What the report says about one secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretAge {
    pub name: String,
    pub arn: String,
    /// Since `LastRotatedDate`, or `CreatedDate` for a secret never rotated.
    pub days_since_last_rotation: f64,
    /// `NextRotationDate` passed by more than a day (the longest rotation window), or older
    /// than the event's `maxAgeDays`.
    pub overdue: bool,
    /// A version holds `AWSPENDING` without `AWSCURRENT`: a rotation is running, or stopped by
    /// a failure (Secrets Manager retries it at the next window).
    pub pending: bool,
    pub rotation_enabled: bool,
    pub last_rotated: Option<Timestamp>,
    pub next_rotation: Option<Timestamp>,
}

/// The report's view of one description at `now`.
pub fn age(desc: &DescribeSecretResponse, now: Timestamp, max_age_days: Option<u32>) -> SecretAge {
    let since = desc.last_rotated_date.unwrap_or(desc.created_date);
    let days = (now.millis() - since.millis()).max(0) as f64 / DAY_MS as f64;
    let rotation_enabled = desc.rotation_enabled.unwrap_or(false);
    let past_schedule = rotation_enabled
        && desc
            .next_rotation_date
            .is_some_and(|next| now.millis() > next.millis().saturating_add(DAY_MS));
    let too_old = max_age_days.is_some_and(|max| days > f64::from(max));
    let pending = desc.version_ids_to_stages.as_ref().is_some_and(|m| {
        m.values().any(|stages| {
            stages.iter().any(|s| s == "AWSPENDING") && !stages.iter().any(|s| s == "AWSCURRENT")
        })
    });
    SecretAge {
        name: desc.name.clone(),
        arn: desc.arn.clone(),
        days_since_last_rotation: days,
        overdue: past_schedule || too_old,
        pending,
        rotation_enabled,
        last_rotated: desc.last_rotated_date,
        next_rotation: desc.next_rotation_date,
    }
}

impl SecretAge {
    /// The invocation's answer for this secret.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "SecretName": self.name,
            "ARN": self.arn,
            "DaysSinceLastRotation": (self.days_since_last_rotation * 1e3).round() / 1e3,
            "Overdue": self.overdue,
            "Pending": self.pending,
            "RotationEnabled": self.rotation_enabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn desc(created: i64, last: Option<i64>, next: Option<i64>) -> DescribeSecretResponse {
        DescribeSecretResponse {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf".into(),
            name: "prod/db".into(),
            created_date: Timestamp(created),
            last_rotated_date: last.map(Timestamp),
            next_rotation_date: next.map(Timestamp),
            rotation_enabled: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn days_count_from_the_last_rotation_or_the_creation() {
        let now = Timestamp(100 * DAY_MS);
        let a = age(&desc(10 * DAY_MS, Some(70 * DAY_MS), None), now, None);
        assert_eq!(a.days_since_last_rotation, 30.0);
        let a = age(&desc(10 * DAY_MS + DAY_MS / 2, None, None), now, None);
        assert_eq!(a.days_since_last_rotation, 89.5);
        assert!(!a.overdue && !a.pending);
        // A clock behind the service's never yields a negative age.
        let a = age(&desc(200 * DAY_MS, None, None), now, None);
        assert_eq!(a.days_since_last_rotation, 0.0);
    }

    #[test]
    fn overdue_past_the_schedule_or_the_maximum_age() {
        let now = Timestamp(100 * DAY_MS);
        // Next rotation today: within its window, not overdue.
        let d = desc(0, Some(70 * DAY_MS), Some(100 * DAY_MS - 1));
        assert!(!age(&d, now, None).overdue);
        // More than a day past it: overdue.
        let d = desc(0, Some(60 * DAY_MS), Some(98 * DAY_MS));
        assert!(age(&d, now, None).overdue);
        // The same with rotation disabled: Secrets Manager will not rotate it; only the
        // maximum age makes it overdue.
        let mut off = d.clone();
        off.rotation_enabled = Some(false);
        assert!(!age(&off, now, None).overdue);
        assert!(age(&off, now, Some(35)).overdue);
        assert!(!age(&off, now, Some(45)).overdue);
    }

    #[test]
    fn a_pending_version_without_current_is_pending() {
        let now = Timestamp(DAY_MS);
        let mut d = desc(0, None, None);
        d.version_ids_to_stages = Some(BTreeMap::from([
            ("v1".to_string(), vec!["AWSCURRENT".to_string()]),
            ("v2".to_string(), vec!["AWSPENDING".to_string()]),
        ]));
        assert!(age(&d, now, None).pending);
        // AWSPENDING on the current version: a finished rotation not yet cleaned up.
        d.version_ids_to_stages = Some(BTreeMap::from([(
            "v1".to_string(),
            vec!["AWSCURRENT".to_string(), "AWSPENDING".to_string()],
        )]));
        assert!(!age(&d, now, None).pending);
    }
}
