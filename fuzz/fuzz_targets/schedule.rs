//! The schedule-expression parser (`rate()`, `cron()`, `days:N` for AutomaticallyAfterDays)
//! with `Duration` windows. Input lines: expression, duration (empty: none), an instant and
//! an offset in seconds. Checks: `keyroll_core::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyroll_core::fuzzing::check_schedule_input(data);
});
