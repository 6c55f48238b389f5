#!/usr/bin/env python3
"""Measures `keyroll serve` (and moto_server, side by side in the same run) on loopback:

- GetSecretValue requests/s and p50/p99 latency at 1 and 64 connections, with wrk replaying
  one pre-signed request (a SigV4 signature stays valid for the 15-minute skew window, and
  keyroll still verifies it and decrypts the value on every request);
- keyroll's resident memory (VmRSS) with 10,000 secrets;
- ListSecrets p99 latency with 10,000 secrets.

Usage: bench/server.sh (builds the release binary, installs wrk if missing, runs this).
BENCH_WORKERS=N sets the server's tokio worker threads (TOKIO_WORKER_THREADS) for experiments.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

REGION = "us-east-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_keyroll(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, KEYROLL_LOG="warn", **({"TOKIO_WORKER_THREADS": os.environ["BENCH_WORKERS"]} if os.environ.get("BENCH_WORKERS") else {})),
    )
    url = creds = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("keyroll serve exited before printing its address")
        m = re.match(r"keyroll listening on (http://\S+)", line)
        url = m.group(1) if m else url
        m = re.match(r"credentials file: (\S+)", line)
        creds = m.group(1) if m else creds
        if line.startswith("  aws --endpoint-url"):
            break
    import configparser
    c = configparser.ConfigParser()
    c.read(creds)
    return proc, url, (c["default"]["aws_access_key_id"], c["default"]["aws_secret_access_key"])


def start_moto(venv):
    port = free_port()
    moto = os.path.join(venv, "bin", "moto_server")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    return proc, url, ("testing", "testing")


def client(url, key):
    return boto3.client("secretsmanager", endpoint_url=url, region_name=REGION,
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=BotoConfig(retries={"max_attempts": 3}, max_pool_connections=32))


def lua_for(url, key, target, body):
    """A wrk script replaying one SigV4-signed request."""
    data = json.dumps(body)
    req = AWSRequest(method="POST", url=url + "/", data=data, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"secretsmanager.{target}",
    })
    SigV4Auth(Credentials(*key), "secretsmanager", REGION).add_auth(req)
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(data)}"]
    for k, v in req.headers.items():
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    lines.append(f'wrk.headers["Host"] = {json.dumps(url.split("//", 1)[1])}')
    f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    f.write("\n".join(lines) + "\n")
    f.close()
    return f.name


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_seconds(pid):
    """utime + stime of a process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks():
    """(idle, steal, total) clock ticks of the whole machine, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return fields[3] + fields[4], fields[7], sum(fields[:8])


def wrk(url, script, connections, duration, threads, pid=None):
    c0, t0 = (cpu_seconds(pid), time.time()) if pid else (None, None)
    m0 = machine_ticks()
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency",
         "-s", script, url + "/"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(val) * UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    m1 = machine_ticks()
    r = {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "non_2xx": errors,
         # CPU the machine left unused while wrk ran: requests/s only measures the server's
         # cost per request when this stays near 0.
         "machine_idle_pct": round((m1[0] - m0[0]) / max(1, m1[2] - m0[2]) * 100, 1),
         # CPU time the hypervisor gave to someone else: other tenants' load, not keyroll's.
         "machine_steal_pct": round((m1[1] - m0[1]) / max(1, m1[2] - m0[2]) * 100, 1)}
    if pid:
        # Server CPU time per request: less sensitive to other load on the machine.
        r["server_cpu_us_per_req"] = round((cpu_seconds(pid) - c0) / (rps * (time.time() - t0)) * 1e6, 1)
    return r


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def seed(c, n, prefix):
    def one(i):
        c.create_secret(Name=f"{prefix}/{i:05d}",
                        SecretString=json.dumps({"username": f"user{i}", "password": os.urandom(12).hex()}),
                        Tags=[{"Key": "team", "Value": f"t{i % 10}"}])
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, range(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyroll", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--secrets", type=int, default=10_000)
    ap.add_argument("--skip-moto", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    results = {"machine": {"cores": os.cpu_count(), "loadavg_before": os.getloadavg()},
               "keyroll": {}, "moto": {}}
    data_dir = tempfile.mkdtemp(prefix="keyroll-bench-")
    proc, url, key = start_keyroll(args.keyroll, data_dir)
    try:
        c = client(url, key)
        c.create_secret(Name="bench/db", SecretString=json.dumps(
            {"engine": "postgres", "host": "db", "username": "app", "password": os.urandom(16).hex()}))
        results["keyroll"]["rss_mb_idle"] = rss_mb(proc.pid)
        script = lua_for(url, key, "GetSecretValue", {"SecretId": "bench/db"})
        wrk(url, script, 8, 2, 2)  # warm-up
        for conns, threads in [(1, 1), (64, 1)]:
            results["keyroll"][f"get_c{conns}"] = wrk(url, script, conns, args.duration, threads, proc.pid)
        t0 = time.time()
        seed(c, args.secrets, "bulk")
        results["keyroll"]["seed_seconds"] = round(time.time() - t0, 1)
        script = lua_for(url, key, "GetSecretValue", {"SecretId": f"bulk/{args.secrets // 2:05d}"})
        results["keyroll"]["get_c64_10k"] = wrk(url, script, 64, args.duration, 1, proc.pid)
        results["keyroll"]["rss_mb_10k"] = rss_mb(proc.pid)
        script = lua_for(url, key, "ListSecrets", {"MaxResults": 100})
        results["keyroll"]["list_c1_10k"] = wrk(url, script, 1, args.duration, 1)
        script = lua_for(url, key, "ListSecrets",
                         {"Filters": [{"Key": "tag-value", "Values": ["t3"]}], "MaxResults": 100})
        results["keyroll"]["list_filtered_c1_10k"] = wrk(url, script, 1, args.duration, 1)
        results["keyroll"]["rss_mb_after"] = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)

    if not args.skip_moto:
        mproc, murl, mkey = start_moto(args.venv)
        try:
            mc = client(murl, mkey)
            mc.create_secret(Name="bench/db", SecretString=json.dumps({"password": "x" * 32}))
            script = lua_for(murl, mkey, "GetSecretValue", {"SecretId": "bench/db"})
            wrk(murl, script, 8, 2, 2)
            for conns, threads in [(1, 1), (64, 1)]:
                results["moto"][f"get_c{conns}"] = wrk(murl, script, conns, args.duration, threads)
            results["moto"]["rss_mb_idle"] = rss_mb(mproc.pid)
        finally:
            mproc.terminate()
            mproc.wait(timeout=30)

    results["machine"]["loadavg_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    k, m = results["keyroll"], results["moto"]

    def row(name, r):
        return f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['non_2xx']} |"

    print("\n| measurement | requests/s | p50 ms | p99 ms | non-2xx |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(row("keyroll GetSecretValue, 1 connection", k["get_c1"]))
    print(row("keyroll GetSecretValue, 64 connections", k["get_c64"]))
    print(row(f"keyroll GetSecretValue, 64 connections, {args.secrets:,} secrets", k["get_c64_10k"]))
    if m:
        print(row("moto_server GetSecretValue, 1 connection", m["get_c1"]))
        print(row("moto_server GetSecretValue, 64 connections", m["get_c64"]))
    print(row(f"keyroll ListSecrets (100 per page), 1 connection, {args.secrets:,} secrets", k["list_c1_10k"]))
    print(row(f"keyroll ListSecrets tag-value filter, 1 connection, {args.secrets:,} secrets", k["list_filtered_c1_10k"]))
    print(f"\nkeyroll RSS: idle {k['rss_mb_idle']:.1f} MB, with {args.secrets:,} secrets "
          f"{k['rss_mb_10k']:.1f} MB, after the list runs {k['rss_mb_after']:.1f} MB "
          f"(seeding took {k['seed_seconds']} s)")
    print(f"server CPU per GetSecretValue: {k['get_c64']['server_cpu_us_per_req']} µs; "
          f"load average before/after: {results['machine']['loadavg_before'][0]:.2f} / "
          f"{results['machine']['loadavg_after'][0]:.2f}")


if __name__ == "__main__":
    main()
