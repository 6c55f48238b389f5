"""STS with the real aws CLI against `keyroll serve`: break-glass end to end.

An admin defines a role that only an MFA'd, justified AssumeRole reaches; `aws sts
assume-role --serial-number … --token-code … --tags Key=Justification,Value=…` works with the
right TOTP code and is refused with a wrong or missing code or without the tag; each
assumption notifies a local webhook receiver (never with a key); the role session works
until it expires and is denied after (the server's and the CLI's clocks are moved forward
with libfaketime, which scripts/test installs).
"""

import base64
import glob
import hashlib
import hmac
import http.server
import json
import os
import re
import struct
import subprocess
import threading
import time

import pytest

from conftest import KeyrollServer, _aws_bin

ACCOUNT = "123456789012"
SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
MFA = f"arn:aws:iam::{ACCOUNT}:mfa/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
ALICE = ("AKIAALICE00000000001", "alice-secret-0000000000000000000000000000")
CAROL = ("AKIACAROL00000000001", "carol-secret-000000000000000000000000000")


def totp(seed, at):
    """RFC 6238: HMAC-SHA1, 30-second steps, 6 digits."""
    key = base64.b32decode(seed)
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[19] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def test_totp_matches_rfc_6238():
    # Appendix B's SHA-1 seed ("12345678901234567890"), last 6 of the 8 digits.
    assert totp(SEED, 59) == "287082"
    assert totp(SEED, 1111111109) == "081804"
    assert totp(SEED, 2000000000) == "279037"


def faketime_lib():
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is not installed (apt-get install faketime; scripts/test does)")
    return found[0]


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps each body."""

    def __init__(self):
        self.bodies = []
        self.arrived = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                with outer.arrived:
                    outer.bodies.append(body)
                    outer.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n, timeout=20):
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= n, timeout)
            return list(self.bodies)

    def close(self):
        self.httpd.shutdown()


CONFIG = f"""
account = "{ACCOUNT}"

[[access_keys]]
access_key_id = "{ALICE[0]}"
secret_access_key = "{ALICE[1]}"
name = "alice"
mfa_totp_secret = "{SEED}"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}}]}}'

[[access_keys]]
access_key_id = "{CAROL[0]}"
secret_access_key = "{CAROL[1]}"
name = "carol"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}}]}}'

[[roles]]
name = "break-glass"
policy = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}]}}'
trusted = ["alice"]
require_mfa = true
required_session_tags = ["Justification"]
max_session_secs = 900
notify = true
"""


class ConfiguredServer(KeyrollServer):
    """`keyroll serve` with keys from its configuration (no credentials file), under
    libfaketime with an offset read from a file (so the test can move its clock)."""

    def __init__(self, data_dir, config_text, hook_url):
        super().__init__(data_dir, config_text)
        self.hook_url = hook_url
        self.offset_file = self.data_dir / "faketime"
        self.offset_file.write_text("+0\n")

    def start(self):
        args = [os.environ.get("KEYROLL_BIN") or pytest.fail("KEYROLL_BIN must be set"),
                "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
                "--config", str(self.config_path)]
        env = dict(os.environ)
        env.setdefault("KEYROLL_LOG", "keyroll=debug,keyroll_server=debug,info")
        env["KEYROLL_NOTIFY_WEBHOOK_URL"] = self.hook_url
        env["LD_PRELOAD"] = faketime_lib()
        env["FAKETIME_TIMESTAMP_FILE"] = str(self.offset_file)
        env["FAKETIME_NO_CACHE"] = "1"
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
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
            if line.startswith("access keys:"):
                break
        if not self.url:
            raise RuntimeError("keyroll serve did not print its address")
        return self

    def move_clock(self, seconds):
        self.offset_file.write_text(f"+{seconds}\n")

    def cli(self, creds, *args, offset=0):
        """The aws CLI with `creds` (key id, secret[, token]); returns the CompletedProcess."""
        env = dict(os.environ)
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(k, None)
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = creds[0], creds[1]
        if len(creds) > 2:
            env["AWS_SESSION_TOKEN"] = creds[2]
        env["AWS_CONFIG_FILE"] = "/dev/null"
        env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = "us-east-1"
        env["AWS_PAGER"] = ""
        if offset:
            env["LD_PRELOAD"] = faketime_lib()
            env["FAKETIME"] = f"+{offset}"
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        cmd = [_aws_bin(), "--endpoint-url", self.url, "--output", "json", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def fresh_code(used):
    """A TOTP code for now that was not used yet (a code works once per device)."""
    while True:
        code = totp(SEED, time.time())
        if code not in used:
            used.add(code)
            return code
        time.sleep(0.5)


@pytest.fixture
def hook():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sts_server(tmp_path, hook):
    s = ConfiguredServer(tmp_path / "data", CONFIG, hook.url).start()
    yield s
    s.stop()


def assume(server, code=None, justification="INC-42 primary DB down", creds=ALICE):
    args = ["sts", "assume-role", "--role-arn", ROLE, "--role-session-name", "incident-42"]
    if code is not None:
        args += ["--serial-number", MFA, "--token-code", code]
    if justification is not None:
        args += ["--tags", f"Key=Justification,Value={justification}"]
    return server.cli(creds, *args)


def test_break_glass_with_the_aws_cli(sts_server, hook):
    s = sts_server
    used = set()

    # Who am I, as the CLI parses it.
    r = s.cli(ALICE, "sts", "get-caller-identity")
    assert r.returncode == 0, r.stderr
    me = json.loads(r.stdout)
    assert me["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert me["Account"] == ACCOUNT

    # Missing code, wrong code, no justification, untrusted caller: refused.
    r = assume(s)
    assert r.returncode != 0
    assert "(AccessDenied)" in r.stderr and "is not authorized to perform: sts:AssumeRole" in r.stderr
    right = totp(SEED, time.time())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    r = assume(s, code=wrong)
    assert r.returncode != 0
    assert "MultiFactorAuthentication failed with invalid MFA one time pass code" in r.stderr
    r = assume(s, code=fresh_code(used), justification=None)
    assert r.returncode != 0 and "(AccessDenied)" in r.stderr
    r = assume(s, code="123456", creds=CAROL)
    assert r.returncode != 0 and "(AccessDenied)" in r.stderr
    assert hook.bodies == []

    # The right code and a justification.
    r = assume(s, code=fresh_code(used))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and len(c["AccessKeyId"]) == 20
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/break-glass/incident-42"
    assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(":incident-42")
    session = (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    # The notification reaches the receiver: who, which role, why; never a key.
    bodies = hook.wait_for(1)
    assert len(bodies) == 1, bodies
    event = json.loads(bodies[0])
    assert event["event"] == "BreakGlassAssumed"
    assert event["roleArn"] == ROLE
    assert event["principalArn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert event["justification"] == "INC-42 primary DB down"
    for secret in session:
        assert secret not in bodies[0]
    assert c["SecretAccessKey"] not in s.logs() and c["SessionToken"] not in s.logs()

    # The session has the role's permissions.
    r = s.cli(session, "secretsmanager", "create-secret", "--name", "bg/one", "--secret-string", "x")
    assert r.returncode == 0, r.stderr
    r = s.cli(session, "sts", "get-caller-identity")
    assert json.loads(r.stdout)["Arn"].endswith(":assumed-role/break-glass/incident-42")

    # After its expiry (900 s; both clocks moved 960 s on) it is denied.
    s.move_clock(960)
    r = s.cli(session, "secretsmanager", "list-secrets", offset=960)
    assert r.returncode != 0
    assert re.search(r"\((ExpiredTokenException|UnrecognizedClientException)\)", r.stderr), r.stderr
    r = s.cli(session, "sts", "get-caller-identity", offset=960)
    assert r.returncode != 0
    assert re.search(r"\((ExpiredToken|InvalidClientTokenId)\)", r.stderr), r.stderr
    # Alice's own key still works at that time.
    r = s.cli(ALICE, "sts", "get-caller-identity", offset=960)
    assert r.returncode == 0, r.stderr

    # The audit trail shows the assumption and every call made with the session.
    s.stop()
    records = []
    for f in sorted((s.data_dir / "audit").glob("keyroll-audit-*.jsonl")):
        records += [json.loads(l) for l in f.read_text().splitlines()]
    assumed = [r for r in records if r["eventName"] == "AssumeRole" and not r.get("errorCode")]
    assert len(assumed) == 1
    a = assumed[0]
    assert a["eventSource"] == "sts.amazonaws.com"
    assert a["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert a["requestParameters"]["RoleArn"] == ROLE
    assert a["requestParameters"]["Tags"] == [{"Key": "Justification", "Value": "INC-42 primary DB down"}]
    assert a["responseElements"]["Credentials"]["AccessKeyId"] == session[0]
    refused = [r for r in records if r["eventName"] == "AssumeRole" and r.get("errorCode")]
    assert len(refused) == 4
    by_session = [r for r in records if r["userIdentity"].get("accessKeyId") == session[0]]
    assert [r["eventName"] for r in by_session] == [
        "CreateSecret", "GetCallerIdentity", "ListSecrets", "GetCallerIdentity"]
    for r in by_session[:2]:
        assert "errorCode" not in r, r
        assert r["userIdentity"]["type"] == "AssumedRole"
        assert r["userIdentity"]["arn"].endswith(":assumed-role/break-glass/incident-42")
        assert r["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"
    # After the expiry: refused at authentication, and recorded as such.
    assert [r.get("errorCode") for r in by_session[2:]] == ["ExpiredTokenException", "ExpiredToken"]
    text = "".join(f.read_text() for f in (s.data_dir / "audit").glob("*"))
    for secret in (session[1], session[2], ALICE[1]):
        assert secret not in text
    assert code_used_not_in(text, used)


def code_used_not_in(text, used):
    """No MFA code that was sent appears in the trail."""
    return all(f'"{c}"' not in text for c in used)
