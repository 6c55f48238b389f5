"""Access control with unmodified AWS clients: identity policies on configured keys, resource
policies, tag conditions, seed 002's VersionStage condition and BlockPublicPolicy — each
answered with AWS's AccessDeniedException and message."""

import json
import subprocess

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from conftest import REGION, KeyrollServer, _aws_bin, _keyroll_bin

ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"

KEYS = {
    "ops": ("AKIAOPSOPSOPSOPS0001", "ops-secret-key"),
    "app": ("AKIAAPPAPPAPPAPP0001", "app-secret-key"),
    "payments-svc": ("AKIAPAYPAYPAYPAY0001", "payments-secret-key"),
    "reader": ("AKIAREADREADREAD0001", "reader-secret-key"),
    "staging-svc": ("AKIASTAGESTAGESTAG01", "staging-secret-key"),
}


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


APP_POLICY = policy(
    {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": ARN_PREFIX + "prod/app/*",
    },
    {"Effect": "Allow", "Action": "secretsmanager:BatchGetSecretValue", "Resource": "*"},
)
# Reads secrets whose `team` tag is the caller's own `team` tag.
TEAM_POLICY = policy({
    "Effect": "Allow",
    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
    "Resource": "*",
    "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "${aws:PrincipalTag/team}"}},
})
# Reads secrets tagged env=staging only.
STAGING_POLICY = policy({
    "Effect": "Allow",
    "Action": "secretsmanager:GetSecretValue",
    "Resource": "*",
    "Condition": {"StringEquals": {"secretsmanager:ResourceTag/env": "staging"}},
})
# Seed 002: applications read only AWSCURRENT (and AWSPENDING during rotation).
SEED_002_POLICY = policy({
    "Effect": "Allow",
    "Action": "secretsmanager:GetSecretValue",
    "Resource": "*",
    "Condition": {"StringEquals": {"secretsmanager:VersionStage": ["AWSCURRENT", "AWSPENDING"]}},
})


def toml_str(s):
    return json.dumps(s)


def config():
    return f"""
[[access_keys]]
name = "ops"
access_key_id = "{KEYS['ops'][0]}"
secret_access_key = "{KEYS['ops'][1]}"
admin = true

[[access_keys]]
name = "app"
access_key_id = "{KEYS['app'][0]}"
secret_access_key = "{KEYS['app'][1]}"
policy = {toml_str(APP_POLICY)}

[[access_keys]]
name = "payments-svc"
access_key_id = "{KEYS['payments-svc'][0]}"
secret_access_key = "{KEYS['payments-svc'][1]}"
policy = {toml_str(TEAM_POLICY)}
tags = {{ team = "payments" }}

[[access_keys]]
name = "reader"
access_key_id = "{KEYS['reader'][0]}"
secret_access_key = "{KEYS['reader'][1]}"
policy = "file://reader-policy.json"

[[access_keys]]
name = "staging-svc"
access_key_id = "{KEYS['staging-svc'][0]}"
secret_access_key = "{KEYS['staging-svc'][1]}"
policy = {toml_str(STAGING_POLICY)}
"""


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("acl") / "data"
    d.mkdir()
    (d / "reader-policy.json").write_text(SEED_002_POLICY)
    s = KeyrollServer(d, config()).start()
    yield s
    s.stop()


def client_for(server, name):
    kid, secret = KEYS[name]
    return boto3.client(
        "secretsmanager",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=kid,
        aws_secret_access_key=secret,
        config=BotoConfig(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def secrets(acl_server):
    ops = client_for(acl_server, "ops")
    made = {}
    for name, tags in [
        ("prod/app/db", [{"Key": "team", "Value": "app"}]),
        ("prod/other/db", [{"Key": "team", "Value": "other"}]),
        ("prod/payments/api", [{"Key": "team", "Value": "payments"}]),
    ]:
        made[name] = ops.create_secret(Name=name, SecretString=f"value-of-{name}", Tags=tags)["ARN"]
    return made


def denied(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDeniedException", err
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err["Message"]


def test_app_key_reads_only_its_secrets(acl_server, secrets):
    app = client_for(acl_server, "app")
    assert app.get_secret_value(SecretId="prod/app/db")["SecretString"] == "value-of-prod/app/db"
    msg = denied(app.put_secret_value, SecretId="prod/app/db", SecretString="x")
    arn = secrets["prod/app/db"]
    assert msg == (
        f"User: arn:aws:iam::{ACCOUNT}:user/app is not authorized to perform: "
        f"secretsmanager:PutSecretValue on resource: {arn} because no identity-based policy "
        "allows the secretsmanager:PutSecretValue action"
    )
    denied(app.get_secret_value, SecretId="prod/other/db")
    denied(app.list_secrets)
    # The same with the aws CLI.
    env = acl_server.cli_env()
    env.pop("AWS_SHARED_CREDENTIALS_FILE", None)
    env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = KEYS["app"]
    r = subprocess.run(
        [_aws_bin(), "--endpoint-url", acl_server.url, "secretsmanager", "put-secret-value",
         "--secret-id", "prod/app/db", "--secret-string", "x"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0
    assert "AccessDeniedException" in r.stderr
    assert "is not authorized to perform: secretsmanager:PutSecretValue" in r.stderr
    r = subprocess.run(
        [_aws_bin(), "--endpoint-url", acl_server.url, "secretsmanager", "get-secret-value",
         "--secret-id", "prod/app/db"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["SecretString"] == "value-of-prod/app/db"


def test_a_missing_secret_is_access_denied_without_permission(acl_server, secrets):
    app = client_for(acl_server, "app")
    # Allowed by the policy: the caller learns it does not exist.
    with pytest.raises(ClientError) as e:
        app.get_secret_value(SecretId="prod/app/missing")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Not allowed: nothing is revealed.
    denied(app.get_secret_value, SecretId="prod/else/missing")


def test_resource_policy_deny_overrides_identity_allow(acl_server, secrets):
    ops = client_for(acl_server, "ops")
    app = client_for(acl_server, "app")
    ops.create_secret(Name="prod/app/locked", SecretString="locked")
    assert app.get_secret_value(SecretId="prod/app/locked")["SecretString"] == "locked"
    ops.put_resource_policy(
        SecretId="prod/app/locked",
        ResourcePolicy=policy({
            "Effect": "Deny",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/app"},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        }),
    )
    msg = denied(app.get_secret_value, SecretId="prod/app/locked")
    assert msg.endswith("with an explicit deny in a resource-based policy"), msg
    # The admin is denied too when the deny names everyone (as AdministratorAccess would be).
    ops.put_resource_policy(
        SecretId="prod/app/locked",
        ResourcePolicy=policy({
            "Effect": "Deny",
            "Principal": "*",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        }),
    )
    denied(ops.get_secret_value, SecretId="prod/app/locked")
    ops.delete_resource_policy(SecretId="prod/app/locked")
    assert ops.get_secret_value(SecretId="prod/app/locked")["SecretString"] == "locked"


def test_resource_policy_allow_grants_within_the_account(acl_server, secrets):
    ops = client_for(acl_server, "ops")
    app = client_for(acl_server, "app")
    ops.create_secret(Name="shared/config", SecretString="shared")
    denied(app.get_secret_value, SecretId="shared/config")
    ops.put_resource_policy(
        SecretId="shared/config",
        ResourcePolicy=policy({
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/app"},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        }),
    )
    assert app.get_secret_value(SecretId="shared/config")["SecretString"] == "shared"


def test_tag_conditions_decide(acl_server, secrets):
    pay = client_for(acl_server, "payments-svc")
    ops = client_for(acl_server, "ops")
    assert pay.get_secret_value(SecretId="prod/payments/api")["SecretString"].startswith("value-of")
    denied(pay.get_secret_value, SecretId="prod/other/db")
    denied(pay.describe_secret, SecretId="prod/app/db")
    # Retagging the secret changes the decision.
    ops.tag_resource(SecretId="prod/other/db", Tags=[{"Key": "team", "Value": "payments"}])
    assert pay.get_secret_value(SecretId="prod/other/db")
    ops.tag_resource(SecretId="prod/other/db", Tags=[{"Key": "team", "Value": "other"}])
    denied(pay.get_secret_value, SecretId="prod/other/db")


def test_resource_env_tag_decides(acl_server, secrets):
    ops = client_for(acl_server, "ops")
    stg = client_for(acl_server, "staging-svc")
    ops.create_secret(Name="svc/staging", SecretString="s", Tags=[{"Key": "env", "Value": "staging"}])
    ops.create_secret(Name="svc/prod", SecretString="p", Tags=[{"Key": "env", "Value": "prod"}])
    ops.create_secret(Name="svc/untagged", SecretString="u")
    assert stg.get_secret_value(SecretId="svc/staging")["SecretString"] == "s"
    denied(stg.get_secret_value, SecretId="svc/prod")
    denied(stg.get_secret_value, SecretId="svc/untagged")


def test_seed_002_version_stage_condition(acl_server, secrets):
    ops = client_for(acl_server, "ops")
    reader = client_for(acl_server, "reader")
    ops.create_secret(Name="seed002/db", SecretString="v1")
    ops.put_secret_value(SecretId="seed002/db", SecretString="v2")
    assert reader.get_secret_value(SecretId="seed002/db")["SecretString"] == "v2"
    assert reader.get_secret_value(SecretId="seed002/db", VersionStage="AWSCURRENT")["SecretString"] == "v2"
    msg = denied(reader.get_secret_value, SecretId="seed002/db", VersionStage="AWSPREVIOUS")
    assert "secretsmanager:GetSecretValue" in msg
    # By version id: the version's stages decide.
    versions = ops.list_secret_version_ids(SecretId="seed002/db")["Versions"]
    previous = next(v["VersionId"] for v in versions if "AWSPREVIOUS" in v.get("VersionStages", []))
    denied(reader.get_secret_value, SecretId="seed002/db", VersionId=previous)


def test_batch_get_reports_denied_secrets_in_errors(acl_server, secrets):
    app = client_for(acl_server, "app")
    r = app.batch_get_secret_value(SecretIdList=["prod/app/db", "prod/other/db"])
    assert [v["Name"] for v in r["SecretValues"]] == ["prod/app/db"]
    assert len(r["Errors"]) == 1
    assert r["Errors"][0]["SecretId"] == "prod/other/db"
    assert r["Errors"][0]["ErrorCode"] == "AccessDeniedException"
    # BatchGetSecretValue itself needs an identity allow on "*".
    reader = client_for(acl_server, "reader")
    denied(reader.batch_get_secret_value, SecretIdList=["prod/app/db"])


def test_block_public_policy(acl_server, secrets):
    ops = client_for(acl_server, "ops")
    public = policy({
        "Effect": "Allow",
        "Principal": "*",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
    })
    with pytest.raises(ClientError) as e:
        ops.put_resource_policy(SecretId="prod/app/db", ResourcePolicy=public, BlockPublicPolicy=True)
    assert e.value.response["Error"]["Code"] == "PublicPolicyException"
    v = ops.validate_resource_policy(SecretId="prod/app/db", ResourcePolicy=public)
    assert v["PolicyValidationPassed"] is False
    # Restricted to the account by a condition: not public.
    scoped = policy({
        "Effect": "Allow",
        "Principal": "*",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}},
    })
    ops.put_resource_policy(SecretId="prod/app/db", ResourcePolicy=scoped, BlockPublicPolicy=True)
    ops.delete_resource_policy(SecretId="prod/app/db")


def test_a_key_without_policy_or_admin_is_refused_at_start(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "keyroll.toml").write_text(
        '[[access_keys]]\nname = "loose"\naccess_key_id = "AKIALOOSELOOSE000001"\n'
        'secret_access_key = "x"\n'
    )
    r = subprocess.run(
        [_keyroll_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(d)],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    assert "neither a policy nor admin = true" in r.stderr
    assert "policy = " in r.stderr


def audit_records(server):
    records = []
    for f in sorted((server.data_dir / "audit").glob("keyroll-audit-*.jsonl")):
        for line in f.read_text().splitlines():
            records.append(json.loads(line))
    return records


def test_every_call_is_audited_without_secrets(acl_server, secrets):
    from conftest import wait_for

    app = client_for(acl_server, "app")
    app.get_secret_value(SecretId="prod/app/db")
    denied(app.put_secret_value, SecretId="prod/app/db", SecretString="audit-sentinel-value")
    bad = boto3.client("secretsmanager", endpoint_url=acl_server.url, region_name=REGION,
                       aws_access_key_id=KEYS["app"][0], aws_secret_access_key="wrong-secret",
                       config=BotoConfig(retries={"max_attempts": 1}))
    with pytest.raises(ClientError):
        bad.list_secrets()

    def seen():
        recs = audit_records(acl_server)
        names = [(r["eventName"], r.get("errorCode")) for r in recs
                 if r["userIdentity"].get("accessKeyId") == KEYS["app"][0]]
        return recs if (("GetSecretValue", None) in names
                        and ("PutSecretValue", "AccessDeniedException") in names
                        and ("ListSecrets", "InvalidSignatureException") in names) else None

    recs = wait_for(seen, timeout=10)
    started = [r for r in recs if r["eventName"] == "KeyrollStarted"]
    assert started and started[0]["eventSource"] == "keyroll.local"
    put = next(r for r in recs if r["eventName"] == "PutSecretValue"
               and r["userIdentity"].get("userName") == "app")
    assert put["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/app"
    assert put["userIdentity"]["type"] == "IAMUser"
    assert put["resources"][0]["ARN"] == secrets["prod/app/db"]
    assert put["readOnly"] is False
    assert put["sourceIPAddress"] == "127.0.0.1"
    assert put["requestParameters"]["SecretId"] == "prod/app/db"
    assert "is not authorized" in put["errorMessage"]
    text = "".join(f.read_text() for f in (acl_server.data_dir / "audit").glob("*"))
    for sentinel in ["audit-sentinel-value", "value-of-prod", "app-secret-key", "ops-secret-key",
                     "wrong-secret"]:
        assert sentinel not in text, sentinel
    for f in (acl_server.data_dir / "audit").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


def test_audit_verify_on_the_live_trail_and_after_tampering(tmp_path):
    from conftest import wait_rotation_done

    d = tmp_path / "data"
    s = KeyrollServer(d, "").start()
    try:
        c = s.client()
        c.create_secret(Name="audited", SecretString="audited-value")
        c.get_secret_value(SecretId="audited")
        c.put_secret_value(SecretId="audited", SecretString="audited-value-2")
        c.create_secret(Name="rotated", SecretString='{"password":"rotated-old-value"}')
        c.rotate_secret(SecretId="rotated", RotationLambdaARN="keyroll")
        wait_rotation_done(c, "rotated", server=s)
    finally:
        s.stop()
    r = subprocess.run([_keyroll_bin(), "audit", "verify", "--data-dir", str(d)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "chain intact" in r.stdout
    r = subprocess.run([_keyroll_bin(), "audit", "search", "--data-dir", str(d),
                        "--secret-id", "audited", "--output", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    events = [json.loads(l)["eventName"] for l in r.stdout.splitlines() if l.strip()]
    assert events == ["CreateSecret", "GetSecretValue", "PutSecretValue"], events
    # The rotation the server ran: its start and each step, as keyroll's own events.
    r = subprocess.run([_keyroll_bin(), "audit", "search", "--data-dir", str(d),
                        "--secret-id", "rotated", "--output", "json"],
                       capture_output=True, text=True, timeout=60)
    recs = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    steps = [x["serviceEventDetails"]["step"] for x in recs if x["eventName"] == "RotationStep"]
    assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"], recs
    assert any(x["eventName"] == "RotationStarted" and x["eventSource"] == "keyroll.local" for x in recs)
    assert "rotated-old-value" not in "".join(f.read_text() for f in (d / "audit").glob("*"))
    # Change one byte of the second record: verify names it.
    f = sorted((d / "audit").glob("keyroll-audit-*.jsonl"))[0]
    lines = f.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"eventName":"', '"eventName":"X', 1)
    f.write_text("".join(lines))
    r = subprocess.run([_keyroll_bin(), "audit", "verify", "--data-dir", str(d)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f.name in (r.stdout + r.stderr)
