"""What a re-render may skip: `DIR/.wellknown-build.cache`, written after each render.

Per instance, a fingerprint of everything its documents depend on (its configuration after
defaults, the bytes of its key files, the templates, the tool's version, which keys are past
their not_after) and its kids; per key file and per output file, the stat data seen (size,
mtime, inode), the way git's index finds unchanged files without reading them. A later
render rebuilds an instance only if its fingerprint changed or one of its output files is not
as the cache saw it; a key file is read only if its stat data changed.

Separate from the manifest, which stays deterministic (no mtimes) and is what publish reads.
The cache is a hint, checked against the disk: missing, damaged or stale, it costs a full
render, never a wrong tree. An interrupted render (journal) ignores it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jsondoc
from .files import MiB, read_regular

CACHE_NAME = ".wellknown-build.cache"
FORMAT = 3  # 3: kids per key entry (a jwks entry may publish several)
LIMIT = 2048 * MiB

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def stat_of(path: str, *, follow: bool = True) -> Stat | None:
    """Stat data as git's index keeps it. ctime too: restoring an mtime (touch -r, utime)
    changes the ctime. Followed through symbolic links by default: a key file is often a
    link whose target changes (a Kubernetes secret volume swaps `..data`)."""
    try:
        info = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


@dataclass
class Cache:
    # per instance: its fingerprint, and the kids of each key entry
    instances: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = field(default_factory=dict)
    keys: dict[str, tuple[Stat, str]] = field(default_factory=dict)  # stat, sha256
    files: dict[str, Stat] = field(default_factory=dict)  # output files, by manifest path

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "instances": {
                i: [fp, [list(k) for k in kids]] for i, (fp, kids) in self.instances.items()
            },
            "keys": {p: [list(st), sha] for p, (st, sha) in self.keys.items()},
            "files": {p: list(st) for p, st in self.files.items()},
        }


def _stat(raw: object) -> Stat | None:
    if isinstance(raw, list) and len(raw) == 4 and all(type(n) is int for n in raw):
        return (raw[0], raw[1], raw[2], raw[3])
    return None


def read(out: Path) -> Cache:
    """The cache of the last render, or an empty one: it is only ever a hint."""
    try:
        raw = jsondoc.loads(read_regular(out / CACHE_NAME, LIMIT))
    except (OSError, ValueError):
        return Cache()
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        return Cache()
    cache = Cache()
    instances = raw.get("instances")
    for ident, item in instances.items() if isinstance(instances, dict) else ():
        if (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], list)
            and all(isinstance(ks, list) and all(isinstance(k, str) for k in ks) for ks in item[1])
        ):
            cache.instances[ident] = (item[0], tuple(tuple(ks) for ks in item[1]))
    keys = raw.get("keys")
    for path, item in keys.items() if isinstance(keys, dict) else ():
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], str):
            stat = _stat(item[0])
            if stat is not None:
                cache.keys[path] = (stat, item[1])
    files = raw.get("files")
    for path, item in files.items() if isinstance(files, dict) else ():
        stat = _stat(item)
        if stat is not None:
            cache.files[path] = stat
    return cache


def write(out: Path, cache: Cache) -> None:
    """Through a temporary and a rename; a failure only costs the next render its speed."""
    final = out / CACHE_NAME
    scratch = final.with_name(final.name + ".wkb.tmp")
    data = jsondoc.dumps_bookkeeping(cache.as_json())
    with contextlib.suppress(OSError):
        if read_regular(final, LIMIT) == data:
            return  # a re-render that changed nothing writes nothing
    try:
        scratch.write_bytes(data)
        os.replace(scratch, final)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
