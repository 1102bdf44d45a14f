"""What publish records of each JWKS's keys, for `status` and the rotation guard.

Per JWKS object (by its key, so per instance), from the manifest: the instance, its
cache_ttl and token_lifetime, and per kid its status and not_after; and from the publishes
that saw it:

- `first`: when a publish first put the kid in that JWKS (the clock of the publishing
  machine once the upload was answered, so never before the object was live). A kid removed
  from the JWKS and added again later starts again: caches may hold the set without it.
- `origin`: `new` when it came with the JWKS's first upload (nothing can have cached a set
  without it), `found` when the index first saw it already live (after an upgrade, or
  without an index: its real first upload was earlier, unknown), `added` when a publish
  added it to a JWKS that was already live (only these must wait cache_ttl to sign).
- `since`: when its current status was first seen; `active_from`: when a publish first
  showed it active; `active_until`: the first publish that showed it no longer active.
  Publish cannot see when a signer last used a key; the publish that made it inactive is
  the latest that can have been, if the signer follows the configuration.

Stored per JWKS as two compact JSON arrays on one line, split by a tab: the manifest's part
first, so that a publish compares it with the manifest without decoding anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from .. import jsondoc
from ..manifest import Entry
from .state import short_etag

ORIGINS = {"n": "new", "a": "added", "f": "found"}
_LETTER = {v: k for k, v in ORIGINS.items()}
_STATUSES = ("active", "next", "retired")


@dataclass(frozen=True)
class Kid:
    kid: str
    status: str
    not_after: int | None  # seconds since the epoch, as configured
    first: int
    origin: str  # new, added, found
    since: int
    active_from: int | None = None
    active_until: int | None = None


@dataclass(frozen=True)
class Keys:
    """One JWKS object's keys as the index knows them."""

    instance: str
    cache_ttl: int
    token_lifetime: int
    etag: str  # of the JWKS object these kids are in (state._etag)
    kids: tuple[Kid, ...]


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _head(instance: str, ttl: int, lifetime: int, kids: list[list[object]]) -> str:
    return jsondoc.dumps_line([instance, ttl, lifetime, kids])


def head_of(entry: Entry) -> str | None:
    """The manifest's part of a JWKS's record, as stored: None for a JWKS from a manifest
    without rotation data (written before this was recorded)."""
    rotation = entry.rotation
    if rotation is None:
        return None
    kids: list[list[object]] = [
        [kid, status, epoch(t) if t else None]
        for kid, status, t in zip(entry.kids, rotation.status, rotation.not_after, strict=True)
    ]
    return _head(entry.instance, rotation.cache_ttl, rotation.token_lifetime, kids)


def encode(keys: Keys) -> str:
    kids: list[list[object]] = [[k.kid, k.status, k.not_after] for k in keys.kids]
    dates = [
        [k.first, _LETTER[k.origin], k.since, k.active_from, k.active_until] for k in keys.kids
    ]
    head = _head(keys.instance, keys.cache_ttl, keys.token_lifetime, kids)
    return f"{head}\t{jsondoc.dumps_line([keys.etag, dates])}"


def unchanged(stored: str | None, head: str, etag: str) -> bool:
    """Whether a stored record already says what this publish would record: the same
    manifest part, for the JWKS object with this ETag."""
    return stored is not None and stored.startswith(f'{head}\t["{short_etag(etag)}",')


def _seconds(value: object, optional: bool = False) -> bool:
    if value is None:
        return optional
    return type(value) is int and 0 <= value < 2**53


def decode(text: str) -> Keys | None:
    """A stored record, or None if anything in it is malformed (it is input)."""
    head, _, tail = text.partition("\t")
    try:
        instance, ttl, lifetime, kids = jsondoc.loads(head)
        etag, dates = jsondoc.loads(tail)
        if not (
            isinstance(instance, str)
            and _seconds(ttl)
            and _seconds(lifetime)
            and isinstance(etag, str)
            and isinstance(kids, list)
            and isinstance(dates, list)
            and len(kids) == len(dates)
        ):
            return None
        found = []
        for (kid, status, not_after), (first, origin, since, start, end) in zip(
            kids, dates, strict=True
        ):
            if not (
                isinstance(kid, str)
                and status in _STATUSES
                and origin in ORIGINS
                and _seconds(not_after, True)
                and all(_seconds(t) for t in (first, since))
                and all(_seconds(t, True) for t in (start, end))
            ):
                return None
            found.append(Kid(kid, status, not_after, first, ORIGINS[origin], since, start, end))
    except (ValueError, TypeError):
        return None
    return Keys(instance, ttl, lifetime, etag, tuple(found))


def kids_at(stored: str | None, etag: str) -> list[str] | None:
    """The kids of the JWKS object with this ETag, if the record is about that object."""
    keys = decode(stored) if stored is not None else None
    if keys is None or keys.etag != short_etag(etag):
        return None
    return [k.kid for k in keys.kids]


def record(
    old: Keys | None,
    entry: Entry,
    before: str | None,
    after: str,
    was_there: Collection[str] | None,
    now: int,
) -> Keys:
    """The record of a JWKS that now holds `entry`'s body (object ETag `after`).

    `old`: what the index held for this key; it counts only if it is about the object that
    was there before this publish (ETag `before`, None if there was none). `was_there`: the
    kids the object held before this publish, when known."""
    rotation = entry.rotation
    assert rotation is not None
    trusted = old is not None and before is not None and old.etag == short_etag(before)
    previous = {k.kid: k for k in old.kids} if old is not None and trusted else {}
    there = set(was_there or ())
    kids = []
    for kid, status, until in zip(entry.kids, rotation.status, rotation.not_after, strict=True):
        not_after = epoch(until) if until else None
        active = status == "active"
        seen = previous.get(kid)
        if seen is None:
            if before is None:
                origin = "new" if old is None else "added"
            else:
                origin = "found" if kid in there else "added"
            kids.append(Kid(kid, status, not_after, now, origin, now, now if active else None))
            continue
        was_active = seen.status == "active"
        kids.append(
            Kid(
                kid,
                status,
                not_after,
                seen.first,
                seen.origin,
                seen.since if seen.status == status else now,
                now if active and not was_active else seen.active_from,
                None if active else now if was_active else seen.active_until,
            )
        )
    ttl, lifetime = rotation.cache_ttl, rotation.token_lifetime
    return Keys(entry.instance, ttl, lifetime, short_etag(after), tuple(kids))
