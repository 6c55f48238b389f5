//! STS on the API endpoint (AWS query protocol, SigV4 with service `sts`):
//! `GetCallerIdentity`, `GetSessionToken` (optionally with a TOTP MFA code) and `AssumeRole`
//! into the roles of `[[roles]]`, with trust, MFA, required session tags, session limits and
//! the `BreakGlassAssumed` notification. Temporary credentials live in the key store and,
//! encrypted, in the store ([`sessions`]).
//!
//! - [`query`]: the form-encoded request.
//! - [`xml`]: responses and errors as AWS writes them.
//! - [`totp`]: RFC 6238 codes and the reuse guard.
//! - [`sessions`]: issuing, persisting, restoring and purging temporary credentials.

pub mod query;
pub mod sessions;
pub mod totp;
pub mod xml;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::Full;
use keyroll_core::time::Timestamp;
use keyroll_policy::{Context, CtxValue, Decision, Policy, Request};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::config::{Config, ConfigError, RoleConfig};
use crate::identity::{Principal, PrincipalKind, load_policy, unique_id};
use crate::regions::Regions;
use crate::server::App;
use crate::sigv4;
use query::Params;
use xml::{StsError, element};

/// The only API version of STS.
pub const VERSION: &str = "2011-06-15";
/// `GetSessionToken`'s limits and default (seconds).
pub const SESSION_TOKEN_MIN: i64 = 900;
pub const SESSION_TOKEN_MAX: i64 = 129_600;
pub const SESSION_TOKEN_DEFAULT: i64 = 43_200;
/// `AssumeRole`'s syntactic limits and default (the role's `max_session_secs` caps it).
pub const ASSUME_ROLE_MIN: i64 = 900;
pub const ASSUME_ROLE_MAX: i64 = 43_200;
pub const ASSUME_ROLE_DEFAULT: i64 = 3_600;
/// A role session assuming another role gets at most an hour, as in AWS.
pub const ROLE_CHAINING_MAX: i64 = 3_600;
/// The session tag whose value a `BreakGlassAssumed` notification reports.
pub const JUSTIFICATION_TAG: &str = "Justification";

/// A configured role with its parsed policy.
pub struct Role {
    pub arn: String,
    /// `AROA…`, stable for the account and name.
    pub role_id: String,
    pub config: RoleConfig,
    pub policy: Arc<Policy>,
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Role")
            .field("arn", &self.arn)
            .field("require_mfa", &self.config.require_mfa)
            .field("notify", &self.config.notify)
            .finish_non_exhaustive()
    }
}

impl Role {
    pub fn arn_of(account: &str, name: &str) -> String {
        format!("arn:aws:iam::{account}:role/{name}")
    }

    /// The principal of a session of this role: its policy, its tags overridden by the
    /// session's (`tags` is the merged set), and the role's ARN as an alias.
    pub fn session_principal(
        &self,
        account: &str,
        session_name: &str,
        source_arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Principal {
        Principal {
            kind: PrincipalKind::AssumedRole {
                role_name: self.config.name.clone(),
                role_arn: self.arn.clone(),
                session_name: session_name.to_string(),
                source_arn: source_arn.to_string(),
            },
            arn: format!(
                "arn:aws:sts::{account}:assumed-role/{}/{session_name}",
                self.config.name
            ),
            name: session_name.to_string(),
            account: account.to_string(),
            user_id: format!("{}:{session_name}", self.role_id),
            admin: false,
            policies: vec![self.policy.clone()],
            tags,
            mfa_authenticated_at: None,
            issued_at: None,
            expires_at: None,
            aliases: vec![self.arn.clone()],
            audit_identity: Default::default(),
        }
    }
}

/// The STS state of a server: its roles and the MFA reuse guard.
#[derive(Debug, Default)]
pub struct Sts {
    roles: BTreeMap<String, Arc<Role>>,
    used_codes: totp::UsedCodes,
}

impl Sts {
    /// Parses the roles' policies (`file://` paths relative to `base`) and checks every
    /// configured MFA seed.
    pub fn from_config(config: &Config, base: Option<&Path>) -> Result<Sts, ConfigError> {
        for k in &config.access_keys {
            if let Some(seed) = &k.mfa_totp_secret {
                totp::decode_base32(seed.expose_secret()).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "mfa_totp_secret of access key {:?}: {e}",
                        k.name.as_deref().unwrap_or(&k.access_key_id)
                    ))
                })?;
            }
        }
        let mut roles = BTreeMap::new();
        for r in &config.roles {
            let policy = load_policy(&r.policy, base, &format!("role {:?}", r.name))?;
            roles.insert(
                r.name.clone(),
                Arc::new(Role {
                    arn: Role::arn_of(&config.account, &r.name),
                    role_id: unique_id("AROA", &config.account, &r.name),
                    config: r.clone(),
                    policy: Arc::new(policy),
                }),
            );
        }
        Ok(Sts {
            roles,
            used_codes: totp::UsedCodes::default(),
        })
    }

    /// [`Self::from_config`] without a base directory; a configuration that does not load
    /// is logged and leaves no role assumable (`keyroll serve` refuses to start instead).
    pub fn from_config_or_none(config: &Config) -> Sts {
        Self::from_config(config, None).unwrap_or_else(|e| {
            tracing::error!(error = %e, "STS roles not loaded; AssumeRole will be refused");
            Sts::default()
        })
    }

    pub fn role(&self, name: &str) -> Option<&Arc<Role>> {
        self.roles.get(name)
    }

    pub fn role_by_arn(&self, arn: &str) -> Option<&Arc<Role>> {
        let name = arn.rsplit('/').next()?;
        self.roles.get(name).filter(|r| r.arn == arn)
    }
}

/// What the audit trail records about an STS call: never a secret key, a session token or
/// an MFA code.
#[derive(Debug, Clone, Default)]
pub struct StsAudit {
    /// `AssumeRole`, …; `None` when the request named no action.
    pub action: Option<String>,
    /// The request's parameters (CloudTrail's `requestParameters`), without `TokenCode`.
    pub request_parameters: Value,
    /// What was answered (CloudTrail's `responseElements`), without `SecretAccessKey` or
    /// `SessionToken`.
    pub response_elements: Option<Value>,
    pub error_code: Option<&'static str>,
    pub error_message: Option<String>,
    /// Who signed the request, when the signature was verified.
    pub caller: Option<Arc<Principal>>,
    /// The principal of the session issued, if any.
    pub session: Option<Arc<Principal>>,
}

/// Whether a request is for STS: a form-encoded body without `X-Amz-Target`.
pub fn is_sts_request(headers: &HeaderMap) -> bool {
    headers.get("x-amz-target").is_none()
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
}

type Resp = Response<Full<Bytes>>;

/// Handles one STS request (the body already read): verifies its signature for service
/// `sts`, runs the action, and says what the audit trail should record.
pub async fn handle<R: Regions>(
    app: &Arc<App<R>>,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: &[u8],
    request_id: &str,
    early: Option<sigv4::AuthError>,
) -> (Resp, StsAudit) {
    let mut audit = StsAudit {
        request_parameters: Value::Null,
        ..Default::default()
    };
    let result = match early {
        // Refused from its headers alone (the body was not read).
        Some(e) => {
            app.metrics.auth_failure(e.aws_type());
            Err(e.into())
        }
        None => run(app, peer, parts, body, request_id, &mut audit).await,
    };
    let resp = match result {
        Ok(xml) => xml::xml_response(http::StatusCode::OK, xml, request_id),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(request_id, action = audit.action.as_deref().unwrap_or(""), error_type = e.code, error = %e.message, "STS request failed");
            } else {
                tracing::info!(request_id, action = audit.action.as_deref().unwrap_or(""), caller = audit.caller.as_ref().map(|c| c.arn.as_str()).unwrap_or(""), error_type = e.code, error = %e.message, "STS request refused");
            }
            audit.error_code = Some(e.code);
            audit.error_message = Some(e.message.clone());
            e.response(request_id)
        }
    };
    (resp, audit)
}

async fn run<R: Regions>(
    app: &Arc<App<R>>,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: &[u8],
    request_id: &str,
    audit: &mut StsAudit,
) -> Result<String, StsError> {
    let params = Params::parse(body).map_err(|e| StsError::invalid_parameter(e.to_string()))?;
    let action = params
        .get("Action")
        .ok_or_else(|| StsError::missing_parameter("Action"))?
        .to_string();
    audit.action = Some(action.clone());
    audit.request_parameters = request_parameters(&action, &params);
    let now_ts = app.auth_clock.now();
    let caller = match sigv4::verify_for(
        "sts",
        &parts.method,
        &parts.uri,
        &parts.headers,
        body,
        &app.keys,
        now_ts,
    ) {
        Ok(c) => c,
        Err(e) => {
            app.metrics.auth_failure(e.aws_type());
            return Err(e.into());
        }
    };
    audit.caller = Some(caller.principal.clone());
    if let Some(v) = params.get("Version")
        && v != VERSION
    {
        return Err(StsError::new_invalid_action_version(&action, v));
    }
    let now = now_ts.millis().div_euclid(1000);
    let req = Req {
        app,
        caller: &caller.principal,
        params: &params,
        source_ip: peer.ip(),
        now,
    };
    let mut result = String::with_capacity(1024);
    match action.as_str() {
        "GetCallerIdentity" => get_caller_identity(&req, &mut result),
        "GetSessionToken" => {
            let issued = get_session_token(&req).await?;
            xml::credentials(&mut result, &issued.key, issued.expiration);
            audit.response_elements = Some(json!({
                "Credentials": credentials_json(&issued),
            }));
            audit.session = Some(issued.principal.clone());
            log_issued(request_id, "GetSessionToken", &caller.principal, &issued);
        }
        "AssumeRole" => {
            let (issued, packed) = assume_role(&req).await?;
            xml::credentials(&mut result, &issued.key, issued.expiration);
            result.push_str("<AssumedRoleUser>");
            element(&mut result, "AssumedRoleId", &issued.principal.user_id);
            element(&mut result, "Arn", &issued.principal.arn);
            result.push_str("</AssumedRoleUser>");
            let mut elements = json!({
                "Credentials": credentials_json(&issued),
                "AssumedRoleUser": {
                    "AssumedRoleId": issued.principal.user_id,
                    "Arn": issued.principal.arn,
                },
            });
            if let Some(p) = packed {
                element(&mut result, "PackedPolicySize", &p.to_string());
                elements["PackedPolicySize"] = json!(p);
            }
            audit.response_elements = Some(elements);
            audit.session = Some(issued.principal.clone());
            log_issued(request_id, "AssumeRole", &caller.principal, &issued);
        }
        other => return Err(StsError::invalid_action(other)),
    }
    Ok(xml::success(&action, &result, request_id))
}

impl StsError {
    fn new_invalid_action_version(action: &str, version: &str) -> StsError {
        let mut e = StsError::invalid_action(action);
        e.message = format!(
            "Could not find operation {action} for version {version}: keyroll's STS speaks \
             version {VERSION}"
        );
        e
    }
}

fn log_issued(request_id: &str, action: &str, caller: &Principal, issued: &sessions::Issued) {
    tracing::info!(
        request_id,
        action,
        caller = %caller.arn,
        session = %issued.principal.arn,
        access_key = %issued.key.access_key_id,
        expires_at = %xml::iso8601(issued.expiration),
        mfa = issued.principal.mfa_authenticated(),
        "STS credentials issued"
    );
}

fn credentials_json(issued: &sessions::Issued) -> Value {
    json!({
        "AccessKeyId": issued.key.access_key_id,
        "Expiration": xml::iso8601(issued.expiration),
    })
}

/// The request's parameters as the audit trail records them (the API's member names),
/// leaving out `TokenCode` and anything else that could be a credential.
fn request_parameters(action: &str, p: &Params) -> Value {
    let mut m = serde_json::Map::new();
    let mut put = |key: &str, param: &str| {
        if let Some(v) = p.get(param) {
            let value = match param {
                "DurationSeconds" => v.parse::<i64>().map(Value::from).unwrap_or(json!(v)),
                _ => json!(v),
            };
            m.insert(key.to_string(), value);
        }
    };
    match action {
        "GetSessionToken" => {
            put("DurationSeconds", "DurationSeconds");
            put("SerialNumber", "SerialNumber");
        }
        "AssumeRole" => {
            put("RoleArn", "RoleArn");
            put("RoleSessionName", "RoleSessionName");
            put("DurationSeconds", "DurationSeconds");
            put("SerialNumber", "SerialNumber");
            put("SourceIdentity", "SourceIdentity");
            let tags: Vec<Value> = p
                .members("Tags")
                .into_iter()
                .map(|t| json!({"Key": t.get("Key"), "Value": t.get("Value")}))
                .collect();
            if !tags.is_empty() {
                m.insert("Tags".into(), Value::Array(tags));
            }
            let transitive = p.list("TransitiveTagKeys");
            if !transitive.is_empty() {
                m.insert("TransitiveTagKeys".into(), json!(transitive));
            }
        }
        _ => {}
    }
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

struct Req<'a, R: Regions> {
    app: &'a Arc<App<R>>,
    caller: &'a Principal,
    params: &'a Params,
    source_ip: std::net::IpAddr,
    now: i64,
}

fn get_caller_identity<R: Regions>(req: &Req<'_, R>, out: &mut String) {
    element(out, "Arn", &req.caller.arn);
    element(out, "UserId", &req.caller.user_id);
    element(out, "Account", &req.caller.account);
}

/// `1 validation error detected: Value 'V' at 'FIELD' failed to satisfy constraint: WHY`.
fn invalid(value: Option<&str>, field: &str, why: &str) -> StsError {
    let value = match value {
        Some(v) => format!("Value '{v}' at"),
        None => "Value at".to_string(),
    };
    StsError::validation(format!(
        "1 validation error detected: {value} '{field}' failed to satisfy constraint: {why}"
    ))
}

fn duration(p: &Params, min: i64, max: i64, default: i64) -> Result<i64, StsError> {
    let Some(v) = p.get("DurationSeconds") else {
        return Ok(default);
    };
    let d: i64 = v
        .parse()
        .map_err(|_| invalid(Some(v), "durationSeconds", "Member must be an integer"))?;
    if d < min {
        return Err(invalid(
            Some(v),
            "durationSeconds",
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if d > max {
        return Err(invalid(
            Some(v),
            "durationSeconds",
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(d)
}

const MFA_BOTH: &str =
    "MultiFactorAuthentication failed, must provide both MFA serial number and one time pass code.";
const MFA_UNKNOWN_DEVICE: &str = "MultiFactorAuthentication failed, unable to validate MFA code. \
     Please verify your MFA serial number is valid and associated with this user.";
const MFA_BAD_CODE: &str = "MultiFactorAuthentication failed with invalid MFA one time pass code. ";

/// The IAM user behind a principal (a role session's source user).
fn user_name(p: &Principal) -> Option<&str> {
    match &p.kind {
        PrincipalKind::User => Some(p.name.as_str()),
        PrincipalKind::AssumedRole { source_arn, .. } => source_arn
            .split_once(":user/")
            .map(|(_, n)| n.rsplit('/').next().unwrap_or(n)),
    }
}

/// Checks `SerialNumber` + `TokenCode` when given: the device must be the caller's user's
/// (`arn:aws:iam::ACCOUNT:mfa/USER`, with an `mfa_totp_secret`), the code valid now and
/// not used before. Returns the MFA time, or `None` without MFA parameters.
fn check_mfa<R: Regions>(req: &Req<'_, R>) -> Result<Option<i64>, StsError> {
    let (serial, code) = (req.params.get("SerialNumber"), req.params.get("TokenCode"));
    let (serial, code) = match (serial, code) {
        (None, None) => return Ok(None),
        (Some(s), Some(c)) => (s, c),
        _ => return Err(StsError::access_denied(MFA_BOTH)),
    };
    if !(9..=256).contains(&serial.len())
        || !serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=/:,.@-".contains(&b))
    {
        return Err(invalid(
            Some(serial),
            "serialNumber",
            "Member must have length between 9 and 256 and satisfy regular expression \
             pattern: [\\w+=/:,.@-]*",
        ));
    }
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        // Never echo what was typed: it may be a nearly-right code.
        return Err(invalid(
            None,
            "tokenCode",
            "Member must have length 6 and satisfy regular expression pattern: [\\d]*",
        ));
    }
    let app = req.app;
    let user = user_name(req.caller).ok_or_else(|| StsError::access_denied(MFA_UNKNOWN_DEVICE))?;
    let expected = format!("arn:aws:iam::{}:mfa/{user}", app.config.account);
    let seed = app
        .config
        .access_keys
        .iter()
        .find(|k| k.name.as_deref() == Some(user))
        .and_then(|k| k.mfa_totp_secret.as_ref());
    let (true, Some(seed)) = (serial == expected, seed) else {
        return Err(StsError::access_denied(MFA_UNKNOWN_DEVICE));
    };
    let key = totp::decode_base32(seed.expose_secret())
        .map_err(|_| StsError::access_denied(MFA_UNKNOWN_DEVICE))?;
    if !app.sts.used_codes.verify(serial, &key, code, req.now) {
        return Err(StsError::access_denied(MFA_BAD_CODE));
    }
    Ok(Some(req.now))
}

async fn get_session_token<R: Regions>(req: &Req<'_, R>) -> Result<sessions::Issued, StsError> {
    let caller = req.caller;
    if caller.issued_at.is_some() || !matches!(caller.kind, PrincipalKind::User) {
        return Err(StsError::access_denied(
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let d = duration(
        req.params,
        SESSION_TOKEN_MIN,
        SESSION_TOKEN_MAX,
        SESSION_TOKEN_DEFAULT,
    )?;
    let mfa = check_mfa(req)?;
    let mut p = caller.clone();
    p.mfa_authenticated_at = mfa;
    purge_quietly(req).await;
    sessions::issue(req.app, p, req.now, d).await
}

async fn purge_quietly<R: Regions>(req: &Req<'_, R>) {
    if let Err(e) = sessions::purge(req.app, req.now).await {
        tracing::warn!(error = %e, "purging expired STS sessions failed");
    }
}

/// `[\w+=,.@-]`, 2–64 characters.
fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// The session tags of an `AssumeRole` request, checked as AWS does.
fn session_tags(p: &Params) -> Result<Vec<(String, String)>, StsError> {
    let members = p.members("Tags");
    if members.len() > 50 {
        return Err(invalid(
            None,
            "tags",
            "Member must have length less than or equal to 50",
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let Some(key) = m.get("Key") else {
            return Err(invalid(
                None,
                &format!("tags.{}.member.key", i + 1),
                "Member must not be null",
            ));
        };
        let value = m.get("Value").cloned().unwrap_or_default();
        let key_ok = (1..=128).contains(&key.chars().count())
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
        if !key_ok {
            return Err(invalid(
                Some(key),
                &format!("tags.{}.member.key", i + 1),
                "Member must have length between 1 and 128 and satisfy regular expression \
                 pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+",
            ));
        }
        if value.chars().count() > 256 {
            return Err(invalid(
                None,
                &format!("tags.{}.member.value", i + 1),
                "Member must have length less than or equal to 256",
            ));
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(StsError::invalid_parameter(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
        out.push((key.clone(), value));
    }
    Ok(out)
}

/// The packed size of the session tags, as a percentage of the 2048-byte limit.
fn packed_size(tags: &[(String, String)]) -> Option<u32> {
    if tags.is_empty() {
        return None;
    }
    let bytes: usize = tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    Some(((bytes * 100).div_ceil(2048)).clamp(1, 100) as u32)
}

/// How a role's `trusted` list names a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// By user name, user ARN, or (role sessions) the role's or the session's ARN.
    Named,
    /// By the account (`ACCOUNT` or `arn:aws:iam::ACCOUNT:root`): the caller's own policy
    /// must also allow `sts:AssumeRole` on the role.
    Account,
    None,
}

fn trust(role: &Role, caller: &Principal, account: &str) -> Trust {
    let root = format!("arn:aws:iam::{account}:root");
    let mut t = Trust::None;
    for e in &role.config.trusted {
        let e = e.as_str();
        if e == caller.arn
            || caller.aliases.iter().any(|a| a == e)
            || (matches!(caller.kind, PrincipalKind::User) && e == caller.name)
        {
            return Trust::Named;
        }
        if (e == account || e == root) && caller.account == account {
            t = Trust::Account;
        }
    }
    t
}

async fn assume_role<R: Regions>(
    req: &Req<'_, R>,
) -> Result<(sessions::Issued, Option<u32>), StsError> {
    let app = req.app;
    let p = req.params;
    let caller = req.caller;
    let account = app.config.account.as_str();
    let role_arn = p
        .get("RoleArn")
        .ok_or_else(|| StsError::missing_parameter("RoleArn"))?;
    if !(20..=2048).contains(&role_arn.len()) {
        return Err(invalid(
            Some(role_arn),
            "roleArn",
            "Member must have length between 20 and 2048",
        ));
    }
    let session_name = p
        .get("RoleSessionName")
        .ok_or_else(|| StsError::missing_parameter("RoleSessionName"))?;
    if !valid_session_name(session_name) {
        return Err(invalid(
            Some(session_name),
            "roleSessionName",
            "Member must have length between 2 and 64 and satisfy regular expression \
             pattern: [\\w+=,.@-]*",
        ));
    }
    if p.has_any("Policy") || p.has_any("PolicyArns") {
        return Err(StsError::validation(
            "keyroll does not support session policies (Policy, PolicyArns): give the role \
             the narrower policy instead, or define another role",
        ));
    }
    let requested = duration(p, ASSUME_ROLE_MIN, ASSUME_ROLE_MAX, 0)?;
    let tags = session_tags(p)?;
    let denied = || {
        StsError::access_denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller.arn
        ))
    };
    let Some(role) = app.sts.role_by_arn(role_arn).cloned() else {
        return Err(denied());
    };
    // MFA given in this request is checked whatever the role requires.
    let mfa = match check_mfa(req)? {
        Some(t) => Some(t),
        None => caller.mfa_authenticated_at,
    };
    let trusted = trust(&role, caller, account);
    let ctx = AssumeContext {
        caller,
        tags: &tags,
        session_name,
        source_ip: req.source_ip,
        now: req.now,
        mfa,
    };
    let identity: Vec<&Policy> = caller.policies.iter().map(|p| p.as_ref()).collect();
    let aliases: Vec<&str> = caller.aliases.iter().map(String::as_str).collect();
    let decision = keyroll_policy::evaluate(
        &identity,
        None,
        &Request {
            action: "sts:AssumeRole",
            resource: &role.arn,
            principal_arn: &caller.arn,
            principal_aliases: &aliases,
            account: &caller.account,
            context: &ctx,
        },
    );
    let allowed = match (trusted, decision) {
        (_, Decision::ExplicitDeny(_)) => false,
        (Trust::Named, _) => true,
        (Trust::Account, Decision::Allow) => true,
        _ => false,
    };
    if !allowed {
        return Err(denied());
    }
    if role.config.require_mfa && mfa.is_none() {
        return Err(denied());
    }
    for required in &role.config.required_session_tags {
        let present = tags
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(required) && !v.trim().is_empty());
        if !present {
            return Err(denied());
        }
    }
    let max = i64::try_from(role.config.max_session_secs).unwrap_or(ASSUME_ROLE_MAX);
    let chained = matches!(caller.kind, PrincipalKind::AssumedRole { .. });
    let d = if requested == 0 {
        ASSUME_ROLE_DEFAULT.min(max)
    } else {
        requested
    };
    if chained && d > ROLE_CHAINING_MAX {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed \
             by role chaining.",
        ));
    }
    if d > max {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    let mut merged = role.config.tags.clone();
    for (k, v) in &tags {
        merged.retain(|old, _| !old.eq_ignore_ascii_case(k));
        merged.insert(k.clone(), v.clone());
    }
    // The user behind the chain, for a role session assuming a role.
    let source = match &caller.kind {
        PrincipalKind::AssumedRole { source_arn, .. } => source_arn.as_str(),
        PrincipalKind::User => caller.arn.as_str(),
    };
    let mut principal = role.session_principal(account, session_name, source, merged);
    principal.mfa_authenticated_at = mfa;
    purge_quietly(req).await;
    let issued = sessions::issue(app, principal, req.now, d).await?;
    if role.config.notify {
        notify_break_glass(req, &role, &issued, &tags);
    }
    Ok((issued, packed_size(&tags)))
}

/// Sends `BreakGlassAssumed` through the configured channels, in the background.
fn notify_break_glass<R: Regions>(
    req: &Req<'_, R>,
    role: &Role,
    issued: &sessions::Issued,
    tags: &[(String, String)],
) {
    let justification = tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(JUSTIFICATION_TAG))
        .or_else(|| {
            role.config
                .required_session_tags
                .iter()
                .find_map(|r| tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(r)))
        })
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let session_name = match &issued.principal.kind {
        PrincipalKind::AssumedRole { session_name, .. } => session_name.clone(),
        PrincipalKind::User => issued.principal.name.clone(),
    };
    let event = keyroll_notify::RotationEvent::break_glass_assumed(
        keyroll_notify::BreakGlass {
            principal_arn: req.caller.arn.clone(),
            role_name: role.config.name.clone(),
            role_arn: role.arn.clone(),
            session_name,
            justification,
            source_ip: req.source_ip.to_string(),
            mfa: issued.principal.mfa_authenticated(),
            expires_at: Timestamp::from_secs(issued.expiration),
        },
        Timestamp::from_secs(req.now),
    );
    tracing::warn!(
        role = %role.arn,
        principal = %req.caller.arn,
        session = %issued.principal.arn,
        "break-glass role assumed"
    );
    req.app.notifier.spawn(event);
}

/// The condition keys of an `AssumeRole` call, for the caller's identity policies.
struct AssumeContext<'a> {
    caller: &'a Principal,
    tags: &'a [(String, String)],
    session_name: &'a str,
    source_ip: std::net::IpAddr,
    now: i64,
    /// MFA of this request, or of the calling session.
    mfa: Option<i64>,
}

fn one<'a>(s: impl Into<Cow<'a, str>>) -> Option<CtxValue<'a>> {
    Some(CtxValue::One(s.into()))
}

impl Context for AssumeContext<'_> {
    fn get(&self, key: &str) -> Option<CtxValue<'_>> {
        let p = self.caller;
        if let Some(v) = crate::authz::principal_value(p, key) {
            return Some(v);
        }
        if let Some(tag) = crate::authz::strip_prefix_ci(key, "aws:RequestTag/") {
            return self
                .tags
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(tag))
                .and_then(|(_, v)| one(v.as_str()));
        }
        match key.to_ascii_lowercase().as_str() {
            "aws:sourceip" => one(self.source_ip.to_string()),
            "aws:securetransport" => one("false"),
            "aws:epochtime" => one(self.now.to_string()),
            "aws:currenttime" => one(xml::iso8601(self.now)),
            "aws:tagkeys" => Some(CtxValue::Many(
                self.tags
                    .iter()
                    .map(|(k, _)| Cow::Borrowed(k.as_str()))
                    .collect(),
            )),
            "aws:multifactorauthpresent" => match (self.mfa, p.issued_at) {
                (Some(_), _) => one("true"),
                (None, Some(_)) => one("false"),
                (None, None) => None,
            },
            "aws:multifactorauthage" => self
                .mfa
                .map(|t| CtxValue::One((self.now - t).max(0).to_string().into())),
            "sts:rolesessionname" => one(self.session_name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_and_tags_are_checked_like_aws() {
        assert!(valid_session_name("incident-42@ops"));
        assert!(!valid_session_name("x"));
        assert!(!valid_session_name("has space"));
        assert!(!valid_session_name(&"a".repeat(65)));
        let p = Params::parse(
            b"Tags.member.1.Key=Justification&Tags.member.1.Value=db&Tags.member.2.Key=justification&Tags.member.2.Value=x",
        )
        .unwrap();
        assert_eq!(session_tags(&p).unwrap_err().code, "InvalidParameterValue");
        let p = Params::parse(b"Tags.member.1.Value=x").unwrap();
        assert_eq!(session_tags(&p).unwrap_err().code, "ValidationError");
        let p = Params::parse(b"Tags.member.1.Key=A&Tags.member.1.Value=").unwrap();
        assert_eq!(
            session_tags(&p).unwrap(),
            [("A".to_string(), String::new())]
        );
        assert_eq!(packed_size(&[]), None);
        assert_eq!(packed_size(&[("A".into(), "b".into())]), Some(1));
    }

    #[test]
    fn durations_default_and_bounds() {
        let p = Params::parse(b"").unwrap();
        assert_eq!(duration(&p, 900, 129_600, 43_200).unwrap(), 43_200);
        let p = Params::parse(b"DurationSeconds=899").unwrap();
        let e = duration(&p, 900, 129_600, 43_200).unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy \
             constraint: Member must have value greater than or equal to 900"
        );
        let p = Params::parse(b"DurationSeconds=x").unwrap();
        assert!(duration(&p, 900, 129_600, 43_200).is_err());
    }

    #[test]
    fn audit_parameters_leave_out_the_code() {
        let p = Params::parse(
            b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fbg&RoleSessionName=s&SerialNumber=arn%3Aaws%3Aiam%3A%3A000000000000%3Amfa%2Fa&TokenCode=123456&DurationSeconds=900&Tags.member.1.Key=Justification&Tags.member.1.Value=why",
        )
        .unwrap();
        let v = request_parameters("AssumeRole", &p);
        assert_eq!(v["RoleArn"], "arn:aws:iam::000000000000:role/bg");
        assert_eq!(v["DurationSeconds"], 900);
        assert_eq!(v["Tags"][0]["Value"], "why");
        assert!(!v.to_string().contains("123456"));
        assert_eq!(request_parameters("GetCallerIdentity", &p), Value::Null);
    }

    #[test]
    fn user_behind_a_session() {
        let mut p = Principal::user("000000000000", "alice", false, vec![]);
        assert_eq!(user_name(&p), Some("alice"));
        p.kind = PrincipalKind::AssumedRole {
            role_name: "r".into(),
            role_arn: "arn:aws:iam::000000000000:role/r".into(),
            session_name: "s".into(),
            source_arn: "arn:aws:iam::000000000000:user/bob".into(),
        };
        assert_eq!(user_name(&p), Some("bob"));
    }
}
