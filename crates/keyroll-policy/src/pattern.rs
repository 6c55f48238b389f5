//! Compiled string patterns: literal text, the `*` / `?` wildcards and policy variables
//! (`${aws:username}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}`), matched without
//! allocating unless a variable has to be looked up.

use std::borrow::Cow;

use crate::context::{Context, CtxValue};

/// How a pattern's text is read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (else literal characters).
    pub wildcards: bool,
    /// `${…}` is a policy variable (only under Version 2012-10-17).
    pub variables: bool,
    /// Lowercase the literal text (patterns matched case-insensitively, e.g. actions).
    pub lowercase: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Lit(Box<str>),
    Star,
    One,
    Var {
        key: Box<str>,
        default: Option<Box<str>>,
        idx: usize,
    },
}

/// Fast paths for the common shapes of a pattern without variables.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    /// `*`
    Any,
    /// no wildcard at all
    Exact,
    /// `literal*`
    Prefix,
    General,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    parts: Box<[Part]>,
    vars: usize,
    shape: Shape,
    source: Box<str>,
}

/// A policy variable whose key the request does not carry and that has no default: the
/// element using it does not match (AWS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unresolved;

impl Template {
    /// Compiles `text`; the error names the malformed variable.
    pub fn parse(text: &str, syntax: Syntax) -> Result<Template, String> {
        let mut parts: Vec<Part> = Vec::new();
        let mut lit = String::new();
        let mut vars = 0usize;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables && rest.starts_with("${") {
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "policy variable {} has no closing \"}}\"",
                        quote(rest)
                    ));
                };
                let inner = &rest[2..end];
                let whole = &rest[..=end];
                match inner.trim() {
                    "*" => lit.push('*'),
                    "?" => lit.push('?'),
                    "$" => lit.push('$'),
                    _ => {
                        let (key, default) = parse_variable(inner)
                            .map_err(|why| format!("policy variable {} {why}", quote(whole)))?;
                        flush(&mut parts, &mut lit);
                        parts.push(Part::Var {
                            key: key.into(),
                            default: default.map(Into::into),
                            idx: vars,
                        });
                        vars += 1;
                    }
                }
                rest = &rest[end + 1..];
                continue;
            }
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut parts, &mut lit);
                    if parts.last() != Some(&Part::Star) {
                        parts.push(Part::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut parts, &mut lit);
                    parts.push(Part::One);
                }
                _ if syntax.lowercase => lit.extend(c.to_lowercase()),
                _ => lit.push(c),
            }
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut parts, &mut lit);
        let shape = if vars > 0 {
            Shape::General
        } else {
            match parts.as_slice() {
                [Part::Star] => Shape::Any,
                [] | [Part::Lit(_)] => Shape::Exact,
                [Part::Lit(_), Part::Star] => Shape::Prefix,
                _ => Shape::General,
            }
        };
        Ok(Template {
            parts: parts.into_boxed_slice(),
            vars,
            shape,
            source: text.into(),
        })
    }

    /// The text the pattern was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the pattern is one concrete value: no wildcard, no policy variable, and no
    /// `*` / `?` character even where it is literal (as in StringEquals), so that a value
    /// meant as a wildcard never counts as concrete.
    pub fn is_concrete(&self) -> bool {
        self.shape == Shape::Exact && !self.source.contains(['*', '?'])
    }

    /// Whether `text` matches. `fold` compares letters case-insensitively (the pattern's
    /// own literals must then already be lowercase or be compared folded too: folding is
    /// applied to both sides).
    pub fn matches(&self, text: &str, ctx: &dyn Context, fold: bool) -> Result<bool, Unresolved> {
        match (self.shape, self.parts.first()) {
            (Shape::Any, _) => return Ok(true),
            (Shape::Exact, None) => return Ok(text.is_empty()),
            (Shape::Exact, Some(Part::Lit(lit))) => {
                return Ok(prefix_len(text, lit, fold) == Some(text.len()));
            }
            (Shape::Prefix, Some(Part::Lit(lit))) => {
                return Ok(prefix_len(text, lit, fold).is_some());
            }
            _ => {}
        }
        if self.vars == 0 {
            return Ok(glob(&self.parts, &[], text, fold));
        }
        // Patterns rarely hold more than a few variables: their values on the stack.
        const INLINE: usize = 4;
        if self.vars <= INLINE {
            let mut values: [Cow<'_, str>; INLINE] = Default::default();
            self.resolve(ctx, &mut values[..self.vars])?;
            return Ok(glob(&self.parts, &values[..self.vars], text, fold));
        }
        let mut values = vec![Cow::Borrowed(""); self.vars];
        self.resolve(ctx, &mut values)?;
        Ok(glob(&self.parts, &values, text, fold))
    }

    /// Puts the variables' values, in order, into `values` (one slot per variable); `Err`
    /// if one cannot be resolved.
    fn resolve<'a>(
        &'a self,
        ctx: &'a dyn Context,
        values: &mut [Cow<'a, str>],
    ) -> Result<(), Unresolved> {
        let mut slots = values.iter_mut();
        for part in self.parts.iter() {
            if let Part::Var { key, default, .. } = part {
                let value = match (ctx.get(key), default) {
                    (Some(CtxValue::One(v)), _) => v,
                    // A multivalued key cannot be a policy variable (AWS): fall back to the
                    // default, if any.
                    (Some(CtxValue::Many(_)) | None, Some(d)) => Cow::Borrowed(&**d),
                    (Some(CtxValue::Many(_)) | None, None) => return Err(Unresolved),
                };
                if let Some(slot) = slots.next() {
                    *slot = value;
                }
            }
        }
        Ok(())
    }
}

fn flush(parts: &mut Vec<Part>, lit: &mut String) {
    if !lit.is_empty() {
        parts.push(Part::Lit(std::mem::take(lit).into_boxed_str()));
    }
}

/// `key` or `key, 'default'` (a `''` in the default is one quote).
fn parse_variable(inner: &str) -> Result<(String, Option<String>), &'static str> {
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => (k.trim(), Some(d.trim())),
        None => (inner.trim(), None),
    };
    if key.is_empty() {
        return Err("names no key: write ${aws:username} or ${key, 'default'}");
    }
    if key.chars().any(char::is_whitespace) {
        return Err("has a space in its key name");
    }
    let default = match default {
        None => None,
        Some(d) => {
            let body = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .filter(|_| d.len() >= 2)
                .ok_or(
                    "has a default value that is not in single quotes: write ${key, 'default'}",
                )?;
            let mut out = String::with_capacity(body.len());
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        return Err("has a lone ' in its default value: write '' for a quote");
                    }
                }
                out.push(c);
            }
            Some(out)
        }
    };
    Ok((key.to_owned(), default))
}

/// The quoted token, cut to a readable length.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("\"{}…\"", &text[..cut]),
        None => format!("\"{text}\""),
    }
}

fn chars_eq(a: char, b: char, fold: bool) -> bool {
    if a == b {
        return true;
    }
    if !fold {
        return false;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    a.to_lowercase().eq(b.to_lowercase())
}

/// If `text` starts with `lit`, the byte length of that start of `text`.
fn prefix_len(text: &str, lit: &str, fold: bool) -> Option<usize> {
    if !fold {
        return text.starts_with(lit).then_some(lit.len());
    }
    if text.is_ascii() && lit.is_ascii() {
        let n = lit.len();
        return (text.len() >= n && text.as_bytes()[..n].eq_ignore_ascii_case(lit.as_bytes()))
            .then_some(n);
    }
    let mut t = text.char_indices();
    for l in lit.chars() {
        match t.next() {
            Some((_, c)) if chars_eq(c, l, true) => {}
            _ => return None,
        }
    }
    Some(t.next().map_or(text.len(), |(i, _)| i))
}

/// Wildcard match of `parts` (with `values` for the variables) against the whole of `text`:
/// greedy with one back-track point per `*`, linear in the common cases.
fn glob(parts: &[Part], values: &[Cow<'_, str>], text: &str, fold: bool) -> bool {
    let mut p = 0usize;
    let mut t = 0usize;
    let mut star: Option<(usize, usize)> = None;
    loop {
        if let Some(part) = parts.get(p) {
            let step = match part {
                Part::Star => {
                    if p + 1 == parts.len() {
                        return true;
                    }
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Part::One => text[t..].chars().next().map(char::len_utf8),
                Part::Lit(lit) => prefix_len(&text[t..], lit, fold),
                Part::Var { idx, .. } => values
                    .get(*idx)
                    .and_then(|v| prefix_len(&text[t..], v, fold)),
            };
            if let Some(n) = step {
                t += n;
                p += 1;
                continue;
            }
        } else if t == text.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more character.
        match star {
            Some((sp, st)) => match text[st..].chars().next() {
                Some(c) => {
                    let nt = st + c.len_utf8();
                    star = Some((sp, nt));
                    p = sp;
                    t = nt;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{EmptyContext, MapContext};

    const GLOB: Syntax = Syntax {
        wildcards: true,
        variables: true,
        lowercase: false,
    };

    fn m(pattern: &str, text: &str) -> bool {
        Template::parse(pattern, GLOB)
            .unwrap()
            .matches(text, &EmptyContext, false)
            .unwrap()
    }

    #[test]
    fn wildcards_match_like_aws() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*ab*ab", "xabyabab"));
        assert!(m("a**b", "axxb"));
        assert!(m("?é?", "aéb"));
        assert!(m("secret:db-??????", "secret:db-AbCdEf"));
        assert!(!m("secret:db-??????", "secret:db-AbCdE"));
        assert!(!m("abc", "abcd"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }

    #[test]
    fn variables_resolve_from_the_context_or_their_default() {
        let t = Template::parse("home/${aws:username}/*", GLOB).unwrap();
        let ctx = MapContext::new().with("aws:username", "alice");
        assert_eq!(t.matches("home/alice/x", &ctx, false), Ok(true));
        assert_eq!(t.matches("home/bob/x", &ctx, false), Ok(false));
        assert_eq!(
            t.matches("home/alice/x", &EmptyContext, false),
            Err(Unresolved)
        );
        let d = Template::parse("${aws:username , 'it''s'}", GLOB).unwrap();
        assert_eq!(d.matches("it's", &EmptyContext, false), Ok(true));
        let lit = Template::parse("a${*}b${?}${$}", GLOB).unwrap();
        assert_eq!(lit.matches("a*b?$", &EmptyContext, false), Ok(true));
        assert_eq!(lit.matches("axb?$", &EmptyContext, false), Ok(false));
    }

    #[test]
    fn a_substituted_value_is_literal_text() {
        let t = Template::parse("${k}", GLOB).unwrap();
        let ctx = MapContext::new().with("k", "a*");
        assert_eq!(t.matches("a*", &ctx, false), Ok(true));
        assert_eq!(t.matches("abc", &ctx, false), Ok(false));
    }

    #[test]
    fn malformed_variables_are_errors_naming_them() {
        for bad in ["${aws:username", "${}", "${a b}", "${k, x}", "${k, 'a'b'}"] {
            let err = Template::parse(bad, GLOB).unwrap_err();
            assert!(err.contains("policy variable"), "{bad}: {err}");
        }
    }

    #[test]
    fn without_variables_dollar_braces_are_literal() {
        let s = Syntax {
            variables: false,
            ..GLOB
        };
        let t = Template::parse("${aws:username}", s).unwrap();
        assert_eq!(t.matches("${aws:username}", &EmptyContext, false), Ok(true));
    }

    #[test]
    fn folding_compares_case_insensitively() {
        let s = Syntax {
            lowercase: true,
            ..GLOB
        };
        let t = Template::parse("SecretsManager:Get*", s).unwrap();
        assert_eq!(
            t.matches("secretsmanager:GETSECRETVALUE", &EmptyContext, true),
            Ok(true)
        );
        let e = Template::parse("ÉCOLE", s).unwrap();
        assert_eq!(e.matches("école", &EmptyContext, true), Ok(true));
        assert!(quote(&"x".repeat(100)).ends_with("…\""));
    }
}
