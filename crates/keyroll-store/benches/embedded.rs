//! Embedded store benchmarks: `cargo bench -p keyroll-store --bench embedded`.
//!
//! 1. `GetSecretValue` and `PutSecretValue` through `RegionStore` (the `SecretsApi`, so
//!    including look-up, decryption or encryption, and the commit's fsync) with 10,000 and
//!    100,000 secrets: throughput and p50/p99 latency.
//! 2. A generic rotation (`keyroll_core::engine::rotate` with the `none` target): median and
//!    p99 over 100 rotations.
//!
//! Secrets are seeded with `EmbeddedBackend::bulk_insert` (one transaction per 10,000). They
//! are seeded as already read today, so that the timed reads measure reads: the first
//! `GetSecretValue` of a secret on a given day also records `LastAccessedDate`, which is a
//! write (see the put figures for its cost).
//!
//! `KEYROLL_BENCH_SIZES=10000,100000` (the default) picks the store sizes;
//! `KEYROLL_BENCH_DIR` the directory to put the data in (default: the system temp dir).

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyroll_core::api::{GetSecretValueRequest, PutSecretValueRequest};
use keyroll_core::engine::{RotateOptions, Silent, rotate};
use keyroll_core::ids::{new_token, random_arn_suffix};
use keyroll_core::model::SecretRecord;
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::service::Backend;
use keyroll_core::time::{ManualClock, Timestamp};
use keyroll_core::value::SecretValue;
use keyroll_store::embedded::{EmbeddedStore, Env, MasterKeySource, OpenOptions, RegionStore};
use keyroll_targets::none::NoneTarget;
use secrecy::SecretString;

const T0: Timestamp = Timestamp(1_767_225_600_000);
const KEY: &str = "5f1c0e9a7b3d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
const SEED_BATCH: usize = 10_000;
const GETS: usize = 50_000;
const PUTS: usize = 2_000;
const ROTATIONS: usize = 100;

fn open(dir: &std::path::Path, clock: &ManualClock) -> EmbeddedStore {
    EmbeddedStore::open(
        OpenOptions::new(dir)
            .master_key(MasterKeySource::from_text(KEY).expect("valid key"))
            .clock(Arc::new(clock.clone()))
            .env(Env::empty()),
    )
    .expect("open the store")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// splitmix64: a reproducible pick of secrets.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

struct Stats {
    n: usize,
    total: Duration,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>, total: Duration) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Stats {
        n: v.len(),
        total,
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: v[v.len() - 1],
    }
}

fn report(what: &str, s: &Stats) {
    println!(
        "{what:<44} n={:<6} {:>9.0} ops/s   p50 {:>8.1?}   p99 {:>8.1?}   p99.9 {:>8.1?}   max {:>8.1?}",
        s.n,
        s.n as f64 / s.total.as_secs_f64(),
        s.p50,
        s.p99,
        s.p999,
        s.max
    );
}

fn name(i: usize) -> String {
    format!("bench/app-{i:06}/db")
}

fn seed(svc: &RegionStore, count: usize) -> Duration {
    let ns = svc.backend().namespace().clone();
    let today = T0.floor_day();
    let started = Instant::now();
    let mut i = 0;
    while i < count {
        let batch: Vec<_> = (i..(i + SEED_BATCH).min(count))
            .map(|i| {
                let n = name(i);
                let mut rec = SecretRecord::new(ns.secret_arn(&n, &random_arn_suffix()), n, T0);
                let vid = new_token();
                rec.put_version(&vid, None, T0, |_| false).expect("a first version");
                rec.last_accessed = Some(today);
                for v in &mut rec.versions {
                    v.last_accessed = Some(today);
                }
                rec.revision = 1;
                let value = SecretValue::string(format!(
                    r#"{{"engine":"postgres","host":"db-{i}.internal","port":5432,"username":"app_{i}","password":"p{i:020}"}}"#
                ));
                (rec, Some((vid, value)))
            })
            .collect();
        svc.backend().bulk_insert(&batch).expect("seed a batch");
        i += batch.len();
    }
    started.elapsed()
}

fn bench_size(base: &std::path::Path, count: usize) {
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &clock);
    let seeded = seed(&store.region("us-east-1"), count);
    drop(store);
    let opened = Instant::now();
    let store = open(dir.path(), &clock);
    let open_time = opened.elapsed();
    let db_size = std::fs::metadata(dir.path().join("keyroll.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "-- {count} secrets: seeded in {seeded:.2?}, reopened (index loaded) in {open_time:.2?}, \
         keyroll.db {:.1} MiB",
        db_size as f64 / (1 << 20) as f64
    );
    let svc = store.region("us-east-1");
    let rt = rt();
    let mut rng = Rng(count as u64);
    let get = |i: usize| {
        rt.block_on(svc.get_secret_value(GetSecretValueRequest {
            secret_id: name(i),
            version_id: None,
            version_stage: None,
        }))
        .expect("get")
    };
    for _ in 0..2_000 {
        get(rng.below(count));
    }
    let mut lat = Vec::with_capacity(GETS);
    let started = Instant::now();
    for _ in 0..GETS {
        let i = rng.below(count);
        let t = Instant::now();
        let r = get(i);
        lat.push(t.elapsed());
        std::hint::black_box(r);
    }
    report(
        &format!("GetSecretValue, {count} secrets, 1 thread"),
        &stats(lat, started.elapsed()),
    );

    // Two threads (the machine has two cores) reading at once.
    let started = Instant::now();
    let lats: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    let svc = store.region("us-east-1");
                    let rt = self::rt();
                    let mut rng = Rng(t + 7);
                    let mut lat = Vec::with_capacity(GETS / 2);
                    for _ in 0..GETS / 2 {
                        let req = GetSecretValueRequest {
                            secret_id: name(rng.below(count)),
                            version_id: None,
                            version_stage: None,
                        };
                        let t = Instant::now();
                        let r = rt.block_on(svc.get_secret_value(req)).expect("get");
                        lat.push(t.elapsed());
                        std::hint::black_box(r);
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("reader thread"))
            .collect()
    });
    report(
        &format!("GetSecretValue, {count} secrets, 2 threads"),
        &stats(lats.into_iter().flatten().collect(), started.elapsed()),
    );

    let mut lat = Vec::with_capacity(PUTS);
    let started = Instant::now();
    for k in 0..PUTS {
        let i = rng.below(count);
        let req = PutSecretValueRequest {
            secret_id: name(i),
            client_request_token: Some(new_token()),
            secret_string: Some(SecretString::from(format!(
                r#"{{"username":"app_{i}","password":"new-{k:020}"}}"#
            ))),
            ..Default::default()
        };
        let t = Instant::now();
        rt.block_on(svc.put_secret_value(req)).expect("put");
        lat.push(t.elapsed());
    }
    report(
        &format!("PutSecretValue, {count} secrets, 1 thread"),
        &stats(lat, started.elapsed()),
    );
}

/// The disk's own cost: fsync after appending 4 KiB, the floor under every commit.
fn bench_fsync(base: &std::path::Path) {
    use std::io::Write;
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let mut f = std::fs::File::create(dir.path().join("probe")).expect("probe file");
    let mut lat = Vec::with_capacity(500);
    let started = Instant::now();
    for _ in 0..500 {
        f.write_all(&[0x5a; 4096]).expect("append");
        let t = Instant::now();
        f.sync_data().expect("fsync");
        lat.push(t.elapsed());
    }
    report(
        "baseline: fdatasync after a 4 KiB append",
        &stats(lat, started.elapsed()),
    );
}

/// The store's change counter: one per committed transaction.
fn commits(dir: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(dir.join("keyroll.db")).expect("read the counter");
    c.query_row("SELECT value FROM meta WHERE key = 'seq'", [], |r| r.get(0))
        .expect("counter")
}

fn bench_rotation(base: &std::path::Path) {
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let clock = ManualClock::new(T0);
    let store = open(dir.path(), &clock);
    let svc = store.region("us-east-1");
    let rt = rt();
    let arn = rt.block_on(async {
        let c = svc
            .create_secret(keyroll_core::api::CreateSecretRequest {
                name: "bench/rotated".into(),
                client_request_token: Some(new_token()),
                secret_string: Some(SecretString::from(
                    r#"{"username":"app","password":"initial-password"}"#.to_string(),
                )),
                ..Default::default()
            })
            .await
            .expect("create");
        svc.configure_rotation(&c.arn, Some("keyroll".into()), None)
            .await
            .expect("enable");
        c.arn
    });
    let target = NoneTarget::new();
    let before = commits(dir.path());
    // The disk's fsync latency drifts (the machine is shared): probe it between rotations so
    // each rotation can be read against the disk as it was at that moment.
    let mut probe = std::fs::File::create(dir.path().join("probe")).expect("probe file");
    let mut probes = Vec::with_capacity(ROTATIONS);
    let mut lat = Vec::with_capacity(ROTATIONS);
    let mut busy = Duration::ZERO;
    for _ in 0..ROTATIONS {
        // A day apart, like scheduled rotations: old versions age out as they would.
        clock.advance_days(1);
        let t = Instant::now();
        rt.block_on(rotate(
            &svc,
            &target,
            &arn,
            &RotateOptions::default(),
            &Silent,
        ))
        .expect("rotate");
        let took = t.elapsed();
        lat.push(took);
        busy += took;
        use std::io::Write;
        probe.write_all(&[0x5a; 4096]).expect("append");
        let t = Instant::now();
        probe.sync_data().expect("fsync");
        probes.push(t.elapsed());
    }
    report("rotate (target none), plain JSON secret", &stats(lat, busy));
    let probe_total = probes.iter().sum();
    report(
        "   fdatasync probes between the rotations",
        &stats(probes, probe_total),
    );
    println!(
        "   ({:.1} fsynced commits per rotation)",
        (commits(dir.path()) - before) as f64 / ROTATIONS as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let sizes: Vec<usize> = std::env::var("KEYROLL_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let base = std::env::var_os("KEYROLL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!("embedded store benchmarks (data in {})", base.display());
    bench_fsync(&base);
    bench_rotation(&base);
    for n in sizes {
        bench_size(&base, n);
    }
}
