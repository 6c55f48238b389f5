//! Append throughput: `cargo bench -p keyroll-audit --bench append`.
//!
//! One thread appends a typical ~700-byte record (an IAM user's `GetSecretValue` with a
//! resource and sanitised parameters) with `Durability::Buffered`: link hash, serialise,
//! SHA-256 and a buffered write. Criterion reports time per append; appends per second are
//! 1 / that.

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyroll_audit::{
    AuditLog, AuditOptions, AuditRecord, Durability, Resource, SECRETS_MANAGER_SOURCE,
    UserIdentity, sanitize_parameters,
};
use serde_json::json;

fn record() -> AuditRecord {
    let t = Utc.with_ymd_and_hms(2026, 12, 7, 3, 4, 5).unwrap();
    let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db/app-user-AbC123";
    let mut r = AuditRecord::api_call(t, SECRETS_MANAGER_SOURCE, "GetSecretValue");
    r.user_identity =
        UserIdentity::iam_user("111122223333", "rotation-operator", "AKIAIOSFODNN7EXAMPLE");
    r.aws_region = "us-east-1".into();
    r.source_ip_address = Some("127.0.0.1".into());
    r.user_agent = Some("aws-sdk-rust/1.3.9 os/linux lang/rust/1.88.0".into());
    r.request_parameters = sanitize_parameters(
        "GetSecretValue",
        json!({"SecretId": "prod/db/app-user", "VersionStage": "AWSCURRENT"}),
    );
    r.request_id = Some("6f1c2a4e-8b3d-4c5e-9f7a-0b1c2d3e4f5a".into());
    r.read_only = Some(true);
    r.resources.push(Resource::secret(arn, "111122223333"));
    r.recipient_account_id = Some("111122223333".into());
    r
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit"), AuditOptions::default()).unwrap();
    let rec = record();
    let mut probe = rec.clone();
    probe.previous_record_sha256 = "0".repeat(64);
    let bytes = serde_json::to_vec(&probe).unwrap().len();
    eprintln!("record size: {bytes} bytes");
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("buffered_700_bytes", |b| {
        b.iter(|| {
            log.append(black_box(rec.clone()), Durability::Buffered)
                .unwrap()
        })
    });
    g.finish();
    log.close().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
