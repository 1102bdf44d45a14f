"""What each CLI command does, as plain functions the CLI (and tests) call."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import tree
from .build import Build, build

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderResult:
    build: Build
    changes: tree.Changes


def render(config: Path, out: Path) -> RenderResult:
    result = build(config)
    changes = tree.write(out, result.documents)
    return RenderResult(result, changes)


def check(config: Path, out: Path) -> RenderResult:
    result = build(config)
    return RenderResult(result, tree.compare(out, result.documents))


def validate(config: Path) -> Build:
    return build(config)
