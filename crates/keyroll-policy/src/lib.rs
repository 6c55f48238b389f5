//! # keyroll-policy
//!
//! AWS IAM's policy language and evaluation logic, for `keyroll serve` to authorize Secrets
//! Manager calls as AWS does: identity policies (attached to access keys and roles) plus
//! the secret's resource policy. Pure: no I/O, no other keyroll crate.
//!
//! - [`Policy::parse`] reads a policy strictly (every element of IAM's JSON grammar:
//!   `Version`, `Id`, `Statement`, `Sid`, `Effect`, `Action`/`NotAction`,
//!   `Resource`/`NotResource`, `Principal`/`NotPrincipal`, `Condition`) and compiles it
//!   once: action patterns lowercased, wildcards and policy variables pre-split, condition
//!   values parsed (numbers, dates, CIDR blocks, ARNs).
//! - [`evaluate`] applies AWS's logic for one account: an explicit deny in any policy wins,
//!   else an allow in an identity policy or in the resource policy (for a matching
//!   principal), else an implicit deny. It does not allocate unless a policy variable, a
//!   multivalued key or an `…IgnoreCase` value must be looked at.
//! - [`validate`] gives AWS-style findings for ValidateResourcePolicy / PutResourcePolicy;
//!   [`is_public`] is what Secrets Manager's BlockPublicPolicy refuses.
//!
//! ```
//! use keyroll_policy::{Decision, MapContext, Policy, PolicyType, Request, evaluate};
//!
//! let identity = Policy::parse_as(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
//!                   "Resource": "arn:aws:secretsmanager:*:123456789012:secret:home/${aws:username}/*"}
//! }"#, PolicyType::Identity)?;
//! let resource = Policy::parse_as(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:*", "Resource": "*",
//!                   "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
//! }"#, PolicyType::Resource)?;
//! let context = MapContext::new()
//!     .with("aws:username", "alice")
//!     .with("aws:SecureTransport", "true");
//! let request = Request {
//!     action: "secretsmanager:GetSecretValue",
//!     resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/alice/db-AbCdEf",
//!     principal_arn: "arn:aws:iam::123456789012:user/alice",
//!     principal_aliases: &[],
//!     account: "123456789012",
//!     context: &context,
//! };
//! assert_eq!(evaluate(&[&identity], Some(&resource), &request), Decision::Allow);
//! # Ok::<(), keyroll_policy::PolicyError>(())
//! ```
//!
//! Semantics chosen where AWS's documentation leaves room:
//! - a policy variable that cannot be resolved (absent key, multivalued key, no default)
//!   makes the element using it not match: a `Resource` pattern does not match, a
//!   `NotResource` element makes its statement not apply, and a condition is false;
//! - a multivalued context key under an operator without `ForAnyValue:`/`ForAllValues:`
//!   matches when any of its values matches (a negated operator: when none does);
//! - `NotPrincipal` follows AWS's documented rule that a request is made by several
//!   principals at once (the account, the role, the session or user): a `Deny` applies
//!   unless every one of them is named; an `Allow` (which AWS no longer supports with
//!   NotPrincipal, and [`is_public`] reports) applies only if none of them is;
//! - an account (`"123456789012"` or `arn:aws:iam::123456789012:root`) in a resource
//!   policy's `Allow` delegates to the account's identity policies, as IAM documents for
//!   same-account access: it grants nothing by itself (only the root itself); in a `Deny` it
//!   names every principal of the account;
//! - a `Principal` in an identity policy is ignored by [`evaluate`] (IAM refuses such a
//!   policy: [`Policy::parse_as`] and [`validate`] report it).

mod actions;
mod condition;
mod context;
mod error;
mod memo;
mod net;
mod pattern;
mod policy;
mod validate;

pub use context::{Context, CtxValue, EmptyContext, MapContext};
pub use error::{Place, PolicyError};
pub use memo::DecisionMemo;
pub use policy::{Effect, Policy, Version};
pub use validate::{
    CHECK_PUBLIC_ACCESS, CHECK_SYNTAX, Finding, MAX_RESOURCE_POLICY_CHARS, is_public, validate,
};

use policy::{PrincipalEntry, Statement};

/// Which kind of policy a statement came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// Attached to the caller (user, role, access key).
    Identity,
    /// Attached to the secret.
    Resource,
}

/// The outcome of [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some applicable statement allows and none denies.
    Allow,
    /// No applicable statement allows (AWS's default).
    ImplicitDeny,
    /// An applicable Deny statement in a policy of this type.
    ExplicitDeny(PolicyType),
}

impl std::fmt::Display for PolicyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyType::Identity => "identity-based policy",
            PolicyType::Resource => "resource-based policy",
        })
    }
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }

    /// AWS's AccessDeniedException message for a denied request (`None` when allowed):
    /// "User: ARN is not authorized to perform: ACTION on resource: RESOURCE because no
    /// identity-based policy allows the ACTION action" or "… with an explicit deny in a
    /// resource-based policy".
    pub fn denial_message(self, req: &Request<'_>) -> Option<String> {
        let head = format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            req.principal_arn, req.action, req.resource
        );
        match self {
            Decision::Allow => None,
            Decision::ImplicitDeny => Some(format!(
                "{head} because no identity-based policy allows the {} action",
                req.action
            )),
            Decision::ExplicitDeny(kind) => {
                let article = match kind {
                    PolicyType::Identity => "an",
                    PolicyType::Resource => "a",
                };
                Some(format!("{head} with an explicit deny in {article} {kind}"))
            }
        }
    }
}

/// One request to authorize.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// "secretsmanager:GetSecretValue"
    pub action: &'a str,
    /// A secret ARN, or "*".
    pub resource: &'a str,
    /// arn:aws:iam::123456789012:user/alice, or an assumed-role session ARN.
    pub principal_arn: &'a str,
    /// Other ARNs the principal matches in a Principal element: for an assumed-role session
    /// arn:aws:sts::ACCT:assumed-role/ROLE/SESSION, its role arn:aws:iam::ACCT:role/ROLE.
    pub principal_aliases: &'a [&'a str],
    /// "123456789012": the principal's and the resource's account.
    pub account: &'a str,
    /// The request's condition keys.
    pub context: &'a dyn Context,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("action", &self.action)
            .field("resource", &self.resource)
            .field("principal_arn", &self.principal_arn)
            .field("principal_aliases", &self.principal_aliases)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// AWS's logic for one account: an explicit Deny in any applicable policy wins; else an Allow
/// in any identity policy OR in the resource policy (whose Principal matches) allows; else
/// implicit deny. For the explicit deny, say which policy type denied (identity first).
pub fn evaluate(identity: &[&Policy], resource: Option<&Policy>, req: &Request<'_>) -> Decision {
    // Action patterns are lowercased when parsed: lowercase the request's action once, and
    // every statement compares it byte for byte instead of folding case each time.
    let mut buf = [0u8; 128];
    let action = match buf.get_mut(..req.action.len()) {
        Some(lower) if req.action.is_ascii() => {
            lower.copy_from_slice(req.action.as_bytes());
            lower.make_ascii_lowercase();
            // ASCII in, ASCII out.
            std::str::from_utf8(lower).ok().map(|a| Action {
                text: a,
                fold: false,
                checked: false,
            })
        }
        _ => None,
    }
    .unwrap_or(Action {
        text: req.action,
        fold: true,
        checked: false,
    });
    let known = if action.fold {
        None
    } else {
        actions::id(action.text)
    };
    let mut allowed = false;
    for policy in identity {
        let inner = &policy.inner;
        let statements =
            actions::Relevant::new(&inner.statements, inner.by_action.as_deref(), known);
        let action = action.checked(statements.action_checked());
        for s in statements {
            if s.effect == Effect::Allow && allowed {
                continue;
            }
            if applies(s, req, action, false) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny(PolicyType::Identity),
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if let Some(policy) = resource {
        let inner = &policy.inner;
        let statements =
            actions::Relevant::new(&inner.statements, inner.by_action.as_deref(), known);
        let action = action.checked(statements.action_checked());
        for s in statements {
            if s.effect == Effect::Allow && allowed {
                continue;
            }
            if applies(s, req, action, true) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny(PolicyType::Resource),
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// The request's action as statements compare it: lowercased (`fold: false`), or as given
/// with case folded in each comparison when it is not ASCII.
#[derive(Clone, Copy)]
struct Action<'a> {
    text: &'a str,
    fold: bool,
    /// Every statement visited is already known to cover it (see [`actions::Relevant`]).
    checked: bool,
}

impl Action<'_> {
    fn checked(self, checked: bool) -> Self {
        Action { checked, ..self }
    }
}

/// Whether the statement applies to the request (its effect then counts).
fn applies(s: &Statement, req: &Request<'_>, action: Action<'_>, resource_policy: bool) -> bool {
    let ctx = req.context;
    if !action.checked {
        let action_hit = s
            .actions
            .iter()
            .any(|t| t.matches(action.text, ctx, action.fold).unwrap_or(false));
        if action_hit == s.not_action {
            return false;
        }
    }
    if s.not_resource {
        for t in s.resources.iter() {
            match t.matches(req.resource, ctx, false) {
                Ok(false) => {}
                Ok(true) | Err(_) => return false,
            }
        }
    } else if !s
        .resources
        .iter()
        .any(|t| t.matches(req.resource, ctx, false).unwrap_or(false))
    {
        return false;
    }
    if resource_policy && !principal_applies(s, req) {
        return false;
    }
    s.conditions.iter().all(|c| c.eval(ctx))
}

/// The caller's account: from its ARN, else the request's.
fn caller_account<'a>(req: &Request<'a>) -> &'a str {
    // The fifth `:`-separated field: between the fourth colon and the next one (or the end).
    let arn = req.principal_arn;
    let mut colons = arn
        .bytes()
        .enumerate()
        .filter(|&(_, b)| b == b':')
        .map(|(i, _)| i);
    let field = match (colons.nth(3), colons.next()) {
        (Some(start), Some(end)) => &arn[start + 1..end],
        (Some(start), None) => &arn[start + 1..],
        (None, _) => "",
    };
    if field.is_empty() { req.account } else { field }
}

fn principal_applies(s: &Statement, req: &Request<'_>) -> bool {
    let Some(p) = &s.principals else {
        // A resource policy statement names no principal: it applies to no one.
        return false;
    };
    let is_caller = |arn: &str| arn == req.principal_arn || req.principal_aliases.contains(&arn);
    if !p.not {
        return p.entries.iter().any(|e| match e {
            PrincipalEntry::Anyone => true,
            // An account in an Allow delegates to the account's identity policies (IAM: "the
            // account administrator must grant access"): it grants nothing by itself, except
            // to the account root. In a Deny it names everyone in the account.
            PrincipalEntry::Account(a) => {
                **a == *caller_account(req)
                    && (s.effect == Effect::Deny || req.principal_arn.ends_with(":root"))
            }
            PrincipalEntry::Arn(arn) => is_caller(arn),
            PrincipalEntry::Other { .. } => false,
        });
    }
    // NotPrincipal: the caller is the account, plus the user / session, plus its aliases
    // (the session's role). An entry names one of them exactly; an account entry (the id or
    // arn:aws:iam::ACCOUNT:root, parsed alike) names the account itself only.
    let named = |arn: &str| {
        p.entries.iter().any(|e| {
            matches!(e, PrincipalEntry::Anyone)
                || matches!(e, PrincipalEntry::Arn(x) if **x == *arn)
        })
    };
    let account = caller_account(req);
    let account_named = p.entries.iter().any(|e| match e {
        PrincipalEntry::Anyone => true,
        PrincipalEntry::Account(a) => **a == *account,
        PrincipalEntry::Arn(_) | PrincipalEntry::Other { .. } => false,
    });
    let caller_is_root = req.principal_arn.ends_with(":root");
    let caller_named = if caller_is_root {
        account_named
    } else {
        named(req.principal_arn)
    };
    match s.effect {
        // Excluded only when every identity of the caller is named.
        Effect::Deny => {
            !(account_named && caller_named && req.principal_aliases.iter().all(|a| named(a)))
        }
        // Applies only when none of them is named.
        Effect::Allow => {
            !(account_named || caller_named || req.principal_aliases.iter().any(|a| named(a)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_account_is_the_fifth_field_of_its_arn() {
        fn account(arn: &str) -> String {
            caller_account(&Request {
                action: "secretsmanager:GetSecretValue",
                resource: "*",
                principal_arn: arn,
                principal_aliases: &[],
                account: "999999999999",
                context: &EmptyContext,
            })
            .to_string()
        }
        assert_eq!(
            account("arn:aws:iam::123456789012:user/alice"),
            "123456789012"
        );
        assert_eq!(
            account("arn:aws:sts::123456789012:assumed-role/ops/s1"),
            "123456789012"
        );
        assert_eq!(account("arn:aws:iam::123456789012"), "123456789012");
        assert_eq!(account("arn:aws:iam:::user/alice"), "999999999999");
        assert_eq!(account("not-an-arn"), "999999999999");
        assert_eq!(account("arn:aws:iam::"), "999999999999");
    }

    #[test]
    fn denial_messages_read_like_aws() {
        let ctx = EmptyContext;
        let req = Request {
            action: "secretsmanager:GetSecretValue",
            resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf",
            principal_arn: "arn:aws:iam::123456789012:user/alice",
            principal_aliases: &[],
            account: "123456789012",
            context: &ctx,
        };
        assert_eq!(Decision::Allow.denial_message(&req), None);
        assert_eq!(
            Decision::ImplicitDeny.denial_message(&req).unwrap(),
            "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action"
        );
        assert!(
            Decision::ExplicitDeny(PolicyType::Identity)
                .denial_message(&req)
                .unwrap()
                .ends_with("with an explicit deny in an identity-based policy")
        );
        assert!(
            Decision::ExplicitDeny(PolicyType::Resource)
                .denial_message(&req)
                .unwrap()
                .ends_with("with an explicit deny in a resource-based policy")
        );
        assert!(format!("{req:?}").contains("alice"));
    }
}
