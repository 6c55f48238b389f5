"""Fields AWS omits or keeps in responses."""

import pytest

from conformance_support import module_server, name, raw_call, tok


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = module_server(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sm(server):
    return server.client()


def test_create_without_value_has_no_version(sm):
    """recorded AWS response, test_create_secret_version_from_empty_secret: CreateSecret
    without a value returns no VersionId; DescribeSecret has no VersionIdsToStages."""
    c = sm.create_secret(Name=name(), Description="")
    assert "VersionId" not in c
    d = sm.describe_secret(SecretId=c["ARN"])
    assert "VersionIdsToStages" not in d
    p = sm.put_secret_value(SecretId=c["ARN"], SecretString="v")
    assert p["VersionStages"] == ["AWSCURRENT"]


def test_create_without_value_ignores_the_token(server, sm):
    """recorded AWS response, test_secret_tags: a value-less CreateSecret (the SDK still sends
    a ClientRequestToken) answers ARN and Name only."""
    status, body = raw_call(server, "CreateSecret", {"Name": name(), "ClientRequestToken": tok()})
    assert status == 200 and set(body) == {"ARN", "Name"}


def test_empty_description_is_not_returned(sm):
    """recorded AWS response, test_create_secret_version_from_empty_secret (describe-secret):
    Description="" is absent from DescribeSecret and ListSecrets."""
    n = name()
    sm.create_secret(Name=n, Description="", SecretString="v")
    assert "Description" not in sm.describe_secret(SecretId=n)
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [n]}])["SecretList"]
    assert len(listed) == 1 and "Description" not in listed[0]


def test_description_is_returned_once_set(sm):
    """recorded AWS response, test_update_secret_description."""
    n = name()
    sm.create_secret(Name=n, SecretString="v")
    assert "Description" not in sm.describe_secret(SecretId=n)
    u = sm.update_secret(SecretId=n, Description="MyDescription")
    assert "VersionId" not in u
    assert sm.describe_secret(SecretId=n)["Description"] == "MyDescription"


def test_tags_absent_until_tagged_then_empty_list_after_last_removed(sm):
    """recorded AWS response, test_secret_tags (describe_secret .. describe_secret_6)."""
    arn = sm.create_secret(Name=name())["ARN"]
    assert "Tags" not in sm.describe_secret(SecretId=arn)
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "tag1", "Value": "value1"}])
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "tag2", "Value": "value2"}])
    assert sm.describe_secret(SecretId=arn)["Tags"] == [
        {"Key": "tag1", "Value": "value1"}, {"Key": "tag2", "Value": "value2"}]
    sm.untag_resource(SecretId=arn, TagKeys=["tag1"])
    assert sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "tag2", "Value": "value2"}]
    sm.untag_resource(SecretId=arn, TagKeys=["tag2"])
    assert sm.describe_secret(SecretId=arn)["Tags"] == []


def test_tag_resource_replaces_the_value_of_an_existing_key(sm):
    """AWS API reference, TagResource: a key already present gets the new value."""
    arn = sm.create_secret(Name=name(), SecretString="v", Tags=[{"Key": "k", "Value": "1"}])["ARN"]
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "k", "Value": "2"}])
    assert sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "k", "Value": "2"}]


def test_version_list_entries(sm):
    """recorded AWS response, test_deprecated_secret_version_stage: KmsKeyIds names the
    default key as DefaultEncryptionKey, and a version without labels (listed with
    IncludeDeprecated) has no VersionStages key."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="1")["VersionId"]
    sm.put_secret_value(SecretId=n, SecretString="2")
    sm.put_secret_value(SecretId=n, SecretString="3")
    plain = sm.list_secret_version_ids(SecretId=n)["Versions"]
    assert v1 not in [v["VersionId"] for v in plain]
    every = {v["VersionId"]: v for v in
             sm.list_secret_version_ids(SecretId=n, IncludeDeprecated=True)["Versions"]}
    assert "VersionStages" not in every[v1]
    assert all(v["KmsKeyIds"] == ["DefaultEncryptionKey"] for v in every.values())


def test_version_list_names_a_customer_key(sm):
    """AWS API reference, SecretVersionsListEntry.KmsKeyIds: the key that encrypts the version."""
    n = name()
    sm.create_secret(Name=n, SecretString="1", KmsKeyId="alias/mine")
    assert sm.list_secret_version_ids(SecretId=n)["Versions"][0]["KmsKeyIds"] == ["alias/mine"]


def test_read_versions_carry_last_accessed_date(sm):
    """recorded AWS response, test_last_accessed_date / AWS API reference,
    SecretVersionsListEntry.LastAccessedDate: set (to the day) once a version is read."""
    n = name()
    sm.create_secret(Name=n, SecretString="1")
    assert "LastAccessedDate" not in sm.list_secret_version_ids(SecretId=n)["Versions"][0]
    assert "LastAccessedDate" not in sm.describe_secret(SecretId=n)
    sm.get_secret_value(SecretId=n)
    entry = sm.list_secret_version_ids(SecretId=n)["Versions"][0]
    assert entry["LastAccessedDate"].hour == 0
    assert "LastAccessedDate" in sm.describe_secret(SecretId=n)


def test_describe_omits_rotation_fields_without_rotation(sm):
    """recorded AWS response, test_first_rotate_secret_with_missing_lambda_arn (describe)."""
    n = name()
    sm.create_secret(Name=n, SecretString="1")
    d = sm.describe_secret(SecretId=n)
    for k in ("RotationEnabled", "RotationLambdaARN", "RotationRules", "DeletedDate",
              "LastRotatedDate", "NextRotationDate", "Tags", "Description", "KmsKeyId",
              "PrimaryRegion", "ReplicationStatus", "OwningService"):
        assert k not in d, k
    assert set(d) - {"ResponseMetadata"} == {"ARN", "Name", "CreatedDate", "LastChangedDate",
                                              "VersionIdsToStages"}


def test_list_secrets_entries_carry_versions_to_stages(sm):
    """AWS API reference, SecretListEntry.SecretVersionsToStages."""
    n = name()
    v = sm.create_secret(Name=n, SecretString="1")["VersionId"]
    e = sm.list_secrets(Filters=[{"Key": "name", "Values": [n]}])["SecretList"][0]
    assert e["SecretVersionsToStages"] == {v: ["AWSCURRENT"]}


def test_get_secret_value_response_shape(sm):
    """recorded AWS response, test_get_secret_value: ARN, Name, VersionId, SecretString,
    VersionStages, CreatedDate; SecretBinary only for binary secrets."""
    n = name()
    sm.create_secret(Name=n, SecretString="s")
    g = sm.get_secret_value(SecretId=n)
    assert set(g) - {"ResponseMetadata"} == {"ARN", "Name", "VersionId", "SecretString",
                                              "VersionStages", "CreatedDate"}
    b = name()
    sm.create_secret(Name=b, SecretBinary=b"\x00\x01\xff")
    gb = sm.get_secret_value(SecretId=b)
    assert gb["SecretBinary"] == b"\x00\x01\xff" and "SecretString" not in gb


def test_delete_response_and_deleted_date(sm):
    """recorded AWS response, test_force_delete_deleted_secret: DeleteSecret answers ARN, Name,
    DeletionDate; DescribeSecret then shows DeletedDate; a forced delete after that succeeds."""
    n = name()
    sm.create_secret(Name=n, SecretString="1")
    r = sm.delete_secret(SecretId=n)
    assert set(r) - {"ResponseMetadata"} == {"ARN", "Name", "DeletionDate"}
    assert "DeletedDate" in sm.describe_secret(SecretId=n)
    f = sm.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True)
    assert f["Name"] == n
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=n)


def test_each_version_read_is_dated(sm):
    """recorded AWS response, test_update_secret_version_stages_current_pending_cycle
    (list_secret_version_ids_res_2): every version that was read carries LastAccessedDate,
    not only the first read of the day; a version never read has none."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="2", VersionStages=["AWSPENDING"])["VersionId"]
    v3 = sm.put_secret_value(SecretId=n, SecretString="3", VersionStages=["X"])["VersionId"]
    sm.get_secret_value(SecretId=n)
    sm.get_secret_value(SecretId=n, VersionStage="AWSPENDING")
    dated = {v["VersionId"]: "LastAccessedDate" in v
             for v in sm.list_secret_version_ids(SecretId=n)["Versions"]}
    assert dated == {v1: True, v2: True, v3: False}
