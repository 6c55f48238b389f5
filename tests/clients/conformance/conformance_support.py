"""Shared by the conformance modules: one `keyroll serve` per module, boto3 clients on it,
raw signed requests (for what the SDKs would refuse to send), and error helpers.

Every test in this directory states one rule of AWS Secrets Manager and names its source:
- "botocore model: ..."       the service model botocore ships (shapes, bounds, patterns,
                               the errors each operation documents);
- "AWS API reference, ..."     AWS's Secrets Manager API reference;
- "recorded AWS response, ..." a response recorded against real AWS in a public suite (the
                               case's name is given);
- "AWS-verified emulator case, ..." a case of a public emulator suite marked as verified
                               against AWS.
"""

import uuid

import pytest
from botocore.config import Config as BotoConfig

from conftest import KeyrollServer, raw

FN = "arn:aws:lambda:us-east-1:000000000000:function:SecretsRotationFunction"

INVALID_NAME = (
    "Invalid name. Must be a valid name containing alphanumeric characters, or any of the "
    "following: -/_+=.@!"
)
NO_TOKEN = "You must provide a ClientRequestToken value. We recommend a UUID-type value."
REPLICA = (
    "Operation not permitted on a replica secret. Call must be made in primary secret's region."
)
MARKED = "You can't perform this operation on the secret because it was marked for deletion."
NOT_FOUND = "Secrets Manager can't find the specified secret."


def module_server(tmp_path_factory):
    config = "[functions.SecretsRotationFunction]\nbuiltin = true\n"
    s = KeyrollServer(tmp_path_factory.mktemp("conformance") / "data", config).start()
    return s


def no_validation_client(server, region="us-east-1"):
    """A client that sends what botocore would refuse locally (too-short tokens, lengths)."""
    key_id, secret = server.keys()
    import boto3

    return boto3.client(
        "secretsmanager",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=BotoConfig(retries={"max_attempts": 1}, parameter_validation=False),
    )


def err(excinfo):
    e = excinfo.value.response["Error"]
    return e["Code"], e["Message"]


def name(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tok():
    return str(uuid.uuid4())


def raw_call(server, op, body):
    return raw(server, op, body)


__all__ = [
    "FN", "INVALID_NAME", "NO_TOKEN", "REPLICA", "MARKED", "NOT_FOUND", "module_server",
    "no_validation_client", "err", "name", "tok", "raw_call", "pytest",
]
