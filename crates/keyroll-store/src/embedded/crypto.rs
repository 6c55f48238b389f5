//! Envelope encryption: XChaCha20-Poly1305 everywhere, with a random 24-byte nonce per
//! sealing.
//!
//! - Each secret has its own random 32-byte *data key*. It is stored wrapped (sealed) by the
//!   *master key* with the secret's ARN as associated data.
//! - Each value is sealed by its secret's data key with the ARN, the version id and the value's
//!   kind (string or binary) as associated data, so a ciphertext copied to another secret or
//!   version does not open.
//! - A *key check* (a fixed text sealed by the master key) tells at open time whether the
//!   master key is the one the database was created with.
//!
//! Blob layouts (all integers big-endian):
//!
//! ```text
//! sealed value  = 0x01 | kind (0x00 string, 0x01 binary) | nonce[24] | ciphertext+tag
//! wrapped key   = 0x01 | nonce[24] | ciphertext(32)+tag
//! key check     = 0x01 | nonce[24] | ciphertext+tag
//! ```

use std::fmt;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use keyroll_core::value::SecretValue;
use zeroize::Zeroizing;

/// Length of every key: master and data keys are 256-bit.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const FORMAT_V1: u8 = 1;

const KIND_STRING: u8 = 0;
const KIND_BINARY: u8 = 1;

const DOMAIN_VALUE: &[u8] = b"keyroll/embedded/value/v1";
const DOMAIN_DATA_KEY: &[u8] = b"keyroll/embedded/data-key/v1";
const DOMAIN_KEY_CHECK: &[u8] = b"keyroll/embedded/key-check/v1";
const KEY_CHECK_TEXT: &[u8] = b"keyroll master key check";

/// Why a blob did not open or could not be made. Carries no key or plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the blob is truncated or of an unknown format")]
    Malformed,
    #[error("authentication failed (wrong key, or the blob was moved or altered)")]
    Unauthentic,
    #[error("the stored value is not valid UTF-8 text")]
    NotUtf8,
    #[error("the operating system's random number generator failed")]
    Random,
}

/// A 256-bit key, wiped from memory on drop and never printed.
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl Key {
    /// A fresh key from the OS CSPRNG.
    pub fn random() -> Result<Key, CryptoError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(k.as_mut_slice()).map_err(|_| CryptoError::Random)?;
        Ok(Key(k))
    }

    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Key {
        Key(bytes)
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The cipher; it wipes its own copy of the key on drop.
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// Associated data: a domain string, then each field length-prefixed.
fn associated_data(domain: &[u8], fields: &[&[u8]]) -> Vec<u8> {
    let mut ad =
        Vec::with_capacity(domain.len() + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
    ad.extend_from_slice(domain);
    for f in fields {
        ad.extend_from_slice(&(f.len() as u32).to_be_bytes());
        ad.extend_from_slice(f);
    }
    ad
}

/// `header | nonce | AEAD(plaintext)`.
fn seal(key: &Key, header: &[u8], ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    // `encrypt` copies the plaintext into a buffer sized for the tag and encrypts it in
    // place, so no plaintext copy is left behind.
    let ct = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .map_err(|_| CryptoError::Unauthentic)?;
    let mut out = Vec::with_capacity(header.len() + NONCE_LEN + ct.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens `header | nonce | AEAD(...)` after the caller checked the header.
fn open(
    key: &Key,
    header_len: usize,
    ad: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if blob.len() < header_len + NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let nonce = XNonce::from_slice(&blob[header_len..header_len + NONCE_LEN]);
    key.cipher()
        .decrypt(
            nonce,
            Payload {
                msg: &blob[header_len + NONCE_LEN..],
                aad: ad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Unauthentic)
}

/// Seals the value of version `version_id` of secret `arn` under its data key.
pub fn seal_value(
    data_key: &Key,
    arn: &str,
    version_id: &str,
    value: &SecretValue,
) -> Result<Vec<u8>, CryptoError> {
    let kind = if value.is_binary() {
        KIND_BINARY
    } else {
        KIND_STRING
    };
    let ad = associated_data(
        DOMAIN_VALUE,
        &[arn.as_bytes(), version_id.as_bytes(), &[kind]],
    );
    seal(data_key, &[FORMAT_V1, kind], &ad, value.expose_bytes())
}

/// Opens a value sealed by [`seal_value`] for the same ARN and version id.
pub fn open_value(
    data_key: &Key,
    arn: &str,
    version_id: &str,
    blob: &[u8],
) -> Result<SecretValue, CryptoError> {
    let (&format, rest) = blob.split_first().ok_or(CryptoError::Malformed)?;
    let &kind = rest.first().ok_or(CryptoError::Malformed)?;
    if format != FORMAT_V1 || !matches!(kind, KIND_STRING | KIND_BINARY) {
        return Err(CryptoError::Malformed);
    }
    let ad = associated_data(
        DOMAIN_VALUE,
        &[arn.as_bytes(), version_id.as_bytes(), &[kind]],
    );
    let plain = open(data_key, 2, &ad, blob)?;
    // Copy into an allocation of exactly the right size: `String`/`Vec` -> `Box` conversions
    // then keep it (a shrinking reallocation would free a plaintext copy without wiping it).
    // `plain` is wiped when it drops.
    let mut exact = Vec::with_capacity(plain.len());
    exact.extend_from_slice(&plain);
    if kind == KIND_BINARY {
        return Ok(SecretValue::binary(exact));
    }
    match String::from_utf8(exact) {
        Ok(s) => Ok(SecretValue::string(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(CryptoError::NotUtf8)
        }
    }
}

/// Wraps a secret's data key under the master key, bound to the secret's ARN.
pub fn wrap_key(master: &Key, arn: &str, data_key: &Key) -> Result<Vec<u8>, CryptoError> {
    let ad = associated_data(DOMAIN_DATA_KEY, &[arn.as_bytes()]);
    seal(master, &[FORMAT_V1], &ad, data_key.expose())
}

/// Unwraps a data key wrapped by [`wrap_key`] for the same ARN.
pub fn unwrap_key(master: &Key, arn: &str, blob: &[u8]) -> Result<Key, CryptoError> {
    if blob.first() != Some(&FORMAT_V1) {
        return Err(CryptoError::Malformed);
    }
    let ad = associated_data(DOMAIN_DATA_KEY, &[arn.as_bytes()]);
    let plain = open(master, 1, &ad, blob)?;
    if plain.len() != KEY_LEN {
        return Err(CryptoError::Malformed);
    }
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    k.copy_from_slice(&plain);
    Ok(Key(k))
}

/// A key check value for `master`, stored once per database.
pub fn key_check(master: &Key) -> Result<Vec<u8>, CryptoError> {
    seal(master, &[FORMAT_V1], DOMAIN_KEY_CHECK, KEY_CHECK_TEXT)
}

/// Whether `blob` (from [`key_check`]) was made with `master`.
pub fn verify_key_check(master: &Key, blob: &[u8]) -> Result<bool, CryptoError> {
    if blob.first() != Some(&FORMAT_V1) {
        return Err(CryptoError::Malformed);
    }
    match open(master, 1, DOMAIN_KEY_CHECK, blob) {
        Ok(text) => Ok(text.as_slice() == KEY_CHECK_TEXT),
        Err(CryptoError::Unauthentic) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::random().unwrap()
    }

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf";
    const V1: &str = "11111111-1111-1111-1111-111111111111";
    const V2: &str = "22222222-2222-2222-2222-222222222222";

    #[test]
    fn values_round_trip_with_their_kind() {
        let k = key();
        let s = seal_value(&k, ARN, V1, &SecretValue::string("hello")).unwrap();
        let back = open_value(&k, ARN, V1, &s).unwrap();
        assert_eq!(back.expose_str(), Some("hello"));
        let b = seal_value(&k, ARN, V1, &SecretValue::binary(vec![0, 159, 255])).unwrap();
        let back = open_value(&k, ARN, V1, &b).unwrap();
        assert!(back.is_binary());
        assert_eq!(back.expose_bytes(), &[0, 159, 255]);
    }

    #[test]
    fn a_value_moved_to_another_version_or_secret_does_not_open() {
        let k = key();
        let s = seal_value(&k, ARN, V1, &SecretValue::string("hello")).unwrap();
        assert_eq!(
            open_value(&k, ARN, V2, &s).unwrap_err(),
            CryptoError::Unauthentic
        );
        let other = ARN.replace("app-", "other-");
        assert_eq!(
            open_value(&k, &other, V1, &s).unwrap_err(),
            CryptoError::Unauthentic
        );
        assert_eq!(
            open_value(&key(), ARN, V1, &s).unwrap_err(),
            CryptoError::Unauthentic
        );
    }

    #[test]
    fn flipping_the_kind_or_any_bit_is_detected() {
        let k = key();
        let s = seal_value(&k, ARN, V1, &SecretValue::string("hello")).unwrap();
        let mut kind_flipped = s.clone();
        kind_flipped[1] = KIND_BINARY;
        assert_eq!(
            open_value(&k, ARN, V1, &kind_flipped).unwrap_err(),
            CryptoError::Unauthentic
        );
        for i in 2..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(
                open_value(&k, ARN, V1, &t).is_err(),
                "bit flip at {i} went unnoticed"
            );
        }
        assert_eq!(
            open_value(&k, ARN, V1, &s[..10]).unwrap_err(),
            CryptoError::Malformed
        );
    }

    #[test]
    fn data_keys_are_bound_to_their_secret() {
        let master = key();
        let dk = key();
        let w = wrap_key(&master, ARN, &dk).unwrap();
        assert_eq!(unwrap_key(&master, ARN, &w).unwrap().expose(), dk.expose());
        assert!(unwrap_key(&master, "arn:other", &w).is_err());
        assert!(unwrap_key(&key(), ARN, &w).is_err());
    }

    #[test]
    fn key_check_tells_keys_apart() {
        let master = key();
        let c = key_check(&master).unwrap();
        assert!(verify_key_check(&master, &c).unwrap());
        assert!(!verify_key_check(&key(), &c).unwrap());
        assert!(verify_key_check(&master, b"").is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let k = key();
        let v = SecretValue::string("same");
        assert_ne!(
            seal_value(&k, ARN, V1, &v).unwrap(),
            seal_value(&k, ARN, V1, &v).unwrap()
        );
    }

    #[test]
    fn debug_redacts_keys() {
        assert_eq!(format!("{:?}", key()), "Key([REDACTED])");
    }
}
