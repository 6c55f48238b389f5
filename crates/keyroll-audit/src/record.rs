//! One audit record: the fields of an AWS CloudTrail event record, plus the chain link.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The record format version written in `eventVersion` (CloudTrail's current one).
pub const EVENT_VERSION: &str = "1.11";
/// `eventSource` of Secrets Manager API calls.
pub const SECRETS_MANAGER_SOURCE: &str = "secretsmanager.amazonaws.com";
/// `eventSource` of STS API calls.
pub const STS_SOURCE: &str = "sts.amazonaws.com";
/// `eventSource` of keyroll's own events (rotation steps, start and stop, audit events).
pub const KEYROLL_SOURCE: &str = "keyroll.local";
/// `eventType` of a request to an API.
pub const API_CALL: &str = "AwsApiCall";
/// `eventType` of something keyroll did on its own (a scheduled rotation step, a start).
pub const SERVICE_EVENT: &str = "AwsServiceEvent";
/// `eventName` of the record [`crate::AuditLog::open`] appends after moving a torn last
/// line aside.
pub const TORN_TAIL_EVENT: &str = "AuditTornTail";
/// `eventName` of the first record of every day file but the first: it names the file
/// closed before it and the SHA-256 of that file's line in `digests.jsonl`
/// (`serviceEventDetails.digestSha256`), which ties the digest chain into the record chain.
pub const DAY_FILE_CLOSED_EVENT: &str = "AuditDayFileClosed";
/// `previousRecordSha256` of the first record of a trail.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the trail, shaped like an AWS CloudTrail event record.
///
/// Build one with [`AuditRecord::api_call`] or [`AuditRecord::service_event`] and set the
/// public fields. `previous_record_sha256` is set by [`crate::AuditLog::append`]: whatever
/// the caller puts there is overwritten. Optional fields are left out of the JSON when
/// `None`. Pass request and response bodies through [`crate::sanitize_parameters`] first:
/// the record writes whatever it is given.
///
/// The members are CloudTrail's, in an order of keyroll's (JSON does not order members):
/// what describes the call and its caller comes first, what is the request's own (time,
/// address, outcome, ids, link) last. Consecutive records of one caller reading one secret
/// then begin with the same bytes, whose hash state the chain reuses.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub event_version: String,
    pub user_identity: UserIdentity,
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    /// The sanitised request (`null` when there is none).
    #[serde(default)]
    pub request_parameters: Value,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub resources: Vec<Resource>,
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub management_event: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recipient_account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_category: Option<String>,
    #[serde(with = "seconds")]
    pub event_time: DateTime<Utc>,
    #[serde(
        rename = "sourceIPAddress",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub source_ip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
    /// The sanitised response (`null` for reads and errors, as in CloudTrail).
    #[serde(default)]
    pub response_elements: Value,
    /// What happened, for `AwsServiceEvent` records.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_event_details: Option<Value>,
    #[serde(rename = "requestID", skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    #[serde(rename = "eventID")]
    pub event_id: Uuid,
    /// Hex SHA-256 of the exact bytes of the previous line of the trail (without its
    /// newline); 64 zeros for the first record ever.
    #[serde(rename = "previousRecordSha256", default)]
    pub previous_record_sha256: String,
}

/// A random (version 4) UUID for `eventID`. Event ids must be unique, not secret: they are
/// drawn from a per-thread xoshiro256** generator seeded once from the OS, instead of one
/// `getrandom` system call per record (one record per API request).
pub(crate) fn event_id() -> Uuid {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<[u64; 4]> = Cell::new(seed());
    }
    fn seed() -> [u64; 4] {
        let mut b = [0u8; 32];
        if getrandom::fill(&mut b).is_err() {
            // No OS randomness: fall back to the clock and thread (ids stay unique in practice).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            b[..16].copy_from_slice(&t.to_le_bytes());
        }
        let mut s = [0u64; 4];
        for (i, chunk) in b.chunks_exact(8).enumerate() {
            s[i] = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) | 1;
        }
        s
    }
    fn next(s: &mut [u64; 4]) -> u64 {
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
    STATE.with(|cell| {
        let mut s = cell.get();
        let (a, b) = (next(&mut s), next(&mut s));
        cell.set(s);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

impl AuditRecord {
    /// A record of an API request (`eventType` `AwsApiCall`) with a fresh `eventID`; the
    /// caller fills in identity, region, parameters, resources and result.
    pub fn api_call(
        event_time: DateTime<Utc>,
        event_source: impl Into<String>,
        event_name: impl Into<String>,
    ) -> AuditRecord {
        AuditRecord {
            event_version: EVENT_VERSION.to_string(),
            user_identity: UserIdentity::default(),
            event_time,
            event_source: event_source.into(),
            event_name: event_name.into(),
            aws_region: String::new(),
            source_ip_address: None,
            user_agent: None,
            error_code: None,
            error_message: None,
            request_parameters: Value::Null,
            response_elements: Value::Null,
            service_event_details: None,
            request_id: None,
            event_id: event_id(),
            read_only: None,
            resources: Vec::new(),
            event_type: API_CALL.to_string(),
            management_event: Some(true),
            recipient_account_id: None,
            event_category: Some("Management".to_string()),
            previous_record_sha256: String::new(),
        }
    }

    /// A record of something keyroll did itself (`eventSource` `keyroll.local`, `eventType`
    /// `AwsServiceEvent`, `userIdentity.type` `AWSService`), with `details` in
    /// `serviceEventDetails`. Put the secret a rotation step acted on in `resources`
    /// ([`Resource::secret`]): that is where `search --secret-id` looks.
    pub fn service_event(
        event_time: DateTime<Utc>,
        event_name: impl Into<String>,
        account_id: &str,
        region: &str,
        details: Value,
    ) -> AuditRecord {
        let mut r = AuditRecord::api_call(event_time, KEYROLL_SOURCE, event_name);
        r.event_type = SERVICE_EVENT.to_string();
        r.user_identity = UserIdentity::keyroll();
        r.aws_region = region.to_string();
        r.recipient_account_id = Some(account_id.to_string());
        r.service_event_details = Some(details);
        r.read_only = Some(false);
        r
    }

    /// The ARN or name the request was about: the first resource's ARN, else
    /// `requestParameters.SecretId`.
    pub fn subject(&self) -> Option<&str> {
        self.resources
            .first()
            .map(|r| r.arn.as_str())
            .or_else(|| self.request_parameters.get("SecretId")?.as_str())
    }

    /// Who made the request: `userIdentity.arn`, else its user name, else its principal id.
    pub fn principal(&self) -> Option<&str> {
        let u = &self.user_identity;
        u.arn
            .as_deref()
            .or(u.user_name.as_deref())
            .or(u.principal_id.as_deref())
    }
}

/// Parameters are shown only as their top-level keys: they are sanitised, but a `Debug`
/// print is no place to check that.
impl fmt::Debug for AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn keys(v: &Value) -> Vec<&str> {
            v.as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default()
        }
        f.debug_struct("AuditRecord")
            .field("event_time", &self.event_time)
            .field("event_source", &self.event_source)
            .field("event_name", &self.event_name)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("aws_region", &self.aws_region)
            .field("principal", &self.principal())
            .field("subject", &self.subject())
            .field("error_code", &self.error_code)
            .field("request_parameter_keys", &keys(&self.request_parameters))
            .field("response_element_keys", &keys(&self.response_elements))
            .field("previous_record_sha256", &self.previous_record_sha256)
            .finish_non_exhaustive()
    }
}

/// `userIdentity`: who made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `IAMUser`, `AssumedRole`, or `AWSService` for keyroll's own events.
    #[serde(rename = "type")]
    pub identity_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_context: Option<SessionContext>,
    /// The service acting, for `AWSService` identities (`keyroll.local`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub invoked_by: Option<String>,
}

impl UserIdentity {
    /// An IAM user signing with a long-term access key.
    pub fn iam_user(account_id: &str, user_name: &str, access_key_id: &str) -> UserIdentity {
        UserIdentity {
            identity_type: "IAMUser".to_string(),
            principal_id: Some(access_key_id.to_string()),
            arn: Some(format!("arn:aws:iam::{account_id}:user/{user_name}")),
            account_id: Some(account_id.to_string()),
            access_key_id: Some(access_key_id.to_string()),
            user_name: Some(user_name.to_string()),
            session_context: None,
            invoked_by: None,
        }
    }

    /// A session of an assumed role (temporary credentials from `AssumeRole`):
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, principal `ROLE_ID:SESSION`, and
    /// the role as `sessionContext.sessionIssuer`. `creation_date` is when the credentials
    /// were issued (RFC 3339).
    pub fn assumed_role(
        account_id: &str,
        role_name: &str,
        role_id: &str,
        session_name: &str,
        access_key_id: &str,
        creation_date: &str,
        mfa_authenticated: bool,
    ) -> UserIdentity {
        UserIdentity {
            identity_type: "AssumedRole".to_string(),
            principal_id: Some(format!("{role_id}:{session_name}")),
            arn: Some(format!(
                "arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}"
            )),
            account_id: Some(account_id.to_string()),
            access_key_id: Some(access_key_id.to_string()),
            user_name: None,
            session_context: Some(SessionContext {
                attributes: SessionAttributes {
                    creation_date: creation_date.to_string(),
                    mfa_authenticated: mfa_authenticated.to_string(),
                },
                session_issuer: Some(SessionIssuer {
                    issuer_type: "Role".to_string(),
                    principal_id: role_id.to_string(),
                    arn: format!("arn:aws:iam::{account_id}:role/{role_name}"),
                    account_id: account_id.to_string(),
                    user_name: role_name.to_string(),
                }),
            }),
            invoked_by: None,
        }
    }

    /// keyroll itself (`AWSService`, invoked by `keyroll.local`).
    pub fn keyroll() -> UserIdentity {
        UserIdentity {
            identity_type: "AWSService".to_string(),
            invoked_by: Some(KEYROLL_SOURCE.to_string()),
            ..UserIdentity::default()
        }
    }
}

/// `userIdentity.sessionContext`: for temporary credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    pub attributes: SessionAttributes,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_issuer: Option<SessionIssuer>,
}

/// `sessionContext.attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes {
    /// When the temporary credentials were issued (RFC 3339, UTC).
    pub creation_date: String,
    /// `"true"` or `"false"`, a string as in CloudTrail.
    pub mfa_authenticated: String,
}

/// `sessionContext.sessionIssuer`: the role whose session made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    /// `Role` for assumed roles.
    #[serde(rename = "type")]
    pub issuer_type: String,
    pub principal_id: String,
    pub arn: String,
    pub account_id: String,
    pub user_name: String,
}

/// An entry of `resources`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "accountId")]
    pub account_id: String,
    /// `AWS::SecretsManager::Secret`, `AWS::IAM::Role`, ...
    #[serde(rename = "type")]
    pub resource_type: String,
}

impl Resource {
    /// A Secrets Manager secret.
    pub fn secret(arn: &str, account_id: &str) -> Resource {
        Resource {
            arn: arn.to_string(),
            account_id: account_id.to_string(),
            resource_type: "AWS::SecretsManager::Secret".to_string(),
        }
    }
}

/// `eventTime`: RFC 3339 in UTC to the second (`2026-12-07T03:04:05Z`), as CloudTrail writes
/// it; any RFC 3339 time is read.
pub(crate) mod seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        use chrono::{Datelike, Timelike};
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        // `YYYY-MM-DDTHH:MM:SSZ` by hand: this runs for every record appended.
        let mut b = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second().min(59));
        // Only ASCII digits and separators were written.
        s.serialize_str(std::str::from_utf8(&b).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn event_ids_are_version_4_and_distinct() {
        let ids: std::collections::HashSet<Uuid> = (0..10_000).map(|_| event_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|u| u.get_version_num() == 4));
    }

    #[test]
    fn serialises_with_cloudtrail_field_names_and_omits_none() {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 3, 4, 5).unwrap();
        let mut r = AuditRecord::api_call(t, SECRETS_MANAGER_SOURCE, "GetSecretValue");
        r.user_identity = UserIdentity::iam_user("111122223333", "alice", "AKIDEXAMPLE");
        r.aws_region = "eu-west-1".into();
        r.source_ip_address = Some("127.0.0.1".into());
        r.request_id = Some("req-1".into());
        r.resources.push(Resource::secret(
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:a-AbCdEf",
            "111122223333",
        ));
        let v: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["eventTime"], "2026-12-07T03:04:05Z");
        assert_eq!(v["eventVersion"], "1.11");
        assert_eq!(v["sourceIPAddress"], "127.0.0.1");
        assert_eq!(v["requestID"], "req-1");
        assert_eq!(v["eventID"], r.event_id.to_string());
        assert_eq!(v["userIdentity"]["type"], "IAMUser");
        assert_eq!(v["userIdentity"]["accessKeyId"], "AKIDEXAMPLE");
        assert!(
            v["resources"][0]["ARN"]
                .as_str()
                .unwrap()
                .ends_with(":secret:a-AbCdEf")
        );
        assert_eq!(v["resources"][0]["type"], "AWS::SecretsManager::Secret");
        assert!(v["requestParameters"].is_null());
        assert!(v.get("errorCode").is_none());
        assert!(v.get("userAgent").is_none());
        let back: AuditRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn event_time_format_matches_rfc3339_seconds() {
        for (secs, nanos) in [
            (0, 0),
            (1_796_612_645, 5),
            (951_782_400, 0),
            (4_102_444_799, 999_999_999),
        ] {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            let r = AuditRecord::api_call(t, STS_SOURCE, "GetCallerIdentity");
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["eventTime"], t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
    }

    #[test]
    fn event_time_is_whole_seconds() {
        let t = Utc.timestamp_opt(1_796_612_645, 987_654_321).unwrap();
        let r = AuditRecord::api_call(t, STS_SOURCE, "GetCallerIdentity");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["eventTime"], "2026-12-07T03:04:05Z");
    }

    #[test]
    fn session_context_shape() {
        let id = UserIdentity::assumed_role(
            "111122223333",
            "rotator",
            "AROAEXAMPLE",
            "nightly",
            "ASIAEXAMPLE",
            "2026-12-07T03:00:00Z",
            false,
        );
        let v = serde_json::to_value(&id).unwrap();
        assert_eq!(v["type"], "AssumedRole");
        assert_eq!(
            v["arn"],
            "arn:aws:sts::111122223333:assumed-role/rotator/nightly"
        );
        assert_eq!(v["principalId"], "AROAEXAMPLE:nightly");
        assert!(v.get("userName").is_none());
        assert_eq!(
            v["sessionContext"]["attributes"]["creationDate"],
            "2026-12-07T03:00:00Z"
        );
        assert_eq!(
            v["sessionContext"]["sessionIssuer"]["arn"],
            "arn:aws:iam::111122223333:role/rotator"
        );
        assert_eq!(
            v["sessionContext"]["attributes"]["mfaAuthenticated"],
            "false"
        );
        assert_eq!(v["sessionContext"]["sessionIssuer"]["type"], "Role");
        assert_eq!(v["sessionContext"]["sessionIssuer"]["userName"], "rotator");
    }

    #[test]
    fn debug_shows_keys_not_values() {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
        let mut r = AuditRecord::api_call(t, SECRETS_MANAGER_SOURCE, "CreateSecret");
        r.request_parameters =
            serde_json::json!({"Name": "n", "Description": "visible-only-as-a-key"});
        let d = format!("{r:?}");
        assert!(d.contains("Description"));
        assert!(!d.contains("visible-only-as-a-key"));
    }
}
