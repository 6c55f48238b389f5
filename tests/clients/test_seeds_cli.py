"""The seed documents' own aws CLI sequences, run against `keyroll serve` with only
`--endpoint-url` and credentials added — and the connection details of a real, throwaway
PostgreSQL in place of the documents' RDS endpoint. Rotations triggered by
`aws secretsmanager rotate-secret` change the real database password."""

import json

import pytest

from conftest import KeyrollServer, rotator_config, wait_for, wait_rotation_done


@pytest.fixture
def cli_server(tmp_path):
    s = KeyrollServer(tmp_path / "data", rotator_config()).start()
    yield s
    s.stop()


def rds_secret(pg, username, password):
    # Seed 001's secret format, pointing at the throwaway server.
    return json.dumps({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": pg.port,
        "username": username,
        "password": password,
        "dbname": "postgres",
    }, indent=2)


def test_seed_001_rds_postgresql_rotation_end_to_end(cli_server, postgres):
    s, pg = cli_server, postgres
    pg.create_role("adminuser", "initial-secure-password")

    s.aws("secretsmanager", "create-secret",
          "--name", "prod/rds/admin",
          "--description", "Production RDS admin credentials",
          "--secret-string", rds_secret(pg, "adminuser", "initial-secure-password"))

    out = s.aws("secretsmanager", "rotate-secret",
                "--secret-id", "prod/rds/admin",
                "--rotation-lambda-arn", "arn:aws:lambda:REGION:ACCOUNT_ID:function:SecretsRotationFunction",
                "--rotation-rules", '{\n    "AutomaticallyAfterDays": 30\n  }')
    first = out["VersionId"]
    client = s.client()
    wait_rotation_done(client, "prod/rds/admin", first, server=s)

    status = s.aws("secretsmanager", "describe-secret",
                   "--secret-id", "prod/rds/admin",
                   "--query", "{\n    RotationEnabled: RotationEnabled,\n    LastRotated: LastRotatedDate,\n    NextRotation: NextRotationDate\n  }")
    assert status["RotationEnabled"] is True
    assert status["LastRotated"] and status["NextRotation"]

    current = json.loads(s.aws("secretsmanager", "get-secret-value",
                               "--secret-id", "prod/rds/admin",
                               "--version-stage", "AWSCURRENT")["SecretString"])
    assert current["password"] != "initial-secure-password"
    assert pg.try_login("adminuser", current["password"])
    assert not pg.try_login("adminuser", "initial-secure-password")

    # Manual rotation with the stored configuration.
    out = s.aws("secretsmanager", "rotate-secret", "--secret-id", "prod/rds/admin")
    wait_rotation_done(client, "prod/rds/admin", out["VersionId"], server=s)
    versions = s.aws("secretsmanager", "list-secret-version-ids", "--secret-id", "prod/rds/admin")
    by_stage = {st: v["VersionId"] for v in versions["Versions"] for st in v["VersionStages"]}
    assert by_stage["AWSCURRENT"] == out["VersionId"]
    assert by_stage["AWSPREVIOUS"] == first
    newest = json.loads(s.aws("secretsmanager", "get-secret-value",
                              "--secret-id", "prod/rds/admin",
                              "--version-stage", "AWSCURRENT")["SecretString"])
    assert pg.try_login("adminuser", newest["password"])
    assert not pg.try_login("adminuser", current["password"])

    # Troubleshooting: credential drift, fixed with update-secret, then a retried rotation.
    pg.psql("postgres", pg.password, "ALTER ROLE adminuser PASSWORD 'actual-current-password'")
    s.aws("secretsmanager", "update-secret",
          "--secret-id", "prod/rds/admin",
          "--secret-string", rds_secret(pg, "adminuser", "actual-current-password"))
    out = s.aws("secretsmanager", "rotate-secret", "--secret-id", "prod/rds/admin")
    wait_rotation_done(client, "prod/rds/admin", out["VersionId"], server=s)
    fixed = json.loads(client.get_secret_value(SecretId="prod/rds/admin")["SecretString"])
    assert pg.try_login("adminuser", fixed["password"])

    # Multi-user secrets, tags for access control, replication, compliance listing.
    s.aws("secretsmanager", "create-secret",
          "--name", "prod/rds/app-user",
          "--secret-string", rds_secret(pg, "appuser", "initial-password"))
    s.aws("secretsmanager", "create-secret",
          "--name", "prod/rds/readonly-user",
          "--secret-string", rds_secret(pg, "readonly", "initial-password"))
    s.aws("secretsmanager", "create-secret", "--name", "prod/rds/payments", "--secret-string", "{}")
    s.aws("secretsmanager", "tag-resource",
          "--secret-id", "prod/rds/payments",
          "--tags", "Key=critical,Value=true", "Key=env,Value=prod")
    tags = {t["Key"]: t["Value"] for t in client.describe_secret(SecretId="prod/rds/payments")["Tags"]}
    assert tags == {"critical": "true", "env": "prod"}

    rep = s.aws("secretsmanager", "replicate-secret-to-regions",
                "--secret-id", "prod/rds/admin",
                "--add-replica-regions", "Region=us-west-2")
    assert rep["ReplicationStatus"][0]["Region"] == "us-west-2"
    west = s.client("us-west-2").get_secret_value(SecretId="prod/rds/admin")
    assert json.loads(west["SecretString"])["password"] == fixed["password"]

    table = s.aws("secretsmanager", "list-secrets",
                  "--query", "SecretList[*].[Name,RotationEnabled,LastRotatedDate]",
                  "--output", "table")
    assert "prod/rds/admin" in table and "True" in table
    text = s.aws("secretsmanager", "list-secrets",
                 "--query", "SecretList[*].[Name,RotationEnabled,LastRotatedDate,LastChangedDate]",
                 "--output", "text")
    assert "prod/rds/readonly-user" in text
    assert fixed["password"] not in s.logs()


def test_seed_002_builtin_rds_functions(cli_server, postgres):
    s, pg = cli_server, postgres
    pg.create_role("myapp", "first-password")
    s.aws("secretsmanager", "create-secret", "--name", "prod/myapp/database",
          "--secret-string", rds_secret(pg, "myapp", "first-password"))
    client = s.client()

    out = s.aws("secretsmanager", "rotate-secret",
                "--secret-id", "prod/myapp/database",
                "--rotation-lambda-arn", "arn:aws:lambda:us-east-1:123456789012:function:SecretsManagerRDSPostgreSQLRotationSingleUser",
                "--rotation-rules", "AutomaticallyAfterDays=30")
    wait_rotation_done(client, "prod/myapp/database", out["VersionId"], server=s)
    pw = json.loads(client.get_secret_value(SecretId="prod/myapp/database")["SecretString"])["password"]
    assert pg.try_login("myapp", pw) and not pg.try_login("myapp", "first-password")
    d = client.describe_secret(SecretId="prod/myapp/database")
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 30

    # The MySQL function name: the target still follows the secret's engine (postgres).
    out = s.aws("secretsmanager", "rotate-secret",
                "--secret-id", "prod/myapp/database",
                "--rotation-lambda-arn", "arn:aws:lambda:us-east-1:123456789012:function:SecretsManagerRDSMySQLRotationSingleUser",
                "--rotation-rules", "AutomaticallyAfterDays=30")
    wait_rotation_done(client, "prod/myapp/database", out["VersionId"], server=s)
    pw2 = json.loads(client.get_secret_value(SecretId="prod/myapp/database")["SecretString"])["password"]
    assert pw2 != pw and pg.try_login("myapp", pw2)


def test_seed_002_custom_rotation_function(cli_server):
    """Seed 002's custom rotation Lambda shape (an API key), as an external command."""
    s = cli_server
    s.aws("secretsmanager", "create-secret", "--name", "prod/partner/api",
          "--secret-string", json.dumps({"api_key": "key-first"}))
    out = s.aws("secretsmanager", "rotate-secret",
                "--secret-id", "prod/partner/api",
                "--rotation-lambda-arn", "arn:aws:lambda:us-east-1:123456789012:function:api-key-rotator",
                "--rotation-rules", "AutomaticallyAfterDays=30")
    client = s.client()
    wait_rotation_done(client, "prod/partner/api", out["VersionId"])
    v = s.aws("secretsmanager", "get-secret-value", "--secret-id", "prod/partner/api")
    assert json.loads(v["SecretString"])["api_key"] != "key-first"
    prev = s.aws("secretsmanager", "get-secret-value", "--secret-id", "prod/partner/api",
                 "--version-stage", "AWSPREVIOUS")
    assert json.loads(prev["SecretString"])["api_key"] == "key-first"


def test_seed_004_key_value_secret_on_a_cron_schedule(cli_server):
    """Seed 004: a key/value secret rotated on a cron schedule (configured without an
    immediate rotation; the schedule is reported back)."""
    s = cli_server
    s.aws("secretsmanager", "create-secret", "--name", "demo/kv",
          "--secret-string", json.dumps({"username": "demo", "password": "p1"}))
    s.aws("secretsmanager", "rotate-secret", "--secret-id", "demo/kv",
          "--rotation-lambda-arn", "arn:aws:lambda:us-east-1:123456789012:function:keyroll",
          "--rotation-rules", '{"ScheduleExpression": "cron(0 8 1 * ? *)", "Duration": "2h"}',
          "--no-rotate-immediately")
    d = wait_for(lambda: (lambda d: d if not any("AWSPENDING" in x for x in d["VersionIdsToStages"].values()) else None)(
        s.client().describe_secret(SecretId="demo/kv")))
    assert d["RotationRules"] == {"ScheduleExpression": "cron(0 8 1 * ? *)", "Duration": "2h"}
    nxt = d["NextRotationDate"]
    assert (nxt.day, nxt.hour, nxt.minute) == (1, 8, 0)
    assert "LastRotatedDate" not in d
    bad = s.aws("secretsmanager", "rotate-secret", "--secret-id", "demo/kv",
                "--rotation-rules", '{"ScheduleExpression": "rate(1 hours)"}', check=False)
    assert bad.returncode != 0 and "InvalidParameterException" in bad.stderr
