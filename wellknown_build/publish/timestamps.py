"""The timestamp parser our S3 client's responses go through.

botocore turns every timestamp in a response into a datetime with `dateutil.parser.parse`,
which costs about 70 µs: three quarters of the 95 µs botocore spends on each object of a
ListObjectsV2 page, and at 2,000,000 objects 140 s of one core (README: Design notes,
Listing). S3 writes LastModified in one form, `2026-01-05T12:34:56.000Z`; that form is
parsed here with a regular expression into a datetime equal to botocore's (the same instant
and fields, offset zero, the same `isoformat()`, which is all publish keeps of it), and
anything else is handed to botocore's own parser, so every other form, and every error, is
botocore's. tests/test_timestamps.py holds the two equal, in several local zones.

One difference, on purpose: on a machine whose zone is *named* UTC but is not (the POSIX
TZ `UTC-3`), dateutil reads the `Z` as local time and moves the instant by the offset
(`+03:00`), while the same object's HEAD (`Last-Modified: ... GMT`) comes back as `+00:00`;
this parser reads `Z` as UTC there too, as RFC 3339 says, so listing and HEAD agree.

Set on our client's session the way the AWS CLI sets its own timestamp parser
(awscli/customizations/scalarparse.py): `ResponseParserFactory.set_parser_defaults`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import botocore.session
import botocore.utils

# What S3 and the stores that copy it write: seconds, then 1 to 6 digits of a fraction, or
# none, then Z. Anything else (7 digits, other scripts' digits, an offset) is botocore's.
_ISO_Z = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z"
)


def parse(value: Any) -> dt.datetime:
    """A response's timestamp as botocore's default parser gives it."""
    found = _ISO_Z.fullmatch(value) if isinstance(value, str) else None
    if found is not None:
        year, month, day, hour, minute, second, fraction = found.groups()
        try:
            return dt.datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second),
                int(fraction.ljust(6, "0")) if fraction else 0,
                tzinfo=dt.timezone.utc,
            )
        except ValueError:  # day 31 of a short month, hour 24...: botocore's error or answer
            pass
    return botocore.utils.parse_timestamp(value)


def session() -> botocore.session.Session:
    """A botocore session whose clients parse timestamps with `parse`."""
    made = botocore.session.get_session()
    made.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse)
    return made
