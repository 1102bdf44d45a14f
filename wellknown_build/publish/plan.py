"""Pure planning: the manifest and the bucket's state → what to create, update, keep, delete.

No boto3 here: the bucket is described by `Remote` records, so every rule can be tested
without a server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import jsondoc
from ..documents import KIND_DISCOVERY, KIND_JWKS, KIND_OAUTH
from ..manifest import Entry

CREATE, UPDATE, UNCHANGED, DELETE, KEEP = "create", "update", "unchanged", "delete", "keep"
OWNER = "wellknown-build"  # value of the x-amz-meta-wellknown-build marker


def fingerprint(entry: Entry, acl: str | None) -> str:
    """What makes an object up to date: its body and every header we set."""
    return fingerprint_of(entry.sha256, entry.content_type, entry.cache_control, acl)


def fingerprint_of(sha256: str, content_type: str, cache_control: str, acl: str | None) -> str:
    headers = f"{content_type}\n{cache_control}\n{acl or ''}"
    return hashlib.sha256(f"{sha256}\n{headers}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Remote:
    """One object as the listing shows it, and what we know of it (state index or HEAD)."""

    key: str
    etag: str
    size: int
    fingerprint: str | None = None  # from our metadata; None when not ours or unknown
    sha256: str | None = None  # body hash from our metadata
    owned: bool = False
    modified: str = ""  # LastModified
    kids: tuple[str, ...] | None = None  # a JWKS's kids, when the state index knows them
    verified: bool = False  # ownership seen on the object itself (HEAD), not only the index


@dataclass(frozen=True, slots=True)
class Action:
    op: str
    key: str
    reason: str
    entry: Entry | None = None  # what to upload (create/update)
    kind: str = ""

    @property
    def phase(self) -> int:
        """Upload JWKS, then discovery documents; delete discovery before JWKS."""
        if self.op in (CREATE, UPDATE):
            return 0 if self.kind == KIND_JWKS else 1
        return 2 if self.kind != KIND_JWKS else 3


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    kid_changes: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)

    def of(self, *ops: str) -> list[Action]:
        return [a for a in self.actions if a.op in ops]

    def counts(self) -> dict[str, int]:
        return {op: len(self.of(op)) for op in (CREATE, UPDATE, UNCHANGED, DELETE, KEEP)}

    @property
    def changes(self) -> list[Action]:
        return self.of(CREATE, UPDATE, DELETE)


def kind_of(key: str) -> str:
    """For objects no longer in the manifest, whose kind only the key tells."""
    if "/.well-known/oauth-authorization-server" in key:
        return KIND_OAUTH
    return KIND_DISCOVERY if key.endswith("/openid-configuration") else KIND_JWKS


def make_plan(
    entries: list[Entry],
    prefix: str,
    remote: Mapping[str, Remote],
    *,
    acl: str | None,
    delete: bool,
    state_key: str,
) -> Plan:
    """`remote` must already carry fingerprints for every object we might own."""
    plan = Plan()
    wanted = set()
    for entry in entries:
        key = prefix + entry.path
        wanted.add(key)
        want = fingerprint(entry, acl)
        current = remote.get(key)
        if current is None:
            plan.actions.append(Action(CREATE, key, "new", entry, entry.kind))
        elif current.fingerprint == want:
            plan.actions.append(Action(UNCHANGED, key, "same body and headers", entry, entry.kind))
        else:
            if current.fingerprint is None:
                reason = "not written by wellknown-build" if not current.owned else "unknown state"
            elif current.sha256 == entry.sha256:
                reason = "headers changed"
            else:
                reason = "body changed"
            plan.actions.append(Action(UPDATE, key, reason, entry, entry.kind))
    for key in sorted(remote):
        if key in wanted or key == state_key:
            continue
        current = remote[key]
        if not current.owned:
            continue  # never touch what we did not write
        if delete:
            plan.actions.append(Action(DELETE, key, "no longer rendered", kind=kind_of(key)))
        else:
            plan.actions.append(
                Action(KEEP, key, "no longer rendered; --delete removes it", kind=kind_of(key))
            )
    return plan


def kids_of(body: bytes) -> list[str] | None:
    """The kids of a JWKS object as it is in the bucket; None if it is not a key set (an
    object in the bucket is input too: it is then treated as unknown and overwritten)."""
    try:
        keys = jsondoc.loads(body).get("keys")
    except (ValueError, AttributeError):
        return None
    if not isinstance(keys, list):
        return None
    return [
        k["kid"] if isinstance(k, dict) and isinstance(k.get("kid"), str) else "?" for k in keys
    ]


def kid_changes(
    plan: Plan, old_kids: Mapping[str, list[str] | None], prefix: str
) -> dict[str, tuple[list[str], list[str]]]:
    """Per JWKS path: kids that appear and kids that disappear with this publish. `old_kids`
    holds what each changed JWKS object holds now (None: not a key set)."""
    result: dict[str, tuple[list[str], list[str]]] = {}
    for action in plan.actions:
        if action.kind != KIND_JWKS or action.op not in (CREATE, UPDATE, DELETE):
            continue
        new = list(action.entry.kids) if action.entry else []
        old = old_kids.get(action.key) or [] if action.op != CREATE else []
        added = [k for k in new if k not in old]
        removed = [k for k in old if k not in new]
        if added or removed:
            result[action.key.removeprefix(prefix)] = (added, removed)
    return result
