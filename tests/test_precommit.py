"""The pre-commit hooks (.pre-commit-hooks.yaml), installed by pre-commit itself with
`pre-commit try-repo` into a fresh environment (`language: python`: pip installs the hook
repository, with its dependencies from PyPI), run on a new issuer's repository: validate
passes, render --check fails on a tree that no longer matches the config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wellknown_build.commands.init import init
from wellknown_build.commands.render import render

from .helpers import ROOT
from .packaging import git_repo, project_copy

HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_hooks_declared() -> None:
    by_id = {hook["id"]: hook for hook in HOOKS}
    assert sorted(by_id) == ["wellknown-build-check", "wellknown-build-validate"]
    assert by_id["wellknown-build-validate"]["entry"] == "wellknown-build validate"
    assert by_id["wellknown-build-check"]["entry"] == "wellknown-build render --check"
    assert all(hook["language"] == "python" for hook in HOOKS)


@pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git")
def test_try_repo_one_pass_one_fail(tmp_path: Path) -> None:
    hooks = project_copy(tmp_path / "hooks")
    git_repo(hooks)
    repo = tmp_path / "issuer"
    init(repo, "https://auth.example.com", kind="ec-p256")
    render(repo / "instances.yaml", repo / "out")
    git_repo(repo)
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "add", "-f", "out"], check=True)  # this repository commits its tree
    config = repo / "instances.yaml"
    text = config.read_text().replace(
        "    keys:\n", "    discovery: {claims_supported: [sub]}\n    keys:\n"
    )
    config.write_text(text)
    subprocess.run([*git, "add", "instances.yaml"], check=True)  # staged, as a commit sees it

    env = {k: v for k, v in os.environ.items() if not k.startswith("PRE_COMMIT")}
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(hooks),
            "--all-files",
            "--color=never",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    lines = output.splitlines()
    assert any(
        line.startswith("wellknown-build validate.") and line.endswith("Passed") for line in lines
    ), output
    assert any(
        line.startswith("wellknown-build render --check.") and line.endswith("Failed")
        for line in lines
    ), output
    assert "out is not up to date: 0 created, 1 updated" in output
    assert "~ auth.example.com/.well-known/openid-configuration" in output
