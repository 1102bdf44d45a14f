"""Click commands only: parse options, call one function, map errors to exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from . import commands
from .errors import WellknownError
from .tree import Changes


@contextmanager
def _reported() -> Iterator[None]:
    """A WellknownError leaves as its message on stderr and its exit code, no traceback."""
    try:
        yield
    except WellknownError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("wellknown_build")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


CONFIG = click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
OUT = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    envvar="WELLKNOWN_OUT",
    help="Output folder (env WELLKNOWN_OUT).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Say more.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(package_name="wellknown-build")
def main(verbose: int, quiet: bool) -> None:
    """Render and publish OpenID discovery documents and JWKS as static files."""
    _setup_logging(verbose, quiet)


@main.command()
@CONFIG
@OUT
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if OUT is not up to date.")
def render(config: Path, out: Path, check: bool) -> None:
    """Render CONFIG into OUT/<host>/<issuer path>/.well-known/."""
    with _reported():
        if check:
            result = commands.check(config, out)
            _report_check(out, result.changes)
            return
        result = commands.render(config, out)
    instances = len(result.build.config.instances)
    click.echo(f"rendered {instances} instance(s) into {out}: {result.changes.summary()}")


def _report_check(out: Path, changes: Changes) -> None:
    if changes.clean:
        click.echo(f"{out} is up to date ({changes.unchanged} files)")
        return
    lines: list[tuple[str, Callable[[str], str]]] = []
    for sign, paths in (("+", changes.created), ("~", changes.updated), ("-", changes.removed)):
        lines += [(f"  {sign} {p}", str) for p in paths]
    if changes.manifest_changed and not lines:
        lines.append(("  ~ manifest", str))
    click.echo(f"{out} is not up to date: {changes.summary()}", err=True)
    for line, _ in lines:
        click.echo(line, err=True)
    sys.exit(1)


@main.command()
@CONFIG
def validate(config: Path) -> None:
    """Run every check on CONFIG; write nothing."""
    with _reported():
        result = commands.validate(config)
    keys = sum(len(i.keys) for i in result.config.instances)
    click.echo(f"{config}: {len(result.config.instances)} instance(s), {keys} key(s): ok")
