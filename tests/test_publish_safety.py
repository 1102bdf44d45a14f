"""publish beside other deployments and other publishes, against moto through the proxy:
ownership per prefix, drift in headers, CDN paths never lost, one publish at a time, broken
objects repaired, the manifest checked, and rotations without a GET per object."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from wellknown_build.errors import WellknownError
from wellknown_build.manifest import MANIFEST_NAME
from wellknown_build.publish import run as publish_run
from wellknown_build.publish.lease import LeaseHeld
from wellknown_build.publish.run import Options, publish
from wellknown_build.publish.state import Record

from .helpers import KEY_MAKERS, Run, public_pem, write
from .s3server import Proxy
from .test_publish import _distribution, _invalidations, _keys, _publish, _render, _s3

LEASE = ".wellknown-build/lease.json"
STATE = ".wellknown-build/state.json"


def test_a_deployment_never_touches_one_nested_below_it(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["s1", "s2"])
    assert _publish(run, s3_proxy, bucket, "--prefix", "staging/").exit_code == 0
    staging = _keys(moto_server, bucket)
    _render(run, tmp_path, ["p1"])
    result = _publish(run, s3_proxy, bucket, "--delete", "--max-deletes", "100")
    assert result.exit_code == 0, result.output
    assert "delete " not in result.output
    assert set(staging) <= set(_keys(moto_server, bucket))  # objects and state index kept


def test_a_tree_writing_into_a_nested_deployment_is_refused(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket, "--prefix", "a.example/").exit_code == 0
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 1
    assert "inside the deployment at a.example/" in result.output


def test_a_tampered_index_cannot_get_foreign_objects_deleted(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    s3 = _s3(moto_server)
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    s3.put_object(Bucket=bucket, Key="precious/data.json", Body=b"not ours")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="precious/")["Contents"][0]
    state = json.loads(s3.get_object(Bucket=bucket, Key=STATE)["Body"].read())
    state["objects"]["precious/data.json"] = Record.of(  # an entry that matches the listing
        "f" * 64, "0" * 64, listed["ETag"], listed["LastModified"].isoformat()
    ).packed()
    s3.put_object(Bucket=bucket, Key=STATE, Body=json.dumps(state).encode())
    result = _publish(run, s3_proxy, bucket, "--delete")
    assert result.exit_code == 0, result.output
    assert "not deleting precious/data.json" in result.output  # the index was believed...
    assert "precious/data.json" in _keys(moto_server, bucket)  # ...but not the object's marks


def test_header_drift_by_copy_object_is_repaired(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    s3 = _s3(moto_server)
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    key = "a.example/t/a/.well-known/openid-configuration"
    time.sleep(1.1)  # LastModified has a resolution of one second
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType="binary/octet-stream",
    )
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert f"update  {key}  (not written by wellknown-build)" in result.output
    assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "application/json"
    s3_proxy.clear()
    assert "0 updated, 2 unchanged" in _publish(run, s3_proxy, bucket).output  # converged
    assert [r for r in s3_proxy.requests if r.method == "PUT"] == []


def _fail_invalidations(method: str, key: str, headers: Message) -> tuple[int, str] | None:
    return (503, "ServiceUnavailable") if method == "POST" and "invalidation" in key else None


def test_cdn_paths_of_a_failed_invalidation_are_sent_by_the_next_run(
    run: Run,
    tmp_path: Path,
    bucket: str,
    s3_proxy: Proxy,
    moto_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    distribution = _distribution(moto_server)
    args = ("--cloudfront-distribution-id", distribution)
    _render(run, tmp_path, ["a", "b"])
    assert _publish(run, s3_proxy, bucket, *args).exit_code == 0
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, ["a", "b"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFRONT", s3_proxy.url)
    s3_proxy.faults.append(_fail_invalidations)
    failed = _publish(run, s3_proxy, bucket, *args)
    assert failed.exit_code == 1
    assert "update  a.example/t/a/.well-known/jwks.json" in failed.output  # plan printed
    assert "published: 0 created, 1 updated" in failed.output  # summary printed
    assert "1 paths still to invalidate" in failed.output
    assert "sent by the next publish" in failed.output
    s3_proxy.faults.clear()
    again = _publish(run, s3_proxy, bucket, *args)
    assert again.exit_code == 0, again.output
    assert "0 updated" in again.output
    assert ["/t/a/.well-known/jwks.json"] in _invalidations(moto_server, distribution)
    state = json.loads(_s3(moto_server).get_object(Bucket=bucket, Key=STATE)["Body"].read())
    assert state["pending_invalidations"] == {}


def _options(out: Path, bucket: str, proxy: Proxy, **kw: Any) -> Options:
    return Options(bucket=bucket, out=out, endpoint_url=proxy.url, **kw)


def test_a_second_publish_is_refused_while_one_runs(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, ["a", "b", "c"])
    first_tree = tmp_path / "first"
    (tmp_path / "out").rename(first_tree)
    for name in "abc":
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, ["a", "b", "c"])

    # The first publish's uploads wait until the second has been refused: with a fixed
    # delay, a loaded machine let the first finish (and drop its lease) before the second
    # read whose lease it was.
    refused = threading.Event()

    def held(method: str, key: str, headers: Message) -> None:
        if method == "PUT" and ".well-known/" in key:
            refused.wait(30)
        return None

    s3_proxy.faults.append(held)
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(first=publish(_options(first_tree, bucket, s3_proxy)))
    )
    worker.start()
    s3 = _s3(moto_server)
    try:
        for _ in range(500):
            if LEASE in _keys(moto_server, bucket):
                break
            time.sleep(0.02)
        with pytest.raises(LeaseHeld, match=r"another publish is running \(.*pid"):
            publish(_options(tmp_path / "out", bucket, s3_proxy))
    finally:
        refused.set()
    worker.join()
    s3_proxy.faults.clear()
    assert outcome["first"].error is None
    assert LEASE not in _keys(moto_server, bucket)  # released
    # every instance's JWKS and discovery document come from the same (first) tree
    for name in "abc":
        for document in ("jwks.json", "openid-configuration"):
            key = f"{name}.example/t/{name}/.well-known/{document}"
            assert (
                s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                == (first_tree / key).read_bytes()
            )


def test_a_dead_publishs_lease_is_broken_only_on_request(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    s3 = _s3(moto_server)
    s3.put_object(
        Bucket=bucket,
        Key=LEASE,
        Body=json.dumps(
            {"holder": "ci@runner-7 pid 42", "expires": "2020-01-01T00:00:00Z"}
        ).encode(),
    )
    _render(run, tmp_path, ["a"])
    refused = _publish(run, s3_proxy, bucket)
    assert refused.exit_code == 1
    assert "another publish is running (ci@runner-7 pid 42" in refused.output
    assert "it has expired" in refused.output and "--break-lease" in refused.output
    assert [k for k in _keys(moto_server, bucket) if ".well-known/" in k] == []
    broken = _publish(run, s3_proxy, bucket, "--break-lease")
    assert broken.exit_code == 0, broken.output
    assert LEASE not in _keys(moto_server, bucket)


@pytest.mark.parametrize("body", [b'{"keys": 5}', b"not json", b"[1, 2]", b'{"keys": [5]}'])
def test_a_broken_jwks_object_is_overwritten(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, body: bytes
) -> None:
    s3 = _s3(moto_server)
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    key = "a.example/t/a/.well-known/jwks.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    s3.delete_object(Bucket=bucket, Key=STATE)  # and no index that knows better
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    local = (tmp_path / "out" / key).read_bytes()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == local


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd", "a/../../b"])
def test_publish_refuses_a_manifest_path_render_could_not_write(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, path: str
) -> None:
    _render(run, tmp_path, ["a"])
    manifest_path = tmp_path / "out" / MANIFEST_NAME
    data = json.loads(manifest_path.read_text())
    data["files"][0]["path"] = path
    manifest_path.write_text(json.dumps(data))
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 1
    assert "manifest is damaged" in result.output and "is not one render writes" in result.output
    assert [r for r in s3_proxy.requests if r.method == "PUT"] == []


def test_a_symlink_out_of_the_tree_is_refused(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a"])
    target = tmp_path / "out" / "a.example" / "t" / "a" / ".well-known" / "jwks.json"
    secret = write(tmp_path / "secret.json", target.read_text())
    target.unlink()
    target.symlink_to(secret)
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 1
    assert "not a file inside" in result.output


def test_a_rotation_reads_no_object(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LastModified is recorded at once here (in real use: once it is 2 s old)
    monkeypatch.setattr(publish_run, "SETTLE_SECONDS", 0)
    names = [f"t{i}" for i in range(12)]
    _render(run, tmp_path, names)
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    for name in names:
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
    _render(run, tmp_path, names)
    s3_proxy.clear()
    dry = _publish(run, s3_proxy, bucket, "--dry-run")
    assert dry.output.count("kids    ") == 12  # the kid report, from the state index
    gets = [r.key for r in s3_proxy.requests if r.method in ("GET", "HEAD") and r.key]
    assert gets == [STATE]
    s3_proxy.clear()
    done = _publish(run, s3_proxy, bucket)
    assert done.exit_code == 0, done.output
    methods = Counter(
        r.method for r in s3_proxy.requests if ".well-known/" in r.key and r.method != "PUT"
    )
    assert methods == Counter()  # no GET, no HEAD of a document
    assert (
        len([r for r in s3_proxy.requests if r.method == "PUT" and ".well-known/" in r.key]) == 12
    )


def test_no_tree_is_a_clean_error_before_any_request(
    tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    with pytest.raises(WellknownError, match="no manifest"):
        publish(_options(tmp_path / "nothing", bucket, s3_proxy))
    assert s3_proxy.requests == []


def test_boto3_is_not_asked_for_checksums_on_custom_endpoints(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    """boto3 >= 1.36 sends CRC checksums by default; S3-compatible stores reject them."""
    from wellknown_build.publish.s3 import Bucket

    config: Any = Bucket(bucket, endpoint_url=s3_proxy.url).client.meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    aws: Any = Bucket(bucket).client.meta.config
    assert aws.request_checksum_calculation == "when_supported"


def test_an_unknown_aws_profile_is_an_error_not_a_traceback(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    _render(run, tmp_path, ["a"])
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "no-such-profile" in result.output


@pytest.mark.parametrize("keep_metadata", [True, False])
def test_a_copy_in_the_same_second_or_keeping_our_marks_is_repaired(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str, keep_metadata: bool
) -> None:
    """copy_object right after a publish keeps ETag and (to the second) LastModified, and a
    tool may copy our metadata along: the real headers are what count."""
    s3 = _s3(moto_server)
    _render(run, tmp_path, ["a"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0
    key = "a.example/t/a/.well-known/openid-configuration"
    metadata = s3.head_object(Bucket=bucket, Key=key)["Metadata"] if keep_metadata else {}
    s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType="text/html",
        Metadata=metadata,
    )
    result = _publish(run, s3_proxy, bucket)
    assert result.exit_code == 0, result.output
    assert f"update  {key}" in result.output
    assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "application/json"


def test_a_phase_hands_the_pool_a_bounded_number_of_actions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A phase of many actions keeps at most _IN_FLIGHT of them on the pool at once (a Future
    each, 1.7 KB: a million at once was 1.7 GB), collects every result and every failure,
    and lets an unexpected error through to the caller."""
    from concurrent.futures import ThreadPoolExecutor

    from wellknown_build.publish.plan import Action

    monkeypatch.setattr(publish_run, "_IN_FLIGHT", 4)
    lock = threading.Lock()
    handed, most = 0, 0
    pool = ThreadPoolExecutor(3)
    submit = pool.submit

    def counted(fn: Any, *args: Any) -> Any:
        nonlocal handed, most
        with lock:
            handed += 1
            most = max(most, handed)
        return submit(fn, *args)

    def work(action: Action) -> str:
        nonlocal handed
        time.sleep(0.001)
        with lock:
            handed -= 1  # (done before its result is queued: a result read is never counted)
        if action.key.endswith("7"):
            raise WellknownError(f"{action.key} failed")
        return action.key.upper()

    monkeypatch.setattr(pool, "submit", counted)
    actions = [Action("create", f"k{i}", "new") for i in range(100)]
    with pool:
        done, failures = publish_run._run_phase("uploads", actions, work, pool)
    assert most <= 4
    assert sorted(v for _, v in done) == sorted(a.key.upper() for a in actions if a.key[-1] != "7")
    assert all(a.key.upper() == v for a, v in done)
    assert sorted(failures) == sorted(f"k{i} failed" for i in range(100) if i % 10 == 7)

    def broken(action: Action) -> str:
        raise RuntimeError("a bug")

    with ThreadPoolExecutor(2) as other, pytest.raises(RuntimeError, match="a bug"):
        publish_run._run_phase("uploads", actions, broken, other)


def test_a_phase_whose_pool_is_shut_down_raises_instead_of_waiting() -> None:
    """Actions that never run (the pool shut down with its queue cancelled) end the phase
    with an error, as future.result() did, not a wait for results that never come."""
    from concurrent.futures import CancelledError, ThreadPoolExecutor

    from wellknown_build.publish.plan import Action

    pool = ThreadPoolExecutor(1)
    outcome: list[BaseException | None] = []

    def work(action: Action) -> str:
        time.sleep(0.02)
        return action.key

    def phase() -> None:
        try:
            publish_run._run_phase(
                "uploads", [Action("create", f"k{i}", "new") for i in range(50)], work, pool
            )
            outcome.append(None)
        except BaseException as e:  # what ended it is the point
            outcome.append(e)

    runner = threading.Thread(target=phase, daemon=True)  # (a hang must not hold pytest)
    runner.start()
    time.sleep(0.1)
    pool.shutdown(wait=False, cancel_futures=True)
    runner.join(10)
    assert not runner.is_alive(), "the phase waited for actions that were cancelled"
    assert isinstance(outcome[0], (CancelledError, RuntimeError))
