#!/usr/bin/env python3
"""A custom rotation function in the shape of a Lambda handler, run by `keyroll serve` as an
external command: one event ({"Step", "SecretId", "ClientRequestToken"}) on stdin per step,
the server's endpoint, credentials and region in the environment. It rotates an API key
(`api_key`) of a JSON secret and calls back into Secrets Manager with boto3, like a Lambda.
"""

import json
import os
import secrets
import sys

import boto3

sm = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def create_secret(arn, token):
    try:
        sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        return
    except sm.exceptions.ResourceNotFoundException:
        pass
    current = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
    current["api_key"] = "key-" + secrets.token_hex(16)
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(current),
        VersionStages=["AWSPENDING"],
    )


def set_secret(arn, token):
    # The external API would learn the new key here; log which version, never the key.
    marker = os.environ.get("ROTATOR_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(f"set {token}\n")


def test_secret(arn, token):
    pending = json.loads(sm.get_secret_value(SecretId=arn, VersionId=token)["SecretString"])
    if not pending.get("api_key", "").startswith("key-"):
        raise ValueError("the pending API key is malformed")


def finish_secret(arn, token):
    meta = sm.describe_secret(SecretId=arn)
    current = next(v for v, s in meta["VersionIdsToStages"].items() if "AWSCURRENT" in s)
    if current == token:
        return
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current,
    )


def handler(event):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    meta = sm.describe_secret(SecretId=arn)
    if not meta.get("RotationEnabled"):
        raise ValueError("rotation is not enabled")
    stages = meta["VersionIdsToStages"].get(token)
    if stages is None:
        raise ValueError("the token is not a version of the secret")
    if "AWSCURRENT" in stages:
        return
    if "AWSPENDING" not in stages:
        raise ValueError("the version is not AWSPENDING")
    {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret,
     "finishSecret": finish_secret}[step](arn, token)


if __name__ == "__main__":
    handler(json.load(sys.stdin))
