//! `GetRandomPassword`, from the operating system's CSPRNG, without modulo bias.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::SmError;

pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const NUMBERS: &str = "0123456789";
/// The punctuation AWS draws from: every printable ASCII symbol.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

pub const DEFAULT_LENGTH: u32 = 32;
pub const MAX_LENGTH: u32 = 4096;

/// The options of `GetRandomPassword`, with AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PasswordPolicy {
    #[serde(rename = "PasswordLength", default = "default_length")]
    pub length: u32,
    #[serde(default)]
    pub exclude_characters: String,
    #[serde(default)]
    pub exclude_numbers: bool,
    #[serde(default)]
    pub exclude_punctuation: bool,
    #[serde(default)]
    pub exclude_uppercase: bool,
    #[serde(default)]
    pub exclude_lowercase: bool,
    #[serde(default)]
    pub include_space: bool,
    #[serde(default = "default_true")]
    pub require_each_included_type: bool,
}

fn default_length() -> u32 {
    DEFAULT_LENGTH
}
fn default_true() -> bool {
    true
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            length: DEFAULT_LENGTH,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

impl PasswordPolicy {
    /// AWS's RDS rotation functions' default: 32 characters without `/ @ " ' \`.
    pub fn database_default() -> Self {
        PasswordPolicy {
            exclude_characters: "/@\"'\\".into(),
            ..Default::default()
        }
    }

    /// The character classes left after exclusions (lowercase, uppercase, digits, punctuation).
    fn classes(&self) -> Vec<Vec<char>> {
        let keep = |set: &str, excluded: bool| -> Vec<char> {
            if excluded {
                return Vec::new();
            }
            set.chars()
                .filter(|c| !self.exclude_characters.contains(*c))
                .collect()
        };
        vec![
            keep(LOWERCASE, self.exclude_lowercase),
            keep(UPPERCASE, self.exclude_uppercase),
            keep(NUMBERS, self.exclude_numbers),
            keep(PUNCTUATION, self.exclude_punctuation),
        ]
    }

    /// Generates a password. Each character is drawn uniformly from the allowed alphabet;
    /// when every included type is required, whole candidates are drawn until one contains
    /// each type, which keeps the result uniform over all passwords that satisfy the policy.
    pub fn generate(&self) -> Result<SecretString, SmError> {
        if self.length == 0 || self.length > MAX_LENGTH {
            return Err(SmError::InvalidParameter(format!(
                "PasswordLength must be between 1 and {MAX_LENGTH} (got {}).",
                self.length
            )));
        }
        let classes: Vec<Vec<char>> = self
            .classes()
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        let mut alphabet: Vec<char> = classes.iter().flatten().copied().collect();
        if self.include_space && !self.exclude_characters.contains(' ') {
            alphabet.push(' ');
        }
        if alphabet.is_empty() {
            return Err(SmError::InvalidParameter(
                "The password policy excludes every character; allow at least one character type."
                    .into(),
            ));
        }
        let len = self.length as usize;
        if self.require_each_included_type && len < classes.len() {
            return Err(SmError::InvalidParameter(
                "Password length is too short based on the required types.".into(),
            ));
        }
        let n = alphabet.len() as u32;
        let draw = || -> Zeroizing<String> {
            Zeroizing::new(
                (0..len)
                    .map(|_| alphabet[random_below(n) as usize])
                    .collect(),
            )
        };
        if !self.require_each_included_type {
            return Ok(SecretString::from(draw().to_string()));
        }
        // Rejection sampling: uniform over the valid passwords. The odds of acceptance are
        // lowest for short passwords; after many misses, fall back to placing one character
        // of each type at a random position (still CSPRNG-driven, never biased by modulo).
        for _ in 0..10_000 {
            let candidate = draw();
            if classes
                .iter()
                .all(|cl| candidate.chars().any(|c| cl.contains(&c)))
            {
                return Ok(SecretString::from(candidate.to_string()));
            }
        }
        let mut chars: Zeroizing<Vec<char>> = Zeroizing::new(draw().chars().collect());
        let mut positions: Vec<usize> = (0..len).collect();
        shuffle(&mut positions);
        for (cl, pos) in classes.iter().zip(positions) {
            chars[pos] = cl[random_below(cl.len() as u32) as usize];
        }
        Ok(SecretString::from(chars.iter().collect::<String>()))
    }
}

/// A uniformly random integer in `0..n` from the OS CSPRNG (rejection sampling, no modulo
/// bias). Panics only if `n == 0` or the operating system has no randomness to give, which
/// no secret should be generated without.
pub fn random_below(n: u32) -> u32 {
    assert!(n > 0, "random_below(0)");
    // The largest multiple of n that fits in u32's range; values at or above it are redrawn.
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut b = [0u8; 4];
        fill_random(&mut b);
        let v = u32::from_le_bytes(b);
        if v < zone {
            return v % n;
        }
    }
}

/// Fills `buf` from the OS CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        // Without an entropy source no key, token or password may be made.
        panic!("the operating system's random number generator failed: {e}");
    }
}

fn shuffle<T>(v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = random_below(i as u32 + 1) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn default_is_32_with_every_type() {
        for _ in 0..200 {
            let p = PasswordPolicy::default().generate().unwrap();
            let s = p.expose_secret();
            assert_eq!(s.chars().count(), 32);
            assert!(s.chars().any(|c| c.is_ascii_lowercase()));
            assert!(s.chars().any(|c| c.is_ascii_uppercase()));
            assert!(s.chars().any(|c| c.is_ascii_digit()));
            assert!(s.chars().any(|c| PUNCTUATION.contains(c)));
        }
    }

    #[test]
    fn exclusions_are_honoured() {
        let policy = PasswordPolicy {
            exclude_characters: "abcXYZ019!".into(),
            exclude_punctuation: false,
            length: 4096,
            ..Default::default()
        };
        let p = policy.generate().unwrap();
        assert!(!p.expose_secret().chars().any(|c| "abcXYZ019!".contains(c)));

        let digits_only = PasswordPolicy {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_punctuation: true,
            length: 64,
            ..Default::default()
        };
        assert!(
            digits_only
                .generate()
                .unwrap()
                .expose_secret()
                .chars()
                .all(|c| c.is_ascii_digit())
        );
    }

    #[test]
    fn space_only_when_asked() {
        let policy = PasswordPolicy {
            include_space: true,
            length: 4096,
            ..Default::default()
        };
        assert!(policy.generate().unwrap().expose_secret().contains(' '));
        let policy = PasswordPolicy {
            length: 4096,
            ..Default::default()
        };
        assert!(!policy.generate().unwrap().expose_secret().contains(' '));
    }

    #[test]
    fn lengths_and_impossible_policies() {
        assert!(
            PasswordPolicy {
                length: 0,
                ..Default::default()
            }
            .generate()
            .is_err()
        );
        assert!(
            PasswordPolicy {
                length: 4097,
                ..Default::default()
            }
            .generate()
            .is_err()
        );
        assert!(
            PasswordPolicy {
                length: 3,
                ..Default::default()
            }
            .generate()
            .is_err()
        );
        let one = PasswordPolicy {
            length: 1,
            require_each_included_type: false,
            ..Default::default()
        };
        assert_eq!(one.generate().unwrap().expose_secret().len(), 1);
        let nothing = PasswordPolicy {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(nothing.generate().is_err());
        // Four required types in four characters: rare under rejection, still satisfiable.
        let tight = PasswordPolicy {
            length: 4,
            ..Default::default()
        };
        for _ in 0..50 {
            let p = tight.generate().unwrap();
            let s = p.expose_secret();
            assert!(
                s.chars().any(|c| c.is_ascii_digit()) && s.chars().any(|c| PUNCTUATION.contains(c))
            );
        }
    }

    #[test]
    fn random_below_is_roughly_uniform() {
        // 60,000 draws over 6 buckets: each bucket within 10% of 10,000 (fails with
        // probability far below 1e-9 for an unbiased source).
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[random_below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..=11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn policy_deserializes_with_aws_defaults() {
        let p: PasswordPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, PasswordPolicy::default());
        let p: PasswordPolicy =
            serde_json::from_str(r#"{"PasswordLength": 20, "ExcludePunctuation": true}"#).unwrap();
        assert_eq!(p.length, 20);
        assert!(p.exclude_punctuation);
        assert!(p.require_each_included_type);
    }
}
