//! The Secrets Manager view of one event. `PutSecretValue` carries the event's
//! `RotationToken`; `GetRandomPassword` is answered locally from the OS CSPRNG with the
//! function's password settings (AWS's character classes, `EXCLUDE_CHARACTERS`,
//! `PASSWORD_LENGTH`, each included class required) instead of a round trip; and the reads a
//! step makes are served, where that is safe, from what the function already knows:
//!
//! - **values by version.** A version's value never changes (Secrets Manager refuses a second
//!   `PutSecretValue` with the same `ClientRequestToken` and another value), so values read or
//!   written are kept in a [`ValueCache`] keyed by ARN and `VersionId` across a warm
//!   container's events. A read by staging label is resolved to a version through this event's
//!   `DescribeSecret`; a version the description does not list is always asked for, so a
//!   deleted or deprecated version is never served.
//! - **one `DescribeSecret` per event.** The first answer is remembered for the rest of the
//!   event (with the labels this event moved itself applied to it): the engine's check and the
//!   notification after `finishSecret` share it.
//!
//! A full single-user rotation then costs 8 calls: one `DescribeSecret` per step, the
//! `AWSCURRENT` value and the (absent) pending value in `createSecret`, `PutSecretValue`, and
//! `UpdateSecretVersionStage`.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use keyroll_core::SmError;
use keyroll_core::api::*;
use keyroll_core::model::{AWSCURRENT, AWSPREVIOUS};
use keyroll_core::ports::SecretsApi;
use keyroll_core::time::Timestamp;
use secrecy::{SecretSlice, SecretString};

use crate::settings::PasswordSettings;

/// How many versions' values a warm container keeps (a rotation touches at most three
/// versions of its secret, plus a master secret's).
pub const CACHE_CAPACITY: usize = 16;

/// One version's value, as Secrets Manager returned or accepted it.
#[derive(Clone)]
struct CachedValue {
    arn: String,
    name: String,
    version_id: String,
    secret_string: Option<SecretString>,
    secret_binary: Option<SecretSlice<u8>>,
    created_date: Timestamp,
}

/// Values by (ARN, `VersionId`), least recently used dropped first. Values stay in `secrecy`
/// boxes, zeroized when dropped; `Debug` shows only the number of entries.
pub struct ValueCache {
    entries: Mutex<VecDeque<CachedValue>>,
    capacity: usize,
}

impl std::fmt::Debug for ValueCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueCache")
            .field("entries", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for ValueCache {
    fn default() -> Self {
        ValueCache::new(CACHE_CAPACITY)
    }
}

impl ValueCache {
    pub fn new(capacity: usize) -> Self {
        ValueCache {
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<CachedValue>> {
        // A panic while holding the lock cannot leave a half-written entry: recover.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, arn: &str, version_id: &str) -> Option<CachedValue> {
        let mut entries = self.lock();
        let i = entries
            .iter()
            .position(|e| e.arn == arn && e.version_id == version_id)?;
        let e = entries.remove(i)?;
        entries.push_back(e.clone());
        Some(e)
    }

    fn insert(&self, value: CachedValue) {
        if self.capacity == 0 || (value.secret_string.is_none() && value.secret_binary.is_none()) {
            return;
        }
        let mut entries = self.lock();
        entries.retain(|e| !(e.arn == value.arn && e.version_id == value.version_id));
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(value);
    }
}

/// Wraps the store for the duration of one event.
pub struct EventStore<'a> {
    inner: &'a dyn SecretsApi,
    rotation_token: Option<&'a str>,
    password: &'a PasswordSettings,
    cache: &'a ValueCache,
    /// This event's `DescribeSecret` answer, with the labels the event moved applied.
    description: Mutex<Option<DescribeSecretResponse>>,
}

impl<'a> EventStore<'a> {
    pub fn new(
        inner: &'a dyn SecretsApi,
        rotation_token: Option<&'a str>,
        password: &'a PasswordSettings,
        cache: &'a ValueCache,
    ) -> Self {
        EventStore {
            inner,
            rotation_token,
            password,
            cache,
            description: Mutex::new(None),
        }
    }
}

impl EventStore<'_> {
    /// The event's `RotationToken` unless the caller set one.
    fn put_request(&self, mut req: PutSecretValueRequest) -> PutSecretValueRequest {
        if req.rotation_token.is_none() {
            req.rotation_token = self.rotation_token.map(str::to_string);
        }
        req
    }

    /// The function's password switches over the target's.
    fn password_request(&self, mut req: GetRandomPasswordRequest) -> GetRandomPasswordRequest {
        let p = self.password;
        for (field, v) in [
            (&mut req.exclude_numbers, p.exclude_numbers),
            (&mut req.exclude_punctuation, p.exclude_punctuation),
            (&mut req.exclude_uppercase, p.exclude_uppercase),
            (&mut req.exclude_lowercase, p.exclude_lowercase),
            (
                &mut req.require_each_included_type,
                p.require_each_included_type,
            ),
        ] {
            if v.is_some() {
                *field = v;
            }
        }
        req
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, Option<DescribeSecretResponse>> {
        self.description
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The remembered description if `secret_id` names its secret (by ARN or name).
    fn description_of(&self, secret_id: &str) -> Option<DescribeSecretResponse> {
        self.remembered()
            .as_ref()
            .filter(|d| d.arn == secret_id || d.name == secret_id)
            .cloned()
    }

    /// The secret's ARN, the version a read asks for and its labels, when this event's
    /// description can tell;
    /// `None` means ask the service (another secret, an unknown version, a label no version
    /// holds, or a version that does not hold the label asked for).
    fn resolve(&self, req: &GetSecretValueRequest) -> Option<(String, String, Vec<String>)> {
        let desc = self.description_of(&req.secret_id)?;
        let version = match (&req.version_id, &req.version_stage) {
            (Some(v), _) => v.clone(),
            (None, Some(stage)) => desc.holder(stage)?.to_string(),
            (None, None) => desc.holder(AWSCURRENT)?.to_string(),
        };
        let stages = desc.stages_of(&version)?.to_vec();
        if let Some(stage) = &req.version_stage
            && !stages.iter().any(|s| s == stage)
        {
            return None;
        }
        Some((desc.arn, version, stages))
    }

    /// Applies a successful label change to the remembered description, as Secrets Manager
    /// does: a label has one holder, and moving `AWSCURRENT` puts `AWSPREVIOUS` on the version
    /// it left.
    fn moved(&self, secret_id: &str, stage: &str, to: Option<&str>, from: Option<&str>) {
        let mut guard = self.remembered();
        let Some(desc) = guard
            .as_mut()
            .filter(|d| d.arn == secret_id || d.name == secret_id)
        else {
            return;
        };
        let map = desc
            .version_ids_to_stages
            .get_or_insert_with(Default::default);
        let left = map
            .iter()
            .find(|(_, st)| st.iter().any(|s| s == stage))
            .map(|(id, _)| id.clone());
        for labels in map.values_mut() {
            labels.retain(|s| s != stage);
        }
        if let Some(to) = to {
            map.entry(to.to_string())
                .or_default()
                .push(stage.to_string());
        }
        if stage == AWSCURRENT
            && let Some(old) = from.map(str::to_string).or(left)
            && Some(old.as_str()) != to
        {
            for labels in map.values_mut() {
                labels.retain(|s| s != AWSPREVIOUS);
            }
            map.entry(old).or_default().push(AWSPREVIOUS.to_string());
        }
        // Versions left without a label are no longer listed.
        map.retain(|_, st| !st.is_empty());
    }
}

#[async_trait]
impl SecretsApi for EventStore<'_> {
    async fn create_secret(
        &self,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, SmError> {
        self.inner.create_secret(req).await
    }
    async fn get_secret_value(
        &self,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, SmError> {
        if let Some((arn, version, stages)) = self.resolve(&req)
            && let Some(hit) = self.cache.get(&arn, &version)
        {
            return Ok(GetSecretValueResponse {
                arn: hit.arn,
                name: hit.name,
                version_id: hit.version_id,
                secret_string: hit.secret_string,
                secret_binary: hit.secret_binary,
                version_stages: stages,
                created_date: hit.created_date,
            });
        }
        let r = self.inner.get_secret_value(req).await?;
        self.cache.insert(CachedValue {
            arn: r.arn.clone(),
            name: r.name.clone(),
            version_id: r.version_id.clone(),
            secret_string: r.secret_string.clone(),
            secret_binary: r.secret_binary.clone(),
            created_date: r.created_date,
        });
        Ok(r)
    }
    async fn put_secret_value(
        &self,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, SmError> {
        let secret_string = req.secret_string.clone();
        let secret_binary = req.secret_binary.clone();
        let stages = req.version_stages.clone();
        let secret_id = req.secret_id.clone();
        let r = self.inner.put_secret_value(self.put_request(req)).await?;
        self.cache.insert(CachedValue {
            arn: r.arn.clone(),
            name: r.name.clone(),
            version_id: r.version_id.clone(),
            secret_string,
            secret_binary,
            created_date: Timestamp::default(),
        });
        match stages {
            Some(stages) if !stages.iter().any(|s| s == AWSCURRENT) => {
                for stage in stages {
                    self.moved(&secret_id, &stage, Some(&r.version_id), None);
                }
            }
            // A new AWSCURRENT (explicit or implied) moves labels in ways best read back.
            _ => *self.remembered() = None,
        }
        Ok(r)
    }
    async fn update_secret(
        &self,
        req: UpdateSecretRequest,
    ) -> Result<UpdateSecretResponse, SmError> {
        let r = self.inner.update_secret(req).await;
        *self.remembered() = None;
        r
    }
    async fn update_secret_version_stage(
        &self,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<ArnName, SmError> {
        let (secret_id, stage) = (req.secret_id.clone(), req.version_stage.clone());
        let (to, from) = (
            req.move_to_version_id.clone(),
            req.remove_from_version_id.clone(),
        );
        match self.inner.update_secret_version_stage(req).await {
            Ok(r) => {
                self.moved(&secret_id, &stage, to.as_deref(), from.as_deref());
                Ok(r)
            }
            Err(e) => {
                // The labels may or may not have moved: read them again.
                *self.remembered() = None;
                Err(e)
            }
        }
    }
    async fn describe_secret(
        &self,
        req: SecretIdRequest,
    ) -> Result<DescribeSecretResponse, SmError> {
        if let Some(d) = self.description_of(&req.secret_id) {
            return Ok(d);
        }
        let d = self.inner.describe_secret(req).await?;
        *self.remembered() = Some(d.clone());
        Ok(d)
    }
    async fn list_secrets(&self, req: ListSecretsRequest) -> Result<ListSecretsResponse, SmError> {
        self.inner.list_secrets(req).await
    }
    async fn list_secret_version_ids(
        &self,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse, SmError> {
        self.inner.list_secret_version_ids(req).await
    }
    async fn delete_secret(
        &self,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, SmError> {
        let r = self.inner.delete_secret(req).await;
        *self.remembered() = None;
        r
    }
    async fn restore_secret(&self, req: SecretIdRequest) -> Result<ArnName, SmError> {
        let r = self.inner.restore_secret(req).await;
        *self.remembered() = None;
        r
    }
    async fn tag_resource(&self, req: TagResourceRequest) -> Result<Empty, SmError> {
        let r = self.inner.tag_resource(req).await;
        *self.remembered() = None;
        r
    }
    async fn untag_resource(&self, req: UntagResourceRequest) -> Result<Empty, SmError> {
        let r = self.inner.untag_resource(req).await;
        *self.remembered() = None;
        r
    }
    /// Drawn locally (OS CSPRNG) with the same policy semantics as the service's
    /// `GetRandomPassword`: one round trip fewer per rotation, and the password never
    /// crosses the network before `PutSecretValue`.
    async fn get_random_password(
        &self,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, SmError> {
        let policy = self.password_request(req).policy()?;
        Ok(GetRandomPasswordResponse {
            random_password: policy.generate()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyroll_core::memory::MemoryBackend;
    use keyroll_core::service::SecretsService;
    use secrecy::ExposeSecret;

    fn service() -> SecretsService<MemoryBackend> {
        SecretsService::new(MemoryBackend::new(
            keyroll_core::ids::Namespace::new("us-east-1", "123456789012"),
            std::sync::Arc::new(keyroll_core::time::SystemClock),
        ))
    }

    #[test]
    fn rotation_token_is_passed_on_unless_set() {
        let svc = service();
        let settings = PasswordSettings::default();
        let cache = ValueCache::default();
        let store = EventStore::new(&svc, Some("from-event"), &settings, &cache);
        let r = store.put_request(PutSecretValueRequest::default());
        assert_eq!(r.rotation_token.as_deref(), Some("from-event"));
        let r = store.put_request(PutSecretValueRequest {
            rotation_token: Some("explicit".into()),
            ..Default::default()
        });
        assert_eq!(r.rotation_token.as_deref(), Some("explicit"));
        let none = EventStore::new(&svc, None, &settings, &cache);
        assert_eq!(
            none.put_request(PutSecretValueRequest::default())
                .rotation_token,
            None
        );
    }

    #[tokio::test]
    async fn password_switches_override_the_targets() {
        let svc = service();
        let settings = PasswordSettings {
            exclude_numbers: Some(true),
            exclude_punctuation: Some(true),
            exclude_uppercase: Some(true),
            ..Default::default()
        };
        let cache = ValueCache::default();
        let store = EventStore::new(&svc, None, &settings, &cache);
        let req = GetRandomPasswordRequest {
            password_length: Some(64),
            exclude_numbers: Some(false),
            exclude_lowercase: Some(false),
            ..Default::default()
        };
        let r = store.password_request(req.clone());
        assert_eq!(r.exclude_numbers, Some(true));
        assert_eq!(
            r.exclude_lowercase,
            Some(false),
            "unset switches keep the target's"
        );
        assert_eq!(r.password_length, Some(64));
        let p = store.get_random_password(req).await.unwrap();
        let p = p.random_password.expose_secret().to_string();
        assert_eq!(p.len(), 64);
        assert!(
            p.chars().all(|c| c.is_ascii_lowercase()),
            "only lowercase may remain"
        );
    }

    /// Counts the calls that reach the service, by operation.
    struct Counting {
        svc: SecretsService<MemoryBackend>,
        calls: Mutex<std::collections::BTreeMap<&'static str, u32>>,
    }

    impl Counting {
        fn new() -> Self {
            Counting {
                svc: service(),
                calls: Mutex::new(Default::default()),
            }
        }
        fn hit(&self, op: &'static str) {
            *self.calls.lock().unwrap().entry(op).or_default() += 1;
        }
        fn count(&self, op: &str) -> u32 {
            self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
        }
    }

    #[async_trait]
    impl SecretsApi for Counting {
        async fn create_secret(
            &self,
            r: CreateSecretRequest,
        ) -> Result<CreateSecretResponse, SmError> {
            self.svc.create_secret(r).await
        }
        async fn get_secret_value(
            &self,
            r: GetSecretValueRequest,
        ) -> Result<GetSecretValueResponse, SmError> {
            self.hit("GetSecretValue");
            self.svc.get_secret_value(r).await
        }
        async fn put_secret_value(
            &self,
            r: PutSecretValueRequest,
        ) -> Result<PutSecretValueResponse, SmError> {
            self.hit("PutSecretValue");
            self.svc.put_secret_value(r).await
        }
        async fn update_secret(
            &self,
            r: UpdateSecretRequest,
        ) -> Result<UpdateSecretResponse, SmError> {
            self.svc.update_secret(r).await
        }
        async fn update_secret_version_stage(
            &self,
            r: UpdateSecretVersionStageRequest,
        ) -> Result<ArnName, SmError> {
            self.hit("UpdateSecretVersionStage");
            self.svc.update_secret_version_stage(r).await
        }
        async fn describe_secret(
            &self,
            r: SecretIdRequest,
        ) -> Result<DescribeSecretResponse, SmError> {
            self.hit("DescribeSecret");
            self.svc.describe_secret(r).await
        }
        async fn list_secrets(
            &self,
            r: ListSecretsRequest,
        ) -> Result<ListSecretsResponse, SmError> {
            self.svc.list_secrets(r).await
        }
        async fn list_secret_version_ids(
            &self,
            r: ListSecretVersionIdsRequest,
        ) -> Result<ListSecretVersionIdsResponse, SmError> {
            self.svc.list_secret_version_ids(r).await
        }
        async fn delete_secret(
            &self,
            r: DeleteSecretRequest,
        ) -> Result<DeleteSecretResponse, SmError> {
            self.svc.delete_secret(r).await
        }
        async fn restore_secret(&self, r: SecretIdRequest) -> Result<ArnName, SmError> {
            self.svc.restore_secret(r).await
        }
        async fn tag_resource(&self, r: TagResourceRequest) -> Result<Empty, SmError> {
            self.svc.tag_resource(r).await
        }
        async fn untag_resource(&self, r: UntagResourceRequest) -> Result<Empty, SmError> {
            self.svc.untag_resource(r).await
        }
        async fn get_random_password(
            &self,
            r: GetRandomPasswordRequest,
        ) -> Result<GetRandomPasswordResponse, SmError> {
            self.hit("GetRandomPassword");
            self.svc.get_random_password(r).await
        }
    }

    const CURRENT: &str = "current-value-7c1e";
    const NEW: &str = "pending-value-93bd";

    /// A secret with an AWSCURRENT version; returns its ARN and that version's id.
    async fn secret(api: &Counting) -> (String, String) {
        let r = api
            .create_secret(CreateSecretRequest {
                name: "app/db".into(),
                client_request_token: Some("00000000-1111-4222-8333-444444444444".into()),
                secret_string: Some(SecretString::from(CURRENT)),
                ..Default::default()
            })
            .await
            .unwrap();
        (r.arn, r.version_id.unwrap())
    }

    fn by_stage(arn: &str, stage: &str) -> GetSecretValueRequest {
        GetSecretValueRequest {
            secret_id: arn.into(),
            version_id: None,
            version_stage: Some(stage.into()),
        }
    }

    fn describe(arn: &str) -> SecretIdRequest {
        SecretIdRequest {
            secret_id: arn.into(),
        }
    }

    fn text(r: &GetSecretValueResponse) -> String {
        r.secret_string
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string()
    }

    #[tokio::test]
    async fn passwords_are_drawn_locally_with_the_policy() {
        let api = Counting::new();
        let settings = PasswordSettings::default();
        let cache = ValueCache::default();
        let store = EventStore::new(&api, None, &settings, &cache);
        let p = store
            .get_random_password(GetRandomPasswordRequest {
                password_length: Some(40),
                exclude_characters: Some("/@\"'\\:abc".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let p = p.random_password.expose_secret().to_string();
        assert_eq!(api.count("GetRandomPassword"), 0, "no round trip");
        assert_eq!(p.chars().count(), 40);
        assert!(
            !p.chars().any(|c| "/@\"'\\:abc".contains(c)),
            "exclusions kept"
        );
        for class in [
            keyroll_core::password::LOWERCASE,
            keyroll_core::password::UPPERCASE,
            keyroll_core::password::NUMBERS,
            keyroll_core::password::PUNCTUATION,
        ] {
            assert!(
                p.chars().any(|c| class.contains(c)),
                "each class is included"
            );
        }
        let e = store
            .get_random_password(GetRandomPasswordRequest {
                password_length: Some(0),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("passwordLength"), "{e}");
    }

    #[tokio::test]
    async fn one_describe_per_event_and_values_read_once_per_container() {
        let api = Counting::new();
        let (arn, v1) = secret(&api).await;
        let settings = PasswordSettings::default();
        let cache = ValueCache::default();

        let event = EventStore::new(&api, None, &settings, &cache);
        let d = event.describe_secret(describe(&arn)).await.unwrap();
        let again = event.describe_secret(describe("app/db")).await.unwrap();
        assert_eq!(d.version_ids_to_stages, again.version_ids_to_stages);
        assert_eq!(
            api.count("DescribeSecret"),
            1,
            "by ARN or name, once per event"
        );
        let r = event
            .get_secret_value(by_stage(&arn, AWSCURRENT))
            .await
            .unwrap();
        assert_eq!(
            (text(&r), r.version_id.as_str()),
            (CURRENT.into(), v1.as_str())
        );
        event
            .get_secret_value(by_stage(&arn, AWSCURRENT))
            .await
            .unwrap();
        assert_eq!(api.count("GetSecretValue"), 1);

        // The next event of the warm container describes again but reads nothing.
        let next = EventStore::new(&api, None, &settings, &cache);
        next.describe_secret(describe(&arn)).await.unwrap();
        assert_eq!(api.count("DescribeSecret"), 2, "each event describes once");
        let r = next
            .get_secret_value(GetSecretValueRequest {
                secret_id: arn.clone(),
                version_id: Some(v1.clone()),
                version_stage: None,
            })
            .await
            .unwrap();
        assert_eq!(r.version_stages, vec![AWSCURRENT.to_string()]);
        assert_eq!(api.count("GetSecretValue"), 1);

        // A label the version does not hold is the service's to refuse.
        next.get_secret_value(GetSecretValueRequest {
            secret_id: arn.clone(),
            version_id: Some(v1.clone()),
            version_stage: Some("AWSPENDING".into()),
        })
        .await
        .unwrap_err();
        assert_eq!(api.count("GetSecretValue"), 2);

        // Without this event's description, reads go to the service.
        let blind = EventStore::new(&api, None, &settings, &cache);
        blind
            .get_secret_value(by_stage(&arn, AWSCURRENT))
            .await
            .unwrap();
        assert_eq!(api.count("GetSecretValue"), 3);
    }

    #[tokio::test]
    async fn written_values_and_moved_labels_are_followed() {
        let api = Counting::new();
        let (arn, v1) = secret(&api).await;
        let settings = PasswordSettings::default();
        let cache = ValueCache::default();
        let token = "11111111-2222-4333-8444-555555555555";

        let create = EventStore::new(&api, Some("rot"), &settings, &cache);
        create.describe_secret(describe(&arn)).await.unwrap();
        create
            .put_secret_value(PutSecretValueRequest {
                secret_id: arn.clone(),
                client_request_token: Some(token.into()),
                secret_string: Some(SecretString::from(NEW)),
                version_stages: Some(vec!["AWSPENDING".into()]),
                ..Default::default()
            })
            .await
            .unwrap();
        let r = create
            .get_secret_value(by_stage(&arn, "AWSPENDING"))
            .await
            .unwrap();
        assert_eq!((text(&r), r.version_id.as_str()), (NEW.into(), token));
        assert_eq!(api.count("GetSecretValue"), 0, "the written value is known");

        let finish = EventStore::new(&api, None, &settings, &cache);
        finish.describe_secret(describe(&arn)).await.unwrap();
        finish
            .update_secret_version_stage(UpdateSecretVersionStageRequest {
                secret_id: arn.clone(),
                version_stage: AWSCURRENT.into(),
                move_to_version_id: Some(token.into()),
                remove_from_version_id: Some(v1.clone()),
            })
            .await
            .unwrap();
        // v1 was only ever written by create_secret here: read once, then known.
        let prev = finish
            .get_secret_value(by_stage(&arn, AWSPREVIOUS))
            .await
            .unwrap();
        assert_eq!(
            (text(&prev), prev.version_id.as_str()),
            (CURRENT.into(), v1.as_str())
        );
        let cur = finish
            .get_secret_value(by_stage(&arn, AWSCURRENT))
            .await
            .unwrap();
        assert_eq!((text(&cur), cur.version_id.as_str()), (NEW.into(), token));
        assert_eq!(api.count("GetSecretValue"), 1);
        // The remembered labels match the service's.
        let mine = finish.describe_secret(describe(&arn)).await.unwrap();
        let theirs = api.svc.describe_secret(describe(&arn)).await.unwrap();
        let labels = |d: &DescribeSecretResponse| {
            let mut m = d.version_ids_to_stages.clone().unwrap_or_default();
            m.values_mut().for_each(|v| v.sort());
            m
        };
        assert_eq!(labels(&mine), labels(&theirs));
    }

    #[test]
    fn the_cache_is_bounded_and_never_shows_a_value() {
        let cache = ValueCache::new(2);
        for v in ["a", "b", "c"] {
            cache.insert(CachedValue {
                arn: "arn".into(),
                name: "n".into(),
                version_id: v.into(),
                secret_string: Some(SecretString::from(format!("{CURRENT}-{v}"))),
                secret_binary: None,
                created_date: Timestamp::default(),
            });
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("arn", "a").is_none(), "the oldest is dropped");
        assert!(cache.get("arn", "c").is_some());
        assert!(cache.get("other-arn", "c").is_none(), "keyed by ARN too");
        assert!(!format!("{cache:?}").contains(CURRENT));
    }
}
