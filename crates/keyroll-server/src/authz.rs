//! Authorization of every API call, as AWS IAM does it for Secrets Manager: which action and
//! resource each operation is checked against, which condition keys it supplies (AWS's service
//! authorization reference), the principal's identity policies and the secret's resource
//! policy combined by [`keyroll_policy::evaluate`], and AWS's `AccessDeniedException` wording.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use keyroll_core::model::SecretRecord;
use keyroll_core::time::Timestamp;
use keyroll_policy::{Context, CtxValue, Decision, DecisionMemo, Policy, PolicyType, Request};
use serde_json::{Map, Value};

use crate::dispatch::Operation;
use crate::identity::{Principal, PrincipalKind};
use crate::wire::ApiError;

/// What the transport knows about a request (for `aws:SourceIp`, `aws:SecureTransport`, …
/// and the audit trail).
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub source_ip: IpAddr,
    pub secure_transport: bool,
    pub user_agent: Option<String>,
    pub now: Timestamp,
}

/// The request body as JSON, parsed once for the condition keys and the audit trail.
pub type RequestParams = Map<String, Value>;

/// Parses a JSON 1.1 body into its top-level object (empty for an empty or non-object body:
/// the operation's own parser reports malformed requests).
pub fn request_params(body: &[u8]) -> RequestParams {
    if body.is_empty() {
        return Map::new();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Operations authorized on `*` rather than on a secret (AWS's reference lists no resource
/// type for them).
pub fn on_all_resources(op: Operation) -> bool {
    matches!(
        op,
        Operation::ListSecrets | Operation::GetRandomPassword | Operation::BatchGetSecretValue
    )
}

/// The secret ARN a request names, for authorization when the secret does not exist (yet):
/// the ARN as given, or one built from the name. `CreateSecret`'s ARN gets a placeholder
/// suffix so that `…:secret:NAME-??????` patterns match as they will once it exists.
pub fn nominal_arn(op: Operation, params: &RequestParams, region: &str, account: &str) -> String {
    let key = if op == Operation::CreateSecret {
        "Name"
    } else {
        "SecretId"
    };
    let id = params.get(key).and_then(Value::as_str).unwrap_or("");
    if id.starts_with("arn:") {
        return id.to_string();
    }
    let suffix = if op == Operation::CreateSecret {
        "-xxxxxx"
    } else {
        ""
    };
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{id}{suffix}")
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Parsed resource policies (parsing a policy on every request would dominate the cost of
/// authorization). A stored policy's text is an `Arc<str>` that every clone of its record
/// shares, so the cache first looks up that allocation: no hashing or comparing of the text
/// per request. A text met in a new allocation (a record read again from disk, another
/// secret with the same policy) is looked up by content, then remembered by allocation.
#[derive(Debug, Default)]
pub struct PolicyCache {
    /// By the address of the text's allocation; the entry holds the `Arc`, so no other text
    /// can be at that address while it exists.
    by_allocation: RwLock<FastMap<usize, Seen>>,
    by_text: RwLock<FastMap<Arc<str>, Arc<Policy>>>,
}

/// A text the cache was given, held so that its address stays its own, and its parse.
#[derive(Debug)]
struct Seen {
    text: Arc<str>,
    policy: Arc<Policy>,
}

/// Entries per map before it is emptied (policies are at most 20 KiB).
const POLICY_CACHE_MAX: usize = 4096;

impl PolicyCache {
    /// The parsed policy, or `None` when the stored text does not parse (it was validated on
    /// `PutResourcePolicy`; a policy that no longer parses grants nothing).
    ///
    /// Answered first from this thread's own handles ([`LOCAL_POLICIES`]), so that a request
    /// touches neither a lock nor a reference count that the other threads also write.
    pub fn get(&self, text: &Arc<str>) -> Option<Arc<Policy>> {
        let hit = LOCAL_POLICIES.with(|local| {
            let local = local.try_borrow().ok()?;
            let entry = local.iter().find(|e| Arc::ptr_eq(&e.text, text))?;
            Some(entry.mine.clone())
        });
        if hit.is_some() {
            return hit;
        }
        let shared = self.shared(text)?;
        LOCAL_POLICIES.with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return Some(shared);
            };
            // One handle per parse and thread: the same text in another allocation answers
            // with the same object, as the shared maps do.
            let mine = local
                .iter()
                .find(|e| Arc::ptr_eq(&e.shared, &shared))
                .map(|e| e.mine.clone())
                .unwrap_or_else(|| Arc::new(Policy::clone(&shared)));
            if local.len() >= LOCAL_POLICIES_MAX {
                local.remove(0);
            }
            local.push(LocalPolicy {
                text: text.clone(),
                shared,
                mine: mine.clone(),
            });
            Some(mine)
        })
    }

    /// The parse shared by all threads: by allocation, then by text.
    fn shared(&self, text: &Arc<str>) -> Option<Arc<Policy>> {
        let at = Arc::as_ptr(text).cast::<u8>() as usize;
        if let Ok(m) = self.by_allocation.read()
            && let Some(seen) = m.get(&at)
            && Arc::ptr_eq(&seen.text, text)
        {
            return Some(seen.policy.clone());
        }
        let known = self
            .by_text
            .read()
            .ok()
            .and_then(|m| m.get(&**text).cloned());
        let p = match known {
            Some(p) => p,
            None => {
                let p = Arc::new(Policy::parse(text).ok()?);
                insert(&self.by_text, text.clone(), p.clone());
                p
            }
        };
        insert(
            &self.by_allocation,
            at,
            Seen {
                text: text.clone(),
                policy: p.clone(),
            },
        );
        Some(p)
    }
}

/// A thread's handle on a parsed policy: `mine` is a clone of `shared` (a `Policy` clone
/// shares its parse) with a reference count only this thread changes. Holding `text` keeps
/// its address from being reused while the entry exists. A parse depends on nothing but the
/// text, so the entries serve every [`PolicyCache`] of the process.
struct LocalPolicy {
    text: Arc<str>,
    shared: Arc<Policy>,
    mine: Arc<Policy>,
}

thread_local! {
    /// This thread's recently used resource policies, oldest first.
    static LOCAL_POLICIES: std::cell::RefCell<Vec<LocalPolicy>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Resource policies remembered per thread.
const LOCAL_POLICIES_MAX: usize = 16;

fn insert<K: std::hash::Hash + Eq, V>(map: &RwLock<FastMap<K, V>>, key: K, value: V) {
    if let Ok(mut m) = map.write() {
        if m.len() >= POLICY_CACHE_MAX {
            m.clear();
        }
        m.insert(key, value);
    }
}

/// One authorization question.
pub struct Question<'a> {
    pub op: Operation,
    /// The action checked: usually `secretsmanager:OP`; `BatchGetSecretValue` asks
    /// `secretsmanager:GetSecretValue` for each secret.
    pub action: &'a str,
    pub region: &'a str,
    pub principal: &'a Principal,
    pub params: &'a RequestParams,
    pub meta: &'a RequestMeta,
    /// The secret the call is about, when it exists.
    pub secret: Option<&'a SecretRecord>,
    /// The resource: the secret's ARN, a nominal ARN, or `*`.
    pub resource: &'a str,
}

thread_local! {
    /// This thread's recent decisions. A decision is reused only for the same policy objects,
    /// action, resource and principal, when every condition key the evaluation read answers
    /// the same again (`keyroll_policy::DecisionMemo`): what it saves is walking the
    /// policies' statements, which serving other requests has pushed out of the CPU's caches.
    static MEMO: std::cell::RefCell<DecisionMemo> =
        std::cell::RefCell::new(DecisionMemo::new(MEMO_CAPACITY));
}

/// Decisions remembered per thread.
const MEMO_CAPACITY: usize = 64;

/// Checks `q`; `Err` is the `AccessDeniedException` to answer.
pub fn check(q: &Question<'_>, cache: &PolicyCache) -> Result<(), ApiError> {
    let resource_policy = q
        .secret
        .and_then(|s| s.resource_policy.as_ref())
        .and_then(|t| cache.get(t));
    // Nearly every principal has one identity policy: no allocation for it.
    let one_policy;
    let several: Vec<&Policy>;
    let identity: &[&Policy] = match q.principal.policies.as_slice() {
        [] => &[],
        [p] => {
            one_policy = [p.as_ref()];
            &one_policy
        }
        all => {
            several = all.iter().map(|p| p.as_ref()).collect();
            &several
        }
    };
    let aliases: Vec<&str> = q.principal.aliases.iter().map(String::as_str).collect();
    let ctx = RequestContext { q };
    let request = Request {
        action: q.action,
        resource: q.resource,
        principal_arn: &q.principal.arn,
        principal_aliases: &aliases,
        account: &q.principal.account,
        context: &ctx,
    };
    let resource_policy = resource_policy.as_deref();
    let decision = MEMO.with(|memo| match memo.try_borrow_mut() {
        Ok(mut memo) => memo.evaluate(identity, resource_policy, &request),
        Err(_) => keyroll_policy::evaluate(identity, resource_policy, &request),
    });
    match decision {
        Decision::Allow => Ok(()),
        other => Err(denied(q.principal, q.action, q.resource, other)),
    }
}

/// AWS's message for a denied call.
pub fn denial_message(principal: &Principal, action: &str, resource: &str, d: Decision) -> String {
    let on = if resource == "*" {
        String::new()
    } else {
        format!(" on resource: {resource}")
    };
    let why = match d {
        Decision::ExplicitDeny(PolicyType::Identity) => {
            "with an explicit deny in an identity-based policy".to_string()
        }
        Decision::ExplicitDeny(PolicyType::Resource) => {
            "with an explicit deny in a resource-based policy".to_string()
        }
        _ => format!("because no identity-based policy allows the {action} action"),
    };
    format!(
        "User: {} is not authorized to perform: {action}{on} {why}",
        principal.arn
    )
}

fn denied(principal: &Principal, action: &str, resource: &str, d: Decision) -> ApiError {
    ApiError::bad_request(
        "AccessDeniedException",
        denial_message(principal, action, resource, d),
    )
}

/// The condition keys of one request.
struct RequestContext<'a> {
    q: &'a Question<'a>,
}

fn one<'a>(s: impl Into<Cow<'a, str>>) -> Option<CtxValue<'a>> {
    Some(CtxValue::One(s.into()))
}

fn boolean<'a>(b: bool) -> Option<CtxValue<'a>> {
    one(if b { "true" } else { "false" })
}

fn tag_value<'a>(
    tags: impl Iterator<Item = (&'a str, &'a str)>,
    key: &str,
) -> Option<CtxValue<'a>> {
    let mut found = None;
    for (k, v) in tags {
        if k.eq_ignore_ascii_case(key) {
            found = Some(v);
            if k == key {
                break;
            }
        }
    }
    found.map(|v| CtxValue::One(Cow::Borrowed(v)))
}

/// The condition keys that describe the principal itself, the same in every request
/// (Secrets Manager's and STS's): `aws:PrincipalTag/K`, `aws:username` (users only),
/// `aws:userid`, `aws:PrincipalArn` (a role session's role), `aws:PrincipalAccount`,
/// `aws:PrincipalType`.
pub fn principal_value<'a>(p: &'a Principal, key: &str) -> Option<CtxValue<'a>> {
    let (mut buf, mut long) = ([0u8; KEY_BUF], String::new());
    principal_value_of(p, Key::new(key, &mut buf, &mut long))
}

/// Condition keys are compared without regard to case (IAM's rule): a key is lowercased
/// once, on the stack when it fits (every key AWS defines does, tag keys included), and
/// every name below is compared with that.
const KEY_BUF: usize = 256;

/// A condition key as the policy wrote it, and lowercased.
#[derive(Clone, Copy)]
struct Key<'k> {
    text: &'k str,
    lower: &'k str,
}

impl<'k> Key<'k> {
    /// `text` lowercased into `buf`, or into `long` when it does not fit.
    fn new(text: &'k str, buf: &'k mut [u8; KEY_BUF], long: &'k mut String) -> Key<'k> {
        // ASCII lowercasing keeps UTF-8 valid, so the stack copy always reads back.
        let on_stack = buf.get_mut(..text.len()).and_then(|lower| {
            lower.copy_from_slice(text.as_bytes());
            lower.make_ascii_lowercase();
            std::str::from_utf8(lower).ok()
        });
        let lower = match on_stack {
            Some(lower) => lower,
            None => {
                *long = text.to_ascii_lowercase();
                long.as_str()
            }
        };
        Key { text, lower }
    }

    /// The rest of the key (as written) after a lowercase `prefix`.
    fn after(&self, prefix: &str) -> Option<&'k str> {
        self.lower
            .starts_with(prefix)
            .then(|| &self.text[prefix.len()..])
    }
}

fn principal_value_of<'a>(p: &'a Principal, key: Key<'_>) -> Option<CtxValue<'a>> {
    if let Some(tag) = key.after("aws:principaltag/") {
        return tag_value(p.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), tag);
    }
    match key.lower {
        "aws:username" => p.username().map(|u| CtxValue::One(Cow::Borrowed(u))),
        "aws:userid" => one(p.user_id.as_str()),
        "aws:principalarn" => match &p.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => one(role_arn.as_str()),
            PrincipalKind::User => one(p.arn.as_str()),
        },
        "aws:principalaccount" => one(p.account.as_str()),
        "aws:principaltype" => one(match p.kind {
            PrincipalKind::User => "User",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
        }),
        _ => None,
    }
}

/// `Tags` of a request (`[{"Key":..,"Value":..}]`).
fn request_tags(params: &RequestParams) -> impl Iterator<Item = (&str, &str)> {
    params
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t.get("Key")?.as_str()?,
                t.get("Value").and_then(Value::as_str).unwrap_or(""),
            ))
        })
}

/// `key` without `prefix`, compared without regard to case (IAM key names are not
/// case-sensitive).
pub fn strip_prefix_ci<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &key[prefix.len()..])
}

impl Context for RequestContext<'_> {
    fn get(&self, key: &str) -> Option<CtxValue<'_>> {
        let q = self.q;
        let p = q.principal;
        let params = q.params;
        let str_param = |name: &str| params.get(name).and_then(Value::as_str);
        let (mut buf, mut long) = ([0u8; KEY_BUF], String::new());
        let key = Key::new(key, &mut buf, &mut long);
        if let Some(v) = principal_value_of(p, key) {
            return Some(v);
        }
        if let Some(tag) = key
            .after("aws:resourcetag/")
            .or_else(|| key.after("secretsmanager:resourcetag/"))
        {
            let s = q.secret?;
            return tag_value(
                s.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
                tag,
            );
        }
        if let Some(tag) = key.after("aws:requesttag/") {
            return tag_value(request_tags(params), tag);
        }
        match key.lower {
            "aws:sourceip" => one(q.meta.source_ip.to_string()),
            "aws:securetransport" => boolean(q.meta.secure_transport),
            "aws:currenttime" => one(q
                .meta
                .now
                .to_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "aws:epochtime" => one(q.meta.now.millis().div_euclid(1000).to_string()),
            "aws:requestedregion" => one(q.region),
            "aws:useragent" => q
                .meta
                .user_agent
                .as_deref()
                .map(|u| CtxValue::One(u.into())),
            // Present only for temporary credentials, as in AWS.
            "aws:multifactorauthpresent" => p.issued_at.map(|_| {
                CtxValue::One(Cow::Borrowed(if p.mfa_authenticated() {
                    "true"
                } else {
                    "false"
                }))
            }),
            "aws:multifactorauthage" => p.mfa_authenticated_at.map(|t| {
                let age = (q.meta.now.millis().div_euclid(1000) - t).max(0);
                CtxValue::One(age.to_string().into())
            }),
            "aws:tokenissuetime" => p.issued_at.map(|t| {
                CtxValue::One(
                    Timestamp::from_millis(t.saturating_mul(1000))
                        .to_datetime()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        .into(),
                )
            }),
            "aws:tagkeys" => {
                let keys: Vec<Cow<'_, str>> = match q.op {
                    Operation::UntagResource => params
                        .get("TagKeys")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(Cow::Borrowed)
                        .collect(),
                    Operation::CreateSecret | Operation::TagResource => request_tags(params)
                        .map(|(k, _)| Cow::Borrowed(k))
                        .collect(),
                    _ => return None,
                };
                Some(CtxValue::Many(keys))
            }
            "secretsmanager:secretid" => match q.secret {
                Some(s) => one(s.arn.as_str()),
                None => str_param("SecretId").map(|s| CtxValue::One(s.into())),
            },
            "secretsmanager:name" => match q.op {
                Operation::CreateSecret => str_param("Name").map(|s| CtxValue::One(s.into())),
                _ => None,
            },
            "secretsmanager:description" => {
                str_param("Description").map(|s| CtxValue::One(s.into()))
            }
            "secretsmanager:kmskeyid" => str_param("KmsKeyId").map(|s| CtxValue::One(s.into())),
            "secretsmanager:versionid" => str_param("VersionId").map(|s| CtxValue::One(s.into())),
            "secretsmanager:versionstage" => self.version_stage(),
            "secretsmanager:rotationlambdaarn" => {
                str_param("RotationLambdaARN").map(|s| CtxValue::One(s.into()))
            }
            "secretsmanager:resource/allowrotationlambdaarn" => q
                .secret
                .and_then(|s| s.rotation.lambda_arn.as_deref())
                .map(|a| CtxValue::One(a.into())),
            "secretsmanager:secretprimaryregion" => match q.secret {
                Some(s) => one(s.primary_region.as_deref().unwrap_or(q.region)),
                None => one(q.region),
            },
            "secretsmanager:addreplicaregions" => {
                let regions: Vec<Cow<'_, str>> = params
                    .get("AddReplicaRegions")?
                    .as_array()?
                    .iter()
                    .filter_map(|r| r.get("Region").and_then(Value::as_str))
                    .map(Cow::Borrowed)
                    .collect();
                Some(CtxValue::Many(regions))
            }
            "secretsmanager:forcedeletewithoutrecovery" => params
                .get("ForceDeleteWithoutRecovery")
                .and_then(Value::as_bool)
                .and_then(boolean),
            "secretsmanager:recoverywindowindays" => params
                .get("RecoveryWindowInDays")
                .and_then(Value::as_i64)
                .map(|d| CtxValue::One(d.to_string().into())),
            "secretsmanager:blockpublicpolicy" => params
                .get("BlockPublicPolicy")
                .and_then(Value::as_bool)
                .and_then(boolean),
            "secretsmanager:forceoverwritereplicasecret" => params
                .get("ForceOverwriteReplicaSecret")
                .and_then(Value::as_bool)
                .and_then(boolean),
            "secretsmanager:modifyrotationrules" => match q.op {
                Operation::RotateSecret => boolean(params.contains_key("RotationRules")),
                _ => None,
            },
            "secretsmanager:rotateimmediately" => match q.op {
                Operation::RotateSecret => boolean(
                    params
                        .get("RotateImmediately")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                ),
                _ => None,
            },
            _ => None,
        }
    }
}

impl RequestContext<'_> {
    /// `secretsmanager:VersionStage`: the stage the request names; a `GetSecretValue` that
    /// names neither stage nor version reads `AWSCURRENT`, and one that names only a
    /// version reads that version's stages.
    fn version_stage(&self) -> Option<CtxValue<'_>> {
        let q = self.q;
        if let Some(s) = q.params.get("VersionStage").and_then(Value::as_str) {
            return Some(CtxValue::One(s.into()));
        }
        if q.op != Operation::GetSecretValue {
            return None;
        }
        match q.params.get("VersionId").and_then(Value::as_str) {
            None => one(keyroll_core::AWSCURRENT),
            Some(id) => {
                let v = q.secret?.versions.iter().find(|v| v.id == id)?;
                Some(CtxValue::Many(
                    v.stages.iter().map(|s| Cow::Borrowed(s.as_str())).collect(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Principal;

    fn meta() -> RequestMeta {
        RequestMeta {
            source_ip: "127.0.0.1".parse().unwrap(),
            secure_transport: false,
            user_agent: None,
            now: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    fn principal(policy: &str) -> Principal {
        Principal::user(
            "123456789012",
            "app",
            false,
            vec![Arc::new(Policy::parse(policy).unwrap())],
        )
    }

    #[test]
    fn denial_messages_follow_aws() {
        let p = principal(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}]}"#,
        );
        assert_eq!(
            denial_message(
                &p,
                "secretsmanager:PutSecretValue",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf",
                Decision::ImplicitDeny
            ),
            "User: arn:aws:iam::123456789012:user/app is not authorized to perform: \
             secretsmanager:PutSecretValue on resource: \
             arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf because no \
             identity-based policy allows the secretsmanager:PutSecretValue action"
        );
        assert!(
            denial_message(
                &p,
                "secretsmanager:ListSecrets",
                "*",
                Decision::ExplicitDeny(PolicyType::Identity)
            )
            .ends_with(
                "perform: secretsmanager:ListSecrets with an explicit deny in an identity-based \
                 policy"
            )
        );
    }

    #[test]
    fn version_stage_defaults_to_awscurrent_for_reads() {
        let p = principal(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
              "Action":"secretsmanager:GetSecretValue","Resource":"*",
              "Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}]}"#,
        );
        let cache = PolicyCache::default();
        let m = meta();
        let ask = |body: &str| {
            let params = request_params(body.as_bytes());
            check(
                &Question {
                    op: Operation::GetSecretValue,
                    action: "secretsmanager:GetSecretValue",
                    region: "us-east-1",
                    principal: &p,
                    params: &params,
                    meta: &m,
                    secret: None,
                    resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:a",
                },
                &cache,
            )
        };
        assert!(ask(r#"{"SecretId":"a"}"#).is_ok());
        assert!(ask(r#"{"SecretId":"a","VersionStage":"AWSCURRENT"}"#).is_ok());
        let e = ask(r#"{"SecretId":"a","VersionStage":"AWSPREVIOUS"}"#).unwrap_err();
        assert_eq!(e.kind, "AccessDeniedException");
    }

    #[test]
    fn condition_keys_of_any_length_are_looked_up() {
        let mut p = principal(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        );
        let long_tag = "t".repeat(300);
        p.tags.insert(long_tag.clone(), "v".into());
        p.tags.insert("Team".into(), "pay".into());
        let key = format!("AWS:PrincipalTag/{long_tag}");
        assert_eq!(principal_value(&p, &key), one("v"));
        assert_eq!(principal_value(&p, "aws:principaltag/Team"), one("pay"));
        assert_eq!(principal_value(&p, "AWS:UserName"), one("app"));
        let params = request_params(
            format!(r#"{{"Tags":[{{"Key":"{long_tag}","Value":"w"}}]}}"#).as_bytes(),
        );
        let m = meta();
        let q = Question {
            op: Operation::CreateSecret,
            action: "secretsmanager:CreateSecret",
            region: "us-east-1",
            principal: &p,
            params: &params,
            meta: &m,
            secret: None,
            resource: "*",
        };
        let ctx = RequestContext { q: &q };
        assert_eq!(ctx.get(&format!("aws:RequestTag/{long_tag}")), one("w"));
        assert_eq!(ctx.get("AWS:SecureTransport"), one("false"));
    }

    #[test]
    fn the_policy_cache_answers_by_allocation_and_by_text() {
        let text = |allow: &str| -> Arc<str> {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"{allow}","Resource":"*"}}]}}"#
            )
            .into()
        };
        let cache = PolicyCache::default();
        let a = text("secretsmanager:GetSecretValue");
        let first = cache.get(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&a.clone()).unwrap()));
        // The same text in another allocation: the same parse.
        let a2 = text("secretsmanager:GetSecretValue");
        assert!(!Arc::ptr_eq(&a, &a2));
        assert!(Arc::ptr_eq(&first, &cache.get(&a2).unwrap()));
        // Another text is another policy, wherever it lives.
        let b = text("secretsmanager:DescribeSecret");
        let second = cache.get(&b).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        // An allocation freed and reused cannot be mistaken for the old text: the cache
        // holds what it saw, so every text it was given is still alive.
        drop((a, a2, b));
        for i in 0..100 {
            let c = text(&format!("secretsmanager:Op{i}"));
            let p = cache.get(&c).unwrap();
            assert!(!Arc::ptr_eq(&p, &first) && !Arc::ptr_eq(&p, &second));
        }
        assert!(cache.get(&Arc::from("not a policy")).is_none());
    }

    #[test]
    fn nominal_arns() {
        let mut params = Map::new();
        params.insert("Name".into(), Value::String("prod/db".into()));
        assert_eq!(
            nominal_arn(
                Operation::CreateSecret,
                &params,
                "eu-west-1",
                "123456789012"
            ),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-xxxxxx"
        );
        params.insert("SecretId".into(), Value::String("arn:aws:x".into()));
        assert_eq!(
            nominal_arn(Operation::GetSecretValue, &params, "eu-west-1", "1"),
            "arn:aws:x"
        );
    }
}
