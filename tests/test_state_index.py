"""The state index at scale (format 3, publish/state.py): compact entries, inline while small
and sharded past that, only changed shards written and each conditionally, format 2 still
read, damaged or foreign shards empty for their objects. Against moto through the proxy,
with the shard sizes made small."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from wellknown_build.publish import history, state
from wellknown_build.publish import run as publish_run
from wellknown_build.publish.state import STATE_NAME, Record

from .helpers import KEY_MAKERS, Run, public_pem, write
from .s3server import Proxy
from .test_publish import _keys, _publish, _render, _s3

SHARDS = ".wellknown-build/state/"
NAMES = ["a", "b", "c", "d", "e"]


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards past 4 entries, 2 per shard; LastModified recorded at once (the tests wait
    for no clock)."""
    monkeypatch.setattr(state, "INLINE", 4)
    monkeypatch.setattr(state, "PER_SHARD", 2)
    monkeypatch.setattr(publish_run, "SETTLE_SECONDS", 0)


def _json(moto_server: str, bucket: str, key: str) -> Any:
    return json.loads(_s3(moto_server).get_object(Bucket=bucket, Key=key)["Body"].read())


def _shard(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) & (shards - 1)


class Conditions:
    """Every PUT and DELETE with the conditional headers it carried."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None, str | None]] = []

    def __call__(self, method: str, key: str, headers: Message) -> None:
        if method in ("PUT", "DELETE"):
            self.seen.append((method, key, headers.get("If-Match"), headers.get("If-None-Match")))


def test_small_deployments_keep_one_object(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a", "b"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    index = _json(moto_server, bucket, STATE_NAME)
    assert sorted(index) == ["format", "objects", "pending_invalidations", "shards"]
    assert (index["format"], index["shards"], index["pending_invalidations"]) == (3, 0, {})
    objects = index["objects"]
    assert len(objects) == 4
    for key, value in objects.items():
        listed = _s3(moto_server).head_object(Bucket=bucket, Key=key)
        meta = listed["Metadata"]
        assert value[:16] == listed["ETag"][1:17]
        assert value[41:77] == meta["wellknown-fingerprint"][:24] + meta["wellknown-sha256"][:12]
        if key.endswith("jwks.json"):
            keys = history.decode(value[77:])
            assert keys is not None and keys.instance == key[0] and len(keys.kids) == 1
        else:
            assert len(value) == 77
    assert [k for k in _keys(moto_server, bucket) if k.startswith(SHARDS)] == []


def test_past_inline_the_index_is_sharded_and_only_changed_shards_are_written(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, small: None
) -> None:
    _render(run, tmp_path, NAMES)  # 10 objects: 8 shards of 2
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    root = _json(moto_server, bucket, STATE_NAME)
    assert root == {"format": 3, "shards": 8, "pending_invalidations": {}}
    documents = [k for k in _keys(moto_server, bucket) if ".well-known/" in k]
    seen: dict[str, str] = {}
    for index in range(8):
        shard = _json(moto_server, bucket, f"{SHARDS}8-{index}.json")
        assert shard["format"] == 3 and shard["shard"] == [index, 8]
        assert all(_shard(key, 8) == index for key in shard["objects"])
        seen.update(shard["objects"])
    assert sorted(seen) == documents

    s3_proxy.clear()  # nothing changed: every entry trusted, nothing written
    assert "10 unchanged" in _publish(run, s3_proxy, bucket).output
    methods = Counter(r.method for r in s3_proxy.requests)
    assert methods["HEAD"] == 0 and methods["PUT"] == 0
    assert Counter(r.key for r in s3_proxy.requests if r.method == "GET")[STATE_NAME] == 1

    write(tmp_path / "keys" / "c.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, NAMES)
    s3_proxy.clear()
    conditions = Conditions()
    s3_proxy.faults.append(conditions)
    assert "1 updated" in _publish(run, s3_proxy, bucket).output
    jwks = "c.example/t/c/.well-known/jwks.json"
    shard = f"{SHARDS}8-{_shard(jwks, 8)}.json"
    assert s3_proxy.puts(bucket) == [".wellknown-build/lease.json", jwks, shard]
    (put,) = [c for c in conditions.seen if c[1] == shard]
    assert put[2] is not None and put[3] is None  # If-Match on the ETag it read
    assert _json(moto_server, bucket, STATE_NAME) == root  # state.json untouched


def test_resharding_writes_the_new_set_then_removes_the_old(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, small: None
) -> None:
    _render(run, tmp_path, NAMES[:2])  # 4 objects: inline
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    assert _json(moto_server, bucket, STATE_NAME)["shards"] == 0
    _render(run, tmp_path, NAMES)
    conditions = Conditions()
    s3_proxy.faults.append(conditions)
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    assert _json(moto_server, bucket, STATE_NAME)["shards"] == 8
    shard_puts = [c for c in conditions.seen if c[1].startswith(SHARDS)]
    assert len(shard_puts) == 8 and all(c[3] == "*" for c in shard_puts)  # If-None-Match
    (root,) = [c for c in conditions.seen if c[1] == STATE_NAME]
    assert root[2] is not None  # over the inline index it read
    assert conditions.seen.index(root) > conditions.seen.index(shard_puts[-1])  # root last

    _render(run, tmp_path, NAMES[:1])  # 2 objects: back to inline, shards removed
    result = _publish(run, s3_proxy, bucket, "--delete")
    assert result.exit_code == 0, result.output
    assert [k for k in _keys(moto_server, bucket) if k.startswith(SHARDS)] == []
    assert len(_json(moto_server, bucket, STATE_NAME)["objects"]) == 2


def test_a_damaged_or_foreign_shard_is_empty_for_its_objects(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, small: None
) -> None:
    _render(run, tmp_path, NAMES)
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    s3 = _s3(moto_server)
    in_shard = {i: _json(moto_server, bucket, f"{SHARDS}8-{i}.json")["objects"] for i in range(8)}
    damaged, foreign = sorted(in_shard, key=lambda i: -len(in_shard[i]))[:2]
    s3.put_object(Bucket=bucket, Key=f"{SHARDS}8-{damaged}.json", Body=b"{not json")
    other = {"format": 3, "shard": [damaged, 8], "objects": in_shard[foreign]}
    s3.put_object(Bucket=bucket, Key=f"{SHARDS}8-{foreign}.json", Body=json.dumps(other).encode())
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert "10 unchanged" in result.output
    assert f"8-{damaged}.json is unreadable" in result.output
    assert f"8-{foreign}.json is unreadable (another shard's)" in result.output
    headed = sorted(r.key for r in s3_proxy.requests if r.method == "HEAD")
    assert headed == sorted([*in_shard[damaged], *in_shard[foreign]])
    assert not [k for k in s3_proxy.puts(bucket) if ".well-known/" in k]  # no document sent
    for index in (damaged, foreign):  # rebuilt; a JWKS's kids' history is lost with it
        rebuilt = _json(moto_server, bucket, f"{SHARDS}8-{index}.json")["objects"]
        assert {k: v[:77] for k, v in rebuilt.items()} == {
            k: v[:77] for k, v in in_shard[index].items()
        }
        for key, value in rebuilt.items():
            keys = history.decode(value[77:]) if key.endswith("jwks.json") else None
            assert keys is None or [k.origin for k in keys.kids] == ["found"]


def test_a_shard_changed_during_publish_fails_the_run(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, small: None
) -> None:
    _render(run, tmp_path, NAMES)
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, NAMES)
    jwks = "a.example/t/a/.well-known/jwks.json"
    shard = f"{SHARDS}8-{_shard(jwks, 8)}.json"
    s3 = _s3(moto_server)

    def meddle(method: str, key: str, headers: Message) -> None:
        if method == "PUT" and key == jwks:  # someone writes the shard meanwhile
            s3.put_object(Bucket=bucket, Key=shard, Body=b"{}")

    s3_proxy.faults.append(meddle)
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 1
    assert f"error: {shard} was changed by someone else during this publish" in result.output
    assert s3.get_object(Bucket=bucket, Key=shard)["Body"].read() == b"{}"  # not overwritten
    s3_proxy.faults.clear()
    again = _publish(run, s3_proxy, bucket)  # the next run repairs it
    assert again.exit_code == 0, again.output
    assert jwks in _json(moto_server, bucket, shard)["objects"]


def _format2(moto_server: str, bucket: str) -> dict[str, Any]:
    """The index as format 2 wrote it, from the objects' own marks."""
    s3 = _s3(moto_server)
    objects = {}
    for item in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        key = item["Key"]
        if ".well-known/" not in key:
            continue
        meta = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
        entry = {
            "fingerprint": meta["wellknown-fingerprint"],
            "sha256": meta["wellknown-sha256"],
            "etag": item["ETag"],
            "modified": item["LastModified"].isoformat(),
        }
        if key.endswith("jwks.json"):
            body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            entry["kids"] = [k["kid"] for k in body["keys"]]
        objects[key] = entry
    return {"format": 2, "objects": objects, "pending_invalidations": {}}


def test_a_format_2_index_is_read_then_upgraded(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, small: None
) -> None:
    _render(run, tmp_path, NAMES[:2])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    old = _format2(moto_server, bucket)
    _s3(moto_server).put_object(Bucket=bucket, Key=STATE_NAME, Body=json.dumps(old).encode())
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert "4 unchanged" in result.output
    assert Counter(r.method for r in s3_proxy.requests)["HEAD"] == 0  # its entries trusted
    # written once as format 3: the kids' history it lacked, found live
    assert s3_proxy.puts(bucket) == [".wellknown-build/lease.json", STATE_NAME]
    upgraded = _json(moto_server, bucket, STATE_NAME)
    assert upgraded["format"] == 3
    for key, entry in old["objects"].items():
        value = upgraded["objects"][key]
        assert (
            value[:77]
            == Record.of(
                entry["fingerprint"], entry["sha256"], entry["etag"], entry["modified"]
            ).packed()
        )
        if key.endswith("jwks.json"):
            keys = history.decode(value[77:])
            assert keys is not None and [k.origin for k in keys.kids] == ["found"]
    s3_proxy.clear()
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    assert s3_proxy.puts(bucket) == []


def test_a_format_2_index_gives_the_kid_report_of_a_rotation_by_reading(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    old = _format2(moto_server, bucket)
    (old_kid,) = old["objects"]["a.example/t/a/.well-known/jwks.json"]["kids"]
    _s3(moto_server).put_object(Bucket=bucket, Key=STATE_NAME, Body=json.dumps(old).encode())
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, ["a"])
    result = _publish(run, s3_proxy, bucket, "--dry-run")
    assert f"-{old_kid}" in result.output


def test_unreadable_root_or_shard_count_means_no_index(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    for body in (b"[]", b'{"format": 3, "shards": 3}', b'{"format": 3, "shards": "8"}', b"\xff"):
        _s3(moto_server).put_object(Bucket=bucket, Key=STATE_NAME, Body=body)
        s3_proxy.clear()
        result = _publish(run, s3_proxy, bucket)
        assert result.exit_code == 0, result.output
        assert Counter(r.method for r in s3_proxy.requests)["HEAD"] == 2, body
        assert _json(moto_server, bucket, STATE_NAME)["format"] == 3  # rebuilt


def test_shard_count() -> None:
    assert state.shard_count(16_384, 0) == 0
    assert state.shard_count(16_385, 0) == 4  # about 8,192 per shard, a power of two
    assert state.shard_count(2_000_000, 0) == 256
    assert state.shard_count(2_000_000, 256) == 256
    assert state.shard_count(3_000_000, 256) == 256  # within 4 times: no reshard
    assert state.shard_count(9_000_000, 256) == 2048
    assert state.shard_count(9_000, 4) == 4
    assert state.shard_count(8_000, 4) == 0  # half of INLINE: back to one object


def test_records_compare_and_expand() -> None:
    fingerprint, sha256 = "f" * 20 + "0" * 44, "a" * 64
    record = Record.of(fingerprint, sha256, '"0123456789abcdef0123456789abcdef"', None)
    assert record.packed() == "0123456789abcdef" + "-" * 25 + fingerprint[:24] + sha256[:12]
    assert Record.unpack(record.packed() + "history") == record
    settled = record.settled("2026-01-05T12:34:56+00:00")
    store = state.State({"k": settled.packed()})
    etag = '"0123456789abcdef0123456789abcdef"'
    assert store.trusted("k", etag, "2026-01-05T12:34:56+00:00") == (fingerprint[:24], "a" * 12)
    assert store.trusted("k", etag, "2026-01-05T12:34:57+00:00") is None
    assert store.trusted("k", '"1123456789abcdef0123456789abcdef"', settled.modified) is None
    assert state.State({"k": record.packed()}).trusted("k", etag, "-" * 25) is None
    assert state.expand(fingerprint[:24], fingerprint) == fingerprint
    assert state.expand(fingerprint[:24], "e" * 64) == fingerprint[:24]
    # an odd ETag or LastModified is hashed to the same width
    odd = Record.of(fingerprint, sha256, "W/abc", "2026-01-05T12:34:56.500000+00:00")
    assert len(odd.packed()) == 77 and odd.etag.startswith("h") and odd.modified.startswith("h")
    found = state.State({"k": odd.packed()}).trusted(
        "k", "W/abc", "2026-01-05T12:34:56.500000+00:00"
    )
    assert found == (fingerprint[:24], "a" * 12)  # MinIO's milliseconds: trusted all the same
    assert (
        state.State({"k": odd.packed()}).trusted("k", "W/abc", "2026-01-05T12:34:56.6+00:00")
        is None
    )
