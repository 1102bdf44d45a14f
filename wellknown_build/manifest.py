"""The manifest render leaves in the output folder: what it wrote, with the headers to serve.

It is the one place publish learns paths, content types and Cache-Control from, and the record
of which files this tool owns (only those are ever deleted).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from . import jsondoc
from .cache import Stat, stat_data
from .documents import KIND_DISCOVERY, KIND_JWKS, KIND_OAUTH, Document
from .errors import TreeError, shown
from .files import InputFileError, MiB, create_new, open_regular, read_regular
from .model import Rotation
from .timing import iso, parse_instant

MANIFEST_NAME = ".wellknown-build.json"
MANIFEST_LIMIT = 1024 * MiB
FORMAT = 1
_KINDS = (KIND_JWKS, KIND_DISCOVERY, KIND_OAUTH)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEADER = re.compile(r"[\x20-\x7e]+")
# What urls.tree_path can produce: a host, then path segments; none empty, `.` or `..`, and
# no character a file system would read as a separator or a device.
_SEGMENT = re.compile(r"[^/\\\x00-\x1f]+")


# The same rule over the whole path in one match (a re-render checks two million paths):
# segments as above, none of them `.` or `..`. tests/test_tree.py holds it equal to the
# segment-by-segment rule.
_TREE_PATH = re.compile(r"(?!\.\.?(?:/|\Z))[^/\\\x00-\x1f]+(?:/(?!\.\.?(?:/|\Z))[^/\\\x00-\x1f]+)*")


def is_tree_path(path: object) -> bool:
    """Whether render could have written `path`: relative, inside the tree, no tricks."""
    return isinstance(path, str) and 0 < len(path) <= 4096 and bool(_TREE_PATH.fullmatch(path))


def local_path(folder: str, path: str) -> str:
    """A tree path below `folder`, for os calls: os.path.join(folder, *path.split("/")) for a
    path is_tree_path() passes, built by string (that join was a sixth of a no-change render's
    time; tests/test_tree.py holds the two equal). Any other path stays below `folder` too:
    no part of it is read as a root or a drive (on Windows, os.path.join reads a part such
    as `c:443` as one)."""
    if folder and not folder.endswith(_SEPARATORS):
        folder += os.sep
    return folder + (path if os.sep == "/" else path.replace("/", os.sep))


_SEPARATORS = (os.sep, os.altsep) if os.altsep else (os.sep,)


def is_document_path(path: object) -> bool:
    """A tree path that names a document: under a host folder, never one of render's own
    files beside them (their names start with a dot; no host does)."""
    return is_tree_path(path) and not str(path).startswith(".")


@dataclass(frozen=True, slots=True)  # slots: publish holds one per object, millions
class Entry:
    path: str
    sha256: str
    size: int
    content_type: str
    cache_control: str
    instance: str
    kind: str
    kids: tuple[str, ...] = ()
    rotation: Rotation | None = None

    @classmethod
    def of(cls, document: Document) -> Entry:
        return cls(
            path=document.path,
            sha256=hashlib.sha256(document.body).hexdigest(),
            size=len(document.body),
            content_type=document.content_type,
            cache_control=document.cache_control,
            instance=document.instance,
            kind=document.kind,
            kids=document.kids,
            rotation=document.rotation,
        )


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]

    @classmethod
    def of(cls, outputs: Iterable[Document | Entry]) -> Manifest:
        """Entries of new documents, and entries kept from the last render as they were."""
        return cls(tuple(o if isinstance(o, Entry) else Entry.of(o) for o in outputs))

    def to_bytes(self) -> bytes:
        return b"".join(chunks([[line(e) for e in self.entries]]))

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.entries]


def line(e: Entry) -> str:
    """An entry as its manifest line."""
    item: dict[str, object] = {
        "path": e.path,
        "sha256": e.sha256,
        "size": e.size,
        "content_type": e.content_type,
        "cache_control": e.cache_control,
        "instance": e.instance,
        "kind": e.kind,
    }
    if e.kids:
        item["kids"] = list(e.kids)
    if e.rotation is not None:
        item["rotation"] = _rotation_json(e.rotation)
    return jsondoc.dumps_line(item)


def chunks(batches: Iterable[Sequence[str]]) -> Iterator[bytes]:
    """The manifest's bytes, a batch of lines at a time: one file per line, readable and
    diff-friendly; written as it is made, so a million entries never sit in memory at once.
    (Lines come in batches: joined and encoded per line, a 200,000-line manifest cost a
    tenth of a re-render.)"""
    yield f'{{\n  "generator": "wellknown-build",\n  "format": {FORMAT},\n  "files": [\n'.encode()
    separator = b"    "
    for batch in batches:
        if batch:
            yield separator + ",\n    ".join(batch).encode("utf-8")
            separator = b",\n    "
    yield b"\n  ]\n}\n"


def listed(out: Path, paths: Iterable[str]) -> set[str]:
    """Those of `paths` that the manifest in `out` lists, read a line at a time as chunks()
    writes it (a line per entry, its path first; a raw newline cannot be inside a JSON
    string, so a match is an entry); an unreadable manifest lists nothing."""
    wanted = {f'    {{"path":{jsondoc.dumps_line(p)},'.encode(): p for p in paths}
    found: set[str] = set()
    if not wanted:
        return found
    try:
        fd = open_regular(out / MANIFEST_NAME, MANIFEST_LIMIT, follow=False)
        with os.fdopen(fd, "rb") as handle:
            whole = True  # `text` starts a line
            while text := handle.readline(_PIECE):
                if whole:  # (an entry's path comes first: a kid can make its line long)
                    cut = text.find(b'",')
                    if cut > 0 and (path := wanted.get(text[: cut + 2])) is not None:
                        found.add(path)
                whole = text.endswith(b"\n")
    except OSError:
        return set()
    return found


_PIECE = 1 * MiB  # of a line read at once: its start names the entry's path

# Between two lines as chunks() writes them, and before the first.
_SEPARATOR, _LEAD = b",\n    ", b"\n    "


def patch(
    source: Path,
    seen: Stat,
    target: str,
    blocks: Iterable[tuple[Sequence[str], Sequence[str]]],
) -> bool:
    """Write to `target` (made anew: files.create_new) the manifest at `source` with runs of
    lines replaced: per block, in file order, its old lines (found where they stand, whole
    lines) by its new lines. For a render that rebuilt a few instances in place, a copy at
    the speed of the disk where chunks() would format every line again (a fifth of a
    re-render with one tenant changed). False, and nothing at `target`, when a block's old
    lines are not found in order, `source` cannot be read, or its stat data are not `seen`
    (before and after: the lines come from the file as its cache knew it, never from an edit
    made since); the caller then writes the manifest whole. Writing errors are OSError.

    A match is a line: it starts after a newline and the line's indent, and a JSON line holds
    no raw newline, so the bytes after it must be the separator or the newline of the end;
    it is the block's line and no other, as the path that starts it is listed once."""
    try:
        handle = os.fdopen(open_regular(source, MANIFEST_LIMIT, follow=False), "rb")
    except OSError:
        return False
    with handle, create_new(target) as written:
        try:
            if stat_data(os.fstat(handle.fileno())) == seen:
                done = _replace(handle, written, blocks)
                done = done and stat_data(os.fstat(handle.fileno())) == seen
            else:
                done = False
        except _Unreadable:
            done = False
    if not done:
        with contextlib.suppress(OSError):
            os.unlink(target)
    return done


class _Unreadable(Exception):
    """The manifest patched could not be read (not an error of the file being written)."""


def _replace(
    handle: BinaryIO, written: BinaryIO, blocks: Iterable[tuple[Sequence[str], Sequence[str]]]
) -> bool:
    """patch()'s copy, `handle` to `written`; False when a block is not found."""

    def read() -> bytes:
        try:
            return handle.read(_PIECE)
        except OSError:
            raise _Unreadable from None

    buffer = b""
    for old, new in blocks:
        if not (old and new):
            return False
        needle = _LEAD + _SEPARATOR.join(line.encode("utf-8") for line in old)
        while (at := buffer.find(needle)) < 0 or len(buffer) < at + len(needle) + 2:
            more = read()
            if not more:
                return False
            keep = 0 if at >= 0 else max(0, len(buffer) - len(needle) - 2)
            written.write(buffer[:keep])
            buffer = buffer[keep:] + more
        end = at + len(needle)
        if buffer[end : end + 2] not in (b",\n", b"\n "):
            return False
        written.write(buffer[:at] + _LEAD + _SEPARATOR.join(n.encode("utf-8") for n in new))
        buffer = buffer[end:]
    written.write(buffer)
    while more := read():
        written.write(more)
    return True


def entry_of_line(text: str) -> Entry | None:
    """A manifest line read back (from the render cache), checked like any entry."""
    try:
        return _entry(jsondoc.loads(text.encode("utf-8")))
    except (ValueError, KeyError, TypeError):
        return None


_STATUSES = ("active", "next", "retired")


def _rotation_json(rotation: Rotation) -> dict[str, object]:
    item: dict[str, object] = {
        "cache_ttl": rotation.cache_ttl,
        "token_lifetime": rotation.token_lifetime,
        "status": list(rotation.status),
    }
    if any(rotation.not_after):
        item["not_after"] = [iso(t) if t else None for t in rotation.not_after]
    return item


def _rotation(raw: object, kids: int) -> Rotation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TypeError("rotation is not an object")
    ttl, lifetime, status = raw["cache_ttl"], raw["token_lifetime"], raw["status"]
    not_after = raw.get("not_after", [None] * kids)
    if not all(type(n) is int and 0 <= n < 2**53 for n in (ttl, lifetime)):
        raise ValueError("rotation: cache_ttl and token_lifetime must be seconds")
    good = isinstance(status, list) and len(status) == kids
    if not (good and all(s in _STATUSES for s in status)):
        raise ValueError("rotation: a status per kid, each active, next or retired")
    if not (isinstance(not_after, list) and len(not_after) == kids):
        raise ValueError("rotation: not_after must list an instant or null per kid")
    return Rotation(
        ttl,
        lifetime,
        tuple(status),
        tuple(parse_instant(t) if t is not None else None for t in not_after),
    )


_T = TypeVar("_T")
_SHARED: dict[object, object] = {}  # values many entries have: one object each
_SHARED_AT_MOST = 4096


def _shared(value: _T) -> _T:
    """One object for equal header values and rotations across entries (a million JWKS
    with the same Cache-Control held a million copies of it)."""
    if not ((isinstance(value, str) and len(value) <= 256) or isinstance(value, Rotation)):
        return value  # (checked later: a list there is an error to report, not to hash)
    if len(_SHARED) >= _SHARED_AT_MOST:
        return _SHARED.get(value, value)  # type: ignore[return-value]
    return _SHARED.setdefault(value, value)  # type: ignore[return-value]


def _entry(raw: object) -> Entry:
    if not isinstance(raw, dict):
        raise TypeError("an entry is not an object")
    entry = Entry(
        path=raw["path"],
        sha256=raw["sha256"],
        size=raw["size"],
        content_type=_shared(raw["content_type"]),
        cache_control=_shared(raw["cache_control"]),
        instance=raw["instance"],
        kind=_shared(raw["kind"]),
        kids=tuple(raw.get("kids", ())),
        rotation=_shared(_rotation(raw.get("rotation"), len(raw.get("kids", ())))),
    )
    if not is_document_path(entry.path):
        raise ValueError(f"path {entry.path!r} is not one render writes")
    if not (isinstance(entry.sha256, str) and _SHA256.fullmatch(entry.sha256)):
        raise ValueError(f"{entry.path}: sha256 is not a SHA-256 in hex")
    if type(entry.size) is not int or entry.size < 0:
        raise ValueError(f"{entry.path}: size is not a byte count")
    for header in (entry.content_type, entry.cache_control):
        if not (isinstance(header, str) and _HEADER.fullmatch(header)):
            raise ValueError(f"{entry.path}: {header!r} is not a header value")
    if entry.kind not in _KINDS or not isinstance(entry.instance, str):
        raise ValueError(f"{entry.path}: kind {entry.kind!r} is unknown")
    if not all(isinstance(k, str) for k in entry.kids):
        raise ValueError(f"{entry.path}: kids must be strings")
    if entry.rotation is not None and entry.kind != KIND_JWKS:
        raise ValueError(f"{entry.path}: only a JWKS has a rotation")
    return entry


# What a damaged entry or manifest raises while it is read (each one is then a TreeError).
_DAMAGED = (ValueError, KeyError, TypeError, RecursionError)


def parse(data: bytes, source: str) -> Manifest:
    """A manifest is input too: every entry is checked before anyone acts on it."""
    try:
        raw = jsondoc.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else None
            raise TreeError(f"{source}: manifest format {shown(found)} is not {FORMAT}")
        files = raw["files"]
        if not isinstance(files, list):
            raise TypeError("files is not a list")
        entries = tuple(_entry(f) for f in files)
        if len({e.path for e in entries}) != len(entries):
            raise ValueError("a path is listed twice")
        return Manifest(entries)
    except _DAMAGED as e:
        raise TreeError(f"{source}: the manifest is damaged ({e})") from None


def read(out: Path) -> Manifest | None:
    """The manifest of a previous render in `out`, or None if there was none.

    Read a line at a time when it has the shape chunks() writes, each entry made as its line
    is read: read whole, a 2,000,000-entry manifest (763 MB) peaked at 4.7 GB, its text and
    every line's parsed object at once. Anything else, and any error, is read whole as
    before, so the answer or the error is the same (a hypothesis test holds the two equal)."""
    path = out / MANIFEST_NAME
    try:
        fd = open_regular(path, MANIFEST_LIMIT)
    except FileNotFoundError:
        return None
    except InputFileError as e:
        raise TreeError(f"{path}: {e}") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            found = _streamed(handle)
    except OSError:
        found = None  # the whole read says what is wrong
    if found is not None:
        return found
    try:
        return parse(read_regular(path, MANIFEST_LIMIT), str(path))
    except FileNotFoundError:
        return None
    except InputFileError as e:
        raise TreeError(f"{path}: {e}") from None


_HEAD = f'{{\n  "generator": "wellknown-build",\n  "format": {FORMAT},\n  "files": [\n'.encode()
_FOOT = b"  ]\n}\n"
_NESTED = 1000  # brackets in a line past which it is read whole (orjson stops at 1,024 deep)


def _streamed(handle: BinaryIO) -> Manifest | None:
    """The manifest as chunks() writes it (the head, `    {...},` per entry but the last,
    `    {...}`, the foot), or None for anything else or any entry that is wrong. A line that
    is one JSON value on its own is one in the whole text too, so the entries are those the
    whole text gives."""
    if handle.read(len(_HEAD)) != _HEAD:
        return None
    total, entries = len(_HEAD), []
    line = handle.readline(MANIFEST_LIMIT + 1)  # (no entries: read whole, it is short)
    while line:
        total += len(line)
        if total + len(_FOOT) > MANIFEST_LIMIT or not line.startswith(b"    {"):
            return None
        if line.count(b"[") + line.count(b"{") > _NESTED:
            return None  # the whole text is 2 levels deeper: its depth limit decides
        more = line.endswith(b",\n")
        if not (more or line.endswith(b"\n")):
            return None
        try:
            entries.append(_entry(jsondoc.loads(line[4 : -2 if more else -1])))
        except _DAMAGED:
            return None
        line = handle.readline(MANIFEST_LIMIT + 1) if more else b""
    if handle.read(len(_FOOT) + 1) != _FOOT:
        return None
    if len({e.path for e in entries}) != len(entries):
        return None
    return Manifest(tuple(entries))
