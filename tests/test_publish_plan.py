"""The pure planner: every decision and its reason, without a server."""

from __future__ import annotations

import pytest

from wellknown_build.manifest import Entry
from wellknown_build.publish.plan import (
    CREATE,
    DELETE,
    KEEP,
    UNCHANGED,
    UPDATE,
    Remote,
    fingerprint,
    kid_changes,
    kids_of,
    make_plan,
)


def _entry(
    path: str, sha: str = "a" * 64, cache: str = "max-age=300", kids: tuple[str, ...] = ()
) -> Entry:
    kind = "jwks" if path.endswith("jwks.json") else "openid-configuration"
    return Entry(path, sha, 10, "application/json", cache, "i", kind, kids)


def _remote(key: str, entry: Entry | None, owned: bool = True, acl: str | None = None) -> Remote:
    return Remote(
        key,
        '"etag"',
        10,
        fingerprint(entry, acl) if entry and owned else None,
        entry.sha256 if entry else None,
        owned,
    )


def test_every_decision() -> None:
    same, body, headers, foreign = (
        _entry(f"h/{n}/.well-known/jwks.json") for n in ("same", "body", "headers", "foreign")
    )
    new = _entry("h/new/.well-known/openid-configuration")
    remote = {
        "p/h/same/.well-known/jwks.json": _remote("p/h/same/.well-known/jwks.json", same),
        "p/h/body/.well-known/jwks.json": _remote(
            "p/h/body/.well-known/jwks.json", _entry("x", sha="b" * 64)
        ),
        "p/h/headers/.well-known/jwks.json": _remote(
            "p/h/headers/.well-known/jwks.json", _entry("x", cache="no-cache")
        ),
        "p/h/foreign/.well-known/jwks.json": _remote(
            "p/h/foreign/.well-known/jwks.json", foreign, owned=False
        ),
        "p/h/gone/.well-known/openid-configuration": _remote(
            "p/h/gone/.well-known/openid-configuration", _entry("x")
        ),
        "p/index.html": _remote("p/index.html", None, owned=False),
        "p/.wellknown-build/state.json": _remote("p/.wellknown-build/state.json", _entry("x")),
    }
    entries = [same, body, headers, foreign, new]
    plan = make_plan(
        entries, "p/", remote, acl=None, delete=True, state_key="p/.wellknown-build/state.json"
    )
    decided = {(a.op, a.key.removeprefix("p/"), a.reason) for a in plan.actions}
    assert decided == {
        (UNCHANGED, "h/same/.well-known/jwks.json", "same body and headers"),
        (UPDATE, "h/body/.well-known/jwks.json", "body changed"),
        (UPDATE, "h/headers/.well-known/jwks.json", "headers changed"),
        (UPDATE, "h/foreign/.well-known/jwks.json", "not written by wellknown-build"),
        (CREATE, "h/new/.well-known/openid-configuration", "new"),
        (DELETE, "h/gone/.well-known/openid-configuration", "no longer rendered"),
    }
    kept = make_plan(
        entries, "p/", remote, acl=None, delete=False, state_key="p/.wellknown-build/state.json"
    )
    assert [
        a.op for a in kept.actions if a.key.endswith("gone/.well-known/openid-configuration")
    ] == [KEEP]


def test_acl_is_part_of_the_fingerprint() -> None:
    entry = _entry("h/.well-known/jwks.json")
    assert fingerprint(entry, None) != fingerprint(entry, "public-read")


def test_kid_changes() -> None:
    entry = _entry("h/.well-known/jwks.json", kids=("new", "keep"))
    remote = {
        "h/.well-known/jwks.json": _remote("h/.well-known/jwks.json", _entry("x", sha="c" * 64))
    }
    plan = make_plan([entry], "", remote, acl=None, delete=False, state_key="s")
    old = {"h/.well-known/jwks.json": ["keep", "old"]}
    assert kid_changes(plan, old, "") == {"h/.well-known/jwks.json": (["new"], ["old"])}
    # an object that is not a key set (None) counts as having no kids
    assert kid_changes(plan, {"h/.well-known/jwks.json": None}, "") == {
        "h/.well-known/jwks.json": (["new", "keep"], [])
    }


@pytest.mark.parametrize(
    ("body", "kids"),
    [
        (b'{"keys": [{"kid": "a"}, {"kid": 5}, 7]}', ["a", "?", "?"]),
        (b'{"keys": 5}', None),
        (b"[]", None),
        (b"not json", None),
        (b"[" * 100_000, None),
    ],
)
def test_kids_of_a_bucket_object(body: bytes, kids: list[str] | None) -> None:
    assert kids_of(body) == kids
