"""The YAML reader: YAML 1.2 data only, anything else refused with its line, never a hang."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellknown_build.errors import ConfigError
from wellknown_build.yamlload import load_yaml


def _load(tmp_path: Path, text: str | bytes) -> Any:
    path = tmp_path / "instances.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return load_yaml(path).data


def _refused(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return str(info.value)


BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOMB, "aliases expand to too much data"),
        ("a: 1\nb: !!set {x, y}\n", ":2: the tag !!set is not supported"),
        ("a: !!omap [{x: 1}]\n", ":1: the tag !!omap is not supported"),
        ("a:\n  b: !!binary aGVsbG8=\n", ":2: the tag !!binary is not supported"),
        ("a: !!timestamp foo\n", "the tag !!timestamp is not supported"),
        ("a: !!python/object:os.system x\n", "the tag !!python/object:os.system is not"),
        ("a: !custom x\n", "the tag !custom is not supported"),
        ("a: 1\nb: !!int abc\n", ":2: YAML error: Invalid value 'abc' for '!!int' tag"),
        ("a: !!bool maybe\n", "Invalid value 'maybe' for '!!bool' tag"),
        ("a: &a [*a]\n", ":1: the alias *a refers to itself"),
        ("a: 1\n---\nb: 2\n", ":2: holds more than one YAML document"),
        ("a: 1\nb: 2\na: 3\n", ":3: duplicate mapping key: 'a'"),
        ("a: [1,\nb: 2\n", ":2: YAML syntax error at column 1"),
        ("a:\n\t- b\n", ":2: YAML syntax error"),
        (b"a: \xff\xfe\n", ":1: is not UTF-8 (byte 0xff)"),
        (b"\xff\xfea\x00:\x00", "is UTF-16; save it as UTF-8"),
        ("a: {<<: 5}\n", "a merge key (<<) must be a mapping"),
    ],
)
def test_hostile_yaml_is_refused_with_its_line(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    assert expected in _refused(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.2: no Norway problem, dates stay strings (timing.py reads them)
        ("a: yes\nb: on\nc: no\n", {"a": "yes", "b": "on", "c": "no"}),
        (
            "a: 2026-12-01T00:00:00Z\nb: '2026-12-01'\n",
            {"a": "2026-12-01T00:00:00Z", "b": "2026-12-01"},
        ),
        ("a: .nan\nb: 1e400\n", None),  # numbers, refused later where they are used
        ("\ufeffa: 1\n", {"a": 1}),  # a UTF-8 byte-order mark is not part of the first key
        ("a: !!str 12\nb: ! 12\n", {"a": "12", "b": "12"}),
        (
            "base: &b {x: 1, id: a}\nother:\n  <<: *b\n  id: b\n",
            {"base": {"x": 1, "id": "a"}, "other": {"x": 1, "id": "b"}},
        ),
        ('{"instances": [{"id": "x"}]}', {"instances": [{"id": "x"}]}),  # JSON is YAML
        ("", None),
    ],
)
def test_plain_data_is_read(tmp_path: Path, text: str, expected: object) -> None:
    value = _load(tmp_path, text)
    if expected is not None or text == "":
        assert value == expected


def test_special_files_are_refused_quickly(tmp_path: Path) -> None:
    for path in ("/dev/zero", "/dev/urandom"):
        if os.path.exists(path):
            with pytest.raises(ConfigError, match="not a regular file"):
                load_yaml(Path(path))
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml(tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")
    if sys.platform != "win32":
        fifo = tmp_path / "fifo.yaml"
        os.mkfifo(fifo)
        with pytest.raises(ConfigError, match="not a regular file"):
            load_yaml(fifo)


def test_problem_lines_follow_yaml_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "defaults:\n  key: {alg: X}\ninstances:\n  - id: a\n    keys:\n      - path: k\n"
    )
    source = load_yaml(path)
    assert source.line("defaults.key.alg") == 2
    assert source.line("instances[0].keys[0].path") == 6
    assert source.line("instances[0].nothing") == 4  # the deepest part found
    assert source.line("") == 1


_names = st.sampled_from(["a", "b", "c", "id"])
_maps = st.dictionaries(_names, st.integers(0, 9), max_size=4)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sources=st.lists(_maps, min_size=1, max_size=3), own=_maps, as_list=st.booleans())
def test_merge_keys_as_pyyaml_builds_them(
    tmp_path: Path, sources: list[dict[str, int]], own: dict[str, int], as_list: bool
) -> None:
    """`<<` merges as the YAML 1.1 merge-key spec says (yaml.org/type/merge.html): explicit
    keys win, then maps earlier in the list over later ones. PyYAML 6.0.4 is no reference:
    it dedupes merged keys by the id() of the key string, so interning decides."""
    anchors = "".join(
        f"s{i}: &s{i} {yaml.safe_dump(m, default_flow_style=True, sort_keys=False).strip()}\n"
        for i, m in enumerate(sources)
    )
    refs = ", ".join(f"*s{i}" for i in range(len(sources)))
    merge = f"[{refs}]" if as_list or len(sources) > 1 else refs
    body = "".join(f"  {k}: {v}\n" for k, v in own.items())
    text = f"{anchors}m:\n  <<: {merge}\n{body}"
    expected: dict[str, int] = {}
    for source in sources:
        for key, value in source.items():
            expected.setdefault(key, value)
    expected.update(own)
    got = _load(tmp_path, text)["m"]
    assert list(got.items()) == list(expected.items())
    if len(sources) == 1:
        assert got == yaml.safe_load(text)["m"]


def test_the_pure_python_event_parser_finds_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where PyYAML was built without libyaml, the checks run on its pure-Python parser."""
    from wellknown_build import yamlload

    monkeypatch.setattr(yamlload, "_EventLoader", yaml.SafeLoader)
    for text, expected in [
        ("a: 1\nb: !!set {x}\n", ":2: the tag !!set is not supported"),
        ("a: &a [*a]\n", ":1: the alias *a refers to itself"),
        ("a: 1\n---\nb: 2\n", ":2: holds more than one YAML document"),
        ("a: 1\nb: 2\na: 3\n", ":3: duplicate mapping key"),
    ]:
        assert expected in _refused(tmp_path, text)
    assert _load(tmp_path, "a: &x {b: 1}\nc: *x\n") == {"a": {"b": 1}, "c": {"b": 1}}
