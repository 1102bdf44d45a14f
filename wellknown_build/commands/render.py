"""`render` and `render --check`: build every document, then write or compare the tree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import tree
from ..build import Build
from ..lifecycle import Live
from .validate import validate


@dataclass(frozen=True)
class RenderResult:
    build: Build
    changes: tree.Changes


def render(
    config: Path,
    out: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> RenderResult:
    # One lock over reading the last render and writing the next: a second render at the
    # same time fails at once instead of building from a tree that is about to change. A
    # first render builds from nothing, so it takes the lock only to write (and a failed
    # first render leaves no folder behind).
    if not out.is_dir():
        result = validate(config, now, strict, out, published)
        return RenderResult(result, tree.write(out, result.outputs, result.cache))
    with tree.locked(out):
        result = validate(config, now, strict, out, published)
        return RenderResult(result, tree.write(out, result.outputs, result.cache, lock=False))


def check(
    config: Path,
    out: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> RenderResult:
    result = validate(config, now, strict, out, published)
    return RenderResult(result, tree.compare(out, result.outputs))
