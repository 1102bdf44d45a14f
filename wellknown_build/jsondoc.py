"""The one JSON format of every file and report we write, and what may go into it.

orjson writes it: byte-identical to `json.dumps(indent=2, ensure_ascii=False)` for the values
that pass `problems()`, and many times faster than the stdlib's pure-Python indenting
encoder. orjson would write NaN and Infinity as null, so nothing reaches it unchecked:
configuration values and template output pass `problems()` first (finite numbers, integers
within I-JSON's ±(2**53 - 1), RFC 7493 §2.2), and OPT_STRICT_INTEGER holds the integer
rule again at write time.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

MAX_SAFE_INTEGER = 2**53 - 1
_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_STRICT_INTEGER


def loads(data: bytes | str) -> Any:
    """JSON from a file or an object we did not write ourselves just now (a manifest, the
    journal, the render cache, a state index, a lease, a served body): anything that is not
    JSON, however deep its nesting, is a ValueError, the one error callers handle."""
    # orjson: strict RFC 8259 (no NaN, no lone surrogates, UTF-8 only), nesting capped at
    # 1024, and 5-10x faster than json on the render cache's manifest lines.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if str(e).startswith("depth limit exceeded"):
            raise ValueError(f"nested too deeply ({e})") from None
        raise


def dumps(value: Any) -> bytes:
    """2-space indent, UTF-8, members in the order given, trailing newline.

    Copied to an exact-size object: orjson's own keeps a 4 KiB buffer, which for 20,000
    documents of 500 bytes held in memory was 78 MiB of a render's peak."""
    return memoryview(orjson.dumps(value, option=_OPTIONS)).tobytes()


def dumps_bookkeeping(value: Any) -> bytes:
    """The tool's own files, read only by it (the render cache): compact, 64-bit integers
    allowed (nanosecond mtimes exceed I-JSON's range)."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)


def dumps_line(value: Any) -> str:
    """One line, no spaces: manifest entries and machine output."""
    return orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER).decode("utf-8")


def problems(value: Any, where: str = "") -> list[tuple[str, str]]:
    """(path, reason) for every part of `value` that is not plain, portable JSON."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        at, item = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isprintable() and any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                found.append((at, "contains a lone surrogate, which is not UTF-8"))
        elif kind is dict:
            for key, member in item.items():
                if type(key) is not str:
                    found.append((at, f"member name {key!r} is not a string"))
                else:
                    stack.append((f"{at}.{key}" if at else key, member))
        elif kind is list:
            stack.extend((f"{at}[{i}]", member) for i, member in enumerate(item))
        elif kind is float:
            if not math.isfinite(item):
                found.append((at, f"{item} is not a number JSON can carry"))
        elif kind is int:
            if abs(item) > MAX_SAFE_INTEGER:
                found.append((at, "is an integer beyond ±(2**53 - 1), which JSON parsers round"))
        elif item is not None and kind is not bool:
            found.append((at, f"{kind.__name__} is not a JSON value"))
    return sorted(found)
