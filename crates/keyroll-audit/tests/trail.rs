//! The trail end to end: writing, restarting, crossing midnight, tampering, searching.

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use keyroll_audit::*;
use serde_json::json;

const ACCOUNT: &str = "111122223333";

fn t(day: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, h, m, s).unwrap()
}

fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-AbC123")
}

fn rec(time: DateTime<Utc>, op: &str, secret: &str, user: &str) -> AuditRecord {
    let mut r = AuditRecord::api_call(time, SECRETS_MANAGER_SOURCE, op);
    r.user_identity =
        UserIdentity::iam_user(ACCOUNT, user, &format!("AKID{}", user.to_uppercase()));
    r.aws_region = "us-east-1".into();
    r.source_ip_address = Some("127.0.0.1".into());
    r.request_parameters = sanitize_parameters(op, json!({"SecretId": secret}));
    r.resources.push(Resource::secret(&arn(secret), ACCOUNT));
    r.recipient_account_id = Some(ACCOUNT.into());
    r
}

struct Trail {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    clock: Arc<ManualClock>,
}

impl Trail {
    fn new() -> Trail {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("audit");
        Trail {
            _tmp: tmp,
            dir,
            clock: Arc::new(ManualClock::new(t(6, 23, 59, 0))),
        }
    }

    fn open(&self) -> AuditLog {
        AuditLog::open(
            &self.dir,
            AuditOptions {
                clock: self.clock.clone(),
                account_id: ACCOUNT.into(),
                ..AuditOptions::default()
            },
        )
        .unwrap()
    }

    /// Appends one record at the clock's time and moves the clock on a second.
    fn add(&self, log: &AuditLog, op: &str, secret: &str, user: &str) {
        log.append(rec(log.now(), op, secret, user), Durability::Sync)
            .unwrap();
        self.clock.advance(Duration::seconds(1));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn lines(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.path(name))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(&self, name: &str, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        fs::write(self.path(name), text).unwrap();
    }

    fn all(&self) -> Vec<AuditRecord> {
        search(&self.dir, &Query::default())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }
}

const DAY6: &str = "keyroll-audit-2026-12-06.jsonl";
const DAY7: &str = "keyroll-audit-2026-12-07.jsonl";
const DAY8: &str = "keyroll-audit-2026-12-08.jsonl";

/// Three days: 3 records on the 6th, the 7th's anchor + 3, the 8th's anchor + 3.
fn three_days() -> Trail {
    let trail = Trail::new();
    let log = trail.open();
    for day in [6, 7, 8] {
        trail.clock.set(t(day, 10, 0, 0));
        trail.add(&log, "CreateSecret", "app/db", "alice");
        trail.add(&log, "GetSecretValue", "app/db", "bob");
        trail.add(&log, "PutSecretValue", "app/api", "alice");
    }
    log.close().unwrap();
    trail
}

fn integrity(dir: &Path) -> IntegrityError {
    match verify(dir) {
        Err(AuditError::Integrity(e)) => *e,
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

#[test]
fn the_log_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<AuditLog>();
    send_sync::<Arc<AuditLog>>();
}

#[test]
fn a_fresh_trail_verifies_and_links_from_zeros() {
    let trail = three_days();
    let report = verify(&trail.dir).unwrap();
    assert_eq!(report.files, 3);
    assert_eq!(report.digests, 2);
    assert_eq!(report.records, 11, "9 records and 2 day-file anchors");
    let all = trail.all();
    assert_eq!(all.len(), 11);
    assert_eq!(all[0].previous_record_sha256, GENESIS_SHA256);
    assert_eq!(all[3].event_name, DAY_FILE_CLOSED_EVENT);
    assert_eq!(all[3].service_event_details.as_ref().unwrap()["file"], DAY6);
    assert_eq!(trail.lines(DAY7).len(), 4);
    let digests = trail.lines(DIGESTS_FILE);
    assert_eq!(digests.len(), 2);
    let d: DigestEntry = serde_json::from_str(&digests[0]).unwrap();
    assert_eq!(d.file, DAY6);
    assert_eq!(d.records, 3);
    assert_eq!(d.previous_digest_sha256, GENESIS_SHA256);
    assert_eq!(d.closed_at, "2026-12-07T10:00:00Z");
    let first_of_day7: AuditRecord = serde_json::from_str(&trail.lines(DAY7)[0]).unwrap();
    assert_eq!(
        first_of_day7.previous_record_sha256,
        d.last_record_sha256.unwrap(),
        "the chain continues across files"
    );
    assert_eq!(report.last_record_sha256.len(), 64);
}

#[test]
fn files_are_0600_and_the_directory_0700() {
    let trail = three_days();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&trail.dir), 0o700);
    for entry in fs::read_dir(&trail.dir).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(
        fs::read_dir(&trail.dir).unwrap().count(),
        5,
        "3 days, digests, lock"
    );
}

#[test]
fn every_changed_byte_is_detected_and_named() {
    let trail = three_days();
    // Every line of every file — except the very last record of the trail, which nothing
    // follows (see VerifyReport::last_record_sha256): every byte of its first and last 100
    // (which hold the link and the newline) and every fourth byte in between.
    for (name, lines_to_check) in [(DAY6, 3), (DAY7, 4), (DAY8, 3), (DIGESTS_FILE, 2)] {
        let original = fs::read(trail.path(name)).unwrap();
        let file = fs::OpenOptions::new()
            .write(true)
            .open(trail.path(name))
            .unwrap();
        let mut offset = 0;
        for (i, line) in original
            .split_inclusive(|b| *b == b'\n')
            .enumerate()
            .take(lines_to_check)
        {
            let len = line.len();
            let picked = (0..len).filter(|&j| j < 100 || j + 100 >= len || j % 4 == 0);
            for at in picked.map(|j| offset + j) {
                // Overwrite in place (a truncating rewrite can cost a flush per call).
                let flipped = original[at] ^ if original[at] == b'\n' { 0x20 } else { 0x01 };
                file.write_all_at(&[flipped], at as u64).unwrap();
                let e = integrity(&trail.dir);
                let text = e.to_string();
                if name != DIGESTS_FILE {
                    let k = i + 1;
                    assert!(
                        text.contains(&format!("record {k} of {name}")),
                        "byte {at} of {name} (record {k}): {text}"
                    );
                }
                file.write_all_at(&original[at..=at], at as u64).unwrap();
            }
            offset += line.len();
        }
        assert_eq!(fs::read(trail.path(name)).unwrap(), original);
        verify(&trail.dir).unwrap();
    }
}

#[test]
fn an_edit_reports_file_line_event_id_and_cause() {
    let trail = three_days();
    let mut lines = trail.lines(DAY8);
    let edited = lines[1].replace("\"alice\"", "\"mallory\"");
    assert_ne!(edited, lines[1]);
    lines[1] = edited;
    trail.write_lines(DAY8, &lines);
    let e = integrity(&trail.dir);
    assert_eq!(e.file, DAY8);
    assert_eq!(e.line, Some(3));
    let next: AuditRecord = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(e.event_id, Some(next.event_id.to_string()));
    assert!(matches!(e.kind, Problem::BrokenChain { .. }));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("record 3 of {DAY8} (eventID {})", next.event_id)),
        "{text}"
    );
    assert!(
        text.contains("previousRecordSha256 does not match"),
        "{text}"
    );
    assert!(text.contains(&format!("record 2 of {DAY8}")), "{text}");
}

#[test]
fn a_removed_record_is_detected() {
    let trail = three_days();
    let mut lines = trail.lines(DAY8);
    lines.remove(1);
    trail.write_lines(DAY8, &lines);
    let e = integrity(&trail.dir);
    assert_eq!((e.file.as_str(), e.line), (DAY8, Some(2)));
    assert!(matches!(e.kind, Problem::BrokenChain { .. }));
}

#[test]
fn swapped_records_are_detected() {
    let trail = three_days();
    let mut lines = trail.lines(DAY8);
    lines.swap(1, 2);
    trail.write_lines(DAY8, &lines);
    let e = integrity(&trail.dir);
    assert_eq!((e.file.as_str(), e.line), (DAY8, Some(2)));
}

#[test]
fn a_removed_record_of_a_closed_file_is_detected() {
    let trail = three_days();
    let mut lines = trail.lines(DAY6);
    lines.pop();
    trail.write_lines(DAY6, &lines);
    let e = integrity(&trail.dir);
    assert_eq!(e.file, DAY6);
    assert!(matches!(e.kind, Problem::DigestMismatch { .. }), "{e}");
}

#[test]
fn a_removed_closed_day_file_is_detected() {
    for victim in [DAY6, DAY7] {
        let trail = three_days();
        fs::remove_file(trail.path(victim)).unwrap();
        let e = integrity(&trail.dir);
        assert_eq!(e.file, victim);
        assert_eq!(e.kind, Problem::MissingFile);
        assert!(
            e.to_string().contains("a closed day file was removed"),
            "{e}"
        );
    }
}

#[test]
fn a_removed_file_and_its_digest_line_are_detected() {
    let trail = three_days();
    fs::remove_file(trail.path(DAY7)).unwrap();
    let mut digests = trail.lines(DIGESTS_FILE);
    digests.remove(1);
    trail.write_lines(DIGESTS_FILE, &digests);
    let e = integrity(&trail.dir);
    assert_eq!(e.file, DAY8, "{e}");
    assert!(
        matches!(
            e.kind,
            Problem::BrokenChain { .. } | Problem::Unanchored { .. }
        ),
        "{e}"
    );
}

#[test]
fn edits_to_the_digest_file_are_detected() {
    let trail = three_days();
    let original = trail.lines(DIGESTS_FILE);

    let mut d = original.clone();
    d.swap(0, 1);
    trail.write_lines(DIGESTS_FILE, &d);
    assert_eq!(integrity(&trail.dir).kind, Problem::BrokenDigestChain);

    let mut d = original.clone();
    d.remove(0);
    trail.write_lines(DIGESTS_FILE, &d);
    assert_eq!(integrity(&trail.dir).file, DIGESTS_FILE);

    let mut d = original.clone();
    d.pop();
    trail.write_lines(DIGESTS_FILE, &d);
    assert_eq!(integrity(&trail.dir).kind, Problem::UndigestedFile);

    // A forged but well-chained closedAt on the last line.
    let mut d = original.clone();
    d[1] = d[1].replace("2026-12-08T10:00:00Z", "2026-12-08T11:00:00Z");
    assert_ne!(d, original);
    trail.write_lines(DIGESTS_FILE, &d);
    let e = integrity(&trail.dir);
    assert_eq!((e.file.as_str(), e.line), (DAY8, Some(1)));
    assert_eq!(e.kind, Problem::Unanchored { digest_line: 2 });

    fs::remove_file(trail.path(DIGESTS_FILE)).unwrap();
    assert_eq!(integrity(&trail.dir).kind, Problem::UndigestedFile);
}

#[test]
fn restart_resumes_the_chain_in_the_same_file() {
    let trail = Trail::new();
    trail.clock.set(t(7, 9, 0, 0));
    let log = trail.open();
    trail.add(&log, "CreateSecret", "a", "alice");
    log.append(
        rec(log.now(), "GetSecretValue", "a", "bob"),
        Durability::Buffered,
    )
    .unwrap();
    drop(log);
    let log = trail.open();
    trail.add(&log, "PutSecretValue", "a", "alice");
    drop(log);
    let report = verify(&trail.dir).unwrap();
    assert_eq!((report.files, report.records), (1, 3));
    assert_eq!(trail.lines(DAY7).len(), 3);
}

#[test]
fn restart_on_a_later_day_closes_the_old_file_at_the_first_append() {
    let trail = Trail::new();
    trail.clock.set(t(6, 23, 59, 59));
    let log = trail.open();
    trail.add(&log, "CreateSecret", "a", "alice");
    drop(log);
    trail.clock.set(t(7, 0, 0, 1));
    let log = trail.open();
    assert!(!trail.path(DIGESTS_FILE).exists());
    trail.add(&log, "GetSecretValue", "a", "bob");
    drop(log);
    let report = verify(&trail.dir).unwrap();
    assert_eq!((report.files, report.digests, report.records), (2, 1, 3));
}

#[test]
fn an_empty_day_file_left_by_a_crash_gets_its_anchor() {
    let trail = Trail::new();
    trail.clock.set(t(6, 9, 0, 0));
    let log = trail.open();
    trail.add(&log, "CreateSecret", "a", "alice");
    trail.clock.set(t(7, 9, 0, 0));
    trail.add(&log, "GetSecretValue", "a", "bob");
    drop(log);
    // The crash: the 7th's file was created, its lines never written.
    fs::write(trail.path(DAY7), b"").unwrap();
    let log = trail.open();
    assert!(
        !trail.path(DAY7).exists(),
        "the empty file is removed on open"
    );
    trail.add(&log, "PutSecretValue", "a", "alice");
    drop(log);
    let report = verify(&trail.dir).unwrap();
    assert_eq!((report.files, report.digests, report.records), (2, 1, 3));
    let first: AuditRecord = serde_json::from_str(&trail.lines(DAY7)[0]).unwrap();
    assert_eq!(first.event_name, DAY_FILE_CLOSED_EVENT);
}

#[test]
fn a_late_record_goes_into_the_current_day_file() {
    let trail = Trail::new();
    let log = trail.open();
    log.append(
        rec(t(7, 0, 0, 1), "GetSecretValue", "a", "bob"),
        Durability::Sync,
    )
    .unwrap();
    log.append(
        rec(t(6, 23, 59, 59), "GetSecretValue", "a", "bob"),
        Durability::Sync,
    )
    .unwrap();
    drop(log);
    assert!(!trail.path(DAY6).exists());
    assert_eq!(trail.lines(DAY7).len(), 2);
    verify(&trail.dir).unwrap();
}

#[test]
fn a_torn_tail_is_moved_aside_recorded_and_verifies() {
    let trail = Trail::new();
    trail.clock.set(t(7, 9, 0, 0));
    let log = trail.open();
    trail.add(&log, "CreateSecret", "a", "alice");
    trail.add(&log, "GetSecretValue", "a", "bob");
    drop(log);
    // A crash mid-write: half a record, no newline.
    let lines = trail.lines(DAY7);
    let half = &lines[1][..lines[1].len() / 2];
    let mut bytes = fs::read(trail.path(DAY7)).unwrap();
    bytes.extend_from_slice(half.as_bytes());
    fs::write(trail.path(DAY7), &bytes).unwrap();

    let report = verify(&trail.dir).unwrap();
    assert_eq!(report.incomplete_tail.as_deref(), Some(DAY7));
    assert_eq!(report.records, 2);

    let log = trail.open();
    trail.add(&log, "PutSecretValue", "a", "alice");
    drop(log);
    let torn = format!("{DAY7}.1.torn");
    assert_eq!(fs::read(trail.path(&torn)).unwrap(), half.as_bytes());
    let mode = fs::metadata(trail.path(&torn))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let report = verify(&trail.dir).unwrap();
    assert_eq!(report.records, 4);
    assert_eq!(report.incomplete_tail, None);
    assert_eq!(report.torn_files, vec![torn.clone()]);
    let found: Vec<_> = search(
        &trail.dir,
        &Query {
            event: Some("audittorntail".into()),
            ..Query::default()
        },
    )
    .collect::<Result<_, _>>()
    .unwrap();
    assert_eq!(found.len(), 1);
    let details = found[0].service_event_details.as_ref().unwrap();
    assert_eq!(details["file"], DAY7);
    assert_eq!(details["movedTo"], torn.as_str());
    assert_eq!(details["bytes"], half.len());
    assert_eq!(found[0].event_source, KEYROLL_SOURCE);
    assert_eq!(found[0].user_identity.identity_type, "AWSService");
}

#[test]
fn a_torn_digest_line_is_moved_aside_and_the_day_closed_again() {
    let trail = Trail::new();
    trail.clock.set(t(6, 9, 0, 0));
    let log = trail.open();
    trail.add(&log, "CreateSecret", "a", "alice");
    drop(log);
    fs::write(
        trail.path(DIGESTS_FILE),
        b"{\"file\":\"keyroll-audit-2026-12-06.jso",
    )
    .unwrap();
    trail.clock.set(t(7, 9, 0, 0));
    let log = trail.open();
    trail.add(&log, "GetSecretValue", "a", "bob");
    drop(log);
    let report = verify(&trail.dir).unwrap();
    assert_eq!((report.files, report.digests), (2, 1));
    assert_eq!(report.torn_files, vec![format!("{DIGESTS_FILE}.1.torn")]);
}

#[test]
fn one_writer_per_directory() {
    let trail = Trail::new();
    let log = trail.open();
    let second = AuditLog::open(&trail.dir, AuditOptions::default());
    assert!(
        matches!(second, Err(AuditError::Locked { .. })),
        "{second:?}"
    );
    drop(log);
    trail.open();
}

#[test]
fn appends_after_close_fail() {
    let trail = Trail::new();
    let log = trail.open();
    log.close().unwrap();
    log.close().unwrap();
    let r = log.append(
        rec(log.now(), "GetSecretValue", "a", "b"),
        Durability::Buffered,
    );
    assert!(matches!(r, Err(AuditError::Closed)));
}

#[test]
fn buffered_records_reach_the_file_on_flush() {
    let trail = Trail::new();
    trail.clock.set(t(7, 9, 0, 0));
    let log = AuditLog::open(
        &trail.dir,
        AuditOptions {
            clock: trail.clock.clone(),
            flush_interval: std::time::Duration::from_secs(3600),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    log.append(
        rec(log.now(), "GetSecretValue", "a", "b"),
        Durability::Buffered,
    )
    .unwrap();
    assert_eq!(
        fs::read(trail.path(DAY7)).unwrap().len(),
        0,
        "still buffered"
    );
    log.flush().unwrap();
    assert_eq!(trail.lines(DAY7).len(), 1);
}

#[test]
fn eight_threads_sync_and_buffered() {
    let trail = Trail::new();
    trail.clock.set(t(7, 9, 0, 0));
    let log = Arc::new(trail.open());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for j in 0..200 {
                    let durability = if (i + j) % 2 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Buffered
                    };
                    let r = rec(
                        log.now(),
                        "GetSecretValue",
                        &format!("s{i}"),
                        &format!("u{j}"),
                    );
                    log.append(r, durability).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let stats = log.stats();
    assert_eq!(stats.appended, 1600);
    assert!(stats.fsyncs >= 1 && stats.fsyncs <= 800, "{stats:?}");
    log.close().unwrap();
    let report = verify(&trail.dir).unwrap();
    assert_eq!(report.records, 1600);
    for i in 0..8 {
        let q = Query {
            secret_id: Some(format!("s{i}")),
            ..Query::default()
        };
        assert_eq!(search(&trail.dir, &q).count(), 200);
    }
}

#[test]
fn batches_written_outside_the_lock_stay_in_chain_order() {
    // Mostly buffered appends from 4 threads: many 64 KiB batches are written outside the
    // state lock while other threads append, with a Sync append (which writes under it)
    // now and then.
    let trail = Trail::new();
    trail.clock.set(t(7, 9, 0, 0));
    let log = Arc::new(trail.open());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for j in 0..3000 {
                    let durability = if j % 250 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Buffered
                    };
                    let r = rec(log.now(), "GetSecretValue", &format!("s{i}"), "reader");
                    log.append(r, durability).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    log.close().unwrap();
    let report = verify(&trail.dir).unwrap();
    assert_eq!(report.records, 12_000);
    assert!(
        fs::metadata(trail.path(DAY7)).unwrap().len() > 40 * 64 * 1024,
        "enough records for many batches"
    );
}

#[test]
fn sentinel_secrets_never_reach_the_files() {
    const VALUE: &str = "SENTINEL-secret-value-7f3a";
    const PASSWORD: &str = "SENTINEL-password-91bc";
    const KEY_SECRET: &str = "SENTINEL-aws-secret-access-key-55de";
    const TOKEN: &str = "SENTINEL-session-token-0a0a";
    let trail = Trail::new();
    let log = trail.open();
    let cases = [
        (
            "CreateSecret",
            json!({"Name": "db", "SecretString": VALUE, "ClientRequestToken": "tok-1"}),
            json!({"ARN": arn("db"), "Name": "db", "VersionId": "tok-1"}),
        ),
        (
            "PutSecretValue",
            json!({"SecretId": "db", "SecretBinary": VALUE}),
            json!({"ARN": arn("db"), "VersionStages": ["AWSCURRENT"]}),
        ),
        (
            "GetSecretValue",
            json!({"SecretId": "db"}),
            json!({"ARN": arn("db"), "SecretString": VALUE, "SecretBinary": VALUE}),
        ),
        (
            "BatchGetSecretValue",
            json!({"SecretIdList": ["db"]}),
            json!({"SecretValues": [{"ARN": arn("db"), "Name": "db", "SecretString": VALUE}]}),
        ),
        (
            "GetRandomPassword",
            json!({"PasswordLength": 32}),
            json!({"RandomPassword": PASSWORD}),
        ),
        (
            "AssumeRole",
            json!({"RoleArn": "arn:aws:iam::111122223333:role/r", "RoleSessionName": "s", "TokenCode": PASSWORD}),
            json!({"Credentials": {"AccessKeyId": "ASIAX", "SecretAccessKey": KEY_SECRET, "SessionToken": TOKEN}}),
        ),
        (
            "GetSessionToken",
            json!({"DurationSeconds": 900}),
            json!({"Credentials": {"AccessKeyId": "ASIAY", "SecretAccessKey": KEY_SECRET, "SessionToken": TOKEN}}),
        ),
        (
            "UpdateSecret",
            json!({"SecretId": "db", "SecretString": VALUE, "Password": PASSWORD}),
            json!({"ARN": arn("db")}),
        ),
    ];
    for (op, req, resp) in cases {
        let mut r = rec(log.now(), op, "db", "alice");
        r.request_parameters = sanitize_parameters(op, req);
        r.response_elements = sanitize_parameters(op, resp);
        log.append(r, Durability::Sync).unwrap();
    }
    drop(log);
    let mut text = String::new();
    for entry in fs::read_dir(&trail.dir).unwrap() {
        text.push_str(&String::from_utf8_lossy(
            &fs::read(entry.unwrap().path()).unwrap(),
        ));
    }
    assert!(text.contains("ASIAX"), "the access key id is kept");
    for s in [VALUE, PASSWORD, KEY_SECRET, TOKEN] {
        assert!(!text.contains(s), "{s} reached the trail");
    }
    verify(&trail.dir).unwrap();
}

#[test]
fn search_filters_combine() {
    let trail = three_days();
    let count = |q: Query| {
        search(&trail.dir, &q)
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .len()
    };
    assert_eq!(
        count(Query {
            secret_id: Some("app/db".into()),
            ..Query::default()
        }),
        6
    );
    assert_eq!(
        count(Query {
            secret_id: Some(arn("app/db")),
            ..Query::default()
        }),
        6
    );
    assert_eq!(
        count(Query {
            secret_id: Some(format!(
                "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/api"
            )),
            ..Query::default()
        }),
        3
    );
    assert_eq!(
        count(Query {
            principal: Some("bob".into()),
            ..Query::default()
        }),
        3
    );
    assert_eq!(
        count(Query {
            principal: Some("AKIDALICE".into()),
            ..Query::default()
        }),
        6
    );
    assert_eq!(
        count(Query {
            principal: Some(format!("arn:aws:iam::{ACCOUNT}:user/alice")),
            ..Query::default()
        }),
        6
    );
    assert_eq!(
        count(Query {
            event: Some("getsecretvalue".into()),
            ..Query::default()
        }),
        3
    );
    assert_eq!(
        count(Query {
            since: Some(t(7, 0, 0, 0)),
            until: Some(t(8, 0, 0, 0)),
            ..Query::default()
        }),
        4
    );
    assert_eq!(
        count(Query {
            secret_id: Some("app/db".into()),
            principal: Some("alice".into()),
            since: Some(t(8, 0, 0, 0)),
            ..Query::default()
        }),
        1
    );
}

#[test]
fn verify_and_search_without_a_trail_say_where_to_look() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("audit");
    let e = verify(&missing).unwrap_err();
    assert!(matches!(e, AuditError::NoTrail { .. }));
    assert!(e.to_string().contains("--data-dir"), "{e}");
    let mut it = search(&missing, &Query::default());
    assert!(matches!(it.next(), Some(Err(AuditError::NoTrail { .. }))));
    assert!(it.next().is_none());
}

#[test]
fn borrowed_api_call_records_chain_verify_and_hold_no_secret() {
    const VALUE: &str = "SENTINEL-borrowed-value-4e21";
    let trail = Trail::new();
    let log = trail.open();
    let ident = IdentityRef {
        identity_type: "IAMUser",
        principal_id: Some("AIDAALICE"),
        arn: Some("arn:aws:iam::000000000000:user/alice"),
        account_id: Some(ACCOUNT),
        access_key_id: Some("AKIDALICE"),
        user_name: Some("alice"),
        session: None,
    };
    let req = json!({"SecretId": "app/db", "VersionStage": "AWSCURRENT", "SecretString": VALUE});
    let put = json!({"SecretId": "app/db", "SecretString": VALUE});
    let resp = json!({"ARN": arn("app/db"), "Name": "app/db", "SecretString": VALUE});
    let null = serde_json::Value::Null;
    let arn_db = arn("app/db");
    for i in 0..5 {
        let write = i % 2 == 1;
        let call = ApiCall {
            event_time: log.now(),
            event_source: "secretsmanager.amazonaws.com",
            event_name: if write {
                "PutSecretValue"
            } else {
                "GetSecretValue"
            },
            aws_region: "us-east-1",
            user_identity: ident.into(),
            source_ip_address: Some("127.0.0.1".parse().unwrap()),
            user_agent: Some("test"),
            error: None,
            request_parameters: if write { &put } else { &req },
            response_elements: if write { &resp } else { &null },
            request_id: Some("rid"),
            read_only: !write,
            resource_arn: Some(&arn_db),
            recipient_account_id: ACCOUNT,
        };
        let durability = if write {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        log.append_call(&call, durability).unwrap();
        // Interleaved with records built the other way: one chain.
        trail.add(&log, "DescribeSecret", "app/db", "bob");
    }
    drop(log);
    let report = verify(&trail.dir).unwrap();
    assert_eq!(report.records, 10);
    let mut text = String::new();
    for entry in fs::read_dir(&trail.dir).unwrap() {
        text.push_str(&String::from_utf8_lossy(
            &fs::read(entry.unwrap().path()).unwrap(),
        ));
    }
    assert!(!text.contains(VALUE), "a value reached the trail");
    let found: Vec<AuditRecord> = search(
        &trail.dir,
        &Query {
            principal: Some("alice".into()),
            ..Query::default()
        },
    )
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    assert_eq!(found.len(), 5);
    assert_eq!(found[0].event_name, "GetSecretValue");
    assert_eq!(
        found[0].request_parameters,
        json!({"SecretId": "app/db", "VersionStage": "AWSCURRENT"})
    );
    assert_eq!(found[0].resources[0].arn, arn_db);
    assert_eq!(
        found[1].response_elements,
        json!({"ARN": arn_db, "Name": "app/db"})
    );
}
