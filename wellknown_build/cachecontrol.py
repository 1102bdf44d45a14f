"""How long caches may hold a response, read from its Cache-Control header (RFC 9111 §5.2).

Directive names are case-insensitive and values may be tokens or quoted strings (§5.2); a
cache may serve a stale response for `stale-while-revalidate` or `stale-if-error` seconds
more (RFC 5861). Only the longest a JWKS can be held matters here.
"""

from __future__ import annotations

import re

_DIRECTIVE = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?\s*(?:,|$)'
)
_FRESH = ("max-age", "s-maxage")
_STALE = ("stale-while-revalidate", "stale-if-error")


def directives(header: str) -> dict[str, str | None]:
    """Lower-cased directive names and their unquoted values; the first of a repeated one."""
    found: dict[str, str | None] = {}
    position = 0
    while position < len(header):
        match = _DIRECTIVE.match(header, position)
        if match is None or match.end() == position:
            break
        name = match.group(1).lower()
        quoted, token = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
        found.setdefault(name, value)
        position = match.end()
    return found


def _seconds(value: str | None) -> int:
    if value is None or not (value.isascii() and value.isdigit()):
        return 0
    return int(value[:18])  # more digits than that is "forever" anyway; int() of 5,000 fails


def held_for(header: str, cap: int) -> int:
    """Seconds a cache may serve a response: freshness (the longer of max-age and the shared
    caches' s-maxage) plus the longest stale extension; each figure capped at `cap`."""
    found = directives(header)
    fresh = max((min(_seconds(found.get(n)), cap) for n in _FRESH), default=0)
    stale = max((min(_seconds(found.get(n)), cap) for n in _STALE), default=0)
    return fresh + stale
