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
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from . import jsondoc, manifest
from .cache import Cache, stat_of
from .cache import write as write_cache
from .documents import Document
from .errors import TreeError
from .files import DOCUMENT_LIMIT, InputFileError, read_regular

log = logging.getLogger(__name__)
JOURNAL_NAME = ".wellknown-build.journal"
LOCK_NAME = ".wellknown-build.lock"
_TEMPORARY = ".wkb.tmp"  # suffix of a body staged beside the file it replaces


@dataclass(frozen=True)
class Changes:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    manifest_changed: bool = False
    interrupted: bool = False  # an earlier render stopped midway (its journal is there)
    manifest: bytes = field(default=b"", repr=False, compare=False)
    pending: tuple[tuple[str, bytes], ...] = field(default=(), repr=False, compare=False)

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


class _Paths:
    """Joins manifest paths onto the output folder, refusing any way out of it.

    Plain strings and os calls: pathlib costs more than the I/O on a 20,000-file tree.
    """

    def __init__(self, out: Path) -> None:
        self.out = str(out)
        self._safe_dirs: set[str] = set()

    def __call__(self, relative: str) -> str:
        if not manifest.is_tree_path(relative):
            raise TreeError(f"refusing the path {relative!r}: it would leave {self.out}")
        target = f"{self.out}/{relative}"
        self._check_dirs(os.path.dirname(target))
        return target

    def _check_dirs(self, folder: str) -> None:
        while folder != self.out and folder not in self._safe_dirs:
            if os.path.islink(folder):
                raise TreeError(f"refusing to write through the symbolic link {folder}")
            self._safe_dirs.add(folder)
            folder = os.path.dirname(folder)


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
        real = os.path.realpath(os.path.join(self._root, *relative.split("/")))
        return real if real.startswith(self._root) else None

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


def read_manifest(out: Path) -> manifest.Manifest:
    """The manifest of `out` for publish, serve and verify: present, well-formed, and every
    path in it inside the tree; refused whole otherwise."""
    found = manifest.read(out)
    path = out / manifest.MANIFEST_NAME
    if found is None:
        raise TreeError(f"{out}: no manifest; run `wellknown-build render` first")
    reader = Reader(out)
    for entry in found.entries:
        if reader.locate(entry.path) is None:
            raise TreeError(
                f"{path}: lists {entry.path[:200]!r}, which is not a file inside {out}; "
                "render again"
            )
    return found


def _journal(out: Path) -> dict[str, list[str]] | None:
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
            p for p in (items if isinstance(items, list) else []) if manifest.is_tree_path(p)
        ]
    # Recovery deletes the temporaries: only names render gives them (`.name.wkb.tmp`).
    result["temporaries"] = [
        p
        for p in result["temporaries"]
        if p.endswith(_TEMPORARY) and p.rsplit("/", 1)[-1].startswith(".")
    ]
    return result


Output = Document | manifest.Entry  # an entry: an unchanged instance the build did not redo


def compare(out: Path, outputs: Sequence[Output]) -> Changes:
    """What writing `outputs` to `out` would change; reads, never writes. Entries are
    unchanged by construction (the build checked their files against the cache)."""
    if out.exists() and not out.is_dir():
        raise TreeError(f"{out} exists and is not a folder")
    paths = _Paths(out)
    manifest_path = str(out / manifest.MANIFEST_NAME)
    old_manifest: bytes | None = None
    owned: list[str] = []
    journal = _journal(out) if out.is_dir() else None
    if out.is_dir():
        try:
            old_manifest = read_regular(manifest_path, manifest.MANIFEST_LIMIT)
            owned = manifest.parse(old_manifest, manifest_path).paths
        except FileNotFoundError:
            pass
        except InputFileError as e:
            raise TreeError(f"{manifest_path} {e}") from None
        except TreeError as e:  # damaged: rewrite it, but remove nothing it names
            log.warning("%s; files it listed will not be removed", e)
    if journal is not None:
        owned += journal["paths"]
    created: list[str] = []
    updated: list[str] = []
    pending: list[tuple[str, bytes]] = []
    unchanged = 0
    for output in outputs:
        target = paths(output.path)
        if isinstance(output, manifest.Entry):
            unchanged += 1
            continue
        current = _current(target)
        if current == output.body:
            unchanged += 1
            continue
        (created if current is None else updated).append(output.path)
        pending.append((target, output.body))
    wanted = {o.path for o in outputs}
    removed = sorted(
        {p for p in owned if p not in wanted and os.path.isfile(paths(p))},
        key=owned.index,
    )
    new_manifest = manifest.Manifest.of(outputs).to_bytes()
    return Changes(
        tuple(created),
        tuple(updated),
        tuple(removed),
        unchanged,
        manifest_changed=new_manifest != old_manifest,
        interrupted=journal is not None,
        manifest=new_manifest,
        pending=tuple(pending),
    )


def _temporary(target: str) -> str:
    folder, name = os.path.split(target)
    return f"{folder}/.{name}{_TEMPORARY}"


def _stage(pending: Sequence[tuple[str, bytes]], out: Path) -> list[tuple[str, str]]:
    """Write every new body; on failure, undo everything and raise.

    A file that does not exist yet is written in place (its removal undoes it); a file that
    exists gets a temporary beside it, renamed over it by the caller once all are written.
    Renames are the slow part of a large first render, so only replacements pay for them.
    """
    staged: list[tuple[str, str]] = []
    created: list[str] = []
    made: list[str] = []
    known: set[str] = set()
    try:
        for target, body in pending:
            folder = os.path.dirname(target)
            if folder not in known:
                missing = []
                walk = folder
                while not os.path.isdir(walk):
                    missing.append(walk)
                    walk = os.path.dirname(walk)
                os.makedirs(folder, exist_ok=True)
                made += reversed(missing)
                known.add(folder)
            try:
                handle = open(target, "xb")  # noqa: SIM115 - closed below
                created.append(target)
            except FileExistsError:
                temporary = _temporary(target)
                staged.append((temporary, target))
                handle = open(temporary, "wb")  # noqa: SIM115 - ours: we hold the lock
            with handle:
                handle.write(body)
    except OSError as e:
        for path in [*created, *(temporary for temporary, _ in staged)]:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise TreeError(
            f"writing {out} failed ({e.strerror}: {e.filename}); nothing was changed"
        ) from None
    return staged


def _prune(folder: Path, out: Path) -> None:
    while folder != out and out in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _replace_file(final: Path, body: bytes) -> None:
    """Write `body` to `final` through a temporary beside it, so readers see old or new."""
    scratch = final.with_name(final.name + _TEMPORARY)
    try:
        scratch.write_bytes(body)
        os.replace(scratch, final)
    except OSError as e:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise TreeError(f"writing {final} failed ({e.strerror})") from None


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


def _recover(out: Path, journal: dict[str, list[str]] | None) -> None:
    """Remove what an interrupted render left: its temporaries (the journal names them)."""
    if journal is None:
        return
    for relative in journal["temporaries"]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out / relative)
    log.info("%s: finishing an interrupted render", out)


def write(
    out: Path, outputs: Sequence[Output], cache: Cache | None = None, *, lock: bool = True
) -> Changes:
    """Write the tree; then the cache (stat data of every output file) for the next render.
    `lock=False`: the caller holds the render lock already."""
    with locked(out) if lock else contextlib.nullcontext():
        journal = _journal(out)
        _recover(out, journal)
        changes = compare(out, outputs)
        if not changes.clean:
            _apply(out, changes, journal)
        if cache is not None:
            _record(out, outputs, cache)
        return changes


def _record(out: Path, outputs: Sequence[Output], cache: Cache) -> None:
    for output in outputs:
        if isinstance(output, Document) or output.path not in cache.files:
            stat = stat_of(os.path.join(out, *output.path.split("/")), follow=False)
            if stat is not None:
                cache.files[output.path] = stat
    write_cache(out, cache)


def _apply(out: Path, changes: Changes, journal: dict[str, list[str]] | None) -> None:
    paths = _Paths(out)
    record = {
        "paths": sorted({*changes.created, *changes.updated, *changes.removed}),
        "temporaries": sorted(
            os.path.relpath(_temporary(paths(p)), out).replace(os.sep, "/") for p in changes.updated
        ),
    }
    if journal is not None:  # keep what the interrupted run may have left
        record["paths"] = sorted({*record["paths"], *journal["paths"]})
    _replace_file(out / JOURNAL_NAME, jsondoc.dumps(record))
    try:
        staged = _stage(changes.pending, out)
    except TreeError:
        if journal is None:  # nothing changed: the tree is as it was
            with contextlib.suppress(OSError):
                os.unlink(out / JOURNAL_NAME)
        raise
    try:
        for temporary, target in staged:
            os.replace(temporary, target)
        for relative in changes.removed:
            stale = out / relative
            stale.unlink(missing_ok=True)
            log.info("removed %s (no longer rendered)", relative)
            _prune(stale.parent, out)
    except OSError as e:
        raise TreeError(
            f"updating {out} failed ({e.strerror}: {e.filename}); render again to finish"
        ) from None
    # Last: publish trusts only what the manifest lists, and only without a journal.
    _replace_file(out / manifest.MANIFEST_NAME, changes.manifest)
    try:
        os.unlink(out / JOURNAL_NAME)
    except OSError as e:
        raise TreeError(f"cannot remove {out / JOURNAL_NAME}: {e.strerror}") from None


def interrupted(out: Path) -> bool:
    """Whether a render of `out` stopped midway (or is running): the tree may be mixed."""
    return os.path.lexists(out / JOURNAL_NAME)
