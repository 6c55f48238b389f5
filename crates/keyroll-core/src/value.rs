//! Secret values: kept in `secrecy` boxes, zeroized on drop, never printed.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer, Serializer};
use subtle::ConstantTimeEq;

use crate::error::SmError;

/// Largest `SecretString` / `SecretBinary` AWS accepts, in bytes.
pub const MAX_SECRET_BYTES: usize = 65_536;

/// A secret's value: text (`SecretString`) or bytes (`SecretBinary`).
///
/// `Debug` prints only the kind and length; the bytes are wiped from memory on drop.
#[derive(Clone)]
pub enum SecretValue {
    String(SecretString),
    Binary(SecretSlice<u8>),
}

impl SecretValue {
    pub fn string(s: impl Into<String>) -> Self {
        SecretValue::String(SecretString::from(s.into()))
    }
    pub fn binary(b: Vec<u8>) -> Self {
        SecretValue::Binary(SecretSlice::from(b))
    }

    /// The value as text, when it is a `SecretString`.
    pub fn expose_str(&self) -> Option<&str> {
        match self {
            SecretValue::String(s) => Some(s.expose_secret()),
            SecretValue::Binary(_) => None,
        }
    }

    /// The raw bytes (UTF-8 for strings).
    pub fn expose_bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.expose_secret().as_bytes(),
            SecretValue::Binary(b) => b.expose_secret(),
        }
    }

    pub fn is_binary(&self) -> bool {
        matches!(self, SecretValue::Binary(_))
    }

    pub fn len(&self) -> usize {
        self.expose_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Same kind and same bytes, compared in constant time.
    pub fn ct_eq(&self, other: &SecretValue) -> bool {
        self.is_binary() == other.is_binary()
            && bool::from(self.expose_bytes().ct_eq(other.expose_bytes()))
    }

    /// Enforces AWS's limits: at most 65,536 bytes; a `SecretBinary` holds at least one byte.
    pub fn validate(&self) -> Result<(), SmError> {
        let n = self.len();
        let field = if self.is_binary() {
            "SecretBinary"
        } else {
            "SecretString"
        };
        if n > MAX_SECRET_BYTES {
            return Err(SmError::InvalidParameter(format!(
                "{field} is {n} bytes; Secrets Manager accepts at most {MAX_SECRET_BYTES} bytes."
            )));
        }
        if n == 0 && self.is_binary() {
            return Err(SmError::InvalidParameter(
                "SecretBinary must not be empty; omit it to create a secret without a value."
                    .into(),
            ));
        }
        Ok(())
    }

    /// Parses a `SecretString` as a JSON object. The error never quotes the value.
    pub fn json_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_str::<serde_json::Value>(self.expose_str()?) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// Builds a value from a request's `SecretString` / `SecretBinary` pair.
    pub fn from_parts(
        string: Option<SecretString>,
        binary: Option<SecretSlice<u8>>,
    ) -> Result<Option<SecretValue>, SmError> {
        match (string, binary) {
            (Some(_), Some(_)) => Err(SmError::InvalidParameter(
                "You can't specify both a binary secret value and a string secret value in the \
                 same secret."
                    .into(),
            )),
            (Some(s), None) => Ok(Some(SecretValue::String(s))),
            (None, Some(b)) => Ok(Some(SecretValue::Binary(b))),
            (None, None) => Ok(None),
        }
    }

    /// Splits into the response's `SecretString` / `SecretBinary` pair.
    pub fn into_parts(self) -> (Option<SecretString>, Option<SecretSlice<u8>>) {
        match self {
            SecretValue::String(s) => (Some(s), None),
            SecretValue::Binary(b) => (None, Some(b)),
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::String(s) => {
                write!(
                    f,
                    "SecretString([REDACTED {} bytes])",
                    s.expose_secret().len()
                )
            }
            SecretValue::Binary(b) => {
                write!(
                    f,
                    "SecretBinary([REDACTED {} bytes])",
                    b.expose_secret().len()
                )
            }
        }
    }
}

/// serde helpers for fields holding secrets. Serializing exposes the value: use them only on
/// wire types that must carry the secret (a `GetSecretValue` response, a `PutSecretValue`
/// request).
pub mod serde_secret {
    use super::*;

    pub mod string {
        use super::*;
        pub fn serialize<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_str(v.expose_secret()),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SecretString>, D::Error> {
            Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
        }
    }

    /// `SecretBinary` is base64 on the wire.
    pub mod binary {
        use super::*;
        pub fn serialize<S: Serializer>(
            v: &Option<SecretSlice<u8>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => {
                    let enc = zeroize::Zeroizing::new(
                        base64::engine::general_purpose::STANDARD.encode(v.expose_secret()),
                    );
                    s.serialize_str(&enc)
                }
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SecretSlice<u8>>, D::Error> {
            let Some(text) = Option::<String>::deserialize(d)?.map(zeroize::Zeroizing::new) else {
                return Ok(None);
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| serde::de::Error::custom("SecretBinary is not valid base64"))?;
            Ok(Some(SecretSlice::from(bytes)))
        }
    }

    /// A required secret string (e.g. `RandomPassword`).
    pub mod required_string {
        use super::*;
        pub fn serialize<S: Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(v.expose_secret())
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
            Ok(SecretString::from(String::deserialize(d)?))
        }
    }
}

/// A secret box's bytes, for callers that need to hand them to a crypto or database API.
pub fn expose_slice(b: &SecretBox<[u8]>) -> &[u8] {
    b.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let v = SecretValue::string("hunter2-SENTINEL");
        let d = format!("{v:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("16 bytes"));
    }

    #[test]
    fn ct_eq_distinguishes_kind_and_bytes() {
        let a = SecretValue::string("abc");
        assert!(a.ct_eq(&SecretValue::string("abc")));
        assert!(!a.ct_eq(&SecretValue::string("abd")));
        assert!(!a.ct_eq(&SecretValue::binary(b"abc".to_vec())));
    }

    #[test]
    fn size_limits() {
        assert!(
            SecretValue::string("x".repeat(MAX_SECRET_BYTES))
                .validate()
                .is_ok()
        );
        assert!(
            SecretValue::string("x".repeat(MAX_SECRET_BYTES + 1))
                .validate()
                .is_err()
        );
        assert!(SecretValue::binary(vec![]).validate().is_err());
    }

    #[test]
    fn from_parts_rejects_both() {
        let r = SecretValue::from_parts(
            Some(SecretString::from("a".to_string())),
            Some(SecretSlice::from(vec![1u8])),
        );
        assert!(matches!(r, Err(SmError::InvalidParameter(_))));
    }
}
