"""Instants and durations as instances.yaml writes them."""

from __future__ import annotations

import datetime as dt
import re

_SIMPLE = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_instant(value: object) -> dt.datetime:
    """ISO 8601 with a timezone (YAML may already have made it a datetime); a bare date is
    midnight UTC. Raises ValueError with the reason."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    else:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time")
    if moment.tzinfo is None:
        raise ValueError(f"{value!s} has no timezone; add Z or an offset like +02:00")
    return moment.astimezone(dt.timezone.utc)


def parse_duration(value: object) -> int:
    """Seconds from 300, '300s', '5m', '1h', '7d' or ISO 8601 'PT1H30M'."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        simple = _SIMPLE.match(text)
        if simple:
            return int(simple.group(1)) * _UNIT[simple.group(2)]
        iso = _ISO.match(text)
        if iso and text not in ("P", "PT") and not text.endswith("T"):
            days, hours, minutes, seconds = (int(g or 0) for g in iso.groups())
            return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    raise ValueError(f"{value!r} is not a duration (seconds, '90s', '15m', '1h', '7d' or 'PT1H')")


def describe(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
