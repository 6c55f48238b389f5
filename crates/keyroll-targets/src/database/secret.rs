//! The secret format of AWS's RDS rotation functions, parsed into a typed value whose
//! `Debug` never shows the password. Parse errors name the field, never a value (serde's
//! messages can quote input, so none of them is ever shown).

use std::fmt;

use keyroll_core::password::PasswordPolicy;
use keyroll_core::ports::TargetError;
use keyroll_core::value::SecretValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// The `engine` values AWS's RDS rotation functions accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Postgres,
    AuroraPostgresql,
    Mysql,
    AuroraMysql,
    Mariadb,
}

/// Which wire protocol and SQL dialect an engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
}

impl Engine {
    pub const ALL: [Engine; 5] = [
        Engine::Postgres,
        Engine::AuroraPostgresql,
        Engine::Mysql,
        Engine::AuroraMysql,
        Engine::Mariadb,
    ];

    pub fn parse(s: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::AuroraPostgresql => "aurora-postgresql",
            Engine::Mysql => "mysql",
            Engine::AuroraMysql => "aurora-mysql",
            Engine::Mariadb => "mariadb",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Engine::Postgres | Engine::AuroraPostgresql => Family::Postgres,
            _ => Family::Mysql,
        }
    }

    pub fn default_port(self) -> u16 {
        match self.family() {
            Family::Postgres => 5432,
            Family::Mysql => 3306,
        }
    }

    /// The longest user name the engine accepts: PostgreSQL 63 bytes (`NAMEDATALEN - 1`),
    /// MariaDB 80 characters, MySQL 32 characters.
    pub fn username_limit(self) -> UsernameLimit {
        match self {
            Engine::Postgres | Engine::AuroraPostgresql => UsernameLimit::Bytes(63),
            Engine::Mariadb => UsernameLimit::Chars(80),
            Engine::Mysql | Engine::AuroraMysql => UsernameLimit::Chars(32),
        }
    }

    /// The password policy of AWS's rotation functions for this engine: 32 characters
    /// without `/ @ " ' \`, and without `:` for PostgreSQL (the `EXCLUDE_CHARACTERS` default
    /// of AWS's PostgreSQL functions, which keeps the password usable in `.pgpass` files and
    /// connection URIs).
    pub fn default_policy(self) -> PasswordPolicy {
        let mut p = PasswordPolicy::database_default();
        if self.family() == Family::Postgres {
            p.exclude_characters.push(':');
        }
        p
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a user name may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameLimit {
    Bytes(usize),
    Chars(usize),
}

impl UsernameLimit {
    pub fn fits(self, name: &str) -> bool {
        match self {
            UsernameLimit::Bytes(n) => name.len() <= n,
            UsernameLimit::Chars(n) => name.chars().count() <= n,
        }
    }
}

impl fmt::Display for UsernameLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsernameLimit::Bytes(n) => write!(f, "{n} bytes"),
            UsernameLimit::Chars(n) => write!(f, "{n} characters"),
        }
    }
}

/// The `ssl` field, read the way AWS's functions read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Absent, or a value that is neither a boolean nor `"true"`/`"false"`: try TLS (with
    /// certificate verification) and fall back to plaintext if TLS cannot be had.
    Prefer,
    /// `true` / `"true"`: TLS with certificate verification, never plaintext.
    Require,
    /// `false` / `"false"`: plaintext only.
    Disable,
}

impl SslMode {
    fn from_json(v: Option<&Value>) -> SslMode {
        match v {
            Some(Value::Bool(true)) => SslMode::Require,
            Some(Value::Bool(false)) => SslMode::Disable,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => SslMode::Require,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => SslMode::Disable,
            _ => SslMode::Prefer,
        }
    }
}

/// The suffix that marks the second user of the alternating-users strategy.
pub const CLONE_SUFFIX: &str = "_clone";

/// The other user of an alternating pair: `name_clone` for `name`, `name` for `name_clone`.
pub fn alternate_username(name: &str, engine: Engine) -> Result<String, TargetError> {
    if let Some(base) = name.strip_suffix(CLONE_SUFFIX) {
        if base.is_empty() {
            return Err(TargetError::InvalidSecret(format!(
                "the user name {name:?} is only the suffix {CLONE_SUFFIX}; alternating users \
                 need a base name"
            )));
        }
        return Ok(base.to_string());
    }
    let clone = format!("{name}{CLONE_SUFFIX}");
    let limit = engine.username_limit();
    if !limit.fits(&clone) {
        return Err(TargetError::InvalidSecret(format!(
            "cannot rotate user {name:?} with alternating users: {clone:?} would exceed \
             {engine}'s limit of {limit} for user names; use a shorter user name (at most \
             {} shorter than the limit) or single-user rotation (remove masterarn)",
            CLONE_SUFFIX.len()
        )));
    }
    Ok(clone)
}

/// A database secret in AWS's format.
#[derive(Clone)]
pub struct DbSecret {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: String,
    password: SecretString,
    pub dbname: Option<String>,
    pub ssl: SslMode,
    pub masterarn: Option<String>,
    /// The whole object, every other key included (the pending value keeps them).
    fields: Map<String, Value>,
}

impl fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("dbname", &self.dbname)
            .field("ssl", &self.ssl)
            .field("masterarn", &self.masterarn)
            .finish_non_exhaustive()
    }
}

impl DbSecret {
    /// Parses `value`; `what` names it in errors (e.g. `the AWSCURRENT version of app/db`).
    pub fn parse(value: &SecretValue, what: &str) -> Result<DbSecret, TargetError> {
        if value.is_binary() {
            return Err(TargetError::InvalidSecret(format!(
                "{what} is a SecretBinary; database secrets are JSON text with engine, host, \
                 username and password"
            )));
        }
        let fields = value.json_object().ok_or_else(|| {
            TargetError::InvalidSecret(format!(
                "{what} is not a JSON object (the value is not shown); database secrets are \
                 JSON objects with engine, host, username and password"
            ))
        })?;
        Self::from_map(fields, what)
    }

    pub fn from_map(fields: Map<String, Value>, what: &str) -> Result<DbSecret, TargetError> {
        let missing = |k: &str| {
            TargetError::InvalidSecret(format!(
                "{what} has no {k:?} field; database secrets need engine, host, username and \
                 password"
            ))
        };
        let wrong = |k: &str, expected: &str| {
            TargetError::InvalidSecret(format!(
                "the field {k:?} of {what} must be {expected} (the value is not shown)"
            ))
        };
        let string = |k: &str| -> Result<String, TargetError> {
            match fields.get(k) {
                None => Err(missing(k)),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(wrong(k, "a string")),
            }
        };
        let engine_name = string("engine")?;
        let engine = Engine::parse(&engine_name).ok_or_else(|| {
            TargetError::InvalidSecret(format!(
                "the engine {engine_name:?} of {what} is not one keyroll rotates; use one of \
                 postgres, aurora-postgresql, mysql, aurora-mysql, mariadb"
            ))
        })?;
        let host = string("host")?;
        if host.trim().is_empty() {
            return Err(wrong("host", "a non-empty host name or address"));
        }
        let username = string("username")?;
        if username.is_empty() || username.contains('\0') {
            return Err(wrong(
                "username",
                "a non-empty string without NUL characters",
            ));
        }
        let password = match fields.get("password") {
            None => return Err(missing("password")),
            Some(Value::String(s)) if s.contains('\0') => {
                return Err(wrong("password", "a string without NUL characters"));
            }
            Some(Value::String(s)) => SecretString::from(s.clone()),
            Some(_) => return Err(wrong("password", "a string")),
        };
        let port = match fields.get("port") {
            None | Some(Value::Null) => engine.default_port(),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| wrong("port", "a port number between 1 and 65535"))?,
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| wrong("port", "a port number between 1 and 65535"))?,
            Some(_) => return Err(wrong("port", "a number or a string of digits")),
        };
        let dbname = match fields.get("dbname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(wrong("dbname", "a string")),
        };
        let masterarn = match fields.get("masterarn") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => return Err(wrong("masterarn", "the ARN or name of the master secret")),
        };
        let ssl = SslMode::from_json(fields.get("ssl"));
        Ok(DbSecret {
            engine,
            host,
            port,
            username,
            password,
            dbname,
            ssl,
            masterarn,
            fields,
        })
    }

    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// `host:port` (`[v6]:port` for IPv6 literals).
    pub fn endpoint(&self) -> String {
        endpoint(&self.host, self.port)
    }

    /// Whether `other` names the same server (host, ASCII case-insensitively, and port).
    pub fn same_server(&self, other: &DbSecret) -> bool {
        self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
    }

    /// This secret with another user name and password; every other key unchanged.
    pub fn with_credentials(&self, username: &str, password: &SecretString) -> SecretValue {
        let mut fields = self.fields.clone();
        fields.insert("username".into(), Value::String(username.to_string()));
        fields.insert(
            "password".into(),
            Value::String(password.expose_secret().to_string()),
        );
        let text = zeroize::Zeroizing::new(Value::Object(fields).to_string());
        SecretValue::string(text.as_str())
    }
}

pub(crate) fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<DbSecret, TargetError> {
        DbSecret::parse(&SecretValue::string(json), "the test secret")
    }

    #[test]
    fn aws_format_parses_with_defaults() {
        let s =
            parse(r#"{"engine":"postgres","host":"db","username":"app","password":"pw"}"#).unwrap();
        assert_eq!(s.port, 5432);
        assert_eq!(s.ssl, SslMode::Prefer);
        assert_eq!(s.dbname, None);
        assert!(s.masterarn.is_none());
        let s = parse(
            r#"{"engine":"mariadb","host":"db","username":"app","password":"pw","port":"3307",
                "dbname":"x","ssl":"TRUE","masterarn":"arn:m","extra":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(s.port, 3307);
        assert_eq!(s.ssl, SslMode::Require);
        assert_eq!(s.dbname.as_deref(), Some("x"));
        assert_eq!(s.masterarn.as_deref(), Some("arn:m"));
        for (v, mode) in [
            ("true", SslMode::Require),
            ("false", SslMode::Disable),
            ("\"False\"", SslMode::Disable),
            ("\"yes\"", SslMode::Prefer),
            ("1", SslMode::Prefer),
            ("null", SslMode::Prefer),
        ] {
            let s = parse(&format!(
                r#"{{"engine":"mysql","host":"h","username":"u","password":"p","ssl":{v}}}"#
            ))
            .unwrap();
            assert_eq!(s.ssl, mode, "{v}");
            assert_eq!(s.port, 3306);
        }
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let sentinel = "S3NT1NEL-value";
        let cases = [
            format!(
                r#"{{"engine":"postgres","host":"h","username":"u","password":7,"x":"{sentinel}"}}"#
            ),
            format!(
                r#"{{"engine":"postgres","host":"h","username":"u","password":"{sentinel}","port":"{sentinel}"}}"#
            ),
            format!(
                r#"{{"engine":"postgres","host":"h","username":"u","password":"{sentinel}","port":70000}}"#
            ),
            format!(r#"{{"engine":"oracle","host":"h","username":"u","password":"{sentinel}"}}"#),
            format!(r#"{{"engine":"postgres","username":"u","password":"{sentinel}"}}"#),
            format!(r#"{{"engine":"postgres","host":"h","username":"u","password":"{sentinel}""#),
            format!(r#"["{sentinel}"]"#),
        ];
        for c in &cases {
            let e = parse(c).unwrap_err().to_string();
            assert!(!e.contains(sentinel), "{e}");
            assert!(e.contains("the test secret"), "{e}");
        }
        assert!(
            parse(&cases[1])
                .unwrap_err()
                .to_string()
                .contains("\"port\"")
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        let s = parse(r#"{"engine":"postgres","host":"h","username":"u","password":"hunter2"}"#)
            .unwrap();
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2") && d.contains("REDACTED"), "{d}");
    }

    #[test]
    fn alternate_names_respect_engine_limits() {
        assert_eq!(
            alternate_username("app", Engine::Postgres).unwrap(),
            "app_clone"
        );
        assert_eq!(
            alternate_username("app_clone", Engine::Mysql).unwrap(),
            "app"
        );
        assert!(alternate_username("_clone", Engine::Mysql).is_err());
        let pg57 = "é".repeat(28) + "x"; // 57 bytes, 29 characters
        assert!(alternate_username(&pg57, Engine::Postgres).is_ok());
        let pg58 = "é".repeat(29); // 58 bytes
        assert!(alternate_username(&pg58, Engine::Postgres).is_err());
        assert!(alternate_username(&"a".repeat(26), Engine::Mysql).is_ok());
        let e = alternate_username(&"a".repeat(27), Engine::Mysql).unwrap_err();
        assert!(e.to_string().contains("32 characters"), "{e}");
        assert!(alternate_username(&"é".repeat(74), Engine::Mariadb).is_ok());
        assert!(alternate_username(&"é".repeat(75), Engine::Mariadb).is_err());
    }

    #[test]
    fn pending_value_keeps_every_other_key() {
        let s = parse(
            r#"{"engine":"postgres","host":"h","username":"u","password":"old","port":"5433",
                "custom":{"nested":[1,2,"x"]},"ssl":true}"#,
        )
        .unwrap();
        let v = s.with_credentials("u_clone", &SecretString::from("new".to_string()));
        let m = v.json_object().unwrap();
        assert_eq!(m["username"], "u_clone");
        assert_eq!(m["password"], "new");
        assert_eq!(m["port"], "5433");
        assert_eq!(m["custom"]["nested"][2], "x");
        assert_eq!(m["ssl"], true);
    }

    #[test]
    fn default_policies_follow_aws() {
        let pg = Engine::Postgres.default_policy();
        assert_eq!(pg.length, 32);
        for c in ['/', '@', '"', '\'', '\\', ':'] {
            assert!(pg.exclude_characters.contains(c));
        }
        let my = Engine::Mariadb.default_policy();
        assert!(!my.exclude_characters.contains(':'));
    }

    #[test]
    fn endpoints_bracket_ipv6() {
        assert_eq!(endpoint("::1", 5432), "[::1]:5432");
        assert_eq!(endpoint("db.example", 3306), "db.example:3306");
    }
}
