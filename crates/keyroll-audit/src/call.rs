//! [`ApiCall`]: the record of one API request, written as its JSON line straight from
//! borrowed parts — no [`AuditRecord`], no owned strings, no sanitised copy of the request.
//! The line is the one `serde_json` writes for the equivalent [`AuditRecord`] (same members,
//! same order, same escaping; a test checks it byte for byte), so `verify` and `search`
//! read it like any other. Parameters go through the same allow-lists as
//! [`crate::sanitize_parameters`], by reference.

use std::io::Write;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::record::{API_CALL, EVENT_VERSION, GENESIS_SHA256};
use crate::sanitize::write_sanitized;

/// `userIdentity`, borrowed (see [`crate::UserIdentity`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct IdentityRef<'a> {
    /// `IAMUser`, `AssumedRole`, `Unknown`.
    pub identity_type: &'a str,
    pub principal_id: Option<&'a str>,
    pub arn: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub access_key_id: Option<&'a str>,
    pub user_name: Option<&'a str>,
    /// For temporary credentials.
    pub session: Option<SessionRef<'a>>,
}

/// A `userIdentity` serialised once ([`IdentityRef::encode`]) and written as it is into
/// every record of the same caller: a server's principals make most of its requests.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedIdentity(Box<[u8]>);

impl EncodedIdentity {
    /// The serialised `userIdentity`.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for EncodedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EncodedIdentity")
            .field(&String::from_utf8_lossy(&self.0))
            .finish()
    }
}

/// The `userIdentity` of an [`ApiCall`]: its parts, or the same already serialised.
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    Parts(IdentityRef<'a>),
    Encoded(&'a EncodedIdentity),
}

impl<'a> From<IdentityRef<'a>> for Identity<'a> {
    fn from(parts: IdentityRef<'a>) -> Self {
        Identity::Parts(parts)
    }
}

impl<'a> From<&'a EncodedIdentity> for Identity<'a> {
    fn from(encoded: &'a EncodedIdentity) -> Self {
        Identity::Encoded(encoded)
    }
}

impl Identity<'_> {
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Identity::Parts(parts) => parts.write(out),
            Identity::Encoded(encoded) => {
                out.extend_from_slice(&encoded.0);
                Ok(())
            }
        }
    }
}

/// `userIdentity.sessionContext`, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    /// When the credentials were issued (RFC 3339).
    pub creation_date: &'a str,
    pub mfa_authenticated: bool,
    /// The role of an assumed-role session (`type` `Role`).
    pub issuer: Option<IssuerRef<'a>>,
}

/// `userIdentity.sessionContext.sessionIssuer` of a role session, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct IssuerRef<'a> {
    pub principal_id: &'a str,
    pub arn: &'a str,
    pub account_id: &'a str,
    pub user_name: &'a str,
}

/// One API request's record, borrowed. Build it and hand it to
/// [`crate::AuditLog::append_call`].
#[derive(Clone, Copy)]
pub struct ApiCall<'a> {
    pub event_time: DateTime<Utc>,
    pub event_source: &'a str,
    pub event_name: &'a str,
    pub aws_region: &'a str,
    pub user_identity: Identity<'a>,
    pub source_ip_address: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    /// `errorCode` and `errorMessage`.
    pub error: Option<(&'a str, &'a str)>,
    /// The request body's JSON, unsanitised: it is written through the allow-list of
    /// `event_name`.
    pub request_parameters: &'a Value,
    /// The response's JSON, unsanitised (likewise); `Null` for reads and errors.
    pub response_elements: &'a Value,
    pub request_id: Option<&'a str>,
    pub read_only: bool,
    /// The secret's ARN (`resources`: one `AWS::SecretsManager::Secret` in the recipient
    /// account).
    pub resource_arn: Option<&'a str>,
    pub recipient_account_id: &'a str,
}

/// `ApiCall` is `Debug` without its parameters (they are only sanitised when written).
impl std::fmt::Debug for ApiCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCall")
            .field("event_time", &self.event_time)
            .field("event_source", &self.event_source)
            .field("event_name", &self.event_name)
            .field("aws_region", &self.aws_region)
            .field("user_identity", &self.user_identity)
            .field("error_code", &self.error.map(|e| e.0))
            .field("resource_arn", &self.resource_arn)
            .finish_non_exhaustive()
    }
}

/// `s` as a JSON string. Strings with nothing to escape (nearly all: ARNs, ids, names) are
/// copied as they are; any other goes through `serde_json`'s escaping.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

/// Whether JSON needs any byte of `s` escaped (a control character, `"` or `\\`). Checked
/// 16 bytes at a time without an early exit inside a block, which the compiler turns into
/// vector compares: this runs over every string of every record.
fn needs_escape(s: &[u8]) -> bool {
    let special = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut blocks = s.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |acc, &b| acc | special(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| special(b))
}

/// An address as `Display` writes it; IPv4 (nearly every request) without the formatter.
fn ip_address(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// `,"name":"value"`, `head` being `,"name":` (a literal: member names need no escaping).
fn member(out: &mut Vec<u8>, head: &[u8], value: &str) -> serde_json::Result<()> {
    out.extend_from_slice(head);
    string(out, value)
}

fn opt_member(out: &mut Vec<u8>, head: &[u8], value: Option<&str>) -> serde_json::Result<()> {
    match value {
        Some(v) => member(out, head, v),
        None => Ok(()),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as [`crate::AuditRecord`] writes `eventTime`.
/// The text of the last second written is kept per thread: at any request rate above one
/// per second, nearly every record reuses it.
fn event_time(out: &mut Vec<u8>, t: &DateTime<Utc>) -> serde_json::Result<()> {
    /// `"YYYY-MM-DDTHH:MM:SSZ"`, quotes included.
    const QUOTED: usize = 22;
    thread_local! {
        static LAST: std::cell::Cell<Option<(i64, [u8; QUOTED])>> =
            const { std::cell::Cell::new(None) };
    }
    let secs = t.timestamp();
    if let Some((cached, text)) = LAST.get()
        && cached == secs
    {
        out.extend_from_slice(&text);
        return Ok(());
    }
    let at = out.len();
    let mut s = serde_json::Serializer::new(&mut *out);
    crate::record::seconds::serialize(t, &mut s)?;
    if let Ok(text) = <[u8; QUOTED]>::try_from(&out[at..]) {
        LAST.set(Some((secs, text)));
    }
    Ok(())
}

impl IdentityRef<'_> {
    /// The identity serialised as every record writes it, to reuse with
    /// [`Identity::Encoded`].
    pub fn encode(&self) -> serde_json::Result<EncodedIdentity> {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out)?;
        Ok(EncodedIdentity(out.into_boxed_slice()))
    }

    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"type\":");
        string(out, self.identity_type)?;
        opt_member(out, b",\"principalId\":", self.principal_id)?;
        opt_member(out, b",\"arn\":", self.arn)?;
        opt_member(out, b",\"accountId\":", self.account_id)?;
        opt_member(out, b",\"accessKeyId\":", self.access_key_id)?;
        opt_member(out, b",\"userName\":", self.user_name)?;
        if let Some(s) = &self.session {
            out.extend_from_slice(b",\"sessionContext\":{\"attributes\":{\"creationDate\":");
            string(out, s.creation_date)?;
            out.extend_from_slice(b",\"mfaAuthenticated\":");
            out.extend_from_slice(if s.mfa_authenticated {
                b"\"true\""
            } else {
                b"\"false\""
            });
            out.push(b'}');
            if let Some(i) = &s.issuer {
                out.extend_from_slice(b",\"sessionIssuer\":{\"type\":\"Role\"");
                member(out, b",\"principalId\":", i.principal_id)?;
                member(out, b",\"arn\":", i.arn)?;
                member(out, b",\"accountId\":", i.account_id)?;
                member(out, b",\"userName\":", i.user_name)?;
                out.push(b'}');
            }
            out.push(b'}');
        }
        out.push(b'}');
        Ok(())
    }
}

/// Where the parts of a line written by [`ApiCall::write`] are.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// The bytes before this offset describe the call and its caller (identity, operation,
    /// region, parameters, resource): they repeat from one request of a caller to the next.
    /// What follows is the request's own (time, address, ids, outcome).
    pub stable: usize,
    /// Where the 64 zeros of `previousRecordSha256` start.
    pub link: usize,
}

impl ApiCall<'_> {
    /// Appends the record's line (without a newline) to `out`, with `event_id` and 64 zeros
    /// as `previousRecordSha256` (in one go; the log writes the two parts itself).
    #[cfg(test)]
    pub(crate) fn write(&self, event_id: Uuid, out: &mut Vec<u8>) -> serde_json::Result<Written> {
        self.write_stable(out)?;
        let stable = out.len();
        let link = self.write_rest(event_id, out)?;
        Ok(Written { stable, link })
    }

    /// The part of the line that describes the call and its caller.
    pub(crate) fn write_stable(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"eventVersion\":\"");
        out.extend_from_slice(EVENT_VERSION.as_bytes());
        out.extend_from_slice(b"\",\"userIdentity\":");
        self.user_identity.write(out)?;
        member(out, b",\"eventSource\":", self.event_source)?;
        member(out, b",\"eventName\":", self.event_name)?;
        member(out, b",\"awsRegion\":", self.aws_region)?;
        out.extend_from_slice(b",\"requestParameters\":");
        write_sanitized(self.event_name, self.request_parameters, out)?;
        out.extend_from_slice(b",\"readOnly\":");
        out.extend_from_slice(if self.read_only { b"true" } else { b"false" });
        if let Some(arn) = self.resource_arn {
            out.extend_from_slice(b",\"resources\":[{\"ARN\":");
            string(out, arn)?;
            member(out, b",\"accountId\":", self.recipient_account_id)?;
            out.extend_from_slice(b",\"type\":\"AWS::SecretsManager::Secret\"}]");
        }
        member(out, b",\"eventType\":", API_CALL)?;
        out.extend_from_slice(b",\"managementEvent\":true");
        member(out, b",\"recipientAccountId\":", self.recipient_account_id)?;
        member(out, b",\"eventCategory\":", "Management")
    }

    /// The rest of the line after [`ApiCall::write_stable`]: the request's own members and
    /// the link; returns where the link's 64 zeros start.
    pub(crate) fn write_rest(
        &self,
        event_id: Uuid,
        out: &mut Vec<u8>,
    ) -> serde_json::Result<usize> {
        out.extend_from_slice(b",\"eventTime\":");
        event_time(out, &self.event_time)?;
        if let Some(ip) = self.source_ip_address {
            // An address's text needs no escaping.
            out.extend_from_slice(b",\"sourceIPAddress\":\"");
            ip_address(out, ip);
            out.push(b'"');
        }
        opt_member(out, b",\"userAgent\":", self.user_agent)?;
        if let Some((code, message)) = self.error {
            member(out, b",\"errorCode\":", code)?;
            member(out, b",\"errorMessage\":", message)?;
        }
        out.extend_from_slice(b",\"responseElements\":");
        write_sanitized(self.event_name, self.response_elements, out)?;
        opt_member(out, b",\"requestID\":", self.request_id)?;
        out.extend_from_slice(b",\"eventID\":\"");
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        out.extend_from_slice(event_id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"previousRecordSha256\":\"");
        let link = out.len();
        out.extend_from_slice(GENESIS_SHA256.as_bytes());
        out.extend_from_slice(b"\"}");
        Ok(link)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_encoded_identity_writes_the_same_line_as_its_parts() {
        let params = json!({"SecretId": "db"});
        let null = Value::Null;
        for parts in [user(), role()] {
            let encoded = parts.encode().unwrap();
            let call = |identity: Identity<'_>| {
                let c = ApiCall {
                    event_time: chrono::DateTime::from_timestamp(1_765_000_000, 0).unwrap(),
                    event_source: "secretsmanager.amazonaws.com",
                    event_name: "GetSecretValue",
                    aws_region: "us-east-1",
                    user_identity: identity,
                    source_ip_address: None,
                    user_agent: None,
                    error: None,
                    request_parameters: &params,
                    response_elements: &null,
                    request_id: Some("r-1"),
                    read_only: true,
                    resource_arn: None,
                    recipient_account_id: "000000000000",
                };
                let mut out = Vec::new();
                c.write(Uuid::nil(), &mut out).unwrap();
                out
            };
            assert_eq!(call(parts.into()), call((&encoded).into()));
        }
    }

    #[test]
    fn escape_check_agrees_with_the_byte_by_byte_rule() {
        let naive = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..70 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly plain text, sometimes a byte that needs escaping.
                        match x % 40 {
                            0 => b'"',
                            1 => b'\\',
                            2 => (x >> 8) as u8 % 0x20,
                            _ => b' ' + ((x >> 8) as u8 % 95),
                        }
                    })
                    .collect();
                assert_eq!(needs_escape(&bytes), naive(&bytes), "{bytes:?}");
            }
        }
    }

    #[test]
    fn ip_addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.0.9.99",
            "100.64.10.1",
            "255.255.255.255",
            "192.168.100.200",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.1.2.3",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            ip_address(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn event_times_reuse_only_the_same_second() {
        use chrono::TimeZone;
        let write = |t: DateTime<Utc>| {
            let mut out = Vec::new();
            event_time(&mut out, &t).unwrap();
            String::from_utf8(out).unwrap()
        };
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 23, 59, 59).unwrap();
        assert_eq!(write(t), "\"2026-12-07T23:59:59Z\"");
        assert_eq!(
            write(t + chrono::Duration::milliseconds(999)),
            "\"2026-12-07T23:59:59Z\""
        );
        assert_eq!(
            write(t + chrono::Duration::seconds(1)),
            "\"2026-12-08T00:00:00Z\""
        );
        assert_eq!(write(t), "\"2026-12-07T23:59:59Z\"");
    }
    use crate::record::{
        AuditRecord, Resource, SessionAttributes, SessionContext, SessionIssuer, UserIdentity,
    };
    use crate::sanitize_parameters;
    use serde_json::json;

    pub(crate) const SENTINEL: &str = "SENTINEL-5ec7e7-never-written";

    pub(crate) fn user() -> IdentityRef<'static> {
        IdentityRef {
            identity_type: "IAMUser",
            principal_id: Some("AIDAEXAMPLE"),
            arn: Some("arn:aws:iam::000000000000:user/app"),
            account_id: Some("000000000000"),
            access_key_id: Some("AKIAEXAMPLE"),
            user_name: Some("app"),
            session: None,
        }
    }

    fn role() -> IdentityRef<'static> {
        IdentityRef {
            identity_type: "AssumedRole",
            principal_id: Some("AROAEXAMPLE:s1"),
            arn: Some("arn:aws:sts::000000000000:assumed-role/ops/s1"),
            account_id: Some("000000000000"),
            access_key_id: Some("ASIAEXAMPLE"),
            user_name: None,
            session: Some(SessionRef {
                creation_date: "2026-12-07T01:02:03Z",
                mfa_authenticated: true,
                issuer: Some(IssuerRef {
                    principal_id: "AROAEXAMPLE",
                    arn: "arn:aws:iam::000000000000:role/ops",
                    account_id: "000000000000",
                    user_name: "ops",
                }),
            }),
        }
    }

    fn owned(i: &IdentityRef<'_>) -> UserIdentity {
        let s = |v: Option<&str>| v.map(str::to_string);
        UserIdentity {
            identity_type: i.identity_type.to_string(),
            principal_id: s(i.principal_id),
            arn: s(i.arn),
            account_id: s(i.account_id),
            access_key_id: s(i.access_key_id),
            user_name: s(i.user_name),
            session_context: i.session.map(|c| SessionContext {
                attributes: SessionAttributes {
                    creation_date: c.creation_date.to_string(),
                    mfa_authenticated: c.mfa_authenticated.to_string(),
                },
                session_issuer: c.issuer.map(|r| SessionIssuer {
                    issuer_type: "Role".to_string(),
                    principal_id: r.principal_id.to_string(),
                    arn: r.arn.to_string(),
                    account_id: r.account_id.to_string(),
                    user_name: r.user_name.to_string(),
                }),
            }),
            invoked_by: None,
        }
    }

    /// The record the server built before [`ApiCall`] existed.
    fn slow(c: &ApiCall<'_>, id: Uuid) -> Vec<u8> {
        let mut r = AuditRecord::api_call(c.event_time, c.event_source, c.event_name);
        r.event_id = id;
        r.aws_region = c.aws_region.to_string();
        r.source_ip_address = c.source_ip_address.map(|i| i.to_string());
        r.user_agent = c.user_agent.map(str::to_string);
        r.request_id = c.request_id.map(str::to_string);
        r.read_only = Some(c.read_only);
        r.recipient_account_id = Some(c.recipient_account_id.to_string());
        r.user_identity = match &c.user_identity {
            Identity::Parts(parts) => owned(parts),
            Identity::Encoded(_) => unreachable!("the cases give their identity in parts"),
        };
        r.request_parameters = sanitize_parameters(c.event_name, c.request_parameters.clone());
        r.response_elements = sanitize_parameters(c.event_name, c.response_elements.clone());
        if let Some((code, message)) = c.error {
            r.error_code = Some(code.to_string());
            r.error_message = Some(message.to_string());
        }
        if let Some(arn) = c.resource_arn {
            r.resources
                .push(Resource::secret(arn, c.recipient_account_id));
        }
        r.previous_record_sha256 = GENESIS_SHA256.to_string();
        serde_json::to_vec(&r).unwrap()
    }

    #[test]
    fn writes_the_line_serde_writes_for_the_same_record() {
        let t = DateTime::parse_from_rfc3339("2026-12-07T05:06:07.890Z")
            .unwrap()
            .with_timezone(&Utc);
        let get = json!({"SecretId": "prod/app/db", "VersionStage": "AWSCURRENT", "SecretString": SENTINEL});
        let put = json!({"SecretId": "a\"b", "SecretString": SENTINEL, "ClientRequestToken": "t"});
        let resp = json!({"ARN": "arn:x", "Name": "n", "VersionId": "v", "SecretString": SENTINEL});
        let null = Value::Null;
        let base = ApiCall {
            event_time: t,
            event_source: "secretsmanager.amazonaws.com",
            event_name: "GetSecretValue",
            aws_region: "us-east-1",
            user_identity: user().into(),
            source_ip_address: Some("127.0.0.1".parse().unwrap()),
            user_agent: Some("aws-cli/2 \"quoted\" \u{1}"),
            error: None,
            request_parameters: &get,
            response_elements: &null,
            request_id: Some("0000-rid"),
            read_only: true,
            resource_arn: Some(
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/app/db-AbCdEf",
            ),
            recipient_account_id: "000000000000",
        };
        let variants = [
            base,
            ApiCall {
                user_identity: role().into(),
                source_ip_address: Some("::1".parse().unwrap()),
                user_agent: None,
                resource_arn: None,
                request_id: None,
                ..base
            },
            ApiCall {
                error: Some((
                    "AccessDeniedException",
                    "User: x is not authorized \"here\"",
                )),
                read_only: false,
                ..base
            },
            ApiCall {
                event_name: "PutSecretValue",
                request_parameters: &put,
                response_elements: &resp,
                read_only: false,
                user_identity: Identity::Parts(IdentityRef {
                    identity_type: "Unknown",
                    access_key_id: None,
                    account_id: Some("000000000000"),
                    ..IdentityRef::default()
                }),
                source_ip_address: None,
                ..base
            },
            ApiCall {
                user_identity: Identity::Parts(IdentityRef {
                    session: Some(SessionRef {
                        creation_date: "2026-12-07T01:02:03Z",
                        mfa_authenticated: false,
                        issuer: None,
                    }),
                    ..user()
                }),
                request_parameters: &null,
                ..base
            },
        ];
        for (i, c) in variants.iter().enumerate() {
            let id = Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef + i as u128);
            let mut fast = Vec::new();
            let Written { stable, link: at } = c.write(id, &mut fast).unwrap();
            let expected = slow(c, id);
            assert_eq!(
                String::from_utf8(fast.clone()).unwrap(),
                String::from_utf8(expected).unwrap(),
                "variant {i}"
            );
            assert_eq!(&fast[at..at + 64], GENESIS_SHA256.as_bytes());
            assert_eq!(&fast[at + 64..], b"\"}");
            // Everything of the request's own (time, address, outcome, ids) is after the
            // part that repeats.
            assert!(
                fast[stable..].starts_with(b",\"eventTime\":"),
                "variant {i}"
            );
            assert!(!String::from_utf8(fast).unwrap().contains(SENTINEL));
        }
    }
}
