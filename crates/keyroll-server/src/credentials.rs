//! Access keys the server accepts, and the admin key pair written on first start to
//! `<data-dir>/credentials` in the AWS shared-credentials file format.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::identity::Principal;

use secrecy::{ExposeSecret, SecretString};

/// One access key pair. `Debug` never shows the secret or the session token.
#[derive(Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Temporary credentials: requests must carry this `X-Amz-Security-Token`.
    pub session_token: Option<SecretString>,
    /// A label for logs.
    pub name: String,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("name", &self.name)
            .finish()
    }
}

static STORE_IDS: AtomicU64 = AtomicU64::new(1);

/// A key and the principal it signs for.
#[derive(Debug)]
pub struct Credential {
    pub key: AccessKey,
    pub principal: Arc<Principal>,
}

impl Credential {
    /// Whether temporary credentials have expired at `now` (epoch seconds).
    pub fn expired(&self, now: i64) -> bool {
        self.principal.expires_at.is_some_and(|t| now >= t)
    }
}

/// The keys a server accepts, by access key id: the configured ones (fixed at start) and the
/// temporary ones STS issues (added and expired at run time).
#[derive(Debug)]
pub struct KeyStore {
    /// Distinguishes stores in the per-thread signing-key cache.
    pub(crate) id: u64,
    keys: HashMap<String, Arc<Credential>>,
    order: Vec<String>,
    temporary: RwLock<HashMap<String, Arc<Credential>>>,
}

impl KeyStore {
    /// Keys without configured principals: each is an admin user named after the key's name
    /// (the generated first-start key, and tests).
    pub fn new(keys: Vec<AccessKey>) -> Self {
        Self::admins("000000000000", keys)
    }

    /// Keys that are each an admin user of `account`, named after the key's name.
    pub fn admins(account: &str, keys: Vec<AccessKey>) -> Self {
        Self::with_principals(
            keys.into_iter()
                .map(|k| {
                    let p = Arc::new(Principal::admin(account, &k.name));
                    (k, p)
                })
                .collect(),
        )
    }

    /// Keys with their principals.
    pub fn with_principals(keys: Vec<(AccessKey, Arc<Principal>)>) -> Self {
        let order = keys.iter().map(|(k, _)| k.access_key_id.clone()).collect();
        KeyStore {
            id: STORE_IDS.fetch_add(1, Ordering::Relaxed),
            keys: keys
                .into_iter()
                .map(|(key, principal)| {
                    (
                        key.access_key_id.clone(),
                        Arc::new(Credential { key, principal }),
                    )
                })
                .collect(),
            order,
            temporary: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        if let Some(c) = self.keys.get(access_key_id) {
            return Some(c.clone());
        }
        self.temporary
            .read()
            .ok()
            .and_then(|t| t.get(access_key_id).cloned())
    }

    /// Adds temporary credentials (an STS session).
    pub fn insert_temporary(&self, key: AccessKey, principal: Arc<Principal>) {
        if let Ok(mut t) = self.temporary.write() {
            t.insert(
                key.access_key_id.clone(),
                Arc::new(Credential { key, principal }),
            );
        }
    }

    /// Forgets one temporary credential at once (e.g. a rotation function's, when its step
    /// ends).
    pub fn remove_temporary(&self, access_key_id: &str) {
        if let Ok(mut t) = self.temporary.write() {
            t.remove(access_key_id);
        }
    }

    /// Forgets temporary credentials expired at `now` (epoch seconds); returns how many.
    pub fn purge_expired(&self, now: i64) -> usize {
        match self.temporary.write() {
            Ok(mut t) => {
                let before = t.len();
                t.retain(|_, c| !c.expired(now));
                before - t.len()
            }
            Err(_) => 0,
        }
    }

    /// The number of temporary credentials held.
    pub fn temporary_count(&self) -> usize {
        self.temporary.read().map(|t| t.len()).unwrap_or(0)
    }

    /// The first key (the admin key when generated): what external rotation functions get.
    pub fn primary(&self) -> Option<&AccessKey> {
        self.order
            .first()
            .and_then(|id| self.keys.get(id))
            .map(|c| &c.key)
    }

    /// The principal of the first configured admin key, if any.
    pub fn primary_principal(&self) -> Option<Arc<Principal>> {
        self.order
            .first()
            .and_then(|id| self.keys.get(id))
            .map(|c| c.principal.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of configured keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the credentials file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the credentials file {path} has no [default] profile with aws_access_key_id and \
         aws_secret_access_key; fix it, or delete it to have a new admin key generated"
    )]
    Incomplete { path: PathBuf },
    #[error("cannot draw random bytes from the operating system: {0}")]
    Random(String),
}

const ALNUM_UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_chars(alphabet: &[u8], n: usize) -> Result<String, CredentialsError> {
    // Both alphabets have a power-of-two size, so masking is unbiased.
    debug_assert!(alphabet.len().is_power_of_two());
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| CredentialsError::Random(e.to_string()))?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[(*b as usize) & (alphabet.len() - 1)] as char)
        .collect())
}

/// A fresh admin key pair: `AKKR` + 16 characters, and a 40-character secret, like AWS's.
pub fn generate_key(name: &str) -> Result<AccessKey, CredentialsError> {
    Ok(AccessKey {
        access_key_id: format!("AKKR{}", random_chars(ALNUM_UPPER, 16)?),
        secret_access_key: SecretString::from(random_chars(SECRET_ALPHABET, 40)?),
        session_token: None,
        name: name.to_string(),
    })
}

/// A random session token (80 characters of the secret-key alphabet).
pub fn generate_session_token() -> Result<SecretString, CredentialsError> {
    Ok(SecretString::from(random_chars(SECRET_ALPHABET, 80)?))
}

/// Reads the `[default]` profile of a shared-credentials file.
pub fn read_credentials_file(path: &Path) -> Result<AccessKey, CredentialsError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        CredentialsError::Read {
            path: path.into(),
            source,
        }
    })?);
    let mut in_default = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_default = l == "[default]";
            continue;
        }
        if !in_default {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(SecretString::from(v)),
                "aws_session_token" => token = Some(SecretString::from(v)),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(AccessKey {
            access_key_id,
            secret_access_key,
            session_token: token,
            name: "admin".into(),
        }),
        _ => Err(CredentialsError::Incomplete { path: path.into() }),
    }
}

/// Writes a shared-credentials file (profile `default`) with mode 0600.
pub fn write_credentials_file(path: &Path, key: &AccessKey) -> Result<(), CredentialsError> {
    use std::io::Write;
    let err = |source| CredentialsError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(err)?;
    let text = zeroize::Zeroizing::new(format!(
        "# keyroll admin credentials, generated on first start. Use with\n\
         #   AWS_SHARED_CREDENTIALS_FILE={} aws --endpoint-url http://HOST:PORT secretsmanager ...\n\
         [default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        path.display(),
        key.access_key_id,
        key.secret_access_key.expose_secret()
    ));
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(())
}

/// The admin key of `data_dir`: read from `<data_dir>/credentials`, or generated and written
/// there on first start. Returns the key and whether it was generated now.
pub fn admin_key(data_dir: &Path) -> Result<(AccessKey, bool), CredentialsError> {
    let path = credentials_path(data_dir);
    if path.exists() {
        return Ok((read_credentials_file(&path)?, false));
    }
    let key = generate_key("admin")?;
    write_credentials_file(&path, &key)?;
    Ok((key, true))
}

pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_the_file_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (k, fresh) = admin_key(dir.path()).unwrap();
        assert!(fresh);
        assert_eq!(k.access_key_id.len(), 20);
        assert_eq!(k.secret_access_key.expose_secret().len(), 40);
        let (again, fresh) = admin_key(dir.path()).unwrap();
        assert!(!fresh);
        assert_eq!(again.access_key_id, k.access_key_id);
        assert_eq!(
            again.secret_access_key.expose_secret(),
            k.secret_access_key.expose_secret()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(credentials_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{k:?}").contains(k.secret_access_key.expose_secret()));
    }
}
