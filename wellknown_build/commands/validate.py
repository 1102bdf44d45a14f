"""`validate`: every check render makes, nothing written; `--strict` fails on warnings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..build import Build, build
from ..errors import StrictError


def validate(config: Path, now: dt.datetime | None = None, strict: bool = False) -> Build:
    result = build(config, now)
    if strict and result.warnings:
        raise StrictError(str(config), result.warnings)
    return result
