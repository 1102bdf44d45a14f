"""`validate`: every check render makes, nothing written; `--strict` fails on warnings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..build import Build, build
from ..errors import StrictError


def validate(
    config: Path, now: dt.datetime | None = None, strict: bool = False, out: Path | None = None
) -> Build:
    """`out`: the tree a render or --check is about, whose unchanged instances need no rebuild."""
    result = build(config, now, out)
    if strict and result.warnings:
        raise StrictError(str(config), result.warnings)
    return result
