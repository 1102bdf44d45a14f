"""Click commands only: parse options, call one function, map errors to exit codes."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from . import jsondoc, progress, timing
from .commands.export import FORMATS as EXPORT_FORMATS
from .commands.keygen import STATUSES as KEY_STATUSES
from .commands.render import check as run_check
from .commands.render import render as run_render
from .commands.validate import check as run_validate
from .errors import ConfigError, WellknownError, one_line
from .keys import KID_METHODS
from .keys.generate import TYPES as KEY_TYPES
from .lifecycle import Live
from .publish.options import (
    ACLS,
    endpoint_problem,
    prefix_problem,
    site_bucket_problem,
    site_problem,
)
from .tree import Changes
from .urls import check_https_url

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _reported() -> Iterator[None]:
    """A WellknownError leaves as its message on stderr and its exit code, no traceback."""
    try:
        yield
    except WellknownError as e:
        _error(e)
        sys.exit(e.exit_code)


def _error(e: WellknownError) -> None:
    text = str(e) if isinstance(e, ConfigError) else one_line(str(e))  # one line each
    click.echo(f"error: {text}", err=True)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger("wellknown_build")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    click.get_current_context().find_root().meta["wellknown.quiet"] = quiet
    progress.show_bar_on(sys.stderr if sys.stderr.isatty() and not quiet else None)


def _say(message: str) -> None:
    """A summary line on stdout, unless -q."""
    if not click.get_current_context().find_root().meta.get("wellknown.quiet"):
        click.echo(message)


def _verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    root = ctx.find_root()
    verbose = int(root.meta.get("wellknown.verbose", 0))
    quiet = bool(root.meta.get("wellknown.quiet", False))
    if param.name == "verbose" and value:
        verbose = value
    if param.name == "quiet" and value:
        quiet = True
    root.meta["wellknown.verbose"] = verbose
    _setup_logging(verbose, quiet)


def _verbosity_options(command: F) -> F:
    """-v/-q, accepted before the command and after it (`wellknown-build render -q ...`)."""
    command = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_verbosity,
        help="Only warnings and errors; no summary.",
    )(command)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_verbosity,
        show_default=False,
        help="Say more (debug logging).",
    )(command)


CONFIG = click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
OUT = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    envvar="WELLKNOWN_OUT",
    show_envvar=True,
    help="Output folder.",
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@_verbosity_options
@click.version_option(package_name="wellknown-build")
def main() -> None:
    """Render and publish OpenID discovery documents and JWKS as static files."""


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
    show_envvar=True,
    metavar="ISO8601",
    help="The instant rotation rules are checked at (default: now).",
)
STRICT = click.option(
    "--strict",
    is_flag=True,
    envvar="WELLKNOWN_STRICT",
    show_envvar=True,
    help="Treat warnings as errors (exit 1).",
)


def _checked_by(rule: Callable[[str], str | None]) -> Callable[..., Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        reason = rule(value) if value is not None else None
        if reason:
            raise click.BadParameter(reason)
        return value

    return callback


def _region_problem(region: str) -> str | None:
    """botocore's own rule, checked here so that a bad value is a usage error (exit 2)."""
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import validate_region_name

    try:
        validate_region_name(region)
    except InvalidRegionError:
        return f"{region!r} is not a region name (like us-east-1, or auto for R2)"
    return None


def _connection_options(command: F) -> F:
    """Where a deployment's state index is, as publish takes it (--prefix, --endpoint-url,
    --region; credentials from the default AWS chain)."""
    for option in reversed(
        (
            click.option(
                "--prefix",
                default="",
                envvar="WELLKNOWN_PREFIX",
                show_envvar=True,
                callback=_checked_by(prefix_problem),
                help="Key prefix of the deployment, as given to publish.",
            ),
            click.option(
                "--endpoint-url",
                envvar="WELLKNOWN_ENDPOINT_URL",
                show_envvar=True,
                callback=_checked_by(endpoint_problem),
                help="S3-compatible endpoint, http(s)://host[:port] (R2, MinIO, GCS).",
            ),
            click.option(
                "--region",
                envvar="WELLKNOWN_REGION",
                show_envvar=True,
                callback=_checked_by(_region_problem),
                help="Bucket region.",
            ),
            click.option(
                "--site",
                envvar="WELLKNOWN_SITE",
                show_envvar=True,
                callback=_checked_by(site_problem),
                help="The deployment is publish --site URL's (its own state index).",
            ),
        )
    ):
        command = option(command)
    return command


GUARD_BUCKET = click.option(
    "--bucket",
    help="Also warn about active keys this bucket's deployment has not published for cache_ttl.",
)


def _published(
    bucket: str | None,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    site: str | None,
) -> dict[str, dict[str, Live]] | None:
    """The rotation guard's input: what the bucket's state index knows (read only)."""
    if bucket is None:
        return None
    from .commands import status

    connection = status.Connection(bucket, prefix, endpoint_url, region, site=site)
    return status.published(status.read(connection))


@main.command()
@_verbosity_options
@CONFIG
@OUT
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if OUT is not up to date.")
@NOW
@STRICT
@GUARD_BUCKET
@_connection_options
def render(
    config: Path,
    out: Path,
    check: bool,
    now: dt.datetime | None,
    strict: bool,
    bucket: str | None,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    site: str | None,
) -> None:
    """Render CONFIG into OUT/<host>/<issuer path>/.well-known/."""
    with _reported():
        published = _published(bucket, prefix, endpoint_url, region, site)
        if check:
            result = run_check(config, out, now, strict, published)
            _report_check(out, result.changes)
            return
        result = run_render(config, out, now, strict, published)
    instances = result.instances
    _say(f"rendered {instances} instance(s) into {out}: {result.changes.summary()}")


def _report_check(out: Path, changes: Changes) -> None:
    if changes.clean:
        _say(f"{out} is up to date ({changes.unchanged} files)")
        return
    lines: list[str] = []
    for sign, paths in (("+", changes.created), ("~", changes.updated), ("-", changes.removed)):
        lines += [f"  {sign} {p}" for p in paths]
    if changes.manifest_changed and not lines:
        lines.append("  ~ manifest")
    if changes.interrupted:
        lines.append("  ! an earlier render stopped midway (kill or crash); render again")
    click.echo(f"{out} is not up to date: {changes.summary()}", err=True)
    for line in lines:
        click.echo(line, err=True)
    sys.exit(1)


@main.command()
@_verbosity_options
@click.argument(
    "configs",
    metavar="CONFIG...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@NOW
@STRICT
@GUARD_BUCKET
@_connection_options
def validate(
    configs: tuple[Path, ...],
    now: dt.datetime | None,
    strict: bool,
    bucket: str | None,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    site: str | None,
) -> None:
    """Run every check on each CONFIG; write nothing. Every file is checked, then the
    worst exit code is returned (as pre-commit passes several files)."""
    failed = 0
    with _reported():
        published = _published(bucket, prefix, endpoint_url, region, site)
    for config in configs:
        try:
            result = run_validate(config, now, strict, published=published)
        except WellknownError as e:
            _error(e)
            failed = max(failed, e.exit_code)
            continue
        _say(f"{config}: {result.instances} instance(s), {result.keys} key(s): ok")
    if failed:
        sys.exit(failed)


@main.command()
@_verbosity_options
@click.option(
    "--bucket", required=True, envvar="WELLKNOWN_BUCKET", show_envvar=True, help="Bucket name."
)
@OUT
@click.option(
    "--prefix",
    default="",
    envvar="WELLKNOWN_PREFIX",
    show_envvar=True,
    callback=_checked_by(prefix_problem),
    help="Key prefix, e.g. 'site/' (empty, or segments each ending in '/').",
)
@click.option(
    "--site",
    envvar="WELLKNOWN_SITE",
    show_envvar=True,
    callback=_checked_by(site_problem),
    help="Publish only the documents under this https URL, keyed relative to it "
    "(a bucket's own URL, or a CDN host serving one bucket).",
)
@click.option(
    "--endpoint-url",
    envvar="WELLKNOWN_ENDPOINT_URL",
    show_envvar=True,
    callback=_checked_by(endpoint_problem),
    help="S3-compatible endpoint, http(s)://host[:port] (R2, MinIO, GCS).",
)
@click.option(
    "--region",
    envvar="WELLKNOWN_REGION",
    show_envvar=True,
    callback=_checked_by(_region_problem),
    help="Bucket region.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    envvar="WELLKNOWN_DRY_RUN",
    show_envvar=True,
    help="Print the plan; change nothing.",
)
@click.option(
    "--delete",
    is_flag=True,
    envvar="WELLKNOWN_DELETE",
    show_envvar=True,
    help="Delete objects this tool wrote that are no longer rendered.",
)
@click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    envvar="WELLKNOWN_MAX_DELETES",
    show_envvar=True,
    help="Refuse the run (exit 3) past this many deletes.",
)
@click.option(
    "--cloudfront-distribution-id",
    envvar="WELLKNOWN_CLOUDFRONT_DISTRIBUTION_ID",
    show_envvar=True,
    help="Invalidate the changed paths in this distribution.",
)
@click.option(
    "--acl",
    type=click.Choice(ACLS),
    envvar="WELLKNOWN_ACL",
    show_envvar=True,
    help="Canned ACL; leave unset for buckets with ACLs disabled.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=16,
    show_default=True,
    envvar="WELLKNOWN_WORKERS_S3",
    show_envvar=True,
    help="Concurrent S3 requests.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    envvar="WELLKNOWN_S3_TIMEOUT",
    show_envvar=True,
    help="Seconds per request attempt; slow attempts are retried.",
)
@click.option(
    "--break-lease",
    is_flag=True,
    help="Take over the lease of a publish that died (see the refusal message).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON.")
@click.option("--now", "clock", callback=_instant, hidden=True, help="For tests: this run's time.")
def publish(
    bucket: str,
    out: Path,
    prefix: str,
    site: str | None,
    endpoint_url: str | None,
    region: str | None,
    dry_run: bool,
    delete: bool,
    max_deletes: int,
    cloudfront_distribution_id: str | None,
    acl: str | None,
    workers: int,
    timeout: float,
    break_lease: bool,
    as_json: bool,
    clock: dt.datetime | None,
) -> None:
    """Upload OUT to S3: changed JWKS first, then discovery documents, deletes, CDN."""
    from .publish import report
    from .publish.run import Options
    from .publish.run import publish as run_publish
    from .publish.site import Site

    if site is not None and (problem := site_bucket_problem(site, bucket, endpoint_url)):
        raise click.BadParameter(problem, param_hint="'--site'")
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
        timeout=timeout,
        break_lease=break_lease,
        site=Site.of(site) if site else None,
        now=clock,
    )
    with _reported():
        result = run_publish(options)
    if as_json:
        click.echo(jsondoc.dumps(report.as_json(result)), nl=False)
    else:
        target = f"s3://{bucket}/{prefix}" + (f" (site {options.site.url})" if options.site else "")
        for line in report.lines(result, target):
            _say(line)
        _say(report.summary(result))
    if result.error:
        click.echo(f"error: {result.error}", err=True)
        sys.exit(1)


def _kms_ids(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    import re

    from .keys.kms import KEY_ID_PATTERN

    for key_id in value:
        if not re.fullmatch(KEY_ID_PATTERN, key_id):
            raise click.BadParameter(
                f"{key_id!r} is not a KMS key id, key ARN, alias name (alias/...) or alias ARN"
            )
    return value


@main.command()
@_verbosity_options
@click.option(
    "--bucket", required=True, envvar="WELLKNOWN_BUCKET", show_envvar=True, help="Bucket name."
)
@_connection_options
@click.option(
    "--instance",
    "instances",
    multiple=True,
    metavar="ID",
    help="Only these instances (repeatable).",
)
@click.option(
    "--now",
    callback=_instant,
    envvar="WELLKNOWN_NOW",
    show_envvar=True,
    metavar="ISO8601",
    help="The instant 'safe since' and 'safe from' are reckoned at (default: now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    bucket: str,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    site: str | None,
    instances: tuple[str, ...],
    now: dt.datetime | None,
    as_json: bool,
) -> None:
    """Per instance, each published key: its status, when it was first published, and from
    when it is safe to sign with it or to drop it (from the bucket's state index)."""
    from .commands import status as run_status

    connection = run_status.Connection(bucket, prefix, endpoint_url, region, site=site)
    with _reported():
        found = run_status.read(connection, instances)
    moment = now or dt.datetime.now(dt.timezone.utc)
    if as_json:
        click.echo(jsondoc.dumps(run_status.as_json(found, connection, moment)), nl=False)
        return
    for line in run_status.text(found, connection, moment):
        click.echo(line)


@main.command()
@_verbosity_options
@click.argument(
    "pems",
    metavar="[PEM]...",
    nargs=-1,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Environment variable with the passphrase of encrypted keys.",
)
@click.option(
    "--kms",
    "kms_ids",
    multiple=True,
    metavar="ID",
    callback=_kms_ids,
    help="An AWS KMS key (key id, ARN, alias); repeatable. AWS settings as for render.",
)
@click.option(
    "--jwks",
    "jwks_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Every key of a JWKS file; repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(
    pems: tuple[Path, ...],
    passphrase_env: str | None,
    kms_ids: tuple[str, ...],
    jwks_files: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Type, algorithms, kids and fingerprints of each key file, KMS key or JWKS key."""
    from .commands.inspect import inspect as run_inspect
    from .commands.inspect import lines

    if not (pems or kms_ids or jwks_files):
        raise click.UsageError("give at least one PEM file, --kms ID or --jwks FILE")
    with _reported():
        reports = run_inspect(pems, passphrase_env, kms_ids, jwks_files)
    if as_json:
        click.echo(jsondoc.dumps(reports), nl=False)
        return
    for report in reports:
        for line in lines(report):
            click.echo(line)


@main.command()
@_verbosity_options
@click.option("--type", "kind", required=True, type=click.Choice(KEY_TYPES), help="Key type.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to create, e.g. keys/2026-12.pem.",
)
@click.option(
    "--bits",
    type=click.IntRange(2048, 16384),
    default=2048,
    show_default=True,
    help="RSA modulus size.",
)
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Encrypt the private key with the passphrase in this variable.",
)
@click.option(
    "--kid-method",
    type=click.Choice(KID_METHODS),
    default="rfc7638",
    show_default=True,
    help="The kid: RFC 7638 thumbprint, or SPKI SHA-256 as kube-apiserver computes it.",
)
@click.option(
    "--status",
    type=click.Choice(KEY_STATUSES),
    default="next",
    show_default=True,
    help="The status in the printed YAML: next (a rotation), active (an instance's first key).",
)
def keygen(
    kind: str, out: Path, bits: int, passphrase_env: str | None, kid_method: str, status: str
) -> None:
    """Create a signing key (mode 0600, never overwriting) and its public PEM."""
    from .commands.keygen import advice, snippet
    from .commands.keygen import keygen as run_keygen

    with _reported():
        made, encrypted = run_keygen(kind, out, bits, passphrase_env, kid_method)
    mode = "mode 0600, encrypted" if encrypted else "mode 0600"
    click.echo(f"private key: {made.private_path} ({mode})")
    click.echo(f"public key:  {made.public_path}")
    click.echo(f"kid:         {made.kid}")
    click.echo(f"alg:         {made.alg}")
    click.echo(f"\n{advice(status)}")
    for line in snippet(made, kid_method, status):
        click.echo(line)


@main.command()
@_verbosity_options
@click.argument(
    "folder", default=".", type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]"
)
@click.option(
    "--issuer",
    required=True,
    callback=_checked_by(lambda url: "; ".join(check_https_url(url, what="issuer")) or None),
    help="The issuer URL, exactly the tokens' iss claim, e.g. https://auth.example.com.",
)
@click.option("--id", "instance_id", help="Instance id (default: the issuer without https://).")
@click.option("--type", "kind", type=click.Choice(KEY_TYPES), default="rsa", help="Key type.")
@click.option("--bits", type=click.IntRange(2048, 16384), default=2048, help="RSA modulus size.")
@click.option(
    "--kid-method",
    type=click.Choice(KID_METHODS),
    default="rfc7638",
    help="The kid: RFC 7638 thumbprint, or SPKI SHA-256 as kube-apiserver computes it.",
)
@click.option(
    "--passphrase-env",
    metavar="VAR",
    help="Encrypt the private key with the passphrase in this variable.",
)
def init(
    folder: Path,
    issuer: str,
    instance_id: str | None,
    kind: str,
    bits: int,
    kid_method: str,
    passphrase_env: str | None,
) -> None:
    """Start a new issuer in DIR (default: here): instances.yaml, its first key, .gitignore."""
    from .commands.init import init as run_init
    from .commands.init import next_steps

    with _reported():
        created = run_init(
            folder,
            issuer,
            instance_id=instance_id,
            kind=kind,
            bits=bits,
            kid_method=kid_method,
            passphrase_env=passphrase_env,
        )
    for line in next_steps(created):
        _say(line)


@main.command(name="list")
@_verbosity_options
@CONFIG
@NOW
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, an object per instance.")
@click.option(
    "--flat",
    is_flag=True,
    help="Print one JSON object of strings (Terraform's external data source).",
)
def list_(config: Path, now: dt.datetime | None, as_json: bool, flat: bool) -> None:
    """Per instance: issuer, document URLs and paths, kids and algs."""
    from .commands import listing

    with _reported():
        instances = listing.listing(config, now)
    if flat:
        click.echo(jsondoc.dumps(listing.flat(instances)), nl=False)
    elif as_json:
        click.echo(jsondoc.dumps(instances), nl=False)
    else:
        for line in listing.text(instances):
            click.echo(line)


@main.command()
@_verbosity_options
@CONFIG
@click.argument("instance")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(EXPORT_FORMATS),
    help="gcp-wif: GCP workload identity federation's jwksJson; vault-pem: Vault's "
    "jwt_validation_pubkeys.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@NOW
def export(
    config: Path, instance: str, fmt: str, out_file: Path | None, now: dt.datetime | None
) -> None:
    """INSTANCE's published keys for a relying party that takes an uploaded copy."""
    from .commands import export as exporting

    with _reported():
        result = exporting.export(config, instance, fmt, now)
        if out_file is not None:
            exporting.write(out_file, result.body)
    if out_file is None:
        click.echo(result.body, nl=False)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@main.command()
@_verbosity_options
@OUT
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    envvar="WELLKNOWN_PORT",
    show_envvar=True,
    help="Port on 127.0.0.1.",
)
def serve(out: Path, port: int) -> None:
    """Preview OUT on 127.0.0.1 as the CDN would serve it."""
    from .commands.serve import PreviewServer

    with _reported():
        server = PreviewServer(out, port)
    click.echo(
        f"serving {out} at {server.base_url}/<host>/<path> (or by Host header); Ctrl-C stops"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command()
@_verbosity_options
@OUT
@click.option(
    "--instance",
    "instances",
    multiple=True,
    metavar="ID",
    help="Check only these instances (repeatable).",
)
@click.option(
    "--base-url",
    envvar="WELLKNOWN_BASE_URL",
    show_envvar=True,
    help="Fetch from here (the preview server, a staging CDN), host as first path segment.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds per request.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Concurrent requests.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(
    out: Path,
    instances: tuple[str, ...],
    base_url: str | None,
    timeout: float,
    workers: int,
    as_json: bool,
) -> None:
    """Compare what is served with OUT; exit 1 on drift."""
    from .commands.verify import summary_lines
    from .commands.verify import verify as run_verify

    with _reported():
        reports = run_verify(out, instances, base_url, timeout, workers)
    drifted = [r for r in reports if r.drift]
    if as_json:
        click.echo(jsondoc.dumps([asdict(r) for r in reports]), nl=False)
    else:
        for line in summary_lines(reports):
            click.echo(line)
    if drifted:
        sys.exit(1)


@main.command()
@_verbosity_options
def schema() -> None:
    """Print the JSON Schema of instances.yaml (for editors: yaml-language-server)."""
    from .schema import json_schema

    click.echo(jsondoc.dumps(json_schema()), nl=False)
