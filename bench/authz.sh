#!/usr/bin/env bash
# GetSecretValue with and without access control and auditing, side by side in one run
# (see bench/authz_bench.py).
#
#   bench/authz.sh [--duration SECONDS] [--rounds N] [--connections N]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KEYROLL_VENV:-$HOME/.cache/keyroll-venv}
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -q -p keyroll --bin keyroll
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cd bench
exec "$VENV/bin/python" authz_bench.py --keyroll "$TARGET_DIR/release/keyroll" "$@"
