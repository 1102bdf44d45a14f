"""publish/timestamps.py: the fast path for S3's LastModified is held equal to botocore's
own timestamp parser on every input class, and our client really uses it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator

import boto3
import botocore.utils
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wellknown_build.publish import timestamps
from wellknown_build.publish.s3 import Bucket

from .s3server import Proxy

# dateutil warns of zone names it does not know ("ZZ"): botocore's answer, warning included
pytestmark = pytest.mark.filterwarnings("ignore::dateutil.parser.UnknownTimezoneWarning")


def _outcome(parse: object, value: object) -> tuple[str, ...]:
    """What a parser makes of `value`, in the terms publish uses: the instant, its offset and
    isoformat() (what the state index stores), or the error."""
    try:
        got = parse(value)  # type: ignore[operator]
    except Exception as e:  # the error itself is compared
        return (type(e).__name__, str(e))
    assert isinstance(got, dt.datetime)
    return ("ok", repr(got.utcoffset()), got.isoformat(), repr(got.replace(tzinfo=None)))


def _same(value: object) -> None:
    assert _outcome(timestamps.parse, value) == _outcome(botocore.utils.parse_timestamp, value)


_digits = st.text(alphabet="0123456789", min_size=1, max_size=7)


@st.composite
def _shaped(draw: st.DrawFn) -> str:
    """S3's form and its near misses: any digits in each field (invalid dates included), a
    fraction of 0-9 digits or none, and the separators and zone bent one at a time."""
    year = draw(st.sampled_from(["2026", "1970", "0000", "0001", "9999", "12345", "026"]))
    fields = [draw(st.integers(0, 99)) for _ in range(5)]
    month, day, hour, minute, second = (f"{f:02d}" for f in fields)
    fraction = draw(st.one_of(st.just(""), _digits.map(lambda d: "." + d), st.just(".")))
    zone = draw(st.sampled_from(["Z", "z", "+00:00", "-05:00", " GMT", "", "ZZ", "Z "]))
    t = draw(st.sampled_from(["T", "T", "T", " ", "t"]))
    dash = draw(st.sampled_from(["-", "-", "-", "/"]))
    return f"{year}{dash}{month}-{day}{t}{hour}:{minute}:{second}{fraction}{zone}"


@settings(max_examples=1500, deadline=None)
@given(_shaped())
@example("2026-01-05T12:34:56.000Z")  # S3
@example("2026-01-05T12:34:56Z")
@example("2026-01-05T12:34:56.123Z")  # MinIO, R2
@example("2026-01-05T12:34:56.123456Z")
@example("2026-01-05T12:34:56.1234567Z")  # past microseconds: botocore's parser
@example("2026-01-05T12:34:56.0000001Z")  # ... which cuts, not rounds
@example("2024-02-29T00:00:00Z")  # a leap day
@example("2026-02-29T00:00:00Z")  # not one: botocore's error
@example("2026-12-31T23:59:60Z")  # a leap second: botocore's error
@example("2026-01-05T24:00:00Z")
def test_s3_form_and_its_near_misses_agree(value: str) -> None:
    _same(value)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(-(2**40), 2**40), st.floats(allow_nan=False)))
@example("Mon, 05 Jan 2026 12:34:56 GMT")  # HEAD's Last-Modified
@example("1767225600")  # epoch seconds
@example("1767225600.5")
@example("\u0662\u0660\u0662\u0666-01-05T12:34:56Z")  # Arabic-Indic digits
@example("")
def test_any_other_value_is_botocores_answer(value: object) -> None:
    _same(value)


@contextlib.contextmanager
def _local_zone(name: str) -> Iterator[None]:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(params=["UTC", "UTC0", "GMT", "America/New_York", "Europe/London", "XXX+5"])
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The machine's zone changes dateutil's tzinfo (tzlocal() when it is named UTC)."""
    with _local_zone(request.param):
        yield request.param


@pytest.mark.parametrize(
    "value", ["2026-07-05T12:34:56.000Z", "2026-01-05T12:34:56.250Z", "2026-03-29T01:30:00Z"]
)
def test_agrees_in_any_local_zone(zone: str, value: str) -> None:
    _same(value)


@pytest.mark.parametrize("name", ["UTC-3", "UTC+8"])
def test_z_is_utc_even_where_the_local_zone_is_named_utc(name: str) -> None:
    """The one difference, on purpose: dateutil reads `Z` as local time when the zone is
    named UTC, so botocore moves the instant; ours keeps it, and agrees with what botocore
    makes of the same moment in HEAD's form."""
    with _local_zone(name):
        listed = timestamps.parse("2026-01-05T12:34:56.000Z")
        headed = botocore.utils.parse_timestamp("Mon, 05 Jan 2026 12:34:56 GMT")
        theirs = botocore.utils.parse_timestamp("2026-01-05T12:34:56.000Z")
    assert listed.isoformat() == headed.isoformat() == "2026-01-05T12:34:56+00:00"
    assert theirs.utcoffset() != dt.timedelta(0)  # botocore's answer there: shifted


def test_our_client_lists_with_it(bucket: str, s3_proxy: Proxy, moto_server: str) -> None:
    """LastModified of a real listing and HEAD are what botocore's default parser makes of
    them, and the listing went through the fast path."""
    boto3.client("s3", endpoint_url=moto_server).put_object(Bucket=bucket, Key="a", Body=b"x")
    ours = Bucket(bucket, endpoint_url=moto_server)
    plain = boto3.client("s3", endpoint_url=moto_server)
    listed = ours.objects("")["a"]
    expected = plain.list_objects_v2(Bucket=bucket)["Contents"][0]["LastModified"]
    assert listed.modified == expected.isoformat()
    head = ours.head("a")
    assert head is not None
    assert head.modified == plain.head_object(Bucket=bucket, Key="a")["LastModified"].isoformat()
    factory = ours.client._endpoint._response_parser_factory  # type: ignore[attr-defined]
    assert factory.create_parser("rest-xml")._timestamp_parser is timestamps.parse
