"""Staging labels: where PutSecretValue, UpdateSecret and UpdateSecretVersionStage leave them.
Label lists are compared sorted: AWS does not specify their order (the recorded suites sort
them before comparing)."""

import pytest

from conformance_support import err, module_server, name


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = module_server(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sm(server):
    return server.client()


def labels(sm, secret, deprecated=False):
    vs = sm.list_secret_version_ids(SecretId=secret, IncludeDeprecated=deprecated)["Versions"]
    return {v["VersionId"]: sorted(v["VersionStages"]) if "VersionStages" in v else None
            for v in vs}


def test_put_moves_current_and_previous(sm):
    """recorded AWS response, test_put_secret_value_with_version_stages /
    test_update_secret_description: a new AWSCURRENT makes the old one AWSPREVIOUS."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="2")["VersionId"]
    assert labels(sm, n) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
    v3 = sm.update_secret(SecretId=n, SecretString="3")["VersionId"]
    assert labels(sm, n) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert labels(sm, n, deprecated=True)[v1] is None


def test_current_moved_onto_pending_then_a_new_value(sm):
    """recorded AWS response, test_update_secret_version_stages_current_pending: after
    AWSCURRENT moves onto the AWSPENDING version, a put of a new value leaves that version
    with AWSPREVIOUS only (AWSPENDING does not stay)."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="Something1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="Something2",
                             VersionStages=["AWSPENDING"])["VersionId"]
    assert labels(sm, n) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}
    sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                   RemoveFromVersionId=v1, MoveToVersionId=v2)
    assert labels(sm, n) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}
    v3 = sm.put_secret_value(SecretId=n, SecretString="SS3")["VersionId"]
    assert labels(sm, n) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}


def test_current_pending_cycle(sm):
    """recorded AWS response, test_update_secret_version_stages_current_pending_cycle."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="S1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="S2", VersionStages=["AWSPENDING"])["VersionId"]
    sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                   RemoveFromVersionId=v1, MoveToVersionId=v2)
    g = sm.get_secret_value(SecretId=n)
    assert g["VersionId"] == v2 and sorted(g["VersionStages"]) == ["AWSCURRENT", "AWSPENDING"]
    v3 = sm.put_secret_value(SecretId=n, SecretString="S3", VersionStages=["AWSPENDING"])["VersionId"]
    assert labels(sm, n) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"], v3: ["AWSPENDING"]}
    sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                   RemoveFromVersionId=v2, MoveToVersionId=v3)
    assert labels(sm, n) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT", "AWSPENDING"]}


def test_custom_stages_cycle(sm):
    """recorded AWS response,
    test_update_secret_version_stages_current_pending_cycle_custom_stages_2."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="S1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="S2",
                             VersionStages=["AWSCURRENT", "PUT0"])["VersionId"]
    assert labels(sm, n) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "PUT0"]}
    v3 = sm.put_secret_value(SecretId=n, SecretString="S3",
                             VersionStages=["AWSPENDING", "PUT1"])["VersionId"]
    sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                   RemoveFromVersionId=v2, MoveToVersionId=v3)
    assert labels(sm, n) == {v2: ["AWSPREVIOUS", "PUT0"], v3: ["AWSCURRENT", "AWSPENDING", "PUT1"]}
    v4 = sm.put_secret_value(SecretId=n, SecretString="S4",
                             VersionStages=["AWSPENDING", "PUT2"])["VersionId"]
    assert labels(sm, n) == {v2: ["AWSPREVIOUS", "PUT0"], v3: ["AWSCURRENT", "PUT1"],
                             v4: ["AWSPENDING", "PUT2"]}
    sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                   RemoveFromVersionId=v3, MoveToVersionId=v4)
    assert labels(sm, n) == {v2: ["PUT0"], v3: ["AWSPREVIOUS", "PUT1"],
                             v4: ["AWSCURRENT", "AWSPENDING", "PUT2"]}


def test_custom_label_removed_leaves_current(sm):
    """recorded AWS response,
    test_update_secret_version_stages_current_pending_cycle_custom_stages_3."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="SS")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="S1", VersionStages=["PENDING"])["VersionId"]
    sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                   RemoveFromVersionId=v1, MoveToVersionId=v2)
    assert sorted(sm.get_secret_value(SecretId=n, VersionId=v2)["VersionStages"]) == [
        "AWSCURRENT", "PENDING"]
    sm.update_secret_version_stage(SecretId=n, VersionStage="PENDING", RemoveFromVersionId=v2)
    assert sm.get_secret_value(SecretId=n, VersionId=v1)["VersionStages"] == ["AWSPREVIOUS"]
    assert sm.get_secret_value(SecretId=n, VersionId=v2)["VersionStages"] == ["AWSCURRENT"]


def test_labels_move_whole_between_versions(sm):
    """recorded AWS response, test_non_versioning_version_stages_no_replacement: labels named
    by a new put leave their old version; the ones not named stay."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="S0")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="S1",
                             VersionStages=["one", "two", "three"])["VersionId"]
    assert labels(sm, n) == {v1: ["AWSCURRENT"], v2: ["one", "three", "two"]}
    v3 = sm.put_secret_value(SecretId=n, SecretString="S2",
                             VersionStages=["one", "two", "four"])["VersionId"]
    assert labels(sm, n) == {v1: ["AWSCURRENT"], v2: ["three"], v3: ["four", "one", "two"]}


def test_update_stage_requires_remove_from_for_an_attached_label(sm):
    """AWS API reference, UpdateSecretVersionStage RemoveFromVersionId; emulator case
    (AWS wording): InvalidParameterException naming the version."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="2", VersionStages=["X"])["VersionId"]
    with pytest.raises(sm.exceptions.InvalidParameterException) as e:
        sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT", MoveToVersionId=v2)
    assert err(e)[1] == (
        "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently "
        f"attached to version {v1}, so you must explicitly reference that version in "
        "RemoveFromVersionId.")


def test_update_stage_return_shape(sm):
    """recorded AWS response, test_update_secret_version_stages_return_type: ARN and Name."""
    n = name()
    v1 = sm.create_secret(Name=n, SecretString="1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=n, SecretString="2", VersionStages=["X"])["VersionId"]
    r = sm.update_secret_version_stage(SecretId=n, VersionStage="AWSCURRENT",
                                       RemoveFromVersionId=v1, MoveToVersionId=v2)
    assert set(r) - {"ResponseMetadata"} == {"ARN", "Name"}


def test_update_stage_limit_of_labels(sm):
    """botocore model: UpdateSecretVersionStage errors include LimitExceededException; AWS API
    reference: at most 20 staging labels on a version."""
    n = name()
    sm.create_secret(Name=n, SecretString="1")
    v2 = sm.put_secret_value(SecretId=n, SecretString="2",
                             VersionStages=[f"L{i}" for i in range(20)])["VersionId"]
    with pytest.raises(sm.exceptions.LimitExceededException):
        sm.update_secret_version_stage(SecretId=n, VersionStage="L20", MoveToVersionId=v2)
