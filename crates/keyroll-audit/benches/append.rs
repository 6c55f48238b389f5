//! Append throughput: `cargo bench -p keyroll-audit --bench append`.
//!
//! One thread appends records with `Durability::Buffered`: serialise, link, SHA-256 and a
//! buffered write (a `write(2)` per 64 KiB). Criterion reports the time per append (the
//! records' clones are made before the clock starts, 1,000 at a time); appends per second are 1 / that.
//! Each sample appends to a fresh trail in a temporary directory (on disk, like the real
//! one), deleted after the sample, so the benchmark does not fill the disk.
//!
//! - `buffered_700_bytes`: a 700-byte `GetSecretValue` record (IAM user, `SecretId` only,
//!   no resources, no user agent);
//! - `buffered_1k_bytes`: the same with a user agent, request id and longer names: about
//!   1 KiB, what `keyroll serve` writes for an aws CLI call;
//! - `serialise_700_bytes` and `sha256_700_bytes`: the two costs inside an append;
//! - `sync/1_thread` and `sync/8_threads`: `Durability::Sync` appends of the 700-byte
//!   record, alone and from 8 threads at once (group commit: the appends per fsync are
//!   printed).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyroll_audit::{
    AuditLog, AuditOptions, AuditRecord, Durability, Resource, SECRETS_MANAGER_SOURCE,
    UserIdentity, sanitize_parameters,
};
use serde_json::json;
use sha2::{Digest, Sha256};

fn record(long: bool) -> AuditRecord {
    let t = Utc.with_ymd_and_hms(2026, 12, 7, 3, 4, 5).unwrap();
    let (user, secret) = if long {
        ("rotation-operator", "prod/db/app-user")
    } else {
        ("ops", "prod/db/app")
    };
    let arn = format!("arn:aws:secretsmanager:us-east-1:111122223333:secret:{secret}-AbC123");
    let mut r = AuditRecord::api_call(t, SECRETS_MANAGER_SOURCE, "GetSecretValue");
    r.user_identity = UserIdentity::iam_user("111122223333", user, "AKIAIOSFODNN7EXAMPLE");
    r.aws_region = "us-east-1".into();
    r.source_ip_address = Some("127.0.0.1".into());
    r.read_only = Some(true);
    r.recipient_account_id = Some("111122223333".into());
    if long {
        r.request_parameters = sanitize_parameters(
            "GetSecretValue",
            json!({"SecretId": secret, "VersionStage": "AWSCURRENT"}),
        );
        r.resources.push(Resource::secret(&arn, "111122223333"));
        r.user_agent = Some("aws-cli/2.22.0 md/awscrt#0.23.4 ua/2.1 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#secretsmanager.get-secret-value".into());
        r.request_id = Some("6f1c2a4e-8b3d-4c5e-9f7a-0b1c2d3e4f5a".into());
    } else {
        r.request_parameters = sanitize_parameters("GetSecretValue", json!({"SecretId": secret}));
        r.event_category = None;
        r.management_event = None;
    }
    r
}

fn size(rec: &AuditRecord) -> usize {
    let mut probe = rec.clone();
    probe.previous_record_sha256 = "0".repeat(64);
    serde_json::to_vec(&probe).unwrap().len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, long) in [("buffered_700_bytes", false), ("buffered_1k_bytes", true)] {
        let rec = record(long);
        eprintln!("{name}: record is {} bytes", size(&rec));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let log = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
                // Clones made in batches of 1,000, outside the timed part, while still hot
                // in the cache (as a record the server has just built would be).
                let mut took = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(1000);
                    left -= n;
                    let recs: Vec<AuditRecord> = (0..n).map(|_| rec.clone()).collect();
                    let start = Instant::now();
                    for r in recs {
                        log.append(r, Durability::Buffered).unwrap();
                    }
                    took += start.elapsed();
                }
                log.close().unwrap();
                took
            })
        });
    }
    let rec = record(false);
    g.bench_function("serialise_700_bytes", |b| {
        b.iter(|| serde_json::to_vec(black_box(&rec)).unwrap())
    });
    let line = serde_json::to_vec(&rec).unwrap();
    g.bench_function("sha256_700_bytes", |b| {
        b.iter(|| Sha256::digest(black_box(&line)))
    });
    g.finish();
}

fn bench_sync(c: &mut Criterion) {
    let rec = record(false);
    let mut g = c.benchmark_group("sync");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for threads in [1u64, 8] {
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let log = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
                let per_thread = iters.div_ceil(threads);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..per_thread {
                                log.append(rec.clone(), Durability::Sync).unwrap();
                            }
                        });
                    }
                });
                let took = start.elapsed();
                let stats = log.stats();
                eprintln!(
                    "sync/{threads}_threads: {} appends, {} fsyncs ({:.1} appends per fsync)",
                    stats.appended,
                    stats.fsyncs,
                    stats.appended as f64 / stats.fsyncs.max(1) as f64
                );
                log.close().unwrap();
                took * u32::try_from(iters).unwrap_or(u32::MAX)
                    / u32::try_from(per_thread * threads).unwrap_or(u32::MAX)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_sync);
criterion_main!(benches);
