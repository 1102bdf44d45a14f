"""The manifest render leaves in the output folder: what it wrote, with the headers to serve.

It is the one place publish learns paths, content types and Cache-Control from, and the record
of which files this tool owns (only those are ever deleted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .documents import Document
from .errors import TreeError

MANIFEST_NAME = ".wellknown-build.json"
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    path: str
    sha256: str
    size: int
    content_type: str
    cache_control: str
    instance: str
    kind: str
    kids: tuple[str, ...] = ()

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
        )


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]

    @classmethod
    def of(cls, documents: Iterable[Document]) -> Manifest:
        return cls(tuple(Entry.of(d) for d in documents))

    def to_bytes(self) -> bytes:
        files: list[str] = []
        for e in self.entries:
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
            files.append(json.dumps(item, ensure_ascii=False))
        # One file per line: readable, diff-friendly, and json's C encoder does the work.
        head = f'{{\n  "generator": "wellknown-build",\n  "format": {FORMAT},\n  "files": [\n'
        return (head + ",\n".join(f"    {f}" for f in files) + "\n  ]\n}\n").encode("utf-8")

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.entries]


def parse(data: bytes, source: str) -> Manifest:
    try:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise TreeError(f"{source}: manifest format {raw.get('format')!r} is not {FORMAT}")
        return Manifest(
            tuple(
                Entry(
                    path=str(f["path"]),
                    sha256=str(f["sha256"]),
                    size=int(f["size"]),
                    content_type=str(f["content_type"]),
                    cache_control=str(f["cache_control"]),
                    instance=str(f["instance"]),
                    kind=str(f["kind"]),
                    kids=tuple(str(k) for k in f.get("kids", ())),
                )
                for f in raw["files"]
            )
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TreeError(
            f"{source}: the manifest is damaged ({e}); delete it and render again"
        ) from None


def read(out: Path) -> Manifest | None:
    """The manifest of a previous render in `out`, or None if there was none."""
    path = out / MANIFEST_NAME
    try:
        return parse(path.read_bytes(), str(path))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TreeError(f"{path}: cannot read the manifest: {e.strerror}") from None
