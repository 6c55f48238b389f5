#!/usr/bin/env bash
# keyroll agent against AWS's Secrets Manager Agent (built from its public source), both in
# front of the same keyroll serve, in one run (see bench/agent_bench.py):
#   cached reads at 64 connections (wrk: req/s, p50, p99), upstream calls under TTL churn
#   against the ideal, RSS with 1,000 cached secrets.
#
#   bench/agent.sh [--duration SECONDS] [--rounds N] [--aws-agent PATH]
#
# AWS's agent: AWS_AGENT (or --aws-agent) names its binary; without it the script builds it
# from github.com/aws/aws-secretsmanager-agent in $AWS_AGENT_SRC (default
# /work/outside/aws-secretsmanager-agent) with its own target directory, release.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KEYROLL_VENV:-$HOME/.cache/keyroll-venv}
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
if ! "$VENV/bin/python" -c 'import boto3' >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q boto3
fi
AWS_AGENT=${AWS_AGENT:-}
if [ -z "$AWS_AGENT" ]; then
  SRC=${AWS_AGENT_SRC:-/work/outside/aws-secretsmanager-agent}
  if [ ! -d "$SRC" ]; then
    git clone -q --depth 1 https://github.com/aws/aws-secretsmanager-agent "$SRC"
  fi
  (cd "$SRC" && CARGO_TARGET_DIR="$SRC-target" cargo build --release -q -p aws_secretsmanager_agent)
  AWS_AGENT="$SRC-target/release/aws_secretsmanager_agent"
fi
cargo build --release -q -p keyroll --bin keyroll
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# The shared target directory may be rebuilt by others meanwhile: run a copy.
cp "$TARGET_DIR/release/keyroll" /tmp/keyroll-agent-bench
exec "$VENV/bin/python" bench/agent_bench.py --keyroll /tmp/keyroll-agent-bench --aws-agent "$AWS_AGENT" "$@"
