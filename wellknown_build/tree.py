"""The only code that writes the output folder.

All-or-nothing: every changed file is first written beside its target, and only when all of
them are on disk are they renamed into place. Unchanged files are not touched (their mtime
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
    pending: tuple[tuple[Path, bytes], ...] = field(default=(), repr=False, compare=False)

    @property
    def clean(self) -> bool:
        return not (self.created or self.updated or self.removed or self.manifest_changed)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged"
        )


class _Paths:
    """Joins manifest paths onto the output folder, refusing any way out of it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._safe_dirs: set[Path] = set()

    def __call__(self, relative: str) -> Path:
        parts = relative.split("/")
        if any(p in ("", ".", "..") for p in parts) or relative.startswith("/"):
            raise TreeError(f"refusing the path {relative!r}: it would leave {self.out}")
        target = self.out.joinpath(*parts)
        self._check_dirs(target.parent)
        return target

    def _check_dirs(self, folder: Path) -> None:
        while folder != self.out and folder not in self._safe_dirs:
            if folder.is_symlink():
                raise TreeError(f"refusing to write through the symbolic link {folder}")
            self._safe_dirs.add(folder)
            folder = folder.parent


def _current(target: Path) -> bytes | None:
    try:
        return target.read_bytes()
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
    previous = manifest.read(out) if out.is_dir() else None
    created: list[str] = []
    updated: list[str] = []
    pending: list[tuple[Path, bytes]] = []
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
        p for p in (previous.paths if previous else []) if p not in wanted and paths(p).is_file()
    ]
    new_manifest = manifest.Manifest.of(documents).to_bytes()
    old_manifest = _current(out / manifest.MANIFEST_NAME) if out.is_dir() else None
    return Changes(
        tuple(created),
        tuple(updated),
        tuple(removed),
        unchanged,
        manifest_changed=new_manifest != old_manifest,
        pending=tuple(pending),
    )


def _stage(pending: Sequence[tuple[Path, bytes]], out: Path) -> list[tuple[Path, Path]]:
    """Write every new body beside its target; on failure, leave no trace and raise."""
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    known: set[Path] = set()
    suffix = f".wkb-{os.getpid()}.tmp"
    try:
        for target, body in pending:
            folder = target.parent
            if folder not in known:
                missing = [p for p in (folder, *folder.parents) if not p.exists()]
                folder.mkdir(parents=True, exist_ok=True)
                made += reversed(missing)
                known.add(folder)
            temporary = folder / f".{target.name}{suffix}"
            staged.append((temporary, target))
            with open(temporary, "xb") as handle:
                handle.write(body)
    except OSError as e:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
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
        target = out / relative
        target.unlink(missing_ok=True)
        log.info("removed %s (no longer rendered)", relative)
        _prune(target.parent, out)
    if changes.manifest_changed:
        (staged,) = _stage(
            [(out / manifest.MANIFEST_NAME, manifest.Manifest.of(documents).to_bytes())], out
        )
        os.replace(*staged)
    return changes
