#!/usr/bin/env bash
# The monitoring that ships with `keyroll serve` (run by scripts/test):
#
# - deploy/prometheus/alerts.yml: `promtool check rules`, then its unit tests
#   (`promtool test rules deploy/prometheus/alerts_test.yml`);
# - deploy/prometheus/alerts.yml and deploy/grafana/keyroll.json: every metric they query is
#   one a running `keyroll serve` exports (scripts/checks.d/monitoring_metrics.py, with the
#   binary scripts/test built as KEYROLL_BIN, or built here).
#
# promtool comes from Debian's `prometheus` package, installed when missing (about 19 MB to
# download, 96 MB on disk, ~25 s; its server is not started).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${KEYROLL_VENV:-$HOME/.cache/keyroll-venv}
PY=$VENV/bin/python
[ -x "$PY" ] || PY=python3

if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Like scripts/test's packages: the package must not start its own server.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml

BIN=${KEYROLL_BIN:-}
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  cargo build -q -p keyroll --bin keyroll
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$TARGET_DIR/debug/keyroll"
fi
"$PY" scripts/checks.d/monitoring_metrics.py "$BIN"
