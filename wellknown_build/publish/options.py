"""The rules for publish's option values, kept out of the CLI: canned ACLs, prefixes,
endpoints and sites. Each check returns the reason a value is refused, or None."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..urls import check_https_url

ACLS = (
    "private",
    "public-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
STATE_FOLDER = ".wellknown-build/"


def prefix_problem(prefix: str) -> str | None:
    """A key prefix is empty or `segment/.../`: no `.`/`..`/empty segments, no whitespace or
    control characters, and not the tool's own state folder."""
    if not prefix:
        return None
    if prefix.startswith("/") or not prefix.endswith("/"):
        return "must not start with '/' and must end with '/'"
    if any(c.isspace() or ord(c) < 0x20 or c == "\\" for c in prefix):
        return "must not contain whitespace, control characters or backslashes"
    segments = prefix[:-1].split("/")
    if any(s in ("", ".", "..") for s in segments):
        return "must not contain empty, '.' or '..' segments"
    if f"{STATE_FOLDER[:-1]}" in segments:
        return f"must not be inside the tool's own {STATE_FOLDER} folder"
    if len(prefix.encode("utf-8")) > 512:
        return "is too long"
    return None


def endpoint_problem(url: str) -> str | None:
    """An S3 endpoint is an absolute http(s) URL with a host, no query or fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        return f"is not a URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, e.g. https://s3.example.com"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must not have a query, fragment or user name"
    return None


def site_problem(url: str) -> str | None:
    """A --site is where issuers are served: `https://host[:port][/path]`, by the same rules
    as an issuer (render writes nothing else), a trailing '/' optional."""
    if "://" not in url:
        return (
            "must be an https:// URL, e.g. https://BUCKET.s3.REGION.amazonaws.com or "
            "https://oidc.example.com"
        )
    if url.startswith("http://"):
        return (
            "must be an https:// URL: issuers and jwks_uri are https, so the tree holds no "
            "http:// documents"
        )
    problems = check_https_url(url, what="--site")
    if problems:
        return "; ".join(p.removeprefix("--site ") for p in problems)
    if STATE_FOLDER[:-1] in urlsplit(url).path.split("/"):
        return f"must not name the tool's own {STATE_FOLDER} folder"
    if len(url) > 1024:  # it goes into each object's metadata, which S3 caps at 2 KB
        return "is too long (at most 1024 characters)"
    return None


def site_bucket_problem(site: str, bucket: str, endpoint_url: str | None) -> str | None:
    """On AWS (no --endpoint-url) a bucket URL serves that bucket only: publishing its site
    into another bucket is a mistake. Against another store the name may differ (publish
    warns then)."""
    from .site import bucket_problem

    return None if endpoint_url is not None else bucket_problem(site, bucket)
