//! Figures for docs/BENCHMARKS.md (`## Lambda`): cold start of `bootstrap` (exec to its first
//! `GET /runtime/invocation/next`), Secrets Manager calls per rotation by operation (counted
//! by a proxy in front of moto) and database logins, peak RSS across PostgreSQL rotations,
//! and the wall time of a warm single-user PostgreSQL rotation against moto — through the
//! real binary and a local Lambda Runtime API, and through the library handler.
//!
//!   cargo bench -p keyroll-lambda --bench lambda
//!
//! `KEYROLL_BOOTSTRAP=path` measures another build of the binary (e.g. the packaged one,
//! `target/lambda/bootstrap/bootstrap`); the default is the bench profile's.
//! `KEYROLL_BENCH_RUNS` sets the number of cold starts and rotations (default 30 / 20).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Aws, CountingProxy, Db, event, format_counts};
use keyroll_core::Step;
use keyroll_lambda::{Function, Settings};
use keyroll_testkit::lambda_runtime::{Outcome, RuntimeApi};

fn bootstrap_path() -> String {
    std::env::var("KEYROLL_BOOTSTRAP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bootstrap").into())
}

fn spawn(api: &RuntimeApi, aws: Option<&Aws>, endpoint: Option<&str>) -> Child {
    let mut cmd = Command::new(bootstrap_path());
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in api.function_env("keyroll-bench") {
        cmd.env(k, v);
    }
    if let Some(aws) = aws {
        for (k, v) in aws.moto.aws_env() {
            cmd.env(k, v);
        }
    }
    if let Some(e) = endpoint {
        cmd.env("AWS_ENDPOINT_URL", e);
    }
    cmd.spawn().expect("spawn bootstrap")
}

fn stop(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn stats(name: &str, unit: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name:<44} n={:<3} min {:>8.2} median {:>8.2} p95 {:>8.2} max {:>8.2} {unit}",
        v.len(),
        v[0],
        q(0.5),
        q(0.95),
        v[v.len() - 1]
    );
}

/// Peak resident set size of a live process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a live process by kind (`/proc/PID/smaps_rollup`): file-backed
/// (mapped code and data) and anonymous (heap, stacks), in KiB.
fn rss_split_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let rss = field("Rss:");
    let anon = field("Anonymous:");
    (rss.saturating_sub(anon), anon)
}

fn runs(default: usize) -> usize {
    std::env::var("KEYROLL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    println!("bootstrap: {}", bootstrap_path());
    if let Ok(m) = std::fs::metadata(bootstrap_path()) {
        println!("binary size: {} bytes", m.len());
    }

    // ---- cold start: exec to the first /next --------------------------------------------
    let mut cold = Vec::new();
    for _ in 0..runs(30) {
        let api = RuntimeApi::start().unwrap();
        let t0 = Instant::now();
        let child = spawn(&api, None, None);
        let first = api
            .wait_first_next(Duration::from_secs(10))
            .expect("bootstrap asked for work");
        cold.push(first.duration_since(t0).as_secs_f64() * 1e3);
        stop(child);
    }
    stats("cold start (exec -> first /next)", "ms", cold);

    // ---- a PostgreSQL single-user rotation through the real binary ----------------------
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Db::start("postgres");
    let aws = Aws::start();
    let arn = rt.block_on(async {
        db.create_user("app", "BenchInitialPw1").await;
        aws.create_secret("bench/app", &db.secret("app", "BenchInitialPw1"))
            .await
    });
    let rotate = |api: &RuntimeApi, per_step: Option<&mut [Vec<f64>; 4]>| -> f64 {
        let token = rt.block_on(aws.rotate_secret(&arn));
        let t0 = Instant::now();
        let mut per_step = per_step;
        for (i, step) in Step::ALL.into_iter().enumerate() {
            let s0 = Instant::now();
            let o = api
                .invoke(
                    &event(step, &arn, &token).to_string(),
                    Duration::from_secs(60),
                )
                .unwrap();
            assert_eq!(o, Outcome::Response("null".into()), "{step}");
            if let Some(p) = per_step.as_deref_mut() {
                p[i].push(s0.elapsed().as_secs_f64() * 1e3);
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        rt.block_on(aws.complete(&arn, &token));
        ms
    };

    // ---- round trips: Secrets Manager calls by operation, database logins ---------------
    {
        let sm = CountingProxy::start(aws.moto.port());
        let api = RuntimeApi::start().unwrap();
        let child = spawn(&api, Some(&aws), Some(&sm.endpoint()));
        for label in ["first rotation of a fresh container", "next rotation, warm"] {
            sm.reset();
            rotate(&api, None);
            println!(
                "Secrets Manager calls, {label}: {} ({})",
                sm.total(),
                format_counts(&sm.counts())
            );
        }
        stop(child);
    }
    {
        // The logins, through a proxy in front of PostgreSQL (a secret of its own).
        let pg = CountingProxy::start(db.port());
        let mut v = db.secret("app2", "BenchInitialPw2");
        v["port"] = serde_json::json!(pg.port());
        let arn2 = rt.block_on(async {
            db.create_user("app2", "BenchInitialPw2").await;
            aws.create_secret("bench/app2", &v).await
        });
        let api = RuntimeApi::start().unwrap();
        let child = spawn(&api, Some(&aws), None);
        let token = rt.block_on(aws.rotate_secret(&arn2));
        for step in Step::ALL {
            let o = api
                .invoke(
                    &event(step, &arn2, &token).to_string(),
                    Duration::from_secs(60),
                )
                .unwrap();
            assert_eq!(o, Outcome::Response("null".into()), "{step}");
        }
        println!("database connections per rotation: {}", pg.connections());
        stop(child);
    }

    // ---- warm single-user rotations through the real binary (direct to moto) -------------
    let api = RuntimeApi::start().unwrap();
    let child = spawn(&api, Some(&aws), None);
    let pid = child.id();
    let first = rotate(&api, None);
    println!("first rotation of a fresh container (not in the figures below): {first:.2} ms");
    // The peak so far is start-up and the first (cold) rotation; writing 5 to clear_refs
    // resets VmHWM, so what is read at the end is the warm container's own peak.
    let cold_peak = peak_rss_kib(pid);
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let mut binary = Vec::new();
    let mut per_step: [Vec<f64>; 4] = Default::default();
    for _ in 0..runs(20) {
        binary.push(rotate(&api, Some(&mut per_step)));
    }
    let rss = peak_rss_kib(pid);
    let (file, anon) = rss_split_kib(pid);
    stop(child);
    stats("warm rotation via bootstrap + Runtime API", "ms", binary);
    for (i, step) in Step::ALL.into_iter().enumerate() {
        stats(&format!("  {step}"), "ms", std::mem::take(&mut per_step[i]));
    }
    println!(
        "peak RSS (VmHWM), start-up and first rotation: {:.1} MiB",
        cold_peak as f64 / 1024.0
    );
    println!(
        "peak RSS (VmHWM) of the warm container across the rotations{}: {:.1} MiB (now \
         resident: {:.1} MiB file-backed, {:.1} MiB anonymous)",
        if reset {
            ""
        } else {
            " (could not reset VmHWM: includes start-up)"
        },
        rss as f64 / 1024.0,
        file as f64 / 1024.0,
        anon as f64 / 1024.0
    );

    // ---- the same through the library handler ------------------------------------------
    let function = Function::with_store(Settings::default(), aws.store()).with_metrics_sink(|_| {});
    let mut lib = Vec::new();
    for _ in 0..runs(20) {
        let token = rt.block_on(aws.rotate_secret(&arn));
        let t0 = Instant::now();
        rt.block_on(async {
            for step in Step::ALL {
                function.invoke(&event(step, &arn, &token)).await.unwrap();
            }
        });
        lib.push(t0.elapsed().as_secs_f64() * 1e3);
        rt.block_on(aws.complete(&arn, &token));
    }
    stats("rotation via Function::invoke (library)", "ms", lib);
}
