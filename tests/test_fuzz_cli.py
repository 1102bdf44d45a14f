"""Property-based fuzzing of the CLI with broken input.

Hypothesis puts hostile values (bad scalars, tags, aliases, wrong types, special files, huge
and non-finite numbers) into every field of a valid configuration, and damages the manifest
and files of a rendered tree. For every case: exit 0, 1 or 2 and never a traceback; on
failure, nothing but `error: ...` and one indented line per problem (or click's usage
message); an existing out/ unchanged; and anything written is strict JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellknown_build.cli import main
from wellknown_build.manifest import MANIFEST_NAME

from .helpers import BOOKKEEPING, KEY_MAKERS, public_pem, write

FIELDS = [
    "id",
    "issuer",
    "jwks_uri",
    "template",
    "cache_control",
    "token_lifetime",
    "cache_ttl",
    "relying_parties",
    "oauth_metadata",
    "discovery",
    "discovery.extra",
    "discovery.nested.deep",
    "keys",
    "keys[0]",
    "keys[0].path",
    "keys[0].kid",
    "keys[0].alg",
    "keys[0].kid_method",
    "keys[0].status",
    "keys[0].not_before",
    "keys[0].not_after",
    "keys[0].passphrase_env",
    "keys[0].x5c",
    "defaults.token_lifetime",
    "defaults.discovery.x",
    "defaults.key.alg",
    "defaults.cache_control",
    "templates_dir",
]
HOSTILE = [
    ".nan",
    ".inf",
    "-.inf",
    "1e400",
    "9" * 5000,
    "-" + "9" * 30,
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [{a: 1}]",
    "!!int abc",
    "!!bool maybe",
    "!!timestamp foo",
    "!!python/object:os.system x",
    "!custom x",
    "2026-02-30",
    "2026-12-01T00:00:00",
    "'2026-12-01T25:00:00Z'",
    "*undefined",
    "&a [*a]",
    "{<<: 5}",
    "{<<: [1]}",
    "[]",
    "{}",
    "[[[[[[[[]]]]]]]]",
    "null",
    "~",
    "yes",
    "3.0",
    "-1",
    "0",
    "''",
    "' '",
    '"\\0"',
    '"\\ud800"',
    '"a\\r\\nb"',
    "/dev/zero",
    "/dev/urandom",
    "FIFO",
    "KEYDIR",
    "'x' ",
    "'" + "a" * 5000 + "'",
    "{a: {b: {c: .nan}}}",
    "[1, .inf]",
    "{1: 2}",
    "{[a]: 1}",
    "{null: 1}",
    "| \n  multi\n  line",
]
BASE = {
    "defaults": {"cache_control": "public, max-age=300"},
    "instances": [
        {
            "id": "a",
            "issuer": "https://a.example/t",
            "discovery": {"claims_supported": ["sub"]},
            "keys": [{"path": "keys/ed.pem"}],
        },
        {"id": "b", "issuer": "https://b.example", "keys": [{"path": "keys/p256.pem"}]},
    ],
}


def _yaml(value: Any, hole: str, indent: str = "") -> str:
    """Flow-style YAML of BASE with the HOLE marker replaced by raw YAML text."""
    if value == "HOLE":
        return hole
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_yaml(v, hole)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v, hole) for v in value) + "]"
    return json.dumps(value)


def _with_hole(field: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(BASE))
    target: Any = data if field.startswith(("defaults", "templates_dir")) else data["instances"][0]
    parts = field.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        if isinstance(target, list):
            target = target[int(part)]
        else:
            target = target.setdefault(part, {})
            if not isinstance(target, (dict, list)):
                return data
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = "HOLE"
    else:
        target[last] = "HOLE"
    return data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    write(folder / "keys" / "ed.pem", public_pem(KEY_MAKERS["ed25519"]()))
    write(folder / "keys" / "p256.pem", public_pem(KEY_MAKERS["p256"]()))
    if sys.platform != "win32":
        os.mkfifo(folder / "fifo")
    write(folder / "instances.yaml", _yaml(BASE, ""))
    result = CliRunner().invoke(
        main, ["-q", "render", str(folder / "instances.yaml"), "--out", str(folder / "out")]
    )
    assert result.exit_code == 0, result.output
    return folder


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING
    }


def _strict_json(data: bytes) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} written into a JSON file")

    json.loads(data, parse_constant=refuse)


def _assert_clean_failure(output: str, exit_code: int) -> None:
    assert "Traceback" not in output
    lines = output.splitlines()
    if exit_code == 2:
        assert any(line.startswith("Error: ") for line in lines), output
        return
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, output
    for line in lines[errors[0] + 1 :]:
        assert line.startswith("  "), output  # one indented line per problem
    for line in lines[: errors[0]]:
        assert line.startswith(("WARNING: ", "INFO: ")), output


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(FIELDS),
    hole=st.sampled_from(HOSTILE),
    command=st.sampled_from(["render", "validate"]),
)
def test_hostile_config_values(world: Path, field: str, hole: str, command: str) -> None:
    hole = {"FIFO": json.dumps(str(world / "fifo")), "KEYDIR": json.dumps(str(world / "keys"))}.get(
        hole, hole
    )
    if "\n" in hole:  # block scalars need block context: put it on its own line
        hole = "\n    " + hole.replace("\n", "\n    ")
    config = world / "fuzzed.yaml"
    config.write_text(_yaml(_with_hole(field), hole))
    out = world / "out"
    before = _snapshot(out)
    args = ["-q", command, str(config)] + (["--out", str(out)] if command == "render" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 1, 2), (result.output, result.exception)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        for path in out.rglob("*"):
            if path.is_file() and path.name not in BOOKKEEPING:  # SQLite
                _strict_json(path.read_bytes())
        # restore the reference tree for the next example
        restore = CliRunner().invoke(
            main, ["-q", "render", str(world / "instances.yaml"), "--out", str(out)]
        )
        assert restore.exit_code == 0
        return
    _assert_clean_failure(result.output, result.exit_code)
    assert _snapshot(out) == before


_MANIFEST_DAMAGE = st.sampled_from(
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"format": 1}',
        b'{"format": 1, "files": 5}',
        b'{"format": 1, "files": [5]}',
        b'{"format": 1.0, "files": []}',
        b'{"format": NaN, "files": []}',
        b'{"format": 1, "files": [{"path": "../../../../etc/passwd", "sha256": "'
        + b"0" * 64
        + b'", "size": 1, "content_type": "application/json", "cache_control": "x", "instance": "a", "kind": "jwks"}]}',
        b'{"format": 1, "files": [{"path": "/etc/passwd"}]}',
        b"[" * 100_000,
        b"\xff\xfe",
    ]
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=_MANIFEST_DAMAGE, command=st.sampled_from(["check", "render", "publish"]))
def test_damaged_manifest(world: Path, damage: bytes, command: str) -> None:
    """A damaged manifest: render rewrites it, --check says not up to date, publish refuses
    before any request (the endpoint is a closed port: reaching it would fail differently)."""
    out = world / "manifest-fuzz"
    config = str(world / "instances.yaml")
    assert CliRunner().invoke(main, ["-q", "render", config, "--out", str(out)]).exit_code == 0
    (out / MANIFEST_NAME).write_bytes(damage)
    args = {
        "check": ["render", config, "--out", str(out), "--check"],
        "render": ["-q", "render", config, "--out", str(out)],
        "publish": [
            "publish",
            "--out",
            str(out),
            "--bucket",
            "b",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--dry-run",
        ],
    }[command]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    if command == "render":
        assert result.exit_code == 0, result.output
    elif command == "check":
        assert result.exit_code == 1, result.output
    else:  # 3: a manifest listing no files is an empty tree, refused by the safety limit
        assert result.exit_code in (1, 3), result.output
    if command == "publish":
        assert "manifest" in result.output


def test_a_problem_is_one_line_whatever_characters_a_value_holds() -> None:
    """Every code point that str.splitlines (or a terminal) reads as a line end is escaped:
    C0, DEL, C1 (NEL, U+0085, found by the JWKS fuzz in an alg) and U+2028/U+2029."""
    from wellknown_build.errors import one_line

    every = (
        "".join(map(chr, range(0x110000)))
        .encode("utf-8", "surrogatepass")
        .decode("utf-8", "replace")
    )
    assert len(one_line(every).splitlines()) == 1
