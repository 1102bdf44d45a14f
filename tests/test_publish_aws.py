"""Opt-in: publish to a real bucket when WELLKNOWN_TEST_S3_BUCKET is set (credentials from the
default AWS chain). Writes under a unique prefix and removes only what it wrote."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest

from .helpers import KEY_MAKERS, Run, public_pem, write, write_config

BUCKET = os.environ.get("WELLKNOWN_TEST_S3_BUCKET")
pytestmark = [
    pytest.mark.aws,
    pytest.mark.skipif(not BUCKET, reason="set WELLKNOWN_TEST_S3_BUCKET to run against real S3"),
]


def test_publish_to_real_s3(run: Run, tmp_path: Path) -> None:
    assert BUCKET
    prefix = f"wellknown-build-test/{uuid.uuid4().hex}/"
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    write_config(
        tmp_path, "instances: [{id: a, issuer: 'https://a.example', keys: [{path: keys/a.pem}]}]"
    )
    assert run("render", "instances.yaml").exit_code == 0
    s3 = boto3.client("s3")
    try:
        first = run("publish", "--bucket", BUCKET, "--prefix", prefix)
        assert first.exit_code == 0, first.output
        head = s3.head_object(
            Bucket=BUCKET, Key=f"{prefix}a.example/.well-known/openid-configuration"
        )
        assert head["ContentType"] == "application/json"
        again = run("publish", "--bucket", BUCKET, "--prefix", prefix)
        assert "0 created, 0 updated, 2 unchanged" in again.output
    finally:
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        for item in listing.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=item["Key"])
