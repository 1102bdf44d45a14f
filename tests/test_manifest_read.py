"""manifest.read streams a manifest shaped as chunks() writes it, a line at a time; it must
give exactly what reading the whole text gives (the entries, or the same error), for a
manifest as written and for any damage to it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wellknown_build import manifest
from wellknown_build.errors import TreeError
from wellknown_build.files import read_regular
from wellknown_build.manifest import MANIFEST_NAME, Entry
from wellknown_build.model import Rotation

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_PART = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=8,
).filter(lambda t: t not in (".", ".."))


@st.composite
def _entries(draw: st.DrawFn) -> list[Entry]:
    count = draw(st.integers(0, 6))
    found = []
    for i in range(count):
        jwks = draw(st.booleans())
        kids = tuple(draw(st.lists(_TEXT, min_size=1, max_size=3))) if jwks else ()
        rotation = None
        if jwks and draw(st.booleans()):
            status = tuple(draw(st.sampled_from(["active", "next", "retired"])) for _ in kids)
            after = tuple(
                draw(st.sampled_from([None, dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)]))
                for _ in kids
            )
            rotation = Rotation(900, 3600, status, after)
        found.append(
            Entry(
                path=f"h{i}.example/{draw(_PART)}{i}/.well-known/"
                f"{'jwks.json' if jwks else 'openid-configuration'}",
                sha256=draw(st.sampled_from(["0" * 64, "ab" * 32])),
                size=draw(st.integers(0, 2**40)),
                content_type="application/json",
                cache_control=draw(st.sampled_from(["public, max-age=300", "no-store"])),
                instance=draw(_TEXT),
                kind="jwks" if jwks else "openid-configuration",
                kids=kids,
                rotation=rotation,
            )
        )
    return found


_DAMAGE = st.one_of(
    st.just(("none", 0, b"")),
    st.tuples(
        st.sampled_from(["replace", "insert", "delete", "truncate", "append", "double"]),
        st.integers(0, 10_000),
        st.sampled_from(
            [b"\n", b",", b" ", b"{", b"}", b"[", b"]", b'"', b"x", b"\r", b"\\", b"\xff", b"0"]
        ),
    ),
)


def _damaged(text: bytes, damage: tuple[str, int, bytes]) -> bytes:
    how, at, byte = damage
    at = at % (len(text) + 1)
    if how == "replace" and at < len(text):
        return text[:at] + byte + text[at + 1 :]
    if how == "insert":
        return text[:at] + byte + text[at:]
    if how == "delete":
        return text[:at] + text[at + 1 :]
    if how == "truncate":
        return text[:at]
    if how == "append":
        return text + byte
    if how == "double":  # a line twice: a path listed twice, or a comma out of place
        lines = text.split(b"\n")
        index = at % len(lines)
        return b"\n".join([*lines[: index + 1], lines[index], *lines[index + 1 :]])
    return text


def _outcome(read: object) -> tuple[str, object]:
    try:
        return ("ok", read())  # type: ignore[operator]
    except TreeError as e:
        return ("error", str(e))


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=_entries(), damage=_DAMAGE)
@example(entries=[], damage=("none", 0, b""))
def test_streamed_equals_whole(
    tmp_path: Path, entries: list[Entry], damage: tuple[str, int, bytes]
) -> None:
    text = b"".join(manifest.chunks([[manifest.line(e) for e in entries]]))
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(_damaged(text, damage))
    streamed = _outcome(lambda: manifest.read(tmp_path))
    whole = _outcome(lambda: manifest.parse(read_regular(path, manifest.MANIFEST_LIMIT), str(path)))
    assert streamed == whole
    if damage[0] == "none":
        assert streamed == ("ok", manifest.Manifest(tuple(entries)))


def test_a_manifest_as_written_is_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line-at-a-time path is the one taken (else the test above proves nothing)."""
    entries = [
        Entry(f"h{i}.example/.well-known/jwks.json", "0" * 64, 1, "a/b", "no-store", "i", "jwks")
        for i in range(3)
    ]
    (tmp_path / MANIFEST_NAME).write_bytes(
        b"".join(manifest.chunks([[manifest.line(e) for e in entries]]))
    )

    def whole(data: bytes, source: str) -> manifest.Manifest:
        raise AssertionError("read whole")

    monkeypatch.setattr(manifest, "parse", whole)
    found = manifest.read(tmp_path)
    assert found is not None and list(found.entries) == entries
    # equal values are one object across entries
    assert found.entries[0].cache_control is found.entries[2].cache_control


@pytest.mark.parametrize("depth", [1020, 1021, 1022, 1023, 1024, 1025])
def test_nesting_at_the_parsers_limit_is_judged_as_the_whole_text_would(
    tmp_path: Path, depth: int
) -> None:
    """A line alone is 2 levels shallower than in the whole text, where orjson stops at
    1,024: an entry with a member nested 1,022 deep passed alone and failed whole (review)."""
    entry = Entry("h.example/.well-known/jwks.json", "0" * 64, 1, "a/b", "no-store", "i", "jwks")
    line = manifest.line(entry)[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(b"".join(manifest.chunks([[line]])))
    streamed = _outcome(lambda: manifest.read(tmp_path))
    whole = _outcome(lambda: manifest.parse(read_regular(path, manifest.MANIFEST_LIMIT), str(path)))
    assert streamed == whole


def test_the_size_limit_counts_every_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        Entry(f"h{i}.example/.well-known/jwks.json", "0" * 64, 1, "a/b", "no-store", "i", "jwks")
        for i in range(3)
    ]
    text = b"".join(manifest.chunks([[manifest.line(e) for e in entries]]))
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(text)
    for limit in (len(text) - 7, len(text) - 1, len(text), len(text) + 1):
        monkeypatch.setattr(manifest, "MANIFEST_LIMIT", limit)
        streamed = _outcome(lambda: manifest.read(tmp_path))
        if limit < len(text):  # refused, as the whole read refuses it
            assert streamed[0] == "error" and "larger than" in str(streamed[1])
        else:
            assert streamed == ("ok", manifest.parse(read_regular(path, limit), str(path)))
