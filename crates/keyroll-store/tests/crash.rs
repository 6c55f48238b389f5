//! Crash test (acceptance): a child process writes to the store in a loop and prints a line
//! per acknowledged write; the parent SIGKILLs it at random moments, hundreds of times, and
//! after every kill reopens the store and checks that it opens, that every acknowledged write
//! is there (values decrypt to what was written, labels where they were put), that an
//! unacknowledged write either happened whole or not at all, and the label invariants.
//!
//! `KEYROLL_CRASH_SEED=<n>` replays a schedule; `KEYROLL_CRASH_KILLS=<n>` changes the count.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use keyroll_core::api::*;
use keyroll_core::ids::SecretRef;
use keyroll_core::model::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, MAX_VERSIONS};
use keyroll_core::ports::SecretsApi;
use keyroll_core::service::Backend;
use keyroll_core::time::ManualClock;
use keyroll_store::embedded::{EmbeddedStore, Env, OpenOptions};
use secrecy::{SecretSlice, SecretString};

const CHILD_DIR_ENV: &str = "KEYROLL_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "KEYROLL_CRASH_CHILD_SEED";
const NAMES: u64 = 12;
const DEFAULT_KILLS: usize = 220;

// ---- the child ------------------------------------------------------------------------------

#[test]
#[ignore = "the crash test's child process; it runs this itself"]
fn crash_child() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_DIR_ENV), std::env::var(CHILD_SEED_ENV)) else {
        return;
    };
    child_main(Path::new(&dir), seed.parse().unwrap());
}

fn hex_of(b: &[u8]) -> String {
    hex::encode(b)
}

fn child_main(dir: &Path, seed: u64) -> ! {
    // The master key comes from `<dir>/master.key`, created by whichever process is first.
    let store = EmbeddedStore::open(
        OpenOptions::new(dir)
            .clock(Arc::new(ManualClock::new(T0)))
            .env(Env::empty()),
    )
    .unwrap();
    let svc = store.region("us-east-1");
    let rt = rt();
    let mut rng = Rng(seed);
    let mut out = std::io::stdout().lock();
    for n in 0u64.. {
        let name = format!("crash/{}", rng.below(NAMES));
        let vid = format!("{seed:016x}-{n:08}-{:012x}", rng.next() >> 16);
        let binary = rng.below(6) == 0;
        let value: Vec<u8> = if binary {
            (0..1 + rng.below(48)).map(|_| rng.next() as u8).collect()
        } else {
            format!("value {seed} {n}").into_bytes()
        };
        let kind = if binary { "b" } else { "s" };
        let described = rt.block_on(svc.describe_secret(SecretIdRequest {
            secret_id: name.clone(),
        }));
        let op = match &described {
            Err(e) if e.is_not_found() => "CREATE",
            Err(e) => panic!("describe failed: {e}"),
            Ok(d) => match rng.below(10) {
                0..=4 => "PUT",
                5..=7 => "PENDING",
                _ => match (d.holder(AWSPENDING), d.holder(AWSCURRENT)) {
                    (Some(p), Some(c)) if p != c => "MOVE",
                    _ => "PUT",
                },
            },
        };
        let (string, bin) = if binary {
            (None, Some(SecretSlice::from(value.clone())))
        } else {
            (
                Some(SecretString::from(
                    String::from_utf8(value.clone()).unwrap(),
                )),
                None,
            )
        };
        let target = match op {
            "MOVE" => described
                .as_ref()
                .unwrap()
                .holder(AWSPENDING)
                .unwrap()
                .to_string(),
            _ => vid.clone(),
        };
        writeln!(out, "TRY {op} {name} {target} {kind} {}", hex_of(&value)).unwrap();
        out.flush().unwrap();
        rt.block_on(async {
            match op {
                "CREATE" => svc
                    .create_secret(CreateSecretRequest {
                        name: name.clone(),
                        client_request_token: Some(vid.clone()),
                        secret_string: string,
                        secret_binary: bin,
                        ..Default::default()
                    })
                    .await
                    .map(drop),
                "PUT" | "PENDING" => svc
                    .put_secret_value(PutSecretValueRequest {
                        secret_id: name.clone(),
                        client_request_token: Some(vid.clone()),
                        secret_string: string,
                        secret_binary: bin,
                        version_stages: (op == "PENDING").then(|| vec![AWSPENDING.to_string()]),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
                _ => {
                    let d = described.as_ref().unwrap();
                    svc.update_secret_version_stage(UpdateSecretVersionStageRequest {
                        secret_id: name.clone(),
                        version_stage: AWSCURRENT.into(),
                        move_to_version_id: Some(target.clone()),
                        remove_from_version_id: d.holder(AWSCURRENT).map(str::to_string),
                    })
                    .await
                    .map(drop)
                }
            }
        })
        .unwrap();
        writeln!(out, "ACK {op} {name} {target}").unwrap();
        out.flush().unwrap();
    }
    unreachable!()
}

// ---- the parent's model ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Try {
    op: String,
    name: String,
    vid: String,
    binary: bool,
    value: Vec<u8>,
}

fn parse_try(line: &str) -> Try {
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 6, "bad line {line:?}");
    Try {
        op: f[1].into(),
        name: f[2].into(),
        vid: f[3].into(),
        binary: f[4] == "b",
        value: hex::decode(f[5]).unwrap(),
    }
}

#[derive(Default)]
struct SecretModel {
    /// Acknowledged values: version id → (binary, bytes).
    values: BTreeMap<String, (bool, Vec<u8>)>,
    current: String,
}

#[derive(Default)]
struct Model {
    secrets: BTreeMap<String, SecretModel>,
    acknowledged: usize,
    /// Acknowledged versions the store has pruned (beyond MAX_VERSIONS, unlabelled).
    pruned: usize,
}

impl Model {
    fn apply(&mut self, t: &Try) {
        match t.op.as_str() {
            "CREATE" => {
                let mut s = SecretModel {
                    current: t.vid.clone(),
                    ..Default::default()
                };
                s.values.insert(t.vid.clone(), (t.binary, t.value.clone()));
                assert!(
                    self.secrets.insert(t.name.clone(), s).is_none(),
                    "created twice"
                );
            }
            "PUT" | "PENDING" => {
                let s = self
                    .secrets
                    .get_mut(&t.name)
                    .expect("put on an unknown secret");
                s.values.insert(t.vid.clone(), (t.binary, t.value.clone()));
                if t.op == "PUT" {
                    s.current = t.vid.clone();
                }
            }
            "MOVE" => {
                self.secrets
                    .get_mut(&t.name)
                    .expect("move on an unknown secret")
                    .current = t.vid.clone();
            }
            op => panic!("unknown op {op}"),
        }
    }

    /// Reopens the store and checks it against the model; resolves the write that was in
    /// flight when the child died (it happened whole, or not at all).
    fn verify(&mut self, dir: &Path, in_doubt: Option<Try>) {
        let store = EmbeddedStore::open(
            OpenOptions::new(dir)
                .clock(Arc::new(clock()))
                .env(Env::empty()),
        )
        .unwrap_or_else(|e| panic!("the store does not reopen after a kill: {e}"));
        let svc = store.region("us-east-1");
        let b = svc.backend();
        let find = |name: &str| b.find(&SecretRef::parse(name).unwrap()).unwrap();

        if let Some(t) = in_doubt {
            let rec = find(&t.name);
            let landed = rec.as_ref().and_then(|r| r.version(&t.vid)).is_some();
            match t.op.as_str() {
                "CREATE" | "PUT" | "PENDING" if landed => {
                    let rec = rec.unwrap();
                    let v = b.read_value(&rec, &t.vid).unwrap();
                    assert_eq!((v.is_binary(), v.expose_bytes()), (t.binary, &t.value[..]));
                    self.apply(&t);
                }
                "MOVE" => {
                    let actual = rec.unwrap().current().unwrap().id.clone();
                    let s = &self.secrets[&t.name];
                    assert!(
                        actual == s.current || actual == t.vid,
                        "AWSCURRENT went astray"
                    );
                    if actual == t.vid {
                        self.apply(&t);
                    }
                }
                _ => {}
            }
        }

        let pruned = &mut self.pruned;
        for (name, s) in &mut self.secrets {
            let rec = find(name).unwrap_or_else(|| panic!("acknowledged secret {name} is gone"));
            assert_eq!(rec.current().unwrap().id, s.current, "AWSCURRENT of {name}");
            // Past MAX_VERSIONS the store prunes unlabelled versions, as AWS does: an
            // acknowledged version may be gone only then, and never the current one.
            s.values.retain(|vid, _| {
                rec.version(vid).is_some() || {
                    assert!(
                        rec.versions.len() == MAX_VERSIONS && *vid != s.current,
                        "acknowledged {name}/{vid} is gone ({} versions left)",
                        rec.versions.len()
                    );
                    *pruned += 1;
                    false
                }
            });
            for (vid, (binary, bytes)) in &s.values {
                let v = b
                    .read_value(&rec, vid)
                    .unwrap_or_else(|e| panic!("acknowledged {name}/{vid} is unreadable: {e}"));
                assert_eq!(
                    (v.is_binary(), v.expose_bytes()),
                    (*binary, &bytes[..]),
                    "{name}/{vid}"
                );
            }
        }

        let mut names = BTreeSet::new();
        b.for_each(&mut |rec| {
            names.insert(rec.name.clone());
            for label in [AWSCURRENT, AWSPENDING, AWSPREVIOUS] {
                let holders = rec.versions.iter().filter(|v| v.has_stage(label)).count();
                assert!(
                    holders <= 1,
                    "{label} on {holders} versions of {}",
                    rec.name
                );
            }
            if !rec.versions.is_empty() {
                let cur = rec
                    .current()
                    .unwrap_or_else(|| panic!("{} has no AWSCURRENT", rec.name));
                assert!(cur.has_value);
                assert!(!cur.has_stage(AWSPREVIOUS));
            }
            assert!(rec.revision as usize >= rec.versions.len());
        })
        .unwrap();
        let expected: BTreeSet<String> = self.secrets.keys().cloned().collect();
        assert_eq!(
            names, expected,
            "the store holds exactly the created secrets"
        );
    }
}

// ---- the parent -----------------------------------------------------------------------------

enum Event {
    Line(String),
    Eof,
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let kills: usize = std::env::var("KEYROLL_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_KILLS);
    let seed: u64 = std::env::var("KEYROLL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c0de);
    let root = tempfile::tempdir().unwrap();
    let dir: PathBuf = root.path().join("data");
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let started = Instant::now();
    let (mut killed_at_start, mut in_doubt_count) = (0, 0);

    for i in 0..kills {
        let mut child = child_command(
            "crash_child",
            &[
                (CHILD_DIR_ENV, dir.display().to_string()),
                (CHILD_SEED_ENV, rng.next().to_string()),
            ],
        )
        .env_remove("KEYROLL_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    // Only whole lines count: a line cut by the kill acknowledges nothing.
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        let _ = tx.send(Event::Line(line.trim_end().to_string()));
                    }
                    _ => {
                        let _ = tx.send(Event::Eof);
                        return;
                    }
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });

        let mut lines = Vec::new();
        let mut eof = false;
        if rng.below(10) < 6 {
            // Kill right after the k-th acknowledgement: mid-way through the next write.
            let k = 1 + rng.below(10) as usize;
            let mut acks = 0;
            while acks < k {
                match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok(Event::Line(l)) => {
                        acks += l.starts_with("ACK ") as usize;
                        lines.push(l);
                    }
                    Ok(Event::Eof) => {
                        eof = true;
                        break;
                    }
                    Err(_) => panic!("the child made no progress for 30 s"),
                }
            }
        } else {
            // Kill at a random instant, often while the child is still opening the store.
            std::thread::sleep(Duration::from_micros(rng.below(25_000)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        while !eof {
            match rx.recv().unwrap() {
                Event::Line(l) => lines.push(l),
                Event::Eof => eof = true,
            }
        }
        reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "child {i} ended by itself: {stderr}"
        );

        let mut pending: Option<Try> = None;
        let mut saw_any = false;
        for l in &lines {
            if let Some(rest) = l.strip_prefix("ACK ") {
                let t = pending.take().expect("ACK without TRY");
                assert_eq!(format!("{} {} {}", t.op, t.name, t.vid), rest);
                model.apply(&t);
                model.acknowledged += 1;
                saw_any = true;
            } else if l.starts_with("TRY ") {
                assert!(pending.is_none(), "two writes in flight");
                pending = Some(parse_try(l));
                saw_any = true;
            }
        }
        if !saw_any {
            killed_at_start += 1;
        }
        in_doubt_count += pending.is_some() as usize;
        model.verify(&dir, pending);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "crash test: {kills} kills in {elapsed:.1?} (seed {seed}); {} acknowledged writes \
         verified; {killed_at_start} kills before the first write; {in_doubt_count} kills with \
         a write in flight; {} secrets; {} acknowledged versions pruned beyond MAX_VERSIONS",
        model.acknowledged,
        model.secrets.len(),
        model.pruned
    );
    assert!(
        kills < 200 || model.acknowledged > kills,
        "too few writes were exercised"
    );
}
