"""Click commands only: parse options, call one function, map errors to exit codes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from . import commands, timing
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


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return timing.parse_instant(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


NOW = click.option(
    "--now",
    callback=_instant,
    envvar="WELLKNOWN_NOW",
    metavar="ISO8601",
    help="The instant rotation rules are checked at (default: now; env WELLKNOWN_NOW).",
)
STRICT = click.option(
    "--strict", is_flag=True, envvar="WELLKNOWN_STRICT", help="Treat warnings as errors (exit 1)."
)


@main.command()
@CONFIG
@OUT
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if OUT is not up to date.")
@NOW
@STRICT
def render(config: Path, out: Path, check: bool, now: dt.datetime | None, strict: bool) -> None:
    """Render CONFIG into OUT/<host>/<issuer path>/.well-known/."""
    with _reported():
        if check:
            result = commands.check(config, out, now, strict)
            _report_check(out, result.changes)
            return
        result = commands.render(config, out, now, strict)
    instances = len(result.build.config.instances)
    click.echo(f"rendered {instances} instance(s) into {out}: {result.changes.summary()}")


def _report_check(out: Path, changes: Changes) -> None:
    if changes.clean:
        click.echo(f"{out} is up to date ({changes.unchanged} files)")
        return
    lines: list[str] = []
    for sign, paths in (("+", changes.created), ("~", changes.updated), ("-", changes.removed)):
        lines += [f"  {sign} {p}" for p in paths]
    if changes.manifest_changed and not lines:
        lines.append("  ~ manifest")
    click.echo(f"{out} is not up to date: {changes.summary()}", err=True)
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


@main.command()
@CONFIG
@NOW
@STRICT
def validate(config: Path, now: dt.datetime | None, strict: bool) -> None:
    """Run every check on CONFIG; write nothing."""
    with _reported():
        result = commands.validate(config, now, strict)
    keys = sum(len(i.keys) for i in result.config.instances)
    click.echo(f"{config}: {len(result.config.instances)} instance(s), {keys} key(s): ok")


ACLS = (
    "private",
    "public-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)


@main.command()
@click.option(
    "--bucket", required=True, envvar="WELLKNOWN_BUCKET", help="Bucket name (env WELLKNOWN_BUCKET)."
)
@OUT
@click.option(
    "--prefix",
    default="",
    envvar="WELLKNOWN_PREFIX",
    help="Key prefix, e.g. 'site/' (env WELLKNOWN_PREFIX).",
)
@click.option(
    "--endpoint-url",
    envvar="WELLKNOWN_ENDPOINT_URL",
    help="S3-compatible endpoint (env WELLKNOWN_ENDPOINT_URL).",
)
@click.option("--region", envvar="WELLKNOWN_REGION", help="Bucket region (env WELLKNOWN_REGION).")
@click.option(
    "--dry-run", is_flag=True, envvar="WELLKNOWN_DRY_RUN", help="Print the plan; change nothing."
)
@click.option(
    "--delete",
    is_flag=True,
    envvar="WELLKNOWN_DELETE",
    help="Delete objects this tool wrote that are no longer rendered.",
)
@click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    envvar="WELLKNOWN_MAX_DELETES",
    help="Refuse the run (exit 3) past this many deletes.",
)
@click.option(
    "--cloudfront-distribution-id",
    envvar="WELLKNOWN_CLOUDFRONT_DISTRIBUTION_ID",
    help="Invalidate the changed paths in this distribution.",
)
@click.option(
    "--acl",
    type=click.Choice(ACLS),
    envvar="WELLKNOWN_ACL",
    help="Canned ACL; leave unset for buckets with ACLs disabled.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=16,
    show_default=True,
    envvar="WELLKNOWN_WORKERS_S3",
    help="Concurrent S3 requests.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON.")
def publish(
    bucket: str,
    out: Path,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    dry_run: bool,
    delete: bool,
    max_deletes: int,
    cloudfront_distribution_id: str | None,
    acl: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Upload OUT to S3: changed JWKS first, then discovery documents, deletes, CDN."""
    from .publish import Options, report
    from .publish import publish as run_publish

    if prefix.startswith("/") or (prefix and not prefix.endswith("/")):
        raise click.BadParameter(
            "must not start with '/' and must end with '/'", param_hint="--prefix"
        )
    options = Options(
        bucket=bucket,
        out=out,
        prefix=prefix,
        endpoint_url=endpoint_url,
        region=region,
        dry_run=dry_run,
        delete=delete,
        max_deletes=max_deletes,
        distribution_id=cloudfront_distribution_id,
        acl=acl,
        workers=workers,
    )
    with _reported():
        result = run_publish(options)
    if as_json:
        click.echo(json.dumps(report.as_json(result), indent=2))
    else:
        for line in report.lines(result, f"s3://{bucket}/{prefix}"):
            click.echo(line)
        click.echo(report.summary(result))
    if result.error:
        click.echo(f"error: {result.error}", err=True)
        sys.exit(1)
