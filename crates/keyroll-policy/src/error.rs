//! Errors of parsing and validating a policy.

use std::fmt;

/// Where in the policy a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The top level of the policy document.
    Policy,
    /// The statement with this 1-based number.
    Statement(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Policy => f.write_str("Policy"),
            Place::Statement(n) => write!(f, "Statement {n}"),
        }
    }
}

/// Why a policy was refused. Messages name the problem and the fix, and quote at most the
/// offending token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not JSON.
    #[error(
        "the policy is not valid JSON: {reason} at line {line}, column {column}; fix the JSON syntax"
    )]
    Json {
        /// What the JSON parser objected to.
        reason: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// The text is longer than AWS allows for the policy type.
    #[error(
        "the policy is {len} characters long but a {kind} policy may have at most {max}; shorten it (fewer statements, wildcards)"
    )]
    TooLong {
        /// The policy's length in characters.
        len: usize,
        /// The maximum.
        max: usize,
        /// "resource" or "identity".
        kind: &'static str,
    },
    /// An element has the wrong JSON type.
    #[error("{place}: {element} must be {expected}, not {found}")]
    WrongType {
        /// Where.
        place: Place,
        /// The element's name.
        element: String,
        /// What it must be.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// An element the IAM policy grammar does not have.
    #[error(
        "{place}: unknown element {name}; the allowed elements are {allowed} (names are case-sensitive)"
    )]
    UnknownElement {
        /// Where.
        place: Place,
        /// The element's name, quoted.
        name: String,
        /// The allowed names.
        allowed: &'static str,
    },
    /// A required element is missing.
    #[error("{place}: {element} is missing; {fix}")]
    Missing {
        /// Where.
        place: Place,
        /// The element's name.
        element: &'static str,
        /// How to fix it.
        fix: &'static str,
    },
    /// `Effect` is neither `Allow` nor `Deny`.
    #[error("Statement {statement}: Effect must be \"Allow\" or \"Deny\", not {value}")]
    InvalidEffect {
        /// 1-based statement number.
        statement: usize,
        /// The value found, quoted.
        value: String,
    },
    /// Two elements that exclude each other (Action and NotAction, …).
    #[error("Statement {statement}: {first} and {second} cannot both be present; keep one of them")]
    Conflict {
        /// 1-based statement number.
        statement: usize,
        /// One element.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// `Version` is not one AWS knows.
    #[error("Version must be \"2012-10-17\" (or the legacy \"2008-10-17\"), not {value}")]
    InvalidVersion {
        /// The value found, quoted.
        value: String,
    },
    /// A condition operator AWS does not have.
    #[error(
        "Statement {statement}: unknown condition operator {operator}; use one of AWS's operators (StringEquals, StringLike, ArnLike, NumericLessThan, DateGreaterThan, Bool, IpAddress, Null, …), optionally with ForAnyValue:/ForAllValues: and IfExists (not on Null)"
    )]
    UnknownOperator {
        /// 1-based statement number.
        statement: usize,
        /// The operator, quoted.
        operator: String,
    },
    /// Two statements with the same `Sid`.
    #[error(
        "Statement {statement}: Sid {sid} is already used by statement {first}; give each statement its own Sid"
    )]
    DuplicateSid {
        /// 1-based number of the later statement.
        statement: usize,
        /// The Sid, quoted.
        sid: String,
        /// 1-based number of the statement that used it first.
        first: usize,
    },
    /// A value that is not valid for its element.
    #[error("{place}: {element} {value} {problem}")]
    InvalidValue {
        /// Where.
        place: Place,
        /// The element (or condition key) it belongs to.
        element: String,
        /// The value, quoted.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// An identity policy with a `Principal` / `NotPrincipal`.
    #[error(
        "Statement {statement}: an identity policy cannot have {element}; remove it (an identity policy applies to whoever it is attached to)"
    )]
    PrincipalInIdentityPolicy {
        /// 1-based statement number.
        statement: usize,
        /// "Principal" or "NotPrincipal".
        element: &'static str,
    },
    /// A resource-policy statement without `Principal` / `NotPrincipal`.
    #[error(
        "Statement {statement}: a resource policy statement needs a Principal or NotPrincipal; add one, e.g. \"Principal\": {{\"AWS\": \"arn:aws:iam::123456789012:root\"}}"
    )]
    MissingPrincipal {
        /// 1-based statement number.
        statement: usize,
    },
}
