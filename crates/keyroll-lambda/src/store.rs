//! The Secrets Manager view of one event: every call goes to the real store, except that
//! `PutSecretValue` carries the event's `RotationToken` and `GetRandomPassword` the
//! function's password settings.

use async_trait::async_trait;
use keyroll_core::SmError;
use keyroll_core::api::*;
use keyroll_core::ports::SecretsApi;

use crate::settings::PasswordSettings;

/// Wraps the store for the duration of one event.
pub struct EventStore<'a> {
    inner: &'a dyn SecretsApi,
    rotation_token: Option<&'a str>,
    password: &'a PasswordSettings,
}

impl<'a> EventStore<'a> {
    pub fn new(
        inner: &'a dyn SecretsApi,
        rotation_token: Option<&'a str>,
        password: &'a PasswordSettings,
    ) -> Self {
        EventStore {
            inner,
            rotation_token,
            password,
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
        self.inner.get_secret_value(req).await
    }
    async fn put_secret_value(
        &self,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, SmError> {
        self.inner.put_secret_value(self.put_request(req)).await
    }
    async fn update_secret(
        &self,
        req: UpdateSecretRequest,
    ) -> Result<UpdateSecretResponse, SmError> {
        self.inner.update_secret(req).await
    }
    async fn update_secret_version_stage(
        &self,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<ArnName, SmError> {
        self.inner.update_secret_version_stage(req).await
    }
    async fn describe_secret(
        &self,
        req: SecretIdRequest,
    ) -> Result<DescribeSecretResponse, SmError> {
        self.inner.describe_secret(req).await
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
        self.inner.delete_secret(req).await
    }
    async fn restore_secret(&self, req: SecretIdRequest) -> Result<ArnName, SmError> {
        self.inner.restore_secret(req).await
    }
    async fn tag_resource(&self, req: TagResourceRequest) -> Result<Empty, SmError> {
        self.inner.tag_resource(req).await
    }
    async fn untag_resource(&self, req: UntagResourceRequest) -> Result<Empty, SmError> {
        self.inner.untag_resource(req).await
    }
    async fn get_random_password(
        &self,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, SmError> {
        self.inner
            .get_random_password(self.password_request(req))
            .await
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
        let store = EventStore::new(&svc, Some("from-event"), &settings);
        let r = store.put_request(PutSecretValueRequest::default());
        assert_eq!(r.rotation_token.as_deref(), Some("from-event"));
        let r = store.put_request(PutSecretValueRequest {
            rotation_token: Some("explicit".into()),
            ..Default::default()
        });
        assert_eq!(r.rotation_token.as_deref(), Some("explicit"));
        let none = EventStore::new(&svc, None, &settings);
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
        let store = EventStore::new(&svc, None, &settings);
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
}
