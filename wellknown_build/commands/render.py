"""`render` and `render --check`: build every document, then write or compare the tree."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .. import tree
from ..build import Build
from .validate import validate


@dataclass(frozen=True)
class RenderResult:
    build: Build
    changes: tree.Changes


def render(
    config: Path, out: Path, now: dt.datetime | None = None, strict: bool = False
) -> RenderResult:
    result = validate(config, now, strict, out)
    return RenderResult(result, tree.write(out, result.outputs, result.cache))


def check(
    config: Path, out: Path, now: dt.datetime | None = None, strict: bool = False
) -> RenderResult:
    result = validate(config, now, strict, out)
    return RenderResult(result, tree.compare(out, result.outputs))
