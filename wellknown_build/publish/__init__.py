"""Publishing the rendered tree to S3 (or an S3-compatible store) and CloudFront.

The only package that imports boto3.
"""

from __future__ import annotations

from .run import Options, Result, publish

__all__ = ["Options", "Result", "publish"]
