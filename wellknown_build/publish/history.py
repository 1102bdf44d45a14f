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

Stored after the JWKS's entry in the state index as one line of text (JSON inside a JSON
string would escape every quote): the manifest's part first, so that a publish compares it
with the manifest without decoding anything, then `|`, the JWKS's ETag and each kid's dates
(seconds since the epoch; the later ones as seconds after `first`):

    900 3600 tenant-a k1 a k2 n|5c2deda4249ea09c 1893456000,n,0,0, 1893542400,a,0,,

Instance ids and kids are percent-encoded where they hold anything but letters, digits and
`-._~`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..manifest import Entry
from .state import short_etag

ORIGINS = {"n": "new", "a": "added", "f": "found"}
_LETTER = {v: k for k, v in ORIGINS.items()}
STATUSES = {"a": "active", "n": "next", "r": "retired"}
_STATUS_LETTER = {v: k for k, v in STATUSES.items()}
_PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"


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


def _text(value: str) -> str:
    return quote(value, safe="") if value.strip(_PLAIN) or not value else value


def _head(instance: str, ttl: int, lifetime: int, kids: list[tuple[str, str, int | None]]) -> str:
    listed = "".join(
        f" {_text(kid)} {_STATUS_LETTER[status]}{'' if until is None else until}"
        for kid, status, until in kids
    )
    return f"{ttl} {lifetime} {_text(instance)}{listed}"


def head_of(entry: Entry) -> str | None:
    """The manifest's part of a JWKS's record, as stored: None for a JWKS from a manifest
    without rotation data (written before this was recorded)."""
    rotation = entry.rotation
    if rotation is None:
        return None
    kids = [
        (kid, status, epoch(t) if t else None)
        for kid, status, t in zip(entry.kids, rotation.status, rotation.not_after, strict=True)
    ]
    return _head(entry.instance, rotation.cache_ttl, rotation.token_lifetime, kids)


def _after(first: int, moment: int | None) -> str:
    return "" if moment is None else str(moment - first)


def encode(keys: Keys) -> str:
    head = _head(
        keys.instance,
        keys.cache_ttl,
        keys.token_lifetime,
        [(k.kid, k.status, k.not_after) for k in keys.kids],
    )
    dates = "".join(
        f" {k.first},{_LETTER[k.origin]},{k.since - k.first},"
        f"{_after(k.first, k.active_from)},{_after(k.first, k.active_until)}"
        for k in keys.kids
    )
    return f"{head}|{keys.etag}{dates}"


def unchanged(stored: str, head: str, etag: str) -> bool:
    """Whether a stored record already says what this publish would record: the same
    manifest part, for the JWKS object with this ETag."""
    return stored.startswith(f"{head}|{short_etag(etag)}")


_LAST = 253402300799  # 9999-12-31T23:59:59Z: what a datetime can hold


def _count(text: str, base: int = 0) -> int:
    """Seconds as stored (decimal digits, up to the year 9999), or ValueError."""
    if not (text.isascii() and text.isdigit() and len(text) <= 16):
        raise ValueError(f"{text!r} is not a count of seconds")
    value = base + int(text)
    if value > _LAST:
        raise ValueError("past the year 9999")
    return value


def _maybe(text: str, base: int = 0) -> int | None:
    return _count(text, base) if text else None


def decode(text: str) -> Keys | None:
    """A stored record, or None if anything in it is malformed (it is input)."""
    head, bar, tail = text.partition("|")
    fields, dates = head.split(" "), tail.split(" ")
    if not bar or len(fields) < 3 or len(fields) % 2 == 0 or len(dates) != len(fields) // 2:
        return None
    try:
        ttl, lifetime = _count(fields[0]), _count(fields[1])
        instance, etag = unquote(fields[2], errors="strict"), dates[0]
        found = []
        for kid, state, date in zip(fields[3::2], fields[4::2], dates[1:], strict=True):
            first_text, origin, since, start, end = date.split(",")
            first = _count(first_text)
            found.append(
                Kid(
                    unquote(kid, errors="strict"),
                    STATUSES[state[:1]],
                    _maybe(state[1:]),
                    first,
                    ORIGINS[origin],
                    _count(since, first),
                    _maybe(start, first),
                    _maybe(end, first),
                )
            )
    except (ValueError, KeyError, UnicodeDecodeError):
        return None
    if len(etag) != 16 or not instance:
        return None
    return Keys(instance, ttl, lifetime, etag, tuple(found))


def kids_at(stored: str, etag: str) -> list[str] | None:
    """The kids of the JWKS object with this ETag, if the record is about that object."""
    keys = decode(stored) if stored else None
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
