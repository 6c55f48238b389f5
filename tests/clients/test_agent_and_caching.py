"""Application-side reads: AWS's Python caching library (aws-secretsmanager-caching) against
`keyroll serve`, `keyroll agent`'s HTTP API from Python, and seed 001's application example
(boto3 + psycopg2, code unchanged) against `keyroll serve` and against `keyroll agent`, both
reached through the standard AWS_ENDPOINT_URL variable only."""

import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import boto3
import psycopg2
import pytest
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

from conftest import KeyrollServer, REGION, _keyroll_bin, rotator_config, wait_for

SSRF_TOKEN = "agent-test-token-" + os.urandom(8).hex()


# Seed 001's application example, exactly as the seed gives it.
def get_database_connection():
    client = boto3.client('secretsmanager')

    # Always fetch AWSCURRENT
    response = client.get_secret_value(SecretId='prod/rds/admin')
    secret = json.loads(response['SecretString'])

    # Connect to database with current password
    conn = psycopg2.connect(
        host=secret['host'],
        port=secret['port'],
        user=secret['username'],
        password=secret['password'],
        dbname=secret['dbname']
    )
    return conn


class Agent:
    """A `keyroll agent` child process in front of a keyroll server."""

    def __init__(self, server, tmp_path):
        key_id, secret = server.keys()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_TOKEN": SSRF_TOKEN,
        })
        self.log_path = tmp_path / "agent.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [_keyroll_bin(), "agent", "--endpoint-url", server.url, "--port", "0"],
            env=env, stdout=self._log, stderr=subprocess.PIPE, text=True)
        self.url = None
        for line in self.proc.stderr:
            self._log.write(line)
            m = re.search(r"keyroll agent listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            raise RuntimeError(f"keyroll agent did not start: {self.log_path.read_text()}")

    def get(self, path, token=SSRF_TOKEN, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["X-Aws-Parameters-Secrets-Token"] = token
        req = urllib.request.Request(self.url + path, headers=h)
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def server(tmp_path):
    s = KeyrollServer(tmp_path / "data", rotator_config()).start()
    yield s
    s.stop()


@pytest.fixture
def agent(server, tmp_path):
    a = Agent(server, tmp_path)
    yield a
    a.stop()


def test_aws_caching_library_against_keyroll_serve(server):
    client = server.client()
    client.create_secret(Name="app/api-key", SecretString="first")
    cache = SecretCache(config=SecretCacheConfig(secret_refresh_interval=1), client=client)
    assert cache.get_secret_string("app/api-key") == "first"
    client.put_secret_value(SecretId="app/api-key", SecretString="second")
    # The library re-reads after its refresh interval (DescribeSecret, then GetSecretValue).
    wait_for(lambda: cache.get_secret_string("app/api-key") == "second", timeout=15)
    assert cache.get_secret_string("app/api-key", version_stage="AWSPREVIOUS") == "first"
    client.create_secret(Name="app/blob", SecretBinary=b"\x00\x01binary")
    assert cache.get_secret_binary("app/blob") == b"\x00\x01binary"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        cache.get_secret_string("app/missing")


def test_agent_http_api_from_python(server, agent):
    client = server.client()
    arn = client.create_secret(Name="svc/token", SecretString="t1")["ARN"]
    assert agent.get("/ping", token=None) == (200, "healthy")
    assert agent.get("/secretsmanager/get?secretId=svc/token", token=None) == (403, "Bad Token")
    assert agent.get("/secretsmanager/get?secretId=svc/token", token="wrong") == (403, "Bad Token")
    assert agent.get("/v1/svc/token", headers={"X-Forwarded-For": "1.2.3.4"}) == (400, "Forwarded")
    status, body = agent.get("/secretsmanager/get?secretId=svc/token")
    assert status == 200, body
    v = json.loads(body)
    assert (v["ARN"], v["Name"], v["SecretString"], v["VersionStages"]) == (
        arn, "svc/token", "t1", ["AWSCURRENT"])
    status, body = agent.get("/v1/nope")
    assert status == 400 and json.loads(body)["__type"] == "ResourceNotFoundException"
    # keyroll serve's change feed: a new value is served without refreshNow, before the TTL.
    client.put_secret_value(SecretId="svc/token", SecretString="t2")
    wait_for(lambda: json.loads(agent.get("/v1/svc/token")[1])["SecretString"] == "t2",
             timeout=5, interval=0.02)


def _point_boto3_at(monkeypatch, url, key_id, secret, session_token=None):
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    if session_token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    # A new process would read the environment afresh: forget boto3's default session.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def _seed_secret(server, postgres):
    postgres.create_role("adminuser", "initial-secure-password")
    server.client().create_secret(Name="prod/rds/admin", SecretString=json.dumps({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": postgres.port,
        "username": "adminuser",
        "password": "initial-secure-password",
        "dbname": "postgres",
    }))


def _check_connection():
    conn = get_database_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user")
            assert cur.fetchone()[0] == "adminuser"
    finally:
        conn.close()


def test_seed_001_example_against_serve_and_agent(server, agent, postgres, monkeypatch):
    _seed_secret(server, postgres)
    key_id, secret = server.keys()
    # Against keyroll serve.
    _point_boto3_at(monkeypatch, server.url, key_id, secret)
    _check_connection()
    # Against keyroll agent: boto3 sends AWS_SESSION_TOKEN as X-Amz-Security-Token, which the
    # agent accepts as its SSRF token (the agent's AWS_TOKEN here).
    _point_boto3_at(monkeypatch, agent.url, "AKIAAPPLICATION00001", "unused", SSRF_TOKEN)
    _check_connection()
    # Without the token the agent refuses the SDK's call.
    _point_boto3_at(monkeypatch, agent.url, "AKIAAPPLICATION00001", "unused", "wrong-token")
    with pytest.raises(Exception) as e:
        get_database_connection()
    assert "AccessDenied" in str(e.value)
