"""Instants and durations as instances.yaml and the command line write them.

Instants are RFC 3339 date-times with an offset (`Z`/`z`, `T`/`t` or a space between date and
time, fractions of a second) or a bare date, meaning midnight UTC. Parsed here rather than by
`datetime.fromisoformat`, which before Python 3.11 reads neither `Z` nor most of RFC 3339.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import shown

_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?\s*([Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_SIMPLE = re.compile(r"([0-9]+)\s*([smhdw])")
_ISO = re.compile(r"P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = 100 * 365 * 86400  # beyond any token lifetime or cache; keeps date math finite
# The same grammars as JSON Schema patterns, for editors (schema.py); a property test holds
# them equal to the parsers. Dates that do not exist (02-30) only the parser refuses.
INSTANT_PATTERN = (
    r"^\s*[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?\s*"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9]))?\s*$"
)
DURATION_PATTERN = (
    r"^\s*(?:[0-9]+|[0-9]+\s*[smhdw]"
    r"|P(?!\s*$)(?:[0-9]+W)?(?:[0-9]+D)?(?:T(?=[0-9])(?:[0-9]+H)?(?:[0-9]+M)?(?:[0-9]+S)?)?)\s*$"
)


def parse_instant(value: object) -> dt.datetime:
    """An aware UTC datetime; raises ValueError with the reason."""
    text = value.strip() if isinstance(value, str) else None
    found = _INSTANT.fullmatch(text) if text else None
    if found is None:
        raise ValueError(
            f"{shown(value)} is not an RFC 3339 date-time (like 2026-12-01T00:00:00Z) or a date"
        )
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    if hour is not None and offset is None:
        raise ValueError(f"{value!s} has no timezone; add Z or an offset like +02:00")
    try:
        zone = dt.timezone.utc
        if offset and offset not in "Zz":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            if int(digits[2:]) > 59:
                raise ValueError("offset minutes must be below 60")
            zone = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),  # a leap second (…:60) is read as :59
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=zone,
        )
        return moment.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{value!s} is not a valid date-time: {e}") from None


def parse_duration(value: object) -> int:
    """Seconds from 300, '300', '300s', '5m', '1h', '7d', '2w' or ISO 8601 'PT1H30M', 'P1W'."""
    seconds: int | None = None
    if type(value) is int and value >= 0:
        seconds = value
    elif type(value) is float and value.is_integer() and value >= 0:  # JSON's 3.0 is 3
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip()
        simple = _SIMPLE.fullmatch(text)
        iso = _ISO.fullmatch(text)
        if text.isdigit() and text.isascii():
            seconds = int(text)
        elif simple:
            seconds = int(simple.group(1)) * _UNIT[simple.group(2)]
        elif iso and text not in ("P", "PT") and not text.endswith("T"):
            weeks, days, hours, minutes, secs = (int(g or 0) for g in iso.groups())
            seconds = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds is None:
        raise ValueError(
            f"{shown(value)} is not a duration (seconds, '90s', '15m', '1h', '7d', '2w' or 'PT1H')"
        )
    if seconds > MAX_DURATION:
        raise ValueError(f"{shown(value)} is longer than 100 years")
    return seconds


def after(moment: dt.datetime, seconds: int) -> dt.datetime:
    """`moment` plus `seconds`, held at the last representable instant instead of overflowing."""
    try:
        return moment + dt.timedelta(seconds=seconds)
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def describe(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def iso(moment: dt.datetime) -> str:
    """RFC 3339 in UTC; the year always four digits (strftime's %Y is not, below 1000)."""
    utc = moment.astimezone(dt.timezone.utc)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"
