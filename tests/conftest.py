from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from wellknown_build.cli import main

from .helpers import KEY_MAKERS, public_pem, write


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def run(cli: CliRunner, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the CLI in tmp_path; returns click's Result."""

    def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            return cli.invoke(main, list(args), env=env, catch_exceptions=False)
        finally:
            os.chdir(cwd)

    return invoke


@pytest.fixture
def ed_key(tmp_path: Path) -> Path:
    return write(tmp_path / "keys" / "ed.pem", public_pem(KEY_MAKERS["ed25519"]()))
