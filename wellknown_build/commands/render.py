"""`render` and `render --check`: build every document, then write or compare the tree.

One configuration file at a time, in bounded memory: each instance's documents are compared
with the tree and (when writing) staged, then dropped; the render's SQLite index (cache.py)
keeps what the manifest and the next render need. Only when every instance is checked does
anything visible change (tree.commit); on any problem the staged bodies are removed and the
tree is as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import tree
from ..build import Pipeline
from ..cache import CACHE_NAME, Index
from ..errors import Problem, StrictError
from ..lifecycle import Live

Published = Mapping[str, Mapping[str, Live]]  # per instance, its kids in a bucket (--bucket)


@dataclass(frozen=True)
class RenderResult:
    instances: int
    warnings: tuple[Problem, ...]
    changes: tree.Changes


def render(
    config: Path,
    out: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    published: Published | None = None,
) -> RenderResult:
    # One lock over reading the last render and writing the next: a second render at the
    # same time fails at once instead of building from a tree that is about to change.
    fresh = not os.path.lexists(out)
    try:
        with tree.locked(out):
            return _run(config, out, now, strict, published, write=True)
    except BaseException:
        if fresh:  # a failed first render leaves no folder behind
            _remove_new(out)
        raise


def check(
    config: Path,
    out: Path,
    now: dt.datetime | None = None,
    strict: bool = False,
    published: Published | None = None,
) -> RenderResult:
    return _run(config, out, now, strict, published, write=False)


def _run(
    config: Path,
    out: Path,
    now: dt.datetime | None,
    strict: bool,
    published: Published | None,
    write: bool,
) -> RenderResult:
    stage = tree.Stage(out, write)
    scratch = str(out / (CACHE_NAME + ".wkb.tmp")) if write else None
    index = Index.new(scratch)
    pipeline = Pipeline(config, now, out, index, stage, published=published)
    try:
        outcome = pipeline.run()
        if strict and outcome.warnings:
            raise StrictError(str(config), outcome.warnings)
        if write:
            changes = tree.commit(out, index, outcome.previous, outcome.dirty)
        else:
            changes = tree.check(out, index, outcome.previous, outcome.dirty)
    except BaseException:
        stage.discard()
        index.discard()
        raise
    finally:
        if pipeline.previous is not None:
            pipeline.previous.close()
    if not write:
        index.discard()
    return RenderResult(outcome.instances, outcome.warnings, changes)


def _remove_new(out: Path) -> None:
    """Remove what a failed first render made: its lock, cache scratch and staging folder
    (nothing else can be in a folder this run created), then the folder."""
    for name in (tree.LOCK_NAME, CACHE_NAME + ".wkb.tmp"):
        with contextlib.suppress(OSError):
            os.unlink(out / name)
    with contextlib.suppress(OSError):
        os.rmdir(out)
