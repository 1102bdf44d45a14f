"""The state index a deployment keeps at `<prefix>.wellknown-build/state.json`.

What the last publish wrote, per object: the fingerprint of body and headers, the body's
SHA-256, the ETag and LastModified it had, and (for a JWKS) its kids. An entry is trusted
only while the listing shows the same ETag *and* LastModified: a copy_object that replaced
headers or metadata keeps the ETag but not the LastModified. It also remembers CDN paths
still to be invalidated, so a failed invalidation is sent by the next run.

The index is input like any bucket object: anything malformed in it is dropped, never acted
on; and deletes are always checked against the object's own marker, not against the index.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import jsondoc

log = logging.getLogger(__name__)
FOLDER = ".wellknown-build/"
STATE_NAME = FOLDER + "state.json"
LEASE_NAME = FOLDER + "lease.json"
FORMAT = 2


@dataclass(frozen=True)
class Record:
    fingerprint: str
    sha256: str
    etag: str
    modified: str | None = None  # None until a listing shows it (after our own PUT)
    kids: tuple[str, ...] | None = None  # a JWKS's kids; None when unknown

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "sha256": self.sha256,
            "etag": self.etag,
            "modified": self.modified,
        }
        if self.kids is not None:
            item["kids"] = list(self.kids)
        return item


@dataclass
class State:
    objects: dict[str, Record] = field(default_factory=dict)
    # distribution id -> URL paths whose invalidation has not succeeded yet
    pending: dict[str, list[str]] = field(default_factory=dict)
    etag: str = ""  # of the index as read; "" when there was none (If-None-Match: *)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "objects": {k: r.as_json() for k, r in sorted(self.objects.items())},
            "pending_invalidations": {d: sorted(p) for d, p in sorted(self.pending.items()) if p},
        }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 4096 else None


def _record(raw: object) -> Record | None:
    if not isinstance(raw, Mapping):
        return None
    fingerprint, sha256, etag = (_text(raw.get(n)) for n in ("fingerprint", "sha256", "etag"))
    if not (fingerprint and sha256 is not None and etag):
        return None
    kids = raw.get("kids")
    good_kids = (
        tuple(kids) if isinstance(kids, list) and all(isinstance(k, str) for k in kids) else None
    )
    return Record(fingerprint, sha256, etag, _text(raw.get("modified")), good_kids)


def parse(data: bytes, etag: str, key: str) -> State:
    """Whatever of the index can be trusted; a damaged index is an empty one (every object is
    then looked at with HEAD, and the index rebuilt)."""
    try:
        raw = jsondoc.loads(data)
        if not isinstance(raw, dict) or raw.get("format") not in (1, FORMAT):
            raise ValueError("not a state index")
    except ValueError:
        log.warning("%s is unreadable; checking every object's metadata instead", key)
        return State(etag=etag)
    objects_raw = raw.get("objects")
    objects = {}
    for name, item in objects_raw.items() if isinstance(objects_raw, dict) else ():
        record = _record(item)
        if isinstance(name, str) and record is not None:
            objects[name] = record
    pending_raw = raw.get("pending_invalidations")
    pending = {
        d: [p for p in paths if isinstance(p, str) and p.startswith("/")]
        for d, paths in (pending_raw.items() if isinstance(pending_raw, dict) else ())
        if isinstance(d, str) and isinstance(paths, list)
    }
    return State(objects, pending, etag)
