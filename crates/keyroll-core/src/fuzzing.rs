//! Invariant checks over the schedule-expression parser, shared by the `cargo fuzz` target
//! `schedule` (crate `fuzz/`, feature `fuzzing`) and the proptests below (stable Rust, run by
//! `scripts/test`). Each check panics when an invariant breaks: that is the fuzzer's signal.

use crate::model::RotationRules;
use crate::schedule::{Due, Rules, Schedule};
use crate::time::Timestamp;

/// The latest instant the checks use: 2100-01-01 (cron years stop at 2199; searches look
/// eight years ahead).
pub const MAX_AT_MS: i64 = 4_102_444_800_000;

/// Parses `ScheduleExpression` (or `AutomaticallyAfterDays` when `expr` is `days:N`) with an
/// optional `Duration`, then checks what the scheduler relies on, at the instant `at_ms`
/// (clamped to 1970..2100) and `later_ms` after the next window opens.
pub fn check_schedule(expr: &str, duration: Option<&str>, at_ms: i64, later_ms: i64) {
    let rules = match expr.strip_prefix("days:") {
        Some(n) => match n.parse::<i64>() {
            Ok(days) => RotationRules {
                automatically_after_days: Some(days),
                duration: duration.map(str::to_string),
                schedule_expression: None,
            },
            Err(_) => return,
        },
        None => RotationRules {
            automatically_after_days: None,
            duration: duration.map(str::to_string),
            schedule_expression: Some(expr.to_string()),
        },
    };
    let parsed = Rules::parse(&rules);
    // Deterministic, and what `validate` says agrees with what `parse` does.
    assert_eq!(parsed, Rules::parse(&rules), "parse is not deterministic");
    assert_eq!(parsed.is_ok(), crate::schedule::validate(&rules).is_ok());
    // Surrounding white space does not change the meaning of an expression.
    if rules.schedule_expression.is_some() {
        let padded = RotationRules {
            schedule_expression: Some(format!(" \t{expr} ")),
            ..rules.clone()
        };
        let p = Rules::parse(&padded);
        assert_eq!(
            parsed.as_ref().ok(),
            p.as_ref().ok(),
            "padding changed the parse"
        );
    }
    let Ok(r) = parsed else { return };
    if let Some(d) = r.duration_ms {
        assert!((Timestamp::MILLIS_PER_HOUR..=24 * Timestamp::MILLIS_PER_HOUR).contains(&d));
    }

    let at = Timestamp::from_millis(at_ms.clamp(0, MAX_AT_MS));
    let Ok(next) = r.next_after(at) else { return };
    assert!(next > at, "next_after({at:?}) = {next:?} is not after it");
    // The window opening at `next` closes after it opens.
    if let Some(end) = r.window_end(next) {
        assert!(end > next, "window [{next:?}, {end:?}) is empty");
    }
    // Before the due date nothing runs; at the due date its window is open.
    assert_eq!(r.due(next, at), Due::NotYet);
    assert_eq!(
        r.due(next, next),
        Due::Now {
            window_end: r.window_end(next)
        },
        "the window opening at the due date is not open at that instant"
    );
    // Some time later: either inside a window that has not closed, or waiting for a future one.
    let now = next.plus_millis(later_ms.clamp(0, 3 * 366 * Timestamp::MILLIS_PER_DAY));
    match r.due(next, now) {
        Due::NotYet => panic!("due date {next:?} has passed at {now:?} but the verdict is NotYet"),
        Due::Now {
            window_end: Some(end),
        } => assert!(end > now, "rotating now in a window that closed at {end:?}"),
        Due::Now { window_end: None } => {}
        Due::Missed { next_window } => {
            assert!(
                next_window > now,
                "the next window {next_window:?} is in the past"
            )
        }
    }
    // A cron firing is a firing both ways.
    if let Schedule::Cron(c) = &r.schedule {
        assert_eq!(c.at_or_before(next), Some(next));
        assert_eq!(c.next_after(next.plus_millis(-1)), Some(next));
        if let Some(before) = c.at_or_before(at) {
            assert!(before <= at);
            assert!(c.next_after(before).is_none_or(|n| n > before));
        }
    }
}

/// Splits a fuzz input into the arguments of [`check_schedule`]: lines `EXPR`, `DURATION`
/// (empty: none), `AT_SECS`, `LATER_SECS`.
pub fn check_schedule_input(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let expr = lines.next().unwrap_or_default();
    let duration = lines.next().filter(|d| !d.is_empty());
    let secs = |l: Option<&str>, default: i64| {
        l.and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(default)
            .saturating_mul(1000)
    };
    let at = secs(lines.next(), 1_798_761_600);
    let later = secs(lines.next(), 3_600);
    check_schedule(expr, duration, at, later);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cron_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            Just("?".to_string()),
            Just("L".to_string()),
            (0u32..70).prop_map(|n| n.to_string()),
            (0u32..40, 0u32..40).prop_map(|(a, b)| format!("{a}-{b}")),
            (0u32..40, 0u32..12).prop_map(|(a, b)| format!("{a}/{b}")),
            (1u32..32).prop_map(|n| format!("{n}W")),
            (0u32..9, 0u32..7).prop_map(|(a, b)| format!("{a}#{b}")),
            (1u32..8).prop_map(|n| format!("{n}L")),
            prop::sample::select(vec!["MON-FRI", "JAN,JUL", "SUN", "DEC", "LW", "*/6"])
                .prop_map(str::to_string),
            "[0-9A-Z*?/,#L-]{1,6}",
        ]
    }

    fn year_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (1960u32..2210).prop_map(|y| y.to_string()),
            (2020u32..2100, 2020u32..2210).prop_map(|(a, b)| format!("{a}-{b}")),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                0i64..2000,
                prop::sample::select(vec!["hours", "days", "hour", "day", "minutes"])
            )
                .prop_map(|(n, u)| format!("rate({n} {u})")),
            (prop::collection::vec(cron_field(), 5), year_field())
                .prop_map(|(f, y)| format!("cron({} {y})", f.join(" "))),
            (0i64..1100).prop_map(|n| format!("days:{n}")),
            "[ -~]{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn schedules_keep_their_invariants(
            expr in expression(),
            duration in prop::option::of(prop_oneof![(0i64..30).prop_map(|h| format!("{h}h")), "[0-9a-z]{0,4}"]),
            at in 0i64..MAX_AT_MS,
            later in 0i64..(400 * Timestamp::MILLIS_PER_DAY),
        ) {
            check_schedule(&expr, duration.as_deref(), at, later);
        }

        #[test]
        fn arbitrary_input_lines_do_not_panic(data in prop::collection::vec(any::<u8>(), 0..80)) {
            check_schedule_input(&data);
        }
    }

    /// The committed fuzz corpus (seeds and minimised finds) replayed on stable Rust.
    #[test]
    fn committed_corpus_passes_the_checks() {
        let dir = format!("{}/../../fuzz/corpus/schedule", env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            check_schedule_input(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds in {dir}");
    }

    #[test]
    fn known_expressions_pass_the_checks() {
        for (expr, duration) in [
            ("rate(4 hours)", None),
            ("rate(10 days)", Some("3h")),
            ("cron(0 16 1,15 * ? *)", Some("2h")),
            ("cron(0 8 ? * MON-FRI *)", None),
            ("cron(0 0 L * ? *)", None),
            ("cron(0 0 15W * ? *)", None),
            ("cron(0 4 ? * 6#3 2030)", None),
            ("days:30", Some("4h")),
        ] {
            check_schedule(expr, duration, 1_798_761_600_000, 90 * 86_400_000);
        }
    }
}
