//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 30-second steps,
//! 6 digits, base32 seeds — what virtual MFA apps generate — with a ±1 step tolerance, a
//! constant-time comparison and a per-device guard against reusing a code.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted on either side of the current one (clock drift, typing time).
pub const WINDOW: i64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error(
        "the TOTP seed is not valid base32 (letters A-Z and digits 2-7, as MFA apps show it; \
         spaces and '=' padding are ignored)"
    )]
    NotBase32,
    #[error(
        "the TOTP seed is too short: it must decode to at least 10 bytes (16 base32 characters)"
    )]
    TooShort,
}

/// Decodes an RFC 4648 base32 seed (case-insensitive; spaces, dashes and `=` ignored).
pub fn decode_base32(text: &str) -> Result<Zeroizing<Vec<u8>>, TotpError> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            b' ' | b'-' | b'=' => continue,
            _ => return Err(TotpError::NotBase32),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if out.len() < 10 {
        return Err(TotpError::TooShort);
    }
    Ok(out)
}

/// RFC 4226's HOTP value of `counter`, `digits` long.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return u32::MAX,
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The time step of `unix_secs`.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The 6-digit code at `unix_secs`, zero-padded.
pub fn code_at(key: &[u8], unix_secs: i64) -> String {
    format!(
        "{:0width$}",
        hotp(key, step_of(unix_secs).max(0) as u64, DIGITS),
        width = DIGITS as usize
    )
}

/// The step (within ±[`WINDOW`] of `unix_secs`) whose code is `code`, if any. Every
/// candidate is computed and compared in constant time, so the answer's timing does not
/// depend on which step (if any) matched.
pub fn matching_step(key: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    let mut found = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        if step < 0 {
            continue;
        }
        let expected = Zeroizing::new(format!(
            "{:0width$}",
            hotp(key, step as u64, DIGITS),
            width = DIGITS as usize
        ));
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The last step each MFA device authenticated with: a code is accepted once, and never
/// one older than the last accepted (RFC 6238 §5.2). Kept in memory.
#[derive(Debug, Default)]
pub struct UsedCodes {
    last: Mutex<HashMap<String, i64>>,
}

impl UsedCodes {
    /// Checks `code` for `device` at `unix_secs` and, when it is valid and unused, records it.
    pub fn verify(&self, device: &str, key: &[u8], code: &str, unix_secs: i64) -> bool {
        let Some(step) = matching_step(key, code, unix_secs) else {
            return false;
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(device) {
            Some(&used) if step <= used => false,
            _ => {
                last.insert(device.to_string(), step);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed: the ASCII "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_vectors() {
        for (t, expected) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SEED, step_of(t) as u64, 8), expected, "T={t}");
            assert_eq!(
                code_at(RFC_SEED, t),
                format!("{:06}", expected % 1_000_000),
                "T={t}"
            );
        }
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (c, e) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SEED, c as u64, 6), *e, "counter {c}");
        }
    }

    #[test]
    fn base32_decodes_the_rfc_seed() {
        // "12345678901234567890" in base32.
        let k = decode_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(&k[..], RFC_SEED);
        let k = decode_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap();
        assert_eq!(&k[..], RFC_SEED);
        assert_eq!(decode_base32("GEZDGNBV1"), Err(TotpError::NotBase32));
        assert_eq!(decode_base32("GEZDGNBV"), Err(TotpError::TooShort));
    }

    #[test]
    fn accepts_one_step_either_side_only() {
        let t = 1_700_000_015; // the middle of a step
        let now = step_of(t);
        assert_eq!(matching_step(RFC_SEED, &code_at(RFC_SEED, t), t), Some(now));
        assert_eq!(
            matching_step(RFC_SEED, &code_at(RFC_SEED, t - 30), t),
            Some(now - 1)
        );
        assert_eq!(
            matching_step(RFC_SEED, &code_at(RFC_SEED, t + 30), t),
            Some(now + 1)
        );
        assert_eq!(matching_step(RFC_SEED, &code_at(RFC_SEED, t - 60), t), None);
        assert_eq!(matching_step(RFC_SEED, &code_at(RFC_SEED, t + 60), t), None);
        assert_eq!(matching_step(RFC_SEED, "12345", t), None);
        assert_eq!(matching_step(RFC_SEED, "12345a", t), None);
    }

    #[test]
    fn a_code_is_used_once_per_device() {
        let used = UsedCodes::default();
        let t = 1_700_000_015;
        let code = code_at(RFC_SEED, t);
        assert!(used.verify("dev-a", RFC_SEED, &code, t));
        assert!(!used.verify("dev-a", RFC_SEED, &code, t + 5), "reused");
        // Another device is independent.
        assert!(used.verify("dev-b", RFC_SEED, &code, t));
        // An older code than the last accepted one is refused too.
        assert!(!used.verify("dev-a", RFC_SEED, &code_at(RFC_SEED, t - 30), t));
        // The next step's code works.
        assert!(used.verify("dev-a", RFC_SEED, &code_at(RFC_SEED, t + 30), t + 30));
    }
}
