"""Post-deploy drift check: fetch what is served and compare it with the rendered tree.

Whatever a server answers is input: every request has one total deadline (--timeout) and a
body cap, and a broken, hostile or slow answer is reported as drift, never a traceback.
"""

from __future__ import annotations

import http.client
import io
import logging
import math
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import click

from .. import jsondoc, manifest, tree
from ..deadline import Deadline, DeadlineReader
from ..documents import KIND_JWKS
from ..errors import TreeError
from ..files import MiB
from ..urls import check_https_url

log = logging.getLogger(__name__)
ORIGIN = "https://verify.wellknown-build.invalid"  # asks CORS-configured servers for their header
USER_AGENT = "wellknown-build-verify"
BODY_LIMIT = 4 * MiB  # a discovery document or key set is a few KB
_URL_SAFE = "/!$&'()*+,;=:@~"  # RFC 3986 pchar: a rendered path is its own URL path


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int | None
    headers: Message | None
    body: bytes
    error: str | None = None


@dataclass
class InstanceReport:
    instance: str
    checked: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx response itself is returned as an HTTPError


def _bounded(
    connection: Callable[..., http.client.HTTPConnection], deadline: Deadline
) -> Callable[..., http.client.HTTPConnection]:
    """Connections whose connect and every read, headers included, share one deadline."""

    class Response(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            self.fp.close()
            self.fp = io.BufferedReader(DeadlineReader(sock, deadline))

    def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        kwargs["timeout"] = deadline.left()
        made = connection(host, **kwargs)
        made.response_class = Response
        return made

    return connect


class _BoundedHandler(urllib.request.AbstractHTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(
        self, http_class: Callable[..., http.client.HTTPConnection], req: Any, **kwargs: Any
    ) -> http.client.HTTPResponse:
        return super().do_open(_bounded(http_class, self.deadline), req, **kwargs)


class _HTTP(_BoundedHandler, urllib.request.HTTPHandler):
    pass


class _HTTPS(_BoundedHandler, urllib.request.HTTPSHandler):
    pass


def fetch(url: str, timeout: float) -> Fetched:
    """One GET within `timeout` seconds in all, of at most BODY_LIMIT bytes."""
    deadline = Deadline(timeout)
    opener = urllib.request.build_opener(_NoRedirects, _HTTP(deadline), _HTTPS(deadline))
    headers = {"Origin": ORIGIN, "Accept": "application/json", "User-Agent": USER_AGENT}
    too_large = f"the response is larger than {BODY_LIMIT // MiB} MiB"
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only
        with opener.open(request) as response:
            if response.length is not None and response.length > BODY_LIMIT:
                return Fetched(url, None, None, b"", too_large)
            body = response.read(BODY_LIMIT + 1)
            if len(body) > BODY_LIMIT:
                return Fetched(url, None, None, b"", too_large)
            if response.length:  # read(amt) returns short, not IncompleteRead, at EOF
                raise http.client.IncompleteRead(body, response.length)
            return Fetched(url, response.status, response.headers, body)
    except urllib.error.HTTPError as e:
        e.close()
        return Fetched(url, e.code, e.headers, b"")
    except (OSError, http.client.HTTPException, ValueError) as e:
        return Fetched(url, None, None, b"", _failure(e, timeout))


def _failure(error: BaseException, timeout: float) -> str:
    """Why a request got no usable answer, in words."""
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    if isinstance(error, TimeoutError):
        return f"no complete response within {timeout:g}s (--timeout)"
    if isinstance(error, http.client.IncompleteRead):
        return f"the body is cut short or malformed ({len(error.partial)} bytes read)"
    if isinstance(error, urllib.error.URLError):
        return f"unreachable: {_clean(str(error.reason))}"
    if isinstance(error, OSError):
        return f"unreachable: {_clean(str(error))}"
    return f"not a valid HTTP response ({type(error).__name__}: {_clean(str(error))})"


def _clean(text: str, limit: int = 200) -> str:
    """Served text fit for a terminal: control characters escaped, clipped."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[: limit + 1])
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _shown(value: object) -> str:
    """A served JSON value in a message: short, whatever its size."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    return _clean(repr(value))


def served_url(url: str, base_url: str | None) -> str:
    """An https URL as served: itself, or under --base-url with the host as first segment."""
    if base_url is None:
        return url
    return f"{base_url.rstrip('/')}/{url.removeprefix('https://')}"


def _json_object(body: bytes) -> dict[str, Any] | str:
    """The JSON object in `body`, or why there is none."""
    try:
        value = jsondoc.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8"
    except ValueError:
        return "not JSON"
    return value if isinstance(value, dict) else f"not a JSON object but {_shown(value)}"


def _compare(entry: manifest.Entry, local: bytes, got: Fetched) -> list[str]:
    where = entry.path
    if got.error:
        return [f"{where}: {got.error}"]
    assert got.headers is not None
    if got.status in (301, 302, 303, 307, 308):
        target = _clean(str(got.headers.get("Location", "?")))
        return [
            f"{where}: redirects to {target} (HTTP {got.status}); relying parties such as "
            "node jose do not follow redirects"
        ]
    if got.status != 200:
        return [f"{where}: HTTP {got.status}"]
    drift = []
    if got.body != local:
        drift.append(f"{where}: body differs from the rendered file{_kid_drift(entry, got.body)}")
    media = (got.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media != entry.content_type:
        drift.append(
            f"{where}: Content-Type {_clean(media) or 'missing'!r}, expected {entry.content_type!r}"
        )
    if got.headers.get("Access-Control-Allow-Origin") not in ("*", ORIGIN):
        drift.append(f"{where}: no Access-Control-Allow-Origin header (browsers cannot read it)")
    return drift


def _kid_drift(entry: manifest.Entry, served: bytes) -> str:
    if entry.kind != KIND_JWKS:
        return ""
    found = _json_object(served)
    if isinstance(found, str):
        return f" (not a JSON key set: {found})"
    keys = found.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        return ' (not a JSON key set: "keys" is not an array of objects)'
    live = [k.get("kid") for k in keys]
    mine = list(entry.kids)
    missing, extra = [k for k in mine if k not in live], [k for k in live if k not in mine]
    parts = [
        f"missing kids {_listed(missing)}" if missing else "",
        f"extra kids {_listed(extra)}" if extra else "",
    ]
    text = "; ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _listed(kids: list[Any], most: int = 10) -> str:
    shown = ", ".join(_clean(str(k), 100) for k in kids[:most])
    return shown + (f" and {len(kids) - most} more" if len(kids) > most else "")


def _metadata_links(
    entry: manifest.Entry, local: bytes, got: Fetched, base_url: str | None, timeout: float
) -> list[str]:
    """A served metadata document must name the configured issuer and a reachable jwks_uri."""
    if entry.kind == KIND_JWKS or got.status != 200 or got.error:
        return []
    live, mine = _json_object(got.body), _json_object(local)
    if isinstance(live, str):
        return [f"{entry.path}: served document is {live}"]
    if isinstance(mine, str):
        return [f"{entry.path}: the rendered file is {mine}; render again"]
    drift = []
    if live.get("issuer") != mine.get("issuer"):
        kind = "" if isinstance(live.get("issuer"), str) else " (not a string)"
        drift.append(
            f"{entry.path}: issuer {_shown(live.get('issuer'))}{kind}, "
            f"expected {mine.get('issuer')!r}"
        )
    jwks_uri = live.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        drift.append(f"{entry.path}: jwks_uri {_shown(jwks_uri)} is not an https URL")
    elif jwks_uri != mine.get("jwks_uri"):
        problems = check_https_url(jwks_uri, what="jwks_uri")
        keys = None if problems else fetch(served_url(jwks_uri, base_url), timeout)
        if keys is None or keys.status != 200:
            why = _clean(problems[0]) if keys is None else keys.error or keys.status
            drift.append(f"{entry.path}: jwks_uri {_clean(jwks_uri)} is not reachable ({why})")
    return drift


def _check_options(base_url: str | None, timeout: float) -> None:
    """--base-url and --timeout the requests can use; a usage error (exit 2) otherwise."""
    if not math.isfinite(timeout) or timeout <= 0:
        raise click.BadParameter("must be a finite number of seconds", param_hint="'--timeout'")
    if base_url is None:
        return
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise click.BadParameter(f"{base_url!r}: {e}", param_hint="'--base-url'") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{base_url!r} is not an http(s) URL such as http://127.0.0.1:8000",
            param_hint="'--base-url'",
        )
    if "?" in base_url or "#" in base_url:
        raise click.BadParameter(
            f"{base_url!r} must not have a query or fragment", param_hint="'--base-url'"
        )
    if not base_url.isascii() or not base_url.isprintable() or " " in base_url:
        raise click.BadParameter(
            f"{base_url!r} must be plain ASCII without spaces", param_hint="'--base-url'"
        )


def _local(reader: tree.Reader, entry: manifest.Entry) -> bytes | str:
    """The rendered file's bytes, or why they cannot be compared."""
    try:
        return reader.read(entry.path)
    except tree.RenderedFileError as e:
        return f"{entry.path}: the rendered file {e.reason}; render again"


def verify(
    out: Path,
    instances: Iterable[str] = (),
    base_url: str | None = None,
    timeout: float = 10.0,
    workers: int = 8,
) -> list[InstanceReport]:
    """Every document of the manifest (or of `instances`), fetched and compared; the options
    and the manifest are checked before any request, so a bad one fails the whole run."""
    _check_options(base_url, timeout)
    found = tree.read_manifest(out)
    wanted = set(instances)
    known = {e.instance for e in found.entries}
    unknown = wanted - known
    if unknown:
        raise TreeError(f"{out}: no instance {', '.join(sorted(unknown))} in the manifest")
    entries = [e for e in found.entries if not wanted or e.instance in wanted]
    reports: dict[str, InstanceReport] = {}
    for entry in entries:
        reports.setdefault(entry.instance, InstanceReport(entry.instance))
    reader = tree.Reader(out)

    def check(entry: manifest.Entry) -> tuple[str, str, list[str]]:
        url = served_url("https://" + quote(entry.path, safe=_URL_SAFE), base_url)
        local = _local(reader, entry)
        if isinstance(local, str):
            return entry.instance, url, [local]
        got = fetch(url, timeout)
        try:
            drift = _compare(entry, local, got)
            drift += _metadata_links(entry, local, got, base_url, timeout)
        except Exception as e:  # a served answer nobody foresaw: one line, not a traceback
            log.debug("checking %s", url, exc_info=True)
            drift = [f"{entry.path}: could not be checked ({type(e).__name__}: {_clean(str(e))})"]
        return entry.instance, url, drift

    with ThreadPoolExecutor(workers) as pool:
        for instance, url, drift in pool.map(check, entries):
            reports[instance].checked.append(url)
            reports[instance].drift += drift
    return list(reports.values())


def summary_lines(reports: list[InstanceReport]) -> list[str]:
    lines = []
    for report in reports:
        if report.drift:
            lines.append(f"drift  {_clean(report.instance)}")
            lines += [f"       {line}" for line in report.drift]
        else:
            lines.append(f"ok     {_clean(report.instance)} ({len(report.checked)} documents)")
    drifted = sum(1 for r in reports if r.drift)
    lines.append(f"{len(reports)} instance(s): {len(reports) - drifted} ok, {drifted} drifted")
    return lines
