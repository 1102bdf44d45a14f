"""The README is the manual: every command, option, environment variable, action input and
hook it ships is in it, and every link in it leads somewhere."""

from __future__ import annotations

import re

import click
import yaml

from wellknown_build.cli import main

from .helpers import ROOT

README = (ROOT / "README.md").read_text()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_command_option_and_env_var_is_documented() -> None:
    assert isinstance(main, click.Group)
    missing = []
    for name, command in sorted(main.commands.items()):
        if f"wellknown-build {name}" not in README:
            missing.append(f"command {name}")
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longest = max(param.opts, key=len)
            if longest not in ("--help",) and longest not in README:
                missing.append(f"{name} {longest}")
            envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
            missing += [f"{name} {v}" for v in envvars if v not in README]
    assert missing == []


def test_action_inputs_outputs_and_hooks_are_documented() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    for name in [*action["inputs"], *action["outputs"]]:
        assert f"`{name}`" in README, name
    for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()):
        assert hook["id"] in README


def test_links_lead_somewhere() -> None:
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", README, flags=re.MULTILINE)}
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, target
        else:
            assert (ROOT / target.split("#")[0]).exists(), target
    assert "REFERENCES.md" not in README


def test_quick_start_commands_exist() -> None:
    """The commands the README tells a new user to type are commands the CLI has."""
    assert isinstance(main, click.Group)
    typed = re.findall(r"^wellknown-build ([a-z]+)", README, flags=re.MULTILINE)
    assert typed and set(typed) <= set(main.commands)
