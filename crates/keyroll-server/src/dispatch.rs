//! The 23 operations: `X-Amz-Target: secretsmanager.<Operation>` to a call on the region's
//! [`keyroll_core::service::SecretsService`], plus what the service alone does not do:
//! replication across regions and the replica guard of the operations the service does not
//! guard itself ("a manual put counts as a rotation" is the service's own).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use keyroll_core::SmError;
use keyroll_core::api::*;
use keyroll_core::model::ReplicaStatus;
use keyroll_core::operations::{
    delete_replica, forget_replica, promote_replica, record_replica_status, replica_arn,
    sync_replica, validate_resource_policy,
};
use keyroll_core::ports::SecretsApi;

use crate::authz::{self, RequestMeta, RequestParams};
use crate::identity::Principal;
use crate::regions::{Regions, Service};
use crate::server::App;
use crate::wire::ApiError;

macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// A Secrets Manager operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation { $($op),* }

        impl Operation {
            pub const ALL: &'static [Operation] = &[$(Operation::$op),*];

            pub fn name(self) -> &'static str {
                match self { $(Operation::$op => stringify!($op)),* }
            }

            /// The IAM action: `secretsmanager:OP`.
            pub fn action(self) -> &'static str {
                match self { $(Operation::$op => concat!("secretsmanager:", stringify!($op))),* }
            }

            /// From the `X-Amz-Target` header (`secretsmanager.GetSecretValue`).
            pub fn from_target(target: &str) -> Option<Operation> {
                let op = target.strip_prefix("secretsmanager.")?;
                match op { $(stringify!($op) => Some(Operation::$op),)* _ => None }
            }
        }
    };
}

operations!(
    CreateSecret,
    GetSecretValue,
    BatchGetSecretValue,
    PutSecretValue,
    UpdateSecret,
    UpdateSecretVersionStage,
    DescribeSecret,
    ListSecrets,
    ListSecretVersionIds,
    DeleteSecret,
    RestoreSecret,
    TagResource,
    UntagResource,
    RotateSecret,
    CancelRotateSecret,
    GetRandomPassword,
    PutResourcePolicy,
    GetResourcePolicy,
    DeleteResourcePolicy,
    ValidateResourcePolicy,
    ReplicateSecretToRegions,
    RemoveRegionsFromReplication,
    StopReplicationToReplica,
);

impl Operation {
    pub fn index(self) -> usize {
        self as usize
    }

    /// Operations that change state (run off the async workers: stores may fsync).
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Operation::GetSecretValue
                | Operation::BatchGetSecretValue
                | Operation::DescribeSecret
                | Operation::ListSecrets
                | Operation::ListSecretVersionIds
                | Operation::GetRandomPassword
                | Operation::GetResourcePolicy
                | Operation::ValidateResourcePolicy
        )
    }
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        // serde's messages name fields and types, never values.
        if msg.starts_with("missing field") {
            ApiError::bad_request(
                "ValidationException",
                format!("1 validation error detected: {msg}"),
            )
        } else {
            ApiError::serialization(redact_quoted(&msg))
        }
    })
}

/// Parse errors may quote a value the client sent (possibly a secret in the wrong field):
/// keep the shape of the message, drop what was quoted.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside: Option<char> = None;
    for c in msg.chars() {
        match inside {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                inside = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                inside = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

fn json<T: Serialize>(v: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(v).map(Bytes::from).map_err(|e| {
        ApiError::from(SmError::InternalServiceError(format!(
            "could not encode the response: {e}"
        )))
    })
}

/// Runs a write where blocking is allowed: stores fsync, and the async workers must keep
/// serving reads meanwhile.
pub(crate) async fn off_worker<F: Future>(f: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(f))
        }
        _ => f.await,
    }
}

fn not_on_replica<B: keyroll_core::service::Backend>(
    svc: &keyroll_core::service::SecretsService<B>,
    secret_id: &str,
) -> Result<(), ApiError> {
    match svc.find(secret_id) {
        Ok(r) if r.is_replica() => Err(SmError::replica_write().into()),
        _ => Ok(()),
    }
}

fn valid_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Who is asking, and how: checked before any operation runs.
pub struct Asker<'a> {
    pub principal: &'a Principal,
    pub params: &'a RequestParams,
    pub meta: &'a RequestMeta,
}

/// What authorization decided about a call: the resource it was checked on (for the audit
/// trail's `resources`).
#[derive(Debug, Clone, Default)]
pub struct Authorized {
    /// The secret's ARN, when the call named one.
    pub resource_arn: Option<String>,
}

/// Authorizes `op` for `who` in `region` (IAM's evaluation over the principal's identity
/// policies and the secret's resource policy); the error is `AccessDeniedException`. The
/// resource checked is returned either way (for the audit trail).
pub fn authorize<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    op: Operation,
    region: &str,
    who: &Asker<'_>,
) -> (Authorized, Result<(), ApiError>) {
    let (authorized, _, decision) = authorize_found(app, svc, op, region, who);
    (authorized, decision)
}

/// [`authorize`], also returning the secret the request names as it was looked up for the
/// decision (`None` when it does not exist or the operation is not about one), so the
/// operation need not look it up again.
fn authorize_found<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    op: Operation,
    region: &str,
    who: &Asker<'_>,
) -> (
    Authorized,
    Option<keyroll_core::model::SecretRecord>,
    Result<(), ApiError>,
) {
    let action = op.action();
    let id_key = if op == Operation::CreateSecret {
        None
    } else {
        who.params.get("SecretId").and_then(|v| v.as_str())
    };
    let secret = match id_key {
        Some(id) if !authz::on_all_resources(op) => svc.find(id).ok(),
        _ => None,
    };
    let nominal;
    let resource = if authz::on_all_resources(op)
        || (op == Operation::ValidateResourcePolicy && id_key.is_none())
    {
        "*"
    } else if let Some(s) = &secret {
        s.arn.as_str()
    } else {
        nominal = authz::nominal_arn(op, who.params, region, &app.config.account);
        nominal.as_str()
    };
    let decision = authz::check(
        &authz::Question {
            op,
            action,
            region,
            principal: who.principal,
            params: who.params,
            meta: who.meta,
            secret: secret.as_ref(),
            resource,
        },
        &app.policies,
    );
    let authorized = Authorized {
        resource_arn: (resource != "*").then(|| resource.to_string()),
    };
    (authorized, secret, decision)
}

/// `BatchGetSecretValue` returns only the secrets the caller may read with
/// `secretsmanager:GetSecretValue`; the others are reported in `Errors`, as AWS does.
fn filter_batch<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    region: &str,
    who: &Asker<'_>,
    requested: Option<&[String]>,
    mut resp: BatchGetSecretValueResponse,
) -> BatchGetSecretValueResponse {
    let mut kept = Vec::with_capacity(resp.secret_values.len());
    for v in std::mem::take(&mut resp.secret_values) {
        let secret = svc.find(&v.arn).ok();
        let params = {
            let mut m = RequestParams::new();
            m.insert("SecretId".into(), serde_json::Value::String(v.arn.clone()));
            if !v.version_id.is_empty() {
                m.insert(
                    "VersionId".into(),
                    serde_json::Value::String(v.version_id.clone()),
                );
            }
            m
        };
        let allowed = authz::check(
            &authz::Question {
                op: Operation::GetSecretValue,
                action: "secretsmanager:GetSecretValue",
                region,
                principal: who.principal,
                params: &params,
                meta: who.meta,
                secret: secret.as_ref(),
                resource: &v.arn,
            },
            &app.policies,
        );
        match allowed {
            Ok(()) => kept.push(v),
            Err(e) => {
                // Name the secret as the caller did.
                let asked = requested
                    .and_then(|ids| {
                        ids.iter().find(|id| {
                            id.as_str() == v.arn
                                || id.as_str() == v.name
                                || svc.find(id).is_ok_and(|r| r.arn == v.arn)
                        })
                    })
                    .cloned()
                    .unwrap_or_else(|| v.arn.clone());
                resp.errors.push(ApiErrorEntry {
                    secret_id: asked,
                    error_code: e.kind.to_string(),
                    message: e.message,
                });
            }
        }
    }
    resp.secret_values = kept;
    resp
}

/// Handles one API call in `region`, after authorizing it. Returns what authorization
/// checked whatever the outcome.
pub async fn handle<R: Regions>(
    app: &Arc<App<R>>,
    op: Operation,
    region: &str,
    body: &[u8],
    who: &Asker<'_>,
) -> (Result<Bytes, ApiError>, Authorized) {
    let svc = match app.store.region(region) {
        Ok(s) => s,
        Err(e) => return (Err(e.into()), Authorized::default()),
    };
    let (authorized, secret, decision) = authorize_found(app, &svc, op, region, who);
    if let Err(e) = decision {
        return (Err(e), authorized);
    }
    if op == Operation::GetSecretValue
        && let Some(rec) = secret
    {
        // The read path: the secret authorization looked up is the one read.
        return (get_secret_value_of::<R>(&svc, rec, body, who), authorized);
    }
    (
        run_authorized(app, &svc, op, region, body, who).await,
        authorized,
    )
}

/// `GetSecretValue` of `rec`, the secret the request's `SecretId` named when it was
/// authorized.
fn get_secret_value_of<R: Regions>(
    svc: &Service<R>,
    rec: keyroll_core::model::SecretRecord,
    body: &[u8],
    who: &Asker<'_>,
) -> Result<Bytes, ApiError> {
    let req: GetSecretValueRequest = parse(body)?;
    let authorized_id = who.params.get("SecretId").and_then(|v| v.as_str());
    if authorized_id != Some(req.secret_id.as_str()) {
        // Both come from one body, so they cannot differ; if they ever did, never read a
        // secret other than the one authorized.
        return Err(ApiError::serialization(
            "SecretId must appear once, as a string",
        ));
    }
    json(&svc.get_secret_value_of(rec, &req)?)
}

async fn run_authorized<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    op: Operation,
    region: &str,
    body: &[u8],
    who: &Asker<'_>,
) -> Result<Bytes, ApiError> {
    match op {
        Operation::BatchGetSecretValue => {
            let req: BatchGetSecretValueRequest = parse(body)?;
            let requested = req.secret_id_list.clone();
            let resp = svc.batch_get_secret_value(req).await?;
            json(&filter_batch(
                app,
                svc,
                region,
                who,
                requested.as_deref(),
                resp,
            ))
        }
        _ => run(app, svc, op, region, body).await,
    }
}

async fn run<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    op: Operation,
    region: &str,
    body: &[u8],
) -> Result<Bytes, ApiError> {
    match op {
        Operation::GetSecretValue => {
            let req: GetSecretValueRequest = parse(body)?;
            json(&svc.get_secret_value(req).await?)
        }
        Operation::DescribeSecret => {
            let req: SecretIdRequest = parse(body)?;
            json(&svc.describe_secret(req).await?)
        }
        Operation::ListSecrets => {
            let req: ListSecretsRequest = parse(body)?;
            json(&svc.list_secrets_page(&req)?)
        }
        Operation::ListSecretVersionIds => {
            let req: ListSecretVersionIdsRequest = parse(body)?;
            json(&svc.list_secret_version_ids(req).await?)
        }
        Operation::GetRandomPassword => {
            let req: GetRandomPasswordRequest = parse(body)?;
            json(&svc.get_random_password(req).await?)
        }
        Operation::GetResourcePolicy => {
            let req: SecretIdRequest = parse(body)?;
            json(&svc.get_resource_policy(&req.secret_id)?)
        }
        Operation::ValidateResourcePolicy => {
            let req: ValidateResourcePolicyRequest = parse(body)?;
            if let Some(id) = &req.secret_id {
                svc.find(id)?;
            }
            json(&validate_resource_policy(&req.resource_policy)?)
        }
        _ => off_worker(write(app, svc, op, region, body)).await,
    }
}

async fn write<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    op: Operation,
    region: &str,
    body: &[u8],
) -> Result<Bytes, ApiError> {
    match op {
        Operation::CreateSecret => {
            let req: CreateSecretRequest = parse(body)?;
            let replicas = req.add_replica_regions.clone().unwrap_or_default();
            let force = req.force_overwrite_replica_secret.unwrap_or(false);
            check_replica_regions(&replicas, region)?;
            let mut resp = svc.create_secret(req).await?;
            if !replicas.is_empty() {
                resp.replication_status = Some(replicate(app, svc, &resp.arn, &replicas, force)?);
            }
            json(&resp)
        }
        Operation::PutSecretValue => {
            let req: PutSecretValueRequest = parse(body)?;
            // A new AWSCURRENT counts as a rotation: the core service applies it.
            let resp = svc.put_secret_value(req).await?;
            app.store.sync_replicas(region, &resp.arn)?;
            json(&resp)
        }
        Operation::UpdateSecret => {
            let req: UpdateSecretRequest = parse(body)?;
            let resp = svc.update_secret(req).await?;
            app.store.sync_replicas(region, &resp.arn)?;
            json(&resp)
        }
        Operation::UpdateSecretVersionStage => {
            let req: UpdateSecretVersionStageRequest = parse(body)?;
            let resp = svc.update_secret_version_stage(req).await?;
            app.store.sync_replicas(region, &resp.arn)?;
            json(&resp)
        }
        Operation::DeleteSecret => {
            let req: DeleteSecretRequest = parse(body)?;
            not_on_replica(svc, &req.secret_id)?;
            json(&svc.delete_secret(req).await?)
        }
        Operation::RestoreSecret => {
            let req: SecretIdRequest = parse(body)?;
            not_on_replica(svc, &req.secret_id)?;
            json(&svc.restore_secret(req).await?)
        }
        Operation::TagResource => {
            let req: TagResourceRequest = parse(body)?;
            not_on_replica(svc, &req.secret_id)?;
            let id = req.secret_id.clone();
            let resp = svc.tag_resource(req).await?;
            sync_by_id(app, svc, region, &id)?;
            json(&resp)
        }
        Operation::UntagResource => {
            let req: UntagResourceRequest = parse(body)?;
            not_on_replica(svc, &req.secret_id)?;
            let id = req.secret_id.clone();
            let resp = svc.untag_resource(req).await?;
            sync_by_id(app, svc, region, &id)?;
            json(&resp)
        }
        Operation::RotateSecret => {
            let req: RotateSecretRequest = parse(body)?;
            json(&crate::rotation::rotate_secret(app, region, req).await?)
        }
        Operation::CancelRotateSecret => {
            let req: SecretIdRequest = parse(body)?;
            let resp = svc.cancel_rotation(&req.secret_id)?;
            app.rotations.cancel(&resp.arn);
            app.store.sync_replicas(region, &resp.arn)?;
            json(&resp)
        }
        Operation::PutResourcePolicy => {
            let req: PutResourcePolicyRequest = parse(body)?;
            json(&svc.put_resource_policy(&req)?)
        }
        Operation::DeleteResourcePolicy => {
            let req: SecretIdRequest = parse(body)?;
            json(&svc.delete_resource_policy(&req.secret_id)?)
        }
        Operation::ReplicateSecretToRegions => {
            let req: ReplicateSecretToRegionsRequest = parse(body)?;
            let rec = svc.find(&req.secret_id)?;
            rec.ensure_not_deleted()?;
            not_on_replica(svc, &rec.arn)?;
            check_replica_regions(&req.add_replica_regions, region)?;
            if req.add_replica_regions.is_empty() {
                return Err(SmError::InvalidParameter(
                    "AddReplicaRegions must name at least one region.".into(),
                )
                .into());
            }
            let force = req.force_overwrite_replica_secret.unwrap_or(false);
            let statuses = replicate(app, svc, &rec.arn, &req.add_replica_regions, force)?;
            json(&ReplicationStatusResponse {
                arn: rec.arn,
                replication_status: statuses,
            })
        }
        Operation::RemoveRegionsFromReplication => {
            let req: RemoveRegionsFromReplicationRequest = parse(body)?;
            let rec = svc.find(&req.secret_id)?;
            not_on_replica(svc, &rec.arn)?;
            if req.remove_replica_regions.is_empty() {
                return Err(SmError::InvalidParameter(
                    "RemoveReplicaRegions must name at least one region.".into(),
                )
                .into());
            }
            // Removing a region the secret is not replicated to is a no-op (idempotent).
            let mut last = rec.clone();
            for r in req
                .remove_replica_regions
                .iter()
                .filter(|r| rec.replicas.iter().any(|x| &x.region == *r))
            {
                delete_replica(app.store.region(r)?.as_ref(), &rec.arn)?;
                last = forget_replica(svc, &rec.arn, r)?;
            }
            json(&ReplicationStatusResponse {
                arn: last.arn,
                replication_status: last.replicas,
            })
        }
        Operation::StopReplicationToReplica => {
            let req: SecretIdRequest = parse(body)?;
            let rec = svc.find(&req.secret_id)?;
            let primary_region = rec.primary_region.clone();
            let promoted = promote_replica(svc, &rec.arn)?;
            if let Some(pr) = primary_region
                && let Some(parn) = replica_arn(&promoted.arn, &pr)
            {
                let primary = app.store.region(&pr)?;
                match forget_replica(&primary, &parn, region) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            json(&ArnOnly { arn: promoted.arn })
        }
        // Reads are handled in `handle`.
        _ => Err(ApiError::unknown_operation(op.name())),
    }
}

fn sync_by_id<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    region: &str,
    id: &str,
) -> Result<(), ApiError> {
    if let Ok(rec) = svc.find(id)
        && !rec.replicas.is_empty()
    {
        app.store.sync_replicas(region, &rec.arn)?;
    }
    Ok(())
}

fn check_replica_regions(regions: &[ReplicaRegion], own: &str) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for r in regions {
        if !valid_region_name(&r.region) {
            return Err(SmError::InvalidParameter(format!(
                "Invalid replica region {:?}.",
                r.region
            ))
            .into());
        }
        if r.region == own {
            // AWS's exact answer (emulator suite, AWS-verified replication cases).
            return Err(SmError::InvalidParameter("Invalid replica region.".into()).into());
        }
        if !seen.insert(r.region.as_str()) {
            return Err(SmError::InvalidParameter(format!(
                "Replica region {} is listed twice.",
                r.region
            ))
            .into());
        }
    }
    Ok(())
}

/// Replicates the primary `arn` to `regions`; a region that fails is reported `Failed` in
/// the status list (like AWS), not as an error of the call.
fn replicate<R: Regions>(
    app: &Arc<App<R>>,
    svc: &Service<R>,
    arn: &str,
    regions: &[ReplicaRegion],
    force: bool,
) -> Result<Vec<ReplicaStatus>, ApiError> {
    let mut last = None;
    for r in regions {
        let replica = app.store.region(&r.region)?;
        let (status, message) = match sync_replica(svc, &replica, arn, force) {
            Ok(()) => ("InSync", None),
            Err(e) => ("Failed", Some(e.message().to_string())),
        };
        last = Some(record_replica_status(
            svc,
            arn,
            ReplicaStatus {
                region: r.region.clone(),
                kms_key_id: r.kms_key_id.clone(),
                status: status.into(),
                status_message: message,
                last_accessed_date: None,
            },
        )?);
    }
    Ok(last.map(|r| r.replicas).unwrap_or_default())
}
