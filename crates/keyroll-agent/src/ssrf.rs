//! The SSRF token: every request but `/ping` must carry it in one of the configured headers
//! (default `X-Aws-Parameters-Secrets-Token`), so that a server-side request forgery in the
//! application (which cannot set headers) cannot read secrets through the agent.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use subtle_eq::ct_eq;

/// Why the agent has no token to check requests against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no SSRF token: none of {0} is set. Set one of them (e.g. export AWS_TOKEN=$(openssl rand -hex 32)) and send its value in the X-Aws-Parameters-Secrets-Token header"
    )]
    NotSet(String),
    #[error(
        "the SSRF token file {path} cannot be read: {reason} (fix the file:// path in the variable)"
    )]
    File { path: String, reason: String },
    #[error("the SSRF token is empty: set a non-empty value")]
    Empty,
}

/// The token requests must present.
#[derive(Clone)]
pub struct SsrfToken(SecretString);

impl fmt::Debug for SsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SsrfToken([REDACTED])")
    }
}

impl SsrfToken {
    pub fn new(token: SecretString) -> Result<Self, TokenError> {
        if token.expose_secret().is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(SsrfToken(token))
    }

    /// The value of the first variable of `names` that is set (through `var`); a value
    /// `file://PATH` means the first line of that file, as with AWS's agent.
    pub fn from_vars(
        names: &[String],
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TokenError> {
        let Some(value) = names.iter().find_map(|n| var(n)) else {
            return Err(TokenError::NotSet(names.join(", ")));
        };
        let value = SecretString::from(value);
        let token = match value.expose_secret().strip_prefix("file://") {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| TokenError::File {
                    path: path.to_string(),
                    reason: e.to_string(),
                })?;
                SecretString::from(text.trim().to_string())
            }
            None => value,
        };
        Self::new(token)
    }

    /// From the process environment.
    pub fn from_env(names: &[String]) -> Result<Self, TokenError> {
        Self::from_vars(names, |n| std::env::var(n).ok())
    }

    /// Whether `presented` is the token (in time independent of where they differ).
    pub fn matches(&self, presented: &[u8]) -> bool {
        ct_eq(self.0.expose_secret().as_bytes(), presented)
    }
}

mod subtle_eq {
    /// Constant-time equality for equal lengths (the length itself is not secret).
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut d = 0u8;
        for (x, y) in a.iter().zip(b) {
            d |= x ^ y;
        }
        std::hint::black_box(d) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "AWS_TOKEN".into(),
            "AWS_SESSION_TOKEN".into(),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
        ]
    }

    #[test]
    fn the_first_set_variable_wins() {
        let t = SsrfToken::from_vars(&names(), |n| match n {
            "AWS_SESSION_TOKEN" => Some("session".into()),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN" => Some("container".into()),
            _ => None,
        })
        .unwrap();
        assert!(t.matches(b"session"));
        assert!(!t.matches(b"container"));
        assert!(!t.matches(b"sessio"));
        assert_eq!(format!("{t:?}"), "SsrfToken([REDACTED])");
    }

    #[test]
    fn a_file_reference_is_read_and_nothing_set_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "from-file\n").unwrap();
        let v = format!("file://{}", p.display());
        let t = SsrfToken::from_vars(&names(), |n| (n == "AWS_TOKEN").then(|| v.clone())).unwrap();
        assert!(t.matches(b"from-file"));
        let e = SsrfToken::from_vars(&names(), |_| None).unwrap_err();
        assert!(e.to_string().contains("AWS_TOKEN"), "{e}");
        let e = SsrfToken::from_vars(&names(), |_| Some("file:///nonexistent/x".into()));
        assert!(matches!(e, Err(TokenError::File { .. })));
        assert_eq!(
            SsrfToken::from_vars(&names(), |_| Some(String::new())).unwrap_err(),
            TokenError::Empty
        );
    }
}
