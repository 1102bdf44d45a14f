"""`validate`: every check render makes, nothing written; `--strict` fails on warnings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from ..build import Build, build
from ..errors import StrictError
from ..lifecycle import Live


def validate(
    config: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    out: Path | None = None,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> Build:
    """`out`: the tree a render or --check is about, whose unchanged instances need no rebuild.
    `published`: what a bucket's state index knows of each instance's kids (`--bucket`)."""
    result = build(config, now, out, published)
    if strict and result.warnings:
        raise StrictError(str(config), result.warnings)
    return result
