"""CloudFront invalidation of exactly what changed."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import boto3
import botocore.exceptions

from ..errors import PublishError
from .s3 import describe

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

# Past this many paths one wildcard is cheaper: CloudFront bills paths beyond 1,000 a month
# and a wildcard counts as one path.
WILDCARD_AFTER = 100


def invalidation_paths(keys: list[str], prefix: str, limit: int = WILDCARD_AFTER) -> list[str]:
    """URL paths of changed objects: the key less the prefix and the host folder.

    A distribution serves one or more issuer hosts from `<prefix><host>/`, so the host is
    not part of the path it caches under.
    """
    paths = sorted({"/" + key.removeprefix(prefix).split("/", 1)[1] for key in keys})
    return ["/*"] if len(paths) > limit else paths


def invalidate(distribution_id: str, paths: list[str]) -> str:
    client: CloudFrontClient = boto3.session.Session().client("cloudfront")
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    try:
        response = client.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": paths},
                "CallerReference": f"wellknown-build-{digest}-{time.time_ns()}",
            },
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise PublishError(describe(e, f"invalidating CloudFront {distribution_id}")) from None
    return response["Invalidation"]["Id"]
