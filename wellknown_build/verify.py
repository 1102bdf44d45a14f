"""Post-deploy drift check: fetch what is served and compare it with the rendered tree."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from . import manifest
from .documents import KIND_JWKS
from .errors import TreeError

log = logging.getLogger(__name__)
ORIGIN = "https://verify.wellknown-build.invalid"  # asks CORS-configured servers for their header


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


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch(url: str, timeout: float) -> Fetched:
    request = urllib.request.Request(  # noqa: S310 - https, or the --base-url the user gave
        url,
        headers={
            "Origin": ORIGIN,
            "Accept": "application/json",
            "User-Agent": "wellknown-build-verify",
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Fetched(url, response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        return Fetched(url, e.code, e.headers, b"")
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Fetched(url, None, None, b"", f"unreachable: {reason}")


def served_url(url: str, base_url: str | None) -> str:
    """An https URL as served: itself, or under --base-url with the host as first segment."""
    if base_url is None:
        return url
    return f"{base_url.rstrip('/')}/{url.removeprefix('https://')}"


def _compare(entry: manifest.Entry, local: bytes, got: Fetched) -> list[str]:
    where = entry.path
    if got.error:
        return [f"{where}: {got.error}"]
    assert got.headers is not None
    if got.status in (301, 302, 303, 307, 308):
        target = got.headers.get("Location", "?")
        return [
            f"{where}: redirects to {target} (HTTP {got.status}); relying parties such as "
            "node jose do not follow redirects"
        ]
    if got.status != 200:
        return [f"{where}: HTTP {got.status}"]
    drift = []
    if got.body != local:
        drift.append(
            f"{where}: body differs from the rendered file{_kid_drift(entry, local, got.body)}"
        )
    media = (got.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media != entry.content_type:
        drift.append(
            f"{where}: Content-Type {media or 'missing'!r}, expected {entry.content_type!r}"
        )
    if got.headers.get("Access-Control-Allow-Origin") not in ("*", ORIGIN):
        drift.append(f"{where}: no Access-Control-Allow-Origin header (browsers cannot read it)")
    return drift


def _kid_drift(entry: manifest.Entry, local: bytes, served: bytes) -> str:
    if entry.kind != KIND_JWKS:
        return ""
    try:
        live = [k.get("kid") for k in json.loads(served).get("keys", [])]
    except (ValueError, AttributeError):
        return " (not a JSON key set)"
    mine = list(entry.kids)
    missing, extra = [k for k in mine if k not in live], [k for k in live if k not in mine]
    parts = [
        f"missing kids {', '.join(missing)}" if missing else "",
        f"extra kids {', '.join(map(str, extra))}" if extra else "",
    ]
    text = "; ".join(p for p in parts if p)
    return f" ({text})" if text else ""


def _metadata_links(
    entry: manifest.Entry, local: bytes, got: Fetched, base_url: str | None, timeout: float
) -> list[str]:
    """A served metadata document must name the configured issuer and a reachable jwks_uri."""
    if entry.kind == KIND_JWKS or got.status != 200:
        return []
    try:
        live, mine = json.loads(got.body), json.loads(local)
    except ValueError:
        return [f"{entry.path}: served document is not JSON"]
    drift = []
    if live.get("issuer") != mine.get("issuer"):
        drift.append(
            f"{entry.path}: issuer {live.get('issuer')!r}, expected {mine.get('issuer')!r}"
        )
    jwks_uri = live.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
        drift.append(f"{entry.path}: jwks_uri {jwks_uri!r} is not an https URL")
    elif jwks_uri != mine.get("jwks_uri"):
        keys = fetch(served_url(jwks_uri, base_url), timeout)
        if keys.status != 200:
            drift.append(
                f"{entry.path}: jwks_uri {jwks_uri} is not reachable ({keys.error or keys.status})"
            )
    return drift


def verify(
    out: Path,
    instances: Iterable[str] = (),
    base_url: str | None = None,
    timeout: float = 10.0,
    workers: int = 8,
) -> list[InstanceReport]:
    found = manifest.read(out)
    if found is None:
        raise TreeError(f"{out}: no manifest; run `wellknown-build render` first")
    wanted = set(instances)
    known = {e.instance for e in found.entries}
    unknown = wanted - known
    if unknown:
        raise TreeError(f"{out}: no instance {', '.join(sorted(unknown))} in the manifest")
    entries = [e for e in found.entries if not wanted or e.instance in wanted]
    reports: dict[str, InstanceReport] = {}
    for entry in entries:
        reports.setdefault(entry.instance, InstanceReport(entry.instance))

    def check(entry: manifest.Entry) -> tuple[str, str, list[str]]:
        local = (out / entry.path).read_bytes()
        url = served_url("https://" + entry.path, base_url)
        got = fetch(url, timeout)
        drift = _compare(entry, local, got) + _metadata_links(entry, local, got, base_url, timeout)
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
            lines.append(f"drift  {report.instance}")
            lines += [f"       {line}" for line in report.drift]
        else:
            lines.append(f"ok     {report.instance} ({len(report.checked)} documents)")
    drifted = sum(1 for r in reports if r.drift)
    lines.append(f"{len(reports)} instance(s): {len(reports) - drifted} ok, {drifted} drifted")
    return lines
