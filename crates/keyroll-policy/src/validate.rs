//! ValidateResourcePolicy-style findings and the BlockPublicPolicy check.

use crate::PolicyType;
use crate::condition::{Base, Condition, SetOp, Values};
use crate::error::PolicyError;
use crate::policy::{Effect, Policy, PrincipalEntry, parse_collect};

/// The check name of grammar findings (unknown elements, bad values, Principal rules…).
pub const CHECK_SYNTAX: &str = "SYNTAX_CHECK";
/// The check name of the finding that the policy grants broad (public) access.
pub const CHECK_PUBLIC_ACCESS: &str = "PUBLIC_ACCESS_CHECK";
/// AWS's maximum length of a secret's resource policy, in characters.
pub const MAX_RESOURCE_POLICY_CHARS: usize = 20_480;

/// An AWS-style finding for ValidateResourcePolicy / PutResourcePolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Which check found it: [`CHECK_SYNTAX`] or [`CHECK_PUBLIC_ACCESS`].
    pub check: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Validates a policy of the given kind: every grammar problem (one per statement at most)
/// and, for a resource policy, whether it grants public access. An empty list means the
/// policy passes. `Err` only when the text is not JSON, or (resource policies) longer than
/// 20,480 characters.
pub fn validate(text: &str, kind: PolicyType) -> Result<Vec<Finding>, PolicyError> {
    if kind == PolicyType::Resource {
        let len = text.chars().count();
        if len > MAX_RESOURCE_POLICY_CHARS {
            return Err(PolicyError::TooLong {
                len,
                max: MAX_RESOURCE_POLICY_CHARS,
                kind: "resource",
            });
        }
    }
    let (policy, errors) = parse_collect(text)?;
    let syntax = |e: PolicyError| Finding {
        check: CHECK_SYNTAX,
        message: e.to_string(),
    };
    let mut findings: Vec<Finding> = errors.into_iter().map(syntax).collect();
    if let Some(policy) = policy {
        findings.extend(policy.kind_errors(kind).into_iter().map(syntax));
        if kind == PolicyType::Resource && is_public(&policy) {
            findings.push(Finding {
                check: CHECK_PUBLIC_ACCESS,
                message: "the policy grants access to a wide range of principals (Principal \"*\" or NotPrincipal in an Allow statement without a condition on aws:PrincipalAccount, aws:PrincipalArn, aws:PrincipalOrgID, aws:SourceAccount, aws:SourceArn or aws:userid with concrete values); name the principals or add such a condition".into(),
            });
        }
    }
    Ok(findings)
}

/// Whether a resource policy grants access to `Principal: "*"` (or `{"AWS":"*"}`, or
/// NotPrincipal with Allow) without a condition that restricts it to known principals/accounts
/// (e.g. aws:PrincipalAccount / aws:PrincipalArn / aws:SourceAccount StringEquals with concrete
/// values, not wildcards) — what Secrets Manager's BlockPublicPolicy refuses.
pub fn is_public(policy: &Policy) -> bool {
    policy.inner.statements.iter().any(|s| {
        let Some(p) = &s.principals else {
            return false;
        };
        let broad = p.not
            || p.entries.iter().any(|e| {
                matches!(
                    e,
                    PrincipalEntry::Anyone | PrincipalEntry::Other { wildcard: true }
                )
            });
        s.effect == Effect::Allow && broad && !s.conditions.iter().any(restricts_principal)
    })
}

/// Keys whose fixed values pin the caller to known principals or accounts.
const RESTRICTING_KEYS: &[&str] = &[
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:SourceOwner",
    "aws:userid",
];

/// A condition that only lets through callers whose key has one of the listed concrete
/// values: a positive string or ARN operator, without IfExists or a set operator (both let
/// an absent key through), whose every value is concrete — for the ARN operators it is
/// enough that the account field is (`arn:aws:iam::123456789012:role/*`).
fn restricts_principal(c: &Condition) -> bool {
    if c.op.if_exists || c.op.set != SetOp::Plain || c.op.base.negated() {
        return false;
    }
    if !RESTRICTING_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&c.key))
    {
        return false;
    }
    match (&c.values, c.op.base) {
        (
            Values::Strings(ts),
            Base::StringEquals | Base::StringEqualsIgnoreCase | Base::StringLike,
        ) => ts.iter().all(|t| t.is_concrete() && !t.source().is_empty()),
        (Values::Arns(ps), Base::ArnEquals | Base::ArnLike) => {
            ps.iter().all(|p| match p.account() {
                Some(account) => account.is_concrete() && !account.source().is_empty(),
                None => p.whole_is_concrete(),
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(&Policy::parse(text).unwrap())
    }

    fn stmt(principal: &str, condition: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",{principal},"Action":"secretsmanager:GetSecretValue","Resource":"*"{condition}}}]}}"#
        )
    }

    #[test]
    fn wildcard_principals_without_conditions_are_public() {
        assert!(public(&stmt(r#""Principal":"*""#, "")));
        assert!(public(&stmt(r#""Principal":{"AWS":"*"}"#, "")));
        assert!(public(&stmt(
            r#""Principal":{"AWS":["123456789012","*"]}"#,
            ""
        )));
        assert!(public(&stmt(
            r#""NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/bob"}"#,
            ""
        )));
        assert!(public(&stmt(r#""Principal":{"Service":"*"}"#, "")));
    }

    #[test]
    fn named_principals_are_not_public() {
        assert!(!public(&stmt(r#""Principal":{"AWS":"123456789012"}"#, "")));
        assert!(!public(&stmt(
            r#""Principal":{"AWS":"arn:aws:iam::123456789012:role/app"}"#,
            ""
        )));
        assert!(!public(&stmt(
            r#""Principal":{"Service":"lambda.amazonaws.com"}"#,
            ""
        )));
    }

    #[test]
    fn concrete_principal_conditions_restrict_a_wildcard_principal() {
        for cond in [
            r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            r#","Condition":{"StringEquals":{"AWS:principalaccount":["123456789012","210987654321"]}}"#,
            r#","Condition":{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/app"}}"#,
            r#","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/*"}}"#,
            r#","Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"}}"#,
            r#","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-abc123"}}"#,
        ] {
            assert!(!public(&stmt(r#""Principal":"*""#, cond)), "{cond}");
        }
    }

    #[test]
    fn wildcard_or_loose_conditions_do_not_restrict() {
        for cond in [
            r#","Condition":{"StringLike":{"aws:PrincipalAccount":"*"}}"#,
            r#","Condition":{"StringLike":{"aws:PrincipalAccount":"1234*"}}"#,
            r#","Condition":{"StringEqualsIfExists":{"aws:PrincipalAccount":"123456789012"}}"#,
            r#","Condition":{"ForAllValues:StringEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            r#","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            r#","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/app"}}"#,
            r#","Condition":{"StringEquals":{"aws:username":"alice"}}"#,
            r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"${aws:username}"}}"#,
        ] {
            assert!(public(&stmt(r#""Principal":"*""#, cond)), "{cond}");
        }
    }

    #[test]
    fn deny_statements_are_never_public() {
        let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}}"#;
        assert!(!public(text));
    }

    #[test]
    fn validate_reports_every_statement_problem_and_public_access() {
        let text = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"},
            {"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},
            {"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}
        ]}"#;
        let findings = validate(text, PolicyType::Resource).unwrap();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings.iter().all(|f| f.check == CHECK_SYNTAX));
        assert!(
            findings[0]
                .message
                .starts_with("Statement 1: Effect must be")
        );
        assert!(findings[1].message.contains("StringEqualz"));

        let ok = stmt(r#""Principal":{"AWS":"123456789012"}"#, "");
        assert_eq!(validate(&ok, PolicyType::Resource).unwrap(), vec![]);
        let missing = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}"#;
        let f = validate(missing, PolicyType::Resource).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("needs a Principal"));
        assert_eq!(validate(missing, PolicyType::Identity).unwrap(), vec![]);
        let f = validate(&ok, PolicyType::Identity).unwrap();
        assert!(
            f[0].message
                .contains("identity policy cannot have Principal"),
            "{f:?}"
        );

        let open = stmt(r#""Principal":"*""#, "");
        let f = validate(&open, PolicyType::Resource).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, CHECK_PUBLIC_ACCESS);
    }

    #[test]
    fn validate_errs_only_for_non_json_and_oversized_resource_policies() {
        assert!(matches!(
            validate("{not json", PolicyType::Resource),
            Err(PolicyError::Json { line: 1, .. })
        ));
        let pad = " ".repeat(MAX_RESOURCE_POLICY_CHARS);
        let long = format!("{}{pad}", stmt(r#""Principal":{"AWS":"123456789012"}"#, ""));
        assert!(matches!(
            validate(&long, PolicyType::Resource),
            Err(PolicyError::TooLong { max: 20_480, .. })
        ));
        assert!(validate(&long, PolicyType::Identity).is_ok());
        let f = validate("[1]", PolicyType::Resource).unwrap();
        assert!(f[0].message.contains("must be a JSON object"), "{f:?}");
    }
}
