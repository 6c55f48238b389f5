//! Redaction: what of a request or response may go into the trail.
//!
//! The rule is an allow-list, twice over:
//!
//! 1. each operation names the top-level keys it may keep ([`op_keys`]); every other key is
//!    dropped, so a member AWS adds tomorrow stays out until someone lists it here;
//! 2. each kept key has one shape ([`shape`]): a scalar, a list of scalars, an object (whose
//!    own keys are again allow-listed), a list of such objects, or a map from free-form keys
//!    (version ids) to lists of scalars (staging labels). A value that does not have its
//!    key's shape is dropped whole, never walked into.
//!
//! On top of both, [`is_secret_bearing`] vetoes any key that looks like it carries a secret
//! (`*Secret*` but for the known identifiers, `*Password*` but `PasswordLength`, `*Token*`
//! but `ClientRequestToken` and `NextToken`, `*AccessKey*` but `AccessKeyId`), wherever
//! it is; a unit test checks that no allow-listed key trips it, so the veto only matters if
//! someone lists a wrong key later.

use serde_json::{Map, Value};

/// What a kept key may hold.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A string, number, boolean or null.
    Scalar,
    /// A list of scalars.
    ScalarList,
    /// An object with these keys (each again by its [`shape`]).
    Object(&'static [&'static str]),
    /// A list of such objects.
    ObjectList(&'static [&'static str]),
    /// An object with free-form keys whose values are lists of scalars
    /// (`VersionIdsToStages`).
    LabelMap,
}

const TAG: &[&str] = &["Key", "Value"];
const FILTER: &[&str] = &["Key", "Values"];
const REPLICA_REGION: &[&str] = &["Region", "KmsKeyId"];
const REPLICATION_STATUS: &[&str] = &[
    "Region",
    "KmsKeyId",
    "Status",
    "StatusMessage",
    "LastAccessedDate",
];
const ROTATION_RULES: &[&str] = &["AutomaticallyAfterDays", "Duration", "ScheduleExpression"];
const VERSION_ENTRY: &[&str] = &[
    "VersionId",
    "VersionStages",
    "LastAccessedDate",
    "CreatedDate",
    "KmsKeyIds",
];
/// `SecretValues` entries of `BatchGetSecretValue`: identifiers only.
const SECRET_VALUE_ENTRY: &[&str] = &["ARN", "Name", "VersionId", "VersionStages", "CreatedDate"];
const API_ERROR: &[&str] = &["SecretId", "ErrorCode", "Message"];
const VALIDATION_ERROR: &[&str] = &["CheckName", "ErrorMessage"];
const SECRET_LIST_ENTRY: &[&str] = &[
    "ARN",
    "Name",
    "Type",
    "Description",
    "KmsKeyId",
    "RotationEnabled",
    "RotationLambdaARN",
    "RotationRules",
    "LastRotatedDate",
    "LastChangedDate",
    "LastAccessedDate",
    "DeletedDate",
    "NextRotationDate",
    "Tags",
    "SecretVersionsToStages",
    "OwningService",
    "CreatedDate",
    "PrimaryRegion",
];
/// STS `Credentials`: the access key id and expiry, never the secret key or token.
const CREDENTIALS: &[&str] = &["AccessKeyId", "Expiration"];
const ASSUMED_ROLE_USER: &[&str] = &["AssumedRoleId", "Arn"];

/// The shape of a key wherever it appears; `None` for keys never kept.
fn shape(key: &str) -> Option<Shape> {
    use Shape::*;
    Some(match key {
        "SecretId"
        | "Name"
        | "ARN"
        | "Arn"
        | "VersionId"
        | "ClientRequestToken"
        | "Description"
        | "KmsKeyId"
        | "Type"
        | "ForceOverwriteReplicaSecret"
        | "RecoveryWindowInDays"
        | "ForceDeleteWithoutRecovery"
        | "DeletionDate"
        | "MaxResults"
        | "NextToken"
        | "IncludeDeprecated"
        | "IncludePlannedDeletion"
        | "SortOrder"
        | "SortBy"
        | "RotationLambdaARN"
        | "RotateImmediately"
        | "RotationEnabled"
        | "MoveToVersionId"
        | "RemoveFromVersionId"
        | "VersionStage"
        | "ResourcePolicy"
        | "BlockPublicPolicy"
        | "PrimaryRegion"
        | "CreatedDate"
        | "LastChangedDate"
        | "LastAccessedDate"
        | "LastRotatedDate"
        | "NextRotationDate"
        | "DeletedDate"
        | "OwningService"
        | "PasswordLength"
        | "ExcludeCharacters"
        | "ExcludeNumbers"
        | "ExcludePunctuation"
        | "ExcludeUppercase"
        | "ExcludeLowercase"
        | "IncludeSpace"
        | "RequireEachIncludedType"
        | "PolicyValidationPassed"
        | "Key"
        | "Value"
        | "Region"
        | "Status"
        | "StatusMessage"
        | "AutomaticallyAfterDays"
        | "Duration"
        | "ScheduleExpression"
        | "ErrorCode"
        | "Message"
        | "CheckName"
        | "ErrorMessage"
        | "RoleArn"
        | "RoleSessionName"
        | "DurationSeconds"
        | "SerialNumber"
        | "SourceIdentity"
        | "AccessKeyId"
        | "Expiration"
        | "AssumedRoleId"
        | "UserId"
        | "Account"
        | "PackedPolicySize"
        | "Action"
        | "Version" => Scalar,
        "VersionStages"
        | "TagKeys"
        | "TransitiveTagKeys"
        | "RemoveReplicaRegions"
        | "SecretIdList"
        | "Values"
        | "KmsKeyIds" => ScalarList,
        "Tags" => ObjectList(TAG),
        "Filters" => ObjectList(FILTER),
        "AddReplicaRegions" => ObjectList(REPLICA_REGION),
        "ReplicationStatus" => ObjectList(REPLICATION_STATUS),
        "RotationRules" => Object(ROTATION_RULES),
        "Versions" => ObjectList(VERSION_ENTRY),
        "SecretValues" => ObjectList(SECRET_VALUE_ENTRY),
        "Errors" => ObjectList(API_ERROR),
        "ValidationErrors" => ObjectList(VALIDATION_ERROR),
        "SecretList" => ObjectList(SECRET_LIST_ENTRY),
        "VersionIdsToStages" | "SecretVersionsToStages" => LabelMap,
        "Credentials" => Object(CREDENTIALS),
        "AssumedRoleUser" => Object(ASSUMED_ROLE_USER),
        _ => return None,
    })
}

/// The top-level keys an operation's request or response may keep. Unknown operations keep
/// only the identifiers every operation shares.
fn op_keys(op: &str) -> &'static [&'static str] {
    const COMMON: &[&str] = &["SecretId", "ARN", "Name", "VersionId"];
    match op {
        "CreateSecret" => &[
            "Name",
            "ClientRequestToken",
            "Description",
            "KmsKeyId",
            "Tags",
            "AddReplicaRegions",
            "ForceOverwriteReplicaSecret",
            "ARN",
            "VersionId",
            "ReplicationStatus",
        ],
        "GetSecretValue" => &[
            "SecretId",
            "VersionId",
            "VersionStage",
            "ARN",
            "Name",
            "VersionStages",
            "CreatedDate",
        ],
        "BatchGetSecretValue" => &[
            "SecretIdList",
            "Filters",
            "MaxResults",
            "NextToken",
            "SecretValues",
            "Errors",
        ],
        "PutSecretValue" => &[
            "SecretId",
            "ClientRequestToken",
            "VersionStages",
            "ARN",
            "Name",
            "VersionId",
        ],
        "UpdateSecret" => &[
            "SecretId",
            "ClientRequestToken",
            "Description",
            "KmsKeyId",
            "ARN",
            "Name",
            "VersionId",
        ],
        "UpdateSecretVersionStage" => &[
            "SecretId",
            "VersionStage",
            "RemoveFromVersionId",
            "MoveToVersionId",
            "ARN",
            "Name",
        ],
        "DescribeSecret" => &[
            "SecretId",
            "ARN",
            "Name",
            "Description",
            "KmsKeyId",
            "RotationEnabled",
            "RotationLambdaARN",
            "RotationRules",
            "LastRotatedDate",
            "LastChangedDate",
            "LastAccessedDate",
            "DeletedDate",
            "NextRotationDate",
            "Tags",
            "VersionIdsToStages",
            "OwningService",
            "CreatedDate",
            "PrimaryRegion",
            "ReplicationStatus",
        ],
        "ListSecrets" => &[
            "IncludePlannedDeletion",
            "MaxResults",
            "NextToken",
            "Filters",
            "SortOrder",
            "SortBy",
            "SecretList",
        ],
        "ListSecretVersionIds" => &[
            "SecretId",
            "MaxResults",
            "NextToken",
            "IncludeDeprecated",
            "Versions",
            "ARN",
            "Name",
        ],
        "DeleteSecret" => &[
            "SecretId",
            "RecoveryWindowInDays",
            "ForceDeleteWithoutRecovery",
            "ARN",
            "Name",
            "DeletionDate",
        ],
        "RestoreSecret" => &["SecretId", "ARN", "Name"],
        "TagResource" => &["SecretId", "Tags"],
        "UntagResource" => &["SecretId", "TagKeys"],
        "RotateSecret" => &[
            "SecretId",
            "ClientRequestToken",
            "RotationLambdaARN",
            "RotationRules",
            "RotateImmediately",
            "ARN",
            "Name",
            "VersionId",
        ],
        "CancelRotateSecret" => &["SecretId", "ARN", "Name", "VersionId"],
        "GetRandomPassword" => &[
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludeNumbers",
            "ExcludePunctuation",
            "ExcludeUppercase",
            "ExcludeLowercase",
            "IncludeSpace",
            "RequireEachIncludedType",
        ],
        "PutResourcePolicy" => &[
            "SecretId",
            "ResourcePolicy",
            "BlockPublicPolicy",
            "ARN",
            "Name",
        ],
        "GetResourcePolicy" => &["SecretId", "ARN", "Name", "ResourcePolicy"],
        "DeleteResourcePolicy" => &["SecretId", "ARN", "Name"],
        "ValidateResourcePolicy" => &[
            "SecretId",
            "ResourcePolicy",
            "PolicyValidationPassed",
            "ValidationErrors",
        ],
        "ReplicateSecretToRegions" => &[
            "SecretId",
            "AddReplicaRegions",
            "ForceOverwriteReplicaSecret",
            "ARN",
            "ReplicationStatus",
        ],
        "RemoveRegionsFromReplication" => &[
            "SecretId",
            "RemoveReplicaRegions",
            "ARN",
            "ReplicationStatus",
        ],
        "StopReplicationToReplica" => &["SecretId", "ARN"],
        "GetCallerIdentity" => &["Action", "Version", "UserId", "Account", "Arn"],
        "AssumeRole" => &[
            "Action",
            "Version",
            "RoleArn",
            "RoleSessionName",
            "DurationSeconds",
            "SerialNumber",
            "SourceIdentity",
            "Tags",
            "TransitiveTagKeys",
            "Credentials",
            "AssumedRoleUser",
            "PackedPolicySize",
        ],
        "GetSessionToken" => &[
            "Action",
            "Version",
            "DurationSeconds",
            "SerialNumber",
            "Credentials",
        ],
        "GetAccessKeyInfo" => &["Action", "Version", "AccessKeyId", "Account"],
        _ => COMMON,
    }
}

/// Keys that look like they carry a secret, whatever the allow-lists say.
pub fn is_secret_bearing(key: &str) -> bool {
    // Case-insensitive substring tests without lower-casing into a new string (this runs
    // for every allow-listed key of every record).
    let has = |needle: &str| {
        key.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    let identifier = matches!(
        key,
        "SecretId"
            | "SecretIdList"
            | "SecretVersionsToStages"
            | "SecretList"
            | "SecretValues"
            | "ForceOverwriteReplicaSecret"
    );
    (has("secret") && !identifier)
        || (has("password") && key != "PasswordLength")
        || (has("token") && key != "ClientRequestToken" && key != "NextToken")
        || (has("accesskey") && key != "AccessKeyId")
        || has("privatekey")
        || (has("credential") && key != "Credentials")
}

/// What of `value` (a Secrets Manager or STS request or response body, for operation `op`)
/// may be written to the audit trail: only allow-listed keys of the shapes they are known to
/// have. `SecretString`, `SecretBinary`, `RandomPassword`, `SecretAccessKey`,
/// `SessionToken`, `TokenCode` and anything not known to be safe are dropped;
/// `BatchGetSecretValue`'s `SecretValues` keep only `ARN`, `Name`, `VersionId`,
/// `VersionStages` and `CreatedDate`. `null` stays `null`; any other non-object becomes
/// `null`.
pub fn sanitize_parameters(op: &str, value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(keep(map, op_keys(op))),
        _ => Value::Null,
    }
}

fn keep(mut map: Map<String, Value>, allowed: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for &key in allowed {
        if is_secret_bearing(key) {
            continue;
        }
        let (Some(value), Some(shape)) = (map.remove(key), shape(key)) else {
            continue;
        };
        if let Some(v) = conform(value, shape) {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// Writes `sanitize_parameters(op, value.clone())` as JSON to `out` without building it:
/// the same allow-lists and shapes, walking `value` by reference (the audit trail's hot
/// path: one record per request). The bytes are those `serde_json` writes for the
/// sanitised value (a test checks it).
pub(crate) fn write_sanitized(
    op: &str,
    value: &Value,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    match value {
        Value::Object(map) => write_kept(map, op_keys(op), out),
        _ => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn write_kept(
    map: &Map<String, Value>,
    allowed: &[&str],
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    out.push(b'{');
    let mut first = true;
    for &key in allowed {
        // Present keys only are vetoed and shaped (the same keys `keep` keeps).
        let Some(value) = find(map, key) else {
            continue;
        };
        if is_secret_bearing(key) {
            continue;
        }
        let Some(shape) = shape(key) else {
            continue;
        };
        if !conforms(value, shape) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        crate::call::string(out, key)?;
        out.push(b':');
        write_conformed(value, shape, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Whether a string parameter `key` of `op` is written into the record as it is: allowed for
/// the operation, not secret-bearing, and a scalar. A value that passes this is in the
/// record; one that does not may be one the record leaves out.
pub(crate) fn recorded_as_is(op: &str, key: &str) -> bool {
    op_keys(op).contains(&key)
        && !is_secret_bearing(key)
        && matches!(shape(key), Some(Shape::Scalar))
}

/// `map.get(key)`; a request's few parameters are compared one by one instead of hashing
/// `key` (this runs for every allowed key of every audited request).
fn find<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    if map.len() <= 8 {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
    }
}

/// Whether [`conform`] keeps `value` (as something) for `shape`.
fn conforms(value: &Value, shape: Shape) -> bool {
    match (shape, value) {
        (Shape::Scalar, v) => scalar(v),
        (Shape::ScalarList, Value::Array(items)) => items.iter().all(scalar),
        (Shape::Object(_), Value::Object(_))
        | (Shape::ObjectList(_), Value::Array(_))
        | (Shape::LabelMap, Value::Object(_)) => true,
        _ => false,
    }
}

/// Writes what [`conform`] keeps of `value` (which [`conforms`]).
fn write_conformed(value: &Value, shape: Shape, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match (shape, value) {
        (Shape::Object(keys), Value::Object(map)) => write_kept(map, keys, out),
        (Shape::ObjectList(keys), Value::Array(items)) => {
            out.push(b'[');
            let mut first = true;
            for item in items {
                if let Value::Object(map) = item {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_kept(map, keys, out)?;
                }
            }
            out.push(b']');
            Ok(())
        }
        (Shape::LabelMap, Value::Object(map)) => {
            out.push(b'{');
            let mut first = true;
            for (k, v) in map {
                if matches!(v, Value::Array(items) if items.iter().all(scalar)) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    serde_json::to_writer(&mut *out, k)?;
                    out.push(b':');
                    serde_json::to_writer(&mut *out, v)?;
                }
            }
            out.push(b'}');
            Ok(())
        }
        // Scalars and lists of scalars are kept as they are.
        (_, Value::String(v)) => crate::call::string(out, v),
        (_, v) => serde_json::to_writer(&mut *out, v),
    }
}

fn scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn conform(value: Value, shape: Shape) -> Option<Value> {
    match (shape, value) {
        (Shape::Scalar, v) if scalar(&v) => Some(v),
        (Shape::ScalarList, Value::Array(items)) if items.iter().all(scalar) => {
            Some(Value::Array(items))
        }
        (Shape::Object(keys), Value::Object(map)) => Some(Value::Object(keep(map, keys))),
        (Shape::ObjectList(keys), Value::Array(items)) => Some(Value::Array(
            items
                .into_iter()
                .filter_map(|item| match item {
                    Value::Object(map) => Some(Value::Object(keep(map, keys))),
                    _ => None,
                })
                .collect(),
        )),
        (Shape::LabelMap, Value::Object(map)) => Some(Value::Object(
            map.into_iter()
                .filter(|(_, v)| matches!(v, Value::Array(items) if items.iter().all(scalar)))
                .collect(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SENTINEL: &str = "SENTINEL-c0ffee-do-not-log";

    const OPS: &[&str] = &[
        "CreateSecret",
        "GetSecretValue",
        "BatchGetSecretValue",
        "PutSecretValue",
        "UpdateSecret",
        "UpdateSecretVersionStage",
        "DescribeSecret",
        "ListSecrets",
        "ListSecretVersionIds",
        "DeleteSecret",
        "RestoreSecret",
        "TagResource",
        "UntagResource",
        "RotateSecret",
        "CancelRotateSecret",
        "GetRandomPassword",
        "PutResourcePolicy",
        "GetResourcePolicy",
        "DeleteResourcePolicy",
        "ValidateResourcePolicy",
        "ReplicateSecretToRegions",
        "RemoveRegionsFromReplication",
        "StopReplicationToReplica",
        "GetCallerIdentity",
        "AssumeRole",
        "GetSessionToken",
        "GetAccessKeyInfo",
        "SomethingNew",
    ];

    /// Every secret-carrying member of every request and response, at the top level and
    /// nested where AWS nests them, plus unknown members and members of the wrong shape.
    fn poisoned() -> Value {
        json!({
            "SecretId": "demo/token",
            "Name": "demo/token",
            "ARN": "arn:aws:secretsmanager:us-east-1:000000000000:secret:demo/token-AbCdEf",
            "SecretString": SENTINEL,
            "SecretBinary": SENTINEL,
            "RandomPassword": SENTINEL,
            "Password": SENTINEL,
            "SecretAccessKey": SENTINEL,
            "SessionToken": SENTINEL,
            "TokenCode": SENTINEL,
            "ExternalId": SENTINEL,
            "Policy": SENTINEL,
            "SomeFutureMember": SENTINEL,
            "Description": {"SecretString": SENTINEL},
            "VersionStages": ["AWSCURRENT", {"SecretString": SENTINEL}],
            "Tags": [{"Key": "k", "Value": "v", "SecretString": SENTINEL}, SENTINEL],
            "RotationRules": {"AutomaticallyAfterDays": 7, "Password": SENTINEL},
            "VersionIdsToStages": {"v1": ["AWSCURRENT"], "v2": SENTINEL, "v3": [{"x": SENTINEL}]},
            "SecretValues": [{
                "ARN": "arn:x", "Name": "n", "VersionId": "v1", "VersionStages": ["AWSCURRENT"],
                "SecretString": SENTINEL, "SecretBinary": SENTINEL
            }],
            "SecretList": [{"Name": "n", "SecretString": SENTINEL, "Tags": [{"Key": SENTINEL.len(), "Password": SENTINEL}]}],
            "Credentials": {
                "AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": SENTINEL,
                "SessionToken": SENTINEL, "Expiration": "2026-12-07T04:00:00Z"
            },
            "Errors": [{"SecretId": "x", "ErrorCode": "E", "Message": "m", "SecretString": SENTINEL}],
            "Filters": [{"Key": "name", "Values": ["a", {"SecretString": SENTINEL}]}],
        })
    }

    #[test]
    fn no_operation_lets_a_secret_through() {
        for op in OPS {
            let out = sanitize_parameters(op, poisoned());
            let text = serde_json::to_string(&out).unwrap();
            assert!(!text.contains(SENTINEL), "{op} leaked: {text}");
        }
    }

    #[test]
    fn keeps_what_an_auditor_needs() {
        let out = sanitize_parameters("BatchGetSecretValue", poisoned());
        assert_eq!(
            out["SecretValues"],
            json!([{"ARN": "arn:x", "Name": "n", "VersionId": "v1", "VersionStages": ["AWSCURRENT"]}])
        );
        let out = sanitize_parameters("AssumeRole", poisoned());
        assert_eq!(
            out["Credentials"],
            json!({"AccessKeyId": "ASIAEXAMPLE", "Expiration": "2026-12-07T04:00:00Z"})
        );
        let out = sanitize_parameters("DescribeSecret", poisoned());
        assert_eq!(out["VersionIdsToStages"], json!({"v1": ["AWSCURRENT"]}));
        assert_eq!(out["RotationRules"], json!({"AutomaticallyAfterDays": 7}));
        assert_eq!(out["Tags"], json!([{"Key": "k", "Value": "v"}]));
        assert!(
            out.get("Description").is_none(),
            "wrong shape is dropped whole"
        );
        let out = sanitize_parameters(
            "PutSecretValue",
            json!({"SecretId": "a", "ClientRequestToken": "t-1", "SecretString": SENTINEL, "VersionStages": ["AWSCURRENT"]}),
        );
        assert_eq!(
            out,
            json!({"SecretId": "a", "ClientRequestToken": "t-1", "VersionStages": ["AWSCURRENT"]})
        );
        let out = sanitize_parameters("SomethingNew", poisoned());
        assert_eq!(
            out.as_object().unwrap().len(),
            3,
            "unknown operations keep identifiers only"
        );
    }

    /// Inputs for the writer's equivalence: the poisoned body, well-formed ones, and values
    /// of every wrong shape.
    fn samples() -> Vec<Value> {
        vec![
            poisoned(),
            json!({}),
            json!({"SecretId": "prod/app/db", "VersionStage": "AWSCURRENT", "SecretString": SENTINEL}),
            json!({"SecretId": "a\"b\\c\u{1}\n\u{7f}é\u{2028}", "VersionId": 7, "VersionStage": null}),
            json!({"SecretId": ["x"], "VersionId": {"a": 1}, "Tags": {"Key": "k"}, "Filters": "f"}),
            json!({"Tags": [], "VersionStages": [], "SecretIdList": [1, true, null, "s", 2.5]}),
            json!({"VersionIdsToStages": {"v": [], "w": [["x"]], "z": ["A", "B"]}, "RotationRules": {}}),
            json!({"ReplicationStatus": [{"Region": "eu-west-1", "Status": "InSync", "X": SENTINEL}, 3, [], {}]}),
            json!("SecretId"),
            json!([{"SecretId": "x"}]),
            json!(42),
            Value::Null,
        ]
    }

    #[test]
    fn the_borrowing_writer_writes_what_sanitize_keeps() {
        for op in OPS {
            for v in samples() {
                let expected = serde_json::to_vec(&sanitize_parameters(op, v.clone())).unwrap();
                let mut out = Vec::new();
                write_sanitized(op, &v, &mut out).unwrap();
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{op} {v}"
                );
            }
        }
    }

    #[test]
    fn allow_lists_name_each_key_once() {
        let mut lists: Vec<&[&str]> = OPS.iter().map(|op| op_keys(op)).collect();
        lists.extend([
            TAG,
            FILTER,
            REPLICA_REGION,
            REPLICATION_STATUS,
            ROTATION_RULES,
            VERSION_ENTRY,
            SECRET_VALUE_ENTRY,
            API_ERROR,
            VALIDATION_ERROR,
            SECRET_LIST_ENTRY,
            CREDENTIALS,
            ASSUMED_ROLE_USER,
        ]);
        for list in lists {
            let mut seen = std::collections::HashSet::new();
            for k in list {
                assert!(seen.insert(k), "{k} listed twice in {list:?}");
            }
        }
    }

    #[test]
    fn the_veto_ignores_case() {
        for key in [
            "SECRETSTRING",
            "secretString",
            "xPassWordx",
            "SessionTOKEN",
            "aws_AccessKey",
        ] {
            assert!(is_secret_bearing(key), "{key}");
        }
        for key in [
            "SecretId",
            "ClientRequestToken",
            "NextToken",
            "AccessKeyId",
            "Credentials",
            "Name",
            "",
        ] {
            assert!(!is_secret_bearing(key), "{key}");
        }
    }

    #[test]
    fn non_objects_become_null() {
        assert_eq!(
            sanitize_parameters("GetSecretValue", Value::Null),
            Value::Null
        );
        assert_eq!(
            sanitize_parameters("GetSecretValue", json!(SENTINEL)),
            Value::Null
        );
        assert_eq!(
            sanitize_parameters("GetSecretValue", json!([SENTINEL])),
            Value::Null
        );
    }

    #[test]
    fn no_allow_listed_key_looks_secret_bearing() {
        let mut all: Vec<&str> = Vec::new();
        for op in OPS {
            all.extend(op_keys(op));
        }
        for nested in [
            TAG,
            FILTER,
            REPLICA_REGION,
            REPLICATION_STATUS,
            ROTATION_RULES,
            VERSION_ENTRY,
            SECRET_VALUE_ENTRY,
            API_ERROR,
            VALIDATION_ERROR,
            SECRET_LIST_ENTRY,
            CREDENTIALS,
            ASSUMED_ROLE_USER,
        ] {
            all.extend(nested);
        }
        for key in all {
            assert!(
                !is_secret_bearing(key),
                "{key} is allow-listed but looks secret"
            );
            assert!(
                shape(key).is_some(),
                "{key} is allow-listed but has no shape"
            );
        }
        for key in [
            "SecretString",
            "SecretBinary",
            "SecretAccessKey",
            "SessionToken",
            "Password",
            "RandomPassword",
            "TokenCode",
        ] {
            assert!(is_secret_bearing(key), "{key}");
            assert!(shape(key).is_none(), "{key}");
        }
    }
}
