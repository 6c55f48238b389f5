"""Names and ids: what CreateSecret and every operation taking a SecretId accept."""

import botocore.exceptions
import pytest

from conformance_support import (FN, INVALID_NAME, NOT_FOUND, err, module_server, name,
                                 no_validation_client, tok)

POLICY = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":'
          '"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue",'
          '"Resource":"*"}]}')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = module_server(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sm(server):
    return server.client()


BAD_NAMES = ["Inv Name", " Inv Name", " Inv*Name? ", " Inv *?!]Name\\-", "tab\there", "colon:x"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_create_refuses_names_outside_the_alphabet(sm, bad):
    """recorded AWS response, test_invalid_secret_name[*] ex_log_1: ValidationException."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=bad, SecretString="x")
    assert err(e) == ("ValidationException", INVALID_NAME)


def test_create_accepts_every_allowed_character(sm):
    """AWS API reference, CreateSecret Name: letters, digits and /_+=.@- ."""
    n = "Valid/_+=.@-Name-" + name()
    c = sm.create_secret(Name=n, SecretString="x")
    assert c["Name"] == n


def test_name_may_end_like_an_arn_suffix(sm):
    """recorded AWS response, test_create_and_update_secret[Valid/_+=.@-Name-a1b2c3-]."""
    for n in ("Valid/_+=.@-Name-a1b2", "Valid/_+=.@-Name-a1b2c3-", "s-a1b2c3"):
        c = sm.create_secret(Name=n, SecretString="x")
        assert sm.describe_secret(SecretId=n)["ARN"] == c["ARN"]


def test_name_longer_than_512_is_a_validation_error(server):
    """botocore model: CreateSecret.Name (NameType) max 512."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_secret(Name="a" * 513, SecretString="x")
    assert err(e)[0] == "ValidationException"
    assert c.create_secret(Name="b" * 512, SecretString="x")["Name"] == "b" * 512


def _calls(sm, bad):
    """Every operation that takes a SecretId, called on a name no secret can have."""
    return {
        "GetSecretValue": lambda: sm.get_secret_value(SecretId=bad),
        "PutSecretValue": lambda: sm.put_secret_value(SecretId=bad, SecretString="x"),
        "UpdateSecret": lambda: sm.update_secret(SecretId=bad, Description="d"),
        "UpdateSecretVersionStage": lambda: sm.update_secret_version_stage(
            SecretId=bad, VersionStage="X", MoveToVersionId=tok()),
        "DescribeSecret": lambda: sm.describe_secret(SecretId=bad),
        "ListSecretVersionIds": lambda: sm.list_secret_version_ids(
            SecretId=bad, IncludeDeprecated=True),
        "DeleteSecret": lambda: sm.delete_secret(SecretId=bad, ForceDeleteWithoutRecovery=True),
        "RestoreSecret": lambda: sm.restore_secret(SecretId=bad),
        "TagResource": lambda: sm.tag_resource(SecretId=bad, Tags=[{"Key": "k", "Value": "v"}]),
        "UntagResource": lambda: sm.untag_resource(SecretId=bad, TagKeys=["k"]),
        "RotateSecret": lambda: sm.rotate_secret(SecretId=bad, RotationLambdaARN=FN),
        "CancelRotateSecret": lambda: sm.cancel_rotate_secret(SecretId=bad),
        "PutResourcePolicy": lambda: sm.put_resource_policy(SecretId=bad, ResourcePolicy=POLICY),
        "GetResourcePolicy": lambda: sm.get_resource_policy(SecretId=bad),
        "DeleteResourcePolicy": lambda: sm.delete_resource_policy(SecretId=bad),
        "ValidateResourcePolicy": lambda: sm.validate_resource_policy(
            SecretId=bad, ResourcePolicy=POLICY),
        "ReplicateSecretToRegions": lambda: sm.replicate_secret_to_regions(
            SecretId=bad, AddReplicaRegions=[{"Region": "eu-west-1"}]),
        "RemoveRegionsFromReplication": lambda: sm.remove_regions_from_replication(
            SecretId=bad, RemoveReplicaRegions=["eu-west-1"]),
        "StopReplicationToReplica": lambda: sm.stop_replication_to_replica(SecretId=bad),
    }


OPS = list(_calls(None, "x"))


@pytest.mark.parametrize("op", OPS)
def test_every_secret_id_is_checked_like_a_name(sm, op):
    """recorded AWS response, test_invalid_secret_name[Inv Name] ex_log_2..ex_log_10
    (DeleteSecret, DescribeSecret, GetSecretValue, ListSecretVersionIds, PutSecretValue,
    TagResource, UntagResource, UpdateSecret, ValidateResourcePolicy); the same rule for
    every other operation taking a SecretId."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        _calls(sm, " Inv*Name? ")[op]()
    assert err(e) == ("ValidationException", INVALID_NAME)


@pytest.mark.parametrize("op", OPS)
def test_every_secret_id_of_an_unknown_secret_is_not_found(sm, op):
    """AWS API reference, <op> errors: ResourceNotFoundException (botocore model lists it for
    every operation taking a SecretId); recorded AWS response, test_secret_not_found."""
    if op in ("DeleteSecret",):
        pytest.skip("a forced delete of an unknown secret succeeds (see test_conf_errors)")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        _calls(sm, "missing-" + name())[op]()
    code, msg = err(e)
    assert code == "ResourceNotFoundException", (op, code, msg)
    assert msg == NOT_FOUND


def test_secret_id_by_full_and_partial_arn(sm):
    """AWS API reference, SecretId: the ARN or the name; a partial ARN (without the random
    suffix) also finds the secret."""
    c = sm.create_secret(Name=name("arn"), SecretString="x")
    partial = c["ARN"].rsplit("-", 1)[0]
    assert sm.describe_secret(SecretId=c["ARN"])["Name"] == c["Name"]
    assert sm.describe_secret(SecretId=partial)["Name"] == c["Name"]
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=c["ARN"][:-6] + "ZZZZZZ")


def test_arn_suffix_is_six_random_characters(sm):
    """AWS API reference, CreateSecret: the ARN ends in a hyphen and six random characters."""
    c = sm.create_secret(Name=name("sfx"), SecretString="x")
    suffix = c["ARN"].rsplit("-", 1)[1]
    assert len(suffix) == 6 and suffix.isalnum()


def test_secret_id_longer_than_2048_is_a_validation_error(server):
    """botocore model: SecretIdType max 2048."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.describe_secret(SecretId="a" * 2049)
    assert err(e)[0] == "ValidationException"
