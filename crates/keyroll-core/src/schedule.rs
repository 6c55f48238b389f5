//! When a secret rotates next: `AutomaticallyAfterDays`, `rate(N hours|days)`, AWS's 6-field
//! `cron(...)` (with `?`, `L`, `W` and `#`), and `Duration` rotation windows.
//!
//! # Windows
//!
//! Every schedule produces rotation *windows*: a window opens at a scheduled time and stays
//! open for the rule's `Duration` (`"3h"`), or, without one, for one hour when the schedule is
//! "in hours" (`rate(N hours)`, or a `cron` that fires in several hours of a day) and until the
//! end of the UTC day when it is "in days" (`rate(N days)`, any other `cron`). This is AWS's
//! rule. `AutomaticallyAfterDays` without a `Duration` has no window to miss: once due, the
//! secret rotates at the next opportunity.
//!
//! # The missed-window rule
//!
//! A secret is due when its persisted `NextRotationDate` has passed. If the current time lies
//! in a window (the latest one that opened at or after `NextRotationDate`), the secret rotates
//! now — once, however many windows were missed before. Otherwise (every window since the due
//! date has closed, e.g. the server was down), nothing runs now and the secret waits for the
//! next window: [`due`] returns [`Due::Missed`] with its start. A successful rotation moves
//! `NextRotationDate` past the current window, so a restart inside the same window never
//! rotates again.

use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};

use crate::error::SmError;
use crate::model::RotationRules;
use crate::time::Timestamp;

const MINUTE: i64 = 60_000;
const HOUR: i64 = Timestamp::MILLIS_PER_HOUR;
const DAY: i64 = Timestamp::MILLIS_PER_DAY;
/// The shortest interval between rotations AWS allows.
pub const MIN_INTERVAL_MS: i64 = 4 * HOUR;
/// How far ahead (in days) a cron search looks before giving up.
const CRON_HORIZON_DAYS: i64 = 366 * 8;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `AutomaticallyAfterDays = N`.
    AfterDays(i64),
    /// `rate(N hours)`.
    RateHours(i64),
    /// `rate(N days)`.
    RateDays(i64),
    /// `cron(...)`.
    Cron(Box<Cron>),
}

/// A schedule together with its window length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub schedule: Schedule,
    /// `Duration` in milliseconds, when given.
    pub duration_ms: Option<i64>,
}

fn invalid(msg: impl Into<String>) -> SmError {
    SmError::InvalidParameter(msg.into())
}

impl Rules {
    /// Parses and validates `RotationRules` like `RotateSecret` does.
    pub fn parse(rules: &RotationRules) -> Result<Rules, SmError> {
        rules.validate_basic()?;
        let schedule = match (&rules.schedule_expression, rules.automatically_after_days) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "You can't specify both AutomaticallyAfterDays and ScheduleExpression in \
                     RotationRules.",
                ));
            }
            (Some(expr), None) => parse_expression(expr)?,
            (None, Some(d)) => Schedule::AfterDays(d),
            (None, None) => {
                return Err(invalid(
                    "RotationRules must contain AutomaticallyAfterDays or ScheduleExpression.",
                ));
            }
        };
        let duration_ms = match &rules.duration {
            None => None,
            Some(d) => Some(parse_duration(d)?),
        };
        let r = Rules {
            schedule,
            duration_ms,
        };
        r.check_window()?;
        Ok(r)
    }

    fn check_window(&self) -> Result<(), SmError> {
        let Some(d) = self.duration_ms else {
            return Ok(());
        };
        let interval = match &self.schedule {
            Schedule::AfterDays(n) | Schedule::RateDays(n) => n * DAY,
            Schedule::RateHours(n) => n * HOUR,
            Schedule::Cron(c) => c.min_gap_ms(),
        };
        if d > interval {
            return Err(invalid(format!(
                "The rotation window Duration ({}h) can't be longer than the time between \
                 rotations.",
                d / HOUR
            )));
        }
        if let Schedule::Cron(c) = &self.schedule
            && let Some(last) = c.latest_start_of_day_ms()
            && last + d > DAY
        {
            return Err(invalid(
                "The rotation window can't extend into the next UTC day: shorten Duration or \
                 start the window earlier.",
            ));
        }
        Ok(())
    }

    /// The first window start strictly after `from`.
    pub fn next_after(&self, from: Timestamp) -> Result<Timestamp, SmError> {
        Ok(match &self.schedule {
            Schedule::AfterDays(n) | Schedule::RateDays(n) => from.plus_days(*n),
            Schedule::RateHours(n) => from.plus_millis(n * HOUR),
            Schedule::Cron(c) => c.next_after(from).ok_or_else(|| {
                invalid("The cron expression has no future occurrence within 8 years.")
            })?,
        })
    }

    /// The interval of fixed-period schedules.
    fn period_ms(&self) -> Option<i64> {
        match &self.schedule {
            Schedule::AfterDays(n) | Schedule::RateDays(n) => Some(n * DAY),
            Schedule::RateHours(n) => Some(n * HOUR),
            Schedule::Cron(_) => None,
        }
    }

    /// When the window opening at `start` closes (`None`: it never does).
    pub fn window_end(&self, start: Timestamp) -> Option<Timestamp> {
        let end_of_day = Timestamp(start.floor_day().millis() + DAY);
        match (self.duration_ms, &self.schedule) {
            (Some(d), _) => Some(start.plus_millis(d)),
            (None, Schedule::AfterDays(_)) => None,
            (None, Schedule::RateHours(_)) => Some(start.plus_millis(HOUR)),
            (None, Schedule::RateDays(_)) => Some(end_of_day),
            (None, Schedule::Cron(c)) => {
                if c.hours.count_ones() > 1 {
                    Some(start.plus_millis(HOUR))
                } else {
                    Some(end_of_day)
                }
            }
        }
    }

    /// Whether a secret whose `NextRotationDate` is `next` should rotate at `now`.
    pub fn due(&self, next: Timestamp, now: Timestamp) -> Due {
        if now < next {
            return Due::NotYet;
        }
        let start = match self.period_ms() {
            Some(p) if p > 0 => {
                let k = (now.millis() - next.millis()) / p;
                next.plus_millis(k * p)
            }
            _ => match &self.schedule {
                Schedule::Cron(c) => c.at_or_before(now).filter(|s| *s >= next).unwrap_or(next),
                _ => next,
            },
        };
        match self.window_end(start) {
            None => Due::Now { window_end: None },
            Some(end) if now < end => Due::Now {
                window_end: Some(end),
            },
            Some(_) => {
                let upcoming = self
                    .next_after(start)
                    .unwrap_or_else(|_| now.plus_days(1))
                    .max(now.plus_millis(1));
                Due::Missed {
                    next_window: upcoming,
                }
            }
        }
    }
}

/// The scheduler's verdict on one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// `NextRotationDate` has not come yet.
    NotYet,
    /// Rotate now; the current window closes at `window_end` (never, for
    /// `AutomaticallyAfterDays` without `Duration`).
    Now { window_end: Option<Timestamp> },
    /// Every window since the due date has closed: wait for the one opening at `next_window`.
    Missed { next_window: Timestamp },
}

/// Validates rules as `RotateSecret` does (all of AWS's checks, including the expression).
pub fn validate(rules: &RotationRules) -> Result<(), SmError> {
    Rules::parse(rules).map(|_| ())
}

/// The next rotation after a rotation (or the enabling of rotation) at `from`.
pub fn next_rotation(rules: &RotationRules, from: Timestamp) -> Result<Option<Timestamp>, SmError> {
    let r = Rules::parse(rules)?;
    Ok(Some(r.next_after(from)?))
}

/// Parses `Duration`: `"Nh"` with N in 1–24.
pub fn parse_duration(d: &str) -> Result<i64, SmError> {
    let err = || {
        invalid(format!(
            "Invalid Duration {d:?}: use a number of hours from 1 to 24 followed by h, e.g. 3h."
        ))
    };
    let n: i64 = d
        .strip_suffix('h')
        .ok_or_else(err)?
        .parse()
        .map_err(|_| err())?;
    if !(1..=24).contains(&n) {
        return Err(err());
    }
    Ok(n * HOUR)
}

fn parse_expression(expr: &str) -> Result<Schedule, SmError> {
    let e = expr.trim();
    if let Some(body) = e.strip_prefix("rate(").and_then(|b| b.strip_suffix(')')) {
        return parse_rate(body.trim(), expr);
    }
    if let Some(body) = e.strip_prefix("cron(").and_then(|b| b.strip_suffix(')')) {
        let c = Cron::parse(body)?;
        if c.min_gap_ms() < MIN_INTERVAL_MS {
            return Err(invalid(format!(
                "The schedule expression {expr} rotates more often than every four hours, which \
                 Secrets Manager does not allow."
            )));
        }
        return Ok(Schedule::Cron(Box::new(c)));
    }
    Err(invalid(format!(
        "Invalid ScheduleExpression {expr:?}: use rate(N hours), rate(N days) or cron(minutes \
         hours day-of-month month day-of-week year)."
    )))
}

fn parse_rate(body: &str, expr: &str) -> Result<Schedule, SmError> {
    let mut parts = body.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid(format!(
            "Invalid rate expression {expr:?}: use rate(N hours) or rate(N days)."
        )));
    };
    let n: i64 = n.parse().map_err(|_| {
        invalid(format!(
            "Invalid rate expression {expr:?}: {n} is not a number."
        ))
    })?;
    match unit {
        "hour" | "hours" => {
            if n < 4 {
                return Err(invalid(format!(
                    "The schedule expression {expr} rotates more often than every four hours, \
                     which Secrets Manager does not allow."
                )));
            }
            if n > 1000 * 24 {
                return Err(invalid("rate() in hours can be at most 24000 hours."));
            }
            Ok(Schedule::RateHours(n))
        }
        "day" | "days" => {
            if !(1..=1000).contains(&n) {
                return Err(invalid("rate() in days must be within 1-1000 days."));
            }
            Ok(Schedule::RateDays(n))
        }
        u => Err(invalid(format!(
            "Invalid rate expression {expr:?}: unit {u} must be hours or days."
        ))),
    }
}

// ---- cron ------------------------------------------------------------------------------------

/// A day-of-month item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DomItem {
    Days(u32),
    /// `L` or `L-n`: the last day of the month minus n.
    Last(u32),
    /// `nW`: the weekday nearest to day n, within the month.
    NearestWeekday(u32),
    /// `LW`: the last weekday of the month.
    LastWeekday,
}

/// A day-of-week item (1 = Sunday ... 7 = Saturday).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DowItem {
    Days(u8),
    /// `nL`: the last such weekday of the month.
    Last(u32),
    /// `d#k`: the k-th such weekday of the month.
    Nth(u32, u32),
}

/// AWS's 6-field cron: minutes, hours, day-of-month, month, day-of-week, year (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// `None` for `?`.
    dom: Option<Vec<DomItem>>,
    months: u16,
    /// `None` for `?`.
    dow: Option<Vec<DowItem>>,
    /// Allowed years 1970..=2199 as offsets; `None` for `*`.
    years: Option<Vec<bool>>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const YEAR_MIN: i32 = 1970;
const YEAR_MAX: i32 = 2199;

fn cron_err(field: &str, item: &str) -> SmError {
    invalid(format!(
        "Invalid cron expression: {item:?} is not a valid value for the {field} field."
    ))
}

/// Parses `a`, `a-b`, `*`, with an optional `/step`, into the values it covers.
fn parse_range(
    item: &str,
    field: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    name_base: u32,
) -> Result<Vec<u32>, SmError> {
    let value = |s: &str| -> Result<u32, SmError> {
        let up = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == up) {
            return Ok(i as u32 + name_base);
        }
        let v: u32 = s.parse().map_err(|_| cron_err(field, item))?;
        if v < lo || v > hi {
            return Err(cron_err(field, item));
        }
        Ok(v)
    };
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => {
            let s: u32 = s.parse().map_err(|_| cron_err(field, item))?;
            if s == 0 {
                return Err(cron_err(field, item));
            }
            (r, s)
        }
        None => (item, 1),
    };
    let (a, b) = if range == "*" {
        (lo, hi)
    } else if let Some((a, b)) = range.split_once('-') {
        (value(a)?, value(b)?)
    } else {
        let a = value(range)?;
        // `a/step` runs to the end of the field.
        (a, if item.contains('/') { hi } else { a })
    };
    if a > b {
        return Err(cron_err(field, item));
    }
    Ok((a..=b).step_by(step as usize).collect())
}

impl Cron {
    /// Parses the body of `cron(...)`.
    pub fn parse(body: &str) -> Result<Cron, SmError> {
        let f: Vec<&str> = body.split_whitespace().collect();
        if f.len() != 6 {
            return Err(invalid(format!(
                "Invalid cron expression {body:?}: it needs 6 fields (minutes hours day-of-month \
                 month day-of-week year), got {}.",
                f.len()
            )));
        }
        let mut minutes = 0u64;
        for item in f[0].split(',') {
            for v in parse_range(item, "minutes", 0, 59, &[], 0)? {
                minutes |= 1 << v;
            }
        }
        let mut hours = 0u32;
        for item in f[1].split(',') {
            for v in parse_range(item, "hours", 0, 23, &[], 0)? {
                hours |= 1 << v;
            }
        }
        let mut months = 0u16;
        for item in f[3].split(',') {
            for v in parse_range(item, "month", 1, 12, &MONTHS, 1)? {
                months |= 1 << v;
            }
        }
        let dom = if f[2] == "?" {
            None
        } else {
            let mut items = Vec::new();
            for item in f[2].split(',') {
                let up = item.to_ascii_uppercase();
                if up == "L" {
                    items.push(DomItem::Last(0));
                } else if up == "LW" {
                    items.push(DomItem::LastWeekday);
                } else if let Some(n) = up.strip_prefix("L-") {
                    let n: u32 = n.parse().map_err(|_| cron_err("day-of-month", item))?;
                    if n > 30 {
                        return Err(cron_err("day-of-month", item));
                    }
                    items.push(DomItem::Last(n));
                } else if let Some(n) = up.strip_suffix('W') {
                    let n: u32 = n.parse().map_err(|_| cron_err("day-of-month", item))?;
                    if !(1..=31).contains(&n) {
                        return Err(cron_err("day-of-month", item));
                    }
                    items.push(DomItem::NearestWeekday(n));
                } else {
                    let mut bits = 0u32;
                    for v in parse_range(item, "day-of-month", 1, 31, &[], 0)? {
                        bits |= 1 << v;
                    }
                    items.push(DomItem::Days(bits));
                }
            }
            Some(items)
        };
        let dow = if f[4] == "?" {
            None
        } else {
            let mut items = Vec::new();
            for item in f[4].split(',') {
                let up = item.to_ascii_uppercase();
                let day = |s: &str| -> Result<u32, SmError> {
                    let v = parse_range(s, "day-of-week", 1, 7, &WEEKDAYS, 1)?;
                    match v.as_slice() {
                        [d] => Ok(*d),
                        _ => Err(cron_err("day-of-week", item)),
                    }
                };
                if let Some((d, k)) = up.split_once('#') {
                    let k: u32 = k.parse().map_err(|_| cron_err("day-of-week", item))?;
                    if !(1..=5).contains(&k) {
                        return Err(cron_err("day-of-week", item));
                    }
                    items.push(DowItem::Nth(day(d)?, k));
                } else if up.len() > 1
                    && let Some(d) = up.strip_suffix('L')
                {
                    items.push(DowItem::Last(day(d)?));
                } else if up == "L" {
                    items.push(DowItem::Last(7));
                } else {
                    let mut bits = 0u8;
                    for v in parse_range(item, "day-of-week", 1, 7, &WEEKDAYS, 1)? {
                        bits |= 1 << v;
                    }
                    items.push(DowItem::Days(bits));
                }
            }
            Some(items)
        };
        match (&dom, &dow) {
            (None, None) => {
                return Err(invalid(
                    "Invalid cron expression: day-of-month and day-of-week can't both be ?.",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "Invalid cron expression: you can't specify both day-of-month and \
                     day-of-week; use ? in one of them.",
                ));
            }
            _ => {}
        }
        let years = if f[5] == "*" {
            None
        } else {
            let mut allowed = vec![false; (YEAR_MAX - YEAR_MIN + 1) as usize];
            for item in f[5].split(',') {
                for v in parse_range(item, "year", YEAR_MIN as u32, YEAR_MAX as u32, &[], 0)? {
                    allowed[(v as i32 - YEAR_MIN) as usize] = true;
                }
            }
            Some(allowed)
        };
        Ok(Cron {
            minutes,
            hours,
            dom,
            months,
            dow,
            years,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if let Some(y) = &self.years {
            let i = d.year() - YEAR_MIN;
            if i < 0 || i as usize >= y.len() || !y[i as usize] {
                return false;
            }
        }
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let last = last_day_of_month(d);
        if let Some(items) = &self.dom {
            let day = d.day();
            let hit = items.iter().any(|it| match it {
                DomItem::Days(bits) => bits & (1 << day) != 0,
                DomItem::Last(n) => last.day().checked_sub(*n).is_some_and(|x| x == day),
                DomItem::NearestWeekday(n) => nearest_weekday(d, *n) == Some(day),
                DomItem::LastWeekday => nearest_weekday(d, last.day()) == Some(day),
            });
            if !hit {
                return false;
            }
        }
        if let Some(items) = &self.dow {
            let wd = d.weekday().number_from_sunday();
            let hit = items.iter().any(|it| match it {
                DowItem::Days(bits) => bits & (1 << wd) != 0,
                DowItem::Last(w) => *w == wd && d.day() + 7 > last.day(),
                DowItem::Nth(w, k) => *w == wd && (d.day() - 1) / 7 + 1 == *k,
            });
            if !hit {
                return false;
            }
        }
        true
    }

    fn times_of_day(&self) -> impl DoubleEndedIterator<Item = i64> + '_ {
        (0..24u32)
            .filter(move |h| self.hours & (1 << h) != 0)
            .flat_map(move |h| {
                (0..60u32)
                    .filter(move |m| self.minutes & (1 << m) != 0)
                    .map(move |m| h as i64 * HOUR + m as i64 * MINUTE)
            })
    }

    /// The latest start (ms into the day) of a firing, for the window check.
    fn latest_start_of_day_ms(&self) -> Option<i64> {
        self.times_of_day().next_back()
    }

    /// The first firing strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let day0 = t.floor_day();
        for i in 0..CRON_HORIZON_DAYS {
            let day = day0.plus_days(i);
            let date = day.to_datetime().date_naive();
            if date.year() > YEAR_MAX {
                return None;
            }
            if !self.day_matches(date) {
                continue;
            }
            if let Some(ms) = self
                .times_of_day()
                .find(|ms| day.millis() + ms > t.millis())
            {
                return Some(day.plus_millis(ms));
            }
        }
        None
    }

    /// The latest firing at or before `t`.
    pub fn at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let day0 = t.floor_day();
        for i in 0..CRON_HORIZON_DAYS {
            let day = day0.plus_days(-i);
            let date = day.to_datetime().date_naive();
            if date.year() < YEAR_MIN {
                return None;
            }
            if !self.day_matches(date) {
                continue;
            }
            if let Some(ms) = self
                .times_of_day()
                .rev()
                .find(|ms| day.millis() + ms <= t.millis())
            {
                return Some(day.plus_millis(ms));
            }
        }
        None
    }

    /// The shortest gap between two firings, looking at the next two years of them.
    pub fn min_gap_ms(&self) -> i64 {
        if self.minutes.count_ones() > 1 {
            return self
                .times_of_day()
                .collect::<Vec<_>>()
                .windows(2)
                .map(|w| w[1] - w[0])
                .min()
                .unwrap_or(HOUR);
        }
        let start = Timestamp::from_datetime(
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        );
        let mut min = i64::MAX;
        let mut prev: Option<Timestamp> = None;
        let mut t = start.plus_millis(-1);
        // Two years of firings is enough to see every month and weekday combination once.
        for _ in 0..(2 * 366 * 24) {
            let Some(n) = self.next_after(t) else { break };
            if n.millis() - start.millis() > 2 * 366 * DAY {
                break;
            }
            if let Some(p) = prev {
                min = min.min(n.millis() - p.millis());
            }
            prev = Some(n);
            t = n;
        }
        min
    }
}

fn last_day_of_month(d: NaiveDate) -> NaiveDate {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|x| x.pred_opt())
        .unwrap_or(d)
}

/// The day of `d`'s month that is the weekday nearest to day `n` (never leaving the month).
fn nearest_weekday(d: NaiveDate, n: u32) -> Option<u32> {
    let last = last_day_of_month(d).day();
    let n = n.min(last);
    let target = d.with_day(n)?;
    Some(match target.weekday() {
        Weekday::Sat => {
            if n == 1 {
                3
            } else {
                n - 1
            }
        }
        Weekday::Sun => {
            if n == last {
                n - 2
            } else {
                n + 1
            }
        }
        _ => n,
    })
}

/// `2026-11-22T10:00:00Z` → a [`Timestamp`] (for tests and docs).
pub fn ts(rfc3339: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| Timestamp::from_datetime(d.with_timezone(&Utc)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(expr: &str, duration: Option<&str>) -> RotationRules {
        RotationRules {
            automatically_after_days: None,
            duration: duration.map(str::to_string),
            schedule_expression: Some(expr.to_string()),
        }
    }

    fn parsed(expr: &str, duration: Option<&str>) -> Rules {
        Rules::parse(&rules(expr, duration)).unwrap()
    }

    fn next(expr: &str, from: &str) -> String {
        parsed(expr, None)
            .next_after(ts(from))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn after_days_adds_days() {
        let r = RotationRules {
            automatically_after_days: Some(30),
            ..Default::default()
        };
        let n = next_rotation(&r, ts("2026-01-01T10:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(n, ts("2026-01-31T10:00:00Z"));
        let bad = RotationRules {
            automatically_after_days: Some(0),
            ..Default::default()
        };
        assert!(validate(&bad).is_err());
        let both = RotationRules {
            automatically_after_days: Some(3),
            schedule_expression: Some("rate(4 hours)".into()),
            ..Default::default()
        };
        assert!(validate(&both).is_err());
    }

    #[test]
    fn rate_expressions() {
        assert_eq!(
            next("rate(4 hours)", "2026-01-01T10:00:00Z"),
            "2026-01-01T14:00:00.000Z"
        );
        assert_eq!(
            next("rate(10 days)", "2026-01-01T10:00:00Z"),
            "2026-01-11T10:00:00.000Z"
        );
        assert_eq!(
            next("rate(1 day)", "2026-01-01T10:00:00Z"),
            "2026-01-02T10:00:00.000Z"
        );
        for bad in [
            "rate(3 hours)",
            "rate(0 days)",
            "rate(1001 days)",
            "rate(5 minutes)",
            "rate(x days)",
            "rate(4)",
        ] {
            assert!(validate(&rules(bad, None)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_basic_fields() {
        assert_eq!(
            next("cron(0 16 1,15 * ? *)", "2026-01-01T10:00:00Z"),
            "2026-01-01T16:00:00.000Z"
        );
        assert_eq!(
            next("cron(0 16 1,15 * ? *)", "2026-01-01T16:00:00Z"),
            "2026-01-15T16:00:00.000Z"
        );
        // Every Sunday at 12:00 (1 = SUN).
        assert_eq!(
            next("cron(0 12 ? * SUN *)", "2026-11-22T12:00:00Z"),
            "2026-11-29T12:00:00.000Z"
        );
        assert_eq!(
            next("cron(0 12 ? * 1 *)", "2026-11-21T00:00:00Z"),
            "2026-11-22T12:00:00.000Z"
        );
        // Every 6 hours.
        assert_eq!(
            next("cron(0 */6 * * ? *)", "2026-01-01T06:30:00Z"),
            "2026-01-01T12:00:00.000Z"
        );
        assert_eq!(
            next("cron(0 0/8 * * ? *)", "2026-01-01T17:00:00Z"),
            "2026-01-02T00:00:00.000Z"
        );
        // Month names and ranges; a year.
        assert_eq!(
            next("cron(30 4 1 JAN-MAR ? 2027)", "2026-05-01T00:00:00Z"),
            "2027-01-01T04:30:00.000Z"
        );
    }

    #[test]
    fn cron_special_characters() {
        // L: last day of the month (February 2028 is a leap month).
        assert_eq!(
            next("cron(0 1 L * ? *)", "2028-02-01T00:00:00Z"),
            "2028-02-29T01:00:00.000Z"
        );
        assert_eq!(
            next("cron(0 1 L-2 * ? *)", "2026-04-01T00:00:00Z"),
            "2026-04-28T01:00:00.000Z"
        );
        // W: nearest weekday to the 15th; 2026-08-15 is a Saturday → Friday 14th.
        assert_eq!(
            next("cron(0 9 15W * ? *)", "2026-08-01T00:00:00Z"),
            "2026-08-14T09:00:00.000Z"
        );
        // 1W when the 1st is a Saturday → Monday the 3rd (2026-08-01 is a Saturday).
        assert_eq!(
            next("cron(0 9 1W * ? *)", "2026-07-31T00:00:00Z"),
            "2026-08-03T09:00:00.000Z"
        );
        // LW: last weekday; 2026-05-31 is a Sunday → Friday 29th.
        assert_eq!(
            next("cron(0 9 LW * ? *)", "2026-05-01T00:00:00Z"),
            "2026-05-29T09:00:00.000Z"
        );
        // #: the first Monday (2) of the month.
        assert_eq!(
            next("cron(0 10 ? * 2#1 *)", "2026-11-03T00:00:00Z"),
            "2026-12-07T10:00:00.000Z"
        );
        // nL: the last Friday (6) of the month.
        assert_eq!(
            next("cron(0 10 ? * 6L *)", "2026-11-01T00:00:00Z"),
            "2026-11-27T10:00:00.000Z"
        );
        assert_eq!(
            next("cron(0 10 ? * FRIL *)", "2026-11-01T00:00:00Z"),
            "2026-11-27T10:00:00.000Z"
        );
    }

    #[test]
    fn cron_rejections() {
        for bad in [
            "cron(0 10 * * * *)",
            "cron(0 10 ? * ? *)",
            "cron(0 10 * *)",
            "cron(61 10 * * ? *)",
            "cron(0 24 * * ? *)",
            "cron(0 10 32 * ? *)",
            "cron(0 10 ? * 8 *)",
            "cron(0 10 ? * 2#6 *)",
            "cron(0 */2 * * ? *)",
            "cron(0,30 10 * * ? *)",
            "cron(0 10 * * ? 1960)",
            "daily",
        ] {
            assert!(validate(&rules(bad, None)).is_err(), "{bad}");
        }
        assert!(validate(&rules("cron(0 */4 * * ? *)", None)).is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3h").unwrap(), 3 * HOUR);
        for bad in ["0h", "25h", "3", "h", "3m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // The window must not run past midnight UTC.
        assert!(validate(&rules("cron(0 22 * * ? *)", Some("3h"))).is_err());
        assert!(validate(&rules("cron(0 20 * * ? *)", Some("3h"))).is_ok());
        // Nor into the next window.
        assert!(validate(&rules("rate(4 hours)", Some("5h"))).is_err());
    }

    #[test]
    fn windows_and_the_missed_window_rule() {
        // Daily at 10:00 for 2 hours.
        let r = parsed("cron(0 10 * * ? *)", Some("2h"));
        let due = ts("2026-03-01T10:00:00Z");
        assert_eq!(r.due(due, ts("2026-03-01T09:59:00Z")), Due::NotYet);
        assert_eq!(
            r.due(due, ts("2026-03-01T11:00:00Z")),
            Due::Now {
                window_end: Some(ts("2026-03-01T12:00:00Z"))
            }
        );
        // Down from 09:00 to 13:00: the window was missed; wait for tomorrow's.
        assert_eq!(
            r.due(due, ts("2026-03-01T13:00:00Z")),
            Due::Missed {
                next_window: ts("2026-03-02T10:00:00Z")
            }
        );
        // Down for three days, back inside a window: rotate now, once.
        assert_eq!(
            r.due(due, ts("2026-03-04T10:30:00Z")),
            Due::Now {
                window_end: Some(ts("2026-03-04T12:00:00Z"))
            }
        );
        // Without a Duration, a cron in days keeps its window open until midnight UTC.
        let r = parsed("cron(0 10 * * ? *)", None);
        assert_eq!(
            r.due(due, ts("2026-03-01T23:00:00Z")),
            Due::Now {
                window_end: Some(ts("2026-03-02T00:00:00Z"))
            }
        );
        // A cron in hours closes after one hour.
        let r = parsed("cron(0 0/6 * * ? *)", None);
        let due = ts("2026-03-01T06:00:00Z");
        assert!(matches!(
            r.due(due, ts("2026-03-01T06:59:00Z")),
            Due::Now { .. }
        ));
        assert_eq!(
            r.due(due, ts("2026-03-01T07:00:00Z")),
            Due::Missed {
                next_window: ts("2026-03-01T12:00:00Z")
            }
        );
    }

    #[test]
    fn rate_windows() {
        let r = parsed("rate(6 hours)", None);
        let due = ts("2026-03-01T03:00:00Z");
        assert!(matches!(
            r.due(due, ts("2026-03-01T03:30:00Z")),
            Due::Now { .. }
        ));
        assert_eq!(
            r.due(due, ts("2026-03-01T05:00:00Z")),
            Due::Missed {
                next_window: ts("2026-03-01T09:00:00Z")
            }
        );
        // Back inside a later window (15:00-16:00).
        assert!(matches!(
            r.due(due, ts("2026-03-01T15:10:00Z")),
            Due::Now { .. }
        ));
        let r = parsed("rate(2 days)", None);
        let due = ts("2026-03-01T20:00:00Z");
        assert_eq!(
            r.due(due, ts("2026-03-01T23:00:00Z")),
            Due::Now {
                window_end: Some(ts("2026-03-02T00:00:00Z"))
            }
        );
        assert_eq!(
            r.due(due, ts("2026-03-02T01:00:00Z")),
            Due::Missed {
                next_window: ts("2026-03-03T20:00:00Z")
            }
        );
    }

    #[test]
    fn after_days_never_misses() {
        let r = Rules::parse(&RotationRules {
            automatically_after_days: Some(7),
            ..Default::default()
        })
        .unwrap();
        let due = ts("2026-03-01T20:00:00Z");
        assert_eq!(r.due(due, ts("2026-03-01T19:00:00Z")), Due::NotYet);
        assert_eq!(
            r.due(due, ts("2026-04-01T00:00:00Z")),
            Due::Now { window_end: None }
        );
        // With a Duration, AutomaticallyAfterDays has windows too.
        let r = Rules::parse(&RotationRules {
            automatically_after_days: Some(7),
            duration: Some("2h".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            r.due(due, ts("2026-03-01T23:00:00Z")),
            Due::Missed {
                next_window: ts("2026-03-08T20:00:00Z")
            }
        );
    }

    #[test]
    fn at_or_before_finds_latest_firing() {
        let c = Cron::parse("0 10 ? * MON *").unwrap();
        // 2026-11-22 is a Sunday; the latest Monday 10:00 is the 16th.
        assert_eq!(
            c.at_or_before(ts("2026-11-22T12:00:00Z")),
            Some(ts("2026-11-16T10:00:00Z"))
        );
        assert_eq!(
            c.at_or_before(ts("2026-11-16T10:00:00Z")),
            Some(ts("2026-11-16T10:00:00Z"))
        );
    }
}
