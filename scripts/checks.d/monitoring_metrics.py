"""Every metric that deploy/prometheus/alerts.yml and deploy/grafana/keyroll.json query must be
one `keyroll serve` really exports: run by scripts/checks.d/monitoring.sh.

Starts the server (KEYROLL_BIN) twice on a free loopback port, with and without
`metrics_secret_labels` (the two sets of per-secret / per-region gauges), reads GET /metrics,
and collects the metric names (`# TYPE` lines; a histogram also has _bucket, _sum, _count).

Usage: python monitoring_metrics.py KEYROLL_BIN
"""

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

BIN = sys.argv[1]
NAME = re.compile(r"\bkeyroll_[A-Za-z0-9_]+")


def exported(secret_labels):
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "keyroll.toml"
        cfg.write_text(f"metrics_secret_labels = {'true' if secret_labels else 'false'}\n")
        proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(Path(d) / "data"), "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = None
            deadline = time.time() + 30
            while url is None and time.time() < deadline:
                line = proc.stdout.readline()
                if not line:
                    if proc.poll() is not None:
                        sys.exit(f"keyroll serve exited with {proc.returncode} before listening")
                    continue
                m = re.match(r"keyroll listening on (http://\S+)", line.strip())
                if m:
                    url = m.group(1)
            if url is None:
                sys.exit("keyroll serve did not print its address within 30 s")
            with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
                text = r.read().decode()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            name, kind = m.groups()
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
            elif kind == "summary":
                names.update({name + "_sum", name + "_count"})
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "query", "definition") and isinstance(v, str):
                yield v
            else:
                yield from strings(v)
    elif isinstance(node, list):
        for x in node:
            yield from strings(x)


available = exported(True) | exported(False)
failures = []
for required in ("keyroll_rotations_total", "keyroll_secret_rotation_failing", "keyroll_oldest_rotation_seconds"):
    if required not in available:
        failures.append(f"the server's /metrics lacks {required}: is KEYROLL_BIN a current build?")

with open("deploy/prometheus/alerts.yml") as f:
    alerts = yaml.safe_load(f)
with open("deploy/grafana/keyroll.json") as f:
    dashboard = json.load(f)  # fails the check if it is not valid JSON

for source, doc in (("deploy/prometheus/alerts.yml", alerts), ("deploy/grafana/keyroll.json", dashboard)):
    used = set()
    exprs = list(strings(doc))
    for e in exprs:
        used.update(NAME.findall(e))
    if not used:
        failures.append(f"{source}: no keyroll_ metric found in {len(exprs)} expressions")
    for name in sorted(used - available):
        failures.append(f"{source} queries {name}, which keyroll serve does not export")
    if not (used - available):
        print(f"{source}: {len(exprs)} expressions, {len(used)} metrics, all exported")

if failures:
    print("monitoring checks FAILED:", *failures, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"monitoring checks passed ({len(available)} metric names exported)")
