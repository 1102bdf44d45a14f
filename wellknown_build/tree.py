"""The only code that writes the output folder.

All-or-nothing and safe at any instant:

- One render at a time: a write holds an OS lock on `DIR/.wellknown-build.lock` (flock on
  POSIX, msvcrt on Windows, through filelock), which the OS drops when the process dies, so
  a killed run never blocks the next one (a PID-named marker would: PID 1 in a container).
- Before the first visible change, a journal `DIR/.wellknown-build.journal` lists every path
  the run may write and every temporary it may leave. It is removed only after the manifest
  is in place. While it exists the tree is "interrupted": `render --check` says so, publish
  refuses, and the next render removes the listed temporaries and treats the listed paths as
  its own (so files of the killed run that are no longer rendered are removed too).
- Every new body is on disk before any existing file is replaced; a failure before that point
  removes what was written. Unchanged files are not touched (their mtime stays); files a
  previous render wrote that are no longer wanted are removed; nothing else is.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import filelock

from . import jsondoc, manifest, staging
from .cache import CACHE_NAME, SEAL_NAME, Index, Stat, seal, stat_of
from .documents import Document
from .errors import TreeError
from .files import DOCUMENT_LIMIT, InputFileError, create_new, open_regular, read_regular

log = logging.getLogger(__name__)
_K = TypeVar("_K")
JOURNAL_NAME = ".wellknown-build.journal"
LOCK_NAME = ".wellknown-build.lock"
STAGING_NAME = ".wellknown-build.staging"  # new bodies, until every instance is checked
_TEMPORARY = ".wkb.tmp"  # suffix of a file written beside the one it replaces
_REMEMBERED_FOLDERS = 4096  # folders known to be safe (or made), per run, at most


@dataclass(frozen=True)
class Changes:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    manifest_changed: bool = False
    interrupted: bool = False  # an earlier render stopped midway (its journal is there)

    @property
    def clean(self) -> bool:
        return not (
            self.created
            or self.updated
            or self.removed
            or self.manifest_changed
            or self.interrupted
        )

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged"
        )


class _Folders(Generic[_K]):
    """What is known of each folder below `top`, worked out top down: a folder's answer from
    its parent's and (unless `step` needs not) one look at it, each folder once per run.
    Forgotten when _REMEMBERED_FOLDERS are known, so that memory stays flat."""

    def __init__(self, top: str, at_top: _K, step: Callable[[_K, str], _K]) -> None:
        self._top, self._at_top, self._step = top, at_top, step
        self._known: dict[str, _K] = {top: at_top}

    def __call__(self, folder: str) -> _K:
        """The answer for `folder`, a folder below (or at) `top`."""
        if len(self._known) > _REMEMBERED_FOLDERS:
            self._known = {self._top: self._at_top}
        chain: list[str] = []  # not known yet, deepest first
        while folder not in self._known:
            chain.append(folder)
            folder, below = os.path.dirname(folder), folder
            if folder == below:  # the file system's root: never below `top`
                raise ValueError(f"{chain[0]} is not below {self._top}")
        known = self._known[folder]
        for inner in reversed(chain):
            known = self._known[inner] = self._step(known, inner)
        return known

    def get(self, folder: str) -> _K | None:
        return self._known.get(folder)


class _Paths:
    """Joins manifest paths onto the output folder, refusing any way out of it.

    Plain strings and os calls: pathlib costs more than the I/O on a 20,000-file tree.
    """

    def __init__(self, out: Path) -> None:
        self.out = str(out)
        # Folders checked (none is a link), by what _kind found. "missing": absent below a
        # real folder, and so is every folder below it; nothing to read there, and no file
        # can stand where a folder is needed. Only this run writes in the tree (the lock),
        # and it stages, so they stay missing until the commit.
        self._checked = _Folders(self.out, "dir", _checked_kind)

    def __call__(self, relative: str) -> str:
        if not manifest.is_tree_path(relative):
            raise TreeError(f"refusing the path {relative!r}: it would leave {self.out}")
        target = manifest.local_path(self.out, relative)
        self._checked(os.path.dirname(target))
        return target

    def missing(self, folder: str) -> bool:
        return self._checked.get(folder) == "missing"


def _checked_kind(above: str, folder: str) -> str:
    """_Paths' answer for a folder: below a missing one, missing without a look; a link is
    refused."""
    if above == "missing":
        return "missing"
    kind = _kind(folder)
    if kind == "link":
        raise TreeError(f"refusing to write through the symbolic link {folder}")
    # absent below a real folder: missing (Windows says "absent" below a file too)
    return "missing" if kind == "absent" and above == "dir" else kind


def _kind(path: str) -> str:
    """absent, link, dir or other (or unreadable)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    except (OSError, ValueError):
        return "other"
    reparse = getattr(info, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT
    if stat.S_ISLNK(info.st_mode) or reparse:
        return "link"
    return "dir" if stat.S_ISDIR(info.st_mode) else "other"


def _is_link(path: str) -> bool:
    """A symbolic link, or on Windows any reparse point: a directory junction leads out of
    the tree as a link does, and os.path.islink says False for it before Python 3.12."""
    return _kind(path) == "link"


def _current(target: str) -> bytes | None:
    try:
        return read_regular(target, DOCUMENT_LIMIT, follow=False)
    except FileNotFoundError:
        return None
    except InputFileError as e:
        raise TreeError(f"{target} {e}, but a document must be written there") from None


class RenderedFileError(TreeError):
    """A rendered file that cannot be read as the manifest says; `reason` without the path."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path} {reason}; render again")
        self.reason = reason


class Reader:
    """Reads rendered files by manifest path, only inside `out`: the real path (symbolic
    links resolved) must stay in it, and only regular files are read. publish, serve and
    verify read the tree through it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._root = os.path.join(os.path.realpath(out), "")

    def locate(self, relative: str) -> str | None:
        """The real path of `relative`, or None if it would lead out of the tree."""
        if not manifest.is_tree_path(relative):
            return None
        real = os.path.realpath(manifest.local_path(self._root, relative))
        return real if real.startswith(self._root) else None

    def locator(self) -> Callable[[str], str | None]:
        """`locate` for a pass over many paths now (the manifest's, say). On POSIX, a path
        whose folders are all real folders and whose last part is no link is its own real
        path: realpath changes a path only at a link (a tree path has no `.`, `..` or `//`).
        Each folder is looked at once for the pass (realpath looked at every part of every
        path again: 6 lstat per file of the bench tree, a sixth of a no-change publish's CPU),
        and any other path is left to `locate`, as before."""
        if os.name != "posix":  # ntpath.realpath is another algorithm (junctions, handles)
            return self.locate
        # real folders all the way down from the tree's root (no link, nothing unreadable)
        top = os.path.dirname(self._root + "x")  # (the root without its "/", unless "/")
        plain = _Folders(top, True, lambda above, folder: above and _kind(folder) == "dir")

        def locate(relative: str) -> str | None:
            if not manifest.is_tree_path(relative):
                return None
            path = self._root + relative
            if plain(os.path.dirname(path)) and _no_link(path):
                return path
            return self.locate(relative)

        return locate

    def read(self, relative: str) -> bytes:
        real = self.locate(relative)
        if real is None:
            raise RenderedFileError(relative[:200], f"leads out of {self.out}")
        try:
            return read_regular(real, DOCUMENT_LIMIT)
        except FileNotFoundError:
            raise RenderedFileError(self.out / relative, "is missing") from None
        except InputFileError as e:
            raise RenderedFileError(self.out / relative, e.reason) from None


def _no_link(path: str) -> bool:
    """Something that is not a link is there (any error: not known to be so)."""
    try:
        return not stat.S_ISLNK(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_manifest(out: Path) -> manifest.Manifest:
    """The manifest of `out` for publish, serve and verify: present, well-formed, and every
    path in it inside the tree; refused whole otherwise."""
    found = manifest.read(out)
    path = out / manifest.MANIFEST_NAME
    if found is None:
        raise TreeError(f"{out}: no manifest; run `wellknown-build render` first")
    locate = Reader(out).locator()
    for entry in found.entries:
        if locate(entry.path) is None:
            raise TreeError(
                f"{path}: lists {entry.path[:200]!r}, which is not a file inside {out}; "
                "render again"
            )
    return found


Journal = dict[str, list[str]]


def _journal(out: Path) -> Journal | None:
    """The journal of an interrupted render, or None; a damaged one counts as empty."""
    path = out / JOURNAL_NAME
    try:
        raw = jsondoc.loads(read_regular(path, manifest.MANIFEST_LIMIT))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"paths": [], "temporaries": []}
    result: dict[str, list[str]] = {}
    for name in ("paths", "temporaries"):
        items = raw.get(name) if isinstance(raw, dict) else None
        result[name] = [
            p for p in (items if isinstance(items, list) else []) if manifest.is_document_path(p)
        ]
    # Recovery deletes the temporaries: only names render gives them (`.name.wkb.tmp`).
    result["temporaries"] = [
        p
        for p in result["temporaries"]
        if p.endswith(_TEMPORARY) and p.rsplit("/", 1)[-1].startswith(".")
    ]
    return result


def _prune(folder: Path, out: Path) -> None:
    while folder != out and out in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the render lock of `out`; another holder makes this fail at once."""
    if out.exists() and not out.is_dir():
        raise TreeError(f"{out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(out / LOCK_NAME), timeout=0)
        lock.acquire()
    except filelock.Timeout:
        raise TreeError(
            f"another render is writing {out} right now ({LOCK_NAME} is locked); "
            "wait for it to finish"
        ) from None
    except OSError as e:
        raise TreeError(f"cannot lock {out}: {e.strerror or e}") from None
    try:
        yield
    finally:
        lock.release()


def previous_index(out: Path) -> Index | None:
    """The last render's cache of `out`, if it describes the tree there: no render stopped
    midway since, and the manifest is the one written with it."""
    if not out.is_dir() or interrupted(out):
        return None
    return Index.previous(out, manifest.MANIFEST_NAME)


def interrupted(out: Path) -> bool:
    """Whether a render of `out` stopped midway (or is running): the tree may be mixed."""
    return os.path.lexists(out / JOURNAL_NAME)


class Stage:
    """Compares each new document with the tree and, when writing, stages the body in
    `DIR/.wellknown-build.staging/` (a folder render alone uses): nothing visible changes
    until every instance is checked. A killed run leaves only that folder, which the next
    render removes before anything else."""

    def __init__(self, out: Path, write: bool, writer_after: int | None = None) -> None:
        self.out = out
        self.write = write
        self.paths = _Paths(out)
        self.root = os.path.join(str(out), STAGING_NAME)
        self._made: set[str] = set()  # folders made or found to be folders (bounded)
        # Bodies staged here before a helper process writes the rest (staging.py), and
        # stat data of staged bodies that settle() has not handed out yet.
        self._staged = 0
        self._writer_after = staging.WRITER_AFTER if writer_after is None else writer_after
        self._writer: staging.Writer | None = None
        self._settled: dict[str, Stat] = {}
        self._folder: tuple[int, int] | None = None  # the staging folder's device and inode
        self._folder_fd: int | None = None  # and the folder, open (POSIX)
        self._path_max = sys.maxsize  # longest path the helper may be handed, in bytes
        self._root_bytes = 0  # of the staging folder's path and a separator
        # Documents not staged because another one of this run stands in the way: the
        # render must report that clash; were it not to, commit refuses (assert_staged).
        self.unstaged: list[str] = []
        self.blocked: list[str] = []  # documents below a file in the tree (_file_in_the_way)
        if write:
            _remove_staging(out)
            if os.path.lexists(self.root):  # what is in it would be moved into the tree
                raise TreeError(
                    f"cannot remove {self.root}, left by an earlier render; remove it and "
                    "render again"
                )

    def document(self, document: Document) -> tuple[int, Stat | None]:
        """Compared with the tree; staged if it differs (by a helper process past
        staging.WRITER_AFTER bodies: its stat data then come from settle())."""
        target = self.paths(document.path)
        folder = os.path.dirname(target)
        new = self.paths.missing(folder)
        try:
            current = None if new else _current(target)
        except TreeError:  # (a file where a folder must be: POSIX reports it when reading)
            if not self._file_in_the_way(folder, document.path):
                raise
            return 1, None
        if current == document.body:
            return 0, stat_of(target, follow=False)
        if len(self._made) > _REMEMBERED_FOLDERS:
            self._made.clear()
        flag = 1 if current is None else 2
        # (nothing there: is that a file standing above it?)
        blocked = current is None and not new and self._file_in_the_way(folder, document.path)
        if blocked or not self.write:
            return flag, None
        self._staged += 1
        if self._folder is None:
            self._make_root(document.path)
        if self._writer is None and self._staged > self._writer_after:
            self._writer = self._start_writer()
        if self._writer is not None and len(document.body) < staging.BATCH_BYTES:
            # The staged path as this process would write it (local_path: root, "/", path),
            # measured without making it: the helper's own path is shorter.
            if self._root_bytes + len(os.fsencode(document.path)) >= self._path_max:
                self._refuse(document.path, os.strerror(errno.ENAMETOOLONG))
            try:
                self._writer.put(document.path, document.path, document.body)
            except staging.HelperGone as e:
                self._write_here(e)
            return flag, None
        return flag, self._stage_here(document.path, document.body)

    def _make_root(self, path: str) -> None:
        """The staging folder, made by this run, and its identity: what is moved into the
        tree must come from this very folder (assert_staged)."""
        try:
            os.mkdir(self.root)
            if staging.FOLDER_FLAGS is not None:  # held open to the end: no reuse of its inode
                self._folder_fd = os.open(self.root, staging.FOLDER_FLAGS)
                info = os.fstat(self._folder_fd)
            else:
                info = os.lstat(self.root)
        except OSError as e:
            raise TreeError(
                f"staging {path} in {self.out} failed ({e.strerror}); nothing was changed"
            ) from None
        self._folder = (info.st_dev, info.st_ino)
        self._made.add(self.root)

    def check_folder(self, then: str = "render again to finish") -> None:
        """That the staging folder is still the one this render made (not another folder
        or a link put in its place): checked before the commit, and again just before its
        files are moved into the tree."""
        if self._folder is None:
            return
        try:
            info = os.lstat(self.root)
        except OSError:
            info = None
        if info is None or (info.st_dev, info.st_ino) != self._folder:
            raise TreeError(f"{self.root} was replaced while the render staged in it; {then}")

    def close(self) -> None:
        """The end of the render, committed or not."""
        if self._folder_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._folder_fd)
            self._folder_fd = None

    def settle(self) -> dict[str, Stat]:
        """Stat data of the bodies the helper staged since the last call, by tree path,
        once they are written; a body that could not be staged is handled as if it had
        been written here (a clash noted, any other failure a TreeError)."""
        if self._writer is not None:
            try:
                self._take(self._writer.wait())
            except staging.HelperGone as e:
                self._write_here(e)
        stats, self._settled = self._settled, {}
        return stats

    def _take(self, results: list[tuple[str, Stat | str]]) -> None:
        for path, seen in results:
            if isinstance(seen, str):
                self._refuse(path, seen)
            else:
                self._settled[path] = seen

    def _stage_here(self, path: str, body: bytes) -> Stat | None:
        """Staged by this process: its stat data, or None if another body is in its way."""
        staged = manifest.local_path(self.root, path)
        seen = staging.outcome(staged, body, self._made, self.paths.out)
        if isinstance(seen, str):
            self._refuse(path, seen)
            return None
        return seen

    def _start_writer(self) -> staging.Writer | None:
        if staging.available() and self._folder is not None:
            try:
                self._path_max = os.pathconf(self.root, "PC_PATH_MAX")
                self._root_bytes = len(os.fsencode(self.root)) + 1
                return staging.Writer(self.root, self._folder)
            except (OSError, ValueError) as e:  # no helper (a process limit, say)
                log.info("staging in this process (no helper process: %s)", e)
        self._writer_after = sys.maxsize
        return None

    def _write_here(self, gone: staging.HelperGone) -> None:
        """The helper stopped (and is gone): what it had not confirmed is written here, and
        so is everything after."""
        log.info("staging in this process from now on (the helper process: %s)", gone)
        self._writer, self._writer_after = None, sys.maxsize
        self._take(gone.done)
        for path, _, body in gone.bodies:
            seen = self._stage_here(path, body)
            if seen is not None:
                self._settled[path] = seen

    def _refuse(self, path: str, reason: str) -> None:
        if reason != staging.CLASH:
            raise TreeError(f"staging {path} in {self.out} failed ({reason}); nothing was changed")
        # Only this run's documents are staged: another one stands where this one needs a
        # folder, or the other way round. The render reports that clash with both
        # instances' names, and stops before anything is moved.
        self.unstaged.append(path)

    def _stop_writer(self, kill: bool = False) -> None:
        if self._writer is not None:
            self._writer.close(kill)
            self._writer = None

    def _file_in_the_way(self, folder: str, relative: str) -> bool:
        """Whether a file stands where `relative` needs a folder: then it is not staged, and
        the render is refused before anything changes (assert_staged). Not at once: when the
        file is another instance's document, the render finds the clash and names both
        instances, as a render into an empty folder does. (POSIX reports such a file when the
        document is read; Windows reads the document as missing.)"""
        seen = []  # (remembered only once the whole way up is clear)
        while folder != self.paths.out and folder not in self._made:
            if os.path.lexists(folder) and not os.path.isdir(folder):
                self.blocked.append(
                    f"{folder} is a file, but {relative} must be written below it; "
                    "nothing was changed"
                )
                return True
            seen.append(folder)
            folder = os.path.dirname(folder)
        self._made.update(seen)
        return False

    def assert_staged(self) -> None:
        """Before the commit: every document that needs writing is in the staging folder,
        and the helper that wrote them has exited."""
        self.settle()
        self._stop_writer()
        self.check_folder("nothing was changed")
        self.assert_unblocked()
        if self.unstaged:
            raise TreeError(
                f"staging {self.unstaged[0]} in {self.out} failed (another document of this "
                "render is in its way); nothing was changed"
            )

    def assert_unblocked(self) -> None:
        """No document stands below a file of the tree (--check asks this too)."""
        if self.blocked:
            raise TreeError(self.blocked[0])

    def discard(self) -> None:
        self._stop_writer(kill=True)  # (gone before its folder goes)
        self.close()
        if self.write:
            _remove_staging(self.out)


def _remove_staging(out: Path) -> None:
    """The staging folder, and the scratch files a killed run may have left beside the
    manifest, the journal and the cache's seal (fixed names, written only under the lock)."""
    for name in (manifest.MANIFEST_NAME, JOURNAL_NAME, SEAL_NAME):
        with contextlib.suppress(OSError):
            os.unlink(out / (name + _TEMPORARY))
    staging = out / STAGING_NAME
    if staging.is_dir() and not staging.is_symlink():
        shutil.rmtree(staging, ignore_errors=True)  # links in it are removed, not followed
    else:  # a link (never followed), a file, anything else
        with contextlib.suppress(OSError):
            staging.unlink()


class CacheMismatch(TreeError):
    """The render cache does not mirror the manifest beside it: render again without it."""


def _digest(path: Path) -> bytes | None:
    """SHA-256 of a file read in blocks (a million issuers' manifest is 500 MB), or None."""
    digest = hashlib.sha256()
    try:  # (a FIFO there must not hang the render: read as a regular file only)
        with os.fdopen(open_regular(path, 1 << 62, follow=False), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.digest()


def _mirrors(previous: Index, old: bytes | None) -> bool:
    """Whether the cache's files are the manifest's entries, line for line, each row under
    the path its line names. Only then does the cache stand in for the manifest: one that
    lists a file the manifest does not (or misses one) would have render remove a file it
    did not write, or forget one it did, and its lines go into the next manifest."""
    digest = hashlib.sha256()
    try:
        if old is None or not previous.paths_agree():
            return False
        for chunk in manifest.chunks(previous.lines()):
            digest.update(chunk)
    except sqlite3.Error:
        return False
    return old == digest.digest()


def _owned(
    out: Path,
    index: Index,
    previous: Index | None,
    journal: Journal | None,
    old: Callable[[], bytes | None],
) -> None:
    """Into `index`: what the last render wrote (the cache mirrors its manifest; without a
    cache the manifest is read), and what an interrupted run may have written."""
    if previous is not None:
        try:
            if not (previous.sealed(out) or _mirrors(previous, old())):
                raise sqlite3.DatabaseError("not the manifest's entries")
            index.own_last()  # (the render attached `previous`) checked when found stale
        except sqlite3.Error as e:
            raise CacheMismatch(
                f"{out / CACHE_NAME} does not match {manifest.MANIFEST_NAME} ({e})"
            ) from None
    elif out.is_dir():
        try:
            found = manifest.read(out)
        except TreeError as e:  # damaged: rewrite it, but remove nothing it names
            log.warning("%s; files it listed will not be removed", e)
            found = None
        if found is not None:
            index.add_owned(found.paths)
    if journal is not None:
        index.add_owned(journal["paths"])


def _stale(out: Path, index: Index) -> list[str]:
    """Files the last render wrote that this one does not: of the last cache's files, only
    those the manifest there lists too (a cache trusted by its seal was not compared with
    the manifest line for line); then those of the journal, or of the manifest itself."""
    paths = _Paths(out)
    try:
        last = list(index.stale_last())  # (reads the last cache: see Index.own_last)
        owned = list(index.stale_owned())
    except sqlite3.Error as e:
        raise CacheMismatch(f"{out / CACHE_NAME} cannot be read ({e})") from None
    if last:
        known = manifest.listed(out, last)
        last = [p for p in last if p in known]
    return [p for p in [*last, *owned] if manifest.is_document_path(p) and os.path.isfile(paths(p))]


def _new_manifest(index: Index, old: bytes | None, scratch: str | None) -> tuple[bool, str | None]:
    """Whether the manifest the index describes differs from the one whose digest is `old`;
    written to `scratch` on the way when given (and removed again if the same)."""
    digest = hashlib.sha256()
    try:
        with create_new(scratch) if scratch else contextlib.nullcontext() as handle:
            for chunk in manifest.chunks(index.lines()):
                digest.update(chunk)
                if handle is not None:
                    handle.write(chunk)
    except OSError as e:  # (only writing the scratch fails so)
        raise _scratch_failed(str(scratch), e) from None
    if old == digest.digest():
        if scratch is not None:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
        return False, None
    return True, scratch


def check(out: Path, index: Index, previous: Index | None, dirty: bool) -> Changes:
    """What writing the staged run would change; reads, never writes."""
    if out.exists() and not out.is_dir():
        raise TreeError(f"{out} exists and is not a folder")
    journal = _journal(out) if out.is_dir() else None
    manifest_changed = _compare(out, index, previous, dirty, journal, None)[0]
    return _changes(out, index, journal, manifest_changed)


def _compare(
    out: Path,
    index: Index,
    previous: Index | None,
    dirty: bool,
    journal: Journal | None,
    scratch: str | None,
) -> tuple[bool, str | None]:
    """What the last render owned (into `index`) and whether the manifest changes (the new
    one written to `scratch` when given); the manifest there is read once. A run that found
    every instance as the last one left them has nothing stale and the same manifest."""
    if not (dirty or previous is None or journal is not None):
        return False, None
    path = out / manifest.MANIFEST_NAME
    old = functools.cache(lambda: _digest(path))  # the manifest's, read when first asked for
    _owned(out, index, previous, journal, old)
    if scratch is not None and previous is not None and journal is None:  # (it mirrors them)
        patched = _patched(path, index, previous, scratch)
        if patched is not None:
            return patched
    return _new_manifest(index, old(), scratch)


def _patched(
    path: Path, index: Index, previous: Index, scratch: str
) -> tuple[bool, str | None] | None:
    """For a run that adopted the last cache, whose manifest mirrors it: the manifest there
    with the lines of the instances rebuilt in place replaced (the other rows are the last
    cache's, so are their lines). As _new_manifest(); None when it cannot be made so."""
    try:
        blocks = index.replaced()
    except sqlite3.Error:
        return None
    seen = previous.manifest_stat
    if blocks is None or seen is None:
        return None
    if all(old == new for old, new in blocks):  # the same lines: the manifest stays
        return (False, None) if stat_of(str(path), follow=False) == seen else None
    try:
        if not manifest.patch(path, seen, scratch, blocks):
            return None
    except OSError as e:
        raise _scratch_failed(scratch, e) from None
    return True, scratch


def _scratch_failed(scratch: str, e: OSError) -> TreeError:
    """The error of a manifest scratch that could not be written; the scratch removed."""
    with contextlib.suppress(OSError):
        os.unlink(scratch)
    return TreeError(f"writing {scratch} failed ({e.strerror}); nothing was changed")


def _changes(out: Path, index: Index, journal: Journal | None, manifest_changed: bool) -> Changes:
    created, updated = tuple(index.staged(True)), tuple(index.staged(False))
    return Changes(
        created,
        updated,
        tuple(_stale(out, index)),
        index.count("files") + index.mirrored - len(created) - len(updated),
        manifest_changed=manifest_changed,
        interrupted=journal is not None,
    )


def commit(
    out: Path,
    index: Index,
    previous: Index | None,
    dirty: bool,
    check_staging: Callable[[], None] = lambda: None,
) -> Changes:
    """Make the tree what the index says: staged bodies moved in, stale files removed, the
    manifest last; then the cache for the next render. The caller holds the lock."""
    journal = _journal(out)
    scratch = str(out / (manifest.MANIFEST_NAME + _TEMPORARY))
    manifest_changed, written = _compare(out, index, previous, dirty, journal, scratch)
    if previous is not None:
        previous.close()
    changes = _changes(out, index, journal, manifest_changed)
    if not changes.clean:
        _apply(out, index, changes, journal, written, check_staging)
    _remove_staging(out)
    if changes.clean and not dirty:
        index.discard()  # the cache there says the same
    elif changes.clean:
        _save(out, index)
    return changes


def _save(out: Path, index: Index) -> None:
    """The cache, recording the stat data of the manifest it goes with."""
    seen = stat_of(str(out / manifest.MANIFEST_NAME), follow=False)
    try:
        index.set_meta("manifest", json.dumps(seen))
    except sqlite3.Error:  # no cache then: the next render reads the tree again
        index.discard()
        with contextlib.suppress(OSError):
            os.unlink(out / CACHE_NAME)
        return
    index.save(out / CACHE_NAME)
    seal(out)


def _write_journal(out: Path, paths: Iterable[Iterable[str]], temporaries: list[str]) -> None:
    """The journal, a path per line: a first render of a million issuers lists two million."""
    final = out / JOURNAL_NAME
    scratch = final.with_name(final.name + _TEMPORARY)
    try:
        with open(scratch, "wb") as handle:
            handle.write(b'{"paths": [')
            separator = b"\n"
            for group in paths:
                for path in group:
                    handle.write(separator + jsondoc.dumps_line(path).encode("utf-8"))
                    separator = b",\n"
            handle.write(b'\n], "temporaries": ' + jsondoc.dumps_line(temporaries).encode())
            handle.write(b"}\n")
        os.replace(scratch, final)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise TreeError(f"writing {final} failed ({e.strerror}); nothing was changed") from None


def _move(staged: str, target: str, renamed: list[str], relative: str = "") -> None:
    """Move the staged tree into place: a folder the tree lacks moves whole (one rename for
    a new host), a file replaces its old version in one rename (its path into `renamed`:
    the stat data taken when it was staged no longer hold)."""
    with os.scandir(staged) as entries:
        names = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
    for name, is_dir in names:
        source, destination = os.path.join(staged, name), os.path.join(target, name)
        if is_dir and os.path.isdir(destination) and not _is_link(destination):
            _move(source, destination, renamed, f"{relative}{name}/")
        else:
            os.replace(source, destination)
            if not is_dir:
                renamed.append(f"{relative}{name}")


def _prune_emptied(inside: _Paths, paths: list[str], out: Path) -> None:
    """The folders of files a killed run removed before it could remove the folders (only
    empty ones go, and none reached through a symbolic link)."""
    folders: dict[str, None] = {}
    for relative in paths:
        try:
            target = inside(relative)
        except TreeError:
            continue
        if os.path.lexists(target):
            continue
        while target != inside.out and not os.path.lexists(target):
            target = os.path.dirname(target)
        folders[target] = None
    for folder in folders:
        if folder != inside.out and os.path.isdir(folder) and not _is_link(folder):
            _prune(Path(folder), out)


def _apply(
    out: Path,
    index: Index,
    changes: Changes,
    journal: Journal | None,
    manifest_file: str | None,
    check_staging: Callable[[], None],
) -> None:
    old_temporaries = journal["temporaries"] if journal is not None else []
    _write_journal(
        out,
        [changes.created, changes.updated, changes.removed, journal["paths"] if journal else []],
        old_temporaries,
    )
    inside = _Paths(out)
    try:
        for relative in old_temporaries:  # left by an interrupted run of an older version
            with contextlib.suppress(FileNotFoundError, TreeError):
                os.unlink(inside(relative))
        for relative in changes.removed:
            stale = Path(inside(relative))  # (checked again: a folder may be a link now)
            stale.unlink(missing_ok=True)
            log.info("removed %s (no longer rendered)", relative)
            _prune(stale.parent, out)
        if journal is not None:
            _prune_emptied(inside, journal["paths"], out)
        renamed: list[str] = []
        if changes.created or changes.updated:
            check_staging()  # (the journal stays: the next render finishes the job)
            _move(os.path.join(out, STAGING_NAME), str(out), renamed)
    except OSError as e:
        raise TreeError(
            f"updating {out} failed ({e.strerror}: {e.filename}); render again to finish"
        ) from None
    try:
        index.set_stats(
            (relative, stat_of(manifest.local_path(str(out), relative), follow=False))
            for relative in renamed
        )
    except sqlite3.Error as e:  # the cache being made (a full disk): the journal stays
        raise TreeError(f"updating {out} failed ({e}); render again to finish") from None
    # Last: publish trusts only what the manifest lists, and only without a journal.
    if manifest_file is not None:
        try:
            os.replace(manifest_file, out / manifest.MANIFEST_NAME)
        except OSError as e:
            raise TreeError(
                f"writing {out / manifest.MANIFEST_NAME} failed ({e.strerror})"
            ) from None
    _save(out, index)  # before the journal goes: a kill in between leaves it interrupted
    try:
        os.unlink(out / JOURNAL_NAME)
    except OSError as e:
        raise TreeError(f"cannot remove {out / JOURNAL_NAME}: {e.strerror}") from None
