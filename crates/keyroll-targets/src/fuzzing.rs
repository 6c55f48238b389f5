//! Invariant checks over the database secret parser and the HTTP target's template
//! substitution, shared by the `cargo fuzz` targets `db_secret` and `http_template` (crate
//! `fuzz/`, feature `fuzzing`) and the proptests below (stable Rust, run by `scripts/test`).
//! Each check panics when an invariant breaks: that is the fuzzer's signal.

use keyroll_core::value::SecretValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::database::secret::CLONE_SUFFIX;
use crate::database::{DbSecret, alternate_username};
use crate::http::Vars;

/// A password no fuzz input contains by chance, to see whether messages ever print one.
const MARKER: &str = "pw-MARKER-5f1c9e-never-printed";

/// Parses `text` as a database secret and checks: parsing is deterministic; a parsed secret
/// re-read with new credentials keeps every other field; the alternating user of the
/// alternating user is the user again; neither `Debug` nor an error ever shows the password.
pub fn check_db_secret(text: &str) {
    let value = SecretValue::string(text);
    let first = DbSecret::parse(&value, "the fuzzed secret");
    let second = DbSecret::parse(&value, "the fuzzed secret");
    assert_eq!(
        first
            .as_ref()
            .map(|s| format!("{s:?}"))
            .map_err(|e| e.to_string()),
        second
            .as_ref()
            .map(|s| format!("{s:?}"))
            .map_err(|e| e.to_string()),
        "DbSecret::parse is not deterministic"
    );
    if let Ok(s) = &first {
        check_parsed(s);
    }
    // The same object with a password nobody could guess: never printed.
    if let Some(mut fields) = value.json_object() {
        fields.insert("password".into(), Value::String(MARKER.into()));
        match DbSecret::from_map(fields, "the fuzzed secret") {
            Ok(s) => {
                assert!(
                    !format!("{s:?}").contains(MARKER),
                    "Debug shows the password"
                );
                assert_eq!(s.password().expose_secret(), MARKER);
            }
            Err(e) => assert!(
                !e.to_string().contains(MARKER),
                "an error shows the password"
            ),
        }
    }
}

fn check_parsed(s: &DbSecret) {
    assert!(!s.host.trim().is_empty());
    assert!(s.port > 0);
    assert!(!s.username.is_empty() && !s.username.contains('\0'));
    assert!(!s.password().expose_secret().contains('\0'));
    let endpoint = s.endpoint();
    assert!(endpoint.ends_with(&format!(":{}", s.port)), "{endpoint:?}");
    assert!(s.same_server(s));

    let new_password = SecretString::from(MARKER.to_string());
    match alternate_username(&s.username, s.engine) {
        Ok(alt) => {
            assert_ne!(alt, s.username);
            if !s
                .username
                .ends_with(&format!("{CLONE_SUFFIX}{CLONE_SUFFIX}"))
                && let Ok(back) = alternate_username(&alt, s.engine)
            {
                assert_eq!(back, s.username, "alternating twice is not the identity");
            }
            if alt.len() > s.username.len() {
                assert!(s.engine.username_limit().fits(&alt));
            }
            let again = DbSecret::parse(&s.with_credentials(&alt, &new_password), "again")
                .unwrap_or_else(|e| panic!("a secret with new credentials does not parse: {e}"));
            assert_eq!(again.username, alt);
            assert_eq!(again.password().expose_secret(), MARKER);
            assert_eq!(
                (
                    again.engine,
                    &again.host,
                    again.port,
                    &again.dbname,
                    again.ssl,
                    &again.masterarn
                ),
                (s.engine, &s.host, s.port, &s.dbname, s.ssl, &s.masterarn),
                "new credentials changed another field"
            );
            assert!(again.same_server(s));
        }
        Err(e) => assert!(!e.to_string().contains(MARKER)),
    }
}

/// Renders `template` with the versions in `vars` (a JSON object with optional `current`,
/// `pending`, `previous` objects, `token` and `keyField` strings) and checks: rendering is
/// deterministic; text without `{{` is unchanged; errors never show a substituted value; a
/// JSON body stays valid JSON, and its strings render as the same strings rendered alone.
pub fn check_template(template: &str, vars: &Map<String, Value>) {
    let obj = |k: &str| vars.get(k).and_then(Value::as_object);
    let text = |k: &str, d: &'static str| vars.get(k).and_then(Value::as_str).unwrap_or(d);
    let v = Vars {
        key_field: text("keyField", "apiKey"),
        token: text("token", "tok-0"),
        current: obj("current"),
        pending: obj("pending"),
        previous: obj("previous"),
    };
    let what = "test request GET http://fuzz/";
    let out = v.render(template, what);
    let again = v.render(template, what);
    assert_eq!(
        out.as_ref().map(|s| s.as_str()).map_err(|e| e.to_string()),
        again
            .as_ref()
            .map(|s| s.as_str())
            .map_err(|e| e.to_string()),
        "render is not deterministic"
    );
    if !template.contains("{{") {
        assert_eq!(out.as_ref().map(|s| s.as_str()).ok(), Some(template));
    }
    if let Err(e) = &out {
        let msg = e.to_string();
        assert!(
            msg.contains(what),
            "the error does not name the request: {msg}"
        );
        for secret in values(&v) {
            // Values that the template or a field name also spells out may be quoted as such.
            if secret.len() >= 6
                && !template.contains(secret.as_str())
                && !what.contains(secret.as_str())
                && !names(&v).iter().any(|n| n.contains(secret.as_str()))
            {
                assert!(
                    !msg.contains(secret.as_str()),
                    "an error shows a value: {msg}"
                );
            }
        }
    }
    // A JSON body: it must still be JSON after substitution, with each string (and key)
    // rendered exactly as the same text on its own.
    if let Ok(json) = serde_json::from_str::<Value>(template) {
        let body = v.render_json(&json, what);
        let parsed = body.as_ref().ok().map(|body| {
            serde_json::from_str::<Value>(body).unwrap_or_else(|e| {
                panic!("a JSON body is no longer JSON after substitution ({e}): {body:?}")
            })
        });
        assert_eq!(
            parsed,
            render_each(&v, &json, what),
            "a JSON body renders differently from its strings rendered alone"
        );
    }
}

/// `json` with every string and key rendered on its own (`None` if one fails).
fn render_each(v: &Vars<'_>, json: &Value, what: &str) -> Option<Value> {
    Some(match json {
        Value::String(s) => Value::String(v.render(s, what).ok()?.to_string()),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_each(v, i, what))
                .collect::<Option<_>>()?,
        ),
        Value::Object(fields) => {
            let mut out = Map::new();
            for (k, i) in fields {
                out.insert(
                    v.render(k, what).ok()?.to_string(),
                    render_each(v, i, what)?,
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn values(v: &Vars<'_>) -> Vec<String> {
    [v.current, v.pending, v.previous]
        .into_iter()
        .flatten()
        .flat_map(|m| m.values())
        .filter_map(|x| match x {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn names(v: &Vars<'_>) -> Vec<String> {
    [v.current, v.pending, v.previous]
        .into_iter()
        .flatten()
        .flat_map(|m| m.keys().cloned())
        .chain([v.key_field.to_string(), v.token.to_string()])
        .collect()
}

/// A fuzz input for [`check_template`]: the template, a newline, then the JSON of the vars.
pub fn check_template_input(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, vars) = text.split_once('\n').unwrap_or((text, ""));
    let vars = match serde_json::from_str::<Value>(vars) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    check_template(template, &vars);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn db_secret() -> impl Strategy<Value = String> {
        let engine = prop::sample::select(vec![
            "postgres",
            "aurora-postgresql",
            "mysql",
            "aurora-mysql",
            "mariadb",
            "oracle",
        ]);
        let user = prop_oneof![
            "[a-z_]{1,20}",
            "[a-z]{1,8}_clone",
            "[a-z]{1,4}_clone_clone",
            "[a-z]{60,70}",
            "\\PC{0,12}",
        ];
        let port = prop_oneof![
            (0u32..70000).prop_map(|p| json!(p)),
            (0u32..70000).prop_map(|p| json!(format!(" {p} "))),
            Just(json!(null)),
            Just(json!(-1)),
            Just(json!(5432.5)),
            Just(json!([5432])),
        ];
        let ssl = prop_oneof![
            Just(json!(true)),
            Just(json!("FALSE")),
            Just(json!("yes")),
            Just(json!(null))
        ];
        (
            engine,
            "[a-z0-9.:\\[\\] ]{0,20}",
            user,
            "\\PC{0,16}",
            port,
            prop::option::of("[a-z]{0,8}"),
            ssl,
            prop::option::of(" ?[a-z:]{0,12}"),
        )
            .prop_map(|(e, host, user, pw, port, db, ssl, master)| {
                let mut v = json!({"engine": e, "host": host, "username": user, "password": pw,
                                   "port": port, "ssl": ssl, "extra": {"kept": [1, 2]}});
                if let Some(db) = db {
                    v["dbname"] = json!(db);
                }
                if let Some(m) = master {
                    v["masterarn"] = json!(m);
                }
                v.to_string()
            })
    }

    fn template() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{{current}}".to_string()),
            Just("{{ pending }}".to_string()),
            Just("{{previous.keyId}}".to_string()),
            Just("{{token}}".to_string()),
            Just("{{current.a\"b}}".to_string()),
            Just("{{current.x\\y}}".to_string()),
            Just("{{".to_string()),
            Just("}}".to_string()),
            Just("\"".to_string()),
            "[ -~]{0,6}",
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    fn version() -> impl Strategy<Value = Value> {
        (
            "\\PC{0,10}",
            "[a-z]{6,12}",
            prop::sample::select(vec!["keyId", "a\"b", "a\\\"b", "x\\y", "x\\\\y", "apiKey"]),
        )
            .prop_map(|(key, other, name)| json!({"apiKey": key, name: other, "n": 7}))
    }

    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(!files.is_empty(), "no seeds in {dir}");
        files
    }

    /// The committed fuzz corpora (seeds and minimised finds) replayed on stable Rust.
    #[test]
    fn committed_corpora_pass_the_checks() {
        for data in corpus("db_secret") {
            if let Ok(text) = std::str::from_utf8(&data) {
                check_db_secret(text);
            }
        }
        for data in corpus("http_template") {
            check_template_input(&data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn db_secrets_keep_their_invariants(s in db_secret()) {
            check_db_secret(&s);
        }

        #[test]
        fn arbitrary_db_secret_text_does_not_panic(s in "\\PC{0,60}") {
            check_db_secret(&s);
        }

        #[test]
        fn templates_keep_their_invariants(
            t in template(),
            as_json in 0u8..3,
            cur in version(),
            pen in prop::option::of(version()),
            token in "[a-z0-9-]{0,12}",
        ) {
            let mut vars = Map::new();
            vars.insert("current".into(), cur);
            if let Some(p) = pen {
                vars.insert("pending".into(), p);
            }
            vars.insert("token".into(), json!(token));
            let t = match as_json {
                0 => t,
                1 => json!(t).to_string(),
                _ => json!({"k": t, "list": [t]}).to_string(),
            };
            check_template(&t, &vars);
        }

        #[test]
        fn arbitrary_template_input_does_not_panic(data in prop::collection::vec(any::<u8>(), 0..120)) {
            check_template_input(&data);
        }
    }
}
