//! The `keyroll` binary end to end on a real embedded store in a temp dir.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // base64 of 0..32

fn keyroll(dir: &Path, args: &[&str]) -> Output {
    keyroll_stdin(dir, args, None)
}

fn keyroll_stdin(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyroll"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("KEYROLL_MASTER_KEY", KEY)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("KEYROLL_LOG", "trace")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run keyroll");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "keyroll failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn value_at(dir: &Path, id: &str, stage: &str) -> Option<String> {
    let o = keyroll(
        dir,
        &["secret", "get", "--secret-id", id, "--version-stage", stage],
    );
    o.status
        .success()
        .then(|| ok(&o)["SecretString"].as_str().unwrap().to_string())
}

#[test]
fn rotate_a_generic_secret() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let created = ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "app/config",
            "--secret-string",
            r#"{"user":"app","password":"first"}"#,
        ],
    ));
    let arn = created["ARN"].as_str().unwrap().to_string();
    assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/config-"));

    let o = keyroll(dir, &["rotate", "--secret-id", "app/config"]);
    let report = ok(&o);
    let progress = String::from_utf8_lossy(&o.stderr);
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        assert!(progress.contains(step), "progress lacks {step}: {progress}");
    }
    assert_eq!(report["Steps"].as_array().unwrap().len(), 4);
    assert!(report["DurationMs"].as_f64().unwrap() >= 0.0);

    let current: Value = serde_json::from_str(&value_at(dir, &arn, "AWSCURRENT").unwrap()).unwrap();
    assert_eq!(current["user"], "app");
    let new_password = current["password"].as_str().unwrap();
    assert_eq!(new_password.len(), 32);
    assert_ne!(new_password, "first");
    let previous: Value =
        serde_json::from_str(&value_at(dir, &arn, "AWSPREVIOUS").unwrap()).unwrap();
    assert_eq!(previous["password"], "first");
    assert!(value_at(dir, &arn, "AWSPENDING").is_none());

    let desc = ok(&keyroll(
        dir,
        &["secret", "describe", "--secret-id", "app/config"],
    ));
    assert_eq!(desc["RotationEnabled"], true);
    assert!(
        desc["RotationLambdaARN"]
            .as_str()
            .unwrap()
            .ends_with(":function:keyroll")
    );
    assert!(desc["LastRotatedDate"].as_f64().is_some());
    let stages = desc["VersionIdsToStages"].as_object().unwrap();
    assert_eq!(stages.len(), 2);
    assert!(
        !stages
            .values()
            .flat_map(|v| v.as_array().unwrap())
            .any(|s| s == "AWSPENDING")
    );

    // A plain string secret is replaced whole.
    ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "plain",
            "--secret-string",
            "v0",
        ],
    ));
    ok(&keyroll(
        dir,
        &["rotate", "--secret-id", "plain", "--quiet"],
    ));
    let v = value_at(dir, "plain", "AWSCURRENT").unwrap();
    assert_eq!(v.len(), 32);
    assert_eq!(value_at(dir, "plain", "AWSPREVIOUS").unwrap(), "v0");
}

#[test]
fn secret_lifecycle_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Reading from a directory that does not exist: not found, and nothing created.
    let missing = dir.join("nothing-here");
    let o = keyroll(&missing, &["secret", "get", "--secret-id", "x"]);
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--data-dir"));
    assert!(!missing.exists());

    // Value from stdin and from a file; tags in both syntaxes.
    ok(&keyroll_stdin(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "a",
            "--secret-string",
            "-",
            "--tags",
            "Key=env,Value=prod",
        ],
        Some("from-stdin\n"),
    ));
    assert_eq!(value_at(dir, "a", "AWSCURRENT").unwrap(), "from-stdin");
    let f = dir.join("v.txt");
    std::fs::write(&f, "from-file").unwrap();
    ok(&keyroll(
        dir,
        &[
            "secret",
            "put",
            "--secret-id",
            "a",
            "--secret-string",
            &format!("file://{}", f.display()),
        ],
    ));
    assert_eq!(value_at(dir, "a", "AWSCURRENT").unwrap(), "from-file");
    assert_eq!(value_at(dir, "a", "AWSPREVIOUS").unwrap(), "from-stdin");

    // Exists → 5; not found → 3; invalid → 4; usage → 2.
    let o = keyroll(
        dir,
        &["secret", "create", "--name", "a", "--secret-string", "x"],
    );
    assert_eq!(code(&o), 5);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = keyroll(dir, &["secret", "describe", "--secret-id", "nope"]);
    assert_eq!(code(&o), 3);
    assert!(String::from_utf8_lossy(&o.stderr).contains("can't find the specified secret"));
    let o = keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "bad name",
            "--secret-string",
            "x",
        ],
    );
    assert_eq!(code(&o), 4);
    let o = keyroll(dir, &["secret", "get"]);
    assert_eq!(code(&o), 2);

    // Labels.
    let versions = ok(&keyroll(dir, &["secret", "versions", "--secret-id", "a"]));
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 2);
    ok(&keyroll(
        dir,
        &[
            "secret",
            "put",
            "--secret-id",
            "a",
            "--secret-string",
            "staged",
            "--version-stages",
            "AWSPENDING",
        ],
    ));
    assert_eq!(value_at(dir, "a", "AWSCURRENT").unwrap(), "from-file");
    let desc = ok(&keyroll(dir, &["secret", "describe", "--secret-id", "a"]));
    let stages = desc["VersionIdsToStages"].as_object().unwrap();
    let holder = |l: &str| {
        stages
            .iter()
            .find(|(_, v)| v.as_array().unwrap().iter().any(|s| s == l))
            .map(|(k, _)| k.clone())
    };
    let pending = holder("AWSPENDING").unwrap();
    let current = holder("AWSCURRENT").unwrap();
    let o = keyroll(
        dir,
        &[
            "secret",
            "update-stage",
            "--secret-id",
            "a",
            "--version-stage",
            "AWSCURRENT",
            "--move-to-version-id",
            &pending,
        ],
    );
    assert_eq!(
        code(&o),
        4,
        "moving an attached AWSCURRENT needs RemoveFromVersionId"
    );
    ok(&keyroll(
        dir,
        &[
            "secret",
            "update-stage",
            "--secret-id",
            "a",
            "--version-stage",
            "AWSCURRENT",
            "--move-to-version-id",
            &pending,
            "--remove-from-version-id",
            &current,
        ],
    ));
    assert_eq!(value_at(dir, "a", "AWSCURRENT").unwrap(), "staged");
    assert_eq!(value_at(dir, "a", "AWSPREVIOUS").unwrap(), "from-file");

    // Tags, list filters, table output.
    ok(&keyroll(
        dir,
        &[
            "secret",
            "tag",
            "--secret-id",
            "a",
            "--tags",
            r#"[{"Key":"team","Value":"core"}]"#,
        ],
    ));
    ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "b/other",
            "--secret-string",
            "x",
        ],
    ));
    let l = ok(&keyroll(
        dir,
        &["secret", "list", "--filters", "Key=tag-key,Values=team"],
    ));
    let names: Vec<&str> = l["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a"]);
    ok(&keyroll(
        dir,
        &["secret", "untag", "--secret-id", "a", "--tag-keys", "team"],
    ));
    let o = keyroll(dir, &["secret", "list", "--output", "table"]);
    assert!(o.status.success());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("b/other") && table.contains("CreatedDate"),
        "{table}"
    );

    // Delete, reads refused, restore.
    let del = ok(&keyroll(
        dir,
        &[
            "secret",
            "delete",
            "--secret-id",
            "a",
            "--recovery-window-in-days",
            "7",
        ],
    ));
    assert!(del["DeletionDate"].as_f64().is_some());
    let o = keyroll(dir, &["secret", "get", "--secret-id", "a"]);
    assert_eq!(code(&o), 4);
    assert!(String::from_utf8_lossy(&o.stderr).contains("marked for deletion"));
    let l = ok(&keyroll(dir, &["secret", "list"]));
    assert_eq!(l["SecretList"].as_array().unwrap().len(), 1);
    ok(&keyroll(dir, &["secret", "restore", "--secret-id", "a"]));
    assert_eq!(value_at(dir, "a", "AWSCURRENT").unwrap(), "staged");
    ok(&keyroll(
        dir,
        &[
            "secret",
            "delete",
            "--secret-id",
            "b/other",
            "--force-delete-without-recovery",
        ],
    ));
    assert_eq!(
        code(&keyroll(
            dir,
            &["secret", "describe", "--secret-id", "b/other"]
        )),
        3
    );

    // Binary values: base64 on output, raw bytes from fileb://.
    let bin = dir.join("k.bin");
    std::fs::write(&bin, [0u8, 159, 146, 150]).unwrap();
    ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "bin",
            "--secret-binary",
            &format!("fileb://{}", bin.display()),
        ],
    ));
    let g = ok(&keyroll(dir, &["secret", "get", "--secret-id", "bin"]));
    assert_eq!(g["SecretBinary"], "AJ+Slg==");
    assert!(g.get("SecretString").is_none());

    let p = ok(&keyroll(
        dir,
        &[
            "secret",
            "random-password",
            "--password-length",
            "20",
            "--exclude-punctuation",
        ],
    ));
    let pw = p["RandomPassword"].as_str().unwrap();
    assert_eq!(pw.len(), 20);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn wrong_master_key_is_refused_with_exit_code_7() {
    let d = tempfile::tempdir().unwrap();
    ok(&keyroll(
        d.path(),
        &["secret", "create", "--name", "a", "--secret-string", "x"],
    ));
    let o = Command::new(env!("CARGO_BIN_EXE_keyroll"))
        .arg("--data-dir")
        .arg(d.path())
        .args(["secret", "get", "--secret-id", "a"])
        .env(
            "KEYROLL_MASTER_KEY",
            "HwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert_eq!(code(&o), 7, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("KEYROLL_MASTER_KEY"));
}

#[test]
fn sentinel_never_in_logs_errors_or_non_value_output() {
    const SENTINEL: &str = "SENTINEL-c0ffee-7d3a91-do-not-print";
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut seen = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let o = keyroll_stdin(dir, args, stdin);
        seen.push_str(&String::from_utf8_lossy(&o.stderr));
        o
    };
    run(
        &["secret", "create", "--name", "s", "--secret-string", "-"],
        Some(&format!("{{\"password\":\"{SENTINEL}\"}}")),
    );
    let mut outputs = Vec::new();
    for args in [
        vec!["secret", "describe", "--secret-id", "s"],
        vec!["secret", "list"],
        vec![
            "secret",
            "versions",
            "--secret-id",
            "s",
            "--include-deprecated",
        ],
        vec!["rotate", "--secret-id", "s"],
        vec![
            "secret",
            "describe",
            "--secret-id",
            "s",
            "--output",
            "table",
        ],
        vec!["secret", "create", "--name", "s", "--secret-string", "-"],
        vec!["secret", "get", "--secret-id", "s", "--version-id", "nope"],
        vec![
            "secret",
            "put",
            "--secret-id",
            "s",
            "--secret-binary",
            "not base64!!",
        ],
    ] {
        let o = run(&args, Some(SENTINEL));
        outputs.push(String::from_utf8_lossy(&o.stdout).to_string());
    }
    for o in &outputs {
        assert!(!o.contains(SENTINEL), "sentinel in output: {o}");
    }
    assert!(!seen.contains(SENTINEL), "sentinel in stderr/logs: {seen}");
    // The value is still there for those who ask for it.
    let g = keyroll(
        dir,
        &[
            "secret",
            "get",
            "--secret-id",
            "s",
            "--version-stage",
            "AWSPREVIOUS",
        ],
    );
    assert!(String::from_utf8_lossy(&g.stdout).contains(SENTINEL));
    // And never on disk in the clear.
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes
                    .windows(SENTINEL.len())
                    .any(|w| w == SENTINEL.as_bytes()),
                "sentinel in {}",
                p.display()
            );
        }
    }
}

/// A tiny API on 127.0.0.1 (std, one thread): `POST /rotate` issues `new-key`, `GET /me`
/// accepts `Bearer new-key`. Serves `connections` connections, then stops.
fn tiny_api(listener: std::net::TcpListener, connections: usize) -> std::thread::JoinHandle<()> {
    use std::io::{BufRead, BufReader};
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line.to_lowercase());
            }
            let (status, body) = if head.starts_with("post /rotate ") {
                (200, r#"{"key":"new-key"}"#)
            } else if head.starts_with("get /me ") && head.contains("bearer new-key") {
                (200, "{}")
            } else {
                (401, "{}")
            };
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })
}

#[test]
fn rotate_sends_http_requests_only_where_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let value = serde_json::json!({
        "engine": "http", "apiKey": "old-key",
        "rotation": {
            "rotate": {"url": format!("{url}/rotate"), "responseKeyPointer": "/key"},
            "test": {"method": "GET", "url": format!("{url}/me"),
                     "headers": {"Authorization": "Bearer {{pending}}"}}
        }
    })
    .to_string();
    ok(&keyroll(
        dir,
        &[
            "secret",
            "create",
            "--name",
            "partner/api",
            "--secret-string",
            &value,
        ],
    ));

    // Nothing allowed: refused at createSecret, naming the flag; no connection at all.
    let o = keyroll(dir, &["rotate", "--secret-id", "partner/api", "--quiet"]);
    assert_ne!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--allow-host") && err.contains("127.0.0.1"),
        "{err}"
    );
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the listener was never connected to"
    );
    listener.set_nonblocking(false).unwrap();

    // A bad flag is a usage error.
    let o = keyroll(
        dir,
        &[
            "rotate",
            "--secret-id",
            "partner/api",
            "--allow-network",
            "127.0.0.1/8",
        ],
    );
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));

    // The same secret rotates once the loopback address is allowed in the config file.
    let config = dir.join("keyroll.toml");
    std::fs::write(
        &config,
        "[targets]\nconnect_timeout_secs = 5\n[targets.http]\nallow_networks = [\"127.0.0.1/32\"]\n",
    )
    .unwrap();
    let server = tiny_api(listener, 2);
    ok(&keyroll(
        dir,
        &[
            "rotate",
            "--secret-id",
            "partner/api",
            "--quiet",
            "--no-notify",
            "--config",
            config.to_str().unwrap(),
        ],
    ));
    server.join().unwrap();
    let arn = ok(&keyroll(
        dir,
        &["secret", "describe", "--secret-id", "partner/api"],
    ))["ARN"]
        .as_str()
        .unwrap()
        .to_string();
    let cur: Value = serde_json::from_str(&value_at(dir, &arn, "AWSCURRENT").unwrap()).unwrap();
    assert_eq!(cur["apiKey"], "new-key");
}
