"""ListSecrets: AWS's filter matching rules and validation errors. One secret set per module,
named with a unique suffix so filters see only this module's secrets where it matters."""

import uuid

import botocore.exceptions
import pytest

from conformance_support import err, module_server, no_validation_client


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = module_server(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sm(server):
    return server.client()


U = uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def secrets(sm):
    made = {
        "one": dict(Name=f"testing1/one-{U}", Description="a secret"),
        "two": dict(Name=f"/testing2/two-{U}", Description="an secret"),
        "three": dict(Name=f"testing3/three-{U}", Description="asecret"),
        "four": dict(Name=f"/testing4/four-{U}", Description="thesecret"),
        "slash": dict(Name=f"prod/AppBeta/{U}"),
        "under": dict(Name=f"prod_AppBeta_{U}"),
        "plus": dict(Name=f"prod+AppBeta+{U}"),
        "dash_slash": dict(Name=f"prod-AppBeta/{U}"),
        "upper": dict(Name=f"uat/COMPANY/{U}"),
        "partial_upper": dict(Name=f"uat/COMPANYthings/{U}"),
        "tag_rr": dict(Name=f"tagged-rr-{U}", Tags=[{"Key": "right", "Value": "right"}]),
        "tag_rw": dict(Name=f"tagged-rw-{U}", Tags=[{"Key": "right", "Value": "wrong"}]),
        "desc_two": dict(Name=f"SecretTwo{U}", Description="DescTwo"),
        "words": dict(Name=f"words-{U}", Description="one and two"),
    }
    for m in made.values():
        sm.create_secret(SecretString="s", **m)
    return {k: v["Name"] for k, v in made.items()}


def names(sm, *filters):
    out = []
    for page in sm.get_paginator("list_secrets").paginate(Filters=list(filters)):
        out += [s["Name"] for s in page["SecretList"]]
    return [n for n in out if n.endswith(U) or U in n]


def F(key, *values):
    return {"Key": key, "Values": list(values)}


def test_name_is_a_prefix_of_the_whole_name(sm, secrets):
    """AWS-verified emulator case (LocalStack test_list_secrets_filtering): name "/" matches
    names starting with "/"; "!/" the others; a value with a space matches no name."""
    got = names(sm, F("name", "/"))
    assert secrets["two"] in got and secrets["four"] in got
    assert secrets["one"] not in got and secrets["three"] not in got
    got = names(sm, F("name", "!/"))
    assert secrets["one"] in got and secrets["two"] not in got
    assert names(sm, F("name", "testing1 one")) == []


def test_name_is_case_sensitive(sm, secrets):
    """AWS API reference, Filter: name, tag-key, tag-value match case-sensitively."""
    assert secrets["one"] in names(sm, F("name", "testing1"))
    assert names(sm, F("name", "TESTING1")) == []


def test_description_matches_words_anywhere(sm, secrets):
    """AWS-verified emulator case (LocalStack test_list_secrets_filtering): each word of the
    value starts a word of the description; not only a prefix of it."""
    got = names(sm, F("description", "a"))
    assert {secrets["one"], secrets["two"], secrets["three"]} <= set(got)
    assert secrets["four"] not in got
    got = names(sm, F("description", "a secret"))
    assert {secrets["one"], secrets["two"]} <= set(got)
    assert secrets["three"] not in got
    got = names(sm, F("description", "two"))
    assert secrets["words"] in got
    assert names(sm, F("description", "!a"))  # thesecret
    assert secrets["four"] in names(sm, F("description", "!a"))
    assert secrets["one"] not in names(sm, F("description", "!a"))


def test_description_ignores_case(sm, secrets):
    """AWS-verified emulator case (moto test_with_all_filter 'DescTwo'): case-insensitive."""
    assert secrets["desc_two"] in names(sm, F("description", "desc"))
    assert secrets["desc_two"] in names(sm, F("description", "TWO"))


def test_several_filters_combine_with_and(sm, secrets):
    """AWS API reference, ListSecrets Filters; AWS-verified emulator case
    (LocalStack test_list_secrets_filtering): description "a" and name "secret" match none."""
    assert names(sm, F("description", "a"), F("name", "secret")) == []
    got = names(sm, F("tag-key", "right"), F("tag-value", "right"))
    assert got == [secrets["tag_rr"]]


def test_several_values_combine_with_or(sm, secrets):
    """AWS API reference, Filter.Values: the secret matches any of the values."""
    got = names(sm, F("name", secrets["one"], secrets["two"]))
    assert sorted(got) == sorted([secrets["one"], secrets["two"]])


def test_duplicate_keys_are_allowed_and_combine_with_and(sm, secrets):
    """AWS-verified emulator case (moto test_with_duplicate_filter_keys)."""
    got = names(sm, F("description", "one"), F("description", "two"))
    assert got == [secrets["words"]]


def test_all_splits_words_at_separators_and_case(sm, secrets):
    """AWS-verified emulator case (moto test_with_all_filter_special_characters): `all` cuts
    names at one kind of separator and where a capital starts a word."""
    got = set(names(sm, F("all", "AppBeta")))
    assert {secrets["slash"], secrets["under"], secrets["plus"]} <= got
    assert secrets["dash_slash"] not in got  # two kinds of separator: one word
    assert set(names(sm, F("all", "Beta"))) == got
    assert names(sm, F("all", "+")) == []
    assert names(sm, F("all", "company")) == [secrets["upper"]]
    assert names(sm, F("all", "things")) == []
    assert names(sm, F("all", "Ythings")) == [secrets["partial_upper"]]
    assert names(sm, F("all", "pany")) == []


def test_all_looks_at_tags_and_description(sm, secrets):
    """AWS API reference, Filter key all: name, description, tag keys and values."""
    assert secrets["tag_rw"] in names(sm, F("all", "wrong"))
    assert secrets["desc_two"] in names(sm, F("all", "desc two"))


def test_tag_key_and_value_are_prefixes(sm, secrets):
    """AWS API reference, Filter keys tag-key, tag-value: prefix match."""
    assert sorted(names(sm, F("tag-key", "rig"))) == sorted([secrets["tag_rr"], secrets["tag_rw"]])
    assert names(sm, F("tag-value", "wro")) == [secrets["tag_rw"]]


def test_owning_service_and_primary_region(sm, secrets):
    """AWS-verified emulator case (moto test_filter_with_owning_service): no secret is owned
    by a service here; primary-region matches replicated secrets only."""
    assert sm.list_secrets(Filters=[F("owning-service", "n/a")])["SecretList"] == []
    assert names(sm, F("primary-region", "us-east-1")) == []


def test_missing_key_is_invalid_parameter(server):
    """AWS-verified emulator case (moto test_with_no_filter_key): "Invalid filter key"."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_secrets(Filters=[{"Values": ["foo"]}])
    assert err(e) == ("InvalidParameterException", "Invalid filter key")


def test_missing_values_is_invalid_parameter(server):
    """AWS-verified emulator case (moto test_with_no_filter_values)."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_secrets(Filters=[{"Key": "description"}])
    assert err(e) == ("InvalidParameterException", "Invalid filter values for key: description")


def test_unknown_key_is_a_validation_error(server):
    """botocore model: FilterNameStringType enum; moto test_with_invalid_filter_key:
    ValidationException in AWS's "1 validation error detected" form."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_secrets(Filters=[{"Key": "invalid", "Values": ["foo"]}])
    code, msg = err(e)
    assert code == "ValidationException"
    assert msg.startswith("1 validation error detected: Value 'invalid' at "
                          "'filters.1.member.key' failed to satisfy constraint: Member must "
                          "satisfy enum value set: [")


def test_too_many_values_is_a_validation_error(server):
    """botocore model: FilterValuesStringList max 10."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_secrets(Filters=[{"Key": "name", "Values": [str(i) for i in range(11)]}])
    code, msg = err(e)
    assert code == "ValidationException" and "'filters.1.member.values'" in msg


def test_value_outside_pattern_is_a_validation_error(server):
    """botocore model: FilterValueStringType pattern ^\\!?[a-zA-Z0-9 :_@/+=.-!]*$."""
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_secrets(Filters=[{"Key": "name", "Values": ["a*b"]}])
    assert err(e)[0] == "ValidationException"


def test_max_results_bounds_and_pagination(sm, server, secrets):
    """botocore model: ListSecrets MaxResults 1-100; NextToken pages; a bad token is
    InvalidNextTokenException."""
    first = sm.list_secrets(MaxResults=2)
    assert len(first["SecretList"]) == 2 and "NextToken" in first
    second = sm.list_secrets(MaxResults=2, NextToken=first["NextToken"])
    assert {s["ARN"] for s in second["SecretList"]}.isdisjoint(
        {s["ARN"] for s in first["SecretList"]})
    with pytest.raises(sm.exceptions.InvalidNextTokenException):
        sm.list_secrets(NextToken="not-a-token")
    c = no_validation_client(server)
    with pytest.raises(botocore.exceptions.ClientError):
        c.list_secrets(MaxResults=101)


def test_planned_deletion_is_listed_only_on_request(sm):
    """AWS-verified emulator case (moto test_with_include_planned_deleted_secrets)."""
    n = f"planned-{U}"
    sm.create_secret(Name=n, SecretString="s")
    sm.delete_secret(SecretId=n)
    assert n not in names(sm, F("name", n))
    listed = sm.list_secrets(IncludePlannedDeletion=True, Filters=[F("name", n)])["SecretList"]
    assert [s["Name"] for s in listed] == [n] and "DeletedDate" in listed[0]
