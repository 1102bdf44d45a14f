"""Large configs are built in several processes; the result must not depend on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellknown_build.build import build
from wellknown_build.errors import ConfigError

from .helpers import KEY_MAKERS, public_pem, write, write_config


def _config(tmp_path: Path, broken: bool) -> Path:
    lines = ["instances:"]
    for i in range(9):
        write(tmp_path / "keys" / f"{i}.pem", public_pem(KEY_MAKERS["ed25519"]()))
        scheme = "http" if broken and i in (2, 7) else "https"
        lines.append(
            f"  - {{id: i{i}, issuer: '{scheme}://h{i}.example/t', keys: [{{path: keys/{i}.pem}}]}}"
        )
    if broken:
        lines.append("  - {id: i1, issuer: 'https://h1.example/t', keys: [{path: keys/1.pem}]}")
    return write_config(tmp_path, "\n".join(lines) + "\n")


def test_parallel_build_equals_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, broken=False)
    monkeypatch.setenv("WELLKNOWN_WORKERS", "1")
    serial = build(config)
    monkeypatch.setenv("WELLKNOWN_WORKERS", "3")
    parallel = build(config)
    assert parallel.documents == serial.documents
    assert parallel.config.instances == serial.config.instances


def test_parallel_problems_equal_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, broken=True)
    found = []
    for workers in ("1", "3"):
        monkeypatch.setenv("WELLKNOWN_WORKERS", workers)
        with pytest.raises(ConfigError) as info:
            build(config)
        found.append(info.value.problems)
    assert found[0] == found[1]
    paths = [p.path for p in found[0]]
    assert paths == [
        "instances[9].id",
        "instances[2].issuer",
        "instances[7].issuer",
        "instances[9]",
        "instances[9]",
    ]
