"""Rotation: which keys are published at fixed instants across a key's whole life, and every
warning the timing rules give."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from wellknown_build.build import build
from wellknown_build.errors import ConfigError
from wellknown_build.timing import parse_duration, parse_instant

from .helpers import KEY_MAKERS, Run, public_pem, write, write_config

# old signs until Dec 1; new is published Nov 20, signs from Dec 1; old leaves Dec 3.
ROTATION = """
defaults: {{token_lifetime: 1h, cache_ttl: 15m}}
instances:
  - id: x
    issuer: https://h.example
    keys:
      - {{path: keys/old.pem, kid: old, status: {old}, not_before: 2026-01-01T00:00:00Z, not_after: 2026-12-03T00:00:00Z}}
      - {{path: keys/new.pem, kid: new, status: {new}, not_before: 2026-12-01T00:00:00Z}}
"""


@pytest.fixture
def keys(tmp_path: Path) -> None:
    for name in ("old", "new", "third"):
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))


def _at(tmp_path: Path, now: str, old: str, new: str) -> tuple[list[str], list[str]]:
    config = write_config(tmp_path, ROTATION.format(old=old, new=new))
    result = build(config, parse_instant(now))
    (jwks,) = [d for d in result.documents if d.kind == "jwks"]
    kids = [k["kid"] for k in json.loads(jwks.body)["keys"]]
    return kids, [str(w) for w in result.warnings]


@pytest.mark.parametrize(
    ("now", "old", "new", "kids", "warning"),
    [
        # 1. The new key is added as next, well ahead: published after the active one.
        ("2026-11-20T00:00:00Z", "active", "next", ["old", "new"], None),
        # 2. Promotion day has come but the config still says next.
        ("2026-12-01T00:00:00Z", "active", "next", ["old", "new"], "was due to start signing"),
        # 3. Promoted: the active key comes first, the retired one stays.
        ("2026-12-01T00:00:00Z", "retired", "active", ["new", "old"], None),
        # 4. Past the old key's not_after: dropped (with a notice, not a warning).
        ("2026-12-03T00:00:00Z", "retired", "active", ["new"], None),
        # 5. Next key added too late: caches will not have it when it starts signing.
        ("2026-11-30T23:50:00Z", "active", "next", ["old", "new"], "less than cache_ttl (15m)"),
        # 6. Active too early.
        ("2026-11-20T00:00:00Z", "active", "active", ["old", "new"], "in the future"),
        # 7. Nothing signs.
        ("2026-11-20T00:00:00Z", "retired", "next", ["new", "old"], "no active key"),
    ],
)
def test_lifecycle(
    tmp_path: Path, keys: None, now: str, old: str, new: str, kids: list[str], warning: str | None
) -> None:
    published, warnings = _at(tmp_path, now, old, new)
    assert published == kids
    if warning is None:
        assert warnings == []
    else:
        assert any(warning in w for w in warnings), warnings


def test_retired_key_dropped_too_early(tmp_path: Path, keys: None) -> None:
    text = ROTATION.format(old="retired", new="active").replace(
        "2026-12-03T00:00:00Z", "2026-12-01T01:00:00Z"
    )
    result = build(write_config(tmp_path, text), parse_instant("2026-12-01T00:30:00Z"))
    (warning,) = result.warnings
    assert warning.path == "instances[0].keys[0].not_after"
    assert "keep it until 2026-12-01T01:15:00Z" in warning.message


def test_every_key_expired_is_an_error(tmp_path: Path, keys: None) -> None:
    config = write_config(
        tmp_path,
        ROTATION.format(old="active", new="next").replace(
            "not_before: 2026-12-01T00:00:00Z", "not_after: 2026-12-02T00:00:00Z"
        ),
    )
    with pytest.raises(ConfigError, match="every key is past its not_after"):
        build(config, parse_instant("2026-12-05T00:00:00Z"))


def test_default_cache_ttl_from_cache_control(tmp_path: Path, keys: None) -> None:
    config = write_config(
        tmp_path,
        """
        defaults: {cache_control: "public, max-age=60, s-maxage=3600"}
        instances: [{id: x, issuer: 'https://h.example', keys: [{path: keys/old.pem}]}]
        """,
    )
    (instance,) = build(config).config.instances
    assert instance.cache_ttl == 3600 + 600 and instance.token_lifetime == 3600


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("not_before", "'2026-12-01T00:00:00'", "has no timezone"),
        ("not_before", "'yesterday'", "not an RFC 3339 date-time"),
        ("status", "expired", "'expired' is not one of next, active, retired"),
        ("not_after", "2020-01-01", "must be later than not_before"),
    ],
)
def test_bad_key_dates(tmp_path: Path, keys: None, field: str, value: str, message: str) -> None:
    extra = "not_before: 2026-01-01, " if field == "not_after" else ""
    config = write_config(
        tmp_path,
        f"instances: [{{id: x, issuer: 'https://h.example', keys: [{{path: keys/old.pem, {extra}{field}: {value}}}]}}]",
    )
    with pytest.raises(ConfigError) as info:
        build(config)
    (problem,) = info.value.problems
    assert problem.path == f"instances[0].keys[0].{field}" and message in problem.message


def test_durations() -> None:
    assert [parse_duration(v) for v in (300, "90s", "15m", "1h", "7d", "PT1H30M", "P1D")] == [
        300,
        90,
        900,
        3600,
        604800,
        5400,
        86400,
    ]
    assert [parse_duration(v) for v in ("300", "2w", "P2W", " 5 m ")] == [
        300,
        1209600,
        1209600,
        300,
    ]
    for bad in ("1 fortnight", "-5", "PT", True, 3.5, -1.0, float("inf"), "P", "1h30m", "٣"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_duration("40000d")
    midnight = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    for same in (
        "2026-12-01",
        "2026-12-01T00:00:00Z",
        "2026-12-01t00:00:00z",
        "2026-12-01 01:00:00+01:00",
        "2026-12-01T00:00:00.000000Z",
        "2026-12-01T01:00:00+0100",
    ):
        assert parse_instant(same) == midnight, same
    for bad in (
        "2026-02-30",
        "2026-12-01T00:00:00",
        "2026-13-01",
        "yesterday",
        20261201,
        "2026-12-01T25:00:00Z",
    ):
        with pytest.raises(ValueError):
            parse_instant(bad)


def test_cli_now_and_strict(run: Run, tmp_path: Path, keys: None) -> None:
    write_config(tmp_path, ROTATION.format(old="active", new="next"))
    ok = run("render", "instances.yaml", "--now", "2026-11-20T00:00:00Z", "--strict")
    assert ok.exit_code == 0, ok.output
    late = run("validate", "instances.yaml", "--now", "2026-12-01T00:00:00Z")
    assert late.exit_code == 0
    assert "was due to start signing" in late.output
    strict = run("validate", "instances.yaml", "--now", "2026-12-01T00:00:00Z", "--strict")
    assert strict.exit_code == 1
    assert "1 warning (--strict)" in strict.output
    dropped = run("render", "instances.yaml", "--now", "2026-12-04T00:00:00Z")
    assert "kid old dropped: not_after 2026-12-03T00:00:00Z has passed" in dropped.output
    assert run("render", "instances.yaml", "--now", "tomorrow").exit_code == 2


UNSAFE = """
defaults: {{token_lifetime: 1h, cache_ttl: 15m}}
instances:
  - id: x
    issuer: https://h.example
    keys:
      - {{path: keys/old.pem, kid: old, status: {old}, not_before: 2026-01-01T00:00:00Z, not_after: {not_after}}}
      - {{path: keys/new.pem, kid: new, status: {new}, not_before: 2026-12-01T00:00:00Z}}
"""


@pytest.mark.parametrize(
    "now",
    [
        "2026-12-01T00:59:59Z",  # 1 s before the unsafe not_after
        "2026-12-01T01:00:00Z",  # at it: the key is dropped
        "2026-12-01T01:00:01Z",  # 1 s after
        "2027-01-01T00:00:00Z",  # long after
    ],
)
def test_an_unsafe_drop_is_reported_before_and_after_it_happens(
    tmp_path: Path, keys: None, now: str
) -> None:
    config = write_config(
        tmp_path, UNSAFE.format(old="retired", new="active", not_after="2026-12-01T01:00:00Z")
    )
    result = build(config, parse_instant(now))
    (warning,) = [w for w in result.warnings if w.path.endswith("keys[0].not_after")]
    assert "keep it until 2026-12-01T01:15:00Z" in warning.message


@pytest.mark.parametrize(
    ("status", "not_after", "unsafe"),
    [
        ("retired", "2026-12-01T01:14:59Z", True),  # 1 s short of takeover + 1h + 15m
        ("retired", "2026-12-01T01:15:00Z", False),
        ("active", "2026-12-01T00:20:00Z", True),  # leaves 20 min after its last signature
        ("active", "2026-12-01T01:14:59Z", True),
        ("active", "2026-12-01T01:15:00Z", False),
    ],
)
def test_drop_boundaries(
    tmp_path: Path, keys: None, status: str, not_after: str, unsafe: bool
) -> None:
    new = "next" if status == "active" else "active"
    config = write_config(tmp_path, UNSAFE.format(old=status, new=new, not_after=not_after))
    result = build(config, parse_instant("2026-11-20T00:00:00Z"))
    found = [w for w in result.warnings if w.path.endswith("keys[0].not_after")]
    assert bool(found) == unsafe, found


def test_an_active_key_leaving_without_a_successor(tmp_path: Path, keys: None) -> None:
    config = write_config(
        tmp_path,
        """
        instances:
          - id: x
            issuer: https://h.example
            keys: [{path: keys/old.pem, not_after: 2027-01-01T00:00:00Z}]
        """,
    )
    (warning,) = build(config, parse_instant("2026-11-20T00:00:00Z")).warnings
    assert "leaves the JWKS at 2027-01-01T00:00:00Z while it still signs" in warning.message


def test_unsafe_drop_fails_strict_after_it_happened(run: Run, tmp_path: Path, keys: None) -> None:
    write_config(
        tmp_path, UNSAFE.format(old="retired", new="active", not_after="2026-12-01T01:00:00Z")
    )
    late = run("validate", "instances.yaml", "--now", "2027-01-01", "--strict")
    assert late.exit_code == 1
    assert "keep it until 2026-12-01T01:15:00Z" in late.output


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [
        ("public, max-age=300", 300),
        ("Max-Age=3600", 3600),  # directive names are case-insensitive (RFC 9111 §5.2)
        ('max-age="3600"', 3600),  # and the quoted form is allowed
        ("public, max-age=60, stale-while-revalidate=300", 360),  # RFC 5861
        ("public, max-age=60, stale-if-error=86400", 86460),
        ("public, s-maxage=600, max-age=60", 600),
        ("no-store", 0),
    ],
)
def test_cache_ttl_from_cache_control(
    tmp_path: Path, keys: None, cache_control: str, ttl: int
) -> None:
    config = write_config(
        tmp_path,
        f"defaults: {{cache_control: '{cache_control}'}}\n"
        "instances: [{id: x, issuer: 'https://h.example', keys: [{path: keys/old.pem}]}]\n",
    )
    (instance,) = build(config).config.instances
    assert instance.cache_ttl == ttl + 600  # plus node jose's own 10 minutes


def test_a_retired_key_without_a_takeover_instant_is_warned_about(
    tmp_path: Path, keys: None
) -> None:
    config = write_config(
        tmp_path,
        """
        instances:
          - id: x
            issuer: https://h.example
            keys:
              - {path: keys/new.pem, status: active}
              - {path: keys/old.pem, status: retired, not_after: 2026-03-01T00:05:00Z}
        """,
    )
    (warning,) = build(config, parse_instant("2026-03-01T00:00:00Z")).warnings
    assert "cannot be checked: give the active key its not_before" in warning.message
