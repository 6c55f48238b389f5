//! Table-driven acceptance suite: every case names the AWS documentation rule it checks
//! ("Policy evaluation logic", "IAM JSON policy elements reference", "Condition operators",
//! "IAM policy elements: Variables and tags", "Single-valued vs. multivalued context keys").

use keyroll_policy::{Decision, MapContext, Policy, PolicyType, Request, evaluate};

const ACCT: &str = "123456789012";
const OTHER_ACCT: &str = "999999999999";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const MALLORY: &str = "arn:aws:iam::999999999999:user/mallory";
const ROOT: &str = "arn:aws:iam::123456789012:root";
const ROLE: &str = "arn:aws:iam::123456789012:role/app";
const SESSION: &str = "arn:aws:sts::123456789012:assumed-role/app/i-0abc";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/db-AbCdEf";
const DEV_SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/app/db-XyZ123";
const GET: &str = "secretsmanager:GetSecretValue";
const PUT: &str = "secretsmanager:PutSecretValue";
const DELETE: &str = "secretsmanager:DeleteSecret";
const LIST: &str = "secretsmanager:ListSecrets";

const ALLOW: Decision = Decision::Allow;
const IMPLICIT: Decision = Decision::ImplicitDeny;
const DENY_ID: Decision = Decision::ExplicitDeny(PolicyType::Identity);
const DENY_RES: Decision = Decision::ExplicitDeny(PolicyType::Resource);

/// One case: the policies, the request, its context, the expected decision and the AWS
/// rule checked.
#[derive(Clone, Debug)]
struct Case {
    rule: &'static str,
    identity: Vec<String>,
    resource: Option<String>,
    action: &'static str,
    resource_arn: &'static str,
    principal: &'static str,
    aliases: Vec<&'static str>,
    context: MapContext,
    expect: Decision,
}

fn case(rule: &'static str) -> Case {
    Case {
        rule,
        identity: Vec::new(),
        resource: None,
        action: GET,
        resource_arn: SECRET,
        principal: ALICE,
        aliases: Vec::new(),
        context: MapContext::new(),
        expect: IMPLICIT,
    }
}

/// A whole document as is, an array of statements or one statement (Version 2012-10-17).
fn doc(json: &str) -> String {
    let t = json.trim_start();
    if t.starts_with("{\"Version\"") || t.starts_with("{\"Statement\"") {
        json.to_owned()
    } else {
        format!(r#"{{"Version":"2012-10-17","Statement":{json}}}"#)
    }
}

impl Case {
    fn id(mut self, json: &str) -> Self {
        self.identity.push(doc(json));
        self
    }
    fn res(mut self, json: &str) -> Self {
        self.resource = Some(doc(json));
        self
    }
    fn act(mut self, action: &'static str) -> Self {
        self.action = action;
        self
    }
    fn on(mut self, arn: &'static str) -> Self {
        self.resource_arn = arn;
        self
    }
    fn by(mut self, principal: &'static str) -> Self {
        self.principal = principal;
        self
    }
    fn alias(mut self, arn: &'static str) -> Self {
        self.aliases.push(arn);
        self
    }
    fn ctx(mut self, key: &str, value: &str) -> Self {
        self.context.set(key, value);
        self
    }
    fn many(mut self, key: &str, values: &[&str]) -> Self {
        self.context.set_many(key, values.iter().copied());
        self
    }
    fn expect(mut self, d: Decision) -> Self {
        self.expect = d;
        self
    }
    fn yes(self) -> Self {
        self.expect(ALLOW)
    }
}

fn stmt(effect: &str, action: &str, resource: &str) -> String {
    format!(
        r#"{{"Effect":"{effect}","Action":{},"Resource":{}}}"#,
        list(action),
        list(resource)
    )
}

/// `"a"` or, for `a|b`, `["a","b"]`.
fn list(v: &str) -> String {
    if v.contains('|') {
        let items: Vec<String> = v.split('|').map(|s| format!("\"{s}\"")).collect();
        format!("[{}]", items.join(","))
    } else {
        format!("\"{v}\"")
    }
}

fn allow(action: &str, resource: &str) -> String {
    stmt("Allow", action, resource)
}

fn deny(action: &str, resource: &str) -> String {
    stmt("Deny", action, resource)
}

fn with_cond(statement: String, condition: &str) -> String {
    let body = statement.trim_end_matches('}');
    format!(r#"{body},"Condition":{condition}}}"#)
}

/// A resource-policy statement; `principal` is the element, e.g. `"Principal":"*"`.
fn rstmt(effect: &str, principal: &str, action: &str) -> String {
    format!(
        r#"{{"Effect":"{effect}",{principal},"Action":{},"Resource":"*"}}"#,
        list(action)
    )
}

fn arr(statements: &[String]) -> String {
    format!("[{}]", statements.join(","))
}

/// An identity policy allowing GetSecretValue on everything under `condition`.
fn cond(rule: &'static str, condition: &str) -> Case {
    case(rule).id(&with_cond(allow(GET, "*"), condition))
}

fn evaluation_logic() -> Vec<Case> {
    vec![
        case("Policy evaluation logic: by default all requests are implicitly denied"),
        case("Policy evaluation logic: an Allow in an identity-based policy allows the request")
            .id(&allow(GET, SECRET))
            .yes(),
        case("Policy evaluation logic: an explicit deny in any policy overrides any allow")
            .id(&arr(&[allow(GET, "*"), deny(GET, SECRET)]))
            .expect(DENY_ID),
        case("Policy evaluation logic: an explicit deny overrides an allow regardless of statement order")
            .id(&arr(&[deny(GET, SECRET), allow(GET, "*")]))
            .expect(DENY_ID),
        case("Policy evaluation logic: a Deny in one identity policy overrides an Allow in another")
            .id(&allow("secretsmanager:*", "*"))
            .id(&deny(GET, "*"))
            .expect(DENY_ID),
        case("Policy evaluation logic: an Allow in any of several identity policies is enough")
            .id(&allow(LIST, "*"))
            .id(&allow(GET, SECRET))
            .yes(),
        case("Policy evaluation logic: within one account, an Allow in the resource-based policy alone allows")
            .res(&rstmt("Allow", &format!(r#""Principal":{{"AWS":"{ALICE}"}}"#), GET))
            .yes(),
        case("Policy evaluation logic: a Deny in the resource-based policy overrides an identity Allow")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", r#""Principal":"*""#, GET))
            .expect(DENY_RES),
        case("Policy evaluation logic: a Deny in the resource-based policy overrides its own Allow")
            .res(&arr(&[
                rstmt("Allow", r#""Principal":"*""#, "secretsmanager:*"),
                rstmt("Deny", &format!(r#""Principal":{{"AWS":"{ALICE}"}}"#), GET),
            ]))
            .expect(DENY_RES),
        case("Policy evaluation logic: explicit denies are found in identity policies first")
            .id(&deny(GET, "*"))
            .res(&rstmt("Deny", r#""Principal":"*""#, GET))
            .expect(DENY_ID),
        case("Policy evaluation logic: an identity Allow and a resource Allow together allow")
            .id(&allow(GET, "*"))
            .res(&rstmt("Allow", r#""Principal":{"AWS":"123456789012"}"#, GET))
            .yes(),
        case("Policy evaluation logic: an Allow for another action does not allow this one")
            .id(&allow(PUT, "*")),
        case("Policy evaluation logic: a Deny that does not match the action leaves the Allow")
            .id(&arr(&[allow(GET, "*"), deny(DELETE, "*")]))
            .yes(),
        case("Policy evaluation logic: a Deny whose condition is false does not apply")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"Bool":{"aws:SecureTransport":"false"}}"#),
            ]))
            .ctx("aws:SecureTransport", "true")
            .yes(),
        case("Policy evaluation logic: a Deny whose condition is true overrides the Allow")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"Bool":{"aws:SecureTransport":"false"}}"#),
            ]))
            .ctx("aws:SecureTransport", "false")
            .expect(DENY_ID),
        case("Policy evaluation logic: a resource policy Allow for another principal does not allow")
            .res(&rstmt("Allow", &format!(r#""Principal":{{"AWS":"{BOB}"}}"#), GET)),
        case("Policy evaluation logic: a resource policy Deny for another principal does not deny")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &format!(r#""Principal":{{"AWS":"{BOB}"}}"#), GET))
            .yes(),
        case("Policy evaluation logic: a resource Deny scoped by aws:PrincipalAccount spares same-account callers")
            .id(&allow(GET, "*"))
            .res(&with_cond(
                rstmt("Deny", r#""Principal":"*""#, "secretsmanager:*"),
                r#"{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            ))
            .ctx("aws:PrincipalAccount", ACCT)
            .yes(),
        case("Policy evaluation logic: a resource Deny scoped by aws:PrincipalAccount denies other accounts")
            .id(&allow(GET, "*"))
            .res(&with_cond(
                rstmt("Deny", r#""Principal":"*""#, "secretsmanager:*"),
                r#"{"StringNotEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            ))
            .ctx("aws:PrincipalAccount", OTHER_ACCT)
            .expect(DENY_RES),
        case("IAM JSON policy elements: Principal – a resource policy statement without a Principal applies to no one")
            .res(&allow(GET, "*")),
        case("Policy evaluation logic: Allow * on * allows everything not denied")
            .id(&allow("*", "*"))
            .act(DELETE)
            .yes(),
        case("Policy evaluation logic: an empty resource policy document adds nothing")
            .id(&allow(GET, "*"))
            .res(&deny(GET, "*"))
            .yes(),
        case("Policy evaluation logic: statements of one policy are evaluated independently; one matching Allow suffices")
            .id(&arr(&[allow(PUT, "*"), allow(DELETE, "*"), allow(GET, SECRET)]))
            .yes(),
    ]
}

fn actions() -> Vec<Case> {
    vec![
        case("IAM JSON policy elements: Action – an exact action matches")
            .id(&allow("secretsmanager:GetSecretValue", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – action names are case-insensitive")
            .id(&allow("secretsmanager:getsecretvalue", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – the service prefix is case-insensitive")
            .id(&allow("SecretsManager:GetSecretValue", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – the request's case does not matter either")
            .id(&allow("secretsmanager:GetSecretValue", "*"))
            .act("SECRETSMANAGER:GETSECRETVALUE")
            .yes(),
        case("IAM JSON policy elements: Action – service:* matches every action of the service")
            .id(&allow("secretsmanager:*", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – a * prefix wildcard matches")
            .id(&allow("secretsmanager:Get*", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – a wildcard in the middle matches")
            .id(&allow("secretsmanager:*Secret*", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – ? matches exactly one character")
            .id(&allow("secretsmanager:Get?ecretValue", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – ? does not match zero characters")
            .id(&allow("secretsmanager:GetSecretValue?", "*")),
        case("IAM JSON policy elements: Action – * alone matches every action")
            .id(&allow("*", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – a pattern without wildcard is not a prefix match")
            .id(&allow("secretsmanager:GetSecret", "*")),
        case("IAM JSON policy elements: Action – another prefix does not match")
            .id(&allow("secretsmanager:Describe*", "*")),
        case("IAM JSON policy elements: Action – another service does not match")
            .id(&allow("s3:GetSecretValue", "*")),
        case("IAM JSON policy elements: Action – a wildcard service prefix matches")
            .id(&allow("*:GetSecretValue", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – any entry of an action array matches")
            .id(&allow("secretsmanager:PutSecretValue|secretsmanager:GetSecretValue", "*"))
            .yes(),
        case("IAM JSON policy elements: Action – no entry of an action array matches")
            .id(&allow("secretsmanager:PutSecretValue|secretsmanager:DeleteSecret", "*")),
        case("IAM JSON policy elements: Action – a wildcard Deny covers the actions it matches")
            .id(&arr(&[allow("*", "*"), deny("secretsmanager:Delete*", "*")]))
            .act(DELETE)
            .expect(DENY_ID),
        case("IAM JSON policy elements: NotAction – Allow with NotAction allows every other action")
            .id(r#"{"Effect":"Allow","NotAction":"secretsmanager:DeleteSecret","Resource":"*"}"#)
            .yes(),
        case("IAM JSON policy elements: NotAction – Allow with NotAction does not allow the listed action")
            .id(r#"{"Effect":"Allow","NotAction":"secretsmanager:DeleteSecret","Resource":"*"}"#)
            .act(DELETE),
        case("IAM JSON policy elements: NotAction – NotAction patterns take wildcards")
            .id(r#"{"Effect":"Allow","NotAction":"secretsmanager:Delete*","Resource":"*"}"#)
            .act(DELETE),
        case("IAM JSON policy elements: NotAction – NotAction matching is case-insensitive")
            .id(r#"{"Effect":"Allow","NotAction":"SECRETSMANAGER:deletesecret","Resource":"*"}"#)
            .act(DELETE),
        case("IAM JSON policy elements: NotAction – Allow with NotAction of another service allows this one")
            .id(r#"{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}"#)
            .yes(),
        case("IAM JSON policy elements: NotAction – Deny with NotAction denies every other action")
            .id(&arr(&[
                allow("*", "*"),
                r#"{"Effect":"Deny","NotAction":"secretsmanager:GetSecretValue","Resource":"*"}"#.into(),
            ]))
            .act(PUT)
            .expect(DENY_ID),
        case("IAM JSON policy elements: NotAction – Deny with NotAction spares the listed action")
            .id(&arr(&[
                allow("*", "*"),
                r#"{"Effect":"Deny","NotAction":"secretsmanager:GetSecretValue","Resource":"*"}"#.into(),
            ]))
            .yes(),
        case("IAM JSON policy elements: NotAction – an array of NotAction excludes each entry")
            .id(r#"{"Effect":"Allow","NotAction":["secretsmanager:PutSecretValue","secretsmanager:GetSecretValue"],"Resource":"*"}"#),
    ]
}

fn resources() -> Vec<Case> {
    vec![
        case("IAM JSON policy elements: Resource – an exact ARN matches")
            .id(&allow(GET, SECRET))
            .yes(),
        case("IAM JSON policy elements: Resource – another secret's ARN does not match")
            .id(&allow(GET, DEV_SECRET)),
        case("IAM JSON policy elements: Resource – ARN matching is case-sensitive")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:Prod/app/db-AbCdEf")),
        case("Secrets Manager: a secret ARN ends in -?????? (six random characters)")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/db-??????"))
            .yes(),
        case("Secrets Manager: -?????? needs exactly six characters")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/db-??????"))
            .on("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app/db-AbCdE"),
        case("IAM JSON policy elements: Resource – a trailing * matches a path prefix")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"))
            .yes(),
        case("IAM JSON policy elements: Resource – a path prefix does not match another path")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"))
            .on(DEV_SECRET),
        case("IAM JSON policy elements: Resource – wildcards work within ARN segments (region)")
            .id(&allow(GET, "arn:aws:secretsmanager:*:123456789012:secret:*"))
            .yes(),
        case("IAM JSON policy elements: Resource – another account's ARN does not match")
            .id(&allow(GET, "arn:aws:secretsmanager:*:999999999999:secret:*")),
        case("IAM JSON policy elements: Resource – * matches every resource")
            .id(&allow(GET, "*"))
            .yes(),
        case("IAM JSON policy elements: Resource – * matches a request on all resources (\"*\")")
            .id(&allow(LIST, "*"))
            .act(LIST)
            .on("*")
            .yes(),
        case("IAM JSON policy elements: Resource – an ARN does not match a request on all resources")
            .id(&allow(LIST, "arn:aws:secretsmanager:*:123456789012:secret:*"))
            .act(LIST)
            .on("*"),
        case("IAM JSON policy elements: Resource – any entry of a resource array matches")
            .id(&allow(GET, &format!("{DEV_SECRET}|{SECRET}")))
            .yes(),
        case("IAM JSON policy elements: Resource – ? matches one character in an ARN")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-?:123456789012:secret:prod/app/db-AbCdEf"))
            .yes(),
        case("IAM JSON policy elements: Resource – a service wildcard in the ARN matches")
            .id(&allow(GET, "arn:aws:*:us-east-1:123456789012:secret:prod/app/db-AbCdEf"))
            .yes(),
        case("IAM JSON policy elements: Resource – a Deny on one secret spares others")
            .id(&arr(&[allow(GET, "*"), deny(GET, SECRET)]))
            .on(DEV_SECRET)
            .yes(),
        case("IAM JSON policy elements: NotResource – Allow with NotResource allows every other resource")
            .id(&format!(r#"{{"Effect":"Allow","Action":"{GET}","NotResource":"{SECRET}"}}"#))
            .on(DEV_SECRET)
            .yes(),
        case("IAM JSON policy elements: NotResource – Allow with NotResource does not allow the listed resource")
            .id(&format!(r#"{{"Effect":"Allow","Action":"{GET}","NotResource":"{SECRET}"}}"#)),
        case("IAM JSON policy elements: NotResource – NotResource takes wildcards")
            .id(&format!(r#"{{"Effect":"Allow","Action":"{GET}","NotResource":"arn:aws:secretsmanager:*:*:secret:prod/*"}}"#)),
        case("IAM JSON policy elements: NotResource – Deny with NotResource denies every other resource")
            .id(&arr(&[
                allow(GET, "*"),
                format!(r#"{{"Effect":"Deny","Action":"{GET}","NotResource":"arn:aws:secretsmanager:*:*:secret:dev/*"}}"#),
            ]))
            .expect(DENY_ID),
        case("IAM JSON policy elements: NotResource – Deny with NotResource spares the listed resources")
            .id(&arr(&[
                allow(GET, "*"),
                format!(r#"{{"Effect":"Deny","Action":"{GET}","NotResource":"arn:aws:secretsmanager:*:*:secret:dev/*"}}"#),
            ]))
            .on(DEV_SECRET)
            .yes(),
        case("IAM JSON policy elements: NotResource – NotResource * excludes everything")
            .id(&format!(r#"{{"Effect":"Allow","Action":"{GET}","NotResource":"*"}}"#)),
    ]
}

fn principals() -> Vec<Case> {
    let p = |json: &str| format!(r#""Principal":{json}"#);
    let np = |json: &str| format!(r#""NotPrincipal":{json}"#);
    vec![
        case("IAM JSON policy elements: Principal – \"*\" is every principal")
            .res(&rstmt("Allow", &p(r#""*""#), GET))
            .yes(),
        case("IAM JSON policy elements: Principal – {\"AWS\": \"*\"} is every principal")
            .res(&rstmt("Allow", &p(r#"{"AWS":"*"}"#), GET))
            .yes(),
        case("IAM JSON policy elements: Principal – an account id in an Allow delegates to the account's identity policies: alone it grants nothing")
            .res(&rstmt("Allow", &p(r#"{"AWS":"123456789012"}"#), GET)),
        case("IAM JSON policy elements: Principal – arn:aws:iam::ACCOUNT:root in an Allow delegates: alone it grants nothing")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{ROOT}"}}"#)), GET)),
        case("IAM JSON policy elements: Principal – an account Allow with an identity Allow: allowed (the identity policy grants)")
            .id(&allow(GET, "*"))
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{ROOT}"}}"#)), GET))
            .yes(),
        case("IAM JSON policy elements: Principal – an account id in a Deny names every principal of the account")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &p(r#"{"AWS":"123456789012"}"#), GET))
            .expect(DENY_RES),
        case("IAM JSON policy elements: Principal – another account id does not match")
            .res(&rstmt("Allow", &p(r#"{"AWS":"999999999999"}"#), GET)),
        case("IAM JSON policy elements: Principal – the account of the caller's ARN is compared")
            .res(&rstmt("Allow", &p(r#"{"AWS":"123456789012"}"#), GET))
            .by(MALLORY),
        case("IAM JSON policy elements: Principal – a user ARN matches that user")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{ALICE}"}}"#)), GET))
            .yes(),
        case("IAM JSON policy elements: Principal – a user ARN does not match another user")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{BOB}"}}"#)), GET)),
        case("IAM JSON policy elements: Principal – principal ARNs are compared exactly (case)")
            .res(&rstmt("Allow", &p(r#"{"AWS":"arn:aws:iam::123456789012:user/Alice"}"#), GET)),
        case("IAM JSON policy elements: Principal – a role ARN matches the role's assumed-role sessions")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{ROLE}"}}"#)), GET))
            .by(SESSION)
            .alias(ROLE)
            .yes(),
        case("IAM JSON policy elements: Principal – a role ARN does not match a session of another role")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{ROLE}"}}"#)), GET))
            .by("arn:aws:sts::123456789012:assumed-role/other/s1")
            .alias("arn:aws:iam::123456789012:role/other"),
        case("IAM JSON policy elements: Principal – an assumed-role session ARN matches that session")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{SESSION}"}}"#)), GET))
            .by(SESSION)
            .alias(ROLE)
            .yes(),
        case("IAM JSON policy elements: Principal – a session ARN does not match another session of the role")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":"{SESSION}"}}"#)), GET))
            .by("arn:aws:sts::123456789012:assumed-role/app/i-0def")
            .alias(ROLE),
        case("IAM JSON policy elements: Principal – any entry of a principal array matches")
            .res(&rstmt("Allow", &p(&format!(r#"{{"AWS":["{BOB}","{ALICE}"]}}"#)), GET))
            .yes(),
        case("IAM JSON policy elements: Principal – a service principal is not an IAM caller")
            .res(&rstmt("Allow", &p(r#"{"Service":"lambda.amazonaws.com"}"#), GET)),
        case("IAM JSON policy elements: Principal – the root user is a principal of its account")
            .res(&rstmt("Allow", &p(r#"{"AWS":"123456789012"}"#), GET))
            .by(ROOT)
            .yes(),
        case("IAM JSON policy elements: Principal – a resource Deny naming the user denies it")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &p(&format!(r#"{{"AWS":"{ALICE}"}}"#)), GET))
            .expect(DENY_RES),
        case("IAM JSON policy elements: Principal – a resource Deny naming the role denies its sessions")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &p(&format!(r#"{{"AWS":"{ROLE}"}}"#)), GET))
            .by(SESSION)
            .alias(ROLE)
            .expect(DENY_RES),
        case("IAM JSON policy elements: NotPrincipal – Allow with NotPrincipal allows principals not listed")
            .res(&rstmt("Allow", &np(&format!(r#"{{"AWS":"{BOB}"}}"#)), GET))
            .yes(),
        case("IAM JSON policy elements: NotPrincipal – Allow with NotPrincipal does not allow the listed principal")
            .res(&rstmt("Allow", &np(&format!(r#"{{"AWS":"{BOB}"}}"#)), GET))
            .by(BOB),
        case("IAM JSON policy elements: NotPrincipal – Allow with NotPrincipal naming the account allows none of its principals")
            .res(&rstmt("Allow", &np(r#"{"AWS":"123456789012"}"#), GET)),
        case("IAM JSON policy elements: NotPrincipal – Deny naming only the user still denies it through its account")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":"{ALICE}"}}"#)), GET))
            .expect(DENY_RES),
        case("IAM JSON policy elements: NotPrincipal – Deny naming the user and its account spares the user")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":["{ALICE}","{ROOT}"]}}"#)), GET))
            .yes(),
        case("IAM JSON policy elements: NotPrincipal – the account may be named by its id")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":["{ALICE}","123456789012"]}}"#)), GET))
            .yes(),
        case("IAM JSON policy elements: NotPrincipal – Deny naming a user and the account denies other users")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":["{ALICE}","{ROOT}"]}}"#)), GET))
            .by(BOB)
            .expect(DENY_RES),
        case("IAM JSON policy elements: NotPrincipal – a session is spared only if the session, role and account are named")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":["{SESSION}","{ROLE}","{ROOT}"]}}"#)), GET))
            .by(SESSION)
            .alias(ROLE)
            .yes(),
        case("IAM JSON policy elements: NotPrincipal – naming the session and account but not the role still denies")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":["{SESSION}","{ROOT}"]}}"#)), GET))
            .by(SESSION)
            .alias(ROLE)
            .expect(DENY_RES),
        case("IAM JSON policy elements: NotPrincipal – Deny with NotPrincipal denies principals not listed")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", &np(&format!(r#"{{"AWS":["{BOB}","{ROOT}"]}}"#)), GET))
            .expect(DENY_RES),
        case("IAM JSON policy elements: Principal – a resource policy Allow of another action does not allow")
            .res(&rstmt("Allow", &p(r#""*""#), PUT)),
    ]
}

fn string_conditions() -> Vec<Case> {
    vec![
        cond(
            "Condition operators: StringEquals – exact match",
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringEquals – a different value does not match",
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
        )
        .ctx("aws:username", "bob"),
        cond(
            "Condition operators: StringEquals – matching is case-sensitive",
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
        )
        .ctx("aws:username", "Alice"),
        cond(
            "Condition operators: an absent key makes a positive operator false",
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
        ),
        cond(
            "Condition operators: several values for one key are OR'd",
            r#"{"StringEquals":{"aws:username":["bob","alice"]}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringEquals – * is not a wildcard",
            r#"{"StringEquals":{"aws:username":"a*"}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: StringNotEquals – a different value matches",
            r#"{"StringNotEquals":{"aws:username":"bob"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringNotEquals – an equal value does not match",
            r#"{"StringNotEquals":{"aws:username":"alice"}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: StringNotEquals – the value must differ from every listed value",
            r#"{"StringNotEquals":{"aws:username":["bob","alice"]}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: a negated operator is true when the key is absent",
            r#"{"StringNotEquals":{"aws:username":"alice"}}"#,
        )
        .yes(),
        cond(
            "Condition operators: StringEqualsIgnoreCase – case is ignored",
            r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringEqualsIgnoreCase – a different value does not match",
            r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        )
        .ctx("aws:username", "alicia"),
        cond(
            "Condition operators: StringNotEqualsIgnoreCase – a different case is still equal",
            r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: StringNotEqualsIgnoreCase – a different value matches",
            r#"{"StringNotEqualsIgnoreCase":{"aws:username":"BOB"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringLike – * matches any run of characters",
            r#"{"StringLike":{"aws:username":"al*"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringLike – ? matches one character",
            r#"{"StringLike":{"aws:username":"al?ce"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringLike – the whole value must match",
            r#"{"StringLike":{"aws:username":"al"}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: StringLike – matching is case-sensitive",
            r#"{"StringLike":{"aws:username":"AL*"}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: StringLike – an absent key does not match",
            r#"{"StringLike":{"aws:username":"*"}}"#,
        ),
        cond(
            "Condition operators: StringNotLike – a value outside the pattern matches",
            r#"{"StringNotLike":{"aws:username":"b*"}}"#,
        )
        .ctx("aws:username", "alice")
        .yes(),
        cond(
            "Condition operators: StringNotLike – a value inside the pattern does not match",
            r#"{"StringNotLike":{"aws:username":"a*"}}"#,
        )
        .ctx("aws:username", "alice"),
        cond(
            "Condition operators: StringNotLike – true when the key is absent",
            r#"{"StringNotLike":{"aws:username":"a*"}}"#,
        )
        .yes(),
        cond(
            "Condition operators: condition values may be JSON numbers (compared as strings)",
            r#"{"StringEquals":{"secretsmanager:VersionCount":3}}"#,
        )
        .ctx("secretsmanager:VersionCount", "3")
        .yes(),
        cond(
            "Condition operators: condition values may be JSON booleans",
            r#"{"StringEquals":{"aws:SecureTransport":true}}"#,
        )
        .ctx("aws:SecureTransport", "true")
        .yes(),
    ]
}

fn numeric_date_bool_conditions() -> Vec<Case> {
    let n = |op: &str, v: &str| format!(r#"{{"{op}":{{"secretsmanager:RotationPeriod":"{v}"}}}}"#);
    let d = |op: &str, v: &str| format!(r#"{{"{op}":{{"aws:CurrentTime":"{v}"}}}}"#);
    const NOW: &str = "2026-06-15T12:00:00Z";
    vec![
        cond(
            "Condition operators: NumericEquals – equal numbers match",
            &n("NumericEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30")
        .yes(),
        cond(
            "Condition operators: NumericEquals – numbers compare by value (30.0 = 30)",
            &n("NumericEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30.0")
        .yes(),
        cond(
            "Condition operators: NumericEquals – different numbers do not match",
            &n("NumericEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "31"),
        cond(
            "Condition operators: NumericNotEquals – different numbers match",
            &n("NumericNotEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "31")
        .yes(),
        cond(
            "Condition operators: NumericNotEquals – equal numbers do not match",
            &n("NumericNotEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30"),
        cond(
            "Condition operators: NumericLessThan – smaller matches",
            &n("NumericLessThan", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "29")
        .yes(),
        cond(
            "Condition operators: NumericLessThan – equal does not match",
            &n("NumericLessThan", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30"),
        cond(
            "Condition operators: NumericLessThanEquals – equal matches",
            &n("NumericLessThanEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30")
        .yes(),
        cond(
            "Condition operators: NumericLessThanEquals – greater does not match",
            &n("NumericLessThanEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "31"),
        cond(
            "Condition operators: NumericGreaterThan – greater matches",
            &n("NumericGreaterThan", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30.5")
        .yes(),
        cond(
            "Condition operators: NumericGreaterThan – equal does not match",
            &n("NumericGreaterThan", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30"),
        cond(
            "Condition operators: NumericGreaterThanEquals – equal matches",
            &n("NumericGreaterThanEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "30")
        .yes(),
        cond(
            "Condition operators: NumericGreaterThanEquals – smaller does not match",
            &n("NumericGreaterThanEquals", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "-1"),
        cond(
            "Condition operators: a request value that is not a number does not match",
            &n("NumericLessThan", "30"),
        )
        .ctx("secretsmanager:RotationPeriod", "soon"),
        cond(
            "Condition operators: a numeric operator is false when the key is absent",
            &n("NumericLessThan", "30"),
        ),
        cond(
            "Condition operators: NumericNotEquals is true when the key is absent",
            &n("NumericNotEquals", "30"),
        )
        .yes(),
        cond(
            "Condition operators: DateEquals – the same instant in another notation matches",
            &d("DateEquals", "2026-06-15T14:00:00+02:00"),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: DateEquals – another instant does not match",
            &d("DateEquals", "2026-06-15T12:00:01Z"),
        )
        .ctx("aws:CurrentTime", NOW),
        cond(
            "Condition operators: DateNotEquals – another instant matches",
            &d("DateNotEquals", "2026-06-15T12:00:01Z"),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: DateNotEquals – the same instant does not match",
            &d("DateNotEquals", NOW),
        )
        .ctx("aws:CurrentTime", NOW),
        cond(
            "Condition operators: DateLessThan – an earlier request time matches",
            &d("DateLessThan", "2027-01-01T00:00:00Z"),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: DateLessThan – a later request time does not match",
            &d("DateLessThan", "2026-01-01T00:00:00Z"),
        )
        .ctx("aws:CurrentTime", NOW),
        cond(
            "Condition operators: DateLessThanEquals – the same instant matches",
            &d("DateLessThanEquals", NOW),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: DateGreaterThan – a later request time matches",
            &d("DateGreaterThan", "2026-01-01"),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: DateGreaterThan – the same instant does not match",
            &d("DateGreaterThan", NOW),
        )
        .ctx("aws:CurrentTime", NOW),
        cond(
            "Condition operators: DateGreaterThanEquals – the same instant matches",
            &d("DateGreaterThanEquals", NOW),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: DateGreaterThanEquals – an earlier request time does not match",
            &d("DateGreaterThanEquals", "2027-01-01T00:00:00Z"),
        )
        .ctx("aws:CurrentTime", NOW),
        cond(
            "Condition operators: dates may be epoch seconds in the policy",
            &d("DateLessThan", "1800000000"),
        )
        .ctx("aws:CurrentTime", NOW)
        .yes(),
        cond(
            "Condition operators: dates may be epoch seconds in the request",
            &d("DateGreaterThan", "2026-01-01T00:00:00Z"),
        )
        .ctx("aws:EpochTime", "1781524800")
        .ctx("aws:CurrentTime", "1781524800")
        .yes(),
        cond(
            "Condition operators: a request value that is not a date does not match",
            &d("DateLessThan", "2027-01-01T00:00:00Z"),
        )
        .ctx("aws:CurrentTime", "tomorrow"),
        cond(
            "Condition operators: a date operator is false when the key is absent",
            &d("DateLessThan", "2027-01-01T00:00:00Z"),
        ),
        cond(
            "Condition operators: Bool – true matches true",
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
        )
        .ctx("aws:SecureTransport", "true")
        .yes(),
        cond(
            "Condition operators: Bool – values are case-insensitive",
            r#"{"Bool":{"aws:SecureTransport":"TRUE"}}"#,
        )
        .ctx("aws:SecureTransport", "True")
        .yes(),
        cond(
            "Condition operators: Bool – false does not match true",
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
        )
        .ctx("aws:SecureTransport", "false"),
        cond(
            "Condition operators: Bool – false matches false",
            r#"{"Bool":{"aws:MultiFactorAuthPresent":false}}"#,
        )
        .ctx("aws:MultiFactorAuthPresent", "false")
        .yes(),
        cond(
            "Condition operators: Bool – false when the key is absent",
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"false"}}"#,
        ),
        cond(
            "Condition operators: Bool – a value that is not a boolean does not match",
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
        )
        .ctx("aws:SecureTransport", "yes"),
        cond(
            "Condition operators: BinaryEquals – equal base64 values match",
            r#"{"BinaryEquals":{"k:blob":"QmluYXJ5VmFsdWU="}}"#,
        )
        .ctx("k:blob", "QmluYXJ5VmFsdWU=")
        .yes(),
        cond(
            "Condition operators: BinaryEquals – different bytes do not match",
            r#"{"BinaryEquals":{"k:blob":"QmluYXJ5VmFsdWU="}}"#,
        )
        .ctx("k:blob", "QmluYXJ5VmFsdWF="),
        cond(
            "Condition operators: BinaryEquals – false when the key is absent",
            r#"{"BinaryEquals":{"k:blob":"QmluYXJ5VmFsdWU="}}"#,
        ),
    ]
}

fn ip_arn_null_conditions() -> Vec<Case> {
    let ip = |op: &str, v: &str| format!(r#"{{"{op}":{{"aws:SourceIp":{}}}}}"#, list(v));
    let arn = |op: &str, v: &str| format!(r#"{{"{op}":{{"aws:SourceArn":"{v}"}}}}"#);
    const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate";
    vec![
        cond("Condition operators: IpAddress – an IPv4 address inside the block matches", &ip("IpAddress", "203.0.113.0/24")).ctx("aws:SourceIp", "203.0.113.7").yes(),
        cond("Condition operators: IpAddress – an IPv4 address outside the block does not match", &ip("IpAddress", "203.0.113.0/24")).ctx("aws:SourceIp", "203.0.114.7"),
        cond("Condition operators: IpAddress – a bare address is a /32", &ip("IpAddress", "203.0.113.7")).ctx("aws:SourceIp", "203.0.113.7").yes(),
        cond("Condition operators: IpAddress – an IPv6 address inside the block matches", &ip("IpAddress", "2001:db8::/32")).ctx("aws:SourceIp", "2001:db8:1234::1").yes(),
        cond("Condition operators: IpAddress – an IPv6 address outside the block does not match", &ip("IpAddress", "2001:db8::/32")).ctx("aws:SourceIp", "2001:db9::1"),
        cond("Condition operators: IpAddress – an IPv4 address is not in an IPv6 block", &ip("IpAddress", "::/0")).ctx("aws:SourceIp", "10.0.0.1"),
        cond("Condition operators: IpAddress – any of several blocks matches", &ip("IpAddress", "10.0.0.0/8|192.168.0.0/16")).ctx("aws:SourceIp", "192.168.1.1").yes(),
        cond("Condition operators: IpAddress – a request value that is not an address does not match", &ip("IpAddress", "0.0.0.0/0")).ctx("aws:SourceIp", "localhost"),
        cond("Condition operators: IpAddress – false when the key is absent", &ip("IpAddress", "0.0.0.0/0")),
        cond("Condition operators: NotIpAddress – an address outside every block matches", &ip("NotIpAddress", "10.0.0.0/8|192.168.0.0/16")).ctx("aws:SourceIp", "203.0.113.7").yes(),
        cond("Condition operators: NotIpAddress – an address inside a block does not match", &ip("NotIpAddress", "10.0.0.0/8")).ctx("aws:SourceIp", "10.9.8.7"),
        cond("Condition operators: NotIpAddress – true when the key is absent", &ip("NotIpAddress", "10.0.0.0/8")).yes(),
        cond("Condition operators: ArnEquals – the same ARN matches", &arn("ArnEquals", FN)).ctx("aws:SourceArn", FN).yes(),
        cond("Condition operators: ArnEquals – another ARN does not match", &arn("ArnEquals", FN)).ctx("aws:SourceArn", "arn:aws:lambda:us-east-1:123456789012:function:other"),
        cond("Condition operators: ArnEquals – ARN matching is case-sensitive", &arn("ArnEquals", FN)).ctx("aws:SourceArn", "arn:aws:lambda:us-east-1:123456789012:function:Rotate"),
        cond("Condition operators: ArnLike – wildcards match within each component", &arn("ArnLike", "arn:aws:lambda:*:123456789012:function:rot*")).ctx("aws:SourceArn", FN).yes(),
        cond("Condition operators: ArnLike – a wildcard does not span the colon-delimited components", &arn("ArnLike", "arn:aws:lambda:*:function:rotate")).ctx("aws:SourceArn", FN),
        cond("Condition operators: ArnLike – the resource component keeps its colons", &arn("ArnLike", "arn:aws:lambda:us-east-1:123456789012:function:*")).ctx("aws:SourceArn", FN).yes(),
        cond("Condition operators: ArnLike – a value that is not an ARN does not match", &arn("ArnLike", "arn:aws:lambda:*:*:*:*")).ctx("aws:SourceArn", "rotate"),
        cond("Condition operators: ArnLike – false when the key is absent", &arn("ArnLike", "arn:*:*:*:*:*")),
        cond("Condition operators: ArnNotEquals – another ARN matches", &arn("ArnNotEquals", FN)).ctx("aws:SourceArn", "arn:aws:lambda:us-east-1:123456789012:function:other").yes(),
        cond("Condition operators: ArnNotEquals – the same ARN does not match", &arn("ArnNotEquals", FN)).ctx("aws:SourceArn", FN),
        cond("Condition operators: ArnNotLike – an ARN outside the pattern matches", &arn("ArnNotLike", "arn:aws:lambda:*:999999999999:*")).ctx("aws:SourceArn", FN).yes(),
        cond("Condition operators: ArnNotLike – an ARN inside the pattern does not match", &arn("ArnNotLike", "arn:aws:lambda:*:123456789012:*")).ctx("aws:SourceArn", FN),
        cond("Condition operators: ArnNotLike – true when the key is absent", &arn("ArnNotLike", "arn:aws:lambda:*:123456789012:*")).yes(),
        cond("Condition operators: Null true – matches when the key is absent", r#"{"Null":{"aws:TokenIssueTime":"true"}}"#).yes(),
        cond("Condition operators: Null true – does not match when the key is present", r#"{"Null":{"aws:TokenIssueTime":"true"}}"#).ctx("aws:TokenIssueTime", "2026-01-01T00:00:00Z"),
        cond("Condition operators: Null false – matches when the key is present", r#"{"Null":{"aws:TokenIssueTime":false}}"#).ctx("aws:TokenIssueTime", "2026-01-01T00:00:00Z").yes(),
        cond("Condition operators: Null false – does not match when the key is absent", r#"{"Null":{"aws:TokenIssueTime":"false"}}"#),
        cond("Condition operators: Null true – an empty multivalued key counts as absent", r#"{"Null":{"aws:TagKeys":"true"}}"#).many("aws:TagKeys", &[]).yes(),
    ]
}

fn if_exists_and_combinations() -> Vec<Case> {
    vec![
        cond("Condition operators: ...IfExists – true when the key is absent", r#"{"StringEqualsIfExists":{"ec2:InstanceType":"t3.micro"}}"#).yes(),
        cond("Condition operators: ...IfExists – a present key must still match", r#"{"StringEqualsIfExists":{"ec2:InstanceType":"t3.micro"}}"#).ctx("ec2:InstanceType", "m5.large"),
        cond("Condition operators: ...IfExists – a present matching key matches", r#"{"StringEqualsIfExists":{"ec2:InstanceType":"t3.micro"}}"#).ctx("ec2:InstanceType", "t3.micro").yes(),
        cond("Condition operators: StringLikeIfExists – true when absent", r#"{"StringLikeIfExists":{"aws:username":"a*"}}"#).yes(),
        cond("Condition operators: StringNotEqualsIfExists – true when absent", r#"{"StringNotEqualsIfExists":{"aws:username":"alice"}}"#).yes(),
        cond("Condition operators: StringNotEqualsIfExists – a present equal value does not match", r#"{"StringNotEqualsIfExists":{"aws:username":"alice"}}"#).ctx("aws:username", "alice"),
        cond("Condition operators: StringEqualsIgnoreCaseIfExists – true when absent", r#"{"StringEqualsIgnoreCaseIfExists":{"aws:username":"ALICE"}}"#).yes(),
        cond("Condition operators: NumericLessThanIfExists – true when absent", r#"{"NumericLessThanIfExists":{"s:n":"5"}}"#).yes(),
        cond("Condition operators: NumericLessThanIfExists – a present larger value does not match", r#"{"NumericLessThanIfExists":{"s:n":"5"}}"#).ctx("s:n", "6"),
        cond("Condition operators: DateLessThanIfExists – true when absent", r#"{"DateLessThanIfExists":{"aws:TokenIssueTime":"2026-01-01"}}"#).yes(),
        cond("Condition operators: DateLessThanIfExists – a present later value does not match", r#"{"DateLessThanIfExists":{"aws:TokenIssueTime":"2026-01-01"}}"#).ctx("aws:TokenIssueTime", "2026-02-01T00:00:00Z"),
        cond("Condition operators: BoolIfExists – true when absent", r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#).yes(),
        cond("Condition operators: BoolIfExists – a present false does not match true", r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#).ctx("aws:MultiFactorAuthPresent", "false"),
        cond("Condition operators: IpAddressIfExists – true when absent", r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#).yes(),
        cond("Condition operators: NotIpAddressIfExists – a present address inside does not match", r#"{"NotIpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#).ctx("aws:SourceIp", "10.0.0.1"),
        cond("Condition operators: ArnLikeIfExists – true when absent", r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:lambda:*:*:*:*"}}"#).yes(),
        cond("Condition operators: ArnEqualsIfExists – a present different ARN does not match", r#"{"ArnEqualsIfExists":{"aws:SourceArn":"arn:aws:lambda:us-east-1:1:function:a"}}"#).ctx("aws:SourceArn", "arn:aws:lambda:us-east-1:1:function:b"),
        cond("Condition operators: BinaryEqualsIfExists – true when absent", r#"{"BinaryEqualsIfExists":{"k:blob":"AAAA"}}"#).yes(),
        cond("Condition operators: NumericEqualsIfExists – a present equal value matches", r#"{"NumericEqualsIfExists":{"s:n":"5"}}"#).ctx("s:n", "5").yes(),
        cond("Condition operators: DateGreaterThanIfExists – true when absent", r#"{"DateGreaterThanIfExists":{"aws:CurrentTime":"2026-01-01"}}"#).yes(),
        cond("IAM JSON policy elements: Condition – several keys in one operator are AND'd (all true)", r#"{"StringEquals":{"aws:username":"alice","aws:PrincipalAccount":"123456789012"}}"#)
            .ctx("aws:username", "alice").ctx("aws:PrincipalAccount", ACCT).yes(),
        cond("IAM JSON policy elements: Condition – several keys in one operator are AND'd (one false)", r#"{"StringEquals":{"aws:username":"alice","aws:PrincipalAccount":"123456789012"}}"#)
            .ctx("aws:username", "alice").ctx("aws:PrincipalAccount", OTHER_ACCT),
        cond("IAM JSON policy elements: Condition – several operators are AND'd (all true)", r#"{"StringEquals":{"aws:username":"alice"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#)
            .ctx("aws:username", "alice").ctx("aws:SourceIp", "10.1.1.1").yes(),
        cond("IAM JSON policy elements: Condition – several operators are AND'd (one false)", r#"{"StringEquals":{"aws:username":"alice"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#)
            .ctx("aws:username", "alice").ctx("aws:SourceIp", "11.1.1.1"),
        cond("IAM JSON policy elements: Condition – values OR'd within a key, keys AND'd", r#"{"StringEquals":{"aws:username":["bob","alice"],"aws:PrincipalAccount":["999999999999","123456789012"]}}"#)
            .ctx("aws:username", "alice").ctx("aws:PrincipalAccount", ACCT).yes(),
        cond("IAM JSON policy elements: Condition – one unmet key fails the whole condition block", r#"{"StringEquals":{"aws:username":"alice"},"StringLike":{"aws:userid":"AIDA*"}}"#)
            .ctx("aws:username", "alice").ctx("aws:userid", "AROA123:session"),
    ]
}

fn set_operators() -> Vec<Case> {
    vec![
        cond("Condition operators: ForAnyValue – true when one request value matches", r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}"#)
            .many("aws:TagKeys", &["owner", "env"]).yes(),
        cond("Condition operators: ForAnyValue – false when no request value matches", r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}"#)
            .many("aws:TagKeys", &["owner", "cost"]),
        cond("Condition operators: ForAnyValue – false when the key is absent", r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}"#),
        cond("Condition operators: ForAnyValue – false when the key has no values", r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}"#)
            .many("aws:TagKeys", &[]),
        cond("Condition operators: ForAnyValue...IfExists – true when the key is absent", r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":["team"]}}"#).yes(),
        cond("Condition operators: ForAnyValue with StringLike", r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"cost-*"}}"#)
            .many("aws:TagKeys", &["owner", "cost-center"]).yes(),
        cond("Condition operators: ForAnyValue with a negated operator – one value outside the list is enough", r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["team","env"]}}"#)
            .many("aws:TagKeys", &["team", "owner"]).yes(),
        cond("Condition operators: ForAnyValue with a negated operator – false when every value is listed", r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["team","env"]}}"#)
            .many("aws:TagKeys", &["team", "env"]),
        cond("Condition operators: ForAllValues – true when every request value matches", r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}"#)
            .many("aws:TagKeys", &["env", "team"]).yes(),
        cond("Condition operators: ForAllValues – false when one request value does not match", r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}"#)
            .many("aws:TagKeys", &["env", "owner"]),
        cond("Condition operators: ForAllValues – true when the key is absent", r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#).yes(),
        cond("Condition operators: ForAllValues – true when the key has no values", r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#)
            .many("aws:TagKeys", &[]).yes(),
        cond("Condition operators: ForAllValues with StringLike patterns", r#"{"ForAllValues:StringLike":{"aws:TagKeys":["team*","env"]}}"#)
            .many("aws:TagKeys", &["team-a", "teamB", "env"]).yes(),
        cond("Condition operators: ForAllValues with a negated operator – true when no value is listed", r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","owner"]}}"#)
            .many("aws:TagKeys", &["team", "env"]).yes(),
        cond("Condition operators: ForAllValues with a negated operator – false when one value is listed", r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","owner"]}}"#)
            .many("aws:TagKeys", &["team", "owner"]),
        cond("Condition operators: ForAllValues guarded by Null false – the absent key no longer passes", r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]},"Null":{"aws:TagKeys":"false"}}"#),
        cond("Condition operators: ForAllValues guarded by Null false – present matching values pass", r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]},"Null":{"aws:TagKeys":"false"}}"#)
            .many("aws:TagKeys", &["team"]).yes(),
        cond("Condition operators: a set operator on a single-valued key compares its one value", r#"{"ForAllValues:StringEquals":{"aws:username":["alice","bob"]}}"#)
            .ctx("aws:username", "alice").yes(),
        cond("Condition operators: ForAnyValue on a single-valued key compares its one value", r#"{"ForAnyValue:StringEquals":{"aws:username":["bob"]}}"#)
            .ctx("aws:username", "alice"),
        cond("Condition operators: ForAnyValue with numeric values", r#"{"ForAnyValue:NumericGreaterThan":{"s:sizes":"10"}}"#)
            .many("s:sizes", &["3", "12"]).yes(),
        cond("Condition operators: ForAllValues with numeric values", r#"{"ForAllValues:NumericGreaterThan":{"s:sizes":"10"}}"#)
            .many("s:sizes", &["3", "12"]),
        cond("Condition operators: ForAnyValue with IP blocks", r#"{"ForAnyValue:IpAddress":{"s:hops":"10.0.0.0/8"}}"#)
            .many("s:hops", &["192.168.0.1", "10.0.0.1"]).yes(),
        cond("Condition operators: ForAllValues with ARN patterns", r#"{"ForAllValues:ArnLike":{"aws:CalledVia":"arn:aws:*:*:123456789012:*"}}"#)
            .many("aws:CalledVia", &["arn:aws:lambda:us-east-1:123456789012:function:f", "arn:aws:sqs:us-east-1:999999999999:q"]),
        cond("Single-valued vs. multivalued context keys: without a set operator a multivalued key matches when any value does", r#"{"StringEquals":{"aws:TagKeys":"team"}}"#)
            .many("aws:TagKeys", &["env", "team"]).yes(),
        cond("Single-valued vs. multivalued context keys: without a set operator a negated operator needs no value to match", r#"{"StringNotEquals":{"aws:TagKeys":"team"}}"#)
            .many("aws:TagKeys", &["env", "team"]),
        case("Condition operators: ForAllValues in a Deny – an absent key makes the Deny apply (AWS's warning)")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["forbidden"]}}"#),
            ]))
            .expect(DENY_ID),
        case("Condition operators: ForAnyValue in a Deny – an absent key leaves the Deny out")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["forbidden"]}}"#),
            ]))
            .yes(),
        case("Condition operators: ForAnyValue in a Deny – one forbidden tag key denies")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["forbidden"]}}"#),
            ]))
            .many("aws:TagKeys", &["ok", "forbidden"])
            .expect(DENY_ID),
    ]
}

fn variables() -> Vec<Case> {
    const HOME: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/${aws:username}/*";
    const ALICE_HOME: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/alice/db-AbCdEf";
    const LITERAL: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/${aws:username}/db-AbCdEf";
    vec![
        case("IAM policy elements: Variables – ${aws:username} in Resource resolves to the caller's name")
            .id(&allow(GET, HOME)).on(ALICE_HOME).ctx("aws:username", "alice").yes(),
        case("IAM policy elements: Variables – another user's resource does not match")
            .id(&allow(GET, HOME)).on(ALICE_HOME).ctx("aws:username", "bob"),
        case("IAM policy elements: Variables – an unresolvable variable makes the Resource not match")
            .id(&allow(GET, HOME)).on(ALICE_HOME),
        case("IAM policy elements: Variables – a default value is used when the key is absent")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/${aws:username, 'alice'}/*"))
            .on(ALICE_HOME).yes(),
        case("IAM policy elements: Variables – the request's value wins over the default")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:home/${aws:username, 'alice'}/*"))
            .on(ALICE_HOME).ctx("aws:username", "bob"),
        case("IAM policy elements: Variables – variables are only expanded under Version 2012-10-17")
            .id(&format!(r#"{{"Version":"2008-10-17","Statement":{}}}"#, allow(GET, HOME)))
            .on(ALICE_HOME).ctx("aws:username", "alice"),
        case("IAM policy elements: Variables – under Version 2008-10-17 ${…} is literal text")
            .id(&format!(r#"{{"Version":"2008-10-17","Statement":{}}}"#, allow(GET, HOME)))
            .on(LITERAL).ctx("aws:username", "alice").yes(),
        case("IAM policy elements: Variables – without Version, ${…} is literal text")
            .id(&format!(r#"{{"Statement":{}}}"#, allow(GET, HOME)))
            .on(ALICE_HOME).ctx("aws:username", "alice"),
        case("IAM policy elements: Variables – ${aws:PrincipalTag/K} resolves from the principal's tags")
            .id(&allow(GET, "arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*"))
            .on(SECRET).ctx("aws:PrincipalTag/team", "prod").yes(),
        case("IAM policy elements: Variables – variable key names are case-insensitive (tag keys too)")
            .id(&allow(GET, "arn:aws:secretsmanager:*:*:secret:${AWS:PRINCIPALTAG/TEAM}/*"))
            .on(SECRET).ctx("aws:PrincipalTag/team", "prod").yes(),
        cond("IAM policy elements: Variables – ${aws:userid} in a condition value", r#"{"StringEquals":{"secretsmanager:ResourceTag/owner":"${aws:userid}"}}"#)
            .ctx("aws:userid", "AIDAEXAMPLE").ctx("secretsmanager:ResourceTag/owner", "AIDAEXAMPLE").yes(),
        cond("IAM policy elements: Variables – a variable in a condition compares to the resolved value", r#"{"StringEquals":{"secretsmanager:ResourceTag/owner":"${aws:userid}"}}"#)
            .ctx("aws:userid", "AIDAEXAMPLE").ctx("secretsmanager:ResourceTag/owner", "AIDAOTHER"),
        cond("IAM policy elements: Variables – any context key can be a variable", r#"{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/team}"}}"#)
            .ctx("aws:PrincipalTag/team", "payments").ctx("aws:ResourceTag/team", "payments").yes(),
        cond("IAM policy elements: Variables – a variable inside a StringLike pattern", r#"{"StringLike":{"secretsmanager:Name":"${aws:username}-*"}}"#)
            .ctx("aws:username", "alice").ctx("secretsmanager:Name", "alice-db").yes(),
        cond("IAM policy elements: Variables – ${*} is a literal asterisk in StringLike", r#"{"StringLike":{"s:v":"a${*}"}}"#)
            .ctx("s:v", "a*").yes(),
        cond("IAM policy elements: Variables – ${*} does not act as a wildcard", r#"{"StringLike":{"s:v":"a${*}"}}"#)
            .ctx("s:v", "abc"),
        cond("IAM policy elements: Variables – ${?} is a literal question mark", r#"{"StringLike":{"s:v":"a${?}"}}"#)
            .ctx("s:v", "ab"),
        cond("IAM policy elements: Variables – ${$} is a literal dollar sign", r#"{"StringEquals":{"s:v":"${$}{x}"}}"#)
            .ctx("s:v", "${x}").yes(),
        cond("IAM policy elements: Variables – a substituted value is literal even in StringLike", r#"{"StringLike":{"s:v":"${s:pattern}"}}"#)
            .ctx("s:pattern", "a*").ctx("s:v", "abc"),
        cond("IAM policy elements: Variables – an unresolvable variable makes the condition not match", r#"{"StringEquals":{"s:v":"${aws:username}"}}"#)
            .ctx("s:v", ""),
        cond("IAM policy elements: Variables – an unresolvable variable makes a negated condition not match too", r#"{"StringNotEquals":{"s:v":"${aws:username}"}}"#)
            .ctx("s:v", "x"),
        cond("IAM policy elements: Variables – a multivalued key cannot be a variable", r#"{"StringEquals":{"s:v":"${aws:TagKeys}"}}"#)
            .many("aws:TagKeys", &["x"]).ctx("s:v", "x"),
        cond("IAM policy elements: Variables – a default value in a condition", r#"{"StringEquals":{"s:v":"${s:missing, 'fallback'}"}}"#)
            .ctx("s:v", "fallback").yes(),
        cond("IAM policy elements: Variables – a variable in an ArnLike value", r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/${aws:username}"}}"#)
            .ctx("aws:username", "alice").ctx("aws:PrincipalArn", ALICE).yes(),
        case("IAM policy elements: Variables – an unresolvable variable in a Deny leaves the Deny out")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"StringNotEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#),
            ]))
            .ctx("aws:ResourceTag/owner", "bob")
            .yes(),
        case("IAM policy elements: Variables – a resolved variable in a Deny applies")
            .id(&arr(&[
                allow(GET, "*"),
                with_cond(deny(GET, "*"), r#"{"StringNotEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#),
            ]))
            .ctx("aws:ResourceTag/owner", "bob")
            .ctx("aws:username", "alice")
            .expect(DENY_ID),
        case("IAM policy elements: Variables – NotResource with an unresolvable variable does not apply")
            .id(&format!(r#"{{"Effect":"Allow","Action":"{GET}","NotResource":"{HOME}"}}"#))
            .on(SECRET),
        case("IAM policy elements: Variables – NotResource with a resolved variable excludes the user's own tree")
            .id(&format!(r#"{{"Effect":"Allow","Action":"{GET}","NotResource":"{HOME}"}}"#))
            .on(SECRET)
            .ctx("aws:username", "alice")
            .yes(),
    ]
}

fn case_rules() -> Vec<Case> {
    vec![
        cond("IAM JSON policy elements: Condition – condition key names are case-insensitive", r#"{"StringEquals":{"AWS:UserName":"alice"}}"#)
            .ctx("aws:username", "alice").yes(),
        cond("IAM JSON policy elements: Condition – tag keys in aws:ResourceTag are case-insensitive", r#"{"StringEquals":{"aws:ResourceTag/TEAM":"payments"}}"#)
            .ctx("aws:ResourceTag/team", "payments").yes(),
        cond("IAM JSON policy elements: Condition – tag keys in aws:RequestTag are case-insensitive", r#"{"StringEquals":{"aws:requesttag/Env":"prod"}}"#)
            .ctx("aws:RequestTag/env", "prod").yes(),
        cond("IAM JSON policy elements: Condition – tag values stay case-sensitive", r#"{"StringEquals":{"aws:ResourceTag/team":"Payments"}}"#)
            .ctx("aws:ResourceTag/team", "payments"),
        cond("IAM JSON policy elements: Condition – aws:PrincipalTag keys are case-insensitive", r#"{"StringEquals":{"aws:PrincipalTag/Dept":"eng"}}"#)
            .ctx("aws:principaltag/dept", "eng").yes(),
        case("IAM JSON policy elements: Resource – the secret name part is case-sensitive")
            .id(&allow(GET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:PROD/*")),
        case("IAM JSON policy elements: Action – mixed-case patterns match mixed-case requests")
            .id(&allow("SecretsManager:Get*Value", "*"))
            .act("secretsmanager:getsecretVALUE")
            .yes(),
        case("IAM JSON policy elements: Principal – an assumed-role session's account is its ARN's account")
            .id(&allow(GET, "*"))
            .res(&rstmt("Deny", r#""Principal":{"AWS":"123456789012"}"#, GET))
            .by(SESSION)
            .alias(ROLE)
            .expect(DENY_RES),
    ]
}

fn all_cases() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(evaluation_logic());
    all.extend(actions());
    all.extend(resources());
    all.extend(principals());
    all.extend(string_conditions());
    all.extend(numeric_date_bool_conditions());
    all.extend(ip_arn_null_conditions());
    all.extend(if_exists_and_combinations());
    all.extend(set_operators());
    all.extend(variables());
    all.extend(case_rules());
    all
}

fn run(c: &Case) -> Decision {
    let identity: Vec<Policy> = c
        .identity
        .iter()
        .map(|t| {
            Policy::parse(t).unwrap_or_else(|e| panic!("{}: identity policy: {e}\n{t}", c.rule))
        })
        .collect();
    let resource = c.resource.as_ref().map(|t| {
        Policy::parse(t).unwrap_or_else(|e| panic!("{}: resource policy: {e}\n{t}", c.rule))
    });
    let refs: Vec<&Policy> = identity.iter().collect();
    let req = Request {
        action: c.action,
        resource: c.resource_arn,
        principal_arn: c.principal,
        principal_aliases: &c.aliases,
        account: ACCT,
        context: &c.context,
    };
    evaluate(&refs, resource.as_ref(), &req)
}

#[test]
fn every_case_decides_as_aws_documents() {
    let cases = all_cases();
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = run(c);
            (got != c.expect).then(|| {
                format!(
                    "{}\n  expected {:?}, got {got:?}\n  identity: {:?}\n  resource: {:?}\n  context: {:?}",
                    c.rule, c.expect, c.identity, c.resource, c.context
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_case_cites_a_documented_rule_and_is_unique() {
    let cases = all_cases();
    let mut rules: Vec<&str> = cases.iter().map(|c| c.rule).collect();
    for r in &rules {
        assert!(
            r.contains(" – ") || r.contains(": "),
            "rule without a source: {r}"
        );
    }
    rules.sort_unstable();
    let before = rules.len();
    rules.dedup();
    assert_eq!(before, rules.len(), "two cases share a rule text");
}

#[test]
fn both_outcomes_and_both_deny_kinds_are_covered() {
    let cases = all_cases();
    for d in [ALLOW, IMPLICIT, DENY_ID, DENY_RES] {
        assert!(
            cases.iter().filter(|c| c.expect == d).count() >= 5,
            "{d:?} barely covered"
        );
    }
}
