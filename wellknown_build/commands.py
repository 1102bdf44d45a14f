"""What each CLI command does, as plain functions the CLI (and tests) call."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from . import tree
from .build import Build, build
from .errors import StrictError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderResult:
    build: Build
    changes: tree.Changes


def _checked(config: Path, now: dt.datetime | None, strict: bool) -> Build:
    result = build(config, now)
    if strict and result.warnings:
        raise StrictError(str(config), result.warnings)
    return result


def render(
    config: Path, out: Path, now: dt.datetime | None = None, strict: bool = False
) -> RenderResult:
    result = _checked(config, now, strict)
    return RenderResult(result, tree.write(out, result.documents))


def check(
    config: Path, out: Path, now: dt.datetime | None = None, strict: bool = False
) -> RenderResult:
    result = _checked(config, now, strict)
    return RenderResult(result, tree.compare(out, result.documents))


def validate(config: Path, now: dt.datetime | None = None, strict: bool = False) -> Build:
    return _checked(config, now, strict)
