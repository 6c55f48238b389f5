//! Temporary credentials: issuing them (`ASIA…` key, 40-character secret, long session
//! token), keeping them in the store so that a restart keeps valid sessions, and forgetting
//! them at expiry.
//!
//! Each session is a secret named `session/<ACCESS_KEY_ID>` in the internal region
//! [`INTERNAL_REGION`]: its value (secret key, session token, who the session is) is
//! encrypted at rest by the store like any secret value, and its expiry is a tag, so expired
//! sessions are found without decrypting anything. No API caller can reach that region: a
//! region comes from the SigV4 credential scope or a replica region name, and both accept
//! only lower-case letters, digits and `-`, while the internal name starts with `_`.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyroll_core::api::{CreateSecretRequest, DeleteSecretRequest, GetSecretValueRequest};
use keyroll_core::model::Tag;
use keyroll_core::ports::SecretsApi;
use keyroll_core::service::Backend;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeroize::Zeroize;

use crate::credentials::AccessKey;
use crate::identity::{Principal, PrincipalKind};
use crate::regions::Regions;
use crate::server::App;
use crate::sts::xml::StsError;

/// The store region that holds sessions (a name no request can carry).
pub const INTERNAL_REGION: &str = "_keyroll-sts";
const NAME_PREFIX: &str = "session/";
const EXPIRES_TAG: &str = "keyroll:sts-expires";
/// How often expired sessions are purged in the background.
pub const PURGE_INTERVAL_SECS: u64 = 60;

/// Whether `region` is internal to keyroll (never listed, never reachable by a request).
pub fn is_internal_region(region: &str) -> bool {
    region.starts_with('_')
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_chars(alphabet: &[u8], n: usize) -> Result<String, StsError> {
    debug_assert!(alphabet.len().is_power_of_two());
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes).map_err(|e| {
        StsError::internal(format!(
            "cannot draw random bytes from the operating system: {e}"
        ))
    })?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[(*b as usize) & (alphabet.len() - 1)] as char)
        .collect())
}

/// A fresh temporary key: `ASIA` + 16 characters of `[A-Z2-7]`, a 40-character secret and
/// a 356-character session token.
pub fn generate_key(label: &str) -> Result<AccessKey, StsError> {
    Ok(AccessKey {
        access_key_id: format!("ASIA{}", random_chars(KEY_ALPHABET, 16)?),
        secret_access_key: SecretString::from(random_chars(SECRET_ALPHABET, 40)?),
        session_token: Some(SecretString::from(format!(
            "KRSTS{}",
            random_chars(SECRET_ALPHABET, 351)?
        ))),
        name: label.to_string(),
    })
}

/// What a session is, as kept in the store (the principal is rebuilt from the
/// configuration on restore, so a removed user or role takes its sessions with it).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Who {
    /// `GetSessionToken`: the user's own permissions.
    User { user: String },
    /// `AssumeRole`.
    Role {
        role: String,
        session_name: String,
        source_arn: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    who: Who,
    tags: BTreeMap<String, String>,
    mfa_authenticated_at: Option<i64>,
    issued_at: i64,
    expires_at: i64,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.secret_access_key.zeroize();
        self.session_token.zeroize();
    }
}

/// Issued temporary credentials. `Debug` shows neither the secret nor the token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub key: AccessKey,
    pub principal: Arc<Principal>,
    /// Epoch seconds.
    pub expiration: i64,
}

fn who_of(p: &Principal) -> Who {
    match &p.kind {
        PrincipalKind::User => Who::User {
            user: p.name.clone(),
        },
        PrincipalKind::AssumedRole {
            role_name,
            session_name,
            source_arn,
            ..
        } => Who::Role {
            role: role_name.clone(),
            session_name: session_name.clone(),
            source_arn: source_arn.clone(),
        },
    }
}

/// Issues credentials for `principal` (its `issued_at`/`expires_at` are set here): stores
/// them, then makes them usable.
pub async fn issue<R: Regions>(
    app: &App<R>,
    mut principal: Principal,
    now: i64,
    duration_secs: i64,
) -> Result<Issued, StsError> {
    let key = generate_key(&format!("sts:{}", principal.arn))?;
    principal.issued_at = Some(now);
    principal.expires_at = Some(now + duration_secs);
    let stored = Stored {
        version: 1,
        access_key_id: key.access_key_id.clone(),
        secret_access_key: key.secret_access_key.expose_secret().to_string(),
        session_token: key
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_string())
            .unwrap_or_default(),
        who: who_of(&principal),
        tags: principal.tags.clone(),
        mfa_authenticated_at: principal.mfa_authenticated_at,
        issued_at: now,
        expires_at: now + duration_secs,
    };
    let value = zeroize::Zeroizing::new(
        serde_json::to_string(&stored)
            .map_err(|e| StsError::internal(format!("cannot encode the session: {e}")))?,
    );
    let svc = app
        .store
        .internal_region(INTERNAL_REGION)
        .map_err(|e| StsError::internal(format!("cannot open the session store: {e}")))?;
    let req = CreateSecretRequest {
        name: format!("{NAME_PREFIX}{}", key.access_key_id),
        client_request_token: Some(keyroll_core::ids::new_token()),
        description: Some(format!("keyroll STS session of {}", principal.arn)),
        secret_string: Some(SecretString::from(value.as_str())),
        tags: Some(vec![Tag {
            key: EXPIRES_TAG.into(),
            value: (now + duration_secs).to_string(),
        }]),
        ..Default::default()
    };
    crate::dispatch::off_worker(svc.create_secret(req))
        .await
        .map_err(|e| StsError::internal(format!("cannot store the session: {e}")))?;
    let principal = Arc::new(principal);
    app.keys.insert_temporary(key.clone(), principal.clone());
    Ok(Issued {
        key,
        principal,
        expiration: now + duration_secs,
    })
}

/// The principal of a stored session, rebuilt from today's configuration; `None` when its
/// user or role is no longer configured.
fn rebuild<R: Regions>(app: &App<R>, s: &Stored) -> Option<Principal> {
    let mut p = match &s.who {
        Who::User { user } => {
            let configured = app
                .config
                .access_keys
                .iter()
                .find(|k| k.name.as_deref() == Some(user.as_str()))
                .and_then(|k| app.keys.get(&k.access_key_id))
                .map(|c| c.principal.clone());
            // Without [[access_keys]], the generated admin key's user.
            let base = configured.or_else(|| {
                app.keys
                    .primary_principal()
                    .filter(|p| p.name == *user && p.issued_at.is_none())
            })?;
            let mut p = (*base).clone();
            p.tags = s.tags.clone();
            p
        }
        Who::Role {
            role,
            session_name,
            source_arn,
        } => {
            let role = app.sts.role(role)?;
            role.session_principal(
                &app.config.account,
                session_name,
                source_arn,
                s.tags.clone(),
            )
        }
    };
    p.mfa_authenticated_at = s.mfa_authenticated_at;
    p.issued_at = Some(s.issued_at);
    p.expires_at = Some(s.expires_at);
    Some(p)
}

fn expiry_of(tags: &[Tag]) -> Option<i64> {
    tags.iter()
        .find(|t| t.key == EXPIRES_TAG)
        .and_then(|t| t.value.parse().ok())
}

/// Loads the stored sessions that are still valid at `now` into the key store (at start);
/// deletes the expired ones and those whose user or role is gone. Returns how many were
/// loaded.
pub async fn restore<R: Regions>(app: &App<R>, now: i64) -> Result<usize, StsError> {
    let svc = app
        .store
        .internal_region(INTERNAL_REGION)
        .map_err(|e| StsError::internal(format!("cannot open the session store: {e}")))?;
    let mut names = Vec::new();
    svc.backend()
        .for_each(&mut |r| {
            if !r.is_deleted() && r.name.starts_with(NAME_PREFIX) {
                names.push((r.name.clone(), expiry_of(&r.tags)));
            }
        })
        .map_err(|e| StsError::internal(format!("cannot list stored sessions: {e}")))?;
    let mut loaded = 0;
    for (name, expiry) in names {
        let keep = match expiry {
            Some(t) if t > now => {
                let value = svc
                    .get_secret_value(GetSecretValueRequest {
                        secret_id: name.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| StsError::internal(format!("cannot read a session: {e}")))?;
                let parsed = value
                    .secret_string
                    .as_ref()
                    .and_then(|v| serde_json::from_str::<Stored>(v.expose_secret()).ok());
                match parsed.as_ref().and_then(|s| Some((s, rebuild(app, s)?))) {
                    Some((s, principal)) => {
                        app.keys.insert_temporary(
                            AccessKey {
                                access_key_id: s.access_key_id.clone(),
                                secret_access_key: SecretString::from(s.secret_access_key.as_str()),
                                session_token: Some(SecretString::from(s.session_token.as_str())),
                                name: format!("sts:{}", principal.arn),
                            },
                            Arc::new(principal),
                        );
                        loaded += 1;
                        true
                    }
                    None => {
                        tracing::info!(session = %name, "dropping a stored STS session whose user or role is no longer configured");
                        false
                    }
                }
            }
            _ => false,
        };
        if !keep {
            delete(&svc, &name).await?;
        }
    }
    Ok(loaded)
}

async fn delete<B: Backend + 'static>(
    svc: &keyroll_core::service::SecretsService<B>,
    name: &str,
) -> Result<(), StsError> {
    let r = crate::dispatch::off_worker(svc.delete_secret(DeleteSecretRequest {
        secret_id: name.to_string(),
        recovery_window_in_days: None,
        force_delete_without_recovery: Some(true),
    }))
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(StsError::internal(format!(
            "cannot delete an expired session: {e}"
        ))),
    }
}

/// Forgets the sessions expired at `now`, in the key store and in the store. Returns how
/// many stored sessions were deleted.
pub async fn purge<R: Regions>(app: &App<R>, now: i64) -> Result<usize, StsError> {
    app.keys.purge_expired(now);
    let svc = app
        .store
        .internal_region(INTERNAL_REGION)
        .map_err(|e| StsError::internal(format!("cannot open the session store: {e}")))?;
    let mut expired = Vec::new();
    svc.backend()
        .for_each(&mut |r| {
            if !r.is_deleted()
                && r.name.starts_with(NAME_PREFIX)
                && expiry_of(&r.tags).is_none_or(|t| t <= now)
            {
                expired.push(r.name.clone());
            }
        })
        .map_err(|e| StsError::internal(format!("cannot list stored sessions: {e}")))?;
    for name in &expired {
        delete(&svc, name).await?;
    }
    Ok(expired.len())
}

/// Restores stored sessions, then purges expired ones every [`PURGE_INTERVAL_SECS`] until
/// `stop` (the server's task).
pub async fn maintain<R: Regions>(app: Arc<App<R>>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(PURGE_INTERVAL_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = app.auth_clock.now().millis().div_euclid(1000);
        match purge(&app, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "expired STS sessions purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired STS sessions failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_aws_temporary_keys() {
        let k = generate_key("t").unwrap();
        assert!(k.access_key_id.starts_with("ASIA"));
        assert_eq!(k.access_key_id.len(), 20);
        assert!(
            k.access_key_id[4..]
                .bytes()
                .all(|b| KEY_ALPHABET.contains(&b))
        );
        assert_eq!(k.secret_access_key.expose_secret().len(), 40);
        let token = k
            .session_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string();
        assert!(token.len() >= 300);
        let debug = format!("{k:?}");
        assert!(!debug.contains(k.secret_access_key.expose_secret()));
        assert!(!debug.contains(&token));
        assert_ne!(generate_key("t").unwrap().access_key_id, k.access_key_id);
        assert!(is_internal_region(INTERNAL_REGION));
        assert!(!is_internal_region("us-east-1"));
    }
}
