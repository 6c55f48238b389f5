//! Where the master key comes from: `KEYROLL_MASTER_KEY`, a key file, or the caller.
//!
//! Text format (environment variable and key file alike): the standard base64 of 32 bytes
//! (padding optional), or 64 hex characters; surrounding whitespace is ignored. A key file
//! keyroll creates holds the base64 form and a newline, mode 0600.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use super::crypto::{KEY_LEN, Key};
use super::error::StoreError;

/// The environment variable holding the master key.
pub const MASTER_KEY_ENV: &str = "KEYROLL_MASTER_KEY";
/// The key file's name inside the data directory.
pub const KEY_FILE_NAME: &str = "master.key";

/// Where [`super::EmbeddedStore::open`] takes the master key from.
pub enum MasterKeySource {
    /// `KEYROLL_MASTER_KEY` if set, else `<data-dir>/master.key` (created with mode 0600,
    /// holding a fresh random key, when the data directory has no database yet).
    Auto,
    /// This key.
    Explicit(SecretBox<[u8; KEY_LEN]>),
    /// This key file; created like `master.key` when absent and the database is new.
    File(PathBuf),
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterKeySource::Auto => f.write_str("Auto"),
            MasterKeySource::Explicit(_) => f.write_str("Explicit([REDACTED])"),
            MasterKeySource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

impl MasterKeySource {
    /// An explicit key from its text form (base64 of 32 bytes, or 64 hex characters).
    pub fn from_text(text: &str) -> Result<MasterKeySource, StoreError> {
        let key = parse_key_text(text).map_err(|reason| StoreError::MalformedKey { reason })?;
        Ok(MasterKeySource::Explicit(SecretBox::init_with_mut(
            |b: &mut [u8; KEY_LEN]| b.copy_from_slice(key.expose()),
        )))
    }
}

/// How `MasterKeySource::Auto` reads environment variables; tests inject their own.
#[derive(Clone)]
pub struct Env(Arc<Lookup>);

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env(Arc::new(|name| std::env::var(name).ok()))
    }

    /// No variables at all.
    pub fn empty() -> Env {
        Env(Arc::new(|_| None))
    }

    /// Variables from `pairs` only.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        let map: std::collections::HashMap<String, Zeroizing<String>> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Zeroizing::new(v.into())))
            .collect();
        Env(Arc::new(move |name| {
            map.get(name).map(|v| v.as_str().to_string())
        }))
    }

    pub fn get(&self, name: &str) -> Option<Zeroizing<String>> {
        (self.0)(name).map(Zeroizing::new)
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::process()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Env")
    }
}

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Parses the text form of a key. The error says what is wrong without quoting the text.
pub fn parse_key_text(text: &str) -> Result<Key, &'static str> {
    let t = text.trim();
    if t.is_empty() {
        return Err("it is empty");
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    if t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode_to_slice(t, bytes.as_mut_slice()).map_err(|_| "invalid hex")?;
        return Ok(Key::from_bytes(bytes));
    }
    let decoded = Zeroizing::new(
        base64_engine()
            .decode(t.as_bytes())
            .map_err(|_| "it is neither 64 hex characters nor valid base64")?,
    );
    if decoded.len() != KEY_LEN {
        return Err("it decodes to a length other than 32 bytes");
    }
    bytes.copy_from_slice(&decoded);
    Ok(Key::from_bytes(bytes))
}

/// The text form keyroll writes: standard base64 and a newline.
fn key_text(key: &Key) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(46));
    base64::engine::general_purpose::STANDARD.encode_string(key.expose(), &mut s);
    s.push('\n');
    s
}

/// Resolves the master key. `may_create`: the database holds no key check yet, so a missing
/// key file may be created with a fresh key.
pub fn resolve(
    source: &MasterKeySource,
    env: &Env,
    data_dir: &Path,
    may_create: bool,
) -> Result<Key, StoreError> {
    match source {
        MasterKeySource::Explicit(k) => Ok(Key::from_bytes(Zeroizing::new(*k.expose_secret()))),
        MasterKeySource::File(path) => key_file(path, data_dir, may_create),
        MasterKeySource::Auto => match env.get(MASTER_KEY_ENV) {
            Some(text) => {
                parse_key_text(&text).map_err(|reason| StoreError::MalformedEnvKey { reason })
            }
            None => key_file(&data_dir.join(KEY_FILE_NAME), data_dir, may_create),
        },
    }
}

fn key_file(path: &Path, data_dir: &Path, may_create: bool) -> Result<Key, StoreError> {
    match read_key_file(path)? {
        Some(k) => Ok(k),
        None if may_create => create_key_file(path),
        None => Err(StoreError::MissingMasterKey {
            data_dir: data_dir.to_path_buf(),
            key_file: path.to_path_buf(),
        }),
    }
}

fn read_key_file(path: &Path) -> Result<Option<Key>, StoreError> {
    let io = |source| StoreError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mode = file.metadata().map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the master key file is readable by other users; restrict it with chmod 600"
        );
    }
    // Room for more than the limit, so reading never reallocates (and leaves no copy behind).
    let mut raw = Zeroizing::new(Vec::with_capacity(4097));
    Read::take(&mut file, 4096)
        .read_to_end(&mut raw)
        .map_err(io)?;
    let text = std::str::from_utf8(&raw).map_err(|_| StoreError::MalformedKeyFile {
        path: path.to_path_buf(),
        reason: "it is not text",
    })?;
    parse_key_text(text)
        .map(Some)
        .map_err(|reason| StoreError::MalformedKeyFile {
            path: path.to_path_buf(),
            reason,
        })
}

/// Creates `path` holding a fresh key, atomically: the key is written and synced to a
/// private temporary file (mode 0600, `O_EXCL`), which is then hard-linked to `path` — a
/// link never replaces an existing file, so when two processes race, one key wins and both
/// use it, and a crash never leaves a half-written key file behind.
fn create_key_file(path: &Path) -> Result<Key, StoreError> {
    let io = |source| StoreError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let key = Key::random().map_err(|e| StoreError::Random(e.to_string()))?;
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(|e| StoreError::Random(e.to_string()))?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(KEY_FILE_NAME);
    let tmp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(tag)));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key_text(&key).as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir).map_err(io)?;
            tracing::info!(path = %path.display(), "created a new master key file (mode 0600)");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process created it first: use theirs.
            read_key_file(path)?.ok_or_else(|| io(e))
        }
        Err(e) => Err(io(e)),
    }
}

/// Makes a directory's entries durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn expected() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn parses_base64_and_hex() {
        assert_eq!(parse_key_text(B64).unwrap().expose(), &expected());
        assert_eq!(
            parse_key_text(B64.trim_end_matches('=')).unwrap().expose(),
            &expected()
        );
        assert_eq!(
            parse_key_text(&format!("  {B64}\n")).unwrap().expose(),
            &expected()
        );
        assert_eq!(parse_key_text(HEX).unwrap().expose(), &expected());
        assert_eq!(
            parse_key_text(&HEX.to_uppercase()).unwrap().expose(),
            &expected()
        );
    }

    #[test]
    fn rejects_malformed_keys_without_quoting_them() {
        for bad in [
            "",
            "   ",
            "not a key!",
            &B64[..20],
            &HEX[..62],
            &format!("{HEX}00"),
        ] {
            let reason = parse_key_text(bad).map(|_| ()).unwrap_err();
            if !bad.trim().is_empty() {
                assert!(!reason.contains(bad.trim()), "{reason}");
            }
        }
    }

    #[test]
    fn key_text_round_trips() {
        let k = Key::random().unwrap();
        let t = key_text(&k);
        assert!(t.ends_with('\n'));
        assert_eq!(parse_key_text(&t).unwrap().expose(), k.expose());
    }

    #[test]
    fn env_lookup_is_injectable() {
        let env = Env::from_pairs([(MASTER_KEY_ENV, HEX)]);
        assert_eq!(
            env.get(MASTER_KEY_ENV).as_deref().map(String::as_str),
            Some(HEX)
        );
        assert!(env.get("OTHER").is_none());
        assert!(Env::empty().get(MASTER_KEY_ENV).is_none());
    }

    #[test]
    fn debug_of_an_explicit_key_is_redacted() {
        let s = MasterKeySource::from_text(HEX).unwrap();
        assert_eq!(format!("{s:?}"), "Explicit([REDACTED])");
    }
}
