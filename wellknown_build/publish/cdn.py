"""CloudFront invalidation of exactly what changed, within CloudFront's limits.

Paths are the URL paths without the host folder (a distribution serves `<prefix><host>/`).
Up to WILDCARD_AFTER paths are sent as they are; past that, one wildcard per first path
segment (`/tenants/*`), or `/*` past 15 of them: CloudFront bills paths beyond 1,000 a month
(a wildcard counts as one) and takes at most 3,000 paths, 15 of them wildcards, in progress
per distribution.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING

import boto3
import botocore.config
import botocore.exceptions

from ..errors import PublishError
from .s3 import describe

if TYPE_CHECKING:
    from mypy_boto3_cloudfront import CloudFrontClient

log = logging.getLogger(__name__)
WILDCARD_AFTER = 100
MAX_WILDCARDS = 15


def url_paths(keys: list[str], prefix: str) -> list[str]:
    """URL paths of changed objects: the key less the prefix and the host folder."""
    return sorted({"/" + key.removeprefix(prefix).split("/", 1)[1] for key in keys})


def batch(paths: list[str], limit: int = WILDCARD_AFTER) -> list[str]:
    """What to send for `paths`: themselves, or wildcards that cover them."""
    paths = sorted(set(paths))
    if len(paths) <= limit:
        return paths
    top_files = [p for p in paths if p.count("/") == 1]  # /jwks: no folder to wildcard
    folders = sorted({p.split("/", 2)[1] for p in paths if p.count("/") > 1})
    wildcards = [f"/{folder}/*" for folder in folders]
    sent = [*wildcards, *top_files] if len(wildcards) <= MAX_WILDCARDS else ["/*"]
    if len(sent) > limit:
        sent = ["/*"]
    log.info(
        "%d paths to invalidate: sending %s instead (a wildcard counts as one path)",
        len(paths),
        " ".join(sent),
    )
    return sent


def invalidate(distribution_id: str, paths: list[str]) -> str:
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 4})
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    try:
        client: CloudFrontClient = boto3.session.Session().client("cloudfront", config=config)
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
