//! A repeated call's stable part: the first bytes of an API call's record (its caller,
//! operation, region, parameters and resource, [`ApiCall::write_stable`]) are the same
//! from one read of a secret by an application to the next. Each thread keeps the last few
//! it wrote, with the SHA-256 state after them, and reuses both for a call with an equal
//! [`StableKey`]: those bytes are then neither serialised nor hashed again.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::call::{ApiCall, Identity};
use crate::sanitize::recorded_as_is;

/// Everything [`ApiCall::write_stable`] writes from, owned: two calls with equal keys
/// write equal stable parts. Only reads whose identity is already encoded and whose
/// parameters are all strings the record shows as they are (or absent) have one; equality
/// of those is plain byte equality, with nothing (such as `0.0` and `-0.0`) equal yet
/// written differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StableKey {
    identity: Box<[u8]>,
    event_source: String,
    event_name: String,
    aws_region: String,
    /// `None` for a request without a body.
    parameters: Option<Vec<(String, String)>>,
    read_only: bool,
    resource_arn: Option<String>,
    recipient_account_id: String,
}

impl StableKey {
    /// The key of this call's stable part, if it has one (see [`StableKey`]). Only reads
    /// whose every parameter is a string the record shows as it is have one: a key never
    /// holds anything the record itself does not (no value or password of a write, nothing
    /// the allow-list leaves out).
    pub(crate) fn of(call: &ApiCall<'_>) -> Option<StableKey> {
        let Identity::Encoded(identity) = call.user_identity else {
            return None;
        };
        if !call.read_only {
            return None;
        }
        let parameters = match call.request_parameters {
            Value::Null => None,
            Value::Object(map) => Some(
                map.iter()
                    .map(|(k, v)| {
                        let v = v.as_str()?;
                        recorded_as_is(call.event_name, k).then(|| (k.clone(), v.to_string()))
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        };
        Some(StableKey {
            identity: identity.as_bytes().into(),
            event_source: call.event_source.to_string(),
            event_name: call.event_name.to_string(),
            aws_region: call.aws_region.to_string(),
            parameters,
            read_only: call.read_only,
            resource_arn: call.resource_arn.map(str::to_string),
            recipient_account_id: call.recipient_account_id.to_string(),
        })
    }

    /// Whether `call`'s stable part is the one this key was taken from.
    pub(crate) fn matches(&self, call: &ApiCall<'_>) -> bool {
        let Identity::Encoded(identity) = call.user_identity else {
            return false;
        };
        let same_parameters = match (call.request_parameters, &self.parameters) {
            (Value::Null, None) => true,
            (Value::Object(map), Some(params)) => {
                // Keys of a map are unique: equal lengths and every entry found is equality.
                map.len() == params.len()
                    && map.iter().all(|(k, v)| {
                        v.as_str()
                            .is_some_and(|v| params.iter().any(|(pk, pv)| pk == k && pv == v))
                    })
            }
            _ => false,
        };
        same_parameters
            && call.read_only == self.read_only
            && call.event_name == self.event_name
            && call.resource_arn == self.resource_arn.as_deref()
            && identity.as_bytes() == &*self.identity
            && call.event_source == self.event_source
            && call.aws_region == self.aws_region
            && call.recipient_account_id == self.recipient_account_id
    }
}

/// A thread's recently written stable parts of API call records ([`ApiCall::write_stable`]),
/// with the hash state after each: a caller reading the same secret again begins its record
/// with the same several hundred bytes (its identity, the operation, the parameters, the
/// resource), which are then neither written out again nor hashed again. A part is reused
/// only for a call with an equal [`StableKey`], whose stable part is those same bytes.
struct StableParts {
    entries: Vec<StablePart>,
    next: usize,
}

struct StablePart {
    key: StableKey,
    bytes: Vec<u8>,
    state: Sha256,
}

/// Stable parts remembered per thread.
const STABLE_PARTS: usize = 4;

thread_local! {
    static STABLE: std::cell::RefCell<StableParts> = const {
        std::cell::RefCell::new(StableParts {
            entries: Vec::new(),
            next: 0,
        })
    };
}

/// Writes `call`'s line into the empty `line`; returns where its link starts and
/// [`crate::log::head_hash`] of it.
pub(crate) fn write_call(
    call: &ApiCall<'_>,
    line: &mut Vec<u8>,
) -> serde_json::Result<(usize, Sha256)> {
    let event_id = crate::record::event_id();
    let reused = STABLE.with(|parts| {
        let parts = parts.try_borrow().ok()?;
        let part = parts.entries.iter().find(|p| p.key.matches(call))?;
        line.extend_from_slice(&part.bytes);
        Some(part.state.clone())
    });
    let state = match reused {
        Some(state) => state,
        None => {
            call.write_stable(line)?;
            let state = Sha256::new_with_prefix(&line[..]);
            if let Some(key) = StableKey::of(call) {
                STABLE.with(|parts| {
                    if let Ok(mut parts) = parts.try_borrow_mut() {
                        parts.remember(key, line, state.clone());
                    }
                });
            }
            state
        }
    };
    let stable = line.len();
    let link = call.write_rest(event_id, line)?;
    let mut head = state;
    head.update(&line[stable..link]);
    Ok((link, head))
}

impl StableParts {
    fn remember(&mut self, key: StableKey, bytes: &[u8], state: Sha256) {
        let part = StablePart {
            key,
            bytes: bytes.to_vec(),
            state,
        };
        if self.entries.len() < STABLE_PARTS {
            self.entries.push(part);
        } else {
            self.entries[self.next % STABLE_PARTS] = part;
            self.next = self.next.wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::tests::{SENTINEL, user};
    use crate::files::sha256;
    use crate::log::finish_hash;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    #[test]
    fn only_reads_of_recorded_parameters_have_a_stable_key() {
        let t = DateTime::parse_from_rfc3339("2026-12-07T05:06:07Z")
            .unwrap()
            .with_timezone(&Utc);
        let encoded = user().encode().unwrap();
        let get = json!({"SecretId": "prod/app/db", "VersionStage": "AWSCURRENT"});
        let get_with_value = json!({"SecretId": "prod/app/db", "SecretString": SENTINEL});
        let get_with_unknown = json!({"SecretId": "prod/app/db", "Note": SENTINEL});
        let put = json!({"SecretId": "prod/app/db", "SecretString": SENTINEL});
        let null = Value::Null;
        let read = ApiCall {
            event_time: t,
            event_source: "secretsmanager.amazonaws.com",
            event_name: "GetSecretValue",
            aws_region: "us-east-1",
            user_identity: Identity::Encoded(&encoded),
            source_ip_address: None,
            user_agent: None,
            error: None,
            request_parameters: &get,
            response_elements: &null,
            request_id: None,
            read_only: true,
            resource_arn: None,
            recipient_account_id: "000000000000",
        };
        let key = StableKey::of(&read).expect("a read of recorded parameters has a key");
        assert!(key.matches(&read));
        assert!(!format!("{key:?}").contains(SENTINEL));
        let none = [
            ApiCall {
                request_parameters: &get_with_value,
                ..read
            },
            ApiCall {
                request_parameters: &get_with_unknown,
                ..read
            },
            ApiCall {
                event_name: "PutSecretValue",
                request_parameters: &put,
                read_only: false,
                ..read
            },
            ApiCall {
                user_identity: user().into(),
                ..read
            },
        ];
        for (i, call) in none.iter().enumerate() {
            assert!(StableKey::of(call).is_none(), "call {i}");
            assert!(!key.matches(call), "call {i}");
        }
    }

    #[test]
    fn a_reused_stable_part_writes_and_hashes_the_line_written_afresh() {
        use crate::call::{Identity, IdentityRef};
        use serde_json::{Value, json};
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let users = ["app", "ops", "batch"].map(|name| {
            IdentityRef {
                identity_type: "IAMUser",
                principal_id: Some("AIDAEXAMPLE"),
                arn: Some(name),
                account_id: Some("123456789012"),
                access_key_id: Some("AKIAEXAMPLE"),
                user_name: Some(name),
                session: None,
            }
            .encode()
            .unwrap()
        });
        let params = [
            Value::Null,
            json!({"SecretId": "prod/db"}),
            json!({"SecretId": "prod/db", "VersionStage": "AWSPREVIOUS"}),
            json!({"VersionStage": "AWSPREVIOUS", "SecretId": "prod/db"}),
            json!({"SecretId": "prod/other"}),
            json!({"SecretId": "prod/db", "MaxResults": 5}),
            json!({"SecretId": "prod/db", "Weird": -0.0}),
            json!({"SecretId": "prod/db", "Weird": 0.0}),
        ];
        let response = json!({"ARN": "arn:x", "Name": "prod/db"});
        for i in 0..3000 {
            let names = ["GetSecretValue", "DescribeSecret", "PutSecretValue"];
            let arns = [
                None,
                Some("arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf"),
            ];
            let identity = IdentityRef {
                identity_type: "AssumedRole",
                arn: Some("arn:aws:sts::1:assumed-role/r/s"),
                ..IdentityRef::default()
            };
            let call = ApiCall {
                event_time: chrono::DateTime::from_timestamp(1_796_000_000 + next(3) as i64, 0)
                    .unwrap(),
                event_source: "secretsmanager.amazonaws.com",
                event_name: names[next(3) as usize],
                aws_region: ["us-east-1", "eu-west-1"][next(2) as usize],
                user_identity: if next(8) == 0 {
                    Identity::Parts(identity)
                } else {
                    Identity::Encoded(&users[next(3) as usize])
                },
                source_ip_address: Some(std::net::IpAddr::from([127, 0, 0, next(3) as u8])),
                user_agent: [None, Some("aws-cli/2")][next(2) as usize],
                error: [None, Some(("AccessDeniedException", "no"))][next(2) as usize],
                request_parameters: &params[next(params.len() as u64) as usize],
                response_elements: [&Value::Null, &response][next(2) as usize],
                request_id: Some("req"),
                read_only: next(2) == 0,
                resource_arn: arns[next(2) as usize],
                recipient_account_id: ["123456789012", "210987654321"][next(2) as usize],
            };
            let mut line = Vec::new();
            let (link, head) = write_call(&call, &mut line).unwrap();
            // The event id is drawn fresh for each line: compare with the one written.
            let id_at = line
                .windows(11)
                .position(|w| w == b"\"eventID\":\"")
                .unwrap()
                + 11;
            let id: uuid::Uuid = std::str::from_utf8(&line[id_at..id_at + 36])
                .unwrap()
                .parse()
                .unwrap();
            let mut fresh = Vec::new();
            let written = call.write(id, &mut fresh).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&fresh),
                "call {i}"
            );
            assert_eq!(link, written.link);
            assert_eq!(finish_hash(head, &line[link..]), sha256(&line), "call {i}");
        }
    }
}
