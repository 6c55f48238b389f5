"""Fixtures for the client tests: a `keyroll serve` process on a free port, boto3 clients and
the aws CLI pointed at it, and a throwaway PostgreSQL server.

Environment (set by scripts/test):
  KEYROLL_BIN   the keyroll binary (debug build)
  KEYROLL_VENV  the venv holding boto3, awscli and pytest (aws CLI at $KEYROLL_VENV/bin/aws)
  PATH          includes PostgreSQL's bin directory (initdb, postgres) and psql
"""

import configparser
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib.error
import urllib.request

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"


def _keyroll_bin():
    b = os.environ.get("KEYROLL_BIN")
    if not b or not Path(b).exists():
        pytest.fail("KEYROLL_BIN must point at the keyroll binary (scripts/test sets it)")
    return b


def _aws_bin():
    venv = os.environ.get("KEYROLL_VENV") or str(Path(sys.executable).parent.parent)
    aws = Path(venv) / "bin" / "aws"
    if not aws.exists():
        found = shutil.which("aws")
        if not found:
            pytest.fail("the aws CLI is not installed in KEYROLL_VENV")
        return found
    return str(aws)


class KeyrollServer:
    """A `keyroll serve` child process."""

    def __init__(self, data_dir, config_text=None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "server.log"
        self.config_path = None
        if config_text is not None:
            self.config_path = self.data_dir / "keyroll.toml"
            self.config_path.write_text(config_text)
        self.proc = None
        self.url = None
        self.credentials_file = None

    def start(self):
        args = [_keyroll_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.config_path:
            args += ["--config", str(self.config_path)]
        env = dict(os.environ)
        env.setdefault("KEYROLL_LOG", "keyroll=debug,keyroll_server=debug,keyroll_core=debug,keyroll_targets=debug,info")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"keyroll serve exited: {self.log_path.read_text()}")
                continue
            m = re.match(r"keyroll listening on (http://\S+)", line.strip())
            if m:
                self.url = m.group(1)
            m = re.match(r"credentials file: (\S+)", line.strip())
            if m:
                self.credentials_file = m.group(1)
            if line.startswith("  aws --endpoint-url"):
                break
            if line.startswith("access keys: from the configuration file"):
                self.configured_keys = True
                break
        if not self.url or not (self.credentials_file or getattr(self, "configured_keys", False)):
            raise RuntimeError("keyroll serve did not print its address and credentials file")
        return self

    def keys(self):
        c = configparser.ConfigParser()
        c.read(self.credentials_file)
        return c["default"]["aws_access_key_id"], c["default"]["aws_secret_access_key"]

    def client(self, region=REGION, **kw):
        key_id, secret = self.keys()
        return boto3.client(
            "secretsmanager",
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=kw.get("key_id", key_id),
            aws_secret_access_key=kw.get("secret", secret),
            config=BotoConfig(retries={"max_attempts": 1}),
        )

    def cli_env(self):
        env = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
        env["AWS_SHARED_CREDENTIALS_FILE"] = self.credentials_file
        env["AWS_CONFIG_FILE"] = "/dev/null"
        env["AWS_DEFAULT_REGION"] = REGION
        env["AWS_REGION"] = REGION
        env["AWS_PAGER"] = ""
        return env

    def aws(self, *args, check=True):
        """Runs the aws CLI with --endpoint-url added. Returns parsed JSON (or text)."""
        cmd = [_aws_bin(), "--endpoint-url", self.url, *args]
        r = subprocess.run(cmd, env=self.cli_env(), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        if r.returncode != 0:
            return r
        out = r.stdout.strip()
        try:
            return json.loads(out) if out else None
        except json.JSONDecodeError:
            return out

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


def rotator_config(extra=""):
    """A keyroll.toml mapping the test rotation functions."""
    py = sys.executable
    return f"""
[functions.SecretsRotationFunction]
builtin = true

[functions.api-key-rotator]
command = ["{py}", "{HERE / 'rotators' / 'api_key_rotator.py'}"]
timeout_secs = 60
{extra}
"""


@pytest.fixture
def server(tmp_path):
    s = KeyrollServer(tmp_path / "data", rotator_config()).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    return server.client()


def wait_for(fn, timeout=30, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not reached in {timeout}s (last: {last!r})")


def wait_rotation_done(client, secret_id, token=None, timeout=60, server=None):
    """Waits until no AWSPENDING is left (and `token`, if given, is AWSCURRENT); with
    `server`, fails fast when keyroll records the rotation as failed."""

    def done():
        d = client.describe_secret(SecretId=secret_id)
        stages = d.get("VersionIdsToStages", {})
        if server is not None:
            status = rotation_status(server, secret_id)
            if status.get("State") == "Failed":
                raise AssertionError(f"rotation failed: {status}")
        pending = any("AWSPENDING" in s for s in stages.values())
        if token is not None:
            return d if "AWSCURRENT" in stages.get(token, []) and not pending else None
        return d if not pending and d.get("LastRotatedDate") else None

    return wait_for(done, timeout=timeout)


def raw(server, target, body, sign=True, key=None):
    """A request as the SDKs send it, but with exactly the body given."""
    data = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else (
        body.encode() if isinstance(body, str) else body)
    req = AWSRequest(method="POST", url=server.url + "/", data=data, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"secretsmanager.{target}",
    })
    if sign:
        kid, secret = key or server.keys()
        SigV4Auth(Credentials(kid, secret), "secretsmanager", REGION).add_auth(req)
    r = urllib.request.Request(req.url, data=data, headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def rotation_status(server, secret_id):
    """keyroll's KeyrollRotationStatus (boto3 drops members its model does not know)."""
    status, body = raw(server, "DescribeSecret", {"SecretId": secret_id})
    assert status == 200, body
    return body.get("KeyrollRotationStatus", {})


# ---- PostgreSQL ----------------------------------------------------------------------------

PG_BIN_CANDIDATES = ["/usr/lib/postgresql/15/bin"]


def _pg_tool(name):
    for d in PG_BIN_CANDIDATES:
        p = Path(d) / name
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install postgresql-15 (scripts/test does)")
    return found


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="keyroll-pytest-pg-"))
        self.port = _free_port()
        self.password = "superuser-" + os.urandom(8).hex()
        self.as_user = []
        if os.geteuid() == 0:
            acct = pwd.getpwnam("postgres")
            os.chown(self.dir, acct.pw_uid, acct.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password)
        if self.as_user:
            os.chown(pwfile, acct.pw_uid, acct.pw_gid)
        subprocess.run(
            self.as_user
            + [_pg_tool("initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
               "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )
        self.log = open(self.dir / "postgres.log", "wb")
        self.proc = subprocess.Popen(
            self.as_user
            + [_pg_tool("postgres"), "-D", str(self.dir / "data"), "-p", str(self.port),
               "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
               "-c", "fsync=off", "-c", "shared_buffers=16MB"],
            stdout=self.log, stderr=self.log,
        )
        wait_for(lambda: self.try_login("postgres", self.password), timeout=30, interval=0.2)

    def psql(self, user, password, sql, check=True):
        env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
        return subprocess.run(
            [_pg_tool("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
             "-d", "postgres", "-tAc", sql],
            env=env, capture_output=True, text=True, check=check,
        )

    def try_login(self, user, password):
        return self.psql(user, password, "select 1", check=False).returncode == 0

    def create_role(self, name, password):
        self.psql("postgres", self.password, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres()
    yield pg
    pg.stop()
