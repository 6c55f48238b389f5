//! The Secrets Manager API implemented once, over a small persistence [`Backend`]: request
//! validation, look-ups, the label rules of [`crate::model`], listing, deletion and the
//! service side of rotation. Stores only persist records and (sealed) values.

use async_trait::async_trait;
use base64::Engine as _;

use crate::api::*;
use crate::error::SmError;
use crate::ids::{Namespace, SecretRef, random_arn_suffix, validate_name, validate_token};
use crate::model::{
    AWSCURRENT, AWSPENDING, RotationRules, RotationState, RotationStatus, SecretRecord,
    validate_description, validate_tags,
};
use crate::ports::{Placeholder, RotationLock, RotationStore, SecretsApi};
use crate::time::Timestamp;
use crate::value::SecretValue;

/// One atomic change to persist.
pub enum Change<'a> {
    /// A new secret; fails with [`CommitError::NameTaken`] if a secret of that name exists.
    Insert {
        record: &'a SecretRecord,
        value: Option<(&'a str, &'a SecretValue)>,
    },
    /// A new state of an existing secret, whose stored revision must be `record.revision - 1`
    /// (else [`CommitError::Conflict`]). `value` is a new version's value; `removed_versions`
    /// are versions whose values must be deleted.
    Update {
        record: &'a SecretRecord,
        value: Option<(&'a str, &'a SecretValue)>,
        removed_versions: &'a [String],
    },
    /// Removes a secret and all its values for good.
    Purge { arn: &'a str },
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the secret changed concurrently")]
    Conflict,
    #[error("a secret with this name already exists")]
    NameTaken,
    #[error(transparent)]
    Sm(#[from] SmError),
}

/// Persistence for one region of a store.
pub trait Backend: Send + Sync {
    fn namespace(&self) -> &Namespace;
    fn now(&self) -> Timestamp;
    /// The secret a reference names (including one scheduled for deletion).
    fn find(&self, r: &SecretRef) -> Result<Option<SecretRecord>, SmError>;
    /// Calls `f` on every secret of the region.
    fn for_each(&self, f: &mut dyn FnMut(&SecretRecord)) -> Result<(), SmError>;
    /// The value of a version (decrypted).
    fn read_value(&self, record: &SecretRecord, version_id: &str) -> Result<SecretValue, SmError>;
    fn commit(&self, change: Change<'_>) -> Result<(), CommitError>;
    /// Without waiting: `None` when another rotation of `arn` holds the lock.
    fn try_lock_rotation(&self, arn: &str) -> Result<Option<RotationLock>, SmError>;
}

/// What a mutation wants persisted besides the record.
#[derive(Default)]
struct Effects {
    value: Option<(String, SecretValue)>,
    removed_versions: Vec<String>,
    /// Nothing changed: skip the commit.
    unchanged: bool,
}

/// Attempts of one read-modify-write before giving up. With the backoff below, a writer
/// gives up only after ~0.5 s of losing every race on one secret.
const MAX_COMMIT_ATTEMPTS: u32 = 64;

/// A short pause after losing a commit race, so that contending writers (threads, or other
/// processes on the same data directory) spread out instead of colliding again: exponential
/// from 20 µs, capped at 10 ms, with full jitter.
fn conflict_backoff(attempt: u32) {
    let cap_us = (20u64 << attempt.min(9)).min(10_000);
    let us = crate::password::random_below(cap_us as u32 + 1);
    std::thread::sleep(std::time::Duration::from_micros(u64::from(us)));
}

/// The Secrets Manager API over a [`Backend`].
pub struct SecretsService<B> {
    backend: B,
}

impl<B: Backend> SecretsService<B> {
    pub fn new(backend: B) -> Self {
        SecretsService { backend }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Read-modify-write of a secret's record (no value change), with the same optimistic
    /// concurrency as the API's own writes: `f` may run more than once, each time on the
    /// freshest record. For operations implemented outside this module (resource policies,
    /// rotation switches, replication bookkeeping).
    pub fn modify_record<T>(
        &self,
        secret_id: &str,
        mut f: impl FnMut(&mut SecretRecord) -> Result<T, SmError>,
    ) -> Result<(SecretRecord, T), SmError> {
        self.mutate(secret_id, |r, _| Ok((f(r)?, Effects::default())))
    }

    /// Looks a secret up; a secret whose recovery window has ended is purged on the spot and
    /// reported as not found.
    pub fn find(&self, secret_id: &str) -> Result<SecretRecord, SmError> {
        let r = SecretRef::parse(secret_id)?;
        let rec = self
            .backend
            .find(&r)?
            .ok_or_else(SmError::secret_not_found)?;
        if rec.deleted_date.is_some_and(|d| d <= self.backend.now()) {
            self.purge(&rec.arn)?;
            return Err(SmError::secret_not_found());
        }
        Ok(rec)
    }

    /// `GetSecretValue` of `rec`, which the caller found with [`Self::find`] for
    /// `req.secret_id` (the server looks a secret up once: to authorize the call, then to
    /// read it).
    pub fn get_secret_value_of(
        &self,
        rec: SecretRecord,
        req: &GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, SmError> {
        rec.ensure_not_deleted()?;
        let v = rec.select_version(req.version_id.as_deref(), req.version_stage.as_deref())?;
        let value = self.backend.read_value(&rec, &v.id)?;
        let (secret_string, secret_binary) = value.into_parts();
        let version_id = v.id.clone();
        let version_stages = v.stages.clone();
        let created_date = v.created;
        // LastAccessedDate has day precision: write at most once a day per version read (AWS
        // dates each version that was read: recorded AWS responses,
        // update_secret_version_stages_current_pending_cycle).
        let today = self.backend.now().floor_day();
        if rec.last_accessed != Some(today) || v.last_accessed != Some(today) {
            let r = self.mutate(&rec.arn, |r, _| {
                r.last_accessed = Some(today);
                if let Some(v) = r.versions.iter_mut().find(|x| x.id == version_id) {
                    v.last_accessed = Some(today);
                }
                Ok(((), Effects::default()))
            });
            if let Err(e) = r {
                tracing::debug!(secret = %rec.arn, error = %e, "could not record LastAccessedDate");
            }
        }
        Ok(GetSecretValueResponse {
            arn: rec.arn,
            name: rec.name,
            version_id,
            secret_string,
            secret_binary,
            version_stages,
            created_date,
        })
    }

    fn purge(&self, arn: &str) -> Result<(), SmError> {
        match self.backend.commit(Change::Purge { arn }) {
            Ok(()) => Ok(()),
            Err(CommitError::Sm(e)) => Err(e),
            Err(_) => Ok(()),
        }
    }

    /// Purges every secret whose recovery window has ended; returns how many.
    pub fn purge_expired(&self) -> Result<usize, SmError> {
        let now = self.backend.now();
        let mut due = Vec::new();
        self.backend.for_each(&mut |r| {
            if r.deleted_date.is_some_and(|d| d <= now) {
                due.push(r.arn.clone());
            }
        })?;
        for arn in &due {
            self.purge(arn)?;
        }
        Ok(due.len())
    }

    /// Read-modify-write of one secret with optimistic concurrency: `f` may run more than
    /// once, each time on the freshest record.
    fn mutate<T>(
        &self,
        secret_id: &str,
        mut f: impl FnMut(&mut SecretRecord, &B) -> Result<(T, Effects), SmError>,
    ) -> Result<(SecretRecord, T), SmError> {
        for attempt in 0..MAX_COMMIT_ATTEMPTS {
            if attempt > 0 {
                conflict_backoff(attempt);
            }
            let mut rec = self.find(secret_id)?;
            let (out, fx) = f(&mut rec, &self.backend)?;
            if fx.unchanged {
                return Ok((rec, out));
            }
            rec.revision += 1;
            let value = fx.value.as_ref().map(|(id, v)| (id.as_str(), v));
            match self.backend.commit(Change::Update {
                record: &rec,
                value,
                removed_versions: &fx.removed_versions,
            }) {
                Ok(()) => return Ok((rec, out)),
                Err(CommitError::Conflict) => continue,
                Err(CommitError::NameTaken) => {
                    return Err(SmError::InternalServiceError(
                        "name conflict on update".into(),
                    ));
                }
                Err(CommitError::Sm(e)) => return Err(e),
            }
        }
        Err(SmError::InternalServiceError(
            "the secret is being changed by many writers at once; retry the request".into(),
        ))
    }

    fn same_value(backend: &B, rec: &SecretRecord, version_id: &str, value: &SecretValue) -> bool {
        backend
            .read_value(rec, version_id)
            .is_ok_and(|v| v.ct_eq(value))
    }

    fn require_token(token: Option<&str>) -> Result<&str, SmError> {
        // AWS's wording (recorded AWS responses, no_client_request_token); SDKs and the aws
        // CLI generate a token, raw requests must send one.
        let t = token.ok_or_else(|| {
            SmError::InvalidRequest(
                "You must provide a ClientRequestToken value. We recommend a UUID-type value."
                    .into(),
            )
        })?;
        validate_token(t)?;
        Ok(t)
    }

    fn arn_name(rec: &SecretRecord) -> ArnName {
        ArnName {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
        }
    }
}

// ---- filters and pagination ------------------------------------------------------------------

/// `ListSecrets` filter keys, in the botocore model's order (`FilterNameStringType`).
const FILTER_KEYS: [&str; 7] = [
    "description",
    "name",
    "tag-key",
    "tag-value",
    "primary-region",
    "owning-service",
    "all",
];

/// Most values of one filter (botocore model: `FilterValuesStringList` max 10).
const MAX_FILTER_VALUES: usize = 10;

/// AWS's checks of `Filters`, in AWS's order and wording: a missing key is
/// `InvalidParameterException` `Invalid filter key`; a key outside the enum a
/// `ValidationException`; missing values `Invalid filter values for key: KEY`; more than 10
/// values, or a value outside the model's pattern, a `ValidationException`. Several filters
/// with the same key are allowed (they combine with AND).
pub fn validate_filters(filters: &[Filter]) -> Result<(), SmError> {
    for (i, f) in filters.iter().enumerate() {
        let n = i + 1;
        if f.key.is_empty() {
            return Err(SmError::InvalidParameter("Invalid filter key".into()));
        }
        if !FILTER_KEYS.contains(&f.key.as_str()) {
            return Err(SmError::Validation(format!(
                "1 validation error detected: Value '{}' at 'filters.{n}.member.key' failed to \
                 satisfy constraint: Member must satisfy enum value set: [{}]",
                f.key,
                FILTER_KEYS.join(", ")
            )));
        }
        if f.values.is_empty() {
            return Err(SmError::InvalidParameter(format!(
                "Invalid filter values for key: {}",
                f.key
            )));
        }
        if f.values.len() > MAX_FILTER_VALUES {
            return Err(SmError::Validation(format!(
                "1 validation error detected: Value '[{}]' at 'filters.{n}.member.values' failed \
                 to satisfy constraint: Member must have length less than or equal to \
                 {MAX_FILTER_VALUES}",
                f.values.join(", ")
            )));
        }
        for v in &f.values {
            let body = v.strip_prefix('!').unwrap_or(v);
            let ok = v.len() <= 512
                && body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c));
            if !ok {
                return Err(SmError::Validation(format!(
                    "1 validation error detected: Value '[{}]' at 'filters.{n}.member.values' \
                     failed to satisfy constraint: Member must satisfy constraint: [Member must \
                     have length less than or equal to 512, Member must have length greater \
                     than or equal to 0, Member must satisfy regular expression pattern: \
                     ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$]",
                    f.values.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// One filter: its values are alternatives (OR). A value `!X` is met by a field that does
/// not match `X`. How a field matches depends on the key:
/// - `name`, `tag-key`, `tag-value`, `primary-region`: prefix of the whole field, case
///   sensitive;
/// - `description`, `owning-service`, `all`: every word of the value starts a word of one
///   field, ignoring case; `all` looks at the name, the description, tag keys and values.
///
/// Words: see [`split_words`].
pub fn filter_matches(f: &Filter, r: &SecretRecord) -> bool {
    let fields: Vec<&str> = match f.key.as_str() {
        "name" => vec![r.name.as_str()],
        "description" => r.description.as_deref().into_iter().collect(),
        "tag-key" => r.tags.iter().map(|t| t.key.as_str()).collect(),
        "tag-value" => r.tags.iter().map(|t| t.value.as_str()).collect(),
        "primary-region" => r.primary_region.as_deref().into_iter().collect(),
        "owning-service" => r.owning_service.as_deref().into_iter().collect(),
        "all" => {
            let mut v = vec![r.name.as_str()];
            v.extend(r.description.as_deref());
            v.extend(r.tags.iter().map(|t| t.key.as_str()));
            v.extend(r.tags.iter().map(|t| t.value.as_str()));
            v
        }
        _ => return false,
    };
    let by_words = matches!(f.key.as_str(), "description" | "owning-service" | "all");
    let hit = |pattern: &str, field: &str| {
        if by_words {
            words_match(pattern, field)
        } else {
            field.starts_with(pattern)
        }
    };
    f.values.iter().any(|v| match v.strip_prefix('!') {
        Some(neg) => fields.iter().any(|field| !hit(neg, field)),
        None => fields.iter().any(|field| hit(v, field)),
    })
}

/// Every word of `pattern` starts some word of `field`, ignoring case; a pattern without
/// words (`+`, `/`) matches nothing.
fn words_match(pattern: &str, field: &str) -> bool {
    let wanted = split_words(pattern);
    if wanted.is_empty() {
        return false;
    }
    let have: Vec<String> = split_words(field)
        .iter()
        .map(|w| w.to_lowercase())
        .collect();
    wanted.iter().all(|w| {
        let w = w.to_lowercase();
        have.iter().any(|h| h.starts_with(&w))
    })
}

const WORD_SEPARATORS: [char; 7] = ['/', '-', '_', '+', '=', '.', '@'];

/// How `ListSecrets` cuts text into words (AWS's behaviour as recorded by the emulator
/// suites' AWS-verified cases): a text made of a single separator has no words; a text with
/// one kind of separator (`/ - _ + = . @`) is cut there, one with two kinds is one word;
/// each part is then cut where a capital (or any non-lower-case character) starts a run of
/// lower-case letters, and at spaces: `prod/AppBeta` is `prod`, `App`, `Beta`;
/// `COMPANYthings` is `COMPAN`, `Ythings`.
pub fn split_words(s: &str) -> Vec<String> {
    if s.chars().count() == 1 && s.starts_with(WORD_SEPARATORS) {
        return Vec::new();
    }
    let kinds: Vec<char> = WORD_SEPARATORS
        .iter()
        .copied()
        .filter(|c| s.contains(*c))
        .collect();
    match kinds.as_slice() {
        [] => split_case(s),
        [one] => s.split(*one).flat_map(split_case).collect(),
        _ => vec![s.to_string()],
    }
}

/// Cuts before every character that is not a lower-case ASCII letter and is followed by
/// one; the text between such words is a word too. Words are trimmed; empty ones dropped.
fn split_case(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut between = String::new();
    let mut i = 0;
    let push = |w: &str, out: &mut Vec<String>| {
        let t = w.trim();
        if !t.is_empty() {
            out.push(t.to_string());
        }
    };
    while i < chars.len() {
        let starts_word = !chars[i].is_ascii_lowercase()
            && chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
        if starts_word {
            push(&between, &mut out);
            between.clear();
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_lowercase() {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            push(&word, &mut out);
            i = j;
        } else {
            between.push(chars[i]);
            i += 1;
        }
    }
    push(&between, &mut out);
    out
}

/// `NextToken`s are opaque to callers: base64 of the offset into the listing.
pub fn encode_next_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("keyroll:{offset}"))
}

pub fn decode_next_token(token: Option<&str>) -> Result<usize, SmError> {
    let Some(t) = token else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("keyroll:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| SmError::InvalidNextToken("The NextToken value is invalid.".into()))
}

/// Validates `MaxResults` (1–`max`) and returns the page size.
pub fn page_size(max_results: Option<i64>, max: i64) -> Result<usize, SmError> {
    match max_results {
        None => Ok(max as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(SmError::InvalidParameter(format!(
            "MaxResults must be between 1 and {max} (got {n})."
        ))),
    }
}

/// Cuts one page from `items`.
pub fn paginate<T>(
    items: Vec<T>,
    next_token: Option<&str>,
    max_results: Option<i64>,
    max: i64,
) -> Result<(Vec<T>, Option<String>), SmError> {
    let size = page_size(max_results, max)?;
    let start = decode_next_token(next_token)?;
    if start > items.len() {
        return Err(SmError::InvalidNextToken(
            "The NextToken value is invalid.".into(),
        ));
    }
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| encode_next_token(end));
    Ok((
        items.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

// ---- the API ---------------------------------------------------------------------------------

#[async_trait]
impl<B: Backend> SecretsApi for SecretsService<B> {
    async fn create_secret(
        &self,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, SmError> {
        validate_name(&req.name)?;
        if let Some(d) = &req.description {
            validate_description(d)?;
        }
        let tags = req.tags.clone().unwrap_or_default();
        validate_tags(&tags)?;
        let value = SecretValue::from_parts(req.secret_string, req.secret_binary)?;
        let token = match &value {
            Some(v) => {
                v.validate()?;
                Some(Self::require_token(req.client_request_token.as_deref())?.to_string())
            }
            None => match req.client_request_token.as_deref() {
                Some(t) => {
                    validate_token(t)?;
                    None
                }
                None => None,
            },
        };
        if let Some(existing) = self.backend.find(&SecretRef::Name(req.name.clone()))? {
            if existing
                .deleted_date
                .is_some_and(|d| d <= self.backend.now())
            {
                self.purge(&existing.arn)?;
            } else if existing.is_deleted() {
                return Err(SmError::InvalidRequest(
                    "You can't create this secret because a secret with this name is already \
                     scheduled for deletion."
                        .into(),
                ));
            } else {
                // A retried CreateSecret (same token, same value) succeeds again.
                if let (Some(t), Some(v)) = (&token, &value)
                    && existing.version(t).is_some()
                {
                    if existing.versions.len() == 1
                        && Self::same_value(&self.backend, &existing, t, v)
                    {
                        return Ok(CreateSecretResponse {
                            arn: existing.arn.clone(),
                            name: existing.name.clone(),
                            version_id: Some(t.clone()),
                            replication_status: None,
                        });
                    }
                    // AWS names the token and the secret (AWS API reference, CreateSecret
                    // ClientRequestToken).
                    return Err(SmError::token_in_use(t, &existing.arn));
                }
                return Err(SmError::secret_exists(&req.name));
            }
        }
        let now = self.backend.now();
        let arn = self
            .backend
            .namespace()
            .secret_arn(&req.name, &random_arn_suffix());
        let mut rec = SecretRecord::new(arn, req.name.clone(), now);
        rec.description = req.description.clone();
        rec.kms_key_id = req.kms_key_id.clone();
        rec.tagged = !tags.is_empty();
        rec.tags = tags;
        if let Some(t) = &token {
            rec.put_version(t, None, now, |_| false)?;
        }
        rec.revision = 1;
        let stored = token.as_deref().zip(value.as_ref());
        match self.backend.commit(Change::Insert {
            record: &rec,
            value: stored,
        }) {
            Ok(()) => {}
            Err(CommitError::NameTaken) | Err(CommitError::Conflict) => {
                return Err(SmError::secret_exists(&req.name));
            }
            Err(CommitError::Sm(e)) => return Err(e),
        }
        Ok(CreateSecretResponse {
            arn: rec.arn,
            name: rec.name,
            version_id: token,
            replication_status: None,
        })
    }

    async fn get_secret_value(
        &self,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, SmError> {
        let rec = self.find(&req.secret_id)?;
        self.get_secret_value_of(rec, &req)
    }

    async fn put_secret_value(
        &self,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, SmError> {
        let token = Self::require_token(req.client_request_token.as_deref())?.to_string();
        let value =
            SecretValue::from_parts(req.secret_string, req.secret_binary)?.ok_or_else(|| {
                // AWS answers InvalidRequestException (botocore model, PutSecretValue errors).
                SmError::InvalidRequest(
                    "You must provide either SecretString or SecretBinary.".into(),
                )
            })?;
        value.validate()?;
        let stages = req.version_stages.clone();
        let now = self.backend.now();
        let (rec, outcome) = self.mutate(&req.secret_id, |rec, b| {
            reject_replica(rec)?;
            let same = rec.version(&token).is_some_and(|v| v.has_value)
                && Self::same_value(b, rec, &token, &value);
            let o = rec.put_version(&token, stages.as_deref(), now, |_| same)?;
            if o.changed && o.stages.iter().any(|s| s == AWSCURRENT) {
                count_as_rotation(rec, now)?;
            }
            let fx = Effects {
                value: o.changed.then(|| (token.clone(), value.clone())),
                removed_versions: o.removed_versions.clone(),
                unchanged: !o.changed,
            };
            Ok((o, fx))
        })?;
        Ok(PutSecretValueResponse {
            arn: rec.arn,
            name: rec.name,
            version_id: outcome.version_id,
            version_stages: outcome.stages,
        })
    }

    async fn update_secret(
        &self,
        req: UpdateSecretRequest,
    ) -> Result<UpdateSecretResponse, SmError> {
        if let Some(d) = &req.description {
            validate_description(d)?;
        }
        let value = SecretValue::from_parts(req.secret_string, req.secret_binary)?;
        let token = match &value {
            Some(v) => {
                v.validate()?;
                Some(Self::require_token(req.client_request_token.as_deref())?.to_string())
            }
            None => None,
        };
        let now = self.backend.now();
        let (rec, version_id) = self.mutate(&req.secret_id, |rec, b| {
            rec.ensure_not_deleted()?;
            reject_replica(rec)?;
            let mut fx = Effects::default();
            if let Some(d) = &req.description {
                rec.description = Some(d.clone());
            }
            if let Some(k) = &req.kms_key_id {
                rec.kms_key_id = Some(k.clone());
            }
            rec.last_changed = Some(now);
            let mut version_id = None;
            if let (Some(t), Some(v)) = (&token, &value) {
                let same =
                    rec.version(t).is_some_and(|x| x.has_value) && Self::same_value(b, rec, t, v);
                let o = rec.put_version(t, None, now, |_| same)?;
                if o.changed {
                    fx.value = Some((t.clone(), v.clone()));
                    count_as_rotation(rec, now)?;
                }
                fx.removed_versions = o.removed_versions;
                version_id = Some(o.version_id);
            }
            Ok((version_id, fx))
        })?;
        Ok(UpdateSecretResponse {
            arn: rec.arn,
            name: rec.name,
            version_id,
        })
    }

    async fn update_secret_version_stage(
        &self,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<ArnName, SmError> {
        let now = self.backend.now();
        let (rec, ()) = self.mutate(&req.secret_id, |rec, _| {
            reject_replica(rec)?;
            let removed = rec.update_stage(
                &req.version_stage,
                req.move_to_version_id.as_deref(),
                req.remove_from_version_id.as_deref(),
                now,
            )?;
            Ok((
                (),
                Effects {
                    removed_versions: removed,
                    ..Default::default()
                },
            ))
        })?;
        Ok(Self::arn_name(&rec))
    }

    async fn describe_secret(
        &self,
        req: SecretIdRequest,
    ) -> Result<DescribeSecretResponse, SmError> {
        Ok(describe(&self.find(&req.secret_id)?))
    }

    async fn list_secrets(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, SmError> {
        self.list_secrets_page(&req)
    }

    async fn list_secret_version_ids(
        &self,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse, SmError> {
        let rec = self.find(&req.secret_id)?;
        let include_deprecated = req.include_deprecated.unwrap_or(false);
        let versions: Vec<_> = rec
            .versions
            .iter()
            .filter(|v| include_deprecated || !v.is_deprecated())
            .map(|v| version_entry(&rec, v))
            .collect();
        let (versions, next_token) =
            paginate(versions, req.next_token.as_deref(), req.max_results, 100)?;
        Ok(ListSecretVersionIdsResponse {
            versions,
            next_token,
            arn: rec.arn,
            name: rec.name,
        })
    }

    async fn delete_secret(
        &self,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, SmError> {
        let force = req.force_delete_without_recovery.unwrap_or(false);
        // The window's range is checked first (AWS's order of checks).
        if let Some(days) = req.recovery_window_in_days
            && !(7..=30).contains(&days)
        {
            return Err(SmError::InvalidParameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into(),
            ));
        }
        if force && req.recovery_window_in_days.is_some() {
            return Err(SmError::InvalidParameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with \
                 RecoveryWindowInDays."
                    .into(),
            ));
        }
        let now = self.backend.now();
        let rec = match self.find(&req.secret_id) {
            Ok(r) => r,
            Err(e) if e.is_not_found() && force => {
                // AWS answers 200 for a forced delete of a secret that does not exist.
                let r = SecretRef::parse(&req.secret_id)?;
                let name = r.name_candidate().to_string();
                let arn = match r {
                    SecretRef::Arn(_, full) => full,
                    SecretRef::Name(n) => {
                        let ns = self.backend.namespace();
                        format!(
                            "arn:{}:secretsmanager:{}:{}:secret:{n}",
                            ns.partition, ns.region, ns.account
                        )
                    }
                };
                return Ok(DeleteSecretResponse {
                    arn,
                    name,
                    deletion_date: now,
                });
            }
            Err(e) => return Err(e),
        };
        if !rec.replicas.is_empty() {
            return Err(SmError::InvalidParameter(format!(
                "You can't delete secret {} that still has replica regions [{}]",
                rec.arn,
                rec.replicas
                    .iter()
                    .map(|r| r.region.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if force {
            self.purge(&rec.arn)?;
            return Ok(DeleteSecretResponse {
                arn: rec.arn,
                name: rec.name,
                deletion_date: now,
            });
        }
        let window = req.recovery_window_in_days;
        let (rec, date) = self.mutate(&rec.arn, |r, _| {
            let d = r.schedule_deletion(window, false, now)?;
            Ok((d, Effects::default()))
        })?;
        Ok(DeleteSecretResponse {
            arn: rec.arn,
            name: rec.name,
            deletion_date: date,
        })
    }

    async fn restore_secret(&self, req: SecretIdRequest) -> Result<ArnName, SmError> {
        let (rec, ()) = self.mutate(&req.secret_id, |r, _| {
            let was_deleted = r.is_deleted();
            r.restore();
            Ok((
                (),
                Effects {
                    unchanged: !was_deleted,
                    ..Default::default()
                },
            ))
        })?;
        Ok(Self::arn_name(&rec))
    }

    async fn tag_resource(&self, req: TagResourceRequest) -> Result<Empty, SmError> {
        validate_tags(&req.tags)?;
        self.mutate(&req.secret_id, |r, _| {
            r.ensure_not_deleted()?;
            r.tag(&req.tags)?;
            Ok(((), Effects::default()))
        })?;
        Ok(Empty {})
    }

    async fn untag_resource(&self, req: UntagResourceRequest) -> Result<Empty, SmError> {
        self.mutate(&req.secret_id, |r, _| {
            r.ensure_not_deleted()?;
            r.untag(&req.tag_keys);
            Ok(((), Effects::default()))
        })?;
        Ok(Empty {})
    }
}

/// AWS's rule: a client's new `AWSCURRENT` value (PutSecretValue without stages or with
/// `AWSCURRENT`, UpdateSecret with a value) counts as a rotation — `LastRotatedDate` is set
/// and `NextRotationDate` moves one schedule on — in the same commit, whichever driver
/// writes (`keyroll serve`, the CLI). Values put as `AWSPENDING` (rotation functions) do
/// not count. No-op without scheduled rotation.
fn count_as_rotation(rec: &mut SecretRecord, now: Timestamp) -> Result<(), SmError> {
    if let (true, Some(rules)) = (rec.rotation.enabled, &rec.rotation.rules) {
        rec.next_rotation = crate::schedule::next_rotation(rules, now)?;
        rec.last_rotated = Some(now);
    }
    Ok(())
}

/// The replica guard, for every write whichever driver makes it: AWS's one error code
/// (`InvalidParameterException`) and message.
pub(crate) fn reject_replica(rec: &SecretRecord) -> Result<(), SmError> {
    if rec.is_replica() {
        return Err(SmError::replica_write());
    }
    Ok(())
}

impl<B: Backend> SecretsService<B> {
    /// The service side of `RotateSecret`: the value-less `AWSPENDING` version, and the
    /// rotation's status when given, in one commit.
    fn placeholder(
        &self,
        secret_id: &str,
        token: &str,
        status: Option<&RotationStatus>,
    ) -> Result<Placeholder, SmError> {
        let now = self.backend.now();
        self.mutate(secret_id, |r, _| {
            if r.holder(AWSPENDING).is_some_and(|v| v.id != token) {
                return Err(SmError::InvalidRequest(
                    "A previous rotation isn't complete. That rotation will be reattempted.".into(),
                ));
            }
            let removed = r.add_pending_placeholder(token, now)?;
            if let Some(st) = status {
                r.rotation_status = Some(st.clone());
            }
            Ok((
                (),
                Effects {
                    removed_versions: removed,
                    ..Default::default()
                },
            ))
        })?;
        Ok(Placeholder::Created)
    }
}

#[async_trait]
impl<B: Backend> RotationStore for SecretsService<B> {
    async fn configure_rotation(
        &self,
        secret_id: &str,
        lambda_arn: Option<String>,
        rules: Option<RotationRules>,
    ) -> Result<(), SmError> {
        if let Some(r) = &rules {
            r.validate_basic()?;
        }
        let now = self.backend.now();
        self.mutate(secret_id, |r, _| {
            r.ensure_not_deleted()?;
            reject_replica(r)?;
            if let Some(l) = &lambda_arn {
                r.rotation.lambda_arn = Some(l.clone());
            }
            if r.rotation.lambda_arn.is_none() {
                return Err(SmError::InvalidRequest(
                    "No Lambda rotation function ARN is associated with this secret.".into(),
                ));
            }
            if let Some(rules) = &rules {
                r.rotation.rules = Some(rules.clone());
            }
            r.rotation.enabled = true;
            r.next_rotation = match &r.rotation.rules {
                Some(rules) => {
                    crate::schedule::next_rotation(rules, r.last_rotated.unwrap_or(now))?
                }
                None => None,
            };
            Ok(((), Effects::default()))
        })?;
        Ok(())
    }

    async fn begin_rotation(&self, secret_id: &str, token: &str) -> Result<Placeholder, SmError> {
        self.placeholder(secret_id, token, None)
    }

    async fn begin_rotation_with_status(
        &self,
        secret_id: &str,
        token: &str,
        status: &RotationStatus,
    ) -> Result<Placeholder, SmError> {
        self.placeholder(secret_id, token, Some(status))
    }

    async fn complete_rotation(&self, secret_id: &str, token: &str) -> Result<(), SmError> {
        let now = self.backend.now();
        self.mutate(secret_id, |r, _| {
            let mut fx = Effects::default();
            if r.version(token).is_some_and(|v| v.has_stage(AWSPENDING)) {
                fx.removed_versions = r.update_stage(AWSPENDING, None, Some(token), now)?;
            }
            r.last_rotated = Some(now);
            r.next_rotation = match &r.rotation.rules {
                Some(rules) if r.rotation.enabled => crate::schedule::next_rotation(rules, now)?,
                _ => None,
            };
            let started = r.rotation_status.as_ref().map_or(now, |s| s.started);
            let attempts = r.rotation_status.as_ref().map_or(1, |s| s.attempts);
            r.rotation_status = Some(RotationStatus {
                state: RotationState::Succeeded,
                version_id: token.to_string(),
                failed_step: None,
                error_type: None,
                message: None,
                started,
                ended: Some(now),
                attempts,
            });
            Ok(((), fx))
        })?;
        Ok(())
    }

    async fn record_rotation_status(
        &self,
        secret_id: &str,
        status: RotationStatus,
    ) -> Result<(), SmError> {
        self.mutate(secret_id, |r, _| {
            r.rotation_status = Some(status.clone());
            Ok(((), Effects::default()))
        })?;
        Ok(())
    }

    fn try_lock_rotation(&self, arn: &str) -> Result<Option<RotationLock>, SmError> {
        self.backend.try_lock_rotation(arn)
    }

    fn now(&self) -> Timestamp {
        self.backend.now()
    }

    async fn list_secrets_in_pages_of(
        &self,
        req: ListSecretsRequest,
        page_size: usize,
    ) -> Result<ListSecretsResponse, SmError> {
        self.list_page_of(&req, page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tag;

    fn words(s: &str) -> Vec<String> {
        split_words(s)
    }

    #[test]
    fn words_split_at_one_kind_of_separator_and_at_case_changes() {
        assert_eq!(words("test"), ["test"]);
        assert_eq!(words("my test"), ["my", "test"]);
        assert_eq!(words("Mytest"), ["Mytest"]);
        assert_eq!(words("MyTestPhrase"), ["My", "Test", "Phrase"]);
        assert_eq!(words("myTest"), ["my", "Test"]);
        assert_eq!(words("my/test"), ["my", "test"]);
        assert_eq!(words("prod/AppBeta/x1"), ["prod", "App", "Beta", "x1"]);
        assert_eq!(words("uat/COMPANYthings"), ["uat", "COMPAN", "Ythings"]);
        assert_eq!(words("prod-AppBeta/x"), ["prod-AppBeta/x"]);
        assert!(words("+").is_empty());
    }

    fn rec(name: &str, description: Option<&str>, tags: &[(&str, &str)]) -> SecretRecord {
        let mut r = SecretRecord::new(format!("arn:{name}"), name.into(), Timestamp(0));
        r.description = description.map(str::to_string);
        r.tags = tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect();
        r
    }

    fn f(key: &str, values: &[&str]) -> Filter {
        Filter {
            key: key.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn filters_match_like_aws() {
        let one = rec("testing1/one", Some("a secret"), &[("right", "wrong")]);
        let two = rec("/testing2/two", Some("an secret"), &[]);
        let three = rec("testing3/three", Some("asecret"), &[]);
        let four = rec("/testing4/four", Some("thesecret"), &[]);
        let all = [&one, &two, &three, &four];
        let names = |flt: &Filter| -> Vec<&str> {
            all.iter()
                .filter(|r| filter_matches(flt, r))
                .map(|r| r.name.as_str())
                .collect()
        };
        assert_eq!(
            names(&f("name", &["/"])),
            ["/testing2/two", "/testing4/four"]
        );
        assert_eq!(
            names(&f("name", &["!/"])),
            ["testing1/one", "testing3/three"]
        );
        assert!(names(&f("name", &["testing1 one"])).is_empty());
        assert_eq!(names(&f("description", &["a"])).len(), 3);
        assert_eq!(names(&f("description", &["!a"])), ["/testing4/four"]);
        assert_eq!(
            names(&f("description", &["a secret"])),
            ["testing1/one", "/testing2/two"]
        );
        assert_eq!(names(&f("description", &["!c"])).len(), 4);
        assert_eq!(names(&f("all", &["Secret"])).len(), 2);
        assert_eq!(names(&f("all", &["TESTING3"])), ["testing3/three"]);
        assert_eq!(names(&f("tag-key", &["rig"])), ["testing1/one"]);
        assert!(names(&f("tag-key", &["Rig"])).is_empty());
        assert_eq!(names(&f("tag-value", &["wrong"])), ["testing1/one"]);
    }

    #[test]
    fn filter_validation_answers_aws_errors() {
        let e = validate_filters(&[f("", &["x"])]).unwrap_err();
        assert_eq!(e, SmError::InvalidParameter("Invalid filter key".into()));
        let e = validate_filters(&[f("invalid", &["x"])]).unwrap_err();
        assert_eq!(e.aws_type(), "ValidationException");
        assert!(
            e.message().starts_with(
                "1 validation error detected: Value 'invalid' at 'filters.1.member.key'"
            )
        );
        let e = validate_filters(&[f("description", &[])]).unwrap_err();
        assert_eq!(
            e,
            SmError::InvalidParameter("Invalid filter values for key: description".into())
        );
        let many: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            validate_filters(&[f("name", &many)])
                .unwrap_err()
                .aws_type(),
            "ValidationException"
        );
        assert_eq!(
            validate_filters(&[f("name", &["a*b"])])
                .unwrap_err()
                .aws_type(),
            "ValidationException"
        );
        assert!(validate_filters(&[f("name", &["a"]), f("name", &["b"])]).is_ok());
    }
}
