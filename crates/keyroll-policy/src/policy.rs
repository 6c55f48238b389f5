//! The policy document: parsing (strict, as IAM's grammar) into a compiled form.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::PolicyType;
use crate::condition::{Condition, Operator};
use crate::error::{Place, PolicyError};
use crate::pattern::{Syntax, Template, quote};

/// The policy language version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// "2012-10-17": policy variables are expanded.
    V2012_10_17,
    /// "2008-10-17" (or no Version): `${…}` is literal text.
    V2008_10_17,
}

/// Allow or Deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement denies, overriding any allow.
    Deny,
}

/// One entry of a Principal / NotPrincipal element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone.
    Anyone,
    /// An account id, or `arn:…:iam::ACCOUNT:root`: every principal of the account.
    Account(Box<str>),
    /// A user, role or assumed-role session ARN, matched exactly.
    Arn(Box<str>),
    /// A service, federated or canonical-user principal (never an IAM caller); `wildcard`
    /// when its value is `*`.
    Other { wildcard: bool },
}

/// The principals a statement names.
#[derive(Clone, Debug)]
pub(crate) struct Principals {
    pub not: bool,
    pub entries: Box<[PrincipalEntry]>,
}

#[derive(Clone, Debug)]
pub(crate) struct Statement {
    pub sid: Option<Box<str>>,
    pub effect: Effect,
    pub not_action: bool,
    pub actions: Box<[Template]>,
    pub not_resource: bool,
    pub resources: Box<[Template]>,
    pub principals: Option<Principals>,
    pub conditions: Box<[Condition]>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub version: Version,
    pub id: Option<Box<str>>,
    pub statements: Box<[Statement]>,
    /// For each of [`crate::actions::KNOWN`], the statements (bit `i` = statement `i`) whose
    /// `Action`/`NotAction` element covers it: evaluation visits only those and never
    /// matches an action pattern. `None` beyond 64 statements.
    pub by_action: Option<Box<[u64]>>,
}

/// A parsed, immutable policy; cloning is cheap (shared).
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) inner: Arc<Inner>,
}

impl Policy {
    /// Parses a policy, strictly as IAM's grammar: the first problem found is the error.
    /// This does not know whether the policy is an identity or a resource policy; use
    /// [`Policy::parse_as`] to also check the Principal rules of one kind.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let (policy, mut errors) = parse_collect(text)?;
        match policy {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(errors.remove(0)),
        }
    }

    /// Parses a policy of the given kind: an identity policy must have no Principal, every
    /// statement of a resource policy needs one.
    pub fn parse_as(text: &str, kind: PolicyType) -> Result<Policy, PolicyError> {
        let policy = Policy::parse(text)?;
        match policy.kind_errors(kind).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(policy),
        }
    }

    /// How many statements the policy has.
    pub fn statement_count(&self) -> usize {
        self.inner.statements.len()
    }

    /// The policy's language version.
    pub fn version(&self) -> Version {
        self.inner.version
    }

    /// The policy's `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// The statements' `Sid`s, in order (`None` for a statement without one).
    pub fn sids(&self) -> impl Iterator<Item = Option<&str>> {
        self.inner.statements.iter().map(|s| s.sid.as_deref())
    }

    pub(crate) fn kind_errors(&self, kind: PolicyType) -> Vec<PolicyError> {
        let mut out = Vec::new();
        for (i, s) in self.inner.statements.iter().enumerate() {
            let statement = i + 1;
            match (kind, &s.principals) {
                (PolicyType::Identity, Some(p)) => {
                    out.push(PolicyError::PrincipalInIdentityPolicy {
                        statement,
                        element: if p.not { "NotPrincipal" } else { "Principal" },
                    })
                }
                (PolicyType::Resource, None) => {
                    out.push(PolicyError::MissingPrincipal { statement })
                }
                _ => {}
            }
        }
        out
    }
}

const TOP_ELEMENTS: &str = "Version, Id, Statement";
const STATEMENT_ELEMENTS: &str =
    "Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition";

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses the JSON (`Err` only for text that is not JSON), then the document, collecting
/// one error per statement and the top-level errors; the policy is `Some` when it could be
/// built at all.
pub(crate) fn parse_collect(text: &str) -> Result<(Option<Policy>, Vec<PolicyError>), PolicyError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| PolicyError::Json {
        reason: json_reason(&e),
        line: e.line(),
        column: e.column(),
    })?;
    let mut errors = Vec::new();
    let Value::Object(top) = doc else {
        errors.push(PolicyError::WrongType {
            place: Place::Policy,
            element: "the policy document".into(),
            expected: "a JSON object with Version and Statement",
            found: json_type(&doc),
        });
        return Ok((None, errors));
    };
    for name in top.keys() {
        if !matches!(name.as_str(), "Version" | "Id" | "Statement") {
            errors.push(PolicyError::UnknownElement {
                place: Place::Policy,
                name: quote(name),
                allowed: TOP_ELEMENTS,
            });
        }
    }
    let version = match top.get("Version") {
        None => Version::V2008_10_17,
        Some(Value::String(v)) if v == "2012-10-17" => Version::V2012_10_17,
        Some(Value::String(v)) if v == "2008-10-17" => Version::V2008_10_17,
        Some(Value::String(v)) => {
            errors.push(PolicyError::InvalidVersion { value: quote(v) });
            Version::V2012_10_17
        }
        Some(other) => {
            errors.push(PolicyError::WrongType {
                place: Place::Policy,
                element: "Version".into(),
                expected: "the string \"2012-10-17\"",
                found: json_type(other),
            });
            Version::V2012_10_17
        }
    };
    let id = match top.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str().into()),
        Some(other) => {
            errors.push(PolicyError::WrongType {
                place: Place::Policy,
                element: "Id".into(),
                expected: "a string",
                found: json_type(other),
            });
            None
        }
    };
    let raw_statements: Vec<&Value> = match top.get("Statement") {
        None => {
            errors.push(PolicyError::Missing {
                place: Place::Policy,
                element: "Statement",
                fix: "add \"Statement\": [{\"Effect\": \"Allow\", \"Action\": …, \"Resource\": …}]",
            });
            Vec::new()
        }
        Some(Value::Array(items)) if items.is_empty() => {
            errors.push(PolicyError::Missing {
                place: Place::Policy,
                element: "a statement",
                fix: "the Statement array must hold at least one statement",
            });
            Vec::new()
        }
        Some(Value::Array(items)) => items.iter().collect(),
        Some(obj @ Value::Object(_)) => vec![obj],
        Some(other) => {
            errors.push(PolicyError::WrongType {
                place: Place::Policy,
                element: "Statement".into(),
                expected: "an object or an array of objects",
                found: json_type(other),
            });
            Vec::new()
        }
    };
    let variables = version == Version::V2012_10_17;
    let mut statements = Vec::with_capacity(raw_statements.len());
    let mut sids: Vec<(String, usize)> = Vec::new();
    for (i, raw) in raw_statements.into_iter().enumerate() {
        let n = i + 1;
        match parse_statement(n, raw, variables) {
            Ok(s) => {
                if let Some(sid) = s.sid.as_deref() {
                    if let Some((_, first)) = sids.iter().find(|(x, _)| x == sid) {
                        errors.push(PolicyError::DuplicateSid {
                            statement: n,
                            sid: quote(sid),
                            first: *first,
                        });
                    } else {
                        sids.push((sid.to_owned(), n));
                    }
                }
                statements.push(s);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        let by_action = crate::actions::index(&statements);
        let inner = Inner {
            version,
            id,
            statements: statements.into(),
            by_action,
        };
        Ok((
            Some(Policy {
                inner: Arc::new(inner),
            }),
            errors,
        ))
    } else {
        Ok((None, errors))
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    // serde_json's message ends with " at line L column C"; the error carries those apart.
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(cut) => msg[..cut].to_owned(),
        None => msg,
    }
}

/// A string or a non-empty array of strings.
fn string_list<'a>(place: Place, element: &str, v: &'a Value) -> Result<Vec<&'a str>, PolicyError> {
    let wrong = |found: &'static str| PolicyError::WrongType {
        place,
        element: element.to_owned(),
        expected: "a string or an array of strings",
        found,
    };
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(PolicyError::InvalidValue {
                    place,
                    element: element.to_owned(),
                    value: "[]".into(),
                    problem: "is empty; list at least one value".into(),
                });
            }
            items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.as_str()),
                    other => Err(wrong(json_type(other))),
                })
                .collect()
        }
        other => Err(wrong(json_type(other))),
    }
}

fn parse_statement(n: usize, raw: &Value, variables: bool) -> Result<Statement, PolicyError> {
    let place = Place::Statement(n);
    let Value::Object(obj) = raw else {
        return Err(PolicyError::WrongType {
            place,
            element: "a statement".into(),
            expected: "an object",
            found: json_type(raw),
        });
    };
    for name in obj.keys() {
        if !matches!(
            name.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(PolicyError::UnknownElement {
                place,
                name: quote(name),
                allowed: STATEMENT_ELEMENTS,
            });
        }
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str().into()),
        Some(other) => {
            return Err(PolicyError::WrongType {
                place,
                element: "Sid".into(),
                expected: "a string",
                found: json_type(other),
            });
        }
    };
    let effect = match obj.get("Effect") {
        None => {
            return Err(PolicyError::Missing {
                place,
                element: "Effect",
                fix: "add \"Effect\": \"Allow\" or \"Effect\": \"Deny\"",
            });
        }
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(Value::String(s)) => {
            return Err(PolicyError::InvalidEffect {
                statement: n,
                value: quote(s),
            });
        }
        Some(other) => {
            return Err(PolicyError::WrongType {
                place,
                element: "Effect".into(),
                expected: "the string \"Allow\" or \"Deny\"",
                found: json_type(other),
            });
        }
    };
    let (not_action, actions) = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::Conflict {
                statement: n,
                first: "Action",
                second: "NotAction",
            });
        }
        (None, None) => {
            return Err(PolicyError::Missing {
                place,
                element: "Action",
                fix: "add \"Action\" (e.g. \"secretsmanager:GetSecretValue\") or \"NotAction\"",
            });
        }
        (Some(v), None) => (false, parse_actions(place, "Action", v)?),
        (None, Some(v)) => (true, parse_actions(place, "NotAction", v)?),
    };
    let (not_resource, resources) = match (obj.get("Resource"), obj.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::Conflict {
                statement: n,
                first: "Resource",
                second: "NotResource",
            });
        }
        (None, None) => {
            return Err(PolicyError::Missing {
                place,
                element: "Resource",
                fix: "add \"Resource\" (a secret ARN, wildcards allowed, or \"*\") or \"NotResource\"",
            });
        }
        (Some(v), None) => (false, parse_resources(place, "Resource", v, variables)?),
        (None, Some(v)) => (true, parse_resources(place, "NotResource", v, variables)?),
    };
    let principals = match (obj.get("Principal"), obj.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(PolicyError::Conflict {
                statement: n,
                first: "Principal",
                second: "NotPrincipal",
            });
        }
        (None, None) => None,
        (Some(v), None) => Some(Principals {
            not: false,
            entries: parse_principals(place, "Principal", v)?.into(),
        }),
        (None, Some(v)) => Some(Principals {
            not: true,
            entries: parse_principals(place, "NotPrincipal", v)?.into(),
        }),
    };
    if effect == Effect::Allow
        && principals
            .as_ref()
            .is_some_and(|p| p.not && p.entries.contains(&PrincipalEntry::Anyone))
    {
        // Allowing everyone except everyone: harmless but certainly a mistake.
        return Err(PolicyError::InvalidValue {
            place,
            element: "NotPrincipal".into(),
            value: "\"*\"".into(),
            problem: "excludes every principal, so the statement can never apply; remove it or name the principals to exclude".into(),
        });
    }
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(ops)) => parse_conditions(n, ops, variables)?,
        Some(other) => {
            return Err(PolicyError::WrongType {
                place,
                element: "Condition".into(),
                expected: "an object of operators (e.g. {\"StringEquals\": {\"aws:username\": \"alice\"}})",
                found: json_type(other),
            });
        }
    };
    Ok(Statement {
        sid,
        effect,
        not_action,
        actions: actions.into(),
        not_resource,
        resources: resources.into(),
        principals,
        conditions: conditions.into(),
    })
}

fn parse_actions(place: Place, element: &str, v: &Value) -> Result<Vec<Template>, PolicyError> {
    let syntax = Syntax {
        wildcards: true,
        variables: false,
        lowercase: true,
    };
    let mut out = Vec::new();
    for a in string_list(place, element, v)? {
        let valid = a == "*"
            || a.split_once(':').is_some_and(|(svc, name)| {
                !svc.is_empty()
                    && !name.is_empty()
                    && svc
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'*' | b'?'))
                    && !name.contains(':')
                    && !name.chars().any(char::is_whitespace)
            });
        if !valid {
            return Err(PolicyError::InvalidValue {
                place,
                element: element.to_owned(),
                value: quote(a),
                problem: "is not an action; write SERVICE:ACTION (e.g. \"secretsmanager:GetSecretValue\", wildcards allowed) or \"*\"".into(),
            });
        }
        let t = Template::parse(a, syntax).map_err(|problem| PolicyError::InvalidValue {
            place,
            element: element.to_owned(),
            value: quote(a),
            problem,
        })?;
        out.push(t);
    }
    Ok(out)
}

fn parse_resources(
    place: Place,
    element: &str,
    v: &Value,
    variables: bool,
) -> Result<Vec<Template>, PolicyError> {
    let syntax = Syntax {
        wildcards: true,
        variables,
        lowercase: false,
    };
    let mut out = Vec::new();
    for r in string_list(place, element, v)? {
        if r != "*" && !r.starts_with("arn:") {
            return Err(PolicyError::InvalidValue {
                place,
                element: element.to_owned(),
                value: quote(r),
                problem: "is not an ARN; write an ARN (e.g. \"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????\") or \"*\"".into(),
            });
        }
        let t = Template::parse(r, syntax).map_err(|problem| PolicyError::InvalidValue {
            place,
            element: element.to_owned(),
            value: quote(r),
            problem,
        })?;
        out.push(t);
    }
    Ok(out)
}

fn parse_principals(
    place: Place,
    element: &str,
    v: &Value,
) -> Result<Vec<PrincipalEntry>, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalEntry::Anyone]),
        Value::Object(map) => {
            if map.is_empty() {
                return Err(PolicyError::InvalidValue {
                    place,
                    element: element.to_owned(),
                    value: "{}".into(),
                    problem: "names no principal; write {\"AWS\": \"arn:aws:iam::123456789012:root\"}".into(),
                });
            }
            let mut out = Vec::new();
            for (kind, values) in map {
                if !matches!(kind.as_str(), "AWS" | "Service" | "Federated" | "CanonicalUser") {
                    return Err(PolicyError::UnknownElement {
                        place,
                        name: quote(kind),
                        allowed: "AWS, Service, Federated, CanonicalUser (in a Principal)",
                    });
                }
                let label = format!("{element} {kind}");
                let list = string_list(place, &label, values)?;
                match kind.as_str() {
                    "AWS" => {
                        for p in list {
                            out.push(parse_aws_principal(place, element, p)?);
                        }
                    }
                    _ => {
                        for p in list {
                            out.push(PrincipalEntry::Other { wildcard: p == "*" });
                        }
                    }
                }
            }
            Ok(out)
        }
        Value::String(s) => Err(PolicyError::InvalidValue {
            place,
            element: element.to_owned(),
            value: quote(s),
            problem: "must be \"*\" or an object; write {\"AWS\": \"arn:aws:iam::123456789012:user/name\"}".into(),
        }),
        other => Err(PolicyError::WrongType {
            place,
            element: element.to_owned(),
            expected: "\"*\" or an object such as {\"AWS\": [\"123456789012\"]}",
            found: json_type(other),
        }),
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_aws_principal(
    place: Place,
    element: &str,
    p: &str,
) -> Result<PrincipalEntry, PolicyError> {
    let invalid = |problem: &str| PolicyError::InvalidValue {
        place,
        element: element.to_owned(),
        value: quote(p),
        problem: problem.to_owned(),
    };
    if p == "*" {
        return Ok(PrincipalEntry::Anyone);
    }
    if is_account_id(p) {
        return Ok(PrincipalEntry::Account(p.into()));
    }
    if !p.starts_with("arn:") {
        return Err(invalid(
            "is not an AWS principal; write \"*\", a 12-digit account id or an IAM ARN",
        ));
    }
    if p.contains('*') || p.contains('?') {
        return Err(invalid(
            "has a wildcard; a Principal takes only \"*\" or exact ARNs (match patterns with a Condition on aws:PrincipalArn)",
        ));
    }
    let fields: Vec<&str> = p.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = fields.as_slice() else {
        return Err(invalid(
            "is not a complete ARN; write arn:aws:iam::ACCOUNT:user/NAME (or role/…, root)",
        ));
    };
    if partition.is_empty()
        || !matches!(*service, "iam" | "sts")
        || !is_account_id(account)
        || resource.is_empty()
    {
        return Err(invalid(
            "is not an IAM principal ARN; write arn:aws:iam::ACCOUNT:root, …:user/NAME, …:role/NAME or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION",
        ));
    }
    if *service == "iam" && resource.starts_with("group/") {
        return Err(invalid(
            "is a group, which cannot be a principal; name its users or roles, or use a Condition on aws:PrincipalArn",
        ));
    }
    if *service == "iam" && *resource == "root" {
        return Ok(PrincipalEntry::Account((*account).into()));
    }
    Ok(PrincipalEntry::Arn(p.into()))
}

fn value_strings(v: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Value::Array(_) => None,
        other => one(other).map(|s| vec![s]),
    }
}

fn parse_conditions(
    n: usize,
    ops: &Map<String, Value>,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let place = Place::Statement(n);
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let op = Operator::parse(op_name).ok_or_else(|| PolicyError::UnknownOperator {
            statement: n,
            operator: quote(op_name),
        })?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::WrongType {
                place,
                element: format!("Condition {op_name}"),
                expected: "an object of condition keys and values",
                found: json_type(keys),
            });
        };
        if keys.is_empty() {
            return Err(PolicyError::InvalidValue {
                place,
                element: format!("Condition {op_name}"),
                value: "{}".into(),
                problem:
                    "names no condition key; add e.g. {\"aws:PrincipalAccount\": \"123456789012\"}"
                        .into(),
            });
        }
        for (key, values) in keys {
            if key.trim().is_empty() {
                return Err(PolicyError::InvalidValue {
                    place,
                    element: format!("Condition {op_name}"),
                    value: quote(key),
                    problem: "is not a condition key name".into(),
                });
            }
            let raw = value_strings(values).ok_or_else(|| PolicyError::WrongType {
                place,
                element: format!("condition key {}", quote(key)),
                expected: "a string, number or boolean, or a non-empty array of them",
                found: json_type(values),
            })?;
            let c = Condition::compile(op, key, &raw, variables).map_err(|(value, problem)| {
                PolicyError::InvalidValue {
                    place,
                    element: format!("{op_name} {}", quote(key)),
                    value,
                    problem,
                }
            })?;
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Policy::parse(text).unwrap_err().to_string()
    }

    fn one(statement: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#)
    }

    const OK: &str =
        r#"{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}"#;

    #[test]
    fn a_valid_policy_parses_with_its_parts() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Id":"p1","Statement":{"Sid":"A","Effect":"Allow","Action":["secretsmanager:Get*","secretsmanager:List*"],"Resource":["*"]}}"#,
        )
        .unwrap();
        assert_eq!(p.statement_count(), 1);
        assert_eq!(p.id(), Some("p1"));
        assert_eq!(p.version(), Version::V2012_10_17);
        assert_eq!(p.sids().collect::<Vec<_>>(), vec![Some("A")]);
        let legacy =
            Policy::parse(&format!(r#"{{"Version":"2008-10-17","Statement":{OK}}}"#)).unwrap();
        assert_eq!(legacy.version(), Version::V2008_10_17);
        let none = Policy::parse(&format!(r#"{{"Statement":[{OK},{OK}]}}"#)).unwrap();
        assert_eq!(none.version(), Version::V2008_10_17);
        assert_eq!(none.statement_count(), 2);
    }

    #[test]
    fn effect_errors_quote_the_token() {
        assert_eq!(
            err(&one(r#"{"Effect":"allow","Action":"s:a","Resource":"*"}"#)),
            "Statement 1: Effect must be \"Allow\" or \"Deny\", not \"allow\""
        );
        let e = err(&one(&format!(r#"{OK},{{"Action":"s:a","Resource":"*"}}"#)));
        assert!(e.starts_with("Statement 2: Effect is missing"), "{e}");
        let e = err(&one(r#"{"Effect":true,"Action":"s:a","Resource":"*"}"#));
        assert!(e.contains("Effect must be the string"), "{e}");
    }

    #[test]
    fn structural_errors_name_the_element() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"Version":"2012-10-17","Statement":[],"Extra":1}"#,
                "unknown element \"Extra\"",
            ),
            (
                r#"{"Version":"2012-10-17"}"#,
                "Policy: Statement is missing",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":[]}"#,
                "at least one statement",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":"x"}"#,
                "Statement must be an object or an array",
            ),
            (
                r#"{"Version":"2012-10-18","Statement":[]}"#,
                "Version must be \"2012-10-17\"",
            ),
            (
                r#"{"Version":20121017,"Statement":[]}"#,
                "Version must be the string",
            ),
            (r#"{"Id":5,"Statement":[]}"#, "Id must be a string"),
            (r#"[]"#, "must be a JSON object"),
            (
                r#"{"Statement":[5]}"#,
                "Statement 1: a statement must be an object",
            ),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn statement_errors_name_the_element() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Actions":"x"}"#,
                "unknown element \"Actions\"",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","NotAction":"s:b","Resource":"*"}"#,
                "Action and NotAction cannot both",
            ),
            (r#"{"Effect":"Allow","Resource":"*"}"#, "Action is missing"),
            (
                r#"{"Effect":"Allow","Action":"s:a"}"#,
                "Resource is missing",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","NotResource":"*"}"#,
                "Resource and NotResource cannot both",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":"*","NotPrincipal":"*"}"#,
                "Principal and NotPrincipal cannot both",
            ),
            (
                r#"{"Effect":"Allow","Action":"getsecret","Resource":"*"}"#,
                "Action \"getsecret\" is not an action",
            ),
            (
                r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#,
                "Action [] is empty",
            ),
            (
                r#"{"Effect":"Allow","Action":[1],"Resource":"*"}"#,
                "Action must be a string or an array of strings, not a number",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"secret"}"#,
                "Resource \"secret\" is not an ARN",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"arn:aws:s3:::${aws:username"}"#,
                "no closing",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Sid":1}"#,
                "Sid must be a string",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":"bob"}"#,
                "must be \"*\" or an object",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{"AWS":"bob"}}"#,
                "is not an AWS principal",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{"AWS":"arn:aws:iam::123456789012:user/*"}}"#,
                "has a wildcard",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{"AWS":"arn:aws:iam::12:user/a"}}"#,
                "is not an IAM principal ARN",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{"AWS":"arn:aws:iam::123456789012:group/admins"}}"#,
                "is a group",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{"AWS":"arn:aws:iam"}}"#,
                "is not a complete ARN",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{"Aws":"*"}}"#,
                "unknown element \"Aws\"",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{}}"#,
                "names no principal",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":5}"#,
                "Principal must be",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","NotPrincipal":"*"}"#,
                "excludes every principal",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"StringEqualz":{"k":"v"}}}"#,
                "unknown condition operator \"StringEqualz\"",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"NullIfExists":{"k":"true"}}}"#,
                "unknown condition operator \"NullIfExists\"",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":[]}"#,
                "Condition must be an object",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"StringEquals":"k"}}"#,
                "Condition StringEquals must be an object",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"StringEquals":{}}}"#,
                "names no condition key",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"StringEquals":{"k":null}}}"#,
                "condition key \"k\" must be",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"StringEquals":{"k":[]}}}"#,
                "condition key \"k\" must be",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"StringEquals":{"":"v"}}}"#,
                "is not a condition key name",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"NumericLessThan":{"k":"ten"}}}"#,
                "\"ten\" is not a number",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"DateLessThan":{"k":"soon"}}}"#,
                "\"soon\" is not a date",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"Bool":{"k":"yes"}}}"#,
                "\"yes\" is not a boolean",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"IpAddress":{"k":"10.0.0.0/40"}}}"#,
                "prefix length longer",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"BinaryEquals":{"k":"%%%"}}}"#,
                "is not base64",
            ),
            (
                r#"{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{"ArnLike":{"k":"arn:aws:iam"}}}"#,
                "is not a complete ARN",
            ),
        ];
        for (statement, want) in cases {
            let e = err(&one(statement));
            assert!(e.contains(want), "{statement}: {e}");
            assert!(e.starts_with("Statement 1: "), "{statement}: {e}");
        }
    }

    #[test]
    fn duplicate_sids_are_refused() {
        let s = r#"{"Sid":"Same","Effect":"Allow","Action":"s:a","Resource":"*"}"#;
        assert_eq!(
            err(&one(&format!("{s},{s}"))),
            "Statement 2: Sid \"Same\" is already used by statement 1; give each statement its own Sid"
        );
    }

    #[test]
    fn json_errors_give_the_position() {
        let e = Policy::parse("{\n  \"Version\": }").unwrap_err();
        assert!(matches!(e, PolicyError::Json { line: 2, .. }), "{e:?}");
        assert!(e.to_string().contains("line 2"));
    }

    #[test]
    fn long_tokens_are_cut_in_messages() {
        let long = "x".repeat(500);
        let e = err(&one(&format!(
            r#"{{"Effect":"{long}","Action":"s:a","Resource":"*"}}"#
        )));
        assert!(e.len() < 200, "{e}");
        let e = err(&one(&format!(
            r#"{{"Effect":"Allow","Action":"s:a","Resource":"*","Condition":{{"NumericLessThan":{{"{long}":"x"}}}}}}"#
        )));
        assert!(e.len() < 300, "{e}");
        let e = err(&one(&format!(
            r#"{{"Effect":"Allow","Action":"s:a","Resource":"*","Principal":{{"{long}":5}}}}"#
        )));
        assert!(e.len() < 300 && e.contains("unknown element"), "{e}");
    }

    #[test]
    fn parse_as_checks_the_principal_rules_of_the_kind() {
        let identity = one(OK);
        let resource = one(
            r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"s:a","Resource":"*"}"#,
        );
        assert!(Policy::parse_as(&identity, PolicyType::Identity).is_ok());
        assert!(matches!(
            Policy::parse_as(&identity, PolicyType::Resource),
            Err(PolicyError::MissingPrincipal { statement: 1 })
        ));
        assert!(Policy::parse_as(&resource, PolicyType::Resource).is_ok());
        assert!(matches!(
            Policy::parse_as(&resource, PolicyType::Identity),
            Err(PolicyError::PrincipalInIdentityPolicy {
                statement: 1,
                element: "Principal"
            })
        ));
    }

    #[test]
    fn principal_forms_compile_to_entries() {
        let p = parse_principals(
            Place::Statement(1),
            "Principal",
            &serde_json::json!({"AWS": ["123456789012", "arn:aws:iam::210987654321:root", "arn:aws:iam::123456789012:user/a"], "Service": "lambda.amazonaws.com"}),
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                PrincipalEntry::Account("123456789012".into()),
                PrincipalEntry::Account("210987654321".into()),
                PrincipalEntry::Arn("arn:aws:iam::123456789012:user/a".into()),
                PrincipalEntry::Other { wildcard: false },
            ]
        );
    }
}
