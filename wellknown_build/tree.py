"""The only code that writes the output folder.

All-or-nothing: every new body is on disk before any existing file is replaced, and a failure
before that point removes what was written. Unchanged files are not touched (their mtime
stays); files a previous render wrote that are no longer wanted are removed; nothing else is.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import manifest
from .documents import Document
from .errors import TreeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changes:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0
    manifest_changed: bool = False
    manifest: bytes = field(default=b"", repr=False, compare=False)
    pending: tuple[tuple[str, bytes], ...] = field(default=(), repr=False, compare=False)

    @property
    def clean(self) -> bool:
        return not (self.created or self.updated or self.removed or self.manifest_changed)

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
        if relative.startswith("/") or any(p in ("", ".", "..") for p in relative.split("/")):
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
        with open(target, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise TreeError(f"{target} is a folder, but a document must be written there") from None
    except OSError as e:
        raise TreeError(f"cannot read {target}: {e.strerror}") from None


def compare(out: Path, documents: Sequence[Document]) -> Changes:
    """What writing `documents` to `out` would change; reads, never writes."""
    if out.exists() and not out.is_dir():
        raise TreeError(f"{out} exists and is not a folder")
    paths = _Paths(out)
    manifest_path = str(out / manifest.MANIFEST_NAME)
    old_manifest = _current(manifest_path) if out.is_dir() else None
    previous = manifest.parse(old_manifest, manifest_path) if old_manifest is not None else None
    created: list[str] = []
    updated: list[str] = []
    pending: list[tuple[str, bytes]] = []
    unchanged = 0
    for document in documents:
        target = paths(document.path)
        current = _current(target)
        if current == document.body:
            unchanged += 1
            continue
        (created if current is None else updated).append(document.path)
        pending.append((target, document.body))
    wanted = {d.path for d in documents}
    removed = [
        p
        for p in (previous.paths if previous else [])
        if p not in wanted and os.path.isfile(paths(p))
    ]
    new_manifest = manifest.Manifest.of(documents).to_bytes()
    return Changes(
        tuple(created),
        tuple(updated),
        tuple(removed),
        unchanged,
        manifest_changed=new_manifest != old_manifest,
        manifest=new_manifest,
        pending=tuple(pending),
    )


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
    suffix = f".wkb-{os.getpid()}.tmp"
    try:
        for target, body in pending:
            folder, name = os.path.split(target)
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
                temporary = f"{folder}/.{name}{suffix}"
                staged.append((temporary, target))
                handle = open(temporary, "xb")  # noqa: SIM115
            with handle:
                handle.write(body)
    except OSError as e:
        for path in [*created, *(temporary for temporary, _ in staged)]:
            with contextlib.suppress(FileNotFoundError):
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


def write(out: Path, documents: Sequence[Document]) -> Changes:
    changes = compare(out, documents)
    out.mkdir(parents=True, exist_ok=True)
    for temporary, target in _stage(changes.pending, out):
        os.replace(temporary, target)
    for relative in changes.removed:
        stale = out / relative
        stale.unlink(missing_ok=True)
        log.info("removed %s (no longer rendered)", relative)
        _prune(stale.parent, out)
    if changes.manifest_changed:  # last: publish trusts only what the manifest lists
        final = out / manifest.MANIFEST_NAME
        scratch = final.with_name(f"{final.name}.{os.getpid()}.tmp")
        scratch.write_bytes(changes.manifest)
        os.replace(scratch, final)
    return changes
