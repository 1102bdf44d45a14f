"""`validate`: every check render makes, nothing written; `--strict` fails on warnings."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..build import Build, Pipeline, build
from ..cache import Index, Stat
from ..documents import Document
from ..errors import Problem, StrictError
from ..lifecycle import Live


@dataclass(frozen=True)
class Checked:
    instances: int
    keys: int
    warnings: tuple[Problem, ...]


class _Drop:
    """A sink that keeps nothing: `validate` needs the checks, not the documents."""

    def document(self, document: Document) -> tuple[int, Stat | None]:
        return 0, None

    def settle(self) -> dict[str, Stat]:
        return {}


def check(
    config: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> Checked:
    """Every check, in bounded memory: documents are built and dropped, and the index that
    finds path collisions is a temporary file, not a million rows in memory."""
    with tempfile.TemporaryDirectory(prefix="wellknown-build-") as scratch:
        index = Index.new(str(Path(scratch) / "index.sqlite"))
        try:
            outcome = Pipeline(config, now, None, index, _Drop(), published=published).run()
        finally:
            index.discard()
    if strict and outcome.warnings:
        raise StrictError(str(config), outcome.warnings)
    return Checked(outcome.instances, outcome.keys, outcome.warnings)


def validate(
    config: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    out: Path | None = None,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> Build:
    """Every check, with every document in memory (for `list` and `export`). `out`: the tree
    a render is about, whose unchanged instances need no rebuild. `published`: what a
    bucket's state index knows of each instance's kids (`--bucket`)."""
    result = build(config, now, out, published)
    if strict and result.warnings:
        raise StrictError(str(config), result.warnings)
    return result
