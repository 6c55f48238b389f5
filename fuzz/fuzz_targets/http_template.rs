//! The HTTP target's template substitution (URL, headers, string and JSON bodies). Input:
//! the template, a newline, the JSON of the versions (`current`, `pending`, `previous`,
//! `token`, `keyField`). Checks: `keyroll_targets::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyroll_targets::fuzzing::check_template_input(data);
});
