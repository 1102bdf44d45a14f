"""Issuer and jwks_uri rules (OIDC Discovery §3-4, RFC 8414 §3) and where each URL lands on disk.

URLs are joined as strings: urljoin would drop the issuer's path.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

WELL_KNOWN_OIDC = "/.well-known/openid-configuration"
WELL_KNOWN_JWKS = "/.well-known/jwks.json"
WELL_KNOWN_OAUTH = "/.well-known/oauth-authorization-server"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# RFC 3986 pchar minus pct-encoded: the same string on disk, in S3 and on the CDN.
_SPACE = re.compile(r"\s")
_PCHARS = r"[A-Za-z0-9._~!$&'()*+,;=:@-]+"
_SEGMENT = re.compile(rf"^{_PCHARS}$")

# The same rules as JSON Schema patterns, for editors (schema.py); a property test holds them
# equal to check_https_url. A segment is pchars, but not `.` or `..`.
_PORT = (
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
    r"|6553[0-5]))?"
)
_SEGMENT_PATTERN = rf"(?!\.\.?(?:/|$)){_PCHARS}"
_ORIGIN = rf"https://{_LABEL}(?:\.{_LABEL})*{_PORT}"
ISSUER_PATTERN = rf"^{_ORIGIN}(?:/(?:{_SEGMENT_PATTERN}(?:/{_SEGMENT_PATTERN})*/?)?)?$"
JWKS_URI_PATTERN = rf"^{_ORIGIN}/{_SEGMENT_PATTERN}(?:/{_SEGMENT_PATTERN})*$"


def check_https_url(url: str, *, what: str, allow_trailing_slash: bool = True) -> list[str]:
    """Every reason `url` can't be an issuer (or jwks_uri); empty when it is fine."""
    problems: list[str] = []
    if _SPACE.search(url):
        return [f"{what} must not contain whitespace"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return [f"{what} is not a valid URL: {e}"]
    if parts.scheme != "https":
        problems.append(f"{what} must use https (got {parts.scheme or 'no scheme'!r})")
    if "@" in parts.netloc:
        problems.append(f"{what} must not contain userinfo")
    host = parts.netloc.rsplit("@", 1)[-1]
    if port is not None or host.endswith(":"):
        host = host.rsplit(":", 1)[0]
    if not host:
        problems.append(f"{what} must have a host")
    elif not _HOST.match(host):
        problems.append(
            f"{what} host {host!r} is not a valid lowercase DNS name "
            "(issuers are compared byte for byte; use the lowercase form)"
        )
    if parts.netloc.endswith(":"):
        problems.append(f"{what} has an empty port")
    if port is not None and not 0 < port < 65536:
        problems.append(f"{what} port {port} is out of range")
    if "?" in url:
        problems.append(f"{what} must not have a query")
    if "#" in url:
        problems.append(f"{what} must not have a fragment")
    path = parts.path
    if path.endswith("/") and not allow_trailing_slash:
        problems.append(f"{what} must name a file, not end with '/'")
    segments = path[1:].split("/") if path else []
    if segments and segments[-1] == "":  # one trailing `/`, or the path `/` itself
        segments.pop()
    for segment in segments:
        if segment in (".", ".."):
            problems.append(f"{what} must not contain '.' or '..' path segments")
        elif not segment:
            problems.append(f"{what} must not contain empty path segments ('//')")
        elif not _SEGMENT.match(segment):
            problems.append(
                f"{what} path segment {segment!r} has characters that would not map to the same "
                "file name everywhere (percent-encoding, spaces, non-ASCII)"
            )
    if not allow_trailing_slash and not path.strip("/"):
        problems.append(f"{what} must have a path")
    return sorted(set(problems), key=problems.index)


def default_jwks_uri(issuer: str) -> str:
    return issuer.removesuffix("/") + WELL_KNOWN_JWKS


def discovery_url(issuer: str) -> str:
    return issuer.removesuffix("/") + WELL_KNOWN_OIDC


def oauth_metadata_url(issuer: str) -> str:
    """RFC 8414 §3: the well-known segment goes between the host and the issuer's path,
    whose terminating `/` is removed."""
    parts = urlsplit(issuer)
    return f"https://{parts.netloc}{WELL_KNOWN_OAUTH}{parts.path.removesuffix('/')}"


def tree_path(url: str) -> str:
    """The file a validated URL is served from, relative to the output folder: `<host>/<path>`.

    check_https_url has ruled out everything but `https://host[:port]/path`.
    """
    return url.removeprefix("https://")
