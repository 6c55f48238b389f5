//! Several processes on one data directory (`keyroll secret put` while `keyroll serve`
//! runs): a read that starts after another process committed sees that commit, and writers
//! in different processes lose no update.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use common::*;
use keyroll_core::api::*;
use keyroll_core::ids::SecretRef;
use keyroll_core::model::{AWSCURRENT, AWSPREVIOUS, Tag};
use keyroll_core::ports::SecretsApi;
use keyroll_core::service::Backend;
use keyroll_core::time::ManualClock;
use keyroll_store::embedded::{EmbeddedStore, OpenOptions};

const MODE_ENV: &str = "KEYROLL_COHERENCE_CHILD";
const DIR_ENV: &str = "KEYROLL_COHERENCE_DIR";
const ID_ENV: &str = "KEYROLL_COHERENCE_ID";
/// Three writers and the creation make 100 versions: none is pruned (MAX_VERSIONS), so every
/// write stays readable.
const PUTS_PER_WRITER: usize = 33;

#[test]
#[ignore = "a child process of the coherence tests; they run it themselves"]
fn coherence_child() {
    let (Ok(mode), Ok(dir)) = (std::env::var(MODE_ENV), std::env::var(DIR_ENV)) else {
        return;
    };
    // The key comes from KEYROLL_MASTER_KEY in this process's real environment.
    let store =
        EmbeddedStore::open(OpenOptions::new(&dir).clock(Arc::new(ManualClock::new(T0)))).unwrap();
    let svc = store.region("us-east-1");
    let mut out = std::io::stdout().lock();
    rt().block_on(async {
        match mode.as_str() {
            "edit" => {
                put(&svc, "shared/a", &token(2), "a2 from the child").await;
                create(&svc, "shared/b", "b1 from the child").await;
                svc.delete_secret(DeleteSecretRequest {
                    secret_id: "shared/c".into(),
                    force_delete_without_recovery: Some(true),
                    ..Default::default()
                })
                .await
                .unwrap();
                svc.tag_resource(TagResourceRequest {
                    secret_id: "shared/a".into(),
                    tags: vec![Tag::new("edited-by", "child")],
                })
                .await
                .unwrap();
            }
            "writer" => {
                let id: u64 = std::env::var(ID_ENV).unwrap().parse().unwrap();
                // Start together with the other writers: say we are ready, wait for "go".
                writeln!(out, "READY").unwrap();
                out.flush().unwrap();
                let mut go = String::new();
                std::io::stdin().read_line(&mut go).unwrap();
                for i in 0..PUTS_PER_WRITER as u64 {
                    let tok = token(id * 1000 + i);
                    put(&svc, "shared/hot", &tok, &format!("w{id}-{i}")).await;
                    writeln!(out, "ACK {tok} w{id}-{i}").unwrap();
                }
            }
            other => panic!("unknown child mode {other}"),
        }
    });
}

fn child(dir: &Path, mode: &str, id: u64) -> std::process::Child {
    child_command(
        "coherence_child",
        &[
            (MODE_ENV, mode.to_string()),
            (DIR_ENV, dir.display().to_string()),
            (ID_ENV, id.to_string()),
            ("KEYROLL_MASTER_KEY", KEY_HEX.to_string()),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Waits for the child's `READY` line.
fn ready(c: &mut std::process::Child) -> BufReader<std::process::ChildStdout> {
    let mut r = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    // The test harness prints its own lines first.
    while line.trim() != "READY" {
        line.clear();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "the child ended before it was ready"
        );
    }
    r
}

fn finish(c: std::process::Child) -> String {
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn finish_with(c: std::process::Child, mut stdout: BufReader<std::process::ChildStdout>) -> String {
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    finish(c);
    rest
}

#[test]
fn a_read_after_another_process_committed_sees_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    let a = rt().block_on(async {
        let a = create(&svc, "shared/a", "a1").await;
        create(&svc, "shared/c", "c1").await;
        // Warm the index: everything is now served from memory.
        assert_eq!(
            get_string(&svc, "shared/a", AWSCURRENT).await.as_deref(),
            Some("a1")
        );
        assert!(
            get(&svc, "shared/b", None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        a
    });

    finish(child(dir.path(), "edit", 0));

    rt().block_on(async {
        assert_eq!(
            get_string(&svc, &a.arn, AWSCURRENT).await.as_deref(),
            Some("a2 from the child")
        );
        assert_eq!(
            get_string(&svc, "shared/a", AWSPREVIOUS).await.as_deref(),
            Some("a1")
        );
        assert_eq!(
            get_string(&svc, "shared/b", AWSCURRENT).await.as_deref(),
            Some("b1 from the child")
        );
        assert!(
            get(&svc, "shared/c", None, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        let d = svc
            .describe_secret(SecretIdRequest {
                secret_id: "shared/a".into(),
            })
            .await;
        assert_eq!(d.unwrap().tag("edited-by"), Some("child"));
        let listed = svc
            .list_secrets(ListSecretsRequest::default())
            .await
            .unwrap();
        let names: Vec<_> = listed.secret_list.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["shared/a", "shared/b"]);
        // And this process's writes build on the child's.
        put(&svc, "shared/a", &token(3), "a3").await;
    });
    assert_eq!(store.regions().unwrap(), ["us-east-1"]);
}

#[test]
fn writers_in_several_processes_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    rt().block_on(create(&svc, "shared/hot", "v0"));
    let mut children: Vec<_> = (1..=2).map(|id| child(dir.path(), "writer", id)).collect();
    let outputs: Vec<_> = children.iter_mut().map(ready).collect();
    for c in &mut children {
        c.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    // This process writes at the same time.
    let mut written: Vec<(String, String)> = Vec::new();
    rt().block_on(async {
        for i in 0..PUTS_PER_WRITER as u64 {
            let tok = token(i);
            let v = format!("w0-{i}");
            put(&svc, "shared/hot", &tok, &v).await;
            written.push((tok, v));
        }
    });
    for (c, out) in children.into_iter().zip(outputs) {
        for line in finish_with(c, out)
            .lines()
            .filter_map(|l| l.strip_prefix("ACK "))
        {
            let (tok, v) = line.split_once(' ').unwrap();
            written.push((tok.to_string(), v.to_string()));
        }
    }
    assert_eq!(written.len(), 3 * PUTS_PER_WRITER);
    let b = svc.backend();
    let rec = b
        .find(&SecretRef::parse("shared/hot").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.revision as usize,
        1 + written.len(),
        "every put is one revision"
    );
    assert_eq!(rec.versions.len(), 1 + written.len());
    for (tok, v) in &written {
        assert_eq!(
            b.read_value(&rec, tok).unwrap().expose_str(),
            Some(v.as_str())
        );
    }
    assert_eq!(
        rec.versions
            .iter()
            .filter(|v| v.has_stage(AWSCURRENT))
            .count(),
        1
    );
}
