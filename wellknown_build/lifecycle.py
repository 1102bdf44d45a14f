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
from dataclasses import dataclass, field

from .errors import Problem
from .keys import JWK
from .model import Instance, KeySpec
from .timing import after, describe, iso

_ORDER = {"active": 0, "next": 1, "retired": 2}


@dataclass
class Outcome:
    published: list[JWK] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)


def select(instance: Instance, keyed: list[tuple[KeySpec, JWK]], now: dt.datetime) -> Outcome:
    out = Outcome()
    ttl, lifetime = instance.cache_ttl, instance.token_lifetime
    live = []
    for spec, jwk in keyed:
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
    # When the current signer took over: the moment the retired keys stopped signing.
    takeover = max(
        (s.not_before for s, _ in live if s.status == "active" and s.not_before is not None),
        default=None,
    )
    for spec, jwk in live:
        out.warnings += _check(instance, spec, jwk, now, takeover, ttl, lifetime)
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
    return out


def _check(
    instance: Instance,
    spec: KeySpec,
    jwk: JWK,
    now: dt.datetime,
    takeover: dt.datetime | None,
    ttl: int,
    lifetime: int,
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
    if spec.status == "retired" and spec.not_after is not None and takeover is not None:
        safe = after(takeover, lifetime + ttl)
        if spec.not_after < safe:
            warn(
                f"{spec.where}.not_after",
                f"retired key {kid} leaves the JWKS at {iso(spec.not_after)}, before tokens "
                f"it signed can have expired: it stopped signing at {iso(takeover)}, tokens "
                f"live {describe(lifetime)} and caches hold {describe(ttl)}, so keep it until "
                f"{iso(safe)}",
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
