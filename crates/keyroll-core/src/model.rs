//! A secret's metadata and versions, and every Secrets Manager rule about them, as pure
//! functions on [`SecretRecord`]. Values are not held here (stores keep them, sealed); the
//! record only knows whether a version has one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::SmError;
use crate::ids::{validate_stage, validate_token};
use crate::time::Timestamp;

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Deprecated versions are removed, oldest first and whatever their age, once a secret has
/// more than this many versions (a caller cannot grow a secret without bound by writing
/// versions quickly).
pub const MAX_VERSIONS: usize = 100;
/// AWS allows at most 20 staging labels on one version.
pub const MAX_STAGES_PER_VERSION: usize = 20;
pub const MAX_TAGS: usize = 50;
pub const MAX_DESCRIPTION_LEN: usize = 2048;
pub const DEFAULT_RECOVERY_WINDOW_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// `RotationRules` exactly as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

impl RotationRules {
    /// AWS's range checks that need no schedule parser.
    pub fn validate_basic(&self) -> Result<(), SmError> {
        if let Some(d) = self.automatically_after_days {
            if !(1..=1000).contains(&d) {
                return Err(SmError::InvalidParameter(
                    "RotationRules.AutomaticallyAfterDays must be within 1-1000.".into(),
                ));
            }
            if self.schedule_expression.is_some() {
                return Err(SmError::InvalidParameter(
                    "You can't specify both AutomaticallyAfterDays and ScheduleExpression in \
                     RotationRules."
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// A secret's rotation configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationConfig {
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    pub rules: Option<RotationRules>,
}

/// The four steps of the rotation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    #[serde(rename = "createSecret")]
    Create,
    #[serde(rename = "setSecret")]
    Set,
    #[serde(rename = "testSecret")]
    Test,
    #[serde(rename = "finishSecret")]
    Finish,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];

    /// The name used in Lambda events: `createSecret`, `setSecret`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the last rotation of a secret ended (keyroll's own bookkeeping, shown by
/// `DescribeSecret` as `KeyrollRotationStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationStatus {
    /// `Succeeded`, `Failed` or `InProgress`.
    pub state: RotationState,
    /// The version being rotated to.
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Step>,
    /// A class of error (e.g. `AuthenticationFailed`), stable for alerting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// What went wrong, never containing a secret value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub started: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    /// Attempts made for this version. A run that was interrupted (the process stopped while
    /// the status said `InProgress`) is not counted again when it resumes: only genuine
    /// failures add attempts.
    #[serde(default)]
    pub attempts: u32,
}

impl RotationStatus {
    /// A rotation to `version_id` starting `now`: the first attempt, or one more than `last`
    /// records for the same version after a failure. When `last` is still `InProgress` for
    /// the same version, that run was interrupted (a crash, a kill, a restart) and this one
    /// carries it on under the same attempt number.
    pub fn begin(version_id: &str, now: Timestamp, last: Option<&RotationStatus>) -> Self {
        let attempts = match last.filter(|s| s.version_id == version_id) {
            Some(s) if s.state == RotationState::InProgress => s.attempts.max(1),
            Some(s) => s.attempts + 1,
            None => 1,
        };
        RotationStatus {
            state: RotationState::InProgress,
            version_id: version_id.to_string(),
            failed_step: None,
            error_type: None,
            message: None,
            started: now,
            ended: None,
            attempts,
        }
    }

    /// The same rotation, ended `now` by a failure at `step`.
    pub fn failed(
        mut self,
        step: Step,
        error_type: String,
        message: String,
        now: Timestamp,
    ) -> Self {
        self.state = RotationState::Failed;
        self.failed_step = Some(step);
        self.error_type = Some(error_type);
        self.message = Some(message);
        self.ended = Some(now);
        self
    }

    /// Genuine failures recorded for this version (an interrupted run is not one).
    pub fn failures(&self) -> u32 {
        match self.state {
            RotationState::Failed => self.attempts,
            _ => self.attempts.saturating_sub(1),
        }
    }

    /// Whether the rotation to `pending` may already have changed the target (setSecret may
    /// have begun): every state except a failure at `createSecret` or a cancellation, which
    /// only ever happens before setSecret. Such a rotation must be carried to its end even
    /// when rotation was disabled meanwhile (`CancelRotateSecret`), since `AWSCURRENT` may no
    /// longer log in.
    pub fn may_have_changed_target(&self, pending: &str) -> bool {
        self.version_id == pending
            && !(self.state == RotationState::Failed
                && (self.failed_step == Some(Step::Create)
                    || self.error_type.as_deref() == Some(CANCELLED)))
    }
}

/// The error class of a rotation stopped by `CancelRotateSecret` before setSecret.
pub const CANCELLED: &str = "Cancelled";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationState {
    InProgress,
    Succeeded,
    Failed,
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub id: String,
    pub created: Timestamp,
    /// Staging labels in the order they were attached (AWS does not specify an order).
    pub stages: Vec<String>,
    pub last_accessed: Option<Timestamp>,
    /// False for the `AWSPENDING` placeholder that `RotateSecret` creates before `createSecret`.
    pub has_value: bool,
}

impl VersionEntry {
    pub fn has_stage(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s == stage)
    }
    pub fn is_deprecated(&self) -> bool {
        self.stages.is_empty()
    }
}

/// Replication of a primary secret to another region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaStatus {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `InSync`, `Failed` or `InProgress`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<Timestamp>,
}

/// Everything about a secret except its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub arn: String,
    pub name: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<Tag>,
    /// Whether the secret has ever had tags: AWS then shows `Tags: []` after the last is
    /// removed, and omits `Tags` on a secret never tagged (recorded AWS responses,
    /// secret_tags).
    #[serde(default)]
    pub tagged: bool,
    pub created: Timestamp,
    pub last_changed: Option<Timestamp>,
    pub last_accessed: Option<Timestamp>,
    pub last_rotated: Option<Timestamp>,
    pub rotation: RotationConfig,
    pub next_rotation: Option<Timestamp>,
    /// When set, the secret is scheduled for deletion on this date.
    pub deleted_date: Option<Timestamp>,
    pub owning_service: Option<String>,
    /// For a replica, the region of its primary; for a primary with replicas, its own region.
    pub primary_region: Option<String>,
    /// For a primary: where it is replicated.
    pub replicas: Vec<ReplicaStatus>,
    /// Shared, not copied, when the record is cloned: authorization reads it on every
    /// request (and caches its parse by this allocation).
    pub resource_policy: Option<std::sync::Arc<str>>,
    pub rotation_status: Option<RotationStatus>,
    /// Versions in creation order.
    pub versions: Vec<VersionEntry>,
    /// Bumped by every committed change; stores use it for optimistic concurrency.
    #[serde(default)]
    pub revision: u64,
}

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub version_id: String,
    pub stages: Vec<String>,
    /// False when the request repeated an earlier one (same token, same value): nothing
    /// changed and the store must not write a value.
    pub changed: bool,
    /// Deprecated versions removed by this change; the store deletes their values.
    pub removed_versions: Vec<String>,
}

impl SecretRecord {
    pub fn new(arn: String, name: String, now: Timestamp) -> Self {
        SecretRecord {
            arn,
            name,
            description: None,
            kms_key_id: None,
            tags: Vec::new(),
            tagged: false,
            created: now,
            last_changed: Some(now),
            last_accessed: None,
            last_rotated: None,
            rotation: RotationConfig::default(),
            next_rotation: None,
            deleted_date: None,
            owning_service: None,
            primary_region: None,
            replicas: Vec::new(),
            resource_policy: None,
            rotation_status: None,
            versions: Vec::new(),
            revision: 0,
        }
    }

    // ---- reading ---------------------------------------------------------------------------

    pub fn version(&self, id: &str) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.id == id)
    }

    fn version_mut(&mut self, id: &str) -> Option<&mut VersionEntry> {
        self.versions.iter_mut().find(|v| v.id == id)
    }

    /// The version that carries `stage`, if any.
    pub fn holder(&self, stage: &str) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.has_stage(stage))
    }

    pub fn current(&self) -> Option<&VersionEntry> {
        self.holder(AWSCURRENT)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_date.is_some()
    }

    /// Refuses reads and writes on a secret scheduled for deletion.
    pub fn ensure_not_deleted(&self) -> Result<(), SmError> {
        if self.is_deleted() {
            Err(SmError::marked_for_deletion())
        } else {
            Ok(())
        }
    }

    pub fn is_replica(&self) -> bool {
        self.primary_region
            .as_ref()
            .is_some_and(|p| crate::ids::parse_arn(&self.arn).is_some_and(|a| &a.region != p))
    }

    /// `VersionIdsToStages`: labelled versions only (deprecated ones are hidden).
    pub fn version_ids_to_stages(&self) -> BTreeMap<String, Vec<String>> {
        self.versions
            .iter()
            .filter(|v| !v.is_deprecated())
            .map(|v| (v.id.clone(), v.stages.clone()))
            .collect()
    }

    /// Picks the version `GetSecretValue` would read: by id, by stage, by both (they must
    /// agree), or `AWSCURRENT` by default. A version without a value is not found.
    pub fn select_version(
        &self,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<&VersionEntry, SmError> {
        let v = match (version_id, stage) {
            (Some(id), stage) => {
                let v = self
                    .version(id)
                    .ok_or_else(|| SmError::no_value_for_version(id))?;
                if let Some(st) = stage
                    && !v.has_stage(st)
                {
                    return Err(SmError::InvalidRequest(
                        "You provided a VersionStage that is not associated to the provided \
                             VersionId."
                            .into(),
                    ));
                }
                v
            }
            (None, stage) => {
                let st = stage.unwrap_or(AWSCURRENT);
                self.holder(st)
                    .ok_or_else(|| SmError::no_value_for_stage(st))?
            }
        };
        if !v.has_value {
            return Err(match stage {
                Some(st) => SmError::no_value_for_stage(st),
                None if version_id.is_some() => SmError::no_value_for_version(&v.id),
                None => SmError::no_value_for_stage(AWSCURRENT),
            });
        }
        Ok(v)
    }

    // ---- writing versions -------------------------------------------------------------------

    /// `PutSecretValue` / `CreateSecret` / `UpdateSecret` with a value, under the client
    /// request token `token`.
    ///
    /// - same token, version has a value: `same_value` decides: a repeat is a no-op, a
    ///   different value is `ResourceExistsException`;
    /// - same token on a value-less placeholder: the value fills it;
    /// - no stages: `AWSCURRENT`; the first version always gets `AWSCURRENT`;
    /// - each label moves here from wherever it was; when `AWSCURRENT` moves, `AWSPREVIOUS`
    ///   goes to the version it left.
    pub fn put_version(
        &mut self,
        token: &str,
        stages: Option<&[String]>,
        now: Timestamp,
        same_value: impl FnOnce(&VersionEntry) -> bool,
    ) -> Result<PutOutcome, SmError> {
        self.ensure_not_deleted()?;
        validate_token(token)?;
        let mut wanted: Vec<String> = match stages {
            Some(s) if !s.is_empty() => s.to_vec(),
            _ => vec![AWSCURRENT.to_string()],
        };
        dedup_in_order(&mut wanted);
        for s in &wanted {
            validate_stage(s)?;
        }
        if wanted.len() > MAX_STAGES_PER_VERSION {
            return Err(SmError::LimitExceeded(format!(
                "A version can have at most {MAX_STAGES_PER_VERSION} staging labels."
            )));
        }
        if let Some(existing) = self.version(token)
            && existing.has_value
        {
            return if same_value(existing) {
                Ok(PutOutcome {
                    version_id: existing.id.clone(),
                    stages: existing.stages.clone(),
                    changed: false,
                    removed_versions: Vec::new(),
                })
            } else {
                Err(SmError::token_in_use(token, &self.arn))
            };
        }
        if self.current().is_none() && !wanted.iter().any(|s| s == AWSCURRENT) {
            wanted.insert(0, AWSCURRENT.to_string());
        }
        match self.version_mut(token) {
            Some(v) => v.has_value = true,
            None => self.versions.push(VersionEntry {
                id: token.to_string(),
                created: now,
                stages: Vec::new(),
                last_accessed: None,
                has_value: true,
            }),
        }
        // AWSCURRENT goes last, so that the version it leaves ends up AWSPREVIOUS even when
        // the request also names AWSPREVIOUS.
        for s in wanted.iter().filter(|s| *s != AWSCURRENT) {
            self.attach(s, token);
        }
        if wanted.iter().any(|s| s == AWSCURRENT) {
            // A value put as AWSCURRENT ends a rotation: the version it replaces keeps only
            // AWSPREVIOUS of the two (recorded AWS responses,
            // update_secret_version_stages_current_pending).
            if let Some(old) = self.current().map(|v| v.id.clone())
                && old != token
                && !wanted.iter().any(|s| s == AWSPENDING)
            {
                self.detach(AWSPENDING, &old);
            }
            self.attach(AWSCURRENT, token);
        }
        self.last_changed = Some(now);
        let removed_versions = self.collect_deprecated(now);
        Ok(PutOutcome {
            version_id: token.to_string(),
            stages: self
                .version(token)
                .map(|v| v.stages.clone())
                .unwrap_or_default(),
            changed: true,
            removed_versions,
        })
    }

    /// The service side of `RotateSecret`: a new version without a value, labelled
    /// `AWSPENDING`, for the rotation function to fill.
    /// Returns the deprecated versions this removed (their values must be deleted).
    pub fn add_pending_placeholder(
        &mut self,
        token: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, SmError> {
        self.ensure_not_deleted()?;
        validate_token(token)?;
        if self.current().is_none() {
            return Err(SmError::InvalidRequest(
                "The secret has no AWSCURRENT version to rotate: put a value first.".into(),
            ));
        }
        if let Some(v) = self.version(token) {
            if v.has_stage(AWSPENDING) && !v.has_value {
                return Ok(Vec::new());
            }
            return Err(SmError::version_exists());
        }
        self.versions.push(VersionEntry {
            id: token.to_string(),
            created: now,
            stages: Vec::new(),
            last_accessed: None,
            has_value: false,
        });
        self.attach(AWSPENDING, token);
        Ok(self.collect_deprecated(now))
    }

    /// `UpdateSecretVersionStage`.
    pub fn update_stage(
        &mut self,
        stage: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<String>, SmError> {
        self.ensure_not_deleted()?;
        validate_stage(stage)?;
        if move_to.is_none() && remove_from.is_none() {
            return Err(SmError::InvalidParameter(
                "You must specify MoveToVersionId, RemoveFromVersionId, or both.".into(),
            ));
        }
        if let Some(r) = remove_from {
            let v = self.version(r).ok_or_else(|| {
                SmError::InvalidParameter(format!(
                    "The version {r} in RemoveFromVersionId doesn't exist."
                ))
            })?;
            if !v.has_stage(stage) {
                return Err(SmError::InvalidParameter(format!(
                    "The staging label {stage} isn't attached to version {r} named in \
                     RemoveFromVersionId."
                )));
            }
        }
        let holder = self.holder(stage).map(|v| v.id.clone());
        match move_to {
            Some(m) => {
                let target = self.version(m).ok_or_else(|| {
                    SmError::InvalidParameter(format!(
                        "The version {m} in MoveToVersionId doesn't exist."
                    ))
                })?;
                if stage == AWSCURRENT && !target.has_value {
                    return Err(SmError::InvalidRequest(format!(
                        "You can't attach AWSCURRENT to version {m} because it has no secret value."
                    )));
                }
                if let Some(h) = &holder
                    && h != m
                    && remove_from != Some(h.as_str())
                {
                    return Err(SmError::InvalidParameter(format!(
                        "The parameter RemoveFromVersionId can't be empty. Staging label \
                             {stage} is currently attached to version {h}, so you must \
                             explicitly reference that version in RemoveFromVersionId."
                    )));
                }
                if self.version(m).is_some_and(|v| {
                    !v.has_stage(stage) && v.stages.len() >= MAX_STAGES_PER_VERSION
                }) {
                    return Err(SmError::LimitExceeded(format!(
                        "A version can have at most {MAX_STAGES_PER_VERSION} staging labels."
                    )));
                }
                // A label has one holder, which `remove_from` (if given) was checked to be:
                // attaching moves it, and moving AWSCURRENT moves AWSPREVIOUS along.
                self.attach(stage, m);
            }
            None => {
                if stage == AWSCURRENT {
                    return Err(SmError::InvalidParameter(
                        "You can't remove the staging label AWSCURRENT without moving it to \
                         another version: specify MoveToVersionId."
                            .into(),
                    ));
                }
                if let Some(r) = remove_from {
                    self.detach(stage, r);
                }
            }
        }
        self.last_changed = Some(now);
        Ok(self.collect_deprecated(now))
    }

    /// Attaches `stage` to version `to`, removing it from any other version; moving
    /// `AWSCURRENT` moves `AWSPREVIOUS` to the version it left.
    fn attach(&mut self, stage: &str, to: &str) {
        let previous_holder = self.holder(stage).map(|v| v.id.clone());
        if previous_holder.as_deref() == Some(to) {
            return;
        }
        if let Some(h) = &previous_holder {
            self.detach(stage, h);
        }
        if let Some(v) = self.version_mut(to) {
            v.stages.push(stage.to_string());
        }
        if stage == AWSCURRENT
            && let Some(old) = previous_holder
        {
            self.attach(AWSPREVIOUS, &old);
        }
    }

    fn detach(&mut self, stage: &str, from: &str) {
        if let Some(v) = self.version_mut(from) {
            v.stages.retain(|s| s != stage);
        }
    }

    /// Removes deprecated (unlabelled) versions, oldest first, while the secret has more than
    /// [`MAX_VERSIONS`] versions, however young they are.
    pub fn collect_deprecated(&mut self, _now: Timestamp) -> Vec<String> {
        let mut removed = Vec::new();
        if self.versions.len() <= MAX_VERSIONS {
            return removed;
        }
        let mut excess = self.versions.len() - MAX_VERSIONS;
        let mut order: Vec<(Timestamp, String)> = self
            .versions
            .iter()
            .filter(|v| v.is_deprecated())
            .map(|v| (v.created, v.id.clone()))
            .collect();
        // Stable: versions created in the same millisecond go in creation order.
        order.sort_by_key(|(created, _)| *created);
        for (_, id) in order {
            if excess == 0 {
                break;
            }
            self.versions.retain(|v| v.id != id);
            removed.push(id);
            excess -= 1;
        }
        removed
    }

    // ---- metadata ---------------------------------------------------------------------------

    pub fn set_description(&mut self, description: Option<String>) -> Result<(), SmError> {
        if let Some(d) = &description {
            validate_description(d)?;
        }
        self.description = description;
        Ok(())
    }

    /// `TagResource`: adds tags, replacing the value of keys already present.
    pub fn tag(&mut self, tags: &[Tag]) -> Result<(), SmError> {
        validate_tags(tags)?;
        self.tagged = true;
        for t in tags {
            match self.tags.iter_mut().find(|x| x.key == t.key) {
                Some(x) => x.value = t.value.clone(),
                None => self.tags.push(t.clone()),
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(SmError::InvalidParameter(format!(
                "A secret can have at most {MAX_TAGS} tags; this request would leave {}.",
                self.tags.len()
            )));
        }
        Ok(())
    }

    /// `UntagResource`.
    pub fn untag(&mut self, keys: &[String]) {
        self.tags.retain(|t| !keys.contains(&t.key));
    }

    pub fn tag_value(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }

    /// `DeleteSecret`: returns the deletion date (`now` for a forced delete, which the store
    /// must then purge at once).
    pub fn schedule_deletion(
        &mut self,
        recovery_window_days: Option<i64>,
        force: bool,
        now: Timestamp,
    ) -> Result<Timestamp, SmError> {
        if force && recovery_window_days.is_some() {
            return Err(SmError::InvalidParameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with \
                 RecoveryWindowInDays."
                    .into(),
            ));
        }
        if force {
            return Ok(now);
        }
        let days = recovery_window_days.unwrap_or(DEFAULT_RECOVERY_WINDOW_DAYS);
        if !(7..=30).contains(&days) {
            return Err(SmError::InvalidParameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into(),
            ));
        }
        if self.is_deleted() {
            return Err(SmError::marked_for_deletion());
        }
        let date = now.plus_days(days);
        self.deleted_date = Some(date);
        Ok(date)
    }

    /// `RestoreSecret`.
    pub fn restore(&mut self) {
        self.deleted_date = None;
    }
}

fn dedup_in_order(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

pub fn validate_description(d: &str) -> Result<(), SmError> {
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(SmError::InvalidParameter(format!(
            "Description must be at most {MAX_DESCRIPTION_LEN} characters."
        )));
    }
    Ok(())
}

pub fn validate_tags(tags: &[Tag]) -> Result<(), SmError> {
    for t in tags {
        let k = t.key.chars().count();
        if !(1..=128).contains(&k) {
            return Err(SmError::InvalidParameter(format!(
                "Tag keys must be 1-128 characters long (got {k})."
            )));
        }
        if t.value.chars().count() > 256 {
            return Err(SmError::InvalidParameter(format!(
                "The value of tag {} must be at most 256 characters.",
                t.key
            )));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            // AWS's TagResource wording for the reserved `aws:` prefix.
            return Err(SmError::InvalidParameter(format!(
                "You can't modify system tags. Tag key: '{}'.",
                t.key
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(SmError::InvalidParameter(format!(
            "A secret can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_failures_not_interruptions() {
        let t = Timestamp::from_secs(0);
        let first = RotationStatus::begin("v1", t, None);
        assert_eq!((first.attempts, first.failures()), (1, 0));
        // Interrupted (still InProgress): the next run keeps the number.
        let again = RotationStatus::begin("v1", t, Some(&first));
        assert_eq!((again.attempts, again.failures()), (1, 0));
        let failed = again.failed(Step::Test, "TestFailed".into(), "no".into(), t);
        assert_eq!(failed.failures(), 1);
        let retry = RotationStatus::begin("v1", t, Some(&failed));
        assert_eq!((retry.attempts, retry.failures()), (2, 1));
        // Another version starts over.
        assert_eq!(RotationStatus::begin("v2", t, Some(&failed)).attempts, 1);
    }

    #[test]
    fn whether_set_secret_may_have_run() {
        let t = Timestamp::from_secs(0);
        let running = RotationStatus::begin("v1", t, None);
        assert!(
            running.may_have_changed_target("v1"),
            "interrupted: unknown, assume so"
        );
        assert!(!running.may_have_changed_target("v2"), "another version");
        let at = |step: Step, class: &str| {
            RotationStatus::begin("v1", t, None)
                .failed(step, class.into(), "m".into(), t)
                .may_have_changed_target("v1")
        };
        assert!(!at(Step::Create, "Unreachable"));
        assert!(!at(Step::Set, CANCELLED), "cancelled before setSecret ran");
        assert!(at(Step::Set, "Timeout"));
        assert!(at(Step::Test, "TestFailed"));
        assert!(at(Step::Finish, "Rejected"));
    }

    const T0: Timestamp = Timestamp(1_700_000_000_000);

    fn tok(n: u32) -> String {
        format!("{n:032}")
    }

    fn rec() -> SecretRecord {
        SecretRecord::new(
            "arn:aws:secretsmanager:us-east-1:0:secret:s-AbCdEf".into(),
            "s".into(),
            T0,
        )
    }

    fn stages(r: &SecretRecord, id: &str) -> Vec<String> {
        r.version(id).unwrap().stages.clone()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_put_as_current_ends_the_pending_label_on_the_version_it_replaces() {
        // Recorded AWS responses, update_secret_version_stages_current_pending.
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        r.put_version(&tok(2), Some(&s(&[AWSPENDING])), T0, |_| true)
            .unwrap();
        r.update_stage(AWSCURRENT, Some(&tok(2)), Some(&tok(1)), T0)
            .unwrap();
        assert_eq!(stages(&r, &tok(2)), s(&[AWSPENDING, AWSCURRENT]));
        r.put_version(&tok(3), None, T0, |_| true).unwrap();
        assert_eq!(stages(&r, &tok(2)), s(&[AWSPREVIOUS]));
        assert_eq!(stages(&r, &tok(3)), s(&[AWSCURRENT]));
        assert!(stages(&r, &tok(1)).is_empty());
    }

    #[test]
    fn first_version_is_current_even_when_put_as_pending() {
        let mut r = rec();
        r.put_version(&tok(1), Some(&s(&[AWSPENDING])), T0, |_| true)
            .unwrap();
        assert_eq!(stages(&r, &tok(1)), s(&[AWSPENDING, AWSCURRENT]));
    }

    #[test]
    fn put_moves_current_and_previous() {
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        r.put_version(&tok(2), None, T0, |_| true).unwrap();
        assert_eq!(stages(&r, &tok(1)), s(&[AWSPREVIOUS]));
        assert_eq!(stages(&r, &tok(2)), s(&[AWSCURRENT]));
        r.put_version(&tok(3), None, T0, |_| true).unwrap();
        assert!(r.version(&tok(1)).unwrap().is_deprecated());
        assert_eq!(stages(&r, &tok(2)), s(&[AWSPREVIOUS]));
        assert!(!r.version_ids_to_stages().contains_key(&tok(1)));
    }

    #[test]
    fn pending_put_leaves_current_alone() {
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        r.put_version(&tok(2), Some(&s(&[AWSPENDING])), T0, |_| true)
            .unwrap();
        assert_eq!(stages(&r, &tok(1)), s(&[AWSCURRENT]));
        assert_eq!(stages(&r, &tok(2)), s(&[AWSPENDING]));
    }

    #[test]
    fn same_token_same_value_is_noop_different_value_is_error() {
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        let o = r.put_version(&tok(1), None, T0, |_| true).unwrap();
        assert!(!o.changed);
        assert_eq!(
            r.put_version(&tok(1), None, T0, |_| false),
            Err(SmError::token_in_use(&tok(1), &r.arn))
        );
    }

    #[test]
    fn placeholder_is_filled_by_put_with_its_token() {
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        r.add_pending_placeholder(&tok(2), T0).unwrap();
        assert!(
            r.select_version(None, Some(AWSPENDING))
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            r.select_version(Some(&tok(2)), None)
                .unwrap_err()
                .is_not_found()
        );
        r.put_version(&tok(2), Some(&s(&[AWSPENDING])), T0, |_| false)
            .unwrap();
        assert_eq!(r.select_version(None, Some(AWSPENDING)).unwrap().id, tok(2));
    }

    #[test]
    fn moving_attached_current_requires_remove_from() {
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        r.put_version(&tok(2), Some(&s(&[AWSPENDING])), T0, |_| true)
            .unwrap();
        let e = r
            .update_stage(AWSCURRENT, Some(&tok(2)), None, T0)
            .unwrap_err();
        assert!(matches!(e, SmError::InvalidParameter(ref m) if m.contains("RemoveFromVersionId")));
        let e = r
            .update_stage(AWSCURRENT, Some(&tok(2)), Some(&tok(2)), T0)
            .unwrap_err();
        assert!(matches!(e, SmError::InvalidParameter(_)));
        r.update_stage(AWSCURRENT, Some(&tok(2)), Some(&tok(1)), T0)
            .unwrap();
        assert_eq!(stages(&r, &tok(2)), s(&[AWSPENDING, AWSCURRENT]));
        assert_eq!(stages(&r, &tok(1)), s(&[AWSPREVIOUS]));
        r.update_stage(AWSPENDING, None, Some(&tok(2)), T0).unwrap();
        assert_eq!(stages(&r, &tok(2)), s(&[AWSCURRENT]));
    }

    #[test]
    fn current_cannot_be_removed_without_a_move() {
        let mut r = rec();
        r.put_version(&tok(1), None, T0, |_| true).unwrap();
        assert!(r.update_stage(AWSCURRENT, None, Some(&tok(1)), T0).is_err());
    }

    #[test]
    fn custom_label_moves_with_remove_from() {
        let mut r = rec();
        r.put_version(&tok(1), Some(&s(&["BLUE"])), T0, |_| true)
            .unwrap();
        r.put_version(&tok(2), Some(&s(&["GREEN"])), T0, |_| true)
            .unwrap();
        assert!(r.update_stage("BLUE", Some(&tok(2)), None, T0).is_err());
        r.update_stage("BLUE", Some(&tok(2)), Some(&tok(1)), T0)
            .unwrap();
        assert_eq!(stages(&r, &tok(2)), s(&["GREEN", "BLUE"]));
        // An unattached label can be attached without RemoveFromVersionId.
        r.update_stage("RED", Some(&tok(1)), None, T0).unwrap();
    }

    #[test]
    fn deprecated_versions_collected_oldest_first_whatever_their_age() {
        let mut r = rec();
        // A labelled old version survives; unlabelled ones go oldest first, even when only
        // milliseconds old.
        r.put_version(&tok(0), None, T0, |_| true).unwrap();
        r.update_stage("KEEP", Some(&tok(0)), None, T0).unwrap();
        let mut removed = Vec::new();
        for i in 1..=150 {
            removed.extend(
                r.put_version(&tok(i), None, T0.plus_millis(i as i64), |_| true)
                    .unwrap()
                    .removed_versions,
            );
            assert!(r.versions.len() <= MAX_VERSIONS);
        }
        assert_eq!(r.versions.len(), 100);
        assert_eq!(removed, (1..=51).map(tok).collect::<Vec<_>>());
        assert!(
            r.version(&tok(0)).is_some(),
            "labelled versions are never removed"
        );
        assert_eq!(stages(&r, &tok(150)), s(&["AWSCURRENT"]));
    }

    #[test]
    fn deletion_window() {
        let mut r = rec();
        assert!(r.schedule_deletion(Some(6), false, T0).is_err());
        assert!(r.schedule_deletion(Some(31), false, T0).is_err());
        assert!(r.schedule_deletion(Some(7), true, T0).is_err());
        assert_eq!(
            r.schedule_deletion(None, false, T0).unwrap(),
            T0.plus_days(30)
        );
        assert!(r.put_version(&tok(1), None, T0, |_| true).is_err());
        r.restore();
        assert!(r.put_version(&tok(1), None, T0, |_| true).is_ok());
    }

    #[test]
    fn tags_replace_and_validate() {
        let mut r = rec();
        r.tag(&[Tag::new("env", "dev")]).unwrap();
        r.tag(&[Tag::new("env", "prod"), Tag::new("team", "x")])
            .unwrap();
        assert_eq!(r.tag_value("env"), Some("prod"));
        assert!(r.tag(&[Tag::new("aws:x", "y")]).is_err());
        r.untag(&["env".into()]);
        assert_eq!(r.tag_value("env"), None);
    }
}
