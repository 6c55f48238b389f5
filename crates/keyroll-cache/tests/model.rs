//! Property test: random sequences of reads, clock moves, rotations, invalidations and upstream
//! outages against a model of what the cache may answer.

use std::sync::Arc;
use std::time::Duration;

use keyroll_cache::testing::{ARN_PREFIX, FakeSource};
use keyroll_cache::{CacheConfig, ManualClock, SecretCache};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["app/a", "app/b", "c"];
const TTL: u64 = 30;

#[derive(Debug, Clone)]
enum Op {
    Get { secret: usize, form: usize },
    Advance(u64),
    Rotate(usize),
    Invalidate { secret: usize, form: usize },
    InvalidateAll,
    Failing(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..3usize).prop_map(|(secret, form)| Op::Get { secret, form }),
        3 => (0..40u64).prop_map(Op::Advance),
        2 => (0..3usize).prop_map(Op::Rotate),
        1 => (0..3usize, 0..3usize).prop_map(|(secret, form)| Op::Invalidate { secret, form }),
        1 => Just(Op::InvalidateAll),
        1 => any::<bool>().prop_map(Op::Failing),
    ]
}

/// The id a reader uses: the name, the full ARN or a partial ARN.
fn id(secret: usize, form: usize) -> String {
    let name = NAMES[secret];
    match form {
        0 => name.to_string(),
        1 => FakeSource::arn(name),
        _ => format!("{ARN_PREFIX}{name}"),
    }
}

#[derive(Default)]
struct ModelSecret {
    /// For each version: the step at which it was superseded, and the clock then (seconds).
    superseded: Vec<Option<(usize, u64)>>,
    /// The last step that invalidated this secret (by any id, or all).
    invalidated_at: Option<usize>,
}

async fn settle(cache: &SecretCache<Arc<FakeSource>>) {
    for _ in 0..10_000 {
        if cache.metrics().inflight == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("background refreshes never finished");
}

async fn run(ops: Vec<Op>, stale_secs: u64) -> Result<(), TestCaseError> {
    let src = Arc::new(FakeSource::new());
    let mut model: Vec<ModelSecret> = Vec::new();
    for name in NAMES {
        src.put(name, &format!("{name}#0"));
        model.push(ModelSecret {
            superseded: vec![None],
            invalidated_at: None,
        });
    }
    let clock = Arc::new(ManualClock::new());
    let config = CacheConfig {
        ttl: Duration::from_secs(TTL),
        max_entries: 4,
        refresh_ahead: 0.2,
        stale_if_error: Duration::from_secs(stale_secs),
    };
    let cache = SecretCache::with_clock(Arc::clone(&src), config, clock.clone()).unwrap();
    let (mut now, mut failing, mut gets) = (0u64, false, 0u64);
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Get { secret, form } => {
                gets += 1;
                match cache.get(&id(secret, form)).await {
                    Ok(e) => {
                        let v = e.secret_string().unwrap().to_string();
                        let (name, n) = v.split_once('#').unwrap();
                        prop_assert_eq!(name, NAMES[secret]);
                        let n: usize = n.parse().unwrap();
                        let m = &model[secret];
                        prop_assert!(n < m.superseded.len());
                        if let Some((sup_step, sup_time)) = m.superseded[n] {
                            // An old version: only within its TTL (plus the stale window)
                            // of being replaced, and never after an invalidation since.
                            prop_assert!(
                                now < sup_time + TTL + stale_secs,
                                "version {} served at {}s, replaced at {}s",
                                n,
                                now,
                                sup_time
                            );
                            prop_assert!(
                                m.invalidated_at.is_none_or(|i| i < sup_step),
                                "old version served after an invalidation"
                            );
                        }
                    }
                    Err(e) => prop_assert!(failing, "read failed while upstream was up: {}", e),
                }
            }
            Op::Advance(s) => {
                clock.advance(Duration::from_secs(s));
                now += s;
            }
            Op::Rotate(secret) => {
                let m = &mut model[secret];
                let n = m.superseded.len();
                *m.superseded.last_mut().unwrap() = Some((step, now));
                m.superseded.push(None);
                src.put(NAMES[secret], &format!("{}#{n}", NAMES[secret]));
            }
            Op::Invalidate { secret, form } => {
                cache.invalidate(&id(secret, form));
                model[secret].invalidated_at = Some(step);
            }
            Op::InvalidateAll => {
                cache.invalidate_all();
                for m in &mut model {
                    m.invalidated_at = Some(step);
                }
            }
            Op::Failing(f) => {
                failing = f;
                src.set_failing(f);
            }
        }
        settle(&cache).await;
        let metrics = cache.metrics();
        prop_assert!(metrics.entries <= 4);
        prop_assert_eq!(metrics.hits + metrics.misses, gets);
        prop_assert!(
            src.calls() <= gets,
            "{} upstream calls for {} reads",
            src.calls(),
            gets
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_cache_never_serves_what_it_must_not(
        ops in proptest::collection::vec(op(), 1..60),
        stale in prop_oneof![Just(0u64), Just(20u64)],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops, stale))?;
    }
}
