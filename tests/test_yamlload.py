"""Our YAML reader builds exactly what yaml.safe_load builds, and refuses duplicate keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellknown_build.errors import ConfigError
from wellknown_build.yamlload import load_yaml

_plain = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="#:{}[],&*!|>'\"%@`"
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_plain, min_size=1, max_size=8))
def test_plain_scalars_resolve_like_safe_load(tmp_path: Path, values: list[str]) -> None:
    text = "".join(f"k{i}: {v}\n" for i, v in enumerate(values))
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert load_yaml(path) == expected


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
        max_leaves=12,
    )
)
def test_round_trip_of_dumped_data(tmp_path: Path, value: object) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"v": value}))
    assert load_yaml(path) == yaml.safe_load(path.read_text())


def test_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: {x: 1, x: 2}\n")
    with pytest.raises(
        ConfigError, match=r"line 2, column 11: YAML syntax error: duplicate key 'x'"
    ):
        load_yaml(path)
