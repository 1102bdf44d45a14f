"""Key rotation states at a given instant: which keys to publish, and what is unsafe.

A key is `next` (published, not signing yet), `active` (signing) or `retired` (no longer
signing, published until the tokens it signed have expired). `not_before` is when a key
starts signing; `not_after` is when it leaves the JWKS. The timing rules (OpenID Connect
Core §10.1.1 on signing key rotation, RFC 9111 on caching): publish a key at least the cache
TTL before anything signs with it, and keep it for the longest token lifetime plus the cache
TTL after it stopped signing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from .errors import Problem
from .model import Instance, KeySpec, Rotation
from .timing import after, describe, iso

_ORDER = {"active": 0, "next": 1, "retired": 2}


class HasKid(Protocol):
    @property
    def kid(self) -> str: ...


K = TypeVar("K", bound=HasKid)  # a JWK, or just its kid when a re-render skips the keys


@dataclass
class Outcome(Generic[K]):
    published: list[K] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    rotation: Rotation | None = None  # the published keys' statuses, for the manifest


@dataclass(frozen=True)
class Live:
    """What a bucket's state index says of one kid of an instance (README: Rotation status)."""

    first_published: dt.datetime
    initial: bool  # in the instance's first JWKS, or already live when the index first saw it
    active_from: dt.datetime | None = None  # when a publish first showed it active


def select(
    instance: Instance,
    keyed: list[tuple[KeySpec, K]],
    now: dt.datetime,
    published: Mapping[str, Live] | None = None,
) -> Outcome[K]:
    """`published`: the instance's kids as the bucket's state index knows them (`--bucket`); None
    when not asked for or the bucket has never seen the instance (its first keys are new)."""
    out: Outcome[K] = Outcome()
    ttl, lifetime = instance.cache_ttl, instance.token_lifetime
    # When the current signer took over: the moment the retired keys stopped signing. Taken
    # from every key, dropped ones too, so that a drop that was unsafe stays reported after
    # its not_after has passed: the check is about the configuration, not about --now.
    takeover = max(
        (s.not_before for s, _ in keyed if s.status == "active" and s.not_before is not None),
        default=None,
    )
    live = []
    for spec, jwk in keyed:
        out.warnings += _unsafe_drop(instance, spec, jwk, keyed, takeover, ttl, lifetime)
        if spec.not_after is not None and now >= spec.not_after:
            out.notices.append(
                Problem(
                    spec.where,
                    f"kid {jwk.kid} dropped: not_after {iso(spec.not_after)} has passed",
                    instance.id,
                )
            )
        else:
            live.append((spec, jwk))
    if keyed and not live:
        out.errors.append(
            Problem(
                f"{instance.where}.keys",
                "every key is past its not_after: the JWKS would be empty",
                instance.id,
            )
        )
        return out
    for spec, jwk in live:
        out.warnings += _check(instance, spec, jwk, now, takeover, ttl)
        if published is not None and spec.status == "active":
            out.warnings += _guard(instance, spec, jwk.kid, published.get(jwk.kid), now)
    if live and not any(spec.status == "active" for spec, _ in live):
        out.warnings.append(
            Problem(
                f"{instance.where}.keys",
                "no active key: nothing signs tokens for this issuer",
                instance.id,
            )
        )
    live.sort(key=lambda pair: _ORDER[pair[0].status])  # stable: config order within a state
    out.published = [jwk for _, jwk in live]
    out.rotation = Rotation(
        ttl,
        lifetime,
        tuple(spec.status for spec, _ in live),
        tuple(spec.not_after for spec, _ in live),
    )
    return out


def _unsafe_drop(
    instance: Instance,
    spec: KeySpec,
    jwk: HasKid,
    keyed: list[tuple[KeySpec, K]],
    takeover: dt.datetime | None,
    ttl: int,
    lifetime: int,
) -> list[Problem]:
    """A key that leaves the JWKS before the tokens it signed can have expired.

    A retired key stopped signing when the active key took over. An active key with a
    not_after signs until its successor (the next key's not_before) takes over, or, without
    one, until it leaves: then its last tokens always outlive it.
    """
    if spec.not_after is None or spec.status == "next":
        return []
    if spec.status == "retired":
        stopped = takeover
        if stopped is None:
            return [
                Problem(
                    f"{spec.where}.not_after",
                    f"retired key {jwk.kid} leaves the JWKS at {iso(spec.not_after)}, but no "
                    "active key has a not_before, so whether its tokens have expired by then "
                    "cannot be checked: give the active key its not_before",
                    instance.id,
                )
            ]
    else:
        successors = [
            s.not_before
            for s, _ in keyed
            if s is not spec
            and s.status in ("next", "active")
            and s.not_before is not None
            and (spec.not_before is None or s.not_before > spec.not_before)
        ]
        stopped = min(successors, default=None)
        if stopped is None:
            return [
                Problem(
                    f"{spec.where}.not_after",
                    f"active key {jwk.kid} leaves the JWKS at {iso(spec.not_after)} while it "
                    "still signs: tokens it signs until then would be rejected. Add a next key "
                    f"that takes over at least {describe(lifetime + ttl)} (token_lifetime + "
                    "cache_ttl) before, and retire this one",
                    instance.id,
                )
            ]
    safe = after(stopped, lifetime + ttl)
    if spec.not_after >= safe:
        return []
    return [
        Problem(
            f"{spec.where}.not_after",
            f"{spec.status} key {jwk.kid} leaves the JWKS at {iso(spec.not_after)}, before tokens "
            f"it signed can have expired: it stops signing at {iso(stopped)}, tokens live "
            f"{describe(lifetime)} and caches hold {describe(ttl)}, so keep it until "
            f"{iso(safe)}",
            instance.id,
        )
    ]


def _check(
    instance: Instance,
    spec: KeySpec,
    jwk: HasKid,
    now: dt.datetime,
    takeover: dt.datetime | None,
    ttl: int,
) -> list[Problem]:
    found = []

    def warn(where: str, message: str) -> None:
        found.append(Problem(where, message, instance.id))

    kid, start = jwk.kid, spec.not_before
    if spec.status == "active" and start is not None and start > now:
        warn(
            f"{spec.where}.not_before",
            f"active key {kid} has not_before {iso(start)} in the future; "
            "make it status: next until then",
        )
    if spec.status == "next" and start is not None:
        if start <= now:
            warn(
                f"{spec.where}.status",
                f"next key {kid} was due to start signing at {iso(start)}; "
                "promote it to status: active",
            )
        elif start < after(now, ttl):
            warn(
                f"{spec.where}.not_before",
                f"next key {kid} starts signing at {iso(start)}, less than cache_ttl "
                f"({describe(ttl)}) from now: relying parties holding a cached JWKS would "
                "reject its tokens. "
                f"Publish it at least {describe(ttl)} before it signs",
            )
    if (
        spec.status == "retired"
        and takeover is not None
        and spec.not_before is not None
        and spec.not_before > takeover
    ):
        warn(
            f"{spec.where}.status",
            f"retired key {kid} started signing after the active key took over",
        )
    return found


def _guard(
    instance: Instance, spec: KeySpec, kid: str, found: Live | None, now: dt.datetime
) -> list[Problem]:
    """An active key that relying parties may not know yet: the bucket has never had it in
    this instance's JWKS, or it signs (from its not_before, from the publish that first
    showed it active, else from now) before it has been published for cache_ttl. Once
    cache_ttl has passed since it was first published, caches have it and all is well."""
    ttl, where = instance.cache_ttl, f"{spec.where}.status"
    if found is None:
        return [
            Problem(
                where,
                f"active key {kid} has never been published in this instance's JWKS: publish "
                f"it as status: next and wait cache_ttl ({describe(ttl)}) before it signs",
                instance.id,
            )
        ]
    safe = after(found.first_published, ttl)
    starts = [t for t in (spec.not_before, found.active_from) if t is not None]
    signs = min(starts) if starts else now
    if found.initial or now >= safe or signs >= safe:
        return []
    return [
        Problem(
            where,
            f"active key {kid} signs from {iso(signs)} but was first published at "
            f"{iso(found.first_published)}: relying parties holding a cached JWKS would reject "
            f"its tokens until {iso(safe)} (cache_ttl {describe(ttl)}); keep it status: next "
            "until then",
            instance.id,
        )
    ]
