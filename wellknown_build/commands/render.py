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
import logging
import os
import sqlite3
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import tree
from ..build import Pipeline
from ..cache import CACHE_NAME, Index, sqlite_name
from ..errors import Problem, StrictError, TreeError
from ..lifecycle import Live

log = logging.getLogger(__name__)
# A cache SQLite cannot open at a path this long is kept nowhere (bytes; Windows' SQLite
# stops at MAX_PATH, 260 characters).
LONG_PATH = 200 if os.name == "nt" else 400
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
    held = False  # a render that lost the race for a new folder removes nothing of it
    try:
        with tree.locked(out):
            held = True
            try:
                return _run(config, out, now, strict, published, write=True)
            except BaseException:
                if fresh:  # a failed first render leaves no folder behind
                    _remove_new(out)  # its lock file while still held: no one else's
                raise
    except BaseException:
        if fresh and held:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # (Windows: filelock removes its lock file on release)
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
    try:
        return _attempt(config, out, now, strict, published, write, cache=True)
    except tree.CacheMismatch as e:  # found before anything visible changed
        log.warning("%s; rendering without it", e)
        return _attempt(config, out, now, strict, published, write, cache=False)


def _attempt(
    config: Path,
    out: Path,
    now: dt.datetime | None,
    strict: bool,
    published: Published | None,
    write: bool,
    cache: bool,
) -> RenderResult:
    stage = tree.Stage(out, write)
    scratch = str(out / (CACHE_NAME + ".wkb.tmp")) if write else None
    elsewhere = contextlib.ExitStack()  # a scratch folder for a cache that cannot be in out
    try:
        index = _new_index(scratch, elsewhere)
    except (sqlite3.Error, OSError) as e:  # OSError: a folder where its scratch goes, say
        stage.discard()
        elsewhere.close()
        raise _cache_failed(scratch, e) from None
    pipeline = Pipeline(config, now, out, index, stage, published=published, cache=cache)
    try:
        outcome = pipeline.run()
        if strict and outcome.warnings:
            raise StrictError(str(config), outcome.warnings)
        if write:
            stage.assert_staged()
            changes = tree.commit(out, index, outcome.previous, outcome.dirty, stage.check_folder)
        else:
            stage.assert_unblocked()
            changes = tree.check(out, index, outcome.previous, outcome.dirty)
    except sqlite3.Error as e:  # the cache being made: a full disk, say
        stage.discard()
        index.discard()
        raise _cache_failed(scratch, e) from None
    except BaseException:
        stage.discard()
        index.discard()
        raise
    finally:
        stage.close()
        if pipeline.previous is not None:
            pipeline.previous.close()
        elsewhere.close()
    if not write:
        index.discard()
    return RenderResult(outcome.instances, outcome.warnings, changes)


def _new_index(scratch: str | None, elsewhere: contextlib.ExitStack) -> Index:
    """The index this render makes: at `scratch`, to become the cache (in memory without).
    SQLite's Unix VFS refuses a file whose absolute path, links resolved, is past about 500
    bytes (MAX_PATHNAME in os_unix.c: 512, less its journal's suffix); an output folder that
    deep renders with the index in a temporary folder and keeps no cache, with a warning."""
    try:
        return Index.new(scratch)
    except sqlite3.Error as e:
        if scratch is None or "unable to open" not in str(e):  # (SQLITE_CANTOPEN's words)
            raise
        if len(os.fsencode(sqlite_name(scratch))) < LONG_PATH:
            raise
        log.warning(
            "the render cache cannot be kept in %s (%s: its path is longer than SQLite "
            "allows); rendering without it, so every render of this folder is a full one",
            os.path.dirname(scratch),
            e,
        )
    folder = elsewhere.enter_context(tempfile.TemporaryDirectory(prefix="wellknown-build-"))
    return Index.new(os.path.join(folder, "index.sqlite"), kept=False)


def _cache_failed(scratch: str | None, e: sqlite3.Error | OSError) -> TreeError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else e
    return TreeError(
        f"writing the render cache {scratch or 'in memory'} failed ({reason}); nothing was changed"
    )


def _remove_new(out: Path) -> None:
    """Remove what a failed first render made: its lock and cache scratch (its staging
    folder is gone already; nothing else can be in a folder this run created)."""
    for name in (tree.LOCK_NAME, CACHE_NAME + ".wkb.tmp"):
        with contextlib.suppress(OSError):
            os.unlink(out / name)
