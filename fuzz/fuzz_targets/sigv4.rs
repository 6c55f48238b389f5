//! SigV4: the `Authorization` parser, canonical URI / query / header values, and signer and
//! verifier agreeing. Input: line 1 `Authorization`, line 2 the request target, then
//! `name: value` header lines, an empty line, the body. Checks: `keyroll_server::fuzzing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    keyroll_server::fuzzing::check_sigv4_input(data);
});
