//! Target `http`: an API key held by an external HTTP API, rotated through requests the
//! secret describes in its `rotation` block.
//!
//! ```json
//! {
//!   "engine": "http",
//!   "apiKey": "current-key",
//!   "rotation": {
//!     "keyField": "apiKey",
//!     "rotate": {
//!       "method": "POST",
//!       "url": "https://api.example.com/v1/keys/rotate",
//!       "headers": {"Authorization": "Bearer {{current}}", "Idempotency-Key": "{{token}}"},
//!       "responseKeyPointer": "/key",
//!       "responseFields": {"keyId": "/id"}
//!     },
//!     "test": {"method": "GET", "url": "https://api.example.com/v1/me",
//!              "headers": {"Authorization": "Bearer {{pending}}"}},
//!     "revoke": {"method": "DELETE", "url": "https://api.example.com/v1/keys/{{previous.keyId}}",
//!                "headers": {"Authorization": "Bearer {{current}}"}},
//!     "timeoutSecs": 10
//!   }
//! }
//! ```
//!
//! Two styles:
//!
//! - **rotate**: the API issues the new key. `createSecret` sends the `rotate` request with
//!   the current key and stores the key found at `responseKeyPointer` (and any
//!   `responseFields`) as `AWSPENDING`; `setSecret` has nothing left to do.
//! - **set**: keyroll generates the new key (`password` policy, or the secret's
//!   `keyroll:password-length` / `keyroll:exclude-characters` tags; default 40 letters and
//!   digits) in `createSecret`, and `setSecret` sends the `set` request (with `{{pending}}`
//!   in its body or headers) authenticated with the current key. `setSecret` first tries the
//!   `test` request with the pending key: if the API already accepts it (an earlier attempt
//!   got through), there is nothing to set.
//!
//! `testSecret` sends the `test` request with the pending key and needs a 2xx answer.
//! After `finishSecret` promoted the new key, the optional `revoke` request retires the
//! previous one (`{{previous}}`, `{{previous.FIELD}}`).
//!
//! Templates: `{{current}}`, `{{pending}}`, `{{previous}}` (the key field of that version),
//! `{{current.FIELD}}` / `{{pending.FIELD}}` / `{{previous.FIELD}}` (a top-level string or
//! number field), and `{{token}}` (the version id being rotated to: an idempotency key).
//! They work in the URL, header values and the body. A `body` given as a string is sent as
//! is after substitution; a `body` given as JSON has its strings substituted with JSON
//! escaping and is sent as `application/json`.
//!
//! # Where requests may go
//!
//! Only to hosts the operator allows ([`crate::egress`]: `allow_hosts`, `allow_networks`;
//! nothing by default). Every request URL of the `rotation` block is checked before
//! anything is sent — at every step, `createSecret` first — and the host of a URL must be
//! written out (a placeholder there is refused). At send time the host is checked again,
//! DNS answers are checked one by one ([`crate::egress::CheckedResolver`]) and only those
//! that pass are connected to; redirects are not followed and proxies from the environment
//! are not used (a proxy would resolve the name itself).
//!
//! Errors name the request (`rotate request POST https://api.example.com/v1/keys/rotate`:
//! the template's scheme, host and path, never its query or a substituted value) and the
//! HTTP status — never a key, a header value or a response body.
//!
//! # What a crash can and cannot lose
//!
//! - **set** is crash-safe: the new key is stored (`AWSPENDING`) before the API hears of it,
//!   and every later step can be repeated.
//! - **rotate** has an unavoidable window: between the API's answer and the
//!   `PutSecretValue` that stores the new key. If the process dies there, the new key exists
//!   only at the API. A retry sends the rotate request again with the current key: APIs that
//!   keep the old key valid (overlap, multiple keys) simply issue another key; APIs that honour
//!   an idempotency key (put `{{token}}` in a header such as `Idempotency-Key`) return the
//!   same key again; an API that revoked the old key at once refuses the retry, and the error
//!   says so — the key issued by the lost attempt must then be recovered at the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keyroll_core::password::PasswordPolicy;
use keyroll_core::ports::{StepContext, Target, TargetError, VersionedValue};
use keyroll_core::value::SecretValue;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::TargetConfig;
use crate::egress::{CheckedResolver, Lookup, SystemLookup, find_refusal};

/// Default time one request may take.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Largest response body read (the rotate request's answer).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The default key field.
pub const DEFAULT_KEY_FIELD: &str = "apiKey";

/// One request of the rotation block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    /// Rotate request only: where the new key is in the JSON answer (RFC 6901).
    #[serde(default)]
    pub response_key_pointer: Option<String>,
    /// Rotate request only: other fields to store with the new key (field → pointer).
    #[serde(default)]
    pub response_fields: BTreeMap<String, String>,
}

fn default_method() -> String {
    "POST".into()
}

/// The password policy for keys keyroll generates (set style).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyPolicy {
    #[serde(default)]
    pub length: Option<u32>,
    #[serde(default)]
    pub exclude_characters: Option<String>,
    #[serde(default)]
    pub exclude_punctuation: Option<bool>,
}

/// The secret's `rotation` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotationSpec {
    #[serde(default = "default_key_field")]
    pub key_field: String,
    #[serde(default)]
    pub rotate: Option<RequestSpec>,
    #[serde(default)]
    pub set: Option<RequestSpec>,
    pub test: RequestSpec,
    #[serde(default)]
    pub revoke: Option<RequestSpec>,
    #[serde(default)]
    pub password: Option<KeyPolicy>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn default_key_field() -> String {
    DEFAULT_KEY_FIELD.into()
}

/// Which side makes the new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Rotate,
    Set,
}

/// serde's messages may quote input: keep their shape, drop quoted text.
fn scrub(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quoted = false;
    for c in msg.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

impl RotationSpec {
    /// Reads the `rotation` block of a secret's value.
    pub fn from_secret(obj: &Map<String, Value>, secret: &str) -> Result<Self, TargetError> {
        let block = obj.get("rotation").ok_or_else(|| {
            TargetError::InvalidSecret(format!(
                "{secret} has engine \"http\" but no \"rotation\" block describing the API's \
                 rotate or set request and its test request"
            ))
        })?;
        let spec: RotationSpec = serde_json::from_value(block.clone()).map_err(|e| {
            TargetError::InvalidSecret(format!(
                "the \"rotation\" block of {secret} is not valid: {}",
                scrub(&e.to_string())
            ))
        })?;
        spec.style(secret)?;
        if let Some(r) = &spec.rotate {
            match r.response_key_pointer.as_deref() {
                Some(p) if p.is_empty() || p.starts_with('/') => {}
                _ => {
                    return Err(TargetError::InvalidSecret(format!(
                        "the rotate request of {secret} needs \"responseKeyPointer\", the JSON \
                         pointer of the new key in the answer (e.g. \"/key\")"
                    )));
                }
            }
            if r.response_fields.keys().any(|k| k == &spec.key_field) {
                return Err(TargetError::InvalidSecret(format!(
                    "the rotate request of {secret} lists the key field {} in responseFields; \
                     it comes from responseKeyPointer",
                    spec.key_field
                )));
            }
        }
        Ok(spec)
    }

    pub fn style(&self, secret: &str) -> Result<Style, TargetError> {
        match (&self.rotate, &self.set) {
            (Some(_), None) => Ok(Style::Rotate),
            (None, Some(_)) => Ok(Style::Set),
            _ => Err(TargetError::InvalidSecret(format!(
                "the \"rotation\" block of {secret} must have exactly one of \"rotate\" (the API \
                 issues the new key) or \"set\" (keyroll generates it and sends it)"
            ))),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.timeout_secs
                .unwrap_or(DEFAULT_TIMEOUT_SECS)
                .clamp(1, 300),
        )
    }
}

/// The values templates may use in one request.
pub(crate) struct Vars<'a> {
    pub(crate) key_field: &'a str,
    pub(crate) token: &'a str,
    pub(crate) current: Option<&'a Map<String, Value>>,
    pub(crate) pending: Option<&'a Map<String, Value>>,
    pub(crate) previous: Option<&'a Map<String, Value>>,
}

impl Vars<'_> {
    fn lookup(&self, name: &str, request: &str) -> Result<Zeroizing<String>, TargetError> {
        if name == "token" {
            return Ok(Zeroizing::new(self.token.to_string()));
        }
        let (version, field) = name.split_once('.').unwrap_or((name, self.key_field));
        let obj = match version {
            "current" => self.current,
            "pending" => self.pending,
            "previous" => self.previous,
            _ => {
                return Err(TargetError::InvalidSecret(format!(
                    "the {request} uses the placeholder {{{{{name}}}}}; known placeholders are \
                     {{{{current}}}}, {{{{pending}}}}, {{{{previous}}}}, {{{{VERSION.FIELD}}}} \
                     and {{{{token}}}}"
                )));
            }
        };
        let Some(obj) = obj else {
            return Err(TargetError::InvalidSecret(format!(
                "the {request} uses {{{{{name}}}}}, but there is no {version} version at this \
                 step"
            )));
        };
        match obj.get(field) {
            Some(Value::String(s)) => Ok(Zeroizing::new(s.clone())),
            Some(Value::Number(n)) => Ok(Zeroizing::new(n.to_string())),
            _ => Err(TargetError::InvalidSecret(format!(
                "the {request} uses {{{{{name}}}}}, but the {version} version has no string \
                 field {field}"
            ))),
        }
    }

    /// Substitutes every `{{...}}` in `template`.
    pub(crate) fn render(
        &self,
        template: &str,
        request: &str,
    ) -> Result<Zeroizing<String>, TargetError> {
        let mut out = Zeroizing::new(String::with_capacity(template.len()));
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(TargetError::InvalidSecret(format!(
                    "the {request} has a \"{{{{\" without a closing \"}}}}\""
                )));
            };
            let value = self.lookup(after[..end].trim(), request)?;
            out.push_str(&value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Renders a JSON body: each string (object keys included) is substituted as written,
    /// exactly like a string body, and written back JSON-escaped, so that the body stays JSON
    /// whatever the values hold. (Substituting in the serialised text instead would match
    /// placeholders against their escaped spelling, and a `{{` in one string could reach
    /// into the next.)
    pub(crate) fn render_json(
        &self,
        body: &Value,
        request: &str,
    ) -> Result<Zeroizing<String>, TargetError> {
        let mut out = Zeroizing::new(String::with_capacity(256));
        self.render_json_into(body, request, &mut out)?;
        Ok(out)
    }

    fn render_json_into(
        &self,
        v: &Value,
        request: &str,
        out: &mut String,
    ) -> Result<(), TargetError> {
        match v {
            Value::String(s) => push_json_string(out, &self.render(s, request)?),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.render_json_into(item, request, out)?;
                }
                out.push(']');
            }
            Value::Object(fields) => {
                out.push('{');
                for (i, (k, item)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json_string(out, &self.render(k, request)?);
                    out.push(':');
                    self.render_json_into(item, request, out)?;
                }
                out.push('}');
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&v.to_string()),
        }
        Ok(())
    }
}

/// Appends `s` as a JSON string (quoted, escaped) without an intermediate copy.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[(u32::from(c) >> 4) as usize]));
                out.push(char::from(HEX[(u32::from(c) & 15) as usize]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `METHOD scheme://host/path` of a request template, for messages (no query, no values).
fn describe_request(kind: &str, spec: &RequestSpec) -> String {
    let url = spec.url.split(['?', '#']).next().unwrap_or("");
    format!("{kind} request {} {url}", spec.method.to_ascii_uppercase())
}

/// The host of a request template's URL (as the URL parser writes it: lower case,
/// IPv4 in dotted decimal, IPv6 in brackets), without substituting anything: the host must
/// be written out.
fn template_host(what: &str, url: &str) -> Result<String, TargetError> {
    let invalid = || TargetError::InvalidSecret(format!("{what}: the URL is not valid"));
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(TargetError::InvalidSecret(format!(
            "{what}: only http:// and https:// URLs are supported"
        )));
    }
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    if hostport.contains("{{") || hostport.contains("}}") {
        return Err(TargetError::InvalidSecret(format!(
            "{what}: the host of the URL must be written out, not a placeholder (keyroll \
             checks it against the allowed hosts before anything is sent)"
        )));
    }
    let parsed = reqwest::Url::parse(&format!("{scheme}://{hostport}/")).map_err(|_| invalid())?;
    parsed.host_str().map(str::to_string).ok_or_else(invalid)
}

/// The target for `engine: "http"`.
pub struct HttpTarget {
    config: TargetConfig,
    lookup: Arc<dyn Lookup>,
    client: tokio::sync::OnceCell<reqwest::Client>,
}

/// An answer to one request: status and (for rotate) the parsed JSON body.
struct Answer {
    status: reqwest::StatusCode,
    json: Option<Value>,
}

impl HttpTarget {
    /// A target whose DNS look-ups go to the system resolver.
    pub fn new(config: TargetConfig) -> Self {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// A target whose DNS look-ups go to `lookup` (tests: fixed answers, no traffic). Its
    /// answers are checked like any other.
    pub fn with_lookup(config: TargetConfig, lookup: Arc<dyn Lookup>) -> Self {
        HttpTarget {
            config,
            lookup,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// Every request of `spec` goes to an allowed host (checked before anything is sent).
    fn check_spec(&self, spec: &RotationSpec) -> Result<(), TargetError> {
        let requests = [
            ("rotate", spec.rotate.as_ref()),
            ("set", spec.set.as_ref()),
            ("test", Some(&spec.test)),
            ("revoke", spec.revoke.as_ref()),
        ];
        for (kind, r) in requests {
            let Some(r) = r else { continue };
            let what = describe_request(kind, r);
            let host = template_host(&what, &r.url)?;
            self.config
                .policy
                .check_host(&host)
                .map_err(|e| TargetError::Misconfigured(format!("{what}: {e}")))?;
        }
        Ok(())
    }

    async fn client(&self) -> Result<&reqwest::Client, TargetError> {
        self.client
            .get_or_try_init(|| async {
                let mut b = reqwest::Client::builder()
                    .use_rustls_tls()
                    .connect_timeout(self.config.connect_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .dns_resolver(Arc::new(CheckedResolver::new(
                        Arc::new(self.config.policy.clone()),
                        self.lookup.clone(),
                    )))
                    .user_agent(concat!("keyroll/", env!("CARGO_PKG_VERSION")));
                if let Some(path) = &self.config.ca_bundle {
                    let pem = std::fs::read(path).map_err(|e| {
                        TargetError::Misconfigured(format!(
                            "cannot read the CA bundle {}: {e}",
                            path.display()
                        ))
                    })?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                        TargetError::Misconfigured(format!(
                            "the CA bundle {} holds no PEM certificate",
                            path.display()
                        ))
                    })?;
                    b = b.tls_built_in_root_certs(false);
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
                b.build().map_err(|e| {
                    TargetError::Misconfigured(format!(
                        "cannot set up the HTTP client: {}",
                        e.without_url()
                    ))
                })
            })
            .await
    }

    /// Sends one request built from `spec` with `vars`.
    async fn send(
        &self,
        kind: &str,
        spec: &RequestSpec,
        vars: &Vars<'_>,
        timeout: Duration,
        want_json: bool,
    ) -> Result<Answer, TargetError> {
        let what = describe_request(kind, spec);
        let method = reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| TargetError::InvalidSecret(format!("{what}: method is not valid")))?;
        let url = vars.render(&spec.url, &what)?;
        let parsed = reqwest::Url::parse(&url).map_err(|_| {
            TargetError::InvalidSecret(format!("{what}: the URL is not valid after substitution"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TargetError::InvalidSecret(format!(
                "{what}: only http:// and https:// URLs are supported"
            )));
        }
        // The host actually asked for (after substitution); an IP literal is connected to
        // as is, so it is checked as an address here too. Names are checked again, with
        // their DNS answers, by the client's resolver.
        let host = parsed.host_str().ok_or_else(|| {
            TargetError::InvalidSecret(format!("{what}: the URL has no host after substitution"))
        })?;
        self.config
            .policy
            .check_host(host)
            .map_err(|e| TargetError::Misconfigured(format!("{what}: {e}")))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &spec.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                TargetError::InvalidSecret(format!("{what}: header name {k:?} is not valid"))
            })?;
            let value = vars.render(v, &what)?;
            let mut hv = HeaderValue::from_str(&value).map_err(|_| {
                TargetError::InvalidSecret(format!(
                    "{what}: the value of header {k} is not a valid header value after \
                     substitution"
                ))
            })?;
            hv.set_sensitive(true);
            headers.insert(name, hv);
        }
        let body: Option<Zeroizing<String>> = match &spec.body {
            None => None,
            Some(Value::String(s)) => Some(vars.render(s, &what)?),
            Some(v) => {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                Some(vars.render_json(v, &what)?)
            }
        };
        let client = self.client().await?;
        let mut req = client
            .request(method, parsed)
            .headers(headers)
            .timeout(timeout);
        if let Some(b) = &body {
            req = req.body(b.as_str().to_string());
        }
        let mut resp = req.send().await.map_err(|e| {
            let e = e.without_url();
            if let Some(refusal) = find_refusal(&e) {
                return TargetError::Misconfigured(format!("{what}: {refusal}"));
            }
            let why = if e.is_timeout() {
                format!("no answer within {}s", timeout.as_secs())
            } else if e.is_connect() {
                "cannot connect".to_string()
            } else {
                "the request failed".to_string()
            };
            let mut detail = String::new();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                detail = format!(": {s}");
                src = s.source();
            }
            TargetError::Unreachable(format!("{what}: {why}{detail}"))
        })?;
        let status = resp.status();
        let json = if want_json && status.is_success() {
            let mut buf = Zeroizing::new(Vec::new());
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                            return Err(TargetError::Rejected(format!(
                                "{what}: the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                            )));
                        }
                        buf.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        return Err(TargetError::Unreachable(format!(
                            "{what}: the answer was cut off"
                        )));
                    }
                }
            }
            Some(serde_json::from_slice::<Value>(&buf).map_err(|_| {
                TargetError::Rejected(format!(
                    "{what} answered HTTP {status} with a body that is not JSON (not shown)"
                ))
            })?)
        } else {
            None
        };
        Ok(Answer { status, json })
    }

    /// A non-2xx answer to a request made with the current key.
    fn refused(what: &str, status: reqwest::StatusCode) -> TargetError {
        match status.as_u16() {
            401 => TargetError::AuthenticationFailed(format!(
                "{what} was refused with the current key (HTTP 401)"
            )),
            403 => TargetError::PermissionDenied(format!(
                "{what}: the current key is not allowed to do this (HTTP 403)"
            )),
            _ => TargetError::Rejected(format!("{what} answered HTTP {status}")),
        }
    }

    async fn spec(
        &self,
        ctx: &StepContext<'_>,
    ) -> Result<(RotationSpec, Map<String, Value>), TargetError> {
        let current = ctx.current().await?.json()?;
        let spec = RotationSpec::from_secret(&current, &ctx.description.name)?;
        self.check_spec(&spec)?;
        Ok((spec, current))
    }

    fn key_policy(
        spec: &RotationSpec,
        ctx: &StepContext<'_>,
    ) -> Result<PasswordPolicy, TargetError> {
        let mut base = PasswordPolicy {
            length: 40,
            exclude_punctuation: true,
            ..Default::default()
        };
        base = crate::none::policy_from_tags(ctx, base)?;
        if let Some(p) = &spec.password {
            if let Some(l) = p.length {
                base.length = l;
            }
            if let Some(x) = &p.exclude_characters {
                base.exclude_characters.push_str(x);
            }
            if let Some(x) = p.exclude_punctuation {
                base.exclude_punctuation = x;
            }
        }
        Ok(base)
    }

    async fn test_with_pending(
        &self,
        spec: &RotationSpec,
        ctx: &StepContext<'_>,
        pending: &Map<String, Value>,
        current: Option<&Map<String, Value>>,
    ) -> Result<reqwest::StatusCode, TargetError> {
        let vars = Vars {
            key_field: &spec.key_field,
            token: ctx.token,
            current,
            pending: Some(pending),
            previous: None,
        };
        Ok(self
            .send("test", &spec.test, &vars, spec.timeout(), false)
            .await?
            .status)
    }
}

fn pointer_string(json: &Value, pointer: &str) -> Option<String> {
    match json.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn pending_json(v: &VersionedValue) -> Result<Map<String, Value>, TargetError> {
    v.json()
}

#[async_trait]
impl Target for HttpTarget {
    fn name(&self) -> &str {
        "http"
    }

    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        let (spec, current) = self.spec(ctx).await?;
        let mut next = current.clone();
        match spec.style(&ctx.description.name)? {
            Style::Set => {
                let policy = Self::key_policy(&spec, ctx)?;
                let key = ctx.random_password(&policy).await?;
                next.insert(
                    spec.key_field.clone(),
                    Value::String(key.expose_secret().to_string()),
                );
            }
            Style::Rotate => {
                let Some(rotate) = &spec.rotate else {
                    return Err(TargetError::InvalidSecret("no rotate request".into()));
                };
                let what = describe_request("rotate", rotate);
                let vars = Vars {
                    key_field: &spec.key_field,
                    token: ctx.token,
                    current: Some(&current),
                    pending: None,
                    previous: None,
                };
                let answer = self
                    .send("rotate", rotate, &vars, spec.timeout(), true)
                    .await?;
                if !answer.status.is_success() {
                    let mut e = Self::refused(&what, answer.status);
                    if let TargetError::AuthenticationFailed(m) = &mut e {
                        m.push_str(
                            ". If an earlier attempt of this rotation stopped after the API \
                             issued a new key but before keyroll stored it, that key exists only \
                             at the API: recover it there (or give the rotate request an \
                             idempotency key with {{token}})",
                        );
                    }
                    return Err(e);
                }
                let json = answer.json.unwrap_or(Value::Null);
                let pointer = rotate.response_key_pointer.as_deref().unwrap_or("");
                let key = pointer_string(&json, pointer).ok_or_else(|| {
                    TargetError::Rejected(format!(
                        "{what} answered HTTP {} without a string at {pointer} (the answer is \
                         not shown)",
                        answer.status
                    ))
                })?;
                next.insert(spec.key_field.clone(), Value::String(key));
                for (field, ptr) in &rotate.response_fields {
                    let v = pointer_string(&json, ptr).ok_or_else(|| {
                        TargetError::Rejected(format!(
                            "{what} answered HTTP {} without a value at {ptr} for {field}",
                            answer.status
                        ))
                    })?;
                    next.insert(field.clone(), Value::String(v));
                }
                tracing::info!(secret = %ctx.description.name, request = %what, "the API issued a new key");
            }
        }
        let text = Zeroizing::new(Value::Object(next).to_string());
        Ok(SecretValue::string(text.as_str()))
    }

    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (spec, current) = self.spec(ctx).await?;
        let Some(set) = &spec.set else {
            // Rotate style: the API made the key in createSecret.
            return Ok(());
        };
        let pending = pending_json(ctx.pending().await?)?;
        // Already accepted (an earlier attempt got through, or the API shares keys)?
        let status = self
            .test_with_pending(&spec, ctx, &pending, Some(&current))
            .await?;
        if status.is_success() {
            tracing::info!(secret = %ctx.description.name, "setSecret: the API already accepts the pending key");
            return Ok(());
        }
        let what = describe_request("set", set);
        let vars = Vars {
            key_field: &spec.key_field,
            token: ctx.token,
            current: Some(&current),
            pending: Some(&pending),
            previous: None,
        };
        let answer = self.send("set", set, &vars, spec.timeout(), false).await?;
        if !answer.status.is_success() {
            return Err(Self::refused(&what, answer.status));
        }
        Ok(())
    }

    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        let (spec, current) = self.spec(ctx).await?;
        let pending = pending_json(ctx.pending().await?)?;
        let status = self
            .test_with_pending(&spec, ctx, &pending, Some(&current))
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(TargetError::TestFailed(format!(
                "{} answered HTTP {status} with the pending key",
                describe_request("test", &spec.test)
            )))
        }
    }

    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        // AWSCURRENT is the new key now; AWSPREVIOUS the one it replaced.
        let current = ctx.current().await?.json()?;
        let spec = RotationSpec::from_secret(&current, &ctx.description.name)?;
        self.check_spec(&spec)?;
        let Some(revoke) = &spec.revoke else {
            return Ok(());
        };
        let Some(previous) = ctx.previous().await? else {
            return Ok(());
        };
        let previous = previous.json()?;
        if previous.get(&spec.key_field) == current.get(&spec.key_field) {
            return Ok(());
        }
        let what = describe_request("revoke", revoke);
        let vars = Vars {
            key_field: &spec.key_field,
            token: ctx.token,
            current: Some(&current),
            pending: Some(&current),
            previous: Some(&previous),
        };
        let answer = self
            .send("revoke", revoke, &vars, spec.timeout(), false)
            .await?;
        // Already gone is what we want.
        if answer.status.is_success()
            || answer.status.as_u16() == 404
            || answer.status.as_u16() == 410
        {
            tracing::info!(secret = %ctx.description.name, request = %what, "previous key revoked");
            return Ok(());
        }
        Err(Self::refused(&what, answer.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn templates_substitute_and_escape() {
        let cur = obj(json!({"apiKey": "c\"ur", "keyId": 7}));
        let pen = obj(json!({"apiKey": "pen"}));
        let vars = Vars {
            key_field: "apiKey",
            token: "tok-1",
            current: Some(&cur),
            pending: Some(&pen),
            previous: None,
        };
        let r = vars
            .render(
                "Bearer {{current}} / {{ pending }} / {{current.keyId}} / {{token}}",
                "x",
            )
            .unwrap();
        assert_eq!(r.as_str(), "Bearer c\"ur / pen / 7 / tok-1");
        let j = vars.render_json(&json!({"k": "{{current}}"}), "x").unwrap();
        let parsed: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed["k"], "c\"ur");
        for bad in [
            "{{previous}}",
            "{{nope}}",
            "{{current.missing}}",
            "{{current",
        ] {
            let e = vars
                .render(bad, "test request GET http://x/")
                .unwrap_err()
                .to_string();
            assert!(!e.contains("c\"ur") && !e.contains("pen\""), "{e}");
            assert!(e.contains("test request"), "{e}");
        }
    }

    /// Found by the proptest fallback of the `http_template` fuzz target: JSON bodies were
    /// substituted in their serialised text, so a placeholder naming a field with a `\`
    /// or `"` looked up its escaped spelling, and a `{{` in one string could run on into the
    /// next string's `}}`.
    #[test]
    fn json_bodies_match_placeholders_as_written_and_stay_json() {
        let cur = obj(json!({"apiKey": "q\"uo\\te\n\u{1}", "x\\y": "back", "a\"b": "quote"}));
        let vars = Vars {
            key_field: "apiKey",
            token: "tok-1",
            current: Some(&cur),
            pending: None,
            previous: None,
        };
        let body = json!({
            "slash": "{{current.x\\y}}",
            "quote": "{{current.a\"b}}",
            "{{token}}": ["{{current}}", 1, null, true, {"n": 2.5}],
        });
        let j = vars.render_json(&body, "x").unwrap();
        let parsed: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            parsed,
            json!({
                "slash": "back",
                "quote": "quote",
                "tok-1": ["q\"uo\\te\n\u{1}", 1, null, true, {"n": 2.5}],
            })
        );
        // An opening `{{` in one string never pairs with a `}}` of another.
        let split = json!({"a": "{{current.x", "b": "y}}"});
        let e = vars.render_json(&split, "x").unwrap_err().to_string();
        assert!(e.contains("without a closing"), "{e}");
    }

    #[test]
    fn rotation_block_is_validated_without_quoting_values() {
        let base = json!({
            "engine": "http", "apiKey": "k",
            "rotation": {"test": {"url": "http://x/me"}, "set": {"url": "http://x/keys"}}
        });
        let spec = RotationSpec::from_secret(base.as_object().unwrap(), "s").unwrap();
        assert_eq!(spec.style("s").unwrap(), Style::Set);
        assert_eq!(spec.test.method, "POST");

        let both = json!({"rotation": {"test": {"url": "u"}, "set": {"url": "u"}, "rotate": {"url": "u", "responseKeyPointer": "/k"}}});
        assert!(
            RotationSpec::from_secret(both.as_object().unwrap(), "s")
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        let no_ptr = json!({"rotation": {"test": {"url": "u"}, "rotate": {"url": "u"}}});
        assert!(
            RotationSpec::from_secret(no_ptr.as_object().unwrap(), "s")
                .unwrap_err()
                .to_string()
                .contains("responseKeyPointer")
        );
        let typo = json!({"rotation": {"test": {"url": "u", "headers": "Bearer SEKRET"}, "set": {"url": "u"}}});
        let e = RotationSpec::from_secret(typo.as_object().unwrap(), "s")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SEKRET"), "{e}");
        let missing = json!({"engine": "http"});
        assert!(RotationSpec::from_secret(missing.as_object().unwrap(), "s").is_err());
    }

    #[test]
    fn template_hosts_are_written_out_and_canonical() {
        let ok = [
            (
                "https://API.example.com/v1/{{current.keyId}}",
                "api.example.com",
            ),
            (
                "http://user:{{current}}@api.example.com:8443/x",
                "api.example.com",
            ),
            ("http://127.0.0.1:9000/{{token}}?k={{current}}", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "[::ffff:7f00:1]"),
            ("http://[fd00:ec2::254]/latest", "[fd00:ec2::254]"),
            ("http://169.254.169.254\\latest", "169.254.169.254"),
        ];
        for (url, host) in ok {
            assert_eq!(template_host("r", url).unwrap(), host, "{url}");
        }
        for bad in [
            "http://{{current.host}}/x",
            "http://api.{{current.domain}}/x",
            "http://x@{{current.host}}/",
            "file:///etc/passwd",
            "api.example.com/x",
            "http:///x",
        ] {
            assert!(template_host("r", bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn every_request_is_checked_against_the_policy() {
        let secret = json!({"rotation": {
            "rotate": {"url": "https://api.example.com/rotate", "responseKeyPointer": "/k"},
            "test": {"url": "https://api.example.com/me"},
            "revoke": {"url": "http://169.254.169.254/latest/meta-data/"}
        }});
        let spec = RotationSpec::from_secret(secret.as_object().unwrap(), "s").unwrap();
        let policy = crate::TargetPolicy::parse(&["api.example.com"], &[], &[]).unwrap();
        let target = HttpTarget::new(TargetConfig {
            policy,
            ..TargetConfig::default()
        });
        let e = target.check_spec(&spec).unwrap_err();
        assert_eq!(e.class(), "Misconfigured");
        let m = e.to_string();
        assert!(
            m.contains("revoke request POST http://169.254.169.254/latest/meta-data/")
                && m.contains("allow_hosts"),
            "{m}"
        );
        let none = HttpTarget::new(TargetConfig::default());
        assert!(
            none.check_spec(&spec)
                .unwrap_err()
                .to_string()
                .contains("rotate request")
        );
    }

    #[test]
    fn requests_are_described_without_query_or_values() {
        let spec = RequestSpec {
            method: "post".into(),
            url: "https://api.example.com/v1/keys/{{current.keyId}}?api_key={{current}}".into(),
            headers: Default::default(),
            body: None,
            response_key_pointer: None,
            response_fields: Default::default(),
        };
        assert_eq!(
            describe_request("rotate", &spec),
            "rotate request POST https://api.example.com/v1/keys/{{current.keyId}}"
        );
    }
}
