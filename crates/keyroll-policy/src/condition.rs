//! Condition operators: compiled at parse time, evaluated against a request's context.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::context::{Context, CtxValue};
use crate::net::Cidr;
use crate::pattern::{Syntax, Template, Unresolved, quote};

/// The operator without its set prefix and `IfExists` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Base {
    fn from_name(name: &str) -> Option<Base> {
        use Base::*;
        Some(match name {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "BinaryEquals" => BinaryEquals,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "ArnEquals" => ArnEquals,
            "ArnLike" => ArnLike,
            "ArnNotEquals" => ArnNotEquals,
            "ArnNotLike" => ArnNotLike,
            "Null" => Null,
            _ => return None,
        })
    }

    /// Negated operators: true when no policy value matches (and for an absent key).
    pub fn negated(self) -> bool {
        use Base::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }
}

/// `ForAnyValue:` / `ForAllValues:` or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetOp {
    Plain,
    ForAnyValue,
    ForAllValues,
}

/// A whole operator as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operator {
    pub base: Base,
    pub set: SetOp,
    pub if_exists: bool,
}

impl Operator {
    /// Parses an operator name (case-sensitive, as AWS documents them); `None` if AWS has
    /// no such operator (including `NullIfExists`, which AWS does not allow).
    pub fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, r)
        } else {
            (SetOp::Plain, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let base = Base::from_name(base)?;
        if base == Base::Null && (if_exists || set != SetOp::Plain) {
            return None;
        }
        Some(Operator {
            base,
            set,
            if_exists,
        })
    }
}

/// An ARN pattern for the Arn operators: the six colon-separated components matched one by
/// one (wildcards never cross a colon of the first five), or, for a value that is not
/// shaped like an ARN (e.g. `*`), the whole text.
#[derive(Clone, Debug)]
pub(crate) enum ArnPattern {
    Components(Box<[Template; 6]>),
    Whole(Template),
}

impl ArnPattern {
    fn matches(&self, value: &str, ctx: &dyn Context) -> Result<bool, Unresolved> {
        match self {
            ArnPattern::Whole(t) => t.matches(value, ctx, false),
            ArnPattern::Components(parts) => {
                let mut it = value.splitn(6, ':');
                for part in parts.iter() {
                    let Some(v) = it.next() else {
                        return Ok(false);
                    };
                    if !part.matches(v, ctx, false)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    /// The account component, if the pattern has one.
    pub fn account(&self) -> Option<&Template> {
        match self {
            ArnPattern::Components(parts) => Some(&parts[4]),
            ArnPattern::Whole(_) => None,
        }
    }

    pub fn whole_is_concrete(&self) -> bool {
        match self {
            ArnPattern::Whole(t) => t.is_concrete(),
            ArnPattern::Components(parts) => parts.iter().all(Template::is_concrete),
        }
    }
}

/// Splits at the first five colons that are not inside a `${…}` variable.
fn split_arn(text: &str, variables: bool) -> Vec<&str> {
    let mut out = Vec::with_capacity(6);
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut in_var = false;
    while i < bytes.len() && out.len() < 5 {
        match bytes[i] {
            b'$' if variables && !in_var && bytes.get(i + 1) == Some(&b'{') => {
                in_var = true;
                i += 1;
            }
            b'}' if in_var => in_var = false,
            b':' if !in_var => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&text[start..]);
    out
}

/// A condition's policy values, compiled for its operator.
#[derive(Clone, Debug)]
pub(crate) enum Values {
    Strings(Box<[Template]>),
    Numbers(Box<[f64]>),
    Dates(Box<[(i64, u32)]>),
    Bools(Box<[bool]>),
    Binary(Box<[Box<str>]>),
    Cidrs(Box<[Cidr]>),
    Arns(Box<[ArnPattern]>),
    Null(Box<[bool]>),
}

/// One `Operator: { key: values }` entry.
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    pub op: Operator,
    pub key: Box<str>,
    pub values: Values,
}

impl Condition {
    /// Compiles the values (already turned into strings) for `op`; the error message names
    /// the bad value.
    pub fn compile(
        op: Operator,
        key: &str,
        raw: &[String],
        variables: bool,
    ) -> Result<Condition, (String, String)> {
        use Base::*;
        let bad = |v: &str, why: &str| (quote(v), why.to_owned());
        let values = match op.base {
            StringEquals
            | StringNotEquals
            | StringEqualsIgnoreCase
            | StringNotEqualsIgnoreCase
            | StringLike
            | StringNotLike => {
                let syntax = Syntax {
                    wildcards: matches!(op.base, StringLike | StringNotLike),
                    variables,
                    lowercase: false,
                };
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    out.push(Template::parse(v, syntax).map_err(|e| (quote(v), e))?);
                }
                Values::Strings(out.into())
            }
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => {
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    out.push(
                        parse_number(v).ok_or_else(|| {
                            bad(v, "is not a number; write e.g. \"10\" or \"2.5\"")
                        })?,
                    );
                }
                Values::Numbers(out.into())
            }
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => {
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    out.push(parse_date(v).ok_or_else(|| {
                        bad(
                            v,
                            "is not a date; write ISO 8601 (\"2026-01-31T12:00:00Z\", \"2026-01-31\") or epoch seconds",
                        )
                    })?);
                }
                Values::Dates(out.into())
            }
            Bool | Null => {
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    out.push(
                        parse_bool(v).ok_or_else(|| {
                            bad(v, "is not a boolean; write \"true\" or \"false\"")
                        })?,
                    );
                }
                if op.base == Bool {
                    Values::Bools(out.into())
                } else {
                    Values::Null(out.into())
                }
            }
            BinaryEquals => {
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    let canon = canonical_base64(v)
                        .ok_or_else(|| bad(v, "is not base64; write the bytes base64-encoded"))?;
                    out.push(canon.into());
                }
                Values::Binary(out.into())
            }
            IpAddress | NotIpAddress => {
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    out.push(Cidr::parse(v).map_err(|why| {
                        (
                            quote(v),
                            format!("{why}; write e.g. \"203.0.113.0/24\" or \"2001:db8::/32\""),
                        )
                    })?);
                }
                Values::Cidrs(out.into())
            }
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => {
                let syntax = Syntax {
                    wildcards: true,
                    variables,
                    lowercase: false,
                };
                let mut out = Vec::with_capacity(raw.len());
                for v in raw {
                    let comps = split_arn(v, variables);
                    let pat = if comps.len() == 6 {
                        let mut ts = Vec::with_capacity(6);
                        for c in comps {
                            ts.push(Template::parse(c, syntax).map_err(|e| (quote(v), e))?);
                        }
                        match <Box<[Template; 6]>>::try_from(ts.into_boxed_slice()) {
                            Ok(arr) => ArnPattern::Components(arr),
                            Err(_) => return Err(bad(v, "is not an ARN")),
                        }
                    } else if v.starts_with("arn:") {
                        return Err(bad(
                            v,
                            "is not a complete ARN; write arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (wildcards allowed)",
                        ));
                    } else {
                        ArnPattern::Whole(Template::parse(v, syntax).map_err(|e| (quote(v), e))?)
                    };
                    out.push(pat);
                }
                Values::Arns(out.into())
            }
        };
        Ok(Condition {
            op,
            key: key.into(),
            values,
        })
    }

    /// Whether one request value matches any policy value (the operator's positive sense).
    fn any_match(&self, v: &str, ctx: &dyn Context) -> Result<bool, Unresolved> {
        use Base::*;
        match &self.values {
            Values::Strings(ts) => {
                let fold = matches!(
                    self.op.base,
                    StringEqualsIgnoreCase | StringNotEqualsIgnoreCase
                );
                let mut hit = false;
                for t in ts.iter() {
                    if t.matches(v, ctx, fold)? {
                        hit = true;
                        break;
                    }
                }
                Ok(hit)
            }
            Values::Numbers(ns) => {
                let Some(x) = parse_number(v) else {
                    return Ok(false);
                };
                Ok(ns.iter().any(|&n| match self.op.base {
                    NumericEquals | NumericNotEquals => x == n,
                    NumericLessThan => x < n,
                    NumericLessThanEquals => x <= n,
                    NumericGreaterThan => x > n,
                    _ => x >= n,
                }))
            }
            Values::Dates(ds) => {
                let Some(x) = parse_date(v) else {
                    return Ok(false);
                };
                Ok(ds.iter().any(|&d| match self.op.base {
                    DateEquals | DateNotEquals => x == d,
                    DateLessThan => x < d,
                    DateLessThanEquals => x <= d,
                    DateGreaterThan => x > d,
                    _ => x >= d,
                }))
            }
            Values::Bools(bs) => Ok(parse_bool(v).is_some_and(|x| bs.contains(&x))),
            Values::Binary(bs) => {
                Ok(canonical_base64(v).is_some_and(|x| bs.iter().any(|b| **b == *x)))
            }
            Values::Cidrs(cs) => Ok(v
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| cs.iter().any(|c| c.contains(ip)))),
            Values::Arns(ps) => {
                let mut hit = false;
                for p in ps.iter() {
                    if p.matches(v, ctx)? {
                        hit = true;
                        break;
                    }
                }
                Ok(hit)
            }
            Values::Null(_) => Ok(false),
        }
    }

    /// Evaluates the condition as AWS does: values OR'd; an absent key is false for the
    /// positive operators and true for the negated ones; `IfExists` makes an absent key
    /// true; `ForAnyValue:` needs one request value to match (false when the key is absent
    /// or empty), `ForAllValues:` needs every request value to match (true when absent or
    /// empty). A policy variable that cannot be resolved makes the condition false.
    pub fn eval(&self, ctx: &dyn Context) -> bool {
        let got = ctx.get(&self.key);
        if let Values::Null(want) = &self.values {
            let absent = match &got {
                None => true,
                Some(CtxValue::Many(vs)) => vs.is_empty(),
                Some(CtxValue::One(_)) => false,
            };
            return want.contains(&absent);
        }
        let negated = self.op.base.negated();
        let if_exists = self.op.if_exists;
        let per = |v: &str| self.any_match(v, ctx).map(|m| m != negated);
        let result = match (self.op.set, got) {
            (SetOp::Plain, None) => Ok(if_exists || negated),
            (SetOp::Plain, Some(CtxValue::One(v))) => per(&v),
            (SetOp::Plain, Some(CtxValue::Many(vs))) => {
                if vs.is_empty() {
                    Ok(if_exists || negated)
                } else {
                    // A multivalued key without a set operator: it matches when any of its
                    // values does (and a negated operator when none does).
                    any_of(&vs, |v| self.any_match(v, ctx)).map(|m| m != negated)
                }
            }
            (SetOp::ForAnyValue, None) => Ok(if_exists),
            (SetOp::ForAnyValue, Some(CtxValue::One(v))) => per(&v),
            (SetOp::ForAnyValue, Some(CtxValue::Many(vs))) => {
                if vs.is_empty() {
                    Ok(if_exists)
                } else {
                    any_of(&vs, per)
                }
            }
            (SetOp::ForAllValues, None) => Ok(true),
            (SetOp::ForAllValues, Some(CtxValue::One(v))) => per(&v),
            (SetOp::ForAllValues, Some(CtxValue::Many(vs))) => {
                any_of(&vs, |v| per(v).map(|m| !m)).map(|some_fails| !some_fails)
            }
        };
        result.unwrap_or(false)
    }
}

fn any_of<S: AsRef<str>>(
    values: &[S],
    mut f: impl FnMut(&str) -> Result<bool, Unresolved>,
) -> Result<bool, Unresolved> {
    for v in values {
        if f(v.as_ref())? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// ISO 8601 (with or without an offset, which defaults to UTC; or a date alone) or epoch
/// seconds, as (seconds, nanoseconds) since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<(i64, u32)> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: i64 = secs.parse().ok()?;
        let mut nanos = 0u32;
        if !frac.is_empty() {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = digits.parse().ok()?;
        }
        return Some((secs, nanos));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some((dt.timestamp(), dt.timestamp_subsec_nanos()));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some((dt.timestamp(), dt.timestamp_subsec_nanos()));
        }
    }
    let naive = s.strip_suffix(['Z', 'z']).unwrap_or(s);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            let utc = dt.and_utc();
            return Some((utc.timestamp(), utc.timestamp_subsec_nanos()));
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let utc = date.and_hms_opt(0, 0, 0)?.and_utc();
    Some((utc.timestamp(), 0))
}

/// Base64 text without padding or whitespace, if it is valid base64.
fn canonical_base64(s: &str) -> Option<String> {
    let body: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let trimmed = body.trim_end_matches('=');
    let padding = body.len() - trimmed.len();
    let valid = !trimmed.is_empty()
        && padding <= 2
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        && trimmed.len() % 4 != 1
        && (padding == 0 || body.len().is_multiple_of(4));
    valid.then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::MapContext;

    fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
        let raw: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        Condition::compile(Operator::parse(op).unwrap(), key, &raw, true).unwrap()
    }

    #[test]
    fn operator_names_parse_with_prefixes_and_suffixes() {
        let op = Operator::parse("ForAllValues:StringLikeIfExists").unwrap();
        assert_eq!(op.base, Base::StringLike);
        assert_eq!(op.set, SetOp::ForAllValues);
        assert!(op.if_exists);
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAnyValue:Null").is_none());
        assert!(Operator::parse("stringequals").is_none());
        assert!(Operator::parse("StringEqualsIfExistsIfExists").is_none());
        assert!(Operator::parse("ForAnyValue:").is_none());
    }

    #[test]
    fn dates_parse_in_iso_8601_and_epoch_forms() {
        let z = parse_date("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(parse_date("2026-01-31T12:00:00"), Some(z));
        assert_eq!(parse_date("2026-01-31T13:00:00+01:00"), Some(z));
        assert_eq!(parse_date("2026-01-31T12:00Z"), Some(z));
        assert_eq!(parse_date(&z.0.to_string()), Some(z));
        assert_eq!(parse_date("2026-01-31"), Some((z.0 - 12 * 3600, 0)));
        assert_eq!(parse_date("1.5"), Some((1, 500_000_000)));
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn base64_is_compared_without_padding_and_validated() {
        assert_eq!(canonical_base64("QmluYXJ5=").as_deref(), None);
        assert_eq!(canonical_base64("QmluYQ==").as_deref(), Some("QmluYQ"));
        assert_eq!(canonical_base64("QmluYQ").as_deref(), Some("QmluYQ"));
        assert_eq!(canonical_base64("not base64!"), None);
        assert_eq!(canonical_base64(""), None);
    }

    #[test]
    fn numbers_refuse_words_and_infinities() {
        assert_eq!(parse_number(" 10 "), Some(10.0));
        assert_eq!(parse_number("-2.5e1"), Some(-25.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("1e999"), None);
    }

    #[test]
    fn arn_components_do_not_let_a_wildcard_cross_a_colon() {
        let c = cond("ArnLike", "aws:SourceArn", &["arn:aws:iam::*:user/a"]);
        let ok = MapContext::new().with("aws:SourceArn", "arn:aws:iam::123456789012:user/a");
        let across = MapContext::new().with("aws:SourceArn", "arn:aws:iam::1:2:user/a");
        assert!(c.eval(&ok));
        assert!(!c.eval(&across));
        assert_eq!(split_arn("arn:aws:s3:::b/${aws:username}:x", true).len(), 6);
        assert_eq!(split_arn("arn:aws:s3:::${a:b}", true)[5], "${a:b}");
    }

    #[test]
    fn multivalued_key_without_set_operator_matches_any_value() {
        let c = cond("StringEquals", "k", &["b"]);
        let ctx = MapContext::new().with_many("k", ["a", "b"]);
        assert!(c.eval(&ctx));
        let n = cond("StringNotEquals", "k", &["b"]);
        assert!(!n.eval(&ctx));
        let empty = MapContext::new().with_many("k", Vec::<String>::new());
        assert!(!c.eval(&empty));
        assert!(n.eval(&empty));
    }
}
