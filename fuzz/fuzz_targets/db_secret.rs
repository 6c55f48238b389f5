//! The database secret parser. Input: the secret's text. Checks: `keyroll_targets::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        keyroll_targets::fuzzing::check_db_secret(text);
    }
});
