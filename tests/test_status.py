"""The rotation guard that knows what is live: publish records each kid's history in the state
index (at a controlled clock, `publish --now`), `status` reads it back from the bucket alone,
and `validate --bucket` / `render --bucket` warn about an active key published too recently.
Real publishes against moto's server; every instant fixed."""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path
from typing import Any

import boto3
import pytest

from wellknown_build.publish import history
from wellknown_build.publish.state import STATE_NAME

from .helpers import KEY_MAKERS, Run, public_pem, write, write_config
from .s3server import Proxy

T0 = "2030-01-01T00:00:00Z"  # instance a's first publish
T1 = "2030-01-02T00:00:00Z"  # k2 published as next
BEFORE_SAFE = "2030-01-02T00:14:59Z"  # T1 + cache_ttl - 1 s
SAFE = "2030-01-02T00:15:00Z"  # T1 + cache_ttl

HEAD = """
defaults: {cache_ttl: 15m, token_lifetime: 1h}
instances:
"""


def _config(tmp_path: Path, *instances: str) -> None:
    for kid in ("k1", "k2", "k3", "b1"):
        if not (tmp_path / "keys" / f"{kid}.pem").exists():
            write(tmp_path / "keys" / f"{kid}.pem", public_pem(KEY_MAKERS["p256"]()))
    write_config(tmp_path, HEAD + "\n".join(instances) + "\n")


def _instance(name: str, *keys: str) -> str:
    listed = ", ".join(keys)
    return f"  - {{id: {name}, issuer: 'https://{name}.example/t/{name}', keys: [{listed}]}}"


def _key(kid: str, status: str, extra: str = "") -> str:
    return f"{{path: keys/{kid}.pem, kid: {kid}, status: {status}{extra}}}"


def _connection(proxy: Proxy, bucket: str) -> tuple[str, ...]:
    return ("--bucket", bucket, "--endpoint-url", proxy.url)


def _render_publish(run: Run, proxy: Proxy, bucket: str, now: str) -> None:
    rendered = run("render", "instances.yaml", "--now", now)
    assert rendered.exit_code == 0, rendered.output
    published = run("publish", *_connection(proxy, bucket), "--now", now)
    assert published.exit_code == 0, published.output


def _status(run: Run, proxy: Proxy, bucket: str, now: str, *args: str) -> Any:
    result = run("status", *_connection(proxy, bucket), "--now", now, *args)
    assert result.exit_code == 0, result.output
    return result


def _validate(run: Run, proxy: Proxy, bucket: str, now: str, *args: str) -> Any:
    return run("validate", "instances.yaml", *_connection(proxy, bucket), "--now", now, *args)


@pytest.fixture
def rotated(run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy) -> str:
    """Instance a: k1 active since T0 (its first publish); k2 published as next at T1."""
    _config(tmp_path, _instance("a", _key("k1", "active")))
    _render_publish(run, s3_proxy, bucket, T0)
    _config(tmp_path, _instance("a", _key("k1", "active"), _key("k2", "next")))
    _render_publish(run, s3_proxy, bucket, T1)
    return bucket


def _promote(tmp_path: Path, extra: str = "") -> None:
    _config(tmp_path, _instance("a", _key("k2", "active", extra), _key("k1", "retired")))


GUARD = (
    "active key k2 signs from {signs} but was first published at 2030-01-02T00:00:00Z: "
    "relying parties holding a cached JWKS would reject its tokens until "
    "2030-01-02T00:15:00Z (cache_ttl 15m); keep it status: next until then [instance a]"
)


def test_promoted_one_second_too_early_is_warned_and_fails_strict(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _promote(tmp_path)
    early = _validate(run, s3_proxy, rotated, BEFORE_SAFE)
    assert early.exit_code == 0, early.output
    assert f"instances.yaml:4: instances[0].keys[0].status: {GUARD.format(signs=BEFORE_SAFE)}" in (
        early.output
    )
    strict = _validate(run, s3_proxy, rotated, BEFORE_SAFE, "--strict")
    assert strict.exit_code == 1
    assert GUARD.format(signs=BEFORE_SAFE) in strict.output
    # render checks the same, and under --strict writes nothing
    rendered = run(
        "render", "instances.yaml", *_connection(s3_proxy, rotated), "--now", BEFORE_SAFE
    )
    assert GUARD.format(signs=BEFORE_SAFE) in rendered.output
    # without --bucket nothing is known of the bucket: no warning
    assert "first published" not in run("validate", "instances.yaml", "--now", BEFORE_SAFE).output


def test_promoted_after_cache_ttl_is_clean(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _promote(tmp_path)
    on_time = _validate(run, s3_proxy, rotated, SAFE, "--strict")
    assert on_time.exit_code == 0, on_time.output
    assert "warning" not in on_time.output.lower()
    assert on_time.output == "instances.yaml: 1 instance(s), 2 key(s): ok\n"


def test_a_not_before_inside_cache_ttl_is_warned(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _promote(tmp_path, ", not_before: '2030-01-02T00:10:00Z'")
    result = _validate(run, s3_proxy, rotated, "2030-01-02T00:12:00Z", "--strict")
    assert result.exit_code == 1
    assert GUARD.format(signs="2030-01-02T00:10:00Z") in result.output
    # once cache_ttl has passed since k2 was published, caches have it: nothing to warn about
    assert _validate(run, s3_proxy, rotated, SAFE, "--strict").exit_code == 0


def test_a_promotion_published_too_early_is_warned_until_cache_ttl_has_passed(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _promote(tmp_path)
    _render_publish(run, s3_proxy, rotated, "2030-01-02T00:05:00Z")  # the bucket says: active
    warned = _validate(run, s3_proxy, rotated, "2030-01-02T00:10:00Z", "--strict")
    assert warned.exit_code == 1
    assert GUARD.format(signs="2030-01-02T00:05:00Z") in warned.output
    assert _validate(run, s3_proxy, rotated, SAFE, "--strict").exit_code == 0


def test_an_active_key_never_published_is_warned_but_a_new_instance_is_not(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _config(
        tmp_path,
        _instance("a", _key("k1", "active"), _key("k2", "next"), _key("k3", "active")),
        _instance("b", _key("b1", "active")),  # never published: its first key is new
    )
    result = _validate(run, s3_proxy, rotated, "2030-02-01T00:00:00Z", "--strict")
    assert result.exit_code == 1
    assert (
        "instances[0].keys[2].status: active key k3 has never been published in this "
        "instance's JWKS: publish it as status: next and wait cache_ttl (15m) before it signs "
        "[instance a]"
    ) in result.output
    assert "b1" not in result.output


def test_status_text(run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy) -> None:
    result = _status(run, s3_proxy, rotated, "2030-01-02T00:10:00Z")
    assert result.output == (
        f"s3://{rotated}/: 1 JWKS, 2 keys, at 2030-01-02T00:10:00Z\n"
        "a: a.example/t/a/.well-known/jwks.json (cache_ttl 15m, token_lifetime 1h)\n"
        "  active   k1  published 2030-01-01T00:00:00Z (new); sign: safe since "
        "2030-01-01T00:00:00Z; drop: not while active\n"
        "  next     k2  published 2030-01-02T00:00:00Z (added); sign: safe from "
        "2030-01-02T00:15:00Z (in 5m); drop: any time (it never signed)\n"
    )


def test_status_after_the_promotion(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _promote(tmp_path, ", not_before: '2030-01-02T00:15:00Z'")
    _config(
        tmp_path,
        _instance(
            "a",
            _key("k2", "active", ", not_before: '2030-01-02T00:15:00Z'"),
            _key("k1", "retired", ", not_after: '2030-01-02T01:30:00Z'"),
        ),
    )
    _render_publish(run, s3_proxy, rotated, "2030-01-02T00:20:00Z")
    text = _status(run, s3_proxy, rotated, "2030-01-02T01:00:00Z").output
    assert text.splitlines()[2:] == [
        "  active   k2  published 2030-01-02T00:00:00Z (added); sign: safe since "
        "2030-01-02T00:15:00Z; drop: not while active",
        # active until the publish that retired it (00:20) + 1h + 15m
        "  retired  k1  published 2030-01-01T00:00:00Z (new); sign: -; drop: safe from "
        "2030-01-02T01:35:00Z (in 35m); leaves the JWKS at 2030-01-02T01:30:00Z",
    ]
    data = json.loads(_status(run, s3_proxy, rotated, "2030-01-02T01:00:00Z", "--json").output)
    assert data == {
        "bucket": rotated,
        "prefix": "",
        "site": None,
        "now": "2030-01-02T01:00:00Z",
        "instances": [
            {
                "instance": "a",
                "jwks": "a.example/t/a/.well-known/jwks.json",
                "cache_ttl": 900,
                "token_lifetime": 3600,
                "keys": [
                    {
                        "kid": "k2",
                        "status": "active",
                        "origin": "added",
                        "first_published": "2030-01-02T00:00:00Z",
                        "status_since": "2030-01-02T00:20:00Z",
                        "active_from": "2030-01-02T00:20:00Z",
                        "active_until": None,
                        "not_after": None,
                        "sign_from": "2030-01-02T00:15:00Z",
                        "can_sign": True,
                        "drop_from": None,
                        "can_drop": False,
                    },
                    {
                        "kid": "k1",
                        "status": "retired",
                        "origin": "new",
                        "first_published": "2030-01-01T00:00:00Z",
                        "status_since": "2030-01-02T00:20:00Z",
                        "active_from": "2030-01-01T00:00:00Z",
                        "active_until": "2030-01-02T00:20:00Z",
                        "not_after": "2030-01-02T01:30:00Z",
                        "sign_from": None,
                        "can_sign": False,
                        "drop_from": "2030-01-02T01:35:00Z",
                        "can_drop": False,
                    },
                ],
            }
        ],
    }


def test_status_json_is_exact_bytes(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    output = _status(run, s3_proxy, rotated, SAFE, "--json", "--instance", "a").output
    assert output.startswith('{\n  "bucket": "')
    assert output.endswith('"can_drop": true\n        }\n      ]\n    }\n  ]\n}\n')
    assert json.loads(output)["instances"][0]["keys"][1]["can_sign"] is True
    none = _status(run, s3_proxy, rotated, SAFE, "--json", "--instance", "zz").output
    assert json.loads(none)["instances"] == []


def test_a_kid_removed_and_added_again_starts_again(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _config(tmp_path, _instance("a", _key("k1", "active")))
    _render_publish(run, s3_proxy, rotated, "2030-01-03T00:00:00Z")
    _config(tmp_path, _instance("a", _key("k1", "active"), _key("k2", "next")))
    _render_publish(run, s3_proxy, rotated, "2030-01-04T00:00:00Z")
    text = _status(run, s3_proxy, rotated, "2030-01-04T00:00:00Z").output
    assert "next     k2  published 2030-01-04T00:00:00Z (added)" in text
    _promote(tmp_path)
    warned = _validate(run, s3_proxy, rotated, "2030-01-04T00:10:00Z", "--strict")
    assert warned.exit_code == 1 and "first published at 2030-01-04T00:00:00Z" in warned.output


def test_a_publish_that_changes_nothing_records_nothing(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    s3_proxy.clear()
    _render_publish(run, s3_proxy, rotated, "2030-01-05T00:00:00Z")
    assert s3_proxy.puts(rotated) == []
    assert "(added)" in _status(run, s3_proxy, rotated, T1).output


def test_keys_live_before_the_index_are_found_not_new(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy, moto_server: str
) -> None:
    boto3.client("s3", endpoint_url=moto_server).delete_object(Bucket=rotated, Key=STATE_NAME)
    _render_publish(run, s3_proxy, rotated, "2030-01-05T00:00:00Z")  # rebuilds the index
    text = _status(run, s3_proxy, rotated, "2030-01-05T00:00:00Z").output
    assert "k1  published at or before 2030-01-05T00:00:00Z (found); sign: safe from " in text
    assert "k2  published at or before 2030-01-05T00:00:00Z (found)" in text
    # what was live before the index cannot be judged: no warning for it
    _promote(tmp_path)
    assert _validate(run, s3_proxy, rotated, "2030-01-05T00:01:00Z", "--strict").exit_code == 0


def test_a_failed_jwks_upload_records_nothing_for_it(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy
) -> None:
    _config(tmp_path, _instance("a", _key("k1", "active"), _key("k2", "next"), _key("k3", "next")))
    assert run("render", "instances.yaml", "--now", "2030-01-03T00:00:00Z").exit_code == 0

    def fail(method: str, key: str, headers: Message) -> tuple[int, str] | None:
        return (403, "AccessDenied") if method == "PUT" and key.endswith("jwks.json") else None

    s3_proxy.faults.append(fail)
    failed = run("publish", *_connection(s3_proxy, rotated), "--now", "2030-01-03T00:00:00Z")
    assert failed.exit_code == 1
    s3_proxy.faults.clear()
    assert "k3" not in _status(run, s3_proxy, rotated, "2030-01-03T00:00:00Z").output
    published = run("publish", *_connection(s3_proxy, rotated), "--now", "2030-01-03T01:00:00Z")
    assert published.exit_code == 0, published.output
    text = _status(run, s3_proxy, rotated, "2030-01-03T01:00:00Z").output
    assert "next     k3  published 2030-01-03T01:00:00Z (added)" in text


def test_status_of_a_bucket_without_history(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    result = _status(run, s3_proxy, bucket, T0)
    assert result.output == (
        f"s3://{bucket}/: no key history in the state index yet (publish records it)\n"
    )


def test_status_of_a_missing_bucket_is_one_line(run: Run, aws_env: None, s3_proxy: Proxy) -> None:
    result = run("status", "--bucket", "no-such-bucket-here", "--endpoint-url", s3_proxy.url)
    assert result.exit_code == 1
    assert result.output.startswith("error: reading .wellknown-build/state.json: NoSuchBucket")
    assert len(result.output.splitlines()) == 1


def test_validate_bucket_options_are_usage_errors(run: Run, tmp_path: Path) -> None:
    _config(tmp_path, _instance("a", _key("k1", "active")))
    bad = run("validate", "instances.yaml", "--bucket", "b", "--prefix", "/x")
    assert bad.exit_code == 2
    assert "must not start with '/'" in bad.output


def test_publish_now_is_hidden(run: Run) -> None:
    assert "--now" not in run("publish", "--help").output
    assert "--bucket" in run("validate", "--help").output


def test_a_damaged_history_record_is_ignored(
    run: Run, tmp_path: Path, rotated: str, s3_proxy: Proxy, moto_server: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server)
    state = json.loads(s3.get_object(Bucket=rotated, Key=STATE_NAME)["Body"].read())
    key = "a.example/t/a/.well-known/jwks.json"
    assert state["objects"][key][77:].startswith("900 3600 a k1 a k2 n|")
    state["objects"][key] = state["objects"][key].replace(" k1 a ", " k1 x ")
    s3.put_object(Bucket=rotated, Key=STATE_NAME, Body=json.dumps(state).encode())
    assert "no key history" in _status(run, s3_proxy, rotated, T1).output
    # the next publish writes it again, as found
    _render_publish(run, s3_proxy, rotated, "2030-01-06T00:00:00Z")
    assert "(found)" in _status(run, s3_proxy, rotated, T1).output


def test_history_round_trip_and_malformed_records() -> None:
    keys = history.Keys(
        "tenant a|b,c",
        900,
        3600,
        "5c2deda4249ea09c",
        (
            history.Kid(
                "k 1|x",
                "retired",
                1900000000,
                1800000000,
                "new",
                1800000500,
                1800000000,
                1800000500,
            ),
            history.Kid("k2", "next", None, 1800000100, "added", 1800000100),
        ),
    )
    stored = history.encode(keys)
    assert stored == (
        "900 3600 tenant%20a%7Cb%2Cc k%201%7Cx r1900000000 k2 n"
        "|5c2deda4249ea09c 1800000000,n,500,0,500 1800000100,a,0,,"
    )
    assert history.decode(stored) == keys
    head, dates = stored.split("|")
    for bad in (
        "",
        "x",
        head,
        f"{head}|",
        f"{head}|5c2deda4249ea09c",
        f"{head}|short 1,n,0,, 1,a,0,,",
        f"{head}|" + dates.replace(",n,", ",z,"),
        f"{head}|" + dates.replace("500,0", "-500,0"),
        f"{head}|" + dates.replace("1800000100", "99999999999999999"),
        f"{head}|" + dates.replace("1800000100", "253402300800"),  # past the year 9999
        head.replace(" n", " q") + "|" + dates,
        head.replace("900", "9.5") + "|" + dates,
        head.replace("tenant", "%FF") + "|" + dates,
        f"{head} k3 a|{dates}",
    ):
        assert history.decode(bad) is None, bad


def test_a_site_deployment_has_its_own_history(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    """publish --site keeps its state index in the site's folder; status, validate and render
    read that one with the same --site, and the whole-tree index knows nothing of it."""
    site = ("--site", "https://a.example/t/a")
    _config(tmp_path, _instance("a", _key("k1", "active")))
    assert run("render", "instances.yaml", "--now", T0).exit_code == 0
    first = run("publish", *_connection(s3_proxy, bucket), *site, "--now", T0)
    assert first.exit_code == 0, first.output
    _config(tmp_path, _instance("a", _key("k1", "active"), _key("k2", "next")))
    assert run("render", "instances.yaml", "--now", T1).exit_code == 0
    second = run("publish", *_connection(s3_proxy, bucket), *site, "--now", T1)
    assert second.exit_code == 0, second.output
    shown = _status(run, s3_proxy, bucket, SAFE, *site, "--json")
    found = json.loads(shown.output)
    assert found["site"] == "https://a.example/t/a"
    kids = [k["kid"] for j in found["instances"] for k in j["keys"]]
    assert sorted(kids) == ["k1", "k2"]
    whole = json.loads(_status(run, s3_proxy, bucket, SAFE, "--json").output)
    assert whole["instances"] == [] and whole["site"] is None
    _promote(tmp_path)
    early = _validate(run, s3_proxy, bucket, BEFORE_SAFE, *site)
    assert GUARD.format(signs=BEFORE_SAFE) in early.output
    assert _validate(run, s3_proxy, bucket, SAFE, *site, "--strict").exit_code == 0
