"""The command line: exit codes 0/1/2, messages on stderr, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, Run, write_config

GOOD = "instances: [{id: a, issuer: 'https://a.example', keys: [{path: keys/ed.pem}]}]\n"


def test_render_then_check(run: Run, tmp_path: Path, ed_key: Path) -> None:
    write_config(tmp_path, GOOD)
    result = run("render", "instances.yaml")
    assert result.exit_code == 0, result.output
    assert "rendered 1 instance(s) into out: 2 created" in result.output
    assert (tmp_path / "out/a.example/.well-known/openid-configuration").is_file()
    assert run("render", "instances.yaml", "--check").exit_code == 0
    (tmp_path / "out/a.example/.well-known/jwks.json").write_text("{}")
    stale = run("render", "instances.yaml", "--check")
    assert stale.exit_code == 1
    assert "~ a.example/.well-known/jwks.json" in stale.output


def test_validate_writes_nothing(run: Run, tmp_path: Path, ed_key: Path) -> None:
    write_config(tmp_path, GOOD)
    result = run("validate", "instances.yaml")
    assert result.exit_code == 0
    assert "1 instance(s), 1 key(s): ok" in result.output
    assert not (tmp_path / "out").exists()


def test_config_error_is_exit_1(run: Run, tmp_path: Path, ed_key: Path) -> None:
    write_config(tmp_path, GOOD.replace("https://a", "http://a"))
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert result.output.startswith("error: instances.yaml: 1 problem\n")
    assert "instances[0].issuer: issuer must use https" in result.output
    assert "Traceback" not in result.output


def test_usage_errors_are_exit_2(run: Run, tmp_path: Path) -> None:
    assert run("render").exit_code == 2
    assert run("render", "missing.yaml").exit_code == 2
    assert run("render", "x.yaml", "--bogus").exit_code == 2
    assert run("frobnicate").exit_code == 2


def test_tree_error_is_exit_1(run: Run, tmp_path: Path, ed_key: Path) -> None:
    write_config(tmp_path, GOOD)
    (tmp_path / "out" / "a.example" / ".well-known" / "jwks.json").mkdir(parents=True)
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert result.output == (
        "error: out/a.example/.well-known/jwks.json is a folder, not a file, "
        "but a document must be written there\n"
    )


def test_python_dash_m() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wellknown_build",
            "validate",
            str(ROOT / "examples/instances.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 instance(s), 3 key(s): ok" in result.stdout


def test_quiet_prints_nothing_on_success(run: Run, tmp_path: Path, ed_key: Path) -> None:
    write_config(tmp_path, GOOD)
    for args in (
        ("-q", "render", "instances.yaml"),
        ("render", "-q", "instances.yaml"),
        ("validate", "instances.yaml", "-q"),
        ("render", "instances.yaml", "--check", "-q"),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert result.output == "", args


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--endpoint-url", "127.0.0.1:5055"),
        ("--endpoint-url", "ftp://127.0.0.1"),
        ("--endpoint-url", "http://"),
        ("--prefix", "a/../b/"),
        ("--prefix", "a//"),
        ("--prefix", "./"),
        ("--prefix", "a b/"),
        ("--prefix", ".wellknown-build/"),
        ("--prefix", "x"),
    ],
)
def test_bad_publish_options_are_usage_errors(
    run: Run, tmp_path: Path, option: str, value: str
) -> None:
    result = run("publish", "--bucket", "b", option, value)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and f"Invalid value for '{option}'" in result.output


def test_discovery_values_must_be_plain_json(run: Run, tmp_path: Path, ed_key: Path) -> None:
    write_config(
        tmp_path,
        "instances: [{id: a, issuer: 'https://a.example', keys: [{path: keys/ed.pem}],\n"
        "  discovery: {x: .nan, y: [.inf], z: 9007199254740993}}]\n",
    )
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert "instances[0].discovery.x: nan is not a number JSON can carry" in result.output
    assert "instances[0].discovery.y[0]: inf is not a number JSON can carry" in result.output
    assert "instances[0].discovery.z: is an integer beyond" in result.output
    assert not (tmp_path / "out").exists()


def test_keygen_refuses_absurd_rsa_sizes(run: Run, tmp_path: Path) -> None:
    result = run("keygen", "--type", "rsa", "--bits", "99999999", "--out", "k.pem")
    assert result.exit_code == 2
    assert not (tmp_path / "k.pem").exists()
