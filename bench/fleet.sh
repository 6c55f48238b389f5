#!/usr/bin/env bash
# Fleet rotation and report at scale (docs/BENCHMARKS.md, docs/OPERATIONS.md):
#   - 1,000 PostgreSQL single-user secrets rotated by one `keyroll rotate --filter
#     tag-key=critical` against one local PostgreSQL 15 (keyroll-testkit): wall time,
#     rotations/s, database connections, failures (must be 0);
#   - `keyroll report` over 100,000 secrets in the embedded store, each output format: wall
#     time and peak RSS (/usr/bin/time).
#
#   bench/fleet.sh [--release]
#
# Environment: KEYROLL_FLEET_N (default 1000), KEYROLL_FLEET_CONCURRENCY (default 16),
# KEYROLL_REPORT_N (default 100000). Needs PostgreSQL 15 (KEYROLL_PG_BIN, default
# /usr/lib/postgresql/15/bin) as the tests do.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
if [ "${1:-}" = "--release" ]; then profile=(--release); fi
cargo test -q "${profile[@]}" -p keyroll --test fleet -- --ignored --nocapture --test-threads 1 \
  bench_fleet_1000 bench_report_100k 2>&1 | grep -E '^(set-up|BENCH)|panicked|FAILED|test result'
