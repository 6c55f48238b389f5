//! Invariant checks over the SigV4 parser and canonicaliser and the JSON 1.1 request decoder
//! of every operation, shared by the `cargo fuzz` targets `sigv4` and `wire` (crate `fuzz/`,
//! feature `fuzzing`) and the proptests below (stable Rust, run by `scripts/test`). Each
//! check panics when an invariant breaks: that is the fuzzer's signal.

use http::{HeaderMap, HeaderName, HeaderValue};
use keyroll_core::api::*;
use keyroll_core::time::Timestamp;
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::authz::{nominal_arn, request_params};
use crate::credentials::{AccessKey, KeyStore};
use crate::dispatch::{Operation, parse};
use crate::sigv4::{
    self, AuthError, canonical_header_value, canonical_query, canonical_uri, parse_authorization,
    valid_region,
};
use crate::wire::ApiError;

/// The fixed clock of the checks: 2026-12-07T00:00:00Z.
pub const NOW_SECS: i64 = 1_796_601_600;
const HOST: &str = "127.0.0.1:7150";

fn key() -> AccessKey {
    AccessKey {
        access_key_id: "AKIDFUZZ".into(),
        secret_access_key: SecretString::from("fuzz/secret+key"),
        session_token: None,
        name: "fuzz".into(),
    }
}

/// Whether `out` is made only of `extra` bytes, RFC 3986 unreserved characters and `%XX`
/// escapes with upper-case hex digits.
fn only_encoded(out: &[u8], extra: &[u8]) -> bool {
    let mut i = 0;
    while i < out.len() {
        let b = out[i];
        if b == b'%' {
            let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
            if i + 2 >= out.len() {
                return false;
            }
            if !(hex(out[i + 1]) && hex(out[i + 2])) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || extra.contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// Runs the SigV4 parser and canonicaliser on one request — `authorization`, the request
/// target (`/path?query`), headers and body — and checks: the `Authorization` parser's parts
/// are slash-free and comma-free; canonical URIs, queries and header values are deterministic
/// and well-formed, and canonicalising a canonical query again changes nothing; a request
/// signed by [`sigv4::sign`] with these headers, path and body verifies, and the same request
/// with its body changed does not.
pub fn check_sigv4(authorization: &str, target: &str, headers: &[(Vec<u8>, Vec<u8>)], body: &[u8]) {
    // The Authorization header's parser.
    match parse_authorization(authorization) {
        Ok(a) => {
            for part in [a.access_key_id, a.date, a.region, a.service, a.terminal] {
                assert!(!part.contains('/'), "credential part {part:?} holds a '/'");
            }
            for part in [a.signed_headers, a.signature] {
                assert!(!part.contains(','), "{part:?} holds a ','");
                assert!(authorization.contains(part));
            }
        }
        Err(e) => assert!(matches!(e, AuthError::Incomplete(_)), "{e:?}"),
    }

    // The headers as hyper would hand them over.
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            map.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(authorization) {
        map.insert(http::header::AUTHORIZATION, v);
    }
    if let Some(id) = sigv4::claimed_access_key_id(&map) {
        assert!(!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    if let Some(r) = sigv4::claimed_region(&map) {
        assert!(valid_region(r));
    }
    for name in map.keys() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert!(canonical_header_value(&map, name.as_str(), &mut a));
        canonical_header_value(&map, name.as_str(), &mut b);
        assert_eq!(a, b, "header canonicalisation is not deterministic");
        assert!(!a.contains(&b'\t'), "a tab survived: {a:?}");
        assert!(
            !a.windows(2).any(|w| w == b"  "),
            "a run of spaces survived: {a:?}"
        );
        assert!(
            a.first() != Some(&b' ') && a.last() != Some(&b' '),
            "not trimmed: {a:?}"
        );
    }
    let keys = KeyStore::new(vec![key()]);
    let now = Timestamp::from_secs(NOW_SECS);
    let _ = sigv4::precheck(&map, &keys, now);

    // Canonical queries: well-formed, deterministic and idempotent, whatever the text.
    let query = target.split_once('?').map_or(target, |(_, q)| q);
    let mut q1 = Vec::new();
    canonical_query(Some(query), &mut q1);
    let mut q2 = Vec::new();
    canonical_query(Some(query), &mut q2);
    assert_eq!(q1, q2, "query canonicalisation is not deterministic");
    assert!(only_encoded(&q1, b"=&"), "{q1:?}");
    let canonical = String::from_utf8(q1.clone()).unwrap_or_else(|_| unreachable!());
    let mut q3 = Vec::new();
    canonical_query(Some(&canonical), &mut q3);
    assert_eq!(q1, q3, "canonicalising a canonical query changed it");

    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let mut p1 = Vec::new();
    canonical_uri(uri.path(), &mut p1);
    let mut p2 = Vec::new();
    canonical_uri(uri.path(), &mut p2);
    assert_eq!(p1, p2);
    assert!(only_encoded(&p1, b"/"), "{p1:?}");
    // The fuzzed request itself (not expected to verify: the signature is not forgeable).
    if let Ok(c) = sigv4::verify(&http::Method::POST, &uri, &map, body, &keys, now) {
        assert_eq!(c.access_key_id, "AKIDFUZZ");
    }

    // Signer and verifier agree.
    let Ok(path_only) = http::Uri::try_from(uri.path()) else {
        return;
    };
    let mut to_sign: Vec<(String, String)> = Vec::new();
    for (n, v) in headers {
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) else {
            continue;
        };
        let Ok(v) = v.to_str() else { continue };
        let reserved = [
            "host",
            "authorization",
            "date",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ];
        if reserved.contains(&n.as_str()) || to_sign.iter().any(|(k, _)| k == n.as_str()) {
            continue;
        }
        to_sign.push((n.as_str().to_string(), v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = to_sign
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let k = key();
    let added = sigv4::sign("POST", HOST, uri.path(), &pairs, body, &k, "eu-west-1", now);
    let mut signed = HeaderMap::new();
    for (n, v) in &pairs {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            unreachable!()
        };
        signed.insert(n, v);
    }
    signed.insert(http::header::HOST, HeaderValue::from_static(HOST));
    for (n, v) in added {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(&v),
        ) else {
            panic!("the signer produced an invalid header {n:?}: {v:?}");
        };
        signed.insert(n, v);
    }
    match sigv4::verify(&http::Method::POST, &path_only, &signed, body, &keys, now) {
        Ok(c) => assert_eq!(c.region, "eu-west-1"),
        Err(e) => panic!("a request signed by sign() does not verify: {e}"),
    }
    let mut tampered = body.to_vec();
    tampered.push(b'x');
    assert!(
        sigv4::verify(
            &http::Method::POST,
            &path_only,
            &signed,
            &tampered,
            &keys,
            now
        )
        .is_err(),
        "a changed body still verifies"
    );
}

/// Splits a fuzz input into the arguments of [`check_sigv4`]: line 1 the `Authorization`
/// header, line 2 the request target, then `name: value` header lines up to an empty line,
/// then the body.
pub fn check_sigv4_input(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let auth = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let target = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut headers = Vec::new();
    let mut consumed = auth.len() + target.len() + 2;
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        if line.is_empty() {
            break;
        }
        let (n, v) = match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        headers.push((n.to_vec(), v.strip_prefix(b" ").unwrap_or(v).to_vec()));
    }
    let body = data.get(consumed.min(data.len())..).unwrap_or_default();
    check_sigv4(&auth, &target, &headers, body);
}

/// Decodes `body` as the request of `op` (the decoder `dispatch` uses, with the same type
/// for each operation) and checks: a decoded request re-encodes to JSON that decodes to the
/// same request; a refused body gets `SerializationException` or `ValidationException`, a
/// JSON error body, and a message with every quoted value redacted; the authorization view
/// of the body (`request_params`, `nominal_arn`) never fails.
pub fn check_wire(op: Operation, body: &[u8]) {
    let params = request_params(body);
    assert!(nominal_arn(op, &params, "us-east-1", "123456789012").starts_with("arn:"));
    let result = match op {
        Operation::CreateSecret => round_trip::<CreateSecretRequest>(body).map(drop),
        Operation::GetSecretValue => round_trip::<GetSecretValueRequest>(body).map(drop),
        Operation::BatchGetSecretValue => round_trip::<BatchGetSecretValueRequest>(body).map(drop),
        Operation::PutSecretValue => round_trip::<PutSecretValueRequest>(body).map(drop),
        Operation::UpdateSecret => round_trip::<UpdateSecretRequest>(body).map(drop),
        Operation::UpdateSecretVersionStage => {
            round_trip::<UpdateSecretVersionStageRequest>(body).map(drop)
        }
        Operation::ListSecrets => round_trip::<ListSecretsRequest>(body).map(drop),
        Operation::ListSecretVersionIds => {
            round_trip::<ListSecretVersionIdsRequest>(body).map(drop)
        }
        Operation::DeleteSecret => round_trip::<DeleteSecretRequest>(body).map(drop),
        Operation::TagResource => round_trip::<TagResourceRequest>(body).map(drop),
        Operation::UntagResource => round_trip::<UntagResourceRequest>(body).map(drop),
        Operation::RotateSecret => round_trip::<RotateSecretRequest>(body).map(|r| {
            if let Some(rules) = &r.rotation_rules {
                let _ = keyroll_core::schedule::validate(rules);
            }
        }),
        Operation::GetRandomPassword => round_trip::<GetRandomPasswordRequest>(body).map(|r| {
            if let Ok(p) = r.policy() {
                assert!(p.length >= 1);
            }
        }),
        Operation::PutResourcePolicy => round_trip::<PutResourcePolicyRequest>(body).map(drop),
        Operation::ValidateResourcePolicy => {
            round_trip::<ValidateResourcePolicyRequest>(body).map(drop)
        }
        Operation::ReplicateSecretToRegions => {
            round_trip::<ReplicateSecretToRegionsRequest>(body).map(drop)
        }
        Operation::RemoveRegionsFromReplication => {
            round_trip::<RemoveRegionsFromReplicationRequest>(body).map(drop)
        }
        Operation::DescribeSecret
        | Operation::RestoreSecret
        | Operation::CancelRotateSecret
        | Operation::GetResourcePolicy
        | Operation::DeleteResourcePolicy
        | Operation::StopReplicationToReplica => round_trip::<SecretIdRequest>(body).map(drop),
    };
    if let Err(e) = result {
        check_error(&e);
    }
}

/// Decodes, re-encodes and decodes again.
fn round_trip<T: DeserializeOwned + Serialize>(body: &[u8]) -> Result<T, ApiError> {
    let first: T = parse(body)?;
    let encoded = serde_json::to_vec(&first)
        .unwrap_or_else(|e| panic!("a decoded request does not encode: {e}"));
    let second: T = parse(&encoded).unwrap_or_else(|e| {
        panic!(
            "a re-encoded request does not decode: {e}: {}",
            String::from_utf8_lossy(&encoded)
        )
    });
    let again = serde_json::to_vec(&second).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&encoded),
        String::from_utf8_lossy(&again),
        "decode(encode(request)) is not the request"
    );
    Ok(first)
}

fn check_error(e: &ApiError) {
    assert!(
        matches!(&*e.kind, "SerializationException" | "ValidationException"),
        "{e:?}"
    );
    assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_slice(&e.body())
        .unwrap_or_else(|err| panic!("the error body is not JSON: {err}"));
    assert_eq!(body["__type"], *e.kind);
    if e.kind == "SerializationException" {
        // Every quoted stretch of the message is redacted to "…".
        let mut chars = e.message.chars();
        while let Some(c) = chars.next() {
            if c == '"' || c == '`' {
                match (chars.next(), chars.next()) {
                    (Some('…'), Some(close)) => assert_eq!(close, c, "{}", e.message),
                    (None, _) | (Some('…'), None) => {}
                    _ => panic!("a quoted value was not redacted: {}", e.message),
                }
            }
        }
    }
}

/// A fuzz input for [`check_wire`]: the first byte picks the operation, the rest is the body.
pub fn check_wire_input(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let op = Operation::ALL[usize::from(first) % Operation::ALL.len()];
    check_wire(op, body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            prop_oneof![
                Just("content-type".to_string()),
                Just("x-amz-target".to_string()),
                Just("x-amz-user-agent".to_string()),
                Just("X-Custom".to_string()),
                "[a-z][a-z0-9-]{0,10}",
            ],
            prop_oneof![
                "[ -~\t]{0,30}",
                " *[a-z]{1,4}( {1,3}[a-z]{1,4}){0,3} *",
                prop::collection::vec(any::<u8>(), 0..12)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ],
        )
            .prop_map(|(n, v)| (n.into_bytes(), v.into_bytes()))
    }

    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/".to_string()),
            "/[a-zA-Z0-9/._~%-]{0,20}",
            "/[a-z]{0,5}\\?[a-zA-Z0-9=&+%._~ -]{0,30}",
            "[ -~]{0,30}",
        ]
    }

    fn authorization() -> impl Strategy<Value = String> {
        prop_oneof![
            "AWS4-HMAC-SHA256 Credential=[A-Z]{4,8}/2026120[0-9]/[a-z0-9-]{0,12}/secretsmanager/aws4_request, SignedHeaders=[a-z;-]{0,20}, Signature=[0-9a-f]{0,64}",
            "AWS4-HMAC-SHA256 [ -~]{0,60}",
            "[ -~]{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn sigv4_keeps_its_invariants(
            auth in authorization(),
            target in target(),
            headers in prop::collection::vec(header(), 0..5),
            body in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            check_sigv4(&auth, &target, &headers, &body);
        }

        #[test]
        fn arbitrary_sigv4_input_does_not_panic(data in prop::collection::vec(any::<u8>(), 0..200)) {
            check_sigv4_input(&data);
        }

        #[test]
        fn wire_decoding_keeps_its_invariants(
            op in 0usize..Operation::ALL.len(),
            body in prop_oneof![
                Just(String::new()),
                "\\{\"(SecretId|Name|SecretString|SecretBinary|VersionStages|Filters|MaxResults|RotationRules|Tags|TagKeys|PasswordLength|AddReplicaRegions)\":(\"[a-zA-Z0-9+/=]{0,8}\"|[0-9-]{1,6}|true|null|\\[\\]|\\{\\})\\}",
                "\\{\"SecretId\":\"[a-z]{1,6}\",\"RotationRules\":\\{\"ScheduleExpression\":\"rate\\([0-9]{1,2} (hours|days)\\)\"\\}\\}",
                "[ -~]{0,40}",
            ],
        ) {
            check_wire(Operation::ALL[op], body.as_bytes());
        }

        #[test]
        fn arbitrary_wire_input_does_not_panic(data in prop::collection::vec(any::<u8>(), 0..120)) {
            check_wire_input(&data);
        }
    }

    fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {dir}");
        files
    }

    /// The committed fuzz corpora (seeds and minimised finds) replayed on stable Rust.
    #[test]
    fn committed_corpora_pass_the_checks() {
        for (_, data) in corpus("sigv4") {
            check_sigv4_input(&data);
        }
        for (_, data) in corpus("wire") {
            check_wire_input(&data);
        }
    }

    /// The signed seed really is signed (so the fuzzer starts from the verifier's success path).
    #[test]
    fn the_signed_seed_verifies() {
        let (_, data) = corpus("sigv4")
            .into_iter()
            .find(|(n, _)| n == "seed-signed-get-secret-value")
            .unwrap();
        let text = String::from_utf8(data).unwrap();
        let mut lines = text.split('\n');
        let auth = lines.next().unwrap();
        let uri: http::Uri = lines.next().unwrap().parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(": ").unwrap();
            headers.insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let body = lines.collect::<Vec<_>>().join("\n");
        let keys = KeyStore::new(vec![key()]);
        let now = Timestamp::from_secs(NOW_SECS);
        sigv4::verify(
            &http::Method::POST,
            &uri,
            &headers,
            body.as_bytes(),
            &keys,
            now,
        )
        .unwrap();
    }

    #[test]
    fn a_signed_request_with_inner_spaces_verifies() {
        check_sigv4(
            "",
            "/",
            &[
                (
                    b"x-amz-target".to_vec(),
                    b"secretsmanager.GetSecretValue".to_vec(),
                ),
                (b"x-custom".to_vec(), b"  a   b  ".to_vec()),
            ],
            b"{}",
        );
    }
}
