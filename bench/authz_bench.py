"""GetSecretValue throughput with and without access control, in one run.

Two `keyroll serve` processes on loopback, alternately loaded with wrk at 64 connections:
  baseline  an admin key, no resource policy, audit trail off
  enforced  a key whose identity policy has 10 statements (conditions included), a resource
            policy on the secret, and the audit trail on (one record per request)
Each is measured --rounds times, interleaved (in reverse order every other round), and the
median is reported, so that other load on the machine affects both alike. Each round's own
enforced/baseline ratio is printed too: on a shared machine whose speed drifts by ±15% within
minutes (the server's CPU time per request of the same binary varies that much), the median
of these paired ratios is the steadier figure.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile

from server_bench import client, lua_for, wrk

ACCOUNT = "000000000000"
REGION = "us-east-1"
ADMIN = ("AKIABENCHADMIN000001", "bench-admin-secret")
APP = ("AKIABENCHAPPKEY00001", "bench-app-secret")


def identity_policy():
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
    st = [
        {"Sid": "DenyHumans", "Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/kind": "human"}}},
        {"Sid": "DenyDelete", "Effect": "Deny", "Action": ["secretsmanager:DeleteSecret",
         "secretsmanager:PutResourcePolicy"], "Resource": "*"},
        {"Sid": "NoPrevious", "Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
         "Resource": "*", "Condition": {"StringEquals": {"secretsmanager:VersionStage": "AWSPREVIOUS"}}},
        {"Sid": "Describe", "Effect": "Allow", "Action": ["secretsmanager:DescribeSecret",
         "secretsmanager:ListSecretVersionIds"], "Resource": arn + "bench/*"},
        {"Sid": "List", "Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"},
        {"Sid": "Tagged", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "*", "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "${aws:PrincipalTag/team}"}}},
        {"Sid": "Loopback", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": arn + "other/*", "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
        {"Sid": "Window", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": arn + "window/*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}},
        {"Sid": "Names", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": [arn + "app/${aws:username}/*", arn + "shared/*"]},
        {"Sid": "Read", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": arn + "bench/*-??????"},
    ]
    return {"Version": "2012-10-17", "Statement": st}


def config(enforced, audit=None):
    keys = f'''
[[access_keys]]
name = "admin"
access_key_id = "{ADMIN[0]}"
secret_access_key = "{ADMIN[1]}"
admin = true
'''
    if enforced:
        keys += f'''
[[access_keys]]
name = "bench-app"
access_key_id = "{APP[0]}"
secret_access_key = "{APP[1]}"
policy = {json.dumps(json.dumps(identity_policy()))}
tags = {{ team = "bench", kind = "service" }}
'''
    audit = enforced if audit is None else audit
    return keys + f"\n[audit]\nenabled = {'true' if audit else 'false'}\n"


def start(binary, enforced, audit=None):
    d = tempfile.mkdtemp(prefix="keyroll-authz-bench-")
    with open(os.path.join(d, "keyroll.toml"), "w") as f:
        f.write(config(enforced, audit))
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", d],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, KEYROLL_LOG="warn"),
    )
    url = None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("keyroll serve exited before printing its address")
        m = re.match(r"keyroll listening on (http://\S+)", line)
        url = m.group(1) if m else url
        if line.startswith("access keys:") or line.startswith("  aws --endpoint-url"):
            break
    admin = client(url, ADMIN)
    admin.create_secret(Name="bench/db", SecretString=json.dumps({"password": "x" * 32}),
                        Tags=[{"Key": "team", "Value": "bench"}])
    if enforced:
        admin.put_resource_policy(SecretId="bench/db", ResourcePolicy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue",
                 "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"},
                                                "StringEquals": {"aws:PrincipalTag/kind": "human"}}},
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/bench-app"},
                 "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
            ]}))
        # Check the enforced key really reads through the policies.
        assert client(url, APP).get_secret_value(SecretId="bench/db")["SecretString"]
    return proc, url, d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyroll", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--split", action="store_true",
                    help="also measure policies without audit and audit without policies")
    args = ap.parse_args()
    servers = {}
    variants = [("baseline", False, False, ADMIN), ("enforced", True, True, APP)]
    if args.split:
        variants += [("policies only", True, False, APP), ("audit only", False, True, ADMIN)]
    try:
        for name, enforced, audit, _ in variants:
            servers[name] = start(args.keyroll, enforced, audit)
        scripts = {name: lua_for(servers[name][1], key, "GetSecretValue", {"SecretId": "bench/db"})
                   for name, _, _, key in variants}
        runs = {name: [] for name, *_ in variants}
        for name in runs:
            wrk(servers[name][1], scripts[name], 8, 2, 1)  # warm-up
        for r in range(args.rounds):
            # Every other round runs the variants in reverse order (ABBA): a machine that
            # speeds up or slows down during the run then favours no variant.
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                proc, url, _ = servers[name]
                runs[name].append(wrk(url, scripts[name], args.connections, args.duration, 1, proc.pid))
        audit_dir = os.path.join(servers["enforced"][2], "audit")
        audit_bytes = sum(os.path.getsize(os.path.join(audit_dir, f)) for f in os.listdir(audit_dir)) \
            if os.path.isdir(audit_dir) else 0
    finally:
        for proc, _, d in servers.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            shutil.rmtree(d, ignore_errors=True)

    def med(name, key):
        vals = [r[key] for r in runs[name] if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    print(json.dumps(runs, indent=2))
    b, e = med("baseline", "rps"), med("enforced", "rps")
    print(f"\n| GetSecretValue, {args.connections} connections (median of {args.rounds}) | requests/s | p50 ms | p99 ms | server CPU µs/req | machine idle | steal | non-2xx |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    labels = {"baseline": "admin key, no resource policy, audit off",
              "enforced": "10-statement identity policy + resource policy + audit on",
              "policies only": "10-statement identity policy + resource policy, audit off",
              "audit only": "admin key, no resource policy, audit on"}
    for name in runs:
        label = labels[name]
        print(f"| {label} | {med(name, 'rps'):,.0f} | {med(name, 'p50_ms'):.3f} | {med(name, 'p99_ms'):.3f} "
              f"| {med(name, 'server_cpu_us_per_req'):.1f} | {med(name, 'machine_idle_pct'):.1f}% | {med(name, 'machine_steal_pct'):.1f}% | {sum(r['non_2xx'] for r in runs[name])} |")
    print(f"\nenforced / baseline: {e / b * 100:.1f}%  (goal ≥ 90%, and ≥ 40,000 req/s)")
    # Each round measures every variant back to back, so a round's own ratio is less exposed
    # to load that comes and goes than the ratio of medians.
    paired = sorted(en["rps"] / ba["rps"] * 100 for ba, en in zip(runs["baseline"], runs["enforced"]))
    print("per round: " + ", ".join(f"{r:.1f}%" for r in paired)
          + f"  (median {statistics.median(paired):.1f}%)")
    for name in runs:
        rps = [r["rps"] for r in runs[name]]
        print(f"  {name}: {min(rps):,.0f}–{max(rps):,.0f} requests/s over {len(rps)} rounds")
    print(f"audit trail written by the enforced server: {audit_bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
