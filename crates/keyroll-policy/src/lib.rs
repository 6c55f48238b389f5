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
//! Semantics chosen where AWS's documentation leaves room:
//! - a policy variable that cannot be resolved (absent key, multivalued key, no default)
//!   makes the element using it not match: a `Resource` pattern does not match, a
//!   `NotResource` element makes its statement not apply, and a condition is false;
//! - a multivalued context key under an operator without `ForAnyValue:`/`ForAllValues:`
//!   matches when any of its values matches (a negated operator: when none does);
//! - `NotPrincipal` follows AWS's documented rule that a request is made by several
//!   principals at once (the account, the role, the session or user): a `Deny` applies
//!   unless every one of them is named; an `Allow` applies only if none of them is.

mod condition;
mod context;
mod error;
mod net;
mod pattern;
mod policy;
mod validate;

pub use context::{Context, CtxValue, EmptyContext, MapContext};
pub use error::{Place, PolicyError};
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

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
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
    let mut allowed = false;
    for policy in identity {
        for s in policy.inner.statements.iter() {
            if s.effect == Effect::Allow && allowed {
                continue;
            }
            if applies(s, req, false) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny(PolicyType::Identity),
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if let Some(policy) = resource {
        for s in policy.inner.statements.iter() {
            if s.effect == Effect::Allow && allowed {
                continue;
            }
            if applies(s, req, true) {
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

/// Whether the statement applies to the request (its effect then counts).
fn applies(s: &Statement, req: &Request<'_>, resource_policy: bool) -> bool {
    let ctx = req.context;
    let action_hit = s
        .actions
        .iter()
        .any(|t| t.matches(req.action, ctx, true).unwrap_or(false));
    if action_hit == s.not_action {
        return false;
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
    req.principal_arn
        .split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .unwrap_or(req.account)
}

fn principal_applies(s: &Statement, req: &Request<'_>) -> bool {
    let Some(p) = &s.principals else {
        // A resource policy statement names no principal: it applies to no one.
        return false;
    };
    let account = caller_account(req);
    let is_caller = |arn: &str| arn == req.principal_arn || req.principal_aliases.contains(&arn);
    if !p.not {
        return p.entries.iter().any(|e| match e {
            PrincipalEntry::Anyone => true,
            PrincipalEntry::Account(a) => **a == *account,
            PrincipalEntry::Arn(arn) => is_caller(arn),
            PrincipalEntry::Other { .. } => false,
        });
    }
    // NotPrincipal: the caller is the account, plus the user / session, plus its aliases
    // (the session's role). An entry names one of them exactly; an account entry names the
    // account itself only.
    let named = |arn: &str| {
        p.entries.iter().any(|e| {
            matches!(e, PrincipalEntry::Anyone)
                || matches!(e, PrincipalEntry::Arn(x) if **x == *arn)
        })
    };
    let account_named = p.entries.iter().any(|e| match e {
        PrincipalEntry::Anyone => true,
        PrincipalEntry::Account(a) => **a == *account,
        PrincipalEntry::Arn(x) => x.ends_with(":root") && x.split(':').nth(4) == Some(account),
        PrincipalEntry::Other { .. } => false,
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
