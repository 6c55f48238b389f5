//! The JSON 1.1 request decoder of every operation. Input: the first byte picks the
//! operation (modulo the 23 operations, in `Operation::ALL` order), the rest is the body.
//! Checks: `keyroll_server::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyroll_server::fuzzing::check_wire_input(data);
});
