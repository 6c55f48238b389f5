"""Every operation through boto3 against `keyroll serve`, and the behaviours where emulators
usually differ from AWS."""

import json
import urllib.request
import uuid

import botocore.exceptions
import pytest

from conftest import raw, rotation_status, wait_for, wait_rotation_done

KEYROLL_FN = "arn:aws:lambda:us-east-1:000000000000:function:keyroll"


def code(e):
    return e.value.response["Error"]["Code"]


def message(e):
    return e.value.response["Error"]["Message"]


def test_create_get_put_update_describe(client):
    c = client.create_secret(Name="app/db", Description="db", SecretString='{"password":"one"}',
                             Tags=[{"Key": "env", "Value": "dev"}])
    assert c["ARN"].startswith("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-")
    assert len(c["ARN"].rsplit("-", 1)[1]) == 6
    v1 = c["VersionId"]
    g = client.get_secret_value(SecretId="app/db")
    assert g["SecretString"] == '{"password":"one"}' and g["VersionStages"] == ["AWSCURRENT"]
    assert g["CreatedDate"].year >= 2024
    # Lookup by full and partial ARN.
    assert client.get_secret_value(SecretId=c["ARN"])["VersionId"] == v1
    partial = c["ARN"].rsplit("-", 1)[0]
    assert client.get_secret_value(SecretId=partial)["VersionId"] == v1
    p = client.put_secret_value(SecretId="app/db", SecretString='{"password":"two"}')
    assert p["VersionStages"] == ["AWSCURRENT"]
    prev = client.get_secret_value(SecretId="app/db", VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == v1
    u = client.update_secret(SecretId="app/db", Description="changed", SecretString="three")
    assert "VersionId" in u
    d = client.describe_secret(SecretId="app/db")
    assert d["Description"] == "changed"
    assert "RotationEnabled" not in d and "DeletedDate" not in d
    assert len(d["VersionIdsToStages"]) == 2
    with pytest.raises(client.exceptions.ResourceExistsException):
        client.create_secret(Name="app/db", SecretString="x", ClientRequestToken=str(uuid.uuid4()))
    with pytest.raises(client.exceptions.ResourceNotFoundException) as e:
        client.get_secret_value(SecretId="missing")
    assert message(e) == "Secrets Manager can't find the specified secret."


def test_idempotent_create_and_version_conflicts(client):
    tok = str(uuid.uuid4())
    a = client.create_secret(Name="idem", SecretString="v", ClientRequestToken=tok)
    b = client.create_secret(Name="idem", SecretString="v", ClientRequestToken=tok)
    assert a["ARN"] == b["ARN"] and a["VersionId"] == b["VersionId"] == tok
    tok2 = str(uuid.uuid4())
    client.put_secret_value(SecretId="idem", SecretString="w", ClientRequestToken=tok2)
    client.put_secret_value(SecretId="idem", SecretString="w", ClientRequestToken=tok2)
    with pytest.raises(client.exceptions.ResourceExistsException):
        client.put_secret_value(SecretId="idem", SecretString="other", ClientRequestToken=tok2)


def test_binary_secrets_are_base64_on_the_wire(server, client):
    data = bytes(range(256))
    client.create_secret(Name="bin", SecretBinary=data)
    assert client.get_secret_value(SecretId="bin")["SecretBinary"] == data
    status, body = raw(server, "GetSecretValue", {"SecretId": "bin"})
    assert status == 200
    import base64
    assert base64.b64decode(body["SecretBinary"]) == data
    assert isinstance(body["CreatedDate"], float)


def test_raw_calls_without_a_token(server):
    status, body = raw(server, "CreateSecret", {"Name": "raw", "SecretString": "v"})
    assert (status, body["__type"]) == (400, "InvalidRequestException")
    status, body = raw(server, "CreateSecret", {"Name": "raw", "SecretString": "v",
                                                  "ClientRequestToken": str(uuid.uuid4())})
    assert status == 200
    status, body = raw(server, "PutSecretValue", {"SecretId": "raw", "SecretString": "w"})
    assert (status, body["__type"]) == (400, "InvalidRequestException")


def test_list_secrets_filters_sorting_and_paging(client):
    for name, env in [("prod/db", "prod"), ("prod/api", "prod"), ("dev/db", "dev")]:
        client.create_secret(Name=name, SecretString="v", Description=f"{env} thing",
                             Tags=[{"Key": "env", "Value": env}])
    names = lambda r: [s["Name"] for s in r["SecretList"]]
    assert names(client.list_secrets(Filters=[{"Key": "name", "Values": ["prod/"]}])) == ["prod/db", "prod/api"]
    assert names(client.list_secrets(Filters=[{"Key": "name", "Values": ["!prod"]}])) == ["dev/db"]
    assert names(client.list_secrets(Filters=[{"Key": "tag-value", "Values": ["dev"]}])) == ["dev/db"]
    assert len(client.list_secrets(Filters=[{"Key": "tag-key", "Values": ["env"]}])["SecretList"]) == 3
    assert names(client.list_secrets(Filters=[{"Key": "description", "Values": ["dev"]}])) == ["dev/db"]
    assert names(client.list_secrets(Filters=[{"Key": "all", "Values": ["api"]}])) == ["prod/api"]
    assert names(client.list_secrets(SortOrder="desc"))[0] == "dev/db"
    page = client.list_secrets(MaxResults=2)
    assert len(page["SecretList"]) == 2 and "NextToken" in page
    rest = client.list_secrets(MaxResults=2, NextToken=page["NextToken"])
    assert len(rest["SecretList"]) == 1 and "NextToken" not in rest
    paginator = client.get_paginator("list_secrets")
    assert sum(len(p["SecretList"]) for p in paginator.paginate(PaginationConfig={"PageSize": 1})) == 3
    client.delete_secret(SecretId="dev/db", RecoveryWindowInDays=7)
    assert len(client.list_secrets()["SecretList"]) == 2
    assert len(client.list_secrets(IncludePlannedDeletion=True)["SecretList"]) == 3


def test_batch_get_secret_value(client):
    client.create_secret(Name="b/one", SecretString="1")
    client.create_secret(Name="b/two", SecretString="2")
    r = client.batch_get_secret_value(SecretIdList=["b/one", "b/missing"])
    assert [v["SecretString"] for v in r["SecretValues"]] == ["1"]
    assert r["Errors"][0]["SecretId"] == "b/missing"
    assert r["Errors"][0]["ErrorCode"] == "ResourceNotFoundException"
    r = client.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["b/"]}])
    assert sorted(v["Name"] for v in r["SecretValues"]) == ["b/one", "b/two"]


def test_stages_and_version_listing(client):
    v1 = client.create_secret(Name="st", SecretString="1")["VersionId"]
    v2 = client.put_secret_value(SecretId="st", SecretString="2", VersionStages=["AWSPENDING"])["VersionId"]
    assert client.get_secret_value(SecretId="st")["VersionId"] == v1
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.update_secret_version_stage(SecretId="st", VersionStage="AWSCURRENT", MoveToVersionId=v2)
    client.update_secret_version_stage(SecretId="st", VersionStage="AWSCURRENT",
                                       MoveToVersionId=v2, RemoveFromVersionId=v1)
    stages = client.describe_secret(SecretId="st")["VersionIdsToStages"]
    assert stages[v1] == ["AWSPREVIOUS"] and "AWSCURRENT" in stages[v2]
    for i in range(3):
        client.put_secret_value(SecretId="st", SecretString=str(i + 3))
    ids = [v["VersionId"] for v in client.list_secret_version_ids(SecretId="st")["Versions"]]
    assert v1 not in ids
    ids = [v["VersionId"] for v in client.list_secret_version_ids(SecretId="st", IncludeDeprecated=True)["Versions"]]
    assert v1 in ids


def test_deletion_and_restore(client):
    client.create_secret(Name="del", SecretString="v")
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.delete_secret(SecretId="del", RecoveryWindowInDays=3)
    r = client.delete_secret(SecretId="del")
    assert (r["DeletionDate"] - client.describe_secret(SecretId="del")["DeletedDate"]).total_seconds() == 0
    with pytest.raises(client.exceptions.InvalidRequestException) as e:
        client.get_secret_value(SecretId="del")
    assert "marked for deletion" in message(e)
    with pytest.raises(client.exceptions.InvalidRequestException):
        client.put_secret_value(SecretId="del", SecretString="w")
    with pytest.raises(client.exceptions.InvalidRequestException):
        client.create_secret(Name="del", SecretString="again")
    client.restore_secret(SecretId="del")
    assert client.get_secret_value(SecretId="del")["SecretString"] == "v"
    client.delete_secret(SecretId="del", ForceDeleteWithoutRecovery=True)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_secret(SecretId="del")
    client.delete_secret(SecretId="absent", ForceDeleteWithoutRecovery=True)
    client.create_secret(Name="del", SecretString="reborn")


def test_tags_password_policies(client):
    client.create_secret(Name="t", SecretString="v")
    client.tag_resource(SecretId="t", Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    client.untag_resource(SecretId="t", TagKeys=["a"])
    assert client.describe_secret(SecretId="t")["Tags"] == [{"Key": "b", "Value": "2"}]
    pw = client.get_random_password(PasswordLength=50, ExcludeCharacters="abc", IncludeSpace=False)["RandomPassword"]
    assert len(pw) == 50 and not set("abc") & set(pw)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    assert client.validate_resource_policy(ResourcePolicy=policy)["PolicyValidationPassed"]
    client.put_resource_policy(SecretId="t", ResourcePolicy=policy)
    assert client.get_resource_policy(SecretId="t")["ResourcePolicy"] == policy
    with pytest.raises(client.exceptions.MalformedPolicyDocumentException):
        client.put_resource_policy(SecretId="t", ResourcePolicy="{not json")
    public = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})
    with pytest.raises(client.exceptions.PublicPolicyException):
        client.put_resource_policy(SecretId="t", ResourcePolicy=public, BlockPublicPolicy=True)
    client.delete_resource_policy(SecretId="t")
    assert "ResourcePolicy" not in client.get_resource_policy(SecretId="t")


def test_replication(server, client):
    arn = client.create_secret(Name="rep", SecretString="v1")["ARN"]
    r = client.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": "eu-west-1"}])
    assert r["ReplicationStatus"][0]["Status"] == "InSync"
    eu = server.client("eu-west-1")
    assert eu.get_secret_value(SecretId="rep")["SecretString"] == "v1"
    client.put_secret_value(SecretId=arn, SecretString="v2")
    assert eu.get_secret_value(SecretId="rep")["SecretString"] == "v2"
    with pytest.raises(botocore.exceptions.ClientError):
        eu.put_secret_value(SecretId="rep", SecretString="nope")
    assert eu.describe_secret(SecretId="rep")["PrimaryRegion"] == "us-east-1"
    client.replicate_secret_to_regions(SecretId=arn, AddReplicaRegions=[{"Region": "ap-south-1"}])
    client.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=["ap-south-1"])
    with pytest.raises(server.client("ap-south-1").exceptions.ResourceNotFoundException):
        server.client("ap-south-1").describe_secret(SecretId="rep")
    eu.stop_replication_to_replica(SecretId="rep")
    eu.put_secret_value(SecretId="rep", SecretString="independent")
    assert client.get_secret_value(SecretId="rep")["SecretString"] == "v2"


def test_builtin_rotation_and_cancel(client):
    client.create_secret(Name="gen", SecretString=json.dumps({"username": "u", "password": "old"}))
    with pytest.raises(client.exceptions.InvalidRequestException) as e:
        client.rotate_secret(SecretId="gen")
    assert message(e) == "No Lambda rotation function ARN is associated with this secret."
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.rotate_secret(SecretId="gen", RotationLambdaARN="arn:aws:lambda:us-east-1:1:function:unknown")
    assert code(e) == "AccessDeniedException"
    assert "RotationLambdaARN" not in client.describe_secret(SecretId="gen")
    r = client.rotate_secret(SecretId="gen", RotationLambdaARN=KEYROLL_FN,
                             RotationRules={"AutomaticallyAfterDays": 7})
    d = wait_rotation_done(client, "gen", r["VersionId"])
    assert d["RotationEnabled"] and d["RotationRules"]["AutomaticallyAfterDays"] == 7
    assert "NextRotationDate" in d and "LastRotatedDate" in d
    new = json.loads(client.get_secret_value(SecretId="gen")["SecretString"])
    assert new["username"] == "u" and new["password"] != "old"
    r = client.cancel_rotate_secret(SecretId="gen")
    assert r["Name"] == "gen"
    d = client.describe_secret(SecretId="gen")
    assert d["RotationEnabled"] is False and "NextRotationDate" not in d


def test_external_rotation_function(server, client, tmp_path):
    client.create_secret(Name="api/key", SecretString=json.dumps({"api_key": "key-initial", "owner": "team"}))
    fn = "arn:aws:lambda:us-east-1:000000000000:function:api-key-rotator"
    r = client.rotate_secret(SecretId="api/key", RotationLambdaARN=fn,
                             RotationRules={"ScheduleExpression": "rate(10 days)"})
    d = wait_rotation_done(client, "api/key", r["VersionId"])
    cur = json.loads(client.get_secret_value(SecretId="api/key")["SecretString"])
    assert cur["api_key"] != "key-initial" and cur["owner"] == "team"
    prev = json.loads(client.get_secret_value(SecretId="api/key", VersionStage="AWSPREVIOUS")["SecretString"])
    assert prev["api_key"] == "key-initial"
    assert d["RotationRules"]["ScheduleExpression"] == "rate(10 days)"
    assert cur["api_key"] not in server.logs()


def test_rotation_placeholder_and_pending_conflict(tmp_path):
    from conftest import KeyrollServer, rotator_config
    import sys
    script = tmp_path / "slow.py"
    # Waits for a go-ahead file, then fails: the placeholder can be observed meanwhile.
    script.write_text("import sys, time, pathlib\nsys.stdin.read()\n"
                      f"p = pathlib.Path({str(tmp_path / 'go')!r})\n"
                      "while not p.exists(): time.sleep(0.05)\n"
                      "sys.exit('refusing to rotate')\n")
    s = KeyrollServer(tmp_path / "d", rotator_config(
        f'[functions.slow]\ncommand = ["{sys.executable}", "{script}"]\n')).start()
    try:
        c = s.client()
        c.create_secret(Name="slow", SecretString="v")
        r = c.rotate_secret(SecretId="slow", RotationLambdaARN="arn:aws:lambda:us-east-1:0:function:slow")
        stages = c.describe_secret(SecretId="slow")["VersionIdsToStages"]
        assert stages[r["VersionId"]] == ["AWSPENDING"]
        with pytest.raises(c.exceptions.ResourceNotFoundException):
            c.get_secret_value(SecretId="slow", VersionStage="AWSPENDING")
        with pytest.raises(c.exceptions.InvalidRequestException):
            c.rotate_secret(SecretId="slow")
        (tmp_path / "go").write_text("")
        st = wait_for(lambda: (lambda st: st if st.get("State") == "Failed" else None)(
            rotation_status(s, "slow")))
        assert st["FailedStep"] == "createSecret"
        assert "refusing to rotate" in st["Message"]
        assert c.get_secret_value(SecretId="slow")["SecretString"] == "v"
        d = c.describe_secret(SecretId="slow")
        assert "AWSPENDING" in d["VersionIdsToStages"][r["VersionId"]]
        metrics = urllib.request.urlopen(s.url + "/metrics").read().decode()
        assert 'keyroll_rotations_total{outcome="failed"} 1' in metrics
        assert "rotation failed" in s.logs()
    finally:
        s.stop()


def test_authentication_refusals(server, client):
    status, body = raw(server, "ListSecrets", {}, sign=False)
    assert (status, body["__type"]) == (400, "MissingAuthenticationTokenException")
    kid, _ = server.keys()
    bad = server.client(secret="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.list_secrets()
    assert code(e) == "InvalidSignatureException"
    stranger = server.client(key_id="AKKRUNKNOWN000000000")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        stranger.list_secrets()
    assert code(e) == "UnrecognizedClientException"


def test_expired_signature(server):
    import datetime
    from unittest import mock
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)).replace(tzinfo=None)
    # boto3 signs with a clock 20 minutes slow: the signature has expired when it arrives.
    with mock.patch("botocore.auth.get_current_datetime", return_value=past):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            server.client().list_secrets()
    assert code(e) == "InvalidSignatureException"
    assert message(e).startswith("Signature expired")


def test_health_and_metrics(server, client):
    assert urllib.request.urlopen(server.url + "/health").status == 200
    client.create_secret(Name="m", SecretString="v")
    client.get_secret_value(SecretId="m")
    m = urllib.request.urlopen(server.url + "/metrics").read().decode()
    assert 'keyroll_requests_total{operation="GetSecretValue",outcome="success"} 1' in m
    assert "keyroll_request_duration_seconds_bucket" in m


def test_no_secret_value_in_logs(server, client):
    sentinel = "SENTINEL-" + uuid.uuid4().hex
    client.create_secret(Name="s", SecretString=json.dumps({"password": sentinel}))
    client.get_secret_value(SecretId="s")
    client.put_secret_value(SecretId="s", SecretString=sentinel + "2")
    client.batch_get_secret_value(SecretIdList=["s"])
    client.rotate_secret(SecretId="s", RotationLambdaARN=KEYROLL_FN)
    wait_rotation_done(client, "s")
    assert sentinel not in server.logs()
    assert sentinel not in urllib.request.urlopen(server.url + "/metrics").read().decode()


def test_credentials_file_and_restart_keep_data(tmp_path):
    import os
    import stat
    from conftest import KeyrollServer
    s = KeyrollServer(tmp_path / "d").start()
    try:
        assert stat.S_IMODE(os.stat(s.credentials_file).st_mode) == 0o600
        text = open(s.credentials_file).read()
        assert "[default]" in text and "aws_access_key_id" in text
        s.client().create_secret(Name="kept", SecretString="v")
        keys = s.keys()
    finally:
        s.stop()
    s2 = KeyrollServer(tmp_path / "d").start()
    try:
        assert s2.keys() == keys
        assert s2.client().get_secret_value(SecretId="kept")["SecretString"] == "v"
    finally:
        s2.stop()
