"""`status`: per instance, each published key's state and from when it is safe to sign with
it or to drop it, from the bucket's state index alone (what publish recorded, see
publish/history.py). Read only: no lease, nothing written.

- safe to sign from: first published + cache_ttl (at once for a key that came with its
  JWKS's first upload: nothing can have cached a set without it);
- safe to drop from: the publish that first showed it no longer active + token_lifetime +
  cache_ttl; for a key that was never seen active, from when it was first seen retired (it
  may have signed before that), or at once for a `next` key (it never signed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..lifecycle import Live
from ..publish import history
from ..publish.s3 import Bucket
from ..publish.site import Site, state_keys
from ..publish.state import load
from ..timing import after, describe, iso


@dataclass(frozen=True)
class Connection:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    workers: int = 16
    timeout: float = 30.0
    site: str | None = None  # a publish --site deployment: its own state index


@dataclass(frozen=True)
class KeyStatus:
    kid: str
    status: str
    origin: str
    first_published: dt.datetime
    status_since: dt.datetime
    active_from: dt.datetime | None
    active_until: dt.datetime | None
    not_after: dt.datetime | None
    sign_from: dt.datetime | None  # None for a retired key
    drop_from: dt.datetime | None  # None while active


@dataclass(frozen=True)
class JwksStatus:
    instance: str
    key: str  # the JWKS object's key in the bucket
    cache_ttl: int
    token_lifetime: int
    keys: tuple[KeyStatus, ...]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _at(seconds: int) -> dt.datetime:
    return after(_EPOCH, seconds)  # (fromtimestamp fails past 3000 on Windows)


def _maybe(seconds: int | None) -> dt.datetime | None:
    return _at(seconds) if seconds is not None else None


def _key_status(kid: history.Kid, ttl: int, lifetime: int) -> KeyStatus:
    first = _at(kid.first)
    sign = None if kid.status == "retired" else first if kid.origin == "new" else after(first, ttl)
    if kid.status == "active":
        drop = None
    elif kid.active_until is not None:
        drop = after(_at(kid.active_until), lifetime + ttl)
    elif kid.status == "next":
        drop = first
    else:  # retired and never seen active: it stopped signing by the time it was seen retired
        drop = after(_at(kid.since), lifetime + ttl)
    return KeyStatus(
        kid.kid,
        kid.status,
        kid.origin,
        first,
        _at(kid.since),
        _maybe(kid.active_from),
        _maybe(kid.active_until),
        _maybe(kid.not_after),
        sign,
        drop,
    )


def read(connection: Connection, only: Collection[str] = ()) -> list[JwksStatus]:
    """Every JWKS the deployment's state index holds kids for (of the instances in `only`,
    if given), by instance id and key."""
    bucket = Bucket(
        connection.bucket,
        endpoint_url=connection.endpoint_url,
        region=connection.region,
        workers=connection.workers,
        timeout=connection.timeout,
    )
    with ThreadPoolExecutor(connection.workers) as pool:
        home = None
        if connection.site:
            home = state_keys(connection.prefix, Site.of(connection.site))[0]
            home = home.removesuffix("state.json")
        state = load(bucket, connection.prefix, pool, home)
    found = []
    for key in state.objects:
        stored = state.history(key)
        keys = history.decode(stored) if stored else None
        if keys is None or (only and keys.instance not in only):
            continue
        ttl, lifetime = keys.cache_ttl, keys.token_lifetime
        found.append(
            JwksStatus(
                keys.instance,
                key.removeprefix(connection.prefix),
                ttl,
                lifetime,
                tuple(_key_status(k, ttl, lifetime) for k in keys.kids),
            )
        )
    return sorted(found, key=lambda j: (j.instance, j.key))


def published(found: Iterable[JwksStatus]) -> dict[str, dict[str, Live]]:
    """What the rotation guard (`validate --bucket`) needs: per instance id, per kid, when it
    was first published and whether it came with its JWKS or was there before the index saw
    it (initial: no wait needed, or none knowable). An instance whose JWKS moved has two
    records: a kid in both counts from its later first publish."""
    result: dict[str, dict[str, Live]] = {}
    for jwks in found:
        kids = result.setdefault(jwks.instance, {})
        for key in jwks.keys:
            live = Live(key.first_published, key.origin != "added", key.active_from)
            if key.kid not in kids or kids[key.kid].first_published < live.first_published:
                kids[key.kid] = live
    return result


def _when(moment: dt.datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def as_json(
    found: Iterable[JwksStatus], connection: Connection, now: dt.datetime
) -> dict[str, Any]:
    instances = []
    for jwks in found:
        keys = []
        for k in jwks.keys:
            keys.append(
                {
                    "kid": k.kid,
                    "status": k.status,
                    "origin": k.origin,
                    "first_published": iso(k.first_published),
                    "status_since": iso(k.status_since),
                    "active_from": _when(k.active_from),
                    "active_until": _when(k.active_until),
                    "not_after": _when(k.not_after),
                    "sign_from": _when(k.sign_from),
                    "can_sign": k.sign_from is not None and now >= k.sign_from,
                    "drop_from": _when(k.drop_from),
                    "can_drop": k.drop_from is not None and now >= k.drop_from,
                }
            )
        instances.append(
            {
                "instance": jwks.instance,
                "jwks": jwks.key,
                "cache_ttl": jwks.cache_ttl,
                "token_lifetime": jwks.token_lifetime,
                "keys": keys,
            }
        )
    return {
        "bucket": connection.bucket,
        "prefix": connection.prefix,
        "site": connection.site,
        "now": iso(now),
        "instances": instances,
    }


def _wait(moment: dt.datetime, now: dt.datetime) -> str:
    if now >= moment:
        return f"safe since {iso(moment)}"
    left = int((moment - now).total_seconds() + 0.999)
    return f"safe from {iso(moment)} (in {describe(left)})"


def text(found: list[JwksStatus], connection: Connection, now: dt.datetime) -> list[str]:
    where = f"s3://{connection.bucket}/{connection.prefix}" + (
        f" (site {connection.site})" if connection.site else ""
    )
    if not found:
        return [f"{where}: no key history in the state index yet (publish records it)"]
    keys = sum(len(j.keys) for j in found)
    lines = [f"{where}: {len(found)} JWKS, {keys} keys, at {iso(now)}"]
    for jwks in found:
        lines.append(
            f"{jwks.instance}: {jwks.key} (cache_ttl {describe(jwks.cache_ttl)}, "
            f"token_lifetime {describe(jwks.token_lifetime)})"
        )
        for k in jwks.keys:
            published = iso(k.first_published)
            if k.origin == "found":
                published = f"at or before {published}"
            sign = "-" if k.sign_from is None else _wait(k.sign_from, now)
            if k.drop_from is None:
                drop = "not while active"
            elif k.status == "next" and k.active_until is None:
                drop = "any time (it never signed)"
            else:
                drop = _wait(k.drop_from, now)
            leaves = f"; leaves the JWKS at {iso(k.not_after)}" if k.not_after else ""
            lines.append(
                f"  {k.status:<7}  {k.kid}  published {published} ({k.origin}); "
                f"sign: {sign}; drop: {drop}{leaves}"
            )
    return lines
