//! The SQL keyroll sends to MySQL and MariaDB, built and parsed here as pure functions so
//! that what differs between versions (MySQL 8 cannot run on the test machine) is covered by
//! unit tests.
//!
//! Quoting: account names are written `` `user`@`host` `` (backticks doubled inside), which
//! means the same with and without `NO_BACKSLASH_ESCAPES`; string literals double `'` and,
//! only when the session's `sql_mode` lets backslashes escape, double `\` too. Values in
//! `WHERE` clauses are hex literals (`X'…'`), which no `sql_mode` changes.

use base64::Engine as _;
use keyroll_core::ports::TargetError;
use secrecy::{ExposeSecret, SecretString};
use sha1::Digest as _;
use zeroize::Zeroizing;

/// Which server, from `VERSION()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Mariadb { major: u32, minor: u32 },
    Mysql { major: u32, minor: u32, patch: u32 },
}

impl Flavor {
    pub fn parse(version: &str) -> Flavor {
        let mut nums = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let (a, b, c) = (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        );
        if version.to_ascii_lowercase().contains("mariadb") {
            // Old MariaDB servers report "5.5.5-10.x.y-MariaDB".
            if a == 5 && b == 5 && c == 5 {
                let mut rest = version
                    .split(|ch: char| !ch.is_ascii_digit())
                    .filter(|s| !s.is_empty())
                    .skip(3)
                    .map(|s| s.parse::<u32>().unwrap_or(0));
                return Flavor::Mariadb {
                    major: rest.next().unwrap_or(10),
                    minor: rest.next().unwrap_or(0),
                };
            }
            Flavor::Mariadb { major: a, minor: b }
        } else {
            Flavor::Mysql {
                major: a,
                minor: b,
                patch: c,
            }
        }
    }

    fn at_least(self, want: (u32, u32, u32)) -> bool {
        let have = match self {
            Flavor::Mariadb { major, minor } => (major, minor, 0),
            Flavor::Mysql {
                major,
                minor,
                patch,
            } => (major, minor, patch),
        };
        have >= want
    }
}

/// Whether a backslash escapes in string literals of this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backslash {
    /// The default `sql_mode`.
    Escapes,
    /// `NO_BACKSLASH_ESCAPES`.
    Literal,
}

impl Backslash {
    pub fn from_sql_mode(mode: &str) -> Backslash {
        if mode
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("NO_BACKSLASH_ESCAPES"))
        {
            Backslash::Literal
        } else {
            Backslash::Escapes
        }
    }
}

/// `` `name` `` with backticks doubled: the same in every `sql_mode`.
pub fn quote_ident(name: &str) -> Result<String, TargetError> {
    if name.contains('\0') {
        return Err(TargetError::InvalidSecret(
            "a MySQL name cannot contain NUL".into(),
        ));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// `` `user`@`host` ``.
pub fn account(user: &str, host: &str) -> Result<String, TargetError> {
    Ok(format!("{}@{}", quote_ident(user)?, quote_ident(host)?))
}

/// A string literal for a session in `mode`: `'` doubled (valid in both modes) and `\`
/// doubled only when backslashes escape. Rejects NUL.
pub fn string_literal(text: &str, mode: Backslash) -> Result<Zeroizing<String>, TargetError> {
    if text.contains('\0') {
        return Err(TargetError::InvalidSecret(
            "a MySQL string cannot contain NUL".into(),
        ));
    }
    let mut out = Zeroizing::new(String::with_capacity(text.len() + 2));
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if mode == Backslash::Escapes => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// `X'…'`: a value that no `sql_mode` reinterprets (for `WHERE` clauses).
pub fn hex_literal(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02X}")).collect();
    format!("X'{hex}'")
}

/// The `mysql_native_password` hash: `*` and the upper-case hex of SHA1(SHA1(password)).
pub fn native_password_hash(password: &SecretString) -> Zeroizing<String> {
    let inner = sha1::Sha1::digest(password.expose_secret().as_bytes());
    let outer = sha1::Sha1::digest(inner);
    let mut s = Zeroizing::new(String::from("*"));
    for b in outer {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// MariaDB's `ed25519` authentication string: the Ed25519 public key whose secret scalar is
/// the clamped first half of SHA-512(password), base64 without padding.
pub fn ed25519_password_hash(password: &SecretString) -> Zeroizing<String> {
    let digest = sha2::Sha512::digest(password.expose_secret().as_bytes());
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&digest[..32]);
    let point = curve25519_dalek::edwards::EdwardsPoint::mul_base_clamped(*seed);
    Zeroizing::new(
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(point.compress().to_bytes()),
    )
}

// ---- A lexer for what SHOW GRANTS / SHOW CREATE USER print -----------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Word(String),
    /// A `` `quoted` `` identifier, unquoted.
    Ident(String),
    /// A `'quoted'` or `"quoted"` string, unquoted.
    Str(String),
    Punct(char),
}

/// Tokens with their byte ranges in the line.
pub(crate) fn lex(line: &str) -> Vec<(Tok, usize, usize)> {
    let b: Vec<char> = line.chars().collect();
    let offsets: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
    let at = |i: usize| offsets.get(i).copied().unwrap_or(line.len());
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '`' || c == '\'' || c == '"' {
            let start = i;
            let mut s = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if i + 1 < b.len() && b[i + 1] == c {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                if c != '`' && b[i] == '\\' && i + 1 < b.len() {
                    s.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            let tok = if c == '`' { Tok::Ident(s) } else { Tok::Str(s) };
            out.push((tok, at(start), at(i.min(b.len()))));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            out.push((Tok::Word(b[start..i].iter().collect()), at(start), at(i)));
        } else {
            out.push((Tok::Punct(c), at(i), at(i + 1)));
            i += 1;
        }
    }
    out
}

fn is_word(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Word(x) if x.eq_ignore_ascii_case(w))
}

fn name_of(t: &Tok) -> Option<&str> {
    match t {
        Tok::Word(s) | Tok::Ident(s) | Tok::Str(s) => Some(s),
        Tok::Punct(_) => None,
    }
}

/// One authentication method of an account: the plugin and its `USING`/`AS` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMethod {
    pub plugin: String,
    pub using: Option<String>,
}

/// The authentication methods of an account, from `SHOW CREATE USER` (first to last).
/// An account without `IDENTIFIED` authenticates with `mysql_native_password`.
pub fn auth_methods(show_create_user: &str) -> Vec<AuthMethod> {
    let native = || {
        vec![AuthMethod {
            plugin: "mysql_native_password".into(),
            using: None,
        }]
    };
    let toks = lex(show_create_user);
    let Some(pos) = toks.iter().position(|(t, _, _)| is_word(t, "IDENTIFIED")) else {
        return native();
    };
    let mut i = pos + 1;
    match toks.get(i).map(|t| &t.0) {
        Some(t) if is_word(t, "VIA") || is_word(t, "WITH") => i += 1,
        _ => return native(),
    }
    let mut methods = Vec::new();
    while let Some((t, _, _)) = toks.get(i) {
        let Some(name) = name_of(t) else { break };
        let mut m = AuthMethod {
            plugin: name.to_ascii_lowercase(),
            using: None,
        };
        i += 1;
        // `USING|AS 'string'` (SHOW CREATE USER never prints `PASSWORD('…')`).
        if toks
            .get(i)
            .is_some_and(|(t, _, _)| is_word(t, "USING") || is_word(t, "AS"))
        {
            if let Some((Tok::Str(s), _, _)) = toks.get(i + 1) {
                m.using = Some(s.clone());
            }
            i += 2;
        }
        methods.push(m);
        if toks.get(i).is_some_and(|(t, _, _)| is_word(t, "OR")) {
            i += 1;
            continue;
        }
        break;
    }
    if methods.is_empty() {
        return native();
    }
    methods
}

/// Just the plugin names of [`auth_methods`].
pub fn auth_plugins(show_create_user: &str) -> Vec<String> {
    auth_methods(show_create_user)
        .into_iter()
        .map(|m| m.plugin)
        .collect()
}

/// Plugins that store a password hash in the server's own tables.
fn stores_password(plugin: &str) -> bool {
    matches!(
        plugin,
        "mysql_native_password"
            | "ed25519"
            | "caching_sha2_password"
            | "sha256_password"
            | "parsec"
            | "mysql_old_password"
            | ""
    )
}

/// The statement that sets `account`'s password, keeping its authentication methods.
///
/// - MariaDB, one method: `SET PASSWORD FOR acct = '<hash>'` with the hash computed here
///   for `mysql_native_password` and `ed25519` (the plaintext never reaches the server;
///   MariaDB lets any user run this for their own account, unlike `ALTER USER`), and
///   `= PASSWORD('…')` for other password plugins.
/// - MariaDB, several methods that all store passwords: `SET PASSWORD … = PASSWORD('…')`,
///   which MariaDB hashes for each method.
/// - MariaDB, methods mixing password and other plugins (`unix_socket OR ed25519`): `SET
///   PASSWORD` is refused there, so `ALTER USER acct IDENTIFIED VIA …` restates every method,
///   the others with their own `USING` strings (needs the `CREATE USER` privilege).
/// - MySQL ≥ 5.7.6: `ALTER USER acct IDENTIFIED WITH <plugin> BY '…'`, naming the plugin
///   so that it never changes (e.g. `caching_sha2_password` on MySQL 8).
/// - Older MySQL: `SET PASSWORD FOR acct = PASSWORD('…')`.
pub fn set_password_statement(
    flavor: Flavor,
    account: &str,
    methods: &[AuthMethod],
    password: &SecretString,
    mode: Backslash,
) -> Result<Zeroizing<String>, TargetError> {
    let Some(first) = methods.iter().find(|m| stores_password(&m.plugin)) else {
        return Err(TargetError::Misconfigured(format!(
            "account {account} authenticates with {} only, which has no password for keyroll \
             to rotate",
            methods
                .iter()
                .map(|m| m.plugin.as_str())
                .collect::<Vec<_>>()
                .join(" OR ")
        )));
    };
    let lit = |s: &str| string_literal(s, mode);
    let all_passwords = methods.iter().all(|m| stores_password(&m.plugin));
    Ok(match flavor {
        Flavor::Mariadb { .. } if methods.len() == 1 => {
            match hashed_using(&first.plugin, password, mode)? {
                Some(hash) => Zeroizing::new(format!("SET PASSWORD FOR {account} = {}", *hash)),
                None => Zeroizing::new(format!(
                    "SET PASSWORD FOR {account} = PASSWORD({})",
                    *lit(password.expose_secret())?
                )),
            }
        }
        Flavor::Mariadb { .. } if all_passwords => Zeroizing::new(format!(
            "SET PASSWORD FOR {account} = PASSWORD({})",
            *lit(password.expose_secret())?
        )),
        Flavor::Mariadb { .. } => {
            let mut parts = Vec::new();
            for m in methods {
                let plugin = quote_ident(&m.plugin)?;
                let part = if stores_password(&m.plugin) {
                    match hashed_using(&m.plugin, password, mode)? {
                        Some(hash) => Zeroizing::new(format!("{plugin} USING {}", *hash)),
                        None => Zeroizing::new(format!(
                            "{plugin} USING PASSWORD({})",
                            *lit(password.expose_secret())?
                        )),
                    }
                } else {
                    match &m.using {
                        Some(u) => Zeroizing::new(format!("{plugin} USING {}", *lit(u)?)),
                        None => Zeroizing::new(plugin),
                    }
                };
                parts.push(part);
            }
            let joined: Vec<&str> = parts.iter().map(|p| p.as_str()).collect();
            Zeroizing::new(format!(
                "ALTER USER {account} IDENTIFIED VIA {}",
                joined.join(" OR ")
            ))
        }
        f @ Flavor::Mysql { .. } if f.at_least((5, 7, 6)) => Zeroizing::new(format!(
            "ALTER USER {account} IDENTIFIED WITH {} BY {}",
            quote_ident(&first.plugin)?,
            *lit(password.expose_secret())?
        )),
        Flavor::Mysql { .. } => Zeroizing::new(format!(
            "SET PASSWORD FOR {account} = PASSWORD({})",
            *lit(password.expose_secret())?
        )),
    })
}

/// The quoted hash MariaDB stores for `plugin`, when keyroll can compute it.
fn hashed_using(
    plugin: &str,
    password: &SecretString,
    mode: Backslash,
) -> Result<Option<Zeroizing<String>>, TargetError> {
    Ok(match plugin {
        "ed25519" => Some(string_literal(&ed25519_password_hash(password), mode)?),
        "mysql_native_password" | "" => {
            Some(string_literal(&native_password_hash(password), mode)?)
        }
        _ => None,
    })
}

/// `CREATE USER` for a new clone with the original's first password plugin.
pub fn create_user_statement(
    flavor: Flavor,
    account: &str,
    methods: &[AuthMethod],
    password: &SecretString,
    mode: Backslash,
) -> Result<Zeroizing<String>, TargetError> {
    let plugin = methods
        .iter()
        .find(|m| stores_password(&m.plugin))
        .map(|m| m.plugin.as_str())
        .unwrap_or("mysql_native_password");
    let lit = |s: &str| string_literal(s, mode);
    Ok(match (flavor, plugin) {
        (Flavor::Mariadb { .. }, "ed25519") => Zeroizing::new(format!(
            "CREATE USER {account} IDENTIFIED VIA ed25519 USING {}",
            *lit(&ed25519_password_hash(password))?
        )),
        (Flavor::Mariadb { .. }, "mysql_native_password" | "") => Zeroizing::new(format!(
            "CREATE USER {account} IDENTIFIED BY PASSWORD {}",
            *lit(&native_password_hash(password))?
        )),
        (Flavor::Mariadb { .. }, p) => Zeroizing::new(format!(
            "CREATE USER {account} IDENTIFIED VIA {} USING PASSWORD({})",
            quote_ident(p)?,
            *lit(password.expose_secret())?
        )),
        (Flavor::Mysql { .. }, "") => Zeroizing::new(format!(
            "CREATE USER {account} IDENTIFIED BY {}",
            *lit(password.expose_secret())?
        )),
        (Flavor::Mysql { .. }, p) => Zeroizing::new(format!(
            "CREATE USER {account} IDENTIFIED WITH {} BY {}",
            quote_ident(p)?,
            *lit(password.expose_secret())?
        )),
    })
}

/// An account's TLS requirement and resource limits (columns of `mysql.user`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountOptions {
    /// `''`, `ANY`, `X509` or `SPECIFIED`.
    pub ssl_type: String,
    pub ssl_cipher: String,
    pub x509_issuer: String,
    pub x509_subject: String,
    pub max_questions: u64,
    pub max_updates: u64,
    pub max_connections: u64,
    pub max_user_connections: i64,
}

impl AccountOptions {
    /// `REQUIRE …` as `ALTER USER` takes it.
    pub fn require_clause(&self, mode: Backslash) -> Result<String, TargetError> {
        Ok(match self.ssl_type.to_ascii_uppercase().as_str() {
            "" => "REQUIRE NONE".into(),
            "ANY" => "REQUIRE SSL".into(),
            "X509" => "REQUIRE X509".into(),
            _ => {
                let mut parts = Vec::new();
                for (k, v) in [
                    ("CIPHER", &self.ssl_cipher),
                    ("ISSUER", &self.x509_issuer),
                    ("SUBJECT", &self.x509_subject),
                ] {
                    if !v.is_empty() {
                        parts.push(format!("{k} {}", *string_literal(v, mode)?));
                    }
                }
                if parts.is_empty() {
                    "REQUIRE SSL".into()
                } else {
                    format!("REQUIRE {}", parts.join(" AND "))
                }
            }
        })
    }

    /// `ALTER USER acct REQUIRE … WITH MAX_… n …`: the clone gets these options.
    pub fn alter_statement(&self, account: &str, mode: Backslash) -> Result<String, TargetError> {
        Ok(format!(
            "ALTER USER {account} {} WITH MAX_QUERIES_PER_HOUR {} MAX_UPDATES_PER_HOUR {} \
             MAX_CONNECTIONS_PER_HOUR {} MAX_USER_CONNECTIONS {}",
            self.require_clause(mode)?,
            self.max_questions,
            self.max_updates,
            self.max_connections,
            self.max_user_connections.max(0)
        ))
    }
}

/// One line of `SHOW GRANTS`, without its grantee.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// `GRANT …` up to `TO`, `REVOKE …` up to `FROM`, or `SET DEFAULT ROLE …` up to `FOR`,
    /// exactly as the server printed it (wildcards such as `%` and `\_` untouched).
    pub head: String,
    /// The keyword before the grantee: `TO`, `FROM` or `FOR`.
    pub keyword: &'static str,
    pub grant_option: bool,
    pub admin_option: bool,
}

impl Grant {
    /// Parses a line; `None` for lines keyroll does not replay.
    pub fn parse(line: &str) -> Option<Grant> {
        let toks = lex(line);
        let (first, _, _) = toks.first()?;
        let keyword = if is_word(first, "GRANT") {
            "TO"
        } else if is_word(first, "REVOKE") {
            "FROM"
        } else if is_word(first, "SET")
            && toks.get(1).is_some_and(|t| is_word(&t.0, "DEFAULT"))
            && toks.get(2).is_some_and(|t| is_word(&t.0, "ROLE"))
        {
            "FOR"
        } else {
            return None;
        };
        let pos = toks.iter().position(|(t, _, _)| is_word(t, keyword))?;
        let head = line[..toks[pos].1].trim_end().to_string();
        // Skip the grantee: name [@ host].
        let mut i = pos + 2;
        if toks.get(i).is_some_and(|(t, _, _)| *t == Tok::Punct('@')) {
            i += 2;
        }
        let rest: Vec<&Tok> = toks[i.min(toks.len())..]
            .iter()
            .map(|(t, _, _)| t)
            .collect();
        let has = |a: &str, b: &str| {
            rest.windows(2)
                .any(|w| is_word(w[0], a) && is_word(w[1], b))
        };
        Some(Grant {
            head,
            keyword,
            grant_option: has("GRANT", "OPTION"),
            admin_option: has("ADMIN", "OPTION"),
        })
    }

    /// Whether the line only says the account exists (`GRANT USAGE ON *.*` without
    /// `GRANT OPTION`).
    pub fn is_usage_only(&self) -> bool {
        let toks: Vec<Tok> = lex(&self.head).into_iter().map(|t| t.0).collect();
        self.keyword == "TO"
            && !self.grant_option
            && toks.len() == 6
            && is_word(&toks[1], "USAGE")
            && is_word(&toks[2], "ON")
            && toks[3] == Tok::Punct('*')
            && toks[4] == Tok::Punct('.')
            && toks[5] == Tok::Punct('*')
    }

    /// The statement giving the same to `account`.
    pub fn for_account(&self, account: &str) -> String {
        let mut s = format!("{} {} {account}", self.head, self.keyword);
        if self.grant_option {
            s.push_str(" WITH GRANT OPTION");
        }
        if self.admin_option {
            s.push_str(" WITH ADMIN OPTION");
        }
        s
    }
}

/// The grants to replay from the original's `SHOW GRANTS` (the `USAGE` line is implied by
/// the account's existence and skipped).
pub fn grants_to_replay(show_grants: &[String]) -> Vec<Grant> {
    show_grants
        .iter()
        .filter_map(|l| {
            let g = Grant::parse(l);
            if g.is_none() {
                tracing::warn!("SHOW GRANTS line not replayed (unknown form)");
            }
            g
        })
        .filter(|g| !g.is_usage_only())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn versions() {
        assert_eq!(
            Flavor::parse("10.11.19-MariaDB-0+deb12u1"),
            Flavor::Mariadb {
                major: 10,
                minor: 11
            }
        );
        assert_eq!(
            Flavor::parse("5.5.5-10.3.39-MariaDB"),
            Flavor::Mariadb {
                major: 10,
                minor: 3
            }
        );
        assert_eq!(
            Flavor::parse("8.0.36"),
            Flavor::Mysql {
                major: 8,
                minor: 0,
                patch: 36
            }
        );
        assert_eq!(
            Flavor::parse("8.0.mysql_aurora.3.05.2"),
            Flavor::Mysql {
                major: 8,
                minor: 0,
                patch: 3
            }
        );
        assert_eq!(
            Flavor::parse("5.7.44-log"),
            Flavor::Mysql {
                major: 5,
                minor: 7,
                patch: 44
            }
        );
    }

    #[test]
    fn literals_are_right_in_both_modes() {
        let nasty = "a'b\\c\"d%_";
        assert_eq!(
            *string_literal(nasty, Backslash::Escapes).unwrap(),
            "'a''b\\\\c\"d%_'"
        );
        assert_eq!(
            *string_literal(nasty, Backslash::Literal).unwrap(),
            "'a''b\\c\"d%_'"
        );
        // Without a backslash the literal is the same in both modes.
        assert_eq!(
            *string_literal("o'brien", Backslash::Escapes).unwrap(),
            *string_literal("o'brien", Backslash::Literal).unwrap()
        );
        assert!(string_literal("a\0", Backslash::Literal).is_err());
        assert_eq!(
            account("\"x\"; DROP ROLE y; --", "%").unwrap(),
            "`\"x\"; DROP ROLE y; --`@`%`"
        );
        assert_eq!(account("a`b", "10.0.0.%").unwrap(), "`a``b`@`10.0.0.%`");
        assert_eq!(hex_literal("o'b"), "X'6F2762'");
        assert_eq!(
            Backslash::from_sql_mode("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES"),
            Backslash::Literal
        );
        assert_eq!(
            Backslash::from_sql_mode("STRICT_TRANS_TABLES"),
            Backslash::Escapes
        );
    }

    #[test]
    fn hashes_match_what_mariadb_stores() {
        // Values a MariaDB 10.11 server stored for the password "pw1".
        assert_eq!(
            *native_password_hash(&pw("pw1")),
            "*2B602296A79E0A8784ACC5C88D92E46588CCA3C3"
        );
        assert_eq!(
            *ed25519_password_hash(&pw("pw1")),
            "9IaQu55QANbcP3OBku7SlJub/VL12GY9ElYo6ITP9WY"
        );
    }

    #[test]
    fn plugins_from_show_create_user() {
        assert_eq!(
            auth_plugins("CREATE USER `nat`@`%` IDENTIFIED BY PASSWORD '*2B60' REQUIRE SSL"),
            ["mysql_native_password"]
        );
        assert_eq!(
            auth_plugins("CREATE USER `ed`@`%` IDENTIFIED VIA ed25519 USING '9IaQu55Q'"),
            ["ed25519"]
        );
        assert_eq!(
            auth_plugins("CREATE USER `ch`@`%` IDENTIFIED VIA unix_socket OR ed25519 USING 'Gv2J'"),
            ["unix_socket", "ed25519"]
        );
        assert_eq!(
            auth_plugins(
                "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$x\\'y' \
                 REQUIRE NONE PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK"
            ),
            ["caching_sha2_password"]
        );
        assert_eq!(
            auth_plugins("CREATE USER `n`@`%`"),
            ["mysql_native_password"]
        );
    }

    fn m(plugins: &[&str]) -> Vec<AuthMethod> {
        plugins
            .iter()
            .map(|p| AuthMethod {
                plugin: p.to_string(),
                using: None,
            })
            .collect()
    }

    #[test]
    fn mariadb_password_statements_send_hashes() {
        let f = Flavor::Mariadb {
            major: 10,
            minor: 11,
        };
        let a = account("o'brien", "%").unwrap();
        let s = set_password_statement(f, &a, &m(&["ed25519"]), &pw("pw1"), Backslash::Escapes)
            .unwrap();
        assert_eq!(
            *s,
            "SET PASSWORD FOR `o'brien`@`%` = '9IaQu55QANbcP3OBku7SlJub/VL12GY9ElYo6ITP9WY'"
        );
        let s = set_password_statement(
            f,
            &a,
            &m(&["mysql_native_password"]),
            &pw("pw1"),
            Backslash::Literal,
        )
        .unwrap();
        assert_eq!(
            *s,
            "SET PASSWORD FOR `o'brien`@`%` = '*2B602296A79E0A8784ACC5C88D92E46588CCA3C3'"
        );
        // Several password methods: MariaDB hashes PASSWORD('…') for each.
        let both = m(&["mysql_native_password", "ed25519"]);
        let s = set_password_statement(f, &a, &both, &pw("p'w\\"), Backslash::Literal).unwrap();
        assert_eq!(*s, "SET PASSWORD FOR `o'brien`@`%` = PASSWORD('p''w\\')");
        let s = set_password_statement(f, &a, &both, &pw("p'w\\"), Backslash::Escapes).unwrap();
        assert_eq!(*s, "SET PASSWORD FOR `o'brien`@`%` = PASSWORD('p''w\\\\')");
        // A method without a password (SET PASSWORD is refused): every method restated.
        let mut mixed = m(&["unix_socket", "ed25519", "pam"]);
        mixed[2].using = Some("mariadb's".into());
        let s = set_password_statement(f, &a, &mixed, &pw("pw1"), Backslash::Literal).unwrap();
        assert_eq!(
            *s,
            "ALTER USER `o'brien`@`%` IDENTIFIED VIA `unix_socket` OR `ed25519` USING \
             '9IaQu55QANbcP3OBku7SlJub/VL12GY9ElYo6ITP9WY' OR `pam` USING 'mariadb''s'"
        );
        let e = set_password_statement(f, &a, &m(&["unix_socket"]), &pw("x"), Backslash::Literal)
            .unwrap_err();
        assert!(e.to_string().contains("unix_socket"));
        let c = create_user_statement(
            f,
            &a,
            &m(&["unix_socket", "ed25519"]),
            &pw("pw1"),
            Backslash::Escapes,
        )
        .unwrap();
        assert_eq!(
            *c,
            "CREATE USER `o'brien`@`%` IDENTIFIED VIA ed25519 USING '9IaQu55QANbcP3OBku7SlJub/VL12GY9ElYo6ITP9WY'"
        );
        let c = create_user_statement(f, &a, &[], &pw("pw1"), Backslash::Escapes).unwrap();
        assert_eq!(
            *c,
            "CREATE USER `o'brien`@`%` IDENTIFIED BY PASSWORD '*2B602296A79E0A8784ACC5C88D92E46588CCA3C3'"
        );
    }

    #[test]
    fn mysql8_password_statements_keep_the_plugin() {
        let f = Flavor::Mysql {
            major: 8,
            minor: 0,
            patch: 36,
        };
        let a = account("app", "10.0.%").unwrap();
        let s = set_password_statement(
            f,
            &a,
            &m(&["caching_sha2_password"]),
            &pw("a'b\\c"),
            Backslash::Escapes,
        )
        .unwrap();
        assert_eq!(
            *s,
            "ALTER USER `app`@`10.0.%` IDENTIFIED WITH `caching_sha2_password` BY 'a''b\\\\c'"
        );
        let s = set_password_statement(
            f,
            &a,
            &m(&["mysql_native_password"]),
            &pw("a'b\\c"),
            Backslash::Literal,
        )
        .unwrap();
        assert_eq!(
            *s,
            "ALTER USER `app`@`10.0.%` IDENTIFIED WITH `mysql_native_password` BY 'a''b\\c'"
        );
        let c = create_user_statement(
            f,
            &account("app_clone", "10.0.%").unwrap(),
            &m(&["caching_sha2_password"]),
            &pw("x"),
            Backslash::Escapes,
        )
        .unwrap();
        assert_eq!(
            *c,
            "CREATE USER `app_clone`@`10.0.%` IDENTIFIED WITH `caching_sha2_password` BY 'x'"
        );
        let old = Flavor::Mysql {
            major: 5,
            minor: 6,
            patch: 51,
        };
        let s = set_password_statement(
            old,
            &a,
            &m(&["mysql_native_password"]),
            &pw("x"),
            Backslash::Escapes,
        )
        .unwrap();
        assert_eq!(*s, "SET PASSWORD FOR `app`@`10.0.%` = PASSWORD('x')");
        let s57 = Flavor::Mysql {
            major: 5,
            minor: 7,
            patch: 44,
        };
        let s = set_password_statement(
            s57,
            &a,
            &m(&["mysql_native_password"]),
            &pw("x"),
            Backslash::Escapes,
        )
        .unwrap();
        assert!(s.starts_with("ALTER USER"));
        // The plugin read from a MySQL 8 SHOW CREATE USER is the one named.
        let methods = auth_methods(
            "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$x' REQUIRE NONE",
        );
        let s = set_password_statement(f, &a, &methods, &pw("x"), Backslash::Escapes).unwrap();
        assert!(
            s.contains("IDENTIFIED WITH `caching_sha2_password` BY 'x'"),
            "{}",
            *s
        );
    }

    #[test]
    fn grants_are_replayed_exactly() {
        let lines: Vec<String> = [
            "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*2B60' REQUIRE SSL",
            "GRANT SELECT, INSERT ON `app%`.* TO `app`@`%` WITH GRANT OPTION",
            "GRANT SELECT ON `app\\_db`.* TO `app`@`%`",
            "GRANT SELECT (`user`) ON `mysql`.`user` TO `app`@`%`",
            "GRANT `r1` TO `app`@`%` WITH ADMIN OPTION",
            "GRANT PROXY ON ``@`%` TO `app`@`%`",
            "SET DEFAULT ROLE `r1` FOR `app`@`%`",
            "GRANT EXECUTE ON PROCEDURE `db`.`p TO q` TO `app`@`%`",
            "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
            "GRANT USAGE ON *.* TO `app`@`%` WITH MAX_QUERIES_PER_HOUR 10 GRANT OPTION",
            "something else",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let clone = account("app_clone", "%").unwrap();
        let out: Vec<String> = grants_to_replay(&lines)
            .iter()
            .map(|g| g.for_account(&clone))
            .collect();
        assert_eq!(
            out,
            [
                "GRANT SELECT, INSERT ON `app%`.* TO `app_clone`@`%` WITH GRANT OPTION",
                "GRANT SELECT ON `app\\_db`.* TO `app_clone`@`%`",
                "GRANT SELECT (`user`) ON `mysql`.`user` TO `app_clone`@`%`",
                "GRANT `r1` TO `app_clone`@`%` WITH ADMIN OPTION",
                "GRANT PROXY ON ``@`%` TO `app_clone`@`%`",
                "SET DEFAULT ROLE `r1` FOR `app_clone`@`%`",
                "GRANT EXECUTE ON PROCEDURE `db`.`p TO q` TO `app_clone`@`%`",
                "REVOKE INSERT ON `mysql`.* FROM `app_clone`@`%`",
                "GRANT USAGE ON *.* TO `app_clone`@`%` WITH GRANT OPTION",
            ]
        );
        // Replaying twice changes nothing: `%` is never doubled.
        let again: Vec<String> = grants_to_replay(&out)
            .iter()
            .map(|g| g.for_account(&clone))
            .collect();
        assert_eq!(again, out);
        // A hostile user name inside the grantee does not confuse the parser.
        let g = Grant::parse("GRANT SELECT ON `d`.* TO `x TO y`@`%` WITH GRANT OPTION").unwrap();
        assert_eq!(g.head, "GRANT SELECT ON `d`.*");
        assert!(g.grant_option);
    }

    #[test]
    fn tls_requirements_and_limits() {
        let mut o = AccountOptions::default();
        assert_eq!(
            o.require_clause(Backslash::Escapes).unwrap(),
            "REQUIRE NONE"
        );
        o.ssl_type = "ANY".into();
        assert_eq!(o.require_clause(Backslash::Escapes).unwrap(), "REQUIRE SSL");
        o.ssl_type = "X509".into();
        assert_eq!(
            o.require_clause(Backslash::Escapes).unwrap(),
            "REQUIRE X509"
        );
        o.ssl_type = "SPECIFIED".into();
        o.x509_issuer = "/CN=O'Neil CA".into();
        o.ssl_cipher = "ECDHE-RSA-AES256-GCM-SHA384".into();
        assert_eq!(
            o.require_clause(Backslash::Literal).unwrap(),
            "REQUIRE CIPHER 'ECDHE-RSA-AES256-GCM-SHA384' AND ISSUER '/CN=O''Neil CA'"
        );
        o.max_user_connections = 5;
        let s = o.alter_statement("`a`@`%`", Backslash::Escapes).unwrap();
        assert!(s.starts_with("ALTER USER `a`@`%` REQUIRE CIPHER"));
        assert!(s.ends_with("MAX_USER_CONNECTIONS 5"));
    }
}
