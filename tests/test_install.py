"""Installed as a fresh user installs it (`pipx install .` does the same: a wheel built from
the source, in a venv of its own): the wheel carries the package, its built-in templates and
its schema, and the installed command starts a new issuer that renders.

pip builds the wheel (hatchling, from PyPI or pip's cache) and installs the dependencies from
PyPI into a new venv: about 20 s here."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from .helpers import ROOT
from .packaging import project_copy, venv_bin


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    source = project_copy(tmp_path / "source")
    wheels = tmp_path / "wheels"
    _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, source
    )
    (wheel,) = wheels.glob("wellknown_build-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    bin_dir = venv_bin(venv)
    _run(
        bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel
    )
    command = bin_dir / "wellknown-build"

    expected = version("wellknown-build")  # this checkout's, installed for development
    assert _run(command, "--version") == f"wellknown-build, version {expected}\n"

    home = tmp_path / "home"
    home.mkdir()
    started = _run(command, "init", "issuer", "--issuer", "https://auth.example.com", cwd=home)
    assert "wellknown-build render instances.yaml" in started
    issuer = home / "issuer"
    rendered = _run(command, "render", "instances.yaml", cwd=issuer)
    assert rendered.startswith("rendered 1 instance(s) into out: 2 created")
    discovery = issuer / "out" / "auth.example.com" / ".well-known" / "openid-configuration"
    assert '"id_token_signing_alg_values_supported"' in discovery.read_text()  # built-in template
    schema = _run(command, "schema")
    assert (issuer / "instances.schema.json").read_text() == schema
    assert schema == (ROOT / "wellknown_build" / "instances.schema.json").read_text()
    assert "3 instance(s)" in _run(
        bin_dir / "python",
        "-m",
        "wellknown_build",
        "validate",
        ROOT / "examples" / "instances.yaml",
    )
