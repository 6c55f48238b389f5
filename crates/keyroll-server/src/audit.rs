//! The server's side of the audit trail: one CloudTrail-shaped record per API request
//! (allowed, denied or refused at authentication; STS included), per rotation the server
//! runs, and per start and stop, written through [`keyroll_audit::AuditLog`].
//!
//! Durability: records of calls that can change state (and of refused ones, and of rotation
//! and lifecycle events) are on disk before the response is sent ([`Durability::Sync`], group
//! committed); records of reads are buffered and reach the file within the flush interval
//! (`[audit] flush_interval_ms`, 1 s by default), or at once with `read_durability = "sync"`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use keyroll_audit::{
    AuditLog, AuditRecord, Durability, EncodedIdentity, Identity, IdentityRef, IssuerRef, Resource,
    SECRETS_MANAGER_SOURCE, STS_SOURCE, SessionAttributes, SessionContext, SessionIssuer,
    SessionRef, UserIdentity,
};
use keyroll_core::time::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::authz::RequestMeta;
use crate::identity::{Principal, PrincipalKind};

/// `[audit]` in `keyroll.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Write the trail (default true). Turning it off is logged at start as a warning.
    pub enabled: bool,
    /// `buffered` (default) or `sync`: whether read records are on disk before the response.
    pub read_durability: ReadDurability,
    /// How long a buffered record may wait before it is written (default 1000 ms).
    pub flush_interval_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadDurability {
    Buffered,
    Sync,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            read_durability: ReadDurability::Buffered,
            flush_interval_ms: 1000,
        }
    }
}

/// The trail and its counters.
#[derive(Debug)]
pub struct Audit {
    log: Arc<AuditLog>,
    account: String,
    read_durability: Durability,
    /// Records written, and appends that failed (also logged).
    pub written: AtomicU64,
    pub failed: AtomicU64,
}

/// A principal's `userIdentity`, serialised once with the access key it was first audited
/// with (a principal signs with one key: its own, or its session's).
#[derive(Default)]
pub struct IdentityCache(OnceLock<(String, Option<EncodedIdentity>)>);

/// A clone starts empty: it may be changed before it signs anything.
impl Clone for IdentityCache {
    fn clone(&self) -> Self {
        IdentityCache::default()
    }
}

impl std::fmt::Debug for IdentityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityCache")
    }
}

/// Who made a request, as far as the server knows it.
pub enum Caller<'a> {
    Principal {
        principal: &'a Principal,
        access_key_id: &'a str,
    },
    /// Authentication failed; the key id the request claimed, if any.
    Unauthenticated { access_key_id: Option<&'a str> },
}

/// One API request's record.
pub struct ApiCall<'a> {
    pub source: ApiSource,
    pub event_name: &'a str,
    pub region: &'a str,
    pub caller: Caller<'a>,
    pub meta: &'a RequestMeta,
    pub request_id: &'a str,
    /// The request body's JSON (sanitised here).
    pub params: Value,
    /// The response's JSON for calls that change state (sanitised here); `Null` otherwise.
    pub response: Value,
    pub error: Option<(&'a str, &'a str)>,
    pub read_only: bool,
    pub resource_arn: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiSource {
    SecretsManager,
    Sts,
}

fn rfc3339(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    t.to_datetime()
}

fn secs_rfc3339(secs: i64) -> String {
    Timestamp::from_millis(secs.saturating_mul(1000))
        .to_datetime()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `userIdentity` of a principal.
pub fn user_identity(p: &Principal, access_key_id: &str) -> UserIdentity {
    let mut u = UserIdentity {
        identity_type: p.identity_type().to_string(),
        principal_id: Some(p.user_id.clone()),
        arn: Some(p.arn.clone()),
        account_id: Some(p.account.clone()),
        access_key_id: Some(access_key_id.to_string()),
        user_name: p.username().map(str::to_string),
        session_context: None,
        invoked_by: None,
    };
    if let Some(issued) = p.issued_at {
        u.session_context = Some(SessionContext {
            attributes: SessionAttributes {
                creation_date: secs_rfc3339(issued),
                mfa_authenticated: p.mfa_authenticated().to_string(),
            },
            session_issuer: match &p.kind {
                PrincipalKind::AssumedRole {
                    role_name,
                    role_arn,
                    ..
                } => Some(SessionIssuer {
                    issuer_type: "Role".into(),
                    principal_id: p.user_id.split(':').next().unwrap_or_default().to_string(),
                    arn: role_arn.clone(),
                    account_id: p.account.clone(),
                    user_name: role_name.clone(),
                }),
                PrincipalKind::User => None,
            },
        });
    }
    u
}

/// `userIdentity` of a principal signing with `access_key_id`, serialised.
fn encoded_identity(p: &Principal, access_key_id: &str) -> serde_json::Result<EncodedIdentity> {
    let creation_date = p.issued_at.map(secs_rfc3339);
    IdentityRef {
        identity_type: p.identity_type(),
        principal_id: Some(&p.user_id),
        arn: Some(&p.arn),
        account_id: Some(&p.account),
        access_key_id: Some(access_key_id),
        user_name: p.username(),
        session: creation_date.as_deref().map(|creation_date| SessionRef {
            creation_date,
            mfa_authenticated: p.mfa_authenticated(),
            issuer: match &p.kind {
                PrincipalKind::AssumedRole {
                    role_name,
                    role_arn,
                    ..
                } => Some(IssuerRef {
                    principal_id: p.user_id.split(':').next().unwrap_or_default(),
                    arn: role_arn,
                    account_id: &p.account,
                    user_name: role_name,
                }),
                PrincipalKind::User => None,
            },
        }),
    }
    .encode()
}

impl Audit {
    pub fn new(log: Arc<AuditLog>, account: &str, config: &AuditConfig) -> Self {
        Audit {
            log,
            account: account.to_string(),
            read_durability: match config.read_durability {
                ReadDurability::Buffered => Durability::Buffered,
                ReadDurability::Sync => Durability::Sync,
            },
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// Records a Secrets Manager request refused at signature verification: no principal, the
    /// access key id and region the request claimed, the error, nothing of its body.
    pub fn refused(
        &self,
        event_name: &str,
        headers: &http::HeaderMap,
        meta: &RequestMeta,
        request_id: &str,
        error: (&str, &str),
        read_only: bool,
    ) {
        self.api_call(ApiCall {
            source: ApiSource::SecretsManager,
            event_name,
            region: crate::sigv4::claimed_region(headers).unwrap_or(""),
            caller: Caller::Unauthenticated {
                access_key_id: crate::sigv4::claimed_access_key_id(headers),
            },
            meta,
            request_id,
            params: Value::Null,
            response: Value::Null,
            error: Some(error),
            read_only,
            resource_arn: None,
        });
    }

    /// Records one API request. Failures are logged and counted, never answered: the call
    /// has already run. The record is written straight from the borrowed parts
    /// ([`keyroll_audit::ApiCall`]): parameters and response through the allow-lists of
    /// [`keyroll_audit::sanitize_parameters`], by reference.
    pub fn api_call(&self, call: ApiCall<'_>) {
        let source = match call.source {
            ApiSource::SecretsManager => SECRETS_MANAGER_SOURCE,
            ApiSource::Sts => STS_SOURCE,
        };
        let fresh;
        let user_identity = match call.caller {
            Caller::Principal {
                principal: p,
                access_key_id,
            } => {
                let cached = p.audit_identity.0.get_or_init(|| {
                    (
                        access_key_id.to_string(),
                        encoded_identity(p, access_key_id).ok(),
                    )
                });
                match cached {
                    (key, Some(encoded)) if key == access_key_id => Identity::Encoded(encoded),
                    _ => {
                        fresh = encoded_identity(p, access_key_id);
                        match &fresh {
                            Ok(encoded) => Identity::Encoded(encoded),
                            // Serialising strings into memory does not fail; were it to,
                            // the record still names the key.
                            Err(_) => Identity::Parts(IdentityRef {
                                identity_type: "Unknown",
                                access_key_id: Some(access_key_id),
                                account_id: Some(&self.account),
                                ..IdentityRef::default()
                            }),
                        }
                    }
                }
            }
            Caller::Unauthenticated { access_key_id } => Identity::Parts(IdentityRef {
                identity_type: "Unknown",
                access_key_id,
                account_id: Some(&self.account),
                ..IdentityRef::default()
            }),
        };
        let null = Value::Null;
        let record = keyroll_audit::ApiCall {
            event_time: rfc3339(call.meta.now),
            event_source: source,
            event_name: call.event_name,
            aws_region: call.region,
            user_identity,
            source_ip_address: Some(call.meta.source_ip),
            user_agent: call.meta.user_agent.as_deref(),
            error: call.error,
            request_parameters: &call.params,
            response_elements: if call.error.is_none() && !call.read_only {
                &call.response
            } else {
                &null
            },
            request_id: Some(call.request_id),
            read_only: call.read_only,
            resource_arn: call.resource_arn,
            recipient_account_id: &self.account,
        };
        // Reads that succeeded may be buffered; everything else is durable first.
        let durability = if call.read_only && call.error.is_none() {
            self.read_durability
        } else {
            Durability::Sync
        };
        let result = match durability {
            // An fsync must not stall an async worker that serves other requests.
            Durability::Sync => blocking(|| self.log.append_call(&record, durability)),
            Durability::Buffered => self.log.append_call(&record, durability),
        };
        self.count(result);
    }

    /// Records something keyroll did itself (`keyroll.local`): a rotation, a start, a stop.
    pub fn service_event(
        &self,
        now: Timestamp,
        event_name: &str,
        region: &str,
        resource_arn: Option<&str>,
        details: Value,
    ) {
        let mut r =
            AuditRecord::service_event(rfc3339(now), event_name, &self.account, region, details);
        if let Some(arn) = resource_arn {
            r.resources.push(Resource::secret(arn, &self.account));
        }
        self.append(r, Durability::Sync);
    }

    /// Records a rotation starting (`RotationStarted`) as the server runs it.
    pub fn rotation_started(
        &self,
        now: Timestamp,
        region: &str,
        arn: &str,
        version_id: &str,
        resumed: bool,
        function: &str,
    ) {
        self.service_event(
            now,
            "RotationStarted",
            region,
            Some(arn),
            serde_json::json!({
                "versionId": version_id,
                "resumed": resumed,
                "rotationFunction": function,
            }),
        );
    }

    /// Records one rotation step the server ran (`RotationStep`): which, how long, and the
    /// error class and message (built by keyroll, never holding a value) when it failed.
    #[allow(clippy::too_many_arguments)]
    pub fn rotation_step(
        &self,
        now: Timestamp,
        region: &str,
        arn: &str,
        step: &str,
        elapsed: std::time::Duration,
        error: Option<(&str, String)>,
    ) {
        let mut details = serde_json::json!({
            "step": step,
            "elapsedMs": elapsed.as_millis() as u64,
            "outcome": if error.is_some() { "failed" } else { "succeeded" },
        });
        if let Some((class, message)) = error {
            details["errorClass"] = Value::String(class.to_string());
            details["errorMessage"] = Value::String(message);
        }
        self.service_event(now, "RotationStep", region, Some(arn), details);
    }

    fn append(&self, r: AuditRecord, durability: Durability) {
        let result = match durability {
            // An fsync must not stall an async worker that serves other requests.
            Durability::Sync => blocking(|| self.log.append(r, durability)),
            Durability::Buffered => self.log.append(r, durability),
        };
        self.count(result);
    }

    fn count(&self, result: Result<(), keyroll_audit::AuditError>) {
        match result {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "could not write the audit trail");
            }
        }
    }

    /// Writes and fsyncs everything pending (at shutdown).
    pub fn close(&self) {
        if let Err(e) = blocking(|| self.log.close()) {
            tracing::error!(error = %e, "could not close the audit trail");
        }
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
