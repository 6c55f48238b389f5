"""`keyroll serve` under slow clients: N connections send a request head and then one body
byte per second while a boto3 client keeps calling GetSecretValue; reports that client's
latencies and the server process's peak RSS (VmRSS, sampled every 50 ms).

    python bench/slow_clients.py --keyroll target/debug/keyroll [--connections 1100]
        [--deadline 2] [--duration 8]

Everything runs on 127.0.0.1. Needs boto3.
"""

import argparse
import configparser
import datetime
import os
import re
import resource
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyroll", required=True)
    ap.add_argument("--connections", type=int, default=1100)
    ap.add_argument("--deadline", type=int, default=2)
    ap.add_argument("--duration", type=float, default=8.0)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.connections + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    data = Path(tempfile.mkdtemp(prefix="keyroll-slow-"))
    (data / "keyroll.toml").write_text(f"request_deadline_secs = {a.deadline}\n")
    proc = subprocess.Popen(
        [a.keyroll, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = None
    for line in proc.stdout:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, "keyroll did not start"
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    creds = configparser.ConfigParser()
    creds.read(data / "credentials")
    key_id = creds["default"]["aws_access_key_id"]
    secret = creds["default"]["aws_secret_access_key"]
    client = boto3.client(
        "secretsmanager",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=BotoConfig(retries={"mode": "standard"}, read_timeout=60),
    )
    client.create_secret(Name="db", SecretString="v")

    peak = [rss_mb(proc.pid)]
    idle_rss = peak[0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(proc.pid))
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()

    host = url.removeprefix("http://")
    hostname, port = host.rsplit(":", 1)
    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n"
        f"X-Amz-Target: secretsmanager.ListSecrets\r\nX-Amz-Date: {amz}\r\n"
        f"Authorization: AWS4-HMAC-SHA256 Credential={key_id}/{amz[:8]}/us-east-1/"
        f"secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;"
        f"x-amz-target, Signature={'0' * 64}\r\nContent-Length: 1000\r\n\r\n{{"
    ).encode()
    t_open = time.monotonic()
    socks = []
    for _ in range(a.connections):
        s = socket.create_connection((hostname, int(port)))
        s.sendall(head)
        s.setblocking(False)
        socks.append(s)
    opened = time.monotonic() - t_open

    def dribble():
        while not stop.is_set():
            time.sleep(1)
            for s in list(socks):
                try:
                    s.send(b" ")
                except OSError:
                    socks.remove(s)
                    s.close()

    threading.Thread(target=dribble, daemon=True).start()

    latencies = []
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        t0 = time.monotonic()
        assert client.get_secret_value(SecretId="db")["SecretString"] == "v"
        latencies.append(time.monotonic() - t0)
        time.sleep(0.25)
    stop.set()
    metrics = urllib.request.urlopen(url + "/metrics").read().decode()
    closed = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r'keyroll_connections_closed_total\{reason="(\w+)"\} (\d+)', metrics)
    }
    proc.terminate()
    proc.wait(timeout=30)
    first = latencies[0]
    latencies.sort()
    print(f"connections: {a.connections} opened in {opened:.2f} s; request deadline {a.deadline} s")
    print(
        f"GetSecretValue while they dribble: {len(latencies)} calls, first {first * 1000:.1f} ms, "
        f"median {latencies[len(latencies) // 2] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    print(f"server RSS: {idle_rss:.1f} MB before, peak {peak[0]:.1f} MB")
    print(f"closed before authenticating: {closed}; still open on the client side: {len(socks)}")


if __name__ == "__main__":
    main()
