"""The project as a fresh user, CI runner or pre-commit gets it: a copy of the files a build
needs, so that tests install what is in the working tree (committed or not) without writing
into it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT

FILES = ("pyproject.toml", "README.md", "action.yml", ".pre-commit-hooks.yaml")
FOLDERS = ("wellknown_build", "templates")


def project_copy(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(ROOT / name, dest / name)
    for name in FOLDERS:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def git_repo(folder: Path) -> str:
    """Make `folder` a git repository with everything committed; returns the commit."""
    git = ["git", "-C", str(folder), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "test"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return head.stdout.strip()


def venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if sys.platform == "win32" else "bin")
