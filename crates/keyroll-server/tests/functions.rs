//! External rotation functions run isolated: a cleared environment, credentials that only
//! reach the secret being rotated, and a process group killed at the timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use secrecy::ExposeSecret;

fn function(
    dir: &std::path::Path,
    name: &str,
    body: &str,
    timeout_secs: u64,
) -> keyroll_server::config::FunctionConfig {
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    keyroll_server::config::FunctionConfig {
        command: vec!["sh".into(), path.display().to_string()],
        timeout_secs,
        env: [("FUNCTION_SETTING".to_string(), "from-config".to_string())].into(),
        working_dir: None,
        ..Default::default()
    }
}

fn env_of(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn wait_for_file(path: &std::path::Path) -> String {
    let t0 = Instant::now();
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && t.contains("END_OF_ENV")
        {
            return t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the function never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_sees_no_server_secret_and_its_key_reaches_only_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env.txt");
    let release = dir.path().join("release");
    let mut config = keyroll_server::Config::default();
    // Prints its environment, then waits (at most 15 s) so the test can use its key.
    config.functions.insert(
        "printer".into(),
        function(
            dir.path(),
            "printer",
            &format!(
                "cat > /dev/null; env > {env}.tmp; echo END_OF_ENV >> {env}.tmp; mv {env}.tmp {env}; \
                 i=0; while [ ! -e {rel} ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; exit 1",
                env = env_file.display(),
                rel = release.display()
            ),
            30,
        ),
    );
    let t = start_with(
        config,
        std::sync::Arc::new(keyroll_core::time::SystemClock),
        None,
    )
    .await;
    let c = t.client();
    c.create_secret()
        .name("rotated")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("other")
        .secret_string("other-value")
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("rotated")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:printer")
        .send()
        .await
        .unwrap();
    let text = wait_for_file(&env_file).await;
    let env = env_of(&text);
    let admin = &t.key;
    // Nothing of the server's: not its admin key, not its own environment.
    assert!(!text.contains(admin.secret_access_key.expose_secret()));
    assert_ne!(env["AWS_ACCESS_KEY_ID"], admin.access_key_id);
    for var in [
        "CARGO_MANIFEST_DIR",
        "CARGO_PKG_NAME",
        "KEYROLL_MASTER_KEY",
        "RUST_BACKTRACE",
    ] {
        assert!(!env.contains_key(var), "{var} leaked into the function");
    }
    assert_eq!(env["FUNCTION_SETTING"], "from-config");
    assert!(env.contains_key("PATH"));
    // Its key: the secret being rotated, nothing else.
    let function_key = keyroll_server::credentials::AccessKey {
        access_key_id: env["AWS_ACCESS_KEY_ID"].clone(),
        secret_access_key: env["AWS_SECRET_ACCESS_KEY"].clone().into(),
        session_token: Some(env["AWS_SESSION_TOKEN"].clone().into()),
        name: "function".into(),
    };
    let fc = client_for(&t.url, &function_key, "us-east-1");
    let arn = c
        .describe_secret()
        .secret_id("rotated")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    assert!(fc.describe_secret().secret_id(&arn).send().await.is_ok());
    let e = fc
        .get_secret_value()
        .secret_id("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err_code(&e), "AccessDeniedException");
    let e = fc.list_secrets().send().await.unwrap_err();
    assert_eq!(err_code(&e), "AccessDeniedException");
    let e = fc.delete_secret().secret_id(&arn).send().await.unwrap_err();
    assert_eq!(err_code(&e), "AccessDeniedException");
    // Once the step is over, the key is gone.
    std::fs::write(&release, "").unwrap();
    let t0 = Instant::now();
    loop {
        match fc.describe_secret().secret_id(&arn).send().await {
            Err(e) if err_code(&e) == "UnrecognizedClientException" => break,
            _ => {}
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the function's key outlived its step"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_function_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "31.417";
    let mut config = keyroll_server::Config::default();
    // A grandchild in the background and the function itself, both sleeping past the
    // 1-second timeout.
    config.functions.insert(
        "forker".into(),
        function(
            dir.path(),
            "forker",
            &format!("cat > /dev/null; (sleep {marker} &); sleep {marker}"),
            1,
        ),
    );
    let t = start_with(
        config,
        std::sync::Arc::new(keyroll_core::time::SystemClock),
        None,
    )
    .await;
    let c = t.client();
    c.create_secret()
        .name("slow")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    c.rotate_secret()
        .secret_id("slow")
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:000000000000:function:forker")
        .send()
        .await
        .unwrap();
    // The processes start, then the timeout kills the whole group.
    let t0 = Instant::now();
    while processes_with(marker).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the function never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "processes left after the timeout: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
