//! STS on the API endpoint: GetCallerIdentity, GetSessionToken with TOTP MFA, AssumeRole with
//! trust, MFA, required session tags and session limits, the BreakGlassAssumed notification,
//! expiry, and sessions kept (encrypted) across a restart — over raw SigV4 requests signed
//! for service `sts` at an injected clock.

use std::path::Path;
use std::sync::Arc;

use keyroll_core::time::{Clock, ManualClock, SystemClock, Timestamp};
use keyroll_server::credentials::{AccessKey, KeyStore};
use keyroll_server::identity::configured_principals;
use keyroll_server::server::{App, RunningServer, bind, start};
use keyroll_server::sts::totp;
use keyroll_server::{Config, MemoryRegions, Regions};
use keyroll_testkit::webhook::WebhookReceiver;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SEED_BYTES: &[u8] = b"12345678901234567890";
const ALICE_MFA: &str = "arn:aws:iam::123456789012:mfa/alice";
const BREAK_GLASS: &str = "arn:aws:iam::123456789012:role/break-glass";
const READER: &str = "arn:aws:iam::123456789012:role/reader";
const T0: i64 = 1_800_000_015;

fn config_text() -> String {
    format!(
        r#"
account = "{ACCOUNT}"

[[access_keys]]
access_key_id = "AKIAALICE00000000001"
secret_access_key = "alice-secret-0000000000000000000000000000"
name = "alice"
mfa_totp_secret = "{SEED}"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*","Condition":{{"Bool":{{"aws:MultiFactorAuthPresent":"true"}}}}}}]}}'

[[access_keys]]
access_key_id = "AKIABOB0000000000001"
secret_access_key = "bob-secret-00000000000000000000000000000"
name = "bob"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{READER}"}}]}}'

[[access_keys]]
access_key_id = "AKIACAROL00000000001"
secret_access_key = "carol-secret-000000000000000000000000000"
name = "carol"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}}]}}'

[[roles]]
name = "break-glass"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}'
trusted = ["alice"]
require_mfa = true
required_session_tags = ["Justification"]
notify = true
max_session_secs = 900

[[roles]]
name = "reader"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:CreateSecret","Resource":"*","Condition":{{"StringEquals":{{"aws:PrincipalTag/Team":"ops"}}}}}},{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{READER}"}}]}}'
trusted = ["{ACCOUNT}"]
tags = {{ Team = "dev" }}
"#
    )
}

fn key(id: &str, secret: &str) -> AccessKey {
    AccessKey {
        access_key_id: id.into(),
        secret_access_key: SecretString::from(secret.to_string()),
        session_token: None,
        name: id.into(),
    }
}

fn alice() -> AccessKey {
    key(
        "AKIAALICE00000000001",
        "alice-secret-0000000000000000000000000000",
    )
}
fn bob() -> AccessKey {
    key(
        "AKIABOB0000000000001",
        "bob-secret-00000000000000000000000000000",
    )
}
fn carol() -> AccessKey {
    key(
        "AKIACAROL00000000001",
        "carol-secret-000000000000000000000000000",
    )
}

struct T<R: Regions> {
    server: RunningServer<R>,
    clock: ManualClock,
    host: String,
}

fn load_config(notify_url: Option<&str>) -> Config {
    let mut config = Config::from_toml(&config_text(), Path::new("keyroll.toml")).unwrap();
    if let Some(url) = notify_url {
        let url = url.to_string();
        config.notify = keyroll_notify::NotifyConfig::default()
            .with_vars(|k| (k == "KEYROLL_NOTIFY_WEBHOOK_URL").then(|| url.clone()))
            .unwrap();
    }
    config
}

async fn start_on<R: Regions>(regions: R, clock: ManualClock, notify_url: Option<&str>) -> T<R> {
    let config = load_config(notify_url);
    let keys = KeyStore::with_principals(configured_principals(&config, None).unwrap());
    let notifier = keyroll_notify::Notifier::from_config(&config.notify).unwrap();
    let app = App::with_keys(regions, config, keys, Arc::new(SystemClock))
        .with_notifier(notifier)
        .with_auth_clock(Arc::new(clock.clone()));
    let listener = bind("127.0.0.1:0").await.unwrap();
    let server = start(Arc::new(app), listener, false).unwrap();
    let host = server.addr.to_string();
    T {
        server,
        clock,
        host,
    }
}

async fn start_memory(notify_url: Option<&str>) -> T<MemoryRegions> {
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let regions = MemoryRegions::new(ACCOUNT, Arc::new(SystemClock));
    start_on(regions, clock, notify_url).await
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<R: Regions> T<R> {
    fn now(&self) -> i64 {
        self.clock.now().millis() / 1000
    }

    fn advance(&self, secs: i64) {
        self.clock.advance_millis(secs * 1000);
    }

    fn code(&self) -> String {
        totp::code_at(SEED_BYTES, self.now())
    }

    async fn send(
        &self,
        service: &str,
        headers: &[(&str, &str)],
        body: &str,
        key: &AccessKey,
        region: &str,
    ) -> (u16, String) {
        let signed = keyroll_server::sigv4::sign_for(
            service,
            "POST",
            &self.host,
            "/",
            headers,
            body.as_bytes(),
            key,
            region,
            self.clock.now(),
        );
        let mut req = reqwest::Client::new()
            .post(format!("http://{}/", self.host))
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// An STS call (form body, service `sts`).
    async fn sts(&self, key: &AccessKey, pairs: &[(&str, &str)]) -> (u16, String) {
        let mut all = vec![("Version", "2011-06-15")];
        all.extend_from_slice(pairs);
        self.send(
            "sts",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            &form(&all),
            key,
            "us-east-1",
        )
        .await
    }

    /// A Secrets Manager call.
    async fn sm(&self, key: &AccessKey, op: &str, body: &str) -> (u16, Value) {
        let target = format!("secretsmanager.{op}");
        let (status, text) = self
            .send(
                "secretsmanager",
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", &target),
                ],
                body,
                key,
                "us-east-1",
            )
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn assume_break_glass(
        &self,
        code: Option<&str>,
        justification: Option<&str>,
    ) -> (u16, String) {
        let mut p = vec![
            ("Action", "AssumeRole"),
            ("RoleArn", BREAK_GLASS),
            ("RoleSessionName", "incident-42"),
        ];
        if let Some(c) = code {
            p.push(("SerialNumber", ALICE_MFA));
            p.push(("TokenCode", c));
        }
        if let Some(j) = justification {
            p.push(("Tags.member.1.Key", "Justification"));
            p.push(("Tags.member.1.Value", j));
        }
        self.sts(&alice(), &p).await
    }
}

/// The text of the first `<tag>…</tag>`.
fn text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

fn error_code(xml: &str) -> &str {
    assert!(
        xml.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
        "{xml}"
    );
    text(xml, "Code").unwrap_or("")
}

fn session_key(xml: &str) -> AccessKey {
    AccessKey {
        access_key_id: text(xml, "AccessKeyId").unwrap().into(),
        secret_access_key: SecretString::from(text(xml, "SecretAccessKey").unwrap().to_string()),
        session_token: Some(SecretString::from(
            text(xml, "SessionToken").unwrap().to_string(),
        )),
        name: "session".into(),
    }
}

#[tokio::test]
async fn get_caller_identity_answers_aws_xml() {
    let t = start_memory(None).await;
    let (status, xml) = t.sts(&alice(), &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.starts_with(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    assert_eq!(
        text(&xml, "Arn"),
        Some("arn:aws:iam::123456789012:user/alice")
    );
    assert_eq!(text(&xml, "Account"), Some(ACCOUNT));
    assert!(text(&xml, "UserId").unwrap().starts_with("AIDA"));
    assert!(text(&xml, "RequestId").is_some());

    // Unknown action, wrong version, and a request signed for secretsmanager.
    let (status, xml) = t.sts(&alice(), &[("Action", "GetFederationToken")]).await;
    assert_eq!((status, error_code(&xml)), (400, "InvalidAction"));
    let (status, xml) = t
        .send(
            "sts",
            &[("content-type", "application/x-www-form-urlencoded")],
            "Action=GetCallerIdentity&Version=2010-01-01",
            &alice(),
            "us-east-1",
        )
        .await;
    assert_eq!((status, error_code(&xml)), (400, "InvalidAction"));
    let (status, xml) = t
        .send(
            "secretsmanager",
            &[("content-type", "application/x-www-form-urlencoded")],
            "Action=GetCallerIdentity&Version=2011-06-15",
            &alice(),
            "us-east-1",
        )
        .await;
    assert_eq!((status, error_code(&xml)), (403, "SignatureDoesNotMatch"));
    let (status, xml) = t
        .sts(
            &key("AKIAUNKNOWN000000001", "x"),
            &[("Action", "GetCallerIdentity")],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (403, "InvalidClientTokenId"));
    t.server.shutdown().await;
}

#[tokio::test]
async fn get_session_token_with_mfa_carries_mfa_into_evaluation() {
    let t = start_memory(None).await;
    // Alice's policy needs MFA: her permanent key is denied.
    let (status, v) = t.sm(&alice(), "ListSecrets", "{}").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );

    // Wrong code, missing half, someone else's device.
    let (status, xml) = t
        .sts(
            &alice(),
            &[
                ("Action", "GetSessionToken"),
                ("SerialNumber", ALICE_MFA),
                ("TokenCode", "000000"),
            ],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (403, "AccessDenied"));
    assert_eq!(
        text(&xml, "Message"),
        Some("MultiFactorAuthentication failed with invalid MFA one time pass code. ")
    );
    let (_, xml) = t
        .sts(
            &alice(),
            &[("Action", "GetSessionToken"), ("SerialNumber", ALICE_MFA)],
        )
        .await;
    assert_eq!(error_code(&xml), "AccessDenied");
    let code = t.code();
    let (_, xml) = t
        .sts(
            &carol(),
            &[
                ("Action", "GetSessionToken"),
                ("SerialNumber", ALICE_MFA),
                ("TokenCode", &code),
            ],
        )
        .await;
    assert!(
        text(&xml, "Message")
            .unwrap()
            .contains("unable to validate MFA code"),
        "{xml}"
    );
    // Duration out of range.
    let (status, xml) = t
        .sts(
            &alice(),
            &[("Action", "GetSessionToken"), ("DurationSeconds", "600")],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (400, "ValidationError"));

    let (status, xml) = t
        .sts(
            &alice(),
            &[
                ("Action", "GetSessionToken"),
                ("SerialNumber", ALICE_MFA),
                ("TokenCode", &code),
                ("DurationSeconds", "900"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<GetSessionTokenResult><Credentials>"));
    let session = session_key(&xml);
    assert!(session.access_key_id.starts_with("ASIA"));
    assert_eq!(session.secret_access_key.expose_secret().len(), 40);
    assert_eq!(
        text(&xml, "Expiration").unwrap(),
        chrono::DateTime::from_timestamp(T0 + 900, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    // The same code again is refused (even within its window).
    let (_, xml) = t
        .sts(
            &alice(),
            &[
                ("Action", "GetSessionToken"),
                ("SerialNumber", ALICE_MFA),
                ("TokenCode", &code),
            ],
        )
        .await;
    assert_eq!(error_code(&xml), "AccessDenied");

    // The session is Alice, with MFA: ListSecrets is allowed now.
    let (_, xml) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(
        text(&xml, "Arn"),
        Some("arn:aws:iam::123456789012:user/alice")
    );
    let (status, v) = t.sm(&session, "ListSecrets", "{}").await;
    assert_eq!(status, 200, "{v}");
    // Without the token the key is not accepted.
    let mut no_token = session.clone();
    no_token.session_token = None;
    let (status, xml) = t.sts(&no_token, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!((status, error_code(&xml)), (403, "InvalidClientTokenId"));
    // No GetSessionToken from a session.
    let (_, xml) = t.sts(&session, &[("Action", "GetSessionToken")]).await;
    assert_eq!(
        text(&xml, "Message"),
        Some("Cannot call GetSessionToken with session credentials")
    );
    // A session without MFA says so: denied by Alice's policy.
    let (status, xml) = t.sts(&alice(), &[("Action", "GetSessionToken")]).await;
    assert_eq!(status, 200, "{xml}");
    let plain = session_key(&xml);
    let (_, v) = t.sm(&plain, "ListSecrets", "{}").await;
    assert_eq!(v["__type"], "AccessDeniedException");

    // Expiry: the MFA session stops working at its Expiration.
    t.advance(900);
    let (status, v) = t.sm(&session, "ListSecrets", "{}").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("ExpiredTokenException"))
    );
    let (status, xml) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!((status, error_code(&xml)), (403, "ExpiredToken"));
    t.server.shutdown().await;
}

#[tokio::test]
async fn break_glass_end_to_end() {
    let hook = WebhookReceiver::start().unwrap();
    let t = start_memory(Some(hook.url())).await;

    // Without a code, with a wrong code, without the justification, with an empty one.
    let denied = format!(
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: \
         sts:AssumeRole on resource: {BREAK_GLASS}"
    );
    let (status, xml) = t.assume_break_glass(None, Some("INC-42 db down")).await;
    assert_eq!((status, error_code(&xml)), (403, "AccessDenied"));
    assert_eq!(text(&xml, "Message"), Some(denied.as_str()));
    let (_, xml) = t
        .assume_break_glass(Some("123456"), Some("INC-42 db down"))
        .await;
    assert_eq!(
        text(&xml, "Message"),
        Some("MultiFactorAuthentication failed with invalid MFA one time pass code. ")
    );
    let code = t.code();
    let (_, xml) = t.assume_break_glass(Some(&code), None).await;
    assert_eq!(text(&xml, "Message"), Some(denied.as_str()));
    t.advance(30);
    let code = t.code();
    let (_, xml) = t.assume_break_glass(Some(&code), Some(" ")).await;
    assert_eq!(text(&xml, "Message"), Some(denied.as_str()));
    // Someone not trusted, with a valid request otherwise.
    let (_, xml) = t
        .sts(
            &carol(),
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", BREAK_GLASS),
                ("RoleSessionName", "x1"),
            ],
        )
        .await;
    assert!(
        text(&xml, "Message")
            .unwrap()
            .starts_with("User: arn:aws:iam::123456789012:user/carol is not authorized")
    );
    // Longer than the role allows.
    t.advance(30);
    let code = t.code();
    let (status, xml) = t
        .sts(
            &alice(),
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", BREAK_GLASS),
                ("RoleSessionName", "incident-42"),
                ("SerialNumber", ALICE_MFA),
                ("TokenCode", &code),
                ("DurationSeconds", "3600"),
                ("Tags.member.1.Key", "Justification"),
                ("Tags.member.1.Value", "INC-42"),
            ],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (400, "ValidationError"));
    assert!(hook.bodies().is_empty(), "nothing assumed yet");

    // The right code and a justification.
    t.advance(30);
    let code = t.code();
    let (status, xml) = t
        .assume_break_glass(Some(&code), Some("INC-42 db down"))
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.starts_with("<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
    );
    assert_eq!(
        text(&xml, "Arn"),
        Some("arn:aws:sts::123456789012:assumed-role/break-glass/incident-42")
    );
    let role_id = text(&xml, "AssumedRoleId").unwrap();
    assert!(
        role_id.starts_with("AROA") && role_id.ends_with(":incident-42"),
        "{role_id}"
    );
    assert!(text(&xml, "PackedPolicySize").is_some());
    let session = session_key(&xml);
    // The same code cannot assume it twice.
    let (_, again) = t
        .assume_break_glass(Some(&code), Some("INC-42 db down"))
        .await;
    assert_eq!(error_code(&again), "AccessDenied");

    // The session works with the role's policy, and says who it is.
    let (_, who) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(
        text(&who, "Arn"),
        Some("arn:aws:sts::123456789012:assumed-role/break-glass/incident-42")
    );
    let (status, v) = t
        .sm(&session, "CreateSecret", r#"{"Name":"bg/one","SecretString":"x","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#)
        .await;
    assert_eq!(status, 200, "{v}");

    // The notification: who, which role, why; never a key.
    let bodies = hook.wait_for(1, std::time::Duration::from_secs(10));
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let n: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(n["event"], "BreakGlassAssumed");
    assert_eq!(n["roleArn"], BREAK_GLASS);
    assert_eq!(n["principalArn"], "arn:aws:iam::123456789012:user/alice");
    assert_eq!(n["sessionName"], "incident-42");
    assert_eq!(n["justification"], "INC-42 db down");
    assert_eq!(n["sourceIp"], "127.0.0.1");
    assert_eq!(n["mfa"], true);
    for secret in [
        session.access_key_id.as_str(),
        session.secret_access_key.expose_secret(),
        session.session_token.as_ref().unwrap().expose_secret(),
    ] {
        assert!(!bodies[0].contains(secret));
    }

    // After its expiry (900 s) the role session is denied.
    t.advance(899);
    let (status, _) = t.sm(&session, "ListSecrets", "{}").await;
    assert_eq!(status, 200);
    t.advance(1);
    let (status, v) = t.sm(&session, "ListSecrets", "{}").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("ExpiredTokenException"))
    );
    assert_eq!(hook.bodies().len(), 1);
    t.server.shutdown().await;
}

#[tokio::test]
async fn account_trust_needs_an_identity_policy_and_session_tags_reach_evaluation() {
    let t = start_memory(None).await;
    let assume = |tags: Vec<(&'static str, &'static str)>| {
        let mut p = vec![
            ("Action", "AssumeRole"),
            ("RoleArn", READER),
            ("RoleSessionName", "bob-session"),
        ];
        p.extend(tags);
        p
    };
    // Carol's policy does not allow sts:AssumeRole on the role.
    let (status, xml) = t.sts(&carol(), &assume(vec![])).await;
    assert_eq!((status, error_code(&xml)), (403, "AccessDenied"));
    // Bob's does. The role's tag Team=dev applies: CreateSecret is denied.
    let (status, xml) = t.sts(&bob(), &assume(vec![])).await;
    assert_eq!(status, 200, "{xml}");
    assert!(text(&xml, "PackedPolicySize").is_none());
    let dev = session_key(&xml);
    let create = r#"{"Name":"r/one","SecretString":"x","ClientRequestToken":"00000000-0000-4000-8000-000000000002"}"#;
    let (_, v) = t.sm(&dev, "CreateSecret", create).await;
    assert_eq!(v["__type"], "AccessDeniedException");
    // A session tag overrides the role's tag (case-insensitively).
    let (status, xml) = t
        .sts(
            &bob(),
            &assume(vec![
                ("Tags.member.1.Key", "team"),
                ("Tags.member.1.Value", "ops"),
            ]),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let ops = session_key(&xml);
    let (status, v) = t.sm(&ops, "CreateSecret", create).await;
    assert_eq!(status, 200, "{v}");
    // Role chaining is capped at an hour; unknown roles are denied like untrusted ones.
    let (status, xml) = t
        .sts(
            &ops,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", READER),
                ("RoleSessionName", "chain"),
                ("DurationSeconds", "7200"),
            ],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (400, "ValidationError"));
    let (status, xml) = t
        .sts(
            &ops,
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", READER),
                ("RoleSessionName", "chain"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        text(&xml, "Arn"),
        Some("arn:aws:sts::123456789012:assumed-role/reader/chain")
    );
    let (status, xml) = t
        .sts(
            &bob(),
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", "arn:aws:iam::123456789012:role/nope"),
                ("RoleSessionName", "s1"),
            ],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (403, "AccessDenied"));
    // Bad session names and missing parameters.
    let (status, xml) = t
        .sts(
            &bob(),
            &[
                ("Action", "AssumeRole"),
                ("RoleArn", READER),
                ("RoleSessionName", "has space"),
            ],
        )
        .await;
    assert_eq!((status, error_code(&xml)), (400, "ValidationError"));
    let (status, xml) = t
        .sts(&bob(), &[("Action", "AssumeRole"), ("RoleArn", READER)])
        .await;
    assert_eq!((status, error_code(&xml)), (400, "MissingParameter"));
    t.server.shutdown().await;
}

#[tokio::test]
async fn sessions_survive_a_restart_and_are_purged_at_expiry() {
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let regions = MemoryRegions::new(ACCOUNT, Arc::new(SystemClock));
    let t = start_on(regions.clone(), clock.clone(), None).await;
    let (status, xml) = t
        .sts(
            &alice(),
            &[("Action", "GetSessionToken"), ("DurationSeconds", "1000")],
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    let session = session_key(&xml);
    // Internal sessions are invisible to API callers and metrics.
    let (_, v) = t.sm(&carol(), "ListSecrets", "{}").await;
    assert_eq!(v["SecretList"], Value::Array(vec![]), "{v}");
    let (status, _) = t
        .send(
            "sts",
            &[("content-type", "application/x-www-form-urlencoded")],
            "Action=GetCallerIdentity&Version=2011-06-15",
            &alice(),
            keyroll_server::sts::sessions::INTERNAL_REGION,
        )
        .await;
    assert_eq!(status, 403);
    assert!(!t.server.app.render_metrics().contains("session/"));
    t.server.shutdown().await;

    let t = start_on(regions.clone(), clock.clone(), None).await;
    let (status, xml) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        text(&xml, "Arn"),
        Some("arn:aws:iam::123456789012:user/alice")
    );
    assert_eq!(t.server.app.keys.temporary_count(), 1);

    // At expiry the purge forgets it in the key store and in the store.
    t.advance(1000);
    let app = t.server.app.clone();
    let purged = keyroll_server::sts::sessions::purge(&app, t.now())
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(app.keys.temporary_count(), 0);
    let (status, xml) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!((status, error_code(&xml)), (403, "InvalidClientTokenId"));
    t.server.shutdown().await;

    // A restart after expiry does not bring it back.
    let t = start_on(regions, clock, None).await;
    let (status, _) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, 403);
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_encrypted_at_rest_in_the_embedded_store() {
    use keyroll_store::embedded::{EmbeddedStore, MasterKeySource, OpenOptions};
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        EmbeddedStore::open(
            OpenOptions::new(dir.path().join("data"))
                .account(ACCOUNT)
                .master_key(MasterKeySource::File(dir.path().join("master.key"))),
        )
        .unwrap()
    };
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let t = start_on(open(), clock.clone(), None).await;
    let (status, xml) = t.sts(&alice(), &[("Action", "GetSessionToken")]).await;
    assert_eq!(status, 200, "{xml}");
    let session = session_key(&xml);
    t.server.shutdown().await;
    let secret = session.secret_access_key.expose_secret().to_string();
    let token = session
        .session_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_string();
    for entry in walk(&dir.path().join("data")) {
        let bytes = std::fs::read(&entry).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(&secret), "secret key in {}", entry.display());
        assert!(
            !hay.contains(&token[..40]),
            "session token in {}",
            entry.display()
        );
    }
    let t = start_on(open(), clock, None).await;
    let (status, xml) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, 200, "{xml}");
    t.server.shutdown().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn boot_admin(
    regions: MemoryRegions,
    admin: &AccessKey,
    clock: &ManualClock,
) -> T<MemoryRegions> {
    let app = App::new(
        regions,
        Config::default(),
        vec![admin.clone()],
        Arc::new(SystemClock),
    )
    .with_auth_clock(Arc::new(clock.clone()));
    let listener = bind("127.0.0.1:0").await.unwrap();
    let server = start(Arc::new(app), listener, false).unwrap();
    let host = server.addr.to_string();
    T {
        server,
        clock: clock.clone(),
        host,
    }
}

#[tokio::test]
async fn sessions_of_the_generated_admin_key_survive_a_restart() {
    let admin = keyroll_server::credentials::generate_key("admin").unwrap();
    let clock = ManualClock::new(Timestamp::from_secs(T0));
    let regions = MemoryRegions::new("000000000000", Arc::new(SystemClock));
    let t = boot_admin(regions.clone(), &admin, &clock).await;
    let (status, xml) = t.sts(&admin, &[("Action", "GetSessionToken")]).await;
    assert_eq!(status, 200, "{xml}");
    let session = session_key(&xml);
    t.server.shutdown().await;
    let t = boot_admin(regions, &admin, &clock).await;
    let (status, xml) = t.sts(&session, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        text(&xml, "Arn"),
        Some("arn:aws:iam::000000000000:user/admin")
    );
    t.server.shutdown().await;
}
