//! The operations beyond [`SecretsApi`]'s core set, over the same [`SecretsService`]:
//! `BatchGetSecretValue`, resource policies, the switches around rotation (`CancelRotateSecret`,
//! "a manual put counts as a rotation", moving `NextRotationDate`), and replication of a
//! secret to other regions (each region is its own [`SecretsService`]).

use std::collections::HashSet;

use crate::api::*;
use crate::error::SmError;
use crate::ids::{SecretRef, parse_arn};
use crate::model::{AWSPENDING, ReplicaStatus, SecretRecord};
use crate::ports::SecretsApi;
use crate::service::reject_replica;
use crate::service::{Backend, Change, CommitError, SecretsService, paginate};
use crate::time::Timestamp;

/// Most secrets one `BatchGetSecretValue` returns.
pub const BATCH_MAX: i64 = 20;

fn arn_name(rec: &SecretRecord) -> ArnName {
    ArnName {
        arn: rec.arn.clone(),
        name: rec.name.clone(),
    }
}

impl<B: Backend> SecretsService<B> {
    /// `BatchGetSecretValue`: by `SecretIdList` (each failure becomes an entry of `Errors`)
    /// or by `Filters` (paginated like `ListSecrets`).
    pub async fn batch_get_secret_value(
        &self,
        req: BatchGetSecretValueRequest,
    ) -> Result<BatchGetSecretValueResponse, SmError> {
        let ids: Vec<String> = match (&req.secret_id_list, &req.filters) {
            (Some(_), Some(_)) => {
                return Err(SmError::InvalidParameter(
                    "Either 'SecretIdList' or 'Filters' must be provided, but not both.".into(),
                ));
            }
            (None, None) => {
                return Err(SmError::InvalidParameter(
                    "Either 'SecretIdList' or 'Filters' must be provided.".into(),
                ));
            }
            (Some(list), None) => {
                if req.max_results.is_some() {
                    return Err(SmError::InvalidParameter(
                        "'Filters' not specified. 'Filters' must also be specified when \
                         'MaxResults' is provided."
                            .into(),
                    ));
                }
                if req.next_token.is_some() {
                    return Err(SmError::InvalidParameter(
                        "'Filters' not specified. 'Filters' must also be specified when \
                         'NextToken' is provided."
                            .into(),
                    ));
                }
                if list.is_empty() || list.len() > BATCH_MAX as usize {
                    return Err(SmError::InvalidParameter(format!(
                        "SecretIdList must contain 1 to {BATCH_MAX} secret ids."
                    )));
                }
                list.clone()
            }
            (None, Some(filters)) => {
                let listing = self
                    .list_secrets(ListSecretsRequest {
                        filters: Some(filters.clone()),
                        max_results: Some(100),
                        ..Default::default()
                    })
                    .await;
                // ListSecrets pages at 100; collect every page to apply our own page size.
                let mut arns: Vec<String> = Vec::new();
                let mut page = listing?;
                loop {
                    arns.extend(page.secret_list.iter().map(|e| e.arn.clone()));
                    match page.next_token.take() {
                        Some(t) => {
                            page = self
                                .list_secrets(ListSecretsRequest {
                                    filters: Some(filters.clone()),
                                    next_token: Some(t),
                                    ..Default::default()
                                })
                                .await?;
                        }
                        None => break,
                    }
                }
                let (page, next) =
                    paginate(arns, req.next_token.as_deref(), req.max_results, BATCH_MAX)?;
                return self.batch_values(page, next).await;
            }
        };
        self.batch_values(ids, None).await
    }

    async fn batch_values(
        &self,
        ids: Vec<String>,
        next_token: Option<String>,
    ) -> Result<BatchGetSecretValueResponse, SmError> {
        let mut secret_values = Vec::with_capacity(ids.len());
        let mut errors = Vec::new();
        for id in ids {
            match self
                .get_secret_value(GetSecretValueRequest {
                    secret_id: id.clone(),
                    version_id: None,
                    version_stage: None,
                })
                .await
            {
                Ok(v) => secret_values.push(v),
                Err(e) => errors.push(ApiErrorEntry {
                    secret_id: id,
                    error_code: e.aws_type().to_string(),
                    message: e.message().to_string(),
                }),
            }
        }
        Ok(BatchGetSecretValueResponse {
            secret_values,
            next_token,
            errors,
        })
    }

    // ---- resource policies -------------------------------------------------------------------

    /// `PutResourcePolicy`.
    pub fn put_resource_policy(&self, req: &PutResourcePolicyRequest) -> Result<ArnName, SmError> {
        // An unknown secret is reported before a malformed policy (AWS's order of checks).
        let rec = self.find(&req.secret_id)?;
        rec.ensure_not_deleted()?;
        reject_replica(&rec)?;
        let report = check_policy(&req.resource_policy)?;
        if let Some(e) = report.first() {
            return Err(SmError::MalformedPolicyDocument(format!(
                "This resource policy contains an error: {}",
                e.error_message.clone().unwrap_or_default()
            )));
        }
        if req.block_public_policy.unwrap_or(false) && is_public_policy(&req.resource_policy) {
            return Err(SmError::PublicPolicy(
                "The BlockPublicPolicy parameter is set to true, and the resource policy did not \
                 prevent broad access to the secret."
                    .into(),
            ));
        }
        let policy = req.resource_policy.clone();
        let (rec, ()) = self.modify_record(&req.secret_id, |r| {
            r.ensure_not_deleted()?;
            reject_replica(r)?;
            r.resource_policy = Some(policy.as_str().into());
            Ok(())
        })?;
        Ok(arn_name(&rec))
    }

    /// `GetResourcePolicy`.
    pub fn get_resource_policy(
        &self,
        secret_id: &str,
    ) -> Result<GetResourcePolicyResponse, SmError> {
        let rec = self.find(secret_id)?;
        // A replica's policy is the primary's business (AWS's replica guard).
        reject_replica(&rec)?;
        Ok(GetResourcePolicyResponse {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            resource_policy: rec.resource_policy.as_deref().map(str::to_string),
        })
    }

    /// `DeleteResourcePolicy`.
    pub fn delete_resource_policy(&self, secret_id: &str) -> Result<ArnName, SmError> {
        let (rec, ()) = self.modify_record(secret_id, |r| {
            reject_replica(r)?;
            r.resource_policy = None;
            Ok(())
        })?;
        Ok(arn_name(&rec))
    }

    // ---- rotation switches -------------------------------------------------------------------

    /// `CancelRotateSecret`: turns automatic rotation off (the function and rules are kept) and
    /// reports the version of a rotation left pending, if any.
    pub fn cancel_rotation(&self, secret_id: &str) -> Result<RotateSecretResponse, SmError> {
        let (rec, ()) = self.modify_record(secret_id, |r| {
            r.ensure_not_deleted()?;
            reject_replica(r)?;
            if !r.rotation.enabled && r.rotation.lambda_arn.is_none() {
                return Err(SmError::InvalidRequest(
                    "Secret does not have rotation enabled; there is no rotation to cancel.".into(),
                ));
            }
            r.rotation.enabled = false;
            r.next_rotation = None;
            Ok(())
        })?;
        Ok(RotateSecretResponse {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            version_id: rec.holder(AWSPENDING).map(|v| v.id.clone()),
        })
    }

    /// A new `AWSCURRENT` value put by a client counts as a rotation (AWS's rule): sets
    /// `LastRotatedDate` and moves `NextRotationDate` one schedule on. No-op for a secret
    /// without rotation. `put_secret_value` and `update_secret` already apply the rule in
    /// their own commit; this is for writes made outside them.
    pub fn note_manual_rotation(&self, secret_id: &str) -> Result<(), SmError> {
        let now = self.backend().now();
        self.modify_record(secret_id, |r| {
            if let (true, Some(rules)) = (r.rotation.enabled, &r.rotation.rules) {
                r.next_rotation = crate::schedule::next_rotation(rules, now)?;
                r.last_rotated = Some(now);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Moves `NextRotationDate` (the scheduler does after a missed window).
    pub fn set_next_rotation(&self, secret_id: &str, next: Timestamp) -> Result<(), SmError> {
        self.modify_record(secret_id, |r| {
            r.next_rotation = Some(next);
            Ok(())
        })?;
        Ok(())
    }
}

// ---- policy documents ------------------------------------------------------------------------

fn finding(check: &str, msg: impl Into<String>) -> ValidationErrorsEntry {
    ValidationErrorsEntry {
        check_name: Some(check.into()),
        error_message: Some(msg.into()),
    }
}

/// Checks a resource policy with keyroll's IAM policy language (the one authorization
/// evaluates): `Err` when it is not JSON or longer than 20,480 characters; otherwise every
/// grammar problem (empty when it passes). Public access is not a grammar problem: see
/// [`is_public_policy`].
pub fn check_policy(policy: &str) -> Result<Vec<ValidationErrorsEntry>, SmError> {
    let findings =
        keyroll_policy::validate(policy, keyroll_policy::PolicyType::Resource).map_err(|e| {
            SmError::MalformedPolicyDocument(format!(
                "This resource policy contains a syntax error: {e}"
            ))
        })?;
    Ok(findings
        .into_iter()
        .filter(|f| f.check != keyroll_policy::CHECK_PUBLIC_ACCESS)
        .map(|f| finding(f.check, f.message))
        .collect())
}

/// Whether a resource policy grants access to everyone (`Principal: "*"` without a
/// condition that narrows it to known principals): what `BlockPublicPolicy` refuses.
pub fn is_public_policy(policy: &str) -> bool {
    keyroll_policy::Policy::parse(policy).is_ok_and(|p| keyroll_policy::is_public(&p))
}

/// `ValidateResourcePolicy`.
pub fn validate_resource_policy(policy: &str) -> Result<ValidateResourcePolicyResponse, SmError> {
    let mut errors = check_policy(policy)?;
    if errors.is_empty() && is_public_policy(policy) {
        errors.push(finding(
            "BROAD_ACCESS_CHECK",
            "The resource policy grants access to every AWS principal (*) without a condition.",
        ));
    }
    Ok(ValidateResourcePolicyResponse {
        policy_validation_passed: errors.is_empty(),
        validation_errors: errors,
    })
}

// ---- replication -----------------------------------------------------------------------------

/// The ARN a replica of `primary_arn` has in `region` (same account, name and suffix).
pub fn replica_arn(primary_arn: &str, region: &str) -> Option<String> {
    let p = parse_arn(primary_arn)?;
    Some(format!(
        "arn:{}:secretsmanager:{}:{}:secret:{}",
        p.partition, region, p.account, p.resource
    ))
}

/// The region of a secret's ARN.
pub fn arn_region(arn: &str) -> Option<String> {
    parse_arn(arn).map(|p| p.region)
}

const SYNC_RETRIES: usize = 8;

/// Copies the primary secret `primary_arn` (record and every value) into `replica`'s region,
/// creating or updating the read-only replica. Labels only ever point at versions whose value
/// is already copied. With `force_overwrite`, a different secret of the same name in the
/// replica region is replaced; without it, that is an error.
pub fn sync_replica<B1: Backend, B2: Backend>(
    primary: &SecretsService<B1>,
    replica: &SecretsService<B2>,
    primary_arn: &str,
    force_overwrite: bool,
) -> Result<(), SmError> {
    for _ in 0..SYNC_RETRIES {
        match sync_once(primary, replica, primary_arn, force_overwrite) {
            Err(CommitError::Conflict) => continue,
            Err(CommitError::NameTaken) => {
                return Err(SmError::ResourceExists(
                    "Replication failed: a secret with this name already exists in the replica \
                     region."
                        .into(),
                ));
            }
            Err(CommitError::Sm(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
    Err(SmError::InternalServiceError(
        "the replica kept changing while it was synchronised; retry".into(),
    ))
}

fn sync_once<B1: Backend, B2: Backend>(
    primary: &SecretsService<B1>,
    replica: &SecretsService<B2>,
    primary_arn: &str,
    force_overwrite: bool,
) -> Result<(), CommitError> {
    let p = primary.find(primary_arn)?;
    let p_region = arn_region(&p.arn).unwrap_or_default();
    let r_region = replica.backend().namespace().region.clone();
    let rarn = replica_arn(&p.arn, &r_region)
        .ok_or_else(|| SmError::InternalServiceError("unparseable primary ARN".into()))?;
    let rb = replica.backend();
    let mut existing = rb.find(&SecretRef::Name(p.name.clone()))?;
    if let Some(e) = &existing
        && e.arn != rarn
    {
        if !force_overwrite {
            return Err(SmError::ResourceExists(format!(
                "Replication failed: Secret name {} already exists in region {r_region}.",
                p.name
            ))
            .into());
        }
        rb.commit(Change::Purge { arn: &e.arn })?;
        existing = None;
    }
    let mut target = p.clone();
    target.arn = rarn.clone();
    target.primary_region = Some(p_region);
    target.replicas = Vec::new();

    let copied: HashSet<String> = existing
        .as_ref()
        .map(|e| {
            e.versions
                .iter()
                .filter(|v| v.has_value)
                .map(|v| v.id.clone())
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<_> = p
        .versions
        .iter()
        .filter(|v| v.has_value && !copied.contains(&v.id))
        .collect();

    // Build up: first the values, on unlabelled versions; then the final record.
    let mut staging = match existing {
        Some(e) => e,
        None => {
            let mut stub = target.clone();
            stub.versions = Vec::new();
            stub.revision = 1;
            let first = missing.first();
            if let Some(v) = first {
                let mut entry = (*v).clone();
                entry.stages = Vec::new();
                stub.versions.push(entry);
            }
            let value = match first {
                Some(v) => Some((v.id.clone(), primary.backend().read_value(&p, &v.id)?)),
                None => None,
            };
            rb.commit(Change::Insert {
                record: &stub,
                value: value.as_ref().map(|(id, v)| (id.as_str(), v)),
            })?;
            stub
        }
    };
    for v in &missing {
        if staging.versions.iter().any(|x| x.id == v.id && x.has_value) {
            continue;
        }
        let value = primary.backend().read_value(&p, &v.id)?;
        let mut entry = (*v).clone();
        entry.stages = Vec::new();
        staging.versions.retain(|x| x.id != v.id);
        staging.versions.push(entry);
        staging.revision += 1;
        rb.commit(Change::Update {
            record: &staging,
            value: Some((v.id.as_str(), &value)),
            removed_versions: &[],
        })?;
    }
    let keep: HashSet<&str> = target.versions.iter().map(|v| v.id.as_str()).collect();
    let removed: Vec<String> = staging
        .versions
        .iter()
        .filter(|v| !keep.contains(v.id.as_str()))
        .map(|v| v.id.clone())
        .collect();
    target.revision = staging.revision + 1;
    rb.commit(Change::Update {
        record: &target,
        value: None,
        removed_versions: &removed,
    })?;
    Ok(())
}

/// Records on the primary that it is replicated to `region` with `status`.
pub fn record_replica_status<B: Backend>(
    primary: &SecretsService<B>,
    primary_arn: &str,
    status: ReplicaStatus,
) -> Result<SecretRecord, SmError> {
    let own = arn_region(primary_arn).unwrap_or_default();
    let (rec, ()) = primary.modify_record(primary_arn, |r| {
        r.primary_region = Some(own.clone());
        match r.replicas.iter_mut().find(|x| x.region == status.region) {
            Some(x) => *x = status.clone(),
            None => r.replicas.push(status.clone()),
        }
        Ok(())
    })?;
    Ok(rec)
}

/// Removes `region` from the primary's replicas (and clears `PrimaryRegion` when none is left).
pub fn forget_replica<B: Backend>(
    primary: &SecretsService<B>,
    primary_arn: &str,
    region: &str,
) -> Result<SecretRecord, SmError> {
    let (rec, ()) = primary.modify_record(primary_arn, |r| {
        r.replicas.retain(|x| x.region != region);
        if r.replicas.is_empty() {
            r.primary_region = None;
        }
        Ok(())
    })?;
    Ok(rec)
}

/// Deletes the replica of `primary_arn` held in `replica`'s region, if it is there.
pub fn delete_replica<B: Backend>(
    replica: &SecretsService<B>,
    primary_arn: &str,
) -> Result<(), SmError> {
    let region = replica.backend().namespace().region.clone();
    let Some(rarn) = replica_arn(primary_arn, &region) else {
        return Ok(());
    };
    if replica.backend().find(&SecretRef::parse(&rarn)?)?.is_some() {
        match replica.backend().commit(Change::Purge { arn: &rarn }) {
            Ok(()) | Err(CommitError::Conflict) | Err(CommitError::NameTaken) => {}
            Err(CommitError::Sm(e)) => return Err(e),
        }
    }
    Ok(())
}

/// `StopReplicationToReplica`: the replica becomes a standalone secret of its region.
pub fn promote_replica<B: Backend>(
    replica: &SecretsService<B>,
    secret_id: &str,
) -> Result<SecretRecord, SmError> {
    let (rec, ()) = replica.modify_record(secret_id, |r| {
        if !r.is_replica() {
            return Err(SmError::InvalidRequest(
                "StopReplicationToReplica must be called on a replica secret, in the replica's \
                 region."
                    .into(),
            ));
        }
        r.primary_region = None;
        r.replicas = Vec::new();
        Ok(())
    })?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::Namespace;
    use crate::memory::MemoryBackend;
    use crate::time::SystemClock;
    use secrecy::ExposeSecret;

    fn svc(region: &str) -> SecretsService<MemoryBackend> {
        SecretsService::new(MemoryBackend::new(
            Namespace::new(region, "000000000000"),
            Arc::new(SystemClock),
        ))
    }

    fn tok(n: u32) -> String {
        format!("{n:032}")
    }

    async fn create(s: &SecretsService<MemoryBackend>, name: &str, value: &str) -> String {
        s.create_secret(CreateSecretRequest {
            name: name.into(),
            client_request_token: Some(tok(1)),
            secret_string: Some(value.to_string().into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .arn
    }

    #[tokio::test]
    async fn batch_get_reports_per_secret_errors() {
        let s = svc("us-east-1");
        create(&s, "a", "va").await;
        let r = s
            .batch_get_secret_value(BatchGetSecretValueRequest {
                secret_id_list: Some(vec!["a".into(), "missing".into()]),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(r.secret_values.len(), 1);
        assert_eq!(r.errors[0].error_code, "ResourceNotFoundException");
        assert_eq!(r.errors[0].secret_id, "missing");
        assert!(
            s.batch_get_secret_value(BatchGetSecretValueRequest::default())
                .await
                .is_err()
        );
    }

    #[test]
    fn policies() {
        let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
        assert!(check_policy(ok).unwrap().is_empty());
        assert!(!is_public_policy(ok));
        let public =
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#;
        assert!(is_public_policy(public));
        assert!(
            !validate_resource_policy(public)
                .unwrap()
                .policy_validation_passed
        );
        assert!(check_policy("{nope").is_err());
        assert!(
            !check_policy(r#"{"Statement":[{"Effect":"Maybe"}]}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn replica_follows_primary() {
        let p = svc("us-east-1");
        let r = svc("eu-west-1");
        let arn = create(&p, "db", "v1").await;
        sync_replica(&p, &r, &arn, false).unwrap();
        let rarn = replica_arn(&arn, "eu-west-1").unwrap();
        let got = r
            .get_secret_value(GetSecretValueRequest {
                secret_id: "db".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.arn, rarn);
        assert_eq!(got.secret_string.unwrap().expose_secret(), "v1");
        p.put_secret_value(PutSecretValueRequest {
            secret_id: arn.clone(),
            client_request_token: Some(tok(2)),
            secret_string: Some("v2".to_string().into()),
            ..Default::default()
        })
        .await
        .unwrap();
        sync_replica(&p, &r, &arn, false).unwrap();
        let got = r
            .get_secret_value(GetSecretValueRequest {
                secret_id: "db".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.secret_string.unwrap().expose_secret(), "v2");
        let rec = r.find("db").unwrap();
        assert!(rec.is_replica());
        // Replicas are read-only.
        assert!(
            r.put_secret_value(PutSecretValueRequest {
                secret_id: "db".into(),
                client_request_token: Some(tok(3)),
                secret_string: Some("x".to_string().into()),
                ..Default::default()
            })
            .await
            .is_err()
        );
        // A different secret of the same name blocks replication unless overwritten.
        let other = svc("ap-south-1");
        create(&other, "db", "mine").await;
        assert!(sync_replica(&p, &other, &arn, false).is_err());
        sync_replica(&p, &other, &arn, true).unwrap();
        assert!(other.find("db").unwrap().is_replica());
        // Promotion makes it standalone and writable.
        promote_replica(&r, "db").unwrap();
        assert!(!r.find("db").unwrap().is_replica());
        delete_replica(&other, &arn).unwrap();
        assert!(other.find("db").is_err());
    }
}
