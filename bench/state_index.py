"""`make bench-state`: the state index at fleet scale (issue 10, point 4).

A generated index of BENCH_STATE_OBJECTS objects (default 2,000,000: 1,000,000 issuers, a JWKS
with 2 kids and a discovery document each) is written and read through the real code
(publish/state.py) against an in-memory bucket, so the figures are the CPU of encoding and
decoding, not the network; bytes are what would cross it. Next to it, the alternatives the
choice was made from: format 2 as it was (one JSON object per entry in one state.json), format
2 compressed (gzip, and zstd when the `zstandard` package is installed), one shard per host
folder, and format 3 compressed per shard. Best of BENCH_REPEAT runs (default 2).
"""

from __future__ import annotations

import base64
import gc
import itertools
import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).parent.parent))

from wellknown_build import jsondoc
from wellknown_build.publish import history, state, timestamps
from wellknown_build.publish.s3 import Listed, PreconditionFailed

OBJECTS = int(os.environ.get("BENCH_STATE_OBJECTS", "2000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))
T = TypeVar("T")

try:
    import zstandard  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    zstandard = None


def best(work: Callable[[], T]) -> tuple[T, float]:
    """The result and the best wall time of REPEAT runs (garbage collected first)."""
    seconds = float("inf")
    result: Any = None
    for _ in range(REPEAT):
        gc.collect()
        start = time.perf_counter()
        result = work()
        seconds = min(seconds, time.perf_counter() - start)
    return result, seconds


class MemoryBucket:
    """What publish/state.py needs of a bucket, in memory, with S3's conditional writes."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes, str]] = {}
        self.lock = threading.Lock()
        self.puts = 0
        self.bytes = 0

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self.data.get(key)

    def objects(self, prefix: str) -> dict[str, Listed]:
        return {
            k: Listed(etag, len(body), "")
            for k, (body, etag) in self.data.items()
            if k.startswith(prefix)
        }

    def put_json(self, key: str, value: object, *, if_match: str | None = None) -> str:
        body = jsondoc.dumps_line(value).encode()
        with self.lock:
            etag = f'"{self.puts:032x}"'  # unique, as S3's MD5 would be (not timed)
            current = self.data.get(key)
            if if_match == "" and current is not None:
                raise PreconditionFailed(key)
            if if_match and (current is None or current[1] != if_match):
                raise PreconditionFailed(key)
            self.data[key] = (body, etag)
            self.puts += 1
            self.bytes += len(body)
        return etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        with self.lock:
            self.data.pop(key, None)


def _hex(size: int) -> str:
    return os.urandom(size).hex()


def _kid() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def fleet(objects: int, hosts: int) -> list[tuple[str, str, str, str, str, list[str] | None]]:
    """(key, fingerprint, sha256, etag, LastModified, kids) per object, as publish sees them."""
    rows: list[tuple[str, str, str, str, str, list[str] | None]] = []
    for i in range(objects // 2):
        folder = f"tenant{i % hosts}.auth.example.com/tenants/t{i}/.well-known/"
        modified = f"2026-01-05T12:{(i // 60) % 60:02d}:{i % 60:02d}+00:00"
        kids = [_kid(), _kid()]
        for name, listed in (("jwks.json", kids), ("openid-configuration", None)):
            rows.append((folder + name, _hex(32), _hex(32), f'"{_hex(16)}"', modified, listed))
    return rows


def format2(rows: list[Any]) -> dict[str, Any]:
    """state.json as format 2 wrote it (publish/state.py before format 3)."""
    objects = {}
    for key, fingerprint, sha256, etag, modified, kids in rows:
        item: dict[str, Any] = {
            "fingerprint": fingerprint,
            "sha256": sha256,
            "etag": etag,
            "modified": modified,
        }
        if kids is not None:
            item["kids"] = kids
        objects[key] = item
    return {"format": 2, "objects": dict(sorted(objects.items())), "pending_invalidations": {}}


def parse2(data: bytes) -> int:
    """Format 2's reader: json, then each entry checked and made a record."""
    raw = jsondoc.loads(data)
    count = 0
    for item in raw["objects"].values():
        if all(isinstance(item.get(n), str) for n in ("fingerprint", "sha256", "etag")):
            kids = item.get("kids")
            _ = tuple(kids) if isinstance(kids, list) else None
            count += 1
    return count


def format3(rows: list[Any]) -> state.State:
    """The same objects as format 3 holds them, each JWKS with its kids' history."""
    result = state.State()
    for key, fingerprint, sha256, etag, modified, kids in rows:
        record = state.Record.of(fingerprint, sha256, etag, modified)
        text = ""
        if kids is not None:
            keys = history.Keys(
                key.split(".", 1)[0],
                900,
                3600,
                state.short_etag(etag),
                tuple(
                    history.Kid(k, s, None, 1767225600, "added", 1767225600)
                    for k, s in zip(kids, ("active", "next"), strict=True)
                ),
            )
            text = history.encode(keys)
        result.put(key, record, text)
    return result


def row(label: str, seconds: float | str, size: int | str, note: str = "") -> None:
    shown = f"{seconds:7.2f} s" if isinstance(seconds, float) else f"{seconds:>9}"
    mb = f"{size / 1e6:8.1f} MB" if isinstance(size, int) else f"{size:>11}"
    print(f"   {label:<58} {shown} {mb}  {note}")


def compressed(label: str, data: bytes) -> None:
    for level in (1, 6):
        packed, seconds = best(lambda level=level: zlib.compress(data, level))  # type: ignore[misc]
        _, back = best(lambda packed=packed: zlib.decompress(packed))  # type: ignore[misc]
        row(f"{label} + gzip -{level}: compress / decompress", seconds, len(packed))
        row("", back, "")
    if zstandard is None:
        row(f"{label} + zstd", "-", "-", "(pip install zstandard to measure)")
        return
    packed, seconds = best(lambda: zstandard.ZstdCompressor(level=3).compress(data))
    _, back = best(lambda: zstandard.ZstdDecompressor().decompress(packed))
    row(f"{label} + zstd -3: compress / decompress", seconds, len(packed))
    row("", back, "")


def per_shard_compressed(bucket: MemoryBucket, pool: ThreadPoolExecutor) -> None:
    """Format 3's shards compressed one by one on the pool (zlib and zstd release the GIL)."""
    shards = [body for key, (body, _) in bucket.data.items() if "/state/" in key]
    for level in (1, 6):
        packed, seconds = best(
            lambda level=level: list(pool.map(lambda b: zlib.compress(b, level), shards))  # type: ignore[misc]
        )
        _, back = best(lambda packed=packed: list(pool.map(zlib.decompress, packed)))  # type: ignore[misc]
        size = sum(len(p) for p in packed)
        row(f"format 3 shards + gzip -{level} (threads): compress / decompress", seconds, size)
        row("", back, "")
    if zstandard is None:
        return
    packed, seconds = best(
        lambda: list(pool.map(lambda b: zstandard.ZstdCompressor(level=3).compress(b), shards))
    )
    _, back = best(
        lambda: list(pool.map(lambda b: zstandard.ZstdDecompressor().decompress(b), packed))
    )
    row(
        "format 3 shards + zstd -3 (threads): compress / decompress", seconds, sum(map(len, packed))
    )
    row("", back, "")


def bench_format2(rows: list[Any]) -> None:
    print("-- format 2, as it was: one state.json, a JSON object per entry")
    old = format2(rows)
    data, seconds = best(lambda: jsondoc.dumps_line(old).encode())
    row("encode (as_json + dumps)", seconds, len(data))
    _, seconds = best(lambda: parse2(data))
    row("parse", seconds, len(data), "(Bucket.get refuses more than 64 MiB: unreadable)")
    compressed("format 2", data)
    hosts: dict[str, int] = {}
    for key, item in old["objects"].items():
        host = key.split("/", 1)[0]
        hosts[host] = hosts.get(host, 0) + len(json.dumps(item)) + len(key) + 6
    row("one shard per host folder: largest of 100 hosts", "-", max(hosts.values()))
    row("one shard per host folder: one host (auth.example.com/tenants/*)", "-", len(data))


def bench_format3(new: state.State) -> None:
    print("-- format 3: 77-character entries, kids' history per JWKS, crc32 shards")
    inline = {"objects": new.objects}
    data, seconds = best(lambda: jsondoc.dumps_line(inline).encode())
    row("as one object: encode", seconds, len(data))
    _, seconds = best(lambda: jsondoc.loads(data))
    row("as one object: parse", seconds, len(data))


def bench_shards(new: state.State, listing: list[tuple[str, str, str]]) -> None:
    with ThreadPoolExecutor(16) as pool:
        bucket = MemoryBucket()
        shards = state.shard_count(len(new.objects), 0)

        def write_all() -> int:
            bucket.data.clear()
            everything = state.State(dict(new.objects), touched=set(new.objects))
            return state.save(bucket, "", state.State(), everything)  # type: ignore[arg-type]

        puts, seconds = best(write_all)
        size = sum(len(b) for b, _ in bucket.data.values())
        largest = max(len(b) for b, _ in bucket.data.values())
        row(f"write all ({puts} PUTs: {shards} shards + state.json)", seconds, size)
        row("largest shard", "-", largest)
        loaded, seconds = best(lambda: state.load(bucket, "", pool))  # type: ignore[arg-type]
        row(f"read all ({shards} shards, concurrently)", seconds, size)
        read_all = seconds
        assert loaded.objects == new.objects
        _, seconds = best(lambda: [loaded.trusted(k, e, m) for k, e, m in listing])
        row("every object looked up as publish does (trusted?)", seconds, "-")

        key = next(k for k in loaded.objects if k.endswith("jwks.json"))
        original = loaded.record(key)
        assert original is not None
        text = loaded.history(key)
        base = state.load(bucket, "", pool)  # type: ignore[arg-type]
        seconds, puts, written = float("inf"), 0, 0
        for _ in range(REPEAT):
            changed = base.copy()
            changed.put(key, state.Record.of(_hex(32), _hex(32), f'"{_hex(16)}"', None), text)
            before = bucket.bytes
            start = time.perf_counter()
            puts = state.save(bucket, "", base, changed)  # type: ignore[arg-type]
            seconds = min(seconds, time.perf_counter() - start)
            written = bucket.bytes - before
            back = base.copy()  # as it was, for the next run
            back.put(key, original, text)
            state.save(bucket, "", base, back)  # type: ignore[arg-type]
        row(f"one tenant changed: {puts} shard(s) written", seconds, written)
        per_shard_compressed(bucket, pool)
    bench_listing(sorted(itertools.islice(new.objects, 1000)), read_all)


def listing_page(keys: list[str]) -> bytes:
    """A ListObjectsV2 answer for `keys`, as S3 writes it."""
    items = "".join(
        f"<Contents><Key>{k}</Key><LastModified>2026-01-05T12:00:{i % 60:02d}.000Z"
        f"</LastModified><ETag>&quot;{i:032x}&quot;</ETag><Size>1234</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for i, k in enumerate(keys)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/'
        f'doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount>'
        "<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>t"
        f"</NextContinuationToken>{items}</ListBucketResult>"
    ).encode()


def bench_listing(keys: list[str], read_all: float) -> None:
    """The listing publish compares the index with: botocore parsing the same objects'
    ListObjectsV2 pages, with its default timestamp parser and with ours (our client's). One
    page of 1,000 is parsed REPEAT times; the seconds are per page times OBJECTS / 1,000."""
    import botocore.parsers
    import botocore.session

    print("-- the listing of the same objects (ListObjectsV2 pages parsed by botocore)")
    shape = botocore.session.get_session().get_service_model("s3")
    output = shape.operation_model("ListObjectsV2").output_shape
    answer = {"status_code": 200, "headers": {}, "body": listing_page(keys[:1000])}
    pages = OBJECTS / 1000
    parsers = (
        ("botocore's default timestamps (dateutil)", botocore.parsers.create_parser("rest-xml")),
        ("our client (publish/timestamps.py)", botocore.parsers.RestXMLParser(timestamps.parse)),
    )
    for label, parser in parsers:
        _, seconds = best(lambda parser=parser: parser.parse(answer, output))  # type: ignore[misc]
        total = seconds * pages
        note = f"the index read is {read_all / total:.2f}x of it"
        row(f"parse {pages:,.0f} pages, {label}", total, "-", note)


def main() -> None:
    cores = os.cpu_count()
    print(f"== state index: {OBJECTS:,} objects ({OBJECTS // 2:,} JWKS), {cores} cores")
    rows = fleet(OBJECTS, 100)
    bench_format2(rows)
    new = format3(rows)
    listing = [(key, etag, modified) for key, _, _, etag, modified, _ in rows]
    del rows
    bench_format3(new)
    bench_shards(new, listing)


if __name__ == "__main__":
    main()
