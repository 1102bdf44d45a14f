"""publish against moto's server on 127.0.0.1, every request seen by a recording proxy."""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter
from email.message import Message
from pathlib import Path
from typing import Any

import boto3

from .helpers import KEY_MAKERS, Run, public_pem, write, write_config
from .s3server import Proxy

CONFIG = """
defaults:
  cache_control: "{cache}"
instances:
{instances}
"""


def _render(run: Any, tmp_path: Path, names: list[str], cache: str = "public, max-age=300") -> None:
    lines = []
    for name in names:
        key = tmp_path / "keys" / f"{name}.pem"
        if not key.exists():
            write(key, public_pem(KEY_MAKERS["p256"]()))
        lines.append(
            f"  - {{id: {name}, issuer: 'https://{name}.example/t/{name}', keys: [{{path: keys/{name}.pem}}]}}"
        )
    write_config(tmp_path, CONFIG.format(cache=cache, instances="\n".join(lines)))
    result = run("render", "instances.yaml")
    assert result.exit_code == 0, result.output


def _publish(run: Any, proxy: Proxy, bucket: str, *args: str) -> Any:
    return run("publish", "--bucket", bucket, "--endpoint-url", proxy.url, *args)


def _s3(moto_server: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_server)


def _keys(moto_server: str, bucket: str) -> list[str]:
    listing = _s3(moto_server).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _documents(proxy: Proxy, bucket: str) -> list[str]:
    return [k for k in proxy.puts(bucket) if ".well-known" in k]


def test_headers_of_every_object(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a", "b"])
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert "published: 4 created, 0 updated, 0 unchanged, 0 deleted" in result.output
    s3 = _s3(moto_server)
    documents = [k for k in _keys(moto_server, bucket) if ".well-known" in k]
    assert len(documents) == 4
    for key in documents:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "application/json", key
        assert head["CacheControl"] == "public, max-age=300"
        assert head["Metadata"]["wellknown-build"] == "wellknown-build"
        local = (tmp_path / "out" / key).read_bytes()
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == local


def test_unchanged_copy_sends_no_put(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a", "b", "c"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    # A fresh CI checkout: same bytes, new mtimes.
    shutil.copytree(tmp_path / "out", tmp_path / "copy", copy_function=shutil.copyfile)
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket, "--out", "copy")
    assert result.exit_code == 0, result.output
    assert "0 created, 0 updated, 6 unchanged" in result.output
    assert [r.method for r in s3_proxy.requests if r.method in ("PUT", "DELETE", "POST")] == []


def test_unchanged_without_state_index_sends_no_document_put(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a", "b"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    _s3(moto_server).delete_object(Bucket=bucket, Key=".wellknown-build/state.json")
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket)
    assert "0 created, 0 updated, 4 unchanged" in result.output
    assert _documents(s3_proxy, bucket) == []
    assert Counter(r.method for r in s3_proxy.requests)["HEAD"] == 4
    # rebuilt once, under the lease
    assert s3_proxy.puts(bucket) == [".wellknown-build/lease.json", ".wellknown-build/state.json"]


def test_one_changed_instance(run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy) -> None:
    _render(run, tmp_path, ["a", "b", "c"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    old_kid = json.loads((tmp_path / "out/b.example/t/b/.well-known/jwks.json").read_text())[
        "keys"
    ][0]["kid"]
    write(tmp_path / "keys" / "b.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, ["a", "b", "c"])
    new_kid = json.loads((tmp_path / "out/b.example/t/b/.well-known/jwks.json").read_text())[
        "keys"
    ][0]["kid"]
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert _documents(s3_proxy, bucket) == ["b.example/t/b/.well-known/jwks.json"]
    assert "update  b.example/t/b/.well-known/jwks.json  (body changed)" in result.output
    assert f"kids    b.example/t/b/.well-known/jwks.json: +{new_kid} -{old_kid}" in result.output


def test_cache_control_change_alone_is_resent(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    _render(run, tmp_path, ["a"], cache="public, max-age=60")
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket)
    assert "(headers changed)" in result.output
    assert len(_documents(s3_proxy, bucket)) == 2
    head = _s3(moto_server).head_object(
        Bucket=bucket, Key="a.example/t/a/.well-known/openid-configuration"
    )
    assert head["CacheControl"] == "public, max-age=60"


def test_every_jwks_before_any_discovery_document(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, [f"i{n}" for n in range(12)])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    order = _documents(s3_proxy, bucket)
    kinds = ["discovery" if k.endswith("openid-configuration") else "jwks" for k in order]
    assert kinds == ["jwks"] * 12 + ["discovery"] * 12


def test_dry_run_changes_nothing(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a"])
    result = _publish(
        run, s3_proxy, bucket, "--dry-run", "--cloudfront-distribution-id", "EDFDVBD6EXAMPLE"
    )
    assert result.exit_code == 0
    assert "create  a.example/t/a/.well-known/jwks.json  (new)" in result.output
    assert "dry run, would publish: 2 created" in result.output
    assert {r.method for r in s3_proxy.requests} <= {"GET", "HEAD"}
    assert _keys(moto_server, bucket) == []


def test_deletes_scoped_ordered_and_limited(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    s3 = _s3(moto_server)
    _render(run, tmp_path, ["a", "b", "c"])
    assert _publish(run, s3_proxy, bucket, "--prefix", "site/").exit_code == 0
    foreign = [
        "site/b.example/t/b/.well-known/notes.txt",
        "site/index.html",
        "other/c.example/x.json",
    ]
    for key in foreign:
        s3.put_object(Bucket=bucket, Key=key, Body=b"not ours")
    _render(run, tmp_path, ["a"])
    # Without --delete: kept, and said so.
    kept = _publish(run, s3_proxy, bucket, "--prefix", "site/")
    assert kept.exit_code == 0
    assert (
        "keep    site/b.example/t/b/.well-known/jwks.json  (no longer rendered; --delete removes it)"
        in kept.output
    )
    # Over the limit: refused whole, exit 3, nothing changed.
    s3_proxy.clear()
    refused = _publish(run, s3_proxy, bucket, "--prefix", "site/", "--delete", "--max-deletes", "3")
    assert refused.exit_code == 3
    assert "refusing to delete 4 objects (--max-deletes 3)" in refused.output
    assert {r.method for r in s3_proxy.requests} <= {"GET", "HEAD"}
    # Within the limit: only our four files go, discovery documents before their JWKS.
    s3_proxy.clear()
    done = _publish(run, s3_proxy, bucket, "--prefix", "site/", "--delete")
    assert done.exit_code == 0, done.output
    deleted = [r.key for r in s3_proxy.requests if r.method == "DELETE" and ".well-known/" in r.key]
    assert sorted(deleted) == sorted(
        f"site/{h}.example/t/{h}/.well-known/{f}"
        for h in "bc"
        for f in ("jwks.json", "openid-configuration")
    )
    assert all(k.endswith("openid-configuration") for k in deleted[:2])
    remaining = _keys(moto_server, bucket)
    assert all(key in remaining for key in foreign)


def test_foreign_object_at_our_key_is_replaced_not_deleted(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _s3(moto_server).put_object(
        Bucket=bucket, Key="a.example/t/a/.well-known/jwks.json", Body=b"{}"
    )
    _render(run, tmp_path, ["a"])
    result = _publish(run, s3_proxy, bucket, "--delete")
    assert (
        "update  a.example/t/a/.well-known/jwks.json  (not written by wellknown-build)"
        in result.output
    )


def _fail(method: str, match: str, status: int = 503, times: int | None = None) -> Any:
    count = {"n": 0}

    def fault(m: str, key: str, headers: Message) -> tuple[int, str] | None:
        if m == method and match in key and (times is None or count["n"] < times):
            count["n"] += 1
            return status, "ServiceUnavailable" if status == 503 else "InternalError"
        return None

    return fault


def test_transient_errors_are_retried(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a"])
    s3_proxy.faults.append(_fail("PUT", "jwks.json", 503, times=2))
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    attempts = [
        r.status for r in s3_proxy.requests if r.method == "PUT" and r.key.endswith("jwks.json")
    ]
    assert attempts == [503, 503, 200]


def test_persistent_failure_stops_before_deletes_and_cdn_then_converges(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    distribution = _distribution(moto_server)
    _render(run, tmp_path, ["a", "b", "gone"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    for name in ("a", "b"):
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["ed25519"]()))
    _render(run, tmp_path, ["a", "b"])
    s3_proxy.clear()
    s3_proxy.faults.append(_fail("PUT", "b.example/t/b/.well-known/openid-configuration", 500))
    args = ("--delete", "--cloudfront-distribution-id", distribution)
    failed = _publish(run, s3_proxy, bucket, *args)
    assert failed.exit_code == 1
    assert "1 of 2 discovery document uploads failed" in failed.output
    assert (
        "uploading b.example/t/b/.well-known/openid-configuration: InternalError (HTTP 500)"
        in failed.output
    )
    assert [r.key for r in s3_proxy.requests if r.method == "DELETE"] == [
        ".wellknown-build/lease.json"  # released
    ]
    assert _invalidations(moto_server, distribution) == []
    # botocore standard retries: the first attempt and 5 retries.
    assert Counter(r.status for r in s3_proxy.requests if "b/.well-known/openid" in r.key)[500] == 6
    s3_proxy.clear()
    again = _publish(run, s3_proxy, bucket, *args)
    assert again.exit_code == 0, again.output
    assert _documents(s3_proxy, bucket) == ["b.example/t/b/.well-known/openid-configuration"]
    assert (
        len([r for r in s3_proxy.requests if r.method == "DELETE" and ".well-known/" in r.key]) == 2
    )
    (invalidation,) = _invalidations(moto_server, distribution)
    assert invalidation == [
        "/t/b/.well-known/openid-configuration",
        "/t/gone/.well-known/jwks.json",
        "/t/gone/.well-known/openid-configuration",
    ]


def test_failed_jwks_upload_sends_no_discovery_document(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a", "b"])
    s3_proxy.faults.append(_fail("PUT", "a.example/t/a/.well-known/jwks.json", 503))
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 1
    assert not [k for k in _documents(s3_proxy, bucket) if k.endswith("openid-configuration")]


def _distribution(moto_server: str) -> str:
    cloudfront = boto3.client("cloudfront", endpoint_url=moto_server)
    response = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": f"wkb-test-{uuid.uuid4()}",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "s3",
                        "DomainName": "b.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "https-only"},
            "Comment": "",
            "Enabled": True,
        }
    )
    return str(response["Distribution"]["Id"])


def _invalidations(moto_server: str, distribution: str) -> list[list[str]]:
    cloudfront = boto3.client("cloudfront", endpoint_url=moto_server)
    items = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"].get(
        "Items", []
    )
    return [
        sorted(
            cloudfront.get_invalidation(DistributionId=distribution, Id=i["Id"])["Invalidation"][
                "InvalidationBatch"
            ]["Paths"]["Items"]
        )
        for i in items
    ]


def test_cloudfront_invalidates_exactly_what_changed(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    distribution = _distribution(moto_server)
    _render(run, tmp_path, ["a", "b"])
    args = ("--cloudfront-distribution-id", distribution)
    assert _publish(run, s3_proxy, bucket, *args).exit_code == 0
    assert len(_invalidations(moto_server, distribution)) == 1
    assert _publish(run, s3_proxy, bucket, *args).exit_code == 0
    assert len(_invalidations(moto_server, distribution)) == 1  # nothing changed, no call
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, ["a", "b"])
    result = _publish(run, s3_proxy, bucket, *args)
    assert "CloudFront invalidation" in result.output
    assert ["/t/a/.well-known/jwks.json"] in _invalidations(moto_server, distribution)


def test_invalidation_collapses_to_wildcards() -> None:
    from wellknown_build.publish.cdn import batch, url_paths

    keys = [f"p/h{i}.example/t/{i}/.well-known/jwks.json" for i in range(101)]
    paths = url_paths(keys, "p/")
    assert batch(paths[:2]) == ["/t/0/.well-known/jwks.json", "/t/1/.well-known/jwks.json"]
    assert batch(paths) == ["/t/*"]  # one wildcard per first segment
    many = [f"/s{i}/.well-known/jwks.json" for i in range(101)]
    assert batch(many) == ["/*"]  # past 15 wildcards (CloudFront's in-progress limit)
    assert batch([*paths, "/jwks"]) == ["/t/*", "/jwks"]  # a file at the top stays a path


def test_acl_not_supported_is_explained(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    def no_acls(method: str, key: str, headers: Message) -> tuple[int, str] | None:
        return (400, "AccessControlListNotSupported") if headers.get("x-amz-acl") else None

    s3_proxy.faults.append(no_acls)
    _render(run, tmp_path, ["a"])
    result = _publish(run, s3_proxy, bucket, "--acl", "public-read")
    assert result.exit_code == 1
    assert "ACLs disabled" in result.output and "bucket policy" in result.output
    assert _publish(run, s3_proxy, bucket).exit_code == 0  # no ACL sent by default


def test_json_output(run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy) -> None:
    _render(run, tmp_path, ["a"])
    result = _publish(run, s3_proxy, bucket, "--json")
    data = json.loads(result.output)
    assert data["counts"]["create"] == 2 and data["puts"] == 3  # and the state index
    assert data["kids"]["a.example/t/a/.well-known/jwks.json"]["removed"] == []


def test_refusals(run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy) -> None:
    assert _publish(run, s3_proxy, bucket).exit_code == 1  # no manifest
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket, "--prefix", "/abs").exit_code == 2
    assert _publish(run, s3_proxy, bucket, "--prefix", "noslash").exit_code == 2
    (tmp_path / "out/a.example/t/a/.well-known/jwks.json").write_text("{}\n")
    edited = _publish(run, s3_proxy, bucket)
    assert edited.exit_code == 1 and "differs from the manifest" in edited.output
    write(
        tmp_path / "out" / ".wellknown-build.json",
        '{"generator": "wellknown-build", "format": 1, "files": []}',
    )
    assert _publish(run, s3_proxy, bucket).exit_code == 3
    missing = _publish(run, s3_proxy, "no-such-bucket-wkb")
    assert missing.exit_code in (1, 3)


def test_missing_bucket(run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy) -> None:
    _render(run, tmp_path, ["a"])
    result = _publish(run, s3_proxy, "no-such-bucket-wkb")
    assert result.exit_code == 1
    assert "NoSuchBucket" in result.output and "does not exist" in result.output


def test_slow_attempt_times_out_and_is_retried(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    import time

    attempts = {"n": 0}

    def slow_first_put(method: str, key: str, headers: Message) -> tuple[int, str] | None:
        if method == "PUT" and key.endswith("jwks.json"):
            attempts["n"] += 1
            if attempts["n"] == 1:
                time.sleep(3)  # then forwarded: the late write lands too, as on a real network
        return None

    _render(run, tmp_path, ["a"])
    s3_proxy.faults.append(slow_first_put)
    result = _publish(run, s3_proxy, bucket, "--timeout", "1")
    assert result.exit_code == 0, result.output
    assert "published: 2 created" in result.output
    assert attempts["n"] == 2  # the slow attempt, then the retry
