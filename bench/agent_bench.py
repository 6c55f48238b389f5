"""keyroll agent against AWS's Secrets Manager Agent, both in front of one `keyroll serve`.

1. Cached reads of one secret at 64 connections (wrk, --latency), the two agents alternating
   for --rounds rounds: req/s, p50, p99.
2. TTL churn: --duration seconds of reads at 64 connections with ttl_seconds = 1 on one secret;
   upstream calls (GetSecretValue + DescribeSecret, from keyroll serve's /metrics) against
   the ideal (one call per TTL period).
3. RSS of each agent after reading 1,000 secrets (cache_size 1000).

Run through bench/agent.sh.
"""

import argparse
import concurrent.futures
import configparser
import json
import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config as BotoConfig

TOKEN = "bench-ssrf-token-0123456789abcdef"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--in-memory"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, KEYROLL_LOG="warn"),
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
    c = configparser.ConfigParser()
    c.read(creds)
    return proc, url, (c["default"]["aws_access_key_id"], c["default"]["aws_secret_access_key"])


def agent_env(url, key):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": key[0],
        "AWS_SECRET_ACCESS_KEY": key[1],
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_TOKEN": TOKEN,
        "KEYROLL_LOG": "warn",
    })
    return env


def wait_ping(port):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"agent on port {port} did not start")


def start_agent(kind, binary, url, key, workdir, ttl):
    port = free_port()
    conf = os.path.join(workdir, f"{kind}-{ttl}.toml")
    with open(conf, "w") as f:
        f.write(f'http_port = "{port}"\nttl_seconds = "{ttl}"\ncache_size = "1000"\n'
                f'validate_credentials = false\nlog_level = "ERROR"\n')
        if kind == "aws":
            f.write("log_to_file = false\n")
    if kind == "keyroll":
        args = [binary, "agent", "--config", conf]
    else:
        args = [binary, "--config", conf]
    proc = subprocess.Popen(args, env=agent_env(url, key), cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ping(port)
    return proc, port


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(port, secret_id):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/secretsmanager/get?secretId={secret_id}",
                                 headers={"X-Aws-Parameters-Secrets-Token": TOKEN})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def wrk(port, path, connections, duration):
    script = os.path.join(tempfile.gettempdir(), "agent-bench.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "GET"\nwrk.headers["X-Aws-Parameters-Secrets-Token"] = "{TOKEN}"\n')
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(val) * UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non_2xx": int(bad.group(1)) if bad else 0}


def upstream_calls(url):
    with urllib.request.urlopen(url + "/metrics") as r:
        text = r.read().decode()
    calls = {}
    for op, n in re.findall(
            r'^keyroll_requests_total\{operation="(GetSecretValue|DescribeSecret)",outcome="success"\} (\d+)',
            text, re.M):
        calls[op] = calls.get(op, 0) + int(n)
    return calls


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyroll", required=True)
    ap.add_argument("--aws-agent", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    binaries = {"keyroll": args.keyroll, "aws": args.aws_agent}
    work = tempfile.mkdtemp(prefix="agent-bench-")
    serve, url, key = start_serve(args.keyroll, os.path.join(work, "data"))
    try:
        c = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1",
                         aws_access_key_id=key[0], aws_secret_access_key=key[1],
                         config=BotoConfig(retries={"max_attempts": 1}))
        c.create_secret(Name="bench/hot", SecretString=json.dumps({"password": "x" * 32}))

        def one(i):
            c.create_secret(Name=f"bench/s{i:04d}", SecretString=json.dumps(
                {"username": f"user{i}", "password": os.urandom(16).hex()}))
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(1000)))

        # 1. Cached reads.
        results = {"keyroll": [], "aws": []}
        agents = {k: start_agent(k, b, url, key, work, 300) for k, b in binaries.items()}
        for _, port in agents.values():
            get(port, "bench/hot")
        for _ in range(args.rounds):
            for kind in ("aws", "keyroll"):
                results[kind].append(wrk(agents[kind][1], "/secretsmanager/get?secretId=bench/hot",
                                         args.connections, args.duration))
        # 3. RSS with 1,000 cached secrets.
        rss = {}
        for kind, (proc, port) in agents.items():
            for i in range(1000):
                get(port, f"bench/s{i:04d}")
            rss[kind] = rss_mb(proc.pid)
        for proc, _ in agents.values():
            stop(proc)

        # 2. TTL churn (one agent at a time, ttl_seconds = 1).
        churn = {}
        for kind in ("aws", "keyroll"):
            proc, port = start_agent(kind, binaries[kind], url, key, work, 1)
            before = upstream_calls(url)
            t0 = time.time()
            w = wrk(port, "/secretsmanager/get?secretId=bench/hot", args.connections, args.duration)
            elapsed = time.time() - t0
            after = upstream_calls(url)
            stop(proc)
            churn[kind] = {
                "upstream": {op: after.get(op, 0) - before.get(op, 0) for op in after},
                "ideal": math.ceil(elapsed / 1.0),
                "rps": w["rps"],
                "non_2xx": w["non_2xx"],
            }
    finally:
        stop(serve)

    def best(kind):
        return max(results[kind], key=lambda r: r["rps"])

    print(json.dumps({"reads": results, "churn": churn, "rss_mb": rss}, indent=1))
    k, a = best("keyroll"), best("aws")
    print()
    print(f"| agent | req/s (best of {args.rounds}) | p50 ms | p99 ms | non-2xx |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in (("keyroll agent", k), ("AWS agent", a)):
        print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['non_2xx']} |")
    print(f"\nthroughput ratio keyroll/AWS: {k['rps'] / a['rps']:.2f}x")
    print("\n| agent | GetSecretValue | DescribeSecret | ideal | req/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, kind in (("keyroll agent", "keyroll"), ("AWS agent", "aws")):
        u = churn[kind]["upstream"]
        print(f"| {name} | {u.get('GetSecretValue', 0)} | {u.get('DescribeSecret', 0)} | "
              f"{churn[kind]['ideal']} | {churn[kind]['rps']:.0f} |")
    print(f"\nRSS with 1,000 cached secrets: keyroll agent {rss['keyroll']:.1f} MiB, "
          f"AWS agent {rss['aws']:.1f} MiB")


if __name__ == "__main__":
    main()
