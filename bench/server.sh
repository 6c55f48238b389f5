#!/usr/bin/env bash
# Benchmarks `keyroll serve` against moto_server on loopback (see bench/server_bench.py).
#
#   bench/server.sh [--duration SECONDS] [--secrets N] [--skip-moto]
#
# Needs: wrk (installed with apt-get if missing), the Python venv with boto3 and moto
# (KEYROLL_VENV, default ~/.cache/keyroll-venv, as scripts/test creates it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KEYROLL_VENV:-$HOME/.cache/keyroll-venv}
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
if ! "$VENV/bin/python" -c 'import boto3, moto' >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "moto[server]==5.2.5" boto3
fi
cargo build --release -q -p keyroll --bin keyroll
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$VENV/bin/python" bench/server_bench.py --keyroll "$TARGET_DIR/release/keyroll" --venv "$VENV" "$@"
