//! Properties of AWS's evaluation logic over random policies and requests: an explicit deny
//! can only take permissions away, removing an allow can only take permissions away, and
//! the order of statements does not matter.

use keyroll_policy::{
    Decision, DecisionMemo, MapContext, Policy, PolicyType, Request, evaluate, validate,
};
use proptest::prelude::*;

const ACCT: &str = "123456789012";
const ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DeleteSecret",
    "secretsmanager:ListSecrets",
];
const ACTION_PATTERNS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:Get*",
    "secretsmanager:*",
    "*",
    "secretsmanager:PutSecretValue",
    "SecretsManager:deletesecret",
    "s3:*",
    "secretsmanager:?etSecretValue",
];
const RESOURCES: &[&str] = &[
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/db-XyZ123",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/alice/k-000000",
    "*",
];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????",
    "arn:aws:secretsmanager:*:123456789012:secret:dev/*",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/${aws:username}/*",
    "arn:aws:secretsmanager:*:*:secret:*",
];
const PRINCIPALS: &[(&str, &[&str])] = &[
    ("arn:aws:iam::123456789012:user/alice", &[]),
    ("arn:aws:iam::123456789012:user/bob", &[]),
    (
        "arn:aws:sts::123456789012:assumed-role/app/s1",
        &["arn:aws:iam::123456789012:role/app"],
    ),
];
const PRINCIPAL_VALUES: &[&str] = &[
    "123456789012",
    "arn:aws:iam::123456789012:root",
    "arn:aws:iam::123456789012:user/alice",
    "arn:aws:iam::123456789012:user/bob",
    "arn:aws:iam::123456789012:role/app",
    "arn:aws:sts::123456789012:assumed-role/app/s1",
    "999999999999",
];
const CONDITIONS: &[&str] = &[
    r#"{"StringEquals":{"aws:username":"alice"}}"#,
    r#"{"StringNotEquals":{"aws:username":"alice"}}"#,
    r#"{"StringLikeIfExists":{"aws:ResourceTag/team":"pay*"}}"#,
    r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
    r#"{"Null":{"aws:ResourceTag/team":"true"}}"#,
    r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}"#,
    r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"t*"}}"#,
    r#"{"NumericLessThan":{"s:n":"5"},"DateGreaterThan":{"aws:CurrentTime":"2026-01-01"}}"#,
    r#"{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/team}"}}"#,
];

#[derive(Clone, Debug)]
struct Stmt {
    allow: bool,
    not_action: bool,
    actions: Vec<&'static str>,
    not_resource: bool,
    resources: Vec<&'static str>,
    /// (NotPrincipal?, "*" or values)
    principal: Option<(bool, Vec<&'static str>)>,
    condition: Option<&'static str>,
}

fn json_list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap()
}

impl Stmt {
    fn to_json(&self, resource_policy: bool) -> String {
        let mut parts = vec![format!(
            r#""Effect":"{}""#,
            if self.allow { "Allow" } else { "Deny" }
        )];
        parts.push(format!(
            r#""{}":{}"#,
            if self.not_action {
                "NotAction"
            } else {
                "Action"
            },
            json_list(&self.actions)
        ));
        parts.push(format!(
            r#""{}":{}"#,
            if self.not_resource {
                "NotResource"
            } else {
                "Resource"
            },
            json_list(&self.resources)
        ));
        if resource_policy {
            match &self.principal {
                None => parts.push(r#""Principal":"*""#.into()),
                Some((not, values)) => parts.push(format!(
                    r#""{}":{{"AWS":{}}}"#,
                    if *not { "NotPrincipal" } else { "Principal" },
                    json_list(values)
                )),
            }
        }
        if let Some(c) = self.condition {
            parts.push(format!(r#""Condition":{c}"#));
        }
        format!("{{{}}}", parts.join(","))
    }
}

fn doc(statements: &[Stmt], resource_policy: bool) -> String {
    let body: Vec<String> = statements
        .iter()
        .map(|s| s.to_json(resource_policy))
        .collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        body.join(",")
    )
}

fn some<T: Clone + std::fmt::Debug + 'static>(
    items: &'static [T],
) -> impl Strategy<Value = Vec<T>> {
    prop::collection::vec(prop::sample::select(items), 1..3)
}

fn stmt() -> impl Strategy<Value = Stmt> {
    (
        any::<bool>(),
        prop::bool::weighted(0.2),
        some(ACTION_PATTERNS),
        prop::bool::weighted(0.2),
        some(RESOURCE_PATTERNS),
        prop::option::of((any::<bool>(), some(PRINCIPAL_VALUES))),
        prop::option::of(prop::sample::select(CONDITIONS)),
    )
        .prop_map(
            |(allow, not_action, actions, not_resource, resources, principal, condition)| Stmt {
                allow,
                not_action,
                actions,
                not_resource,
                resources,
                principal,
                condition,
            },
        )
}

#[derive(Clone, Debug)]
struct Req {
    action: &'static str,
    resource: &'static str,
    principal: usize,
    context: Vec<(&'static str, &'static str)>,
    tag_keys: Option<Vec<&'static str>>,
}

fn req() -> impl Strategy<Value = Req> {
    let kv = prop::sample::select(
        &[
            ("aws:username", "alice"),
            ("aws:username", "bob"),
            ("aws:ResourceTag/team", "payments"),
            ("aws:PrincipalTag/team", "payments"),
            ("aws:SourceIp", "10.1.2.3"),
            ("aws:SourceIp", "203.0.113.9"),
            ("aws:SecureTransport", "true"),
            ("aws:SecureTransport", "false"),
            ("s:n", "3"),
            ("aws:CurrentTime", "2026-12-07T03:00:00Z"),
        ][..],
    );
    (
        prop::sample::select(ACTIONS),
        prop::sample::select(RESOURCES),
        0..PRINCIPALS.len(),
        prop::collection::vec(kv, 0..5),
        prop::option::of(prop::collection::vec(
            prop::sample::select(&["team", "env", "owner"][..]),
            0..3,
        )),
    )
        .prop_map(|(action, resource, principal, context, tag_keys)| Req {
            action,
            resource,
            principal,
            context,
            tag_keys,
        })
}

fn context(r: &Req) -> MapContext {
    let mut ctx = MapContext::new();
    for (k, v) in &r.context {
        ctx.set(k, v);
    }
    if let Some(keys) = &r.tag_keys {
        ctx.set_many("aws:TagKeys", keys.iter().copied());
    }
    ctx
}

fn request<'a>(r: &'a Req, ctx: &'a MapContext) -> Request<'a> {
    let (principal, aliases) = PRINCIPALS[r.principal];
    Request {
        action: r.action,
        resource: r.resource,
        principal_arn: principal,
        principal_aliases: aliases,
        account: ACCT,
        context: ctx,
    }
}

fn decide(identity: &[Vec<Stmt>], resource: Option<&[Stmt]>, r: &Req) -> Decision {
    let ids: Vec<Policy> = identity
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| Policy::parse(&doc(p, false)).unwrap())
        .collect();
    let res = resource
        .filter(|p| !p.is_empty())
        .map(|p| Policy::parse(&doc(p, true)).unwrap());
    let refs: Vec<&Policy> = ids.iter().collect();
    let ctx = context(r);
    evaluate(&refs, res.as_ref(), &request(r, &ctx))
}

fn policies() -> impl Strategy<Value = (Vec<Vec<Stmt>>, Vec<Stmt>)> {
    (
        prop::collection::vec(prop::collection::vec(stmt(), 0..4), 0..3),
        prop::collection::vec(stmt(), 0..4),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn adding_a_deny_never_grants((identity, resource) in policies(), extra in stmt(), into_resource in any::<bool>(), r in req()) {
        let before = decide(&identity, Some(&resource), &r);
        let deny = Stmt { allow: false, ..extra };
        let (mut identity2, mut resource2) = (identity.clone(), resource.clone());
        if into_resource {
            resource2.push(deny);
        } else if let Some(first) = identity2.first_mut() {
            first.push(deny);
        } else {
            identity2.push(vec![deny]);
        }
        let after = decide(&identity2, Some(&resource2), &r);
        prop_assert!(after != Decision::Allow || before == Decision::Allow, "{before:?} -> {after:?}");
        if matches!(before, Decision::ExplicitDeny(_)) {
            prop_assert!(matches!(after, Decision::ExplicitDeny(_)));
        }
    }

    #[test]
    fn removing_an_allow_never_grants((identity, resource) in policies(), pick in any::<prop::sample::Index>(), r in req()) {
        let before = decide(&identity, Some(&resource), &r);
        // Every (policy, statement) position holding an Allow; remove one of them.
        let mut spots: Vec<(Option<usize>, usize)> = Vec::new();
        for (p, stmts) in identity.iter().enumerate() {
            for (i, s) in stmts.iter().enumerate() {
                if s.allow { spots.push((Some(p), i)); }
            }
        }
        for (i, s) in resource.iter().enumerate() {
            if s.allow { spots.push((None, i)); }
        }
        prop_assume!(!spots.is_empty());
        let (p, i) = spots[pick.index(spots.len())];
        let (mut identity2, mut resource2) = (identity.clone(), resource.clone());
        match p {
            Some(p) => { identity2[p].remove(i); }
            None => { resource2.remove(i); }
        }
        let after = decide(&identity2, Some(&resource2), &r);
        prop_assert!(after != Decision::Allow || before == Decision::Allow, "{before:?} -> {after:?}");
        // Removing an allow cannot create or lift an explicit deny either.
        prop_assert_eq!(matches!(after, Decision::ExplicitDeny(_)), matches!(before, Decision::ExplicitDeny(_)));
    }

    #[test]
    fn the_decision_memo_always_answers_as_evaluate_does((identity, resource) in policies(), requests in prop::collection::vec(req(), 1..40)) {
        // The same parsed policies for every request (the memo keys on the objects), a
        // memo small enough to evict, and requests drawn from few values so that most
        // questions repeat with the same or changed context answers.
        let ids: Vec<Policy> = identity
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Policy::parse(&doc(p, false)).unwrap())
            .collect();
        let res = (!resource.is_empty()).then(|| Policy::parse(&doc(&resource, true)).unwrap());
        let refs: Vec<&Policy> = ids.iter().collect();
        let mut memo = DecisionMemo::new(3);
        // Each request twice in a row (a hit), then the whole list again (hits and misses).
        for r in requests.iter().flat_map(|r| [r, r]).chain(requests.iter()) {
            let ctx = context(r);
            let request = request(r, &ctx);
            prop_assert_eq!(
                memo.evaluate(&refs, res.as_ref(), &request),
                evaluate(&refs, res.as_ref(), &request),
                "{:?}", r
            );
        }
    }

    #[test]
    fn statement_order_does_not_matter((identity, resource) in policies(), r in req()) {
        let before = decide(&identity, Some(&resource), &r);
        let reversed: Vec<Vec<Stmt>> = identity.iter().map(|p| p.iter().rev().cloned().collect()).collect();
        let resource_rev: Vec<Stmt> = resource.iter().rev().cloned().collect();
        prop_assert_eq!(before, decide(&reversed, Some(&resource_rev), &r));
    }

    #[test]
    fn an_explicit_deny_names_the_policy_type_that_denied((identity, resource) in policies(), r in req()) {
        match decide(&identity, Some(&resource), &r) {
            Decision::ExplicitDeny(PolicyType::Resource) => {
                // The identity policies alone do not deny.
                prop_assert!(!matches!(decide(&identity, None, &r), Decision::ExplicitDeny(_)));
            }
            Decision::ExplicitDeny(PolicyType::Identity) => {
                prop_assert_eq!(decide(&identity, None, &r), Decision::ExplicitDeny(PolicyType::Identity));
            }
            _ => {}
        }
    }

    #[test]
    fn parsing_and_validating_arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = Policy::parse(&text);
        let _ = validate(&text, PolicyType::Resource);
    }

    #[test]
    fn generated_policies_always_parse_and_validate((identity, resource) in policies()) {
        for p in identity.iter().filter(|p| !p.is_empty()) {
            prop_assert!(Policy::parse_as(&doc(p, false), PolicyType::Identity).is_ok());
        }
        if !resource.is_empty() {
            let text = doc(&resource, true);
            prop_assert!(Policy::parse_as(&text, PolicyType::Resource).is_ok());
            let findings = validate(&text, PolicyType::Resource).unwrap();
            prop_assert!(findings.iter().all(|f| f.check != keyroll_policy::CHECK_SYNTAX), "{findings:?}");
        }
    }
}
