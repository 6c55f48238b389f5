//! Parsing command-line values the way the aws CLI does: `file://` and `fileb://` sources,
//! `Key=k,Value=v` shorthand or JSON for tags, filters and rotation rules.

use std::io::Read;

use keyroll_core::api::Filter;
use keyroll_core::model::{RotationRules, Tag};
use secrecy::{SecretSlice, SecretString};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {what} from {path}: {source} (check the path after file:// or fileb://)")]
    File {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {what} from standard input: {source}")]
    Stdin {
        source: std::io::Error,
        what: &'static str,
    },
    #[error(
        "{what} read from {source_name} is not valid UTF-8; use --secret-binary fileb://PATH for binary data"
    )]
    NotUtf8 {
        what: &'static str,
        source_name: String,
    },
    #[error("invalid {what} {value:?}: {hint}")]
    Syntax {
        what: &'static str,
        value: String,
        hint: String,
    },
}

/// A `--secret-string`: literal text, `-` for standard input, or `file://PATH`. Reading
/// from a file or stdin keeps the secret out of the shell history and `ps`.
pub fn secret_string(arg: &str) -> Result<SecretString, InputError> {
    const WHAT: &str = "the secret string";
    let text: Zeroizing<String> = if arg == "-" {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|source| InputError::Stdin { source, what: WHAT })?;
        let s = String::from_utf8(buf.to_vec()).map_err(|_| InputError::NotUtf8 {
            what: WHAT,
            source_name: "standard input".into(),
        })?;
        // A trailing newline from `echo` or a heredoc is not part of the secret.
        Zeroizing::new(s.strip_suffix('\n').map(str::to_string).unwrap_or(s))
    } else if let Some(path) = arg.strip_prefix("file://") {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| InputError::File {
            what: WHAT,
            path: path.into(),
            source,
        })?);
        Zeroizing::new(
            String::from_utf8(bytes.to_vec()).map_err(|_| InputError::NotUtf8 {
                what: WHAT,
                source_name: path.into(),
            })?,
        )
    } else {
        Zeroizing::new(arg.to_string())
    };
    Ok(SecretString::from(text.to_string()))
}

/// A `--secret-binary`: `fileb://PATH` (raw bytes), `-` (stdin, raw), or base64 text.
pub fn secret_binary(arg: &str) -> Result<SecretSlice<u8>, InputError> {
    const WHAT: &str = "the secret binary";
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|source| InputError::Stdin { source, what: WHAT })?;
        return Ok(SecretSlice::from(buf));
    }
    if let Some(path) = arg.strip_prefix("fileb://") {
        let bytes = std::fs::read(path).map_err(|source| InputError::File {
            what: WHAT,
            path: path.into(),
            source,
        })?;
        return Ok(SecretSlice::from(bytes));
    }
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(arg.trim())
        .map(SecretSlice::from)
        .map_err(|_| InputError::Syntax {
            what: "--secret-binary",
            value: "(not shown)".into(),
            hint: "give base64 text, fileb://PATH for a file's raw bytes, or - for stdin".into(),
        })
}

/// Parses `Key=a,Value=b` (one tag per argument) or a JSON array of `{"Key","Value"}`.
pub fn tags(args: &[String]) -> Result<Vec<Tag>, InputError> {
    if let [one] = args
        && one.trim_start().starts_with('[')
    {
        return serde_json::from_str(one).map_err(|e| InputError::Syntax {
            what: "--tags",
            value: one.clone(),
            hint: format!("expected a JSON array of {{\"Key\":..,\"Value\":..}} ({e})"),
        });
    }
    args.iter()
        .map(|a| {
            let kv = shorthand(a, "--tags")?;
            let key = kv.iter().find(|(k, _)| k == "Key").map(|(_, v)| v.clone());
            let value = kv
                .iter()
                .find(|(k, _)| k == "Value")
                .map(|(_, v)| v.clone());
            match key {
                Some(key) => Ok(Tag {
                    key,
                    value: value.unwrap_or_default(),
                }),
                None => Err(InputError::Syntax {
                    what: "--tags",
                    value: a.clone(),
                    hint: "write each tag as Key=NAME,Value=VALUE".into(),
                }),
            }
        })
        .collect()
}

/// Parses `Key=name,Values=a,b` (one filter per argument) or a JSON array.
pub fn filters(args: &[String]) -> Result<Vec<Filter>, InputError> {
    if let [one] = args
        && one.trim_start().starts_with('[')
    {
        return serde_json::from_str(one).map_err(|e| InputError::Syntax {
            what: "--filters",
            value: one.clone(),
            hint: format!("expected a JSON array of {{\"Key\":..,\"Values\":[..]}} ({e})"),
        });
    }
    args.iter()
        .map(|a| {
            let err = || InputError::Syntax {
                what: "--filters",
                value: a.clone(),
                hint: "write each filter as Key=name,Values=prod/,dev/ (keys: name, description, \
                       tag-key, tag-value, primary-region, owning-service, all)"
                    .into(),
            };
            let rest = a.strip_prefix("Key=").ok_or_else(err)?;
            let (key, values) = rest.split_once(",Values=").ok_or_else(err)?;
            Ok(Filter {
                key: key.to_string(),
                values: values.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Parses `AutomaticallyAfterDays=30`, `ScheduleExpression="rate(10 days)",Duration=3h` or JSON.
pub fn rotation_rules(arg: &str) -> Result<RotationRules, InputError> {
    if arg.trim_start().starts_with('{') {
        return serde_json::from_str(arg).map_err(|e| InputError::Syntax {
            what: "--rotation-rules",
            value: arg.into(),
            hint: format!("expected JSON like {{\"AutomaticallyAfterDays\": 30}} ({e})"),
        });
    }
    let mut rules = RotationRules::default();
    for (k, v) in shorthand(arg, "--rotation-rules")? {
        match k.as_str() {
            "AutomaticallyAfterDays" => {
                rules.automatically_after_days =
                    Some(v.parse().map_err(|_| InputError::Syntax {
                        what: "--rotation-rules",
                        value: arg.into(),
                        hint:
                            "AutomaticallyAfterDays must be a whole number of days (1-1000)".into(),
                    })?)
            }
            "ScheduleExpression" => rules.schedule_expression = Some(v),
            "Duration" => rules.duration = Some(v),
            other => {
                return Err(InputError::Syntax {
                    what: "--rotation-rules",
                    value: arg.into(),
                    hint: format!(
                        "unknown member {other}; use AutomaticallyAfterDays, \
                         ScheduleExpression and Duration"
                    ),
                });
            }
        }
    }
    Ok(rules)
}

/// Splits `A=1,B="x, y",C=3` into pairs; double quotes protect commas.
fn shorthand(s: &str, what: &'static str) -> Result<Vec<(String, String)>, InputError> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let (k, v) = p.split_once('=').ok_or_else(|| InputError::Syntax {
            what,
            value: s.into(),
            hint: format!("expected NAME=VALUE pairs separated by commas, got {p:?}"),
        })?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tags_shorthand_and_json() {
        let t = tags(&["Key=env,Value=prod".into(), "Key=team,Value=".into()]).unwrap();
        assert_eq!(t, vec![Tag::new("env", "prod"), Tag::new("team", "")]);
        let t = tags(&[r#"[{"Key":"a","Value":"b"}]"#.into()]).unwrap();
        assert_eq!(t, vec![Tag::new("a", "b")]);
        assert!(tags(&["env=prod".into()]).is_err());
    }

    #[test]
    fn filters_shorthand() {
        let f = filters(&["Key=name,Values=prod/,dev/".into()]).unwrap();
        assert_eq!(f[0].key, "name");
        assert_eq!(f[0].values, vec!["prod/", "dev/"]);
        assert!(filters(&["name=prod".into()]).is_err());
    }

    #[test]
    fn rules_shorthand_and_json() {
        let r = rotation_rules("AutomaticallyAfterDays=30").unwrap();
        assert_eq!(r.automatically_after_days, Some(30));
        let r =
            rotation_rules(r#"ScheduleExpression="cron(0 16 1,15 * ? *)",Duration=2h"#).unwrap();
        assert_eq!(
            r.schedule_expression.as_deref(),
            Some("cron(0 16 1,15 * ? *)")
        );
        assert_eq!(r.duration.as_deref(), Some("2h"));
        let r = rotation_rules(r#"{"AutomaticallyAfterDays": 7}"#).unwrap();
        assert_eq!(r.automatically_after_days, Some(7));
        assert!(rotation_rules("Every=3").is_err());
    }

    #[test]
    fn secret_string_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(&p, "{\"password\":\"x\"}").unwrap();
        let s = secret_string(&format!("file://{}", p.display())).unwrap();
        assert_eq!(s.expose_secret(), "{\"password\":\"x\"}");
        assert_eq!(secret_string("plain").unwrap().expose_secret(), "plain");
        assert!(secret_string("file:///nonexistent/x").is_err());
    }
}
