"""The bucket, through one thread-safe boto3 client; every failure becomes a PublishError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions

from .. import jsondoc
from ..errors import PublishError
from ..manifest import Entry
from . import timestamps
from .plan import OWNER

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

META_OWNER = "wellknown-build"
META_FINGERPRINT = "wellknown-fingerprint"
META_SHA256 = "wellknown-sha256"

_EXPLAIN = {
    "AccessControlListNotSupported": (
        "the bucket has ACLs disabled (Object Ownership: bucket owner enforced, the default "
        "since April 2023), so --acl cannot be used. Publish without --acl and grant read "
        "access with a bucket policy, or serve the bucket through CloudFront with origin "
        "access control."
    ),
    "NoSuchBucket": "the bucket does not exist (check --bucket, --region and --endpoint-url)",
    # A 404 with no S3 error in its body: the endpoint is not an S3 API, e.g. a website or
    # CDN URL, or a URL with the bucket in its path.
    "404": (
        "Not Found, and not an S3 error: is --endpoint-url the store's S3 API endpoint "
        "(https://s3.REGION.amazonaws.com, https://ACCOUNT.r2.cloudflarestorage.com), "
        "not a website, CDN or bucket URL?"
    ),
    "AccessDenied": (
        "access denied: the credentials from the default AWS chain need s3:ListBucket, "
        "s3:GetObject, s3:PutObject (and s3:DeleteObject with --delete) on this bucket"
    ),
}


META_PREFIX = "wellknown-prefix"  # the deployment (--prefix) that wrote the object


@dataclass(frozen=True, slots=True)
class Listed:
    etag: str
    size: int
    modified: str  # LastModified, ISO 8601: a copy_object keeps the ETag but not this


@dataclass(frozen=True, slots=True)
class Head:
    etag: str
    metadata: dict[str, str]
    modified: str
    content_type: str = ""
    cache_control: str = ""


class PreconditionFailed(PublishError):
    """A conditional write lost: someone else wrote or deleted the object first."""


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _client(endpoint_url: str | None, region: str | None, workers: int, timeout: float) -> S3Client:
    custom = endpoint_url is not None
    config = botocore.config.Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=workers + 2,
        connect_timeout=min(10.0, timeout),
        read_timeout=timeout,
        # S3-compatible stores want path-style URLs, and many reject the CRC checksums that
        # boto3 >= 1.36 sends by default (boto/boto3#4392).
        s3={"addressing_style": "path"} if custom else None,
        request_checksum_calculation="when_required" if custom else "when_supported",
        response_checksum_validation="when_required" if custom else "when_supported",
    )
    # botocore's timestamps through our fast path: three quarters of a listing's CPU
    session = boto3.session.Session(botocore_session=timestamps.session())
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def describe(error: Exception, action: str) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", "Unknown"))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = _EXPLAIN.get(code) or str(error.response.get("Error", {}).get("Message", ""))
        return f"{action}: {code} (HTTP {status}): {detail}"
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return f"{action}: no AWS credentials found in the default chain (env, profile, role)"
    return f"{action}: {error}"


@contextmanager
def _wrapped(action: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as e:
        if _code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise PreconditionFailed(describe(e, action)) from None
        raise PublishError(describe(e, action)) from None
    except botocore.exceptions.BotoCoreError as e:
        raise PublishError(describe(e, action)) from None


class Bucket:
    def __init__(
        self,
        name: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        workers: int = 16,
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        with _wrapped("setting up the S3 client"):  # a bad AWS_PROFILE, say
            self.client = _client(endpoint_url, region, workers, timeout)

    def objects(self, prefix: str) -> dict[str, Listed]:
        result: dict[str, Listed] = {}
        with _wrapped(f"listing s3://{self.name}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    modified = item["LastModified"].isoformat()
                    result[item["Key"]] = Listed(item["ETag"], item["Size"], modified)
        return result

    def folders(self, prefix: str) -> tuple[dict[str, Listed], list[str]]:
        """The objects right under `prefix` and its sub-folders (`<prefix><host>/`), to list
        each folder on its own thread: one listing of a large bucket is a long chain of
        1,000-key pages."""
        objects: dict[str, Listed] = {}
        folders: list[str] = []
        with _wrapped(f"listing s3://{self.name}/{prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
                for item in page.get("Contents", []):
                    modified = item["LastModified"].isoformat()
                    objects[item["Key"]] = Listed(item["ETag"], item["Size"], modified)
        return objects, folders

    def head(self, key: str) -> Head | None:
        with _wrapped(f"reading the metadata of {key}"):
            try:
                response = self.client.head_object(Bucket=self.name, Key=key)
            except botocore.exceptions.ClientError as e:
                if _code(e) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
        return Head(
            response["ETag"],
            dict(response.get("Metadata", {})),
            response["LastModified"].isoformat(),
            str(response.get("ContentType", "")),
            str(response.get("CacheControl", "")),
        )

    def get(self, key: str, limit: int = 64 * 1024 * 1024) -> tuple[bytes, str] | None:
        """The body (at most `limit` bytes: an object is input too) and its ETag."""
        with _wrapped(f"reading {key}"):
            try:
                response = self.client.get_object(Bucket=self.name, Key=key)
            except botocore.exceptions.ClientError as e:
                if _code(e) in ("404", "NoSuchKey"):
                    return None
                raise
            body = response["Body"].read(limit + 1)
            response["Body"].close()
            if len(body) > limit:
                raise PublishError(f"reading {key}: larger than {limit} bytes")
            return body, response["ETag"]

    def put(
        self, key: str, body: bytes, entry: Entry, fingerprint: str, acl: str | None, prefix: str
    ) -> str:
        """Upload with the manifest's headers and our ownership marks; returns the ETag."""
        extra: dict[str, Any] = {"ACL": acl} if acl else {}
        with _wrapped(f"uploading {key}"):
            response = self.client.put_object(
                Bucket=self.name,
                Key=key,
                Body=body,
                ContentType=entry.content_type,
                CacheControl=entry.cache_control,
                Metadata={
                    META_OWNER: OWNER,
                    META_FINGERPRINT: fingerprint,
                    META_SHA256: entry.sha256,
                    META_PREFIX: prefix or "/",
                },
                **extra,
            )
        return response["ETag"]

    def put_json(self, key: str, value: object, *, if_match: str | None = None) -> str:
        """Write our own bookkeeping object (state index, lease), conditionally (S3
        conditional writes): `if_match` is the ETag it must still have, or "" for "must not
        exist yet". Losing the condition raises PreconditionFailed."""
        condition: dict[str, str] = {}
        if if_match == "":
            condition["IfNoneMatch"] = "*"
        elif if_match is not None:
            condition["IfMatch"] = if_match
        with _wrapped(f"writing {key}"):
            response = self.client.put_object(
                Bucket=self.name,
                Key=key,
                Body=jsondoc.dumps_line(value).encode(),
                ContentType="application/json",
                CacheControl="no-store",
                Metadata={META_OWNER: OWNER},
                **condition,  # type: ignore[arg-type]
            )
        return response["ETag"]

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        condition = {"IfMatch": if_match} if if_match else {}
        with _wrapped(f"deleting {key}"):
            self.client.delete_object(Bucket=self.name, Key=key, **condition)  # type: ignore[arg-type]
