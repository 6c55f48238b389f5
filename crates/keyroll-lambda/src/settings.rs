//! The function's configuration, from environment variables named like those of AWS's
//! rotation functions, plus a few of keyroll's own.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SECRETS_MANAGER_ENDPOINT` | Secrets Manager endpoint URL (e.g. a VPC endpoint) | `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL`, else the regional endpoint |
//! | `PASSWORD_LENGTH` | length of generated passwords (1-4096) | 32 |
//! | `EXCLUDE_CHARACTERS` | characters never used in passwords | `/@"'\` (and `:` for PostgreSQL) |
//! | `EXCLUDE_NUMBERS`, `EXCLUDE_PUNCTUATION`, `EXCLUDE_UPPERCASE`, `EXCLUDE_LOWERCASE` | leave a character class out (`true`/`false`) | `false` |
//! | `REQUIRE_EACH_INCLUDED_TYPE` | at least one character of each included class | `true` |
//! | `KEYROLL_CONNECT_TIMEOUT_MS` | database connect timeout | 5000 |
//! | `KEYROLL_CA_BUNDLE` | PEM file of CA certificates for database TLS (e.g. the RDS bundle shipped in the zip) | system roots |
//! | `KEYROLL_HTTP_ALLOW_HOSTS` | hosts HTTP-engine secrets may send requests to, comma-separated: names, `*.example.com`, IP addresses, or `*` | none: HTTP secrets are refused |
//! | `KEYROLL_HTTP_ALLOW_NETWORKS` | networks (CIDR, comma-separated) whose non-public addresses — loopback, link-local (the metadata service), private, unique-local — HTTP requests may reach | none |
//! | `KEYROLL_IAM_ALLOW_USERS` | IAM users IAM-engine secrets may rotate, comma-separated: names, path prefixes (`/service/`), or `*` | none: IAM secrets are refused |
//! | `KEYROLL_METRICS_NAMESPACE` | CloudWatch namespace of the EMF metrics | `keyroll` |
//! | `KEYROLL_LOG` | log filter (`info`, `debug`, `keyroll_targets=debug,warn`, ...) | `AWS_LAMBDA_LOG_LEVEL`, else `info` for keyroll, `warn` for libraries |
//!
//! `PASSWORD_LENGTH` and `EXCLUDE_CHARACTERS` replace the engine defaults (a secret's
//! `keyroll:password-length` / `keyroll:exclude-characters` tags still win, being more
//! specific); the `EXCLUDE_*` switches and `REQUIRE_EACH_INCLUDED_TYPE` apply to every
//! `GetRandomPassword` call the function makes. Unlike AWS's functions, which read anything
//! but `true` as false, a value that is not `true` or `false` is refused at start-up.

use std::path::PathBuf;
use std::time::Duration;

use keyroll_targets::TargetConfig;

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `SECRETS_MANAGER_ENDPOINT`.
    pub endpoint_url: Option<String>,
    pub password: PasswordSettings,
    /// How targets connect, and the password length / exclusions for database secrets.
    pub target: TargetConfig,
    /// `KEYROLL_METRICS_NAMESPACE`.
    pub metrics_namespace: String,
    /// `KEYROLL_STEP_TIMEOUT_SECS`: the longest one step may run. Unset: until one second
    /// before the invocation's own deadline, so that a step stuck on a lock fails as a
    /// `Timeout` (with its metric and notification) instead of the sandbox being killed.
    pub step_timeout: Option<Duration>,
}

/// The `GetRandomPassword` switches set by the environment (`None`: not set, the target's
/// own choice stands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordSettings {
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

/// A variable with a value the function cannot use. Start-up stops (reported to Lambda as
/// an init error) rather than rotating with settings the operator did not mean.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{name} must be `true` or `false` (got {value:?})")]
    NotBool { name: &'static str, value: String },
    #[error("{name} must be a whole number from {min} to {max} (got {value:?})")]
    OutOfRange {
        name: &'static str,
        value: String,
        min: u64,
        max: u64,
    },
    #[error("{name} is set but empty; unset it to use the default")]
    Empty { name: &'static str },
    #[error("KEYROLL_CA_BUNDLE names {0}, which does not exist in the function's file system")]
    MissingCaBundle(String),
    #[error("{name}: {source}")]
    AllowList {
        name: &'static str,
        source: keyroll_targets::egress::PolicyError,
    },
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            endpoint_url: None,
            password: PasswordSettings::default(),
            target: TargetConfig::default(),
            metrics_namespace: "keyroll".into(),
            step_timeout: None,
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut s = Settings {
            endpoint_url: non_empty(&get, "SECRETS_MANAGER_ENDPOINT")?,
            ..Settings::default()
        };
        if let Some(v) = get("PASSWORD_LENGTH") {
            s.target.password_length = Some(number(
                &v,
                "PASSWORD_LENGTH",
                1,
                keyroll_core::password::MAX_LENGTH as u64,
            )? as u32);
        }
        // An empty EXCLUDE_CHARACTERS is meaningful: exclude nothing.
        if let Some(v) = get("EXCLUDE_CHARACTERS") {
            s.target.exclude_characters = Some(v);
        }
        let b = |name: &'static str| -> Result<Option<bool>, SettingsError> {
            get(name).map(|v| boolean(&v, name)).transpose()
        };
        s.password = PasswordSettings {
            exclude_numbers: b("EXCLUDE_NUMBERS")?,
            exclude_punctuation: b("EXCLUDE_PUNCTUATION")?,
            exclude_uppercase: b("EXCLUDE_UPPERCASE")?,
            exclude_lowercase: b("EXCLUDE_LOWERCASE")?,
            require_each_included_type: b("REQUIRE_EACH_INCLUDED_TYPE")?,
        };
        if let Some(v) = get("KEYROLL_CONNECT_TIMEOUT_MS") {
            s.target.connect_timeout =
                Duration::from_millis(number(&v, "KEYROLL_CONNECT_TIMEOUT_MS", 1, 900_000)?);
        }
        if let Some(p) = non_empty(&get, "KEYROLL_CA_BUNDLE")? {
            let path = PathBuf::from(&p);
            if !path.exists() {
                return Err(SettingsError::MissingCaBundle(p));
            }
            s.target.ca_bundle = Some(path);
        }
        if let Some(v) = get("KEYROLL_REQUIRE_TLS") {
            s.target.require_tls = boolean(&v, "KEYROLL_REQUIRE_TLS")?;
        }
        if let Some(v) = get("KEYROLL_STEP_TIMEOUT_SECS") {
            s.step_timeout = Some(Duration::from_secs(number(
                &v,
                "KEYROLL_STEP_TIMEOUT_SECS",
                1,
                900,
            )?));
        }
        if let Some(v) = get("KEYROLL_STATEMENT_TIMEOUT_SECS") {
            s.target.statement_timeout =
                Duration::from_secs(number(&v, "KEYROLL_STATEMENT_TIMEOUT_SECS", 1, 900)?);
        }
        // The narrowest choice unless set: no HTTP host, no network, no IAM user.
        let list = |name: &'static str| -> Result<Vec<String>, SettingsError> {
            Ok(non_empty(&get, name)?.into_iter().collect())
        };
        let (hosts, networks, users) = (
            list("KEYROLL_HTTP_ALLOW_HOSTS")?,
            list("KEYROLL_HTTP_ALLOW_NETWORKS")?,
            list("KEYROLL_IAM_ALLOW_USERS")?,
        );
        let named = |name: &'static str| move |source| SettingsError::AllowList { name, source };
        let none: &[String] = &[];
        s.target.policy = keyroll_targets::TargetPolicy {
            allow_hosts: keyroll_targets::TargetPolicy::parse(&hosts, none, none)
                .map_err(named("KEYROLL_HTTP_ALLOW_HOSTS"))?
                .allow_hosts,
            allow_networks: keyroll_targets::TargetPolicy::parse(none, &networks, none)
                .map_err(named("KEYROLL_HTTP_ALLOW_NETWORKS"))?
                .allow_networks,
            allow_iam_users: keyroll_targets::TargetPolicy::parse(none, none, &users)
                .map_err(named("KEYROLL_IAM_ALLOW_USERS"))?
                .allow_iam_users,
        };
        if let Some(ns) = non_empty(&get, "KEYROLL_METRICS_NAMESPACE")? {
            s.metrics_namespace = ns;
        }
        Ok(s)
    }
}

fn non_empty(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<String>, SettingsError> {
    match get(name) {
        Some(v) if v.trim().is_empty() => Err(SettingsError::Empty { name }),
        v => Ok(v),
    }
}

fn boolean(v: &str, name: &'static str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SettingsError::NotBool {
            name,
            value: v.chars().take(20).collect(),
        }),
    }
}

fn number(v: &str, name: &'static str, min: u64, max: u64) -> Result<u64, SettingsError> {
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(SettingsError::OutOfRange {
            name,
            value: v.chars().take(20).collect(),
            min,
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_are_aws_defaults() {
        let s = from(&[]).unwrap();
        assert_eq!(s.endpoint_url, None);
        assert_eq!(s.target.password_length, None);
        assert_eq!(s.target.exclude_characters, None);
        assert_eq!(s.password, PasswordSettings::default());
        assert_eq!(s.metrics_namespace, "keyroll");
        assert_eq!(
            s.target.policy,
            keyroll_targets::TargetPolicy::default(),
            "nothing allowed unless set"
        );
    }

    #[test]
    fn allow_lists_are_read_and_checked() {
        let s = from(&[
            (
                "KEYROLL_HTTP_ALLOW_HOSTS",
                "api.example.com, *.partner.example",
            ),
            ("KEYROLL_HTTP_ALLOW_NETWORKS", "10.20.0.0/16"),
            ("KEYROLL_IAM_ALLOW_USERS", "ci-deployer,/service/"),
        ])
        .unwrap();
        assert_eq!(
            s.target.policy,
            keyroll_targets::TargetPolicy::parse(
                &["api.example.com", "*.partner.example"],
                &["10.20.0.0/16"],
                &["ci-deployer", "/service/"]
            )
            .unwrap()
        );
        for (k, v) in [
            ("KEYROLL_HTTP_ALLOW_HOSTS", "https://api.example.com"),
            ("KEYROLL_HTTP_ALLOW_NETWORKS", "10.0.0.1/8"),
            ("KEYROLL_IAM_ALLOW_USERS", "service/"),
            ("KEYROLL_IAM_ALLOW_USERS", " "),
        ] {
            let e = from(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn aws_variables_are_mapped() {
        let s = from(&[
            ("SECRETS_MANAGER_ENDPOINT", "https://vpce.example"),
            ("PASSWORD_LENGTH", "40"),
            ("EXCLUDE_CHARACTERS", ":/@\"'\\"),
            ("EXCLUDE_NUMBERS", "True"),
            ("EXCLUDE_PUNCTUATION", "false"),
            ("REQUIRE_EACH_INCLUDED_TYPE", "FALSE"),
            ("KEYROLL_CONNECT_TIMEOUT_MS", "2500"),
            ("KEYROLL_STEP_TIMEOUT_SECS", "45"),
            ("KEYROLL_REQUIRE_TLS", "true"),
            ("KEYROLL_STATEMENT_TIMEOUT_SECS", "10"),
        ])
        .unwrap();
        assert_eq!(s.step_timeout, Some(Duration::from_secs(45)));
        assert!(s.target.require_tls);
        assert_eq!(s.target.statement_timeout, Duration::from_secs(10));
        assert_eq!(s.endpoint_url.as_deref(), Some("https://vpce.example"));
        assert_eq!(s.target.password_length, Some(40));
        assert_eq!(s.target.exclude_characters.as_deref(), Some(":/@\"'\\"));
        assert_eq!(s.password.exclude_numbers, Some(true));
        assert_eq!(s.password.exclude_punctuation, Some(false));
        assert_eq!(s.password.exclude_uppercase, None);
        assert_eq!(s.password.require_each_included_type, Some(false));
        assert_eq!(s.target.connect_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        for (k, v) in [
            ("PASSWORD_LENGTH", "0"),
            ("PASSWORD_LENGTH", "4097"),
            ("PASSWORD_LENGTH", "abc"),
            ("EXCLUDE_NUMBERS", "yes"),
            ("SECRETS_MANAGER_ENDPOINT", " "),
            ("KEYROLL_CA_BUNDLE", "/nonexistent/ca.pem"),
        ] {
            let e = from(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
    }

    #[test]
    fn empty_exclusions_mean_exclude_nothing() {
        let s = from(&[("EXCLUDE_CHARACTERS", "")]).unwrap();
        assert_eq!(s.target.exclude_characters.as_deref(), Some(""));
    }
}
