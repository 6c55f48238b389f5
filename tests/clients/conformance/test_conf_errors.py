"""Every operation's documented errors, with AWS's types, wording and order of checks."""

import json

import botocore.exceptions
import pytest

from conformance_support import (FN, MARKED, NO_TOKEN, NOT_FOUND, REPLICA, err, module_server,
                                 name, no_validation_client, raw_call, tok)

PUBLIC = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": "secretsmanager:GetSecretValue",
    "Resource": "*"}]})
ACCOUNT_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = module_server(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sm(server):
    return server.client()


@pytest.fixture(scope="module")
def raw_sm(server):
    return no_validation_client(server)


def fails(call, code, message=None):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    got_code, got_msg = err(e)
    assert got_code == code, (got_code, got_msg)
    if message is not None:
        assert got_msg == message
    return got_msg


def new(sm, value="v", **kw):
    n = name()
    return n, sm.create_secret(Name=n, SecretString=value, **kw)


# ---- ClientRequestToken -----------------------------------------------------------------

@pytest.mark.parametrize("op", ["CreateSecret", "UpdateSecret", "PutSecretValue"])
def test_missing_token_is_invalid_request(server, op):
    """recorded AWS response, test_no_client_request_token[CreateSecret|UpdateSecret|
    PutSecretValue]: the body is exactly {"__type", "Message"}."""
    body = {"SecretString": "thisisthesecret", "Description": "My secret string"}
    body["Name" if op == "CreateSecret" else "SecretId"] = name()
    status, got = raw_call(server, op, body)
    assert status == 400
    assert got == {"__type": "InvalidRequestException", "Message": NO_TOKEN}


def test_missing_token_on_rotate_is_invalid_parameter(server):
    """recorded AWS response, test_no_client_request_token[RotateSecret]."""
    status, got = raw_call(server, "RotateSecret", {"SecretId": name()})
    assert status == 400
    assert got == {"__type": "InvalidParameterException", "Message": NO_TOKEN}


def test_too_short_token(sm, raw_sm):
    """botocore model: ClientRequestTokenType min 32 max 64."""
    n, _ = new(sm)
    fails(lambda: raw_sm.put_secret_value(SecretId=n, SecretString="x", ClientRequestToken="short"),
          "InvalidParameterException", "ClientRequestToken must be 32-64 characters long.")


@pytest.mark.parametrize("op", ["CreateSecret", "PutSecretValue", "UpdateSecret"])
def test_token_reused_with_another_value(sm, op):
    """AWS API reference, ClientRequestToken: a token already used for a version with a
    different value is ResourceExistsException naming the token and the secret's ARN."""
    t = tok()
    n, c = new(sm, "one", ClientRequestToken=t)
    calls = {
        "CreateSecret": lambda: sm.create_secret(Name=n, SecretString="two", ClientRequestToken=t),
        "PutSecretValue": lambda: sm.put_secret_value(SecretId=n, SecretString="two",
                                                      ClientRequestToken=t),
        "UpdateSecret": lambda: sm.update_secret(SecretId=n, SecretString="two",
                                                 ClientRequestToken=t),
    }
    fails(calls[op], "ResourceExistsException",
          f"You can't use ClientRequestToken {t} because that value is already in use for a "
          f"version of secret {c['ARN']}.")


def test_token_reused_with_the_same_value_is_idempotent(sm):
    """AWS API reference, PutSecretValue ClientRequestToken: same token and value, no new
    version."""
    t = tok()
    n, _ = new(sm)
    a = sm.put_secret_value(SecretId=n, SecretString="same", ClientRequestToken=t)
    b = sm.put_secret_value(SecretId=n, SecretString="same", ClientRequestToken=t)
    assert a["VersionId"] == b["VersionId"] == t


# ---- CreateSecret ----------------------------------------------------------------------

def test_create_existing_name(sm):
    """recorded AWS response, test_secret_exists_snapshots."""
    n, _ = new(sm)
    fails(lambda: sm.create_secret(Name=n, SecretString="x"), "ResourceExistsException",
          f"The operation failed because the secret {n} already exists.")


def test_create_name_scheduled_for_deletion(sm):
    """recorded AWS response, test_exp_raised_on_creation_of_secret_scheduled_for_deletion."""
    n, _ = new(sm)
    sm.delete_secret(SecretId=n, RecoveryWindowInDays=7)
    fails(lambda: sm.create_secret(Name=n, SecretString="x"), "InvalidRequestException",
          "You can't create this secret because a secret with this name is already scheduled "
          "for deletion.")


def test_create_after_forced_delete(sm):
    """recorded AWS response, test_can_recreate_delete_secret."""
    n, c = new(sm)
    sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True)
    again = sm.create_secret(Name=n, SecretString="x")
    assert again["ARN"] != c["ARN"]


def test_create_with_both_values(sm):
    """AWS API reference, CreateSecret: SecretString or SecretBinary, not both."""
    fails(lambda: sm.create_secret(Name=name(), SecretString="a", SecretBinary=b"b"),
          "InvalidParameterException")


def test_create_tag_limits(sm, raw_sm):
    """botocore model: TagKeyType 1-128, TagValueType max 256; AWS API reference: the aws:
    prefix is reserved."""
    fails(lambda: raw_sm.create_secret(Name=name(), SecretString="v",
                                       Tags=[{"Key": "k" * 129, "Value": "v"}]),
          "InvalidParameterException")
    fails(lambda: sm.create_secret(Name=name(), SecretString="v",
                                   Tags=[{"Key": "aws:x", "Value": "v"}]),
          "InvalidParameterException")


def test_tag_resource_system_tag(sm):
    """AWS's TagResource answer for an aws: key (seen from AWS in cloud-custodian#9093):
    InvalidParameterException "You can't modify system tags. Tag key: '…'."."""
    n = name()
    sm.create_secret(Name=n, SecretString="v")
    fails(lambda: sm.tag_resource(SecretId=n, Tags=[{"Key": "aws:cloudformation:stack-name",
                                                      "Value": "s"}]),
          "InvalidParameterException",
          "You can't modify system tags. Tag key: 'aws:cloudformation:stack-name'.")


def test_create_description_limit(raw_sm):
    """botocore model: DescriptionType max 2048."""
    fails(lambda: raw_sm.create_secret(Name=name(), SecretString="v", Description="d" * 2049),
          "InvalidParameterException")


def test_create_replica_in_own_region(sm):
    """AWS-verified emulator case (replication): "Invalid replica region."."""
    fails(lambda: sm.create_secret(Name=name(), SecretString="v",
                                   AddReplicaRegions=[{"Region": "us-east-1"}]),
          "InvalidParameterException", "Invalid replica region.")


# ---- GetSecretValue / BatchGetSecretValue ----------------------------------------------

def test_get_value_errors(sm):
    """recorded AWS response, test_get_secret_value_errors and test_secret_version_not_found."""
    n, c = new(sm)
    fails(lambda: sm.get_secret_value(SecretId=n, VersionStage="AWSPREVIOUS"),
          "ResourceNotFoundException",
          "Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS")
    fails(lambda: sm.get_secret_value(SecretId=n, VersionId=c["VersionId"],
                                      VersionStage="AWSPENDING"),
          "InvalidRequestException",
          "You provided a VersionStage that is not associated to the provided VersionId.")
    missing = tok()
    fails(lambda: sm.get_secret_value(SecretId=n, VersionId=missing),
          "ResourceNotFoundException",
          f"Secrets Manager can't find the specified secret value for VersionId: {missing}")
    empty = sm.create_secret(Name=name())["ARN"]
    fails(lambda: sm.get_secret_value(SecretId=empty), "ResourceNotFoundException",
          "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")


def test_get_value_of_deleted_secret(sm):
    """AWS API reference, GetSecretValue errors: InvalidRequestException for a secret
    scheduled for deletion."""
    n, _ = new(sm)
    sm.delete_secret(SecretId=n)
    fails(lambda: sm.get_secret_value(SecretId=n), "InvalidRequestException", MARKED)


def test_batch_get_errors(sm, raw_sm):
    """AWS API reference, BatchGetSecretValue: SecretIdList or Filters, not both; MaxResults
    only with Filters; a missing secret is an entry of Errors, not a failure."""
    n, _ = new(sm)
    fails(lambda: sm.batch_get_secret_value(SecretIdList=[n], Filters=[
        {"Key": "name", "Values": [n]}]), "InvalidParameterException",
        "Either 'SecretIdList' or 'Filters' must be provided, but not both.")
    fails(lambda: sm.batch_get_secret_value(SecretIdList=[n], MaxResults=5),
          "InvalidParameterException",
          "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is "
          "provided.")
    r = sm.batch_get_secret_value(SecretIdList=[n, "missing-" + name()])
    assert [v["Name"] for v in r["SecretValues"]] == [n]
    assert r["Errors"][0]["ErrorCode"] == "ResourceNotFoundException"
    f = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": [n]}])
    assert [v["Name"] for v in f["SecretValues"]] == [n]
    fails(lambda: sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": [n]}],
                                            NextToken="bogus"), "InvalidNextTokenException")


# ---- PutSecretValue / UpdateSecret ------------------------------------------------------

def test_put_without_value(raw_sm, sm):
    """botocore model: PutSecretValue errors; AWS answers InvalidRequestException when
    neither SecretString nor SecretBinary is given."""
    n, _ = new(sm)
    fails(lambda: raw_sm.put_secret_value(SecretId=n, ClientRequestToken=tok()),
          "InvalidRequestException")


def test_put_on_deleted_secret(sm):
    """AWS API reference, PutSecretValue errors: InvalidRequestException."""
    n, _ = new(sm)
    sm.delete_secret(SecretId=n)
    fails(lambda: sm.put_secret_value(SecretId=n, SecretString="x"), "InvalidRequestException",
          MARKED)
    fails(lambda: sm.update_secret(SecretId=n, Description="x"), "InvalidRequestException",
          MARKED)


def test_put_too_many_labels(sm):
    """botocore model: PutSecretValue LimitExceededException; at most 20 labels a version."""
    n, _ = new(sm)
    fails(lambda: sm.put_secret_value(SecretId=n, SecretString="x",
                                      VersionStages=[f"S{i}" for i in range(21)]),
          "LimitExceededException")


def test_update_without_value_keeps_versions(sm):
    """recorded AWS response, test_update_secret_description (update_secret_res_0): no
    VersionId when only metadata changes."""
    n, c = new(sm)
    u = sm.update_secret(SecretId=n, Description="d", KmsKeyId="alias/other")
    assert "VersionId" not in u
    assert sm.describe_secret(SecretId=n)["VersionIdsToStages"] == {c["VersionId"]: ["AWSCURRENT"]}


# ---- UpdateSecretVersionStage -----------------------------------------------------------

def test_update_stage_errors(sm):
    """AWS API reference, UpdateSecretVersionStage errors (InvalidParameterException)."""
    n, c = new(sm)
    fails(lambda: sm.update_secret_version_stage(SecretId=n, VersionStage="X"),
          "InvalidParameterException")
    fails(lambda: sm.update_secret_version_stage(SecretId=n, VersionStage="X",
                                                 RemoveFromVersionId=c["VersionId"]),
          "InvalidParameterException")
    fails(lambda: sm.update_secret_version_stage(SecretId=n, VersionStage="X",
                                                 MoveToVersionId=tok()),
          "InvalidParameterException")


# ---- DeleteSecret / RestoreSecret -------------------------------------------------------

def test_delete_errors(sm):
    """AWS API reference, DeleteSecret: RecoveryWindowInDays 7-30 (checked first, even with
    ForceDeleteWithoutRecovery), not with ForceDeleteWithoutRecovery; an already deleted
    secret is InvalidRequestException."""
    n, _ = new(sm)
    fails(lambda: sm.delete_secret(SecretId=n, RecoveryWindowInDays=1,
                                   ForceDeleteWithoutRecovery=True),
          "InvalidParameterException",
          "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
    fails(lambda: sm.delete_secret(SecretId=n, RecoveryWindowInDays=6),
          "InvalidParameterException",
          "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
    fails(lambda: sm.delete_secret(SecretId=n, RecoveryWindowInDays=31),
          "InvalidParameterException")
    fails(lambda: sm.delete_secret(SecretId=n, RecoveryWindowInDays=7,
                                   ForceDeleteWithoutRecovery=True),
          "InvalidParameterException",
          "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
    sm.delete_secret(SecretId=n)
    fails(lambda: sm.delete_secret(SecretId=n), "InvalidRequestException", MARKED)


def test_forced_delete_of_unknown_secret_succeeds(sm):
    """AWS-verified (LocalStack test_delete_non_existent_secret_returns_as_if_secret_exists)."""
    n = "never-" + name()
    r = sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True)
    assert r["Name"] == n and "DeletionDate" in r


def test_restore(sm):
    """recorded AWS response, test_secret_restore: ARN and Name; restoring an unknown secret
    is ResourceNotFoundException."""
    n, c = new(sm)
    sm.delete_secret(SecretId=n)
    r = sm.restore_secret(SecretId=n)
    assert set(r) - {"ResponseMetadata"} == {"ARN", "Name"}
    assert "DeletedDate" not in sm.describe_secret(SecretId=n)
    fails(lambda: sm.restore_secret(SecretId="missing-" + name()), "ResourceNotFoundException",
          NOT_FOUND)


# ---- tags -------------------------------------------------------------------------------

def test_tag_untag_on_deleted_secret(sm):
    """recorded AWS response, test_tag_untag_resource_on_deleted_secret."""
    n, _ = new(sm)
    sm.delete_secret(SecretId=n)
    fails(lambda: sm.tag_resource(SecretId=n, Tags=[{"Key": "k", "Value": "v"}]),
          "InvalidRequestException", MARKED)
    fails(lambda: sm.untag_resource(SecretId=n, TagKeys=["k"]), "InvalidRequestException", MARKED)


def test_tag_limits(sm, raw_sm):
    """botocore model: TagKeyType max 128; AWS API reference, TagResource: at most 50 tags."""
    n, _ = new(sm)
    fails(lambda: raw_sm.tag_resource(SecretId=n, Tags=[{"Key": "k" * 129, "Value": "v"}]),
          "InvalidParameterException")
    fails(lambda: sm.tag_resource(SecretId=n, Tags=[{"Key": f"k{i}", "Value": "v"}
                                                    for i in range(51)]),
          "InvalidParameterException")


# ---- rotation ---------------------------------------------------------------------------

def test_rotate_without_function(sm):
    """recorded AWS response, test_first_rotate_secret_with_missing_lambda_arn."""
    n, _ = new(sm)
    fails(lambda: sm.rotate_secret(SecretId=n, RotationRules={"AutomaticallyAfterDays": 1}),
          "InvalidRequestException",
          "No Lambda rotation function ARN is associated with this secret.")
    d = sm.describe_secret(SecretId=n)
    assert "RotationEnabled" not in d and "RotationRules" not in d


def test_rotation_rules_are_checked_before_the_missing_function(sm):
    """AWS API reference, RotationRules.AutomaticallyAfterDays 1-1000: the bounds error comes
    before "No Lambda rotation function ARN"."""
    n, _ = new(sm)
    fails(lambda: sm.rotate_secret(SecretId=n, RotationRules={"AutomaticallyAfterDays": 1001}),
          "InvalidParameterException")


def test_rotate_with_a_function_that_cannot_be_invoked(sm):
    """recorded AWS response, test_rotate_secret_invalid_lambda_arn: AccessDeniedException,
    and nothing about rotation is saved."""
    n, _ = new(sm)
    msg = fails(lambda: sm.rotate_secret(
        SecretId=n, RotationLambdaARN="arn:aws:lambda:us-east-1:000000000000:function:nope",
        RotationRules={"AutomaticallyAfterDays": 1}), "AccessDeniedException")
    assert msg.startswith("Secrets Manager cannot invoke the specified Lambda function.")
    d = sm.describe_secret(SecretId=n)
    assert "RotationEnabled" not in d and "RotationLambdaARN" not in d


def test_rotate_deleted_secret(sm):
    """AWS API reference, RotateSecret errors: InvalidRequestException."""
    n, _ = new(sm)
    sm.delete_secret(SecretId=n)
    fails(lambda: sm.rotate_secret(SecretId=n, RotationLambdaARN=FN), "InvalidRequestException",
          MARKED)


def test_cancel_rotate(sm):
    """AWS API reference, CancelRotateSecret: ARN, Name (and VersionId of a pending rotation);
    ResourceNotFoundException for an unknown secret."""
    n, _ = new(sm)
    sm.rotate_secret(SecretId=n, RotationLambdaARN=FN, RotateImmediately=False,
                     RotationRules={"AutomaticallyAfterDays": 30})
    r = sm.cancel_rotate_secret(SecretId=n)
    assert r["Name"] == n
    assert sm.describe_secret(SecretId=n).get("RotationEnabled") is False


# ---- GetRandomPassword ------------------------------------------------------------------

def test_random_password_limits(sm, raw_sm):
    """botocore model: PasswordLengthType 1-4096 (ValidationException beyond);
    AWS API reference, GetRandomPassword: a length too short for the required types is
    InvalidParameterException."""
    assert len(sm.get_random_password()["RandomPassword"]) == 32
    assert len(sm.get_random_password(PasswordLength=4096)["RandomPassword"]) == 4096
    fails(lambda: raw_sm.get_random_password(PasswordLength=4097), "ValidationException",
          "1 validation error detected: Value '4097' at 'passwordLength' failed to satisfy "
          "constraint: Member must have value less than or equal to 4096")
    fails(lambda: raw_sm.get_random_password(PasswordLength=0), "ValidationException")
    fails(lambda: sm.get_random_password(PasswordLength=3), "InvalidParameterException",
          "Password length is too short based on the required types.")
    p = sm.get_random_password(PasswordLength=3, RequireEachIncludedType=False)
    assert len(p["RandomPassword"]) == 3
    only = sm.get_random_password(ExcludeNumbers=True, ExcludePunctuation=True,
                                  ExcludeUppercase=True, PasswordLength=50)["RandomPassword"]
    assert only.isalpha() and only.islower()
    assert " " in sm.get_random_password(IncludeSpace=True, PasswordLength=4096,
                                         RequireEachIncludedType=False)["RandomPassword"]
    fails(lambda: sm.get_random_password(ExcludeNumbers=True, ExcludePunctuation=True,
                                         ExcludeUppercase=True, ExcludeLowercase=True),
          "InvalidParameterException")


# ---- resource policies ------------------------------------------------------------------

def test_policies(sm):
    """recorded AWS response, test_resource_policy: Put answers ARN and Name; Get returns the
    policy; Delete answers ARN and Name, and Get then has no ResourcePolicy."""
    n, c = new(sm)
    p = sm.put_resource_policy(SecretId=n, ResourcePolicy=ACCOUNT_ONLY)
    assert set(p) - {"ResponseMetadata"} == {"ARN", "Name"}
    g = sm.get_resource_policy(SecretId=n)
    assert json.loads(g["ResourcePolicy"]) == json.loads(ACCOUNT_ONLY)
    d = sm.delete_resource_policy(SecretId=n)
    assert d["ARN"] == c["ARN"]
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=n)


def test_unknown_secret_before_malformed_policy(sm):
    """AWS's order of checks (botocore model: PutResourcePolicy documents both errors): the
    secret is looked up before the policy is parsed."""
    fails(lambda: sm.put_resource_policy(SecretId="missing-" + name(), ResourcePolicy="{not json"),
          "ResourceNotFoundException", NOT_FOUND)
    n, _ = new(sm)
    fails(lambda: sm.put_resource_policy(SecretId=n, ResourcePolicy="{not json"),
          "MalformedPolicyDocumentException")


def test_block_public_policy(sm):
    """AWS API reference, PutResourcePolicy BlockPublicPolicy: PublicPolicyException."""
    n, _ = new(sm)
    fails(lambda: sm.put_resource_policy(SecretId=n, ResourcePolicy=PUBLIC,
                                         BlockPublicPolicy=True), "PublicPolicyException")


def test_validate_policy(sm):
    """AWS API reference, ValidateResourcePolicy: PolicyValidationPassed and
    ValidationErrors; SecretId is optional."""
    r = sm.validate_resource_policy(ResourcePolicy=ACCOUNT_ONLY)
    assert r["PolicyValidationPassed"] is True and r["ValidationErrors"] == []
    fails(lambda: sm.validate_resource_policy(ResourcePolicy="{not json"),
          "MalformedPolicyDocumentException")


# ---- replication ------------------------------------------------------------------------

def test_replication(server, sm):
    """AWS API reference, ReplicateSecretToRegions / RemoveRegionsFromReplication /
    StopReplicationToReplica; AWS-verified emulator cases for the replica guard: writes on a
    replica are InvalidParameterException "Operation not permitted on a replica secret..."; a
    primary with replicas cannot be deleted (InvalidParameterException naming its ARN)."""
    n, c = new(sm)
    fails(lambda: sm.replicate_secret_to_regions(SecretId=n,
                                                 AddReplicaRegions=[{"Region": "us-east-1"}]),
          "InvalidParameterException", "Invalid replica region.")
    r = sm.replicate_secret_to_regions(SecretId=n, AddReplicaRegions=[{"Region": "eu-west-1"}])
    assert r["ARN"] == c["ARN"] and r["ReplicationStatus"][0]["Region"] == "eu-west-1"
    eu = server.client(region="eu-west-1")
    replica = eu.describe_secret(SecretId=n)
    assert replica["PrimaryRegion"] == "us-east-1"
    for call in (lambda: eu.put_secret_value(SecretId=n, SecretString="x"),
                 lambda: eu.update_secret(SecretId=n, Description="x"),
                 lambda: eu.tag_resource(SecretId=n, Tags=[{"Key": "k", "Value": "v"}]),
                 lambda: eu.delete_secret(SecretId=n),
                 lambda: eu.put_resource_policy(SecretId=n, ResourcePolicy=ACCOUNT_ONLY),
                 lambda: eu.get_resource_policy(SecretId=n),
                 lambda: eu.delete_resource_policy(SecretId=n),
                 # The guard comes before the request's own checks (Region is optional in
                 # AWS's model, so an empty entry reaches the operation).
                 lambda: eu.put_resource_policy(SecretId=n, ResourcePolicy="k1"),
                 lambda: eu.replicate_secret_to_regions(SecretId=n, AddReplicaRegions=[{}])):
        fails(call, "InvalidParameterException", REPLICA)
    fails(lambda: sm.replicate_secret_to_regions(SecretId=n, AddReplicaRegions=[{}]),
          "InvalidParameterException", 'Invalid replica region "".')
    msg = fails(lambda: sm.delete_secret(SecretId=n), "InvalidParameterException")
    assert c["ARN"] in msg
    # Removing a region that is not a replica is a no-op (idempotent).
    kept = sm.remove_regions_from_replication(SecretId=n, RemoveReplicaRegions=["ap-south-1"])
    assert [r["Region"] for r in kept["ReplicationStatus"]] == ["eu-west-1"]
    eu.stop_replication_to_replica(SecretId=n)
    assert "PrimaryRegion" not in eu.describe_secret(SecretId=n) or \
        eu.describe_secret(SecretId=n)["PrimaryRegion"] == "eu-west-1"
    eu.put_secret_value(SecretId=n, SecretString="now a primary")
