"""publish --site against moto's server through the recording proxy: issuers that are a
bucket's own URL (virtual-hosted and path-style, as amazon-eks-pod-identity-webhook's
self-hosted setup and kOps use) land at the bucket root and verify a token fetched through
moto's path-style URL; a CDN host per bucket; --prefix; deployments that never delete each
other's objects; the warning; bad values."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest

from wellknown_build.publish.site import bucket_url

from .helpers import Run, private_pem, rsa_key, write
from .s3server import Proxy
from .test_publish import _distribution, _invalidations, _keys, _publish, _s3

REGION_HOST = "s3.us-east-1.amazonaws.com"


def _render(run: Run, tmp_path: Path, instances: list[dict[str, Any]]) -> None:
    """Instances (JSON is YAML 1.2), each signed by the one RSA key with kube-apiserver's kid."""
    write(tmp_path / "keys" / "sa-signer.pem", private_pem(rsa_key()))
    for instance in instances:
        instance.setdefault("keys", [{"path": "keys/sa-signer.pem", "kid_method": "kubernetes"}])
    write(tmp_path / "instances.yaml", json.dumps({"instances": instances}))
    result = run("render", "instances.yaml")
    assert result.exit_code == 0, result.output


def _documents(moto_server: str, bucket: str) -> list[str]:
    return [k for k in _keys(moto_server, bucket) if not k.startswith(".wellknown-build/")]


# moto's server picks a backend by the signature's service and, for unsigned requests, by the
# path, where `/<id>/.well-known/openid-configuration` and `jwks.json` are its Cognito user
# pools'. This header names S3 for moto's dispatcher only (moto checks no signature); S3 itself
# serves the same anonymous GET to a relying party.
S3_ROUTE = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


def _fetch(url: str) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers=S3_ROUTE)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers["Content-Type"]


def _token(issuer: str, kid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "system:serviceaccount:default:app",
        "aud": "sts.amazonaws.com",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, rsa_key(), algorithm="RS256", headers={"kid": kid})


def _served_as_a_relying_party_sees_it(tmp_path: Path, issuer: str, origin: str, base: str) -> None:
    """Discovery, then its jwks_uri, then a token verified with PyJWKClient: every URL the
    issuer names, fetched from moto with `origin` (the bucket URL's) swapped for `base`, the
    same bucket in moto's path-style `http://127.0.0.1:PORT/<bucket>/<key>`."""
    discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    body, content_type = _fetch(discovery_url.replace(origin, base))
    assert content_type == "application/json"
    discovery = json.loads(body)
    assert discovery["issuer"] == issuer
    local = tmp_path / "out" / discovery["jwks_uri"].removeprefix("https://")
    jwks_body, jwks_type = _fetch(discovery["jwks_uri"].replace(origin, base))
    assert jwks_body == local.read_bytes() and jwks_type == "application/json"
    kid = json.loads(jwks_body)["keys"][0]["kid"]
    token = _token(issuer, kid)
    client = jwt.PyJWKClient(discovery["jwks_uri"].replace(origin, base), headers=S3_ROUTE)
    key = client.get_signing_key_from_jwt(token).key
    claims = jwt.decode(
        token, key, algorithms=["RS256"], audience="sts.amazonaws.com", issuer=issuer
    )
    assert claims["sub"] == "system:serviceaccount:default:app"


def _check_objects(moto_server: str, bucket: str, tmp_path: Path, keys: dict[str, str]) -> None:
    """Each object (key -> its path in out/) has the file's bytes, our headers and marks."""
    s3 = _s3(moto_server)
    for key, path in keys.items():
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "application/json", key
        assert head["CacheControl"] == "public, max-age=300", key
        assert head["Metadata"]["wellknown-build"] == "wellknown-build", key
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == (tmp_path / "out" / path).read_bytes(), key


def test_a_virtual_hosted_bucket_url_issuer_lands_at_the_bucket_root(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    host = f"{bucket}.{REGION_HOST}"
    issuer = f"https://{host}"
    _render(run, tmp_path, [{"id": "cluster", "issuer": issuer}])
    result = _publish(run, s3_proxy, bucket, "--site", issuer)
    assert result.exit_code == 0, result.output
    assert f"plan for s3://{bucket}/ (site {issuer}/):" in result.output
    assert "create  .well-known/jwks.json  (new)" in result.output
    assert "published: 2 created, 0 updated, 0 unchanged, 0 deleted" in result.output
    assert "WARNING" not in result.output
    assert _keys(moto_server, bucket) == [
        ".well-known/jwks.json",
        ".well-known/openid-configuration",
        f".wellknown-build/sites/{host}/state.json",
    ]
    _check_objects(
        moto_server,
        bucket,
        tmp_path,
        {
            ".well-known/jwks.json": f"{host}/.well-known/jwks.json",
            ".well-known/openid-configuration": f"{host}/.well-known/openid-configuration",
        },
    )
    head = _s3(moto_server).head_object(Bucket=bucket, Key=".well-known/jwks.json")
    assert head["Metadata"]["wellknown-prefix"] == f"/ {issuer}/"
    # the virtual-hosted URL's path is the key: moto serves it as /<bucket>/<key>
    _served_as_a_relying_party_sees_it(tmp_path, issuer, issuer, f"{moto_server}/{bucket}")
    s3_proxy.clear()
    again = _publish(run, s3_proxy, bucket, "--site", issuer + "/")  # a trailing '/' is the same
    assert "published: 0 created, 0 updated, 2 unchanged, 0 deleted" in again.output
    assert [r for r in s3_proxy.requests if r.method in ("PUT", "DELETE")] == []


def test_a_path_style_bucket_url_issuer_with_the_webhooks_keys_json(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    """SELF_HOSTED_SETUP.md's layout: issuer https://s3.REGION.amazonaws.com/BUCKET, the
    discovery document at the bucket's .well-known/, the key set at keys.json."""
    issuer = f"https://{REGION_HOST}/{bucket}"
    _render(run, tmp_path, [{"id": "cluster", "issuer": issuer, "jwks_uri": issuer + "/keys.json"}])
    result = _publish(run, s3_proxy, bucket, "--site", issuer + "/")
    assert result.exit_code == 0, result.output
    assert _documents(moto_server, bucket) == [".well-known/openid-configuration", "keys.json"]
    _check_objects(
        moto_server,
        bucket,
        tmp_path,
        {
            ".well-known/openid-configuration": f"{REGION_HOST}/{bucket}/.well-known/openid-configuration",
            "keys.json": f"{REGION_HOST}/{bucket}/keys.json",
        },
    )
    _served_as_a_relying_party_sees_it(tmp_path, issuer, f"https://{REGION_HOST}", moto_server)
    # the JWKS's put order held: keys before the document that points at them
    puts = [k for k in s3_proxy.puts(bucket) if not k.startswith(".wellknown-build/")]
    assert puts == ["keys.json", ".well-known/openid-configuration"]


def test_without_site_a_bucket_url_issuer_is_warned_about(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    own, path_style = f"https://{bucket}.{REGION_HOST}", f"https://{REGION_HOST}/{bucket}"
    other = "https://other-bucket.s3-eu-west-1.amazonaws.com"
    _render(
        run,
        tmp_path,
        [
            {"id": "own", "issuer": own},
            {"id": "path", "issuer": path_style + "/cluster-2"},
            {"id": "other", "issuer": other},
            {"id": "cdn", "issuer": "https://oidc.example.com"},
        ],
    )
    result = _publish(run, s3_proxy, bucket, "--dry-run")
    assert result.exit_code == 0, result.output  # a warning, not an error
    warnings = [line for line in result.output.splitlines() if line.startswith("WARNING")]
    assert warnings == [  # by URL
        f"WARNING: the tree holds documents of {other}/, bucket other-bucket's own URL, served "
        "only from that bucket: without --site they are uploaded under "
        "other-bucket.s3-eu-west-1.amazonaws.com/, where that URL does not serve them; "
        f"publish them with --bucket other-bucket --site {other}/",
        f"WARNING: the tree holds documents of {path_style}/, bucket {bucket}'s own URL: "
        f"without --site they are uploaded under {REGION_HOST}/{bucket}/, where that URL does "
        f"not serve them; publish them with --site {path_style}/",
        f"WARNING: the tree holds documents of {own}/, bucket {bucket}'s own URL: without "
        f"--site they are uploaded under {bucket}.{REGION_HOST}/, where that URL does not "
        f"serve them; publish them with --site {own}/",
    ]
    with_site = _publish(run, s3_proxy, bucket, "--dry-run", "--site", own)
    assert with_site.exit_code == 0 and "WARNING" not in with_site.output


@pytest.mark.parametrize(
    ("folder", "bucket", "style"),
    [
        ("my-bucket.s3.us-west-2.amazonaws.com/", "my-bucket", "virtual"),
        ("my-bucket.s3.amazonaws.com/x/", "my-bucket", "virtual"),  # legacy global endpoint
        ("my-bucket.s3-us-west-2.amazonaws.com/", "my-bucket", "virtual"),  # legacy s3-REGION
        ("my-bucket.s3.dualstack.eu-west-1.amazonaws.com/", "my-bucket", "virtual"),
        ("my-bucket.s3-fips.us-gov-west-1.amazonaws.com/", "my-bucket", "virtual"),
        ("my-bucket.s3.cn-north-1.amazonaws.com.cn/", "my-bucket", "virtual"),
        ("s3.us-west-2.amazonaws.com/my-bucket/", "my-bucket", "path"),
        ("s3.amazonaws.com/my-bucket/", "my-bucket", "path"),
        ("s3-eu-west-1.amazonaws.com/my-bucket/c/", "my-bucket", "path"),
        ("s3-external-1.amazonaws.com/my-bucket/", "my-bucket", "path"),
        ("my-bucket.s3-website-us-east-1.amazonaws.com/", None, None),  # website: http only
        ("my-bucket.s3-website.eu-west-1.amazonaws.com/", None, None),
        ("my-bucket.s3-accesspoint.us-east-1.amazonaws.com/", None, None),
        ("s3.us-west-2.amazonaws.com/.well-known/", None, None),
        ("oidc.example.com/my-bucket/", None, None),
        ("my-bucket.s3.us-east-1.amazonaws.com.evil.example/", None, None),
    ],
)
def test_bucket_urls_aws_lists_are_recognised(
    folder: str, bucket: str | None, style: str | None
) -> None:
    found = bucket_url(folder)
    assert (found.bucket if found else None) == bucket
    assert (None if found is None else "virtual" if found.virtual_hosted else "path") == style


def test_a_cdn_host_per_bucket_with_a_prefix_and_its_invalidation_paths(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    """--site https://oidc.example.com: a CloudFront distribution whose origin is the
    bucket's `cdn/` folder. The invalidation paths are the URL paths."""
    _render(
        run,
        tmp_path,
        [
            {"id": "c1", "issuer": "https://oidc.example.com/cluster-1"},
            {"id": "c2", "issuer": "https://oidc.example.com/cluster-2"},
            {"id": "elsewhere", "issuer": "https://auth.other.example"},
        ],
    )
    distribution = _distribution(moto_server)
    args = ("--site", "https://oidc.example.com", "--prefix", "cdn/")
    first = _publish(run, s3_proxy, bucket, *args, "--cloudfront-distribution-id", distribution)
    assert first.exit_code == 0, first.output
    assert _keys(moto_server, bucket) == [
        "cdn/.wellknown-build/sites/oidc.example.com/state.json",
        "cdn/cluster-1/.well-known/jwks.json",
        "cdn/cluster-1/.well-known/openid-configuration",
        "cdn/cluster-2/.well-known/jwks.json",
        "cdn/cluster-2/.well-known/openid-configuration",
    ]
    head = _s3(moto_server).head_object(Bucket=bucket, Key="cdn/cluster-1/.well-known/jwks.json")
    assert head["Metadata"]["wellknown-prefix"] == "cdn/ https://oidc.example.com/"
    assert _invalidations(moto_server, distribution) == [
        [
            "/cluster-1/.well-known/jwks.json",
            "/cluster-1/.well-known/openid-configuration",
            "/cluster-2/.well-known/jwks.json",
            "/cluster-2/.well-known/openid-configuration",
        ]
    ]
    # a site with a path: keys relative to it, CDN paths still the URL's own
    other = _publish(
        run,
        s3_proxy,
        bucket,
        "--site",
        "https://oidc.example.com/cluster-2",
        "--prefix",
        "c2/",
        "--cloudfront-distribution-id",
        distribution,
    )
    assert other.exit_code == 0, other.output
    assert "c2/.well-known/jwks.json" in _keys(moto_server, bucket)
    assert _invalidations(moto_server, distribution)[-1] == [
        "/cluster-2/.well-known/jwks.json",
        "/cluster-2/.well-known/openid-configuration",
    ]


def test_an_instance_split_over_two_hosts_is_published_in_part_with_a_warning(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    jwks_uri = "https://keys.example.net/cluster-1/jwks.json"
    _render(
        run,
        tmp_path,
        [{"id": "c1", "issuer": "https://oidc.example.com/cluster-1", "jwks_uri": jwks_uri}],
    )
    result = _publish(run, s3_proxy, bucket, "--site", "https://oidc.example.com")
    assert result.exit_code == 0, result.output
    assert (
        f"WARNING: instance c1: {jwks_uri} is not under --site https://oidc.example.com/ and "
        "not published by this run; publish it with a --site of its own"
    ) in result.output
    assert _documents(moto_server, bucket) == ["cluster-1/.well-known/openid-configuration"]
    keys = _publish(run, s3_proxy, bucket, "--site", "https://keys.example.net/", "--prefix", "k/")
    assert keys.exit_code == 0, keys.output
    assert "k/cluster-1/jwks.json" in _keys(moto_server, bucket)


def test_site_and_whole_tree_deployments_never_delete_each_others_objects(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    site = f"https://{bucket}.{REGION_HOST}"
    s3 = _s3(moto_server)
    _render(
        run,
        tmp_path,
        [{"id": "cluster", "issuer": site}, {"id": "a", "issuer": "https://a.example"}],
    )
    whole = _publish(run, s3_proxy, bucket)  # the whole tree, host folders first
    assert whole.exit_code == 0, whole.output
    whole_keys = set(_keys(moto_server, bucket))
    # an object of this tool from before the prefix mark: the whole-tree deployment's
    s3.put_object(
        Bucket=bucket,
        Key="old.example/.well-known/jwks.json",
        Body=b'{"keys": []}',
        Metadata={"wellknown-build": "wellknown-build"},
    )
    deletes = ("--delete", "--max-deletes", "100")
    at_root = _publish(run, s3_proxy, bucket, "--site", site, *deletes)
    assert at_root.exit_code == 0, at_root.output
    assert "delete " not in at_root.output and "0 deleted" in at_root.output
    root_keys = {".well-known/jwks.json", ".well-known/openid-configuration"}
    assert whole_keys | root_keys <= set(_keys(moto_server, bucket))
    assert "old.example/.well-known/jwks.json" in _keys(moto_server, bucket)
    # the whole-tree deployment, with the site's objects at the root beside it
    again = _publish(run, s3_proxy, bucket, *deletes)
    assert again.exit_code == 0, again.output
    assert "delete  old.example/.well-known/jwks.json" in again.output  # its own, legacy
    assert root_keys <= set(_keys(moto_server, bucket))
    # the bucket-URL issuer leaves the whole tree: its host folder goes, the root stays
    _render(run, tmp_path, [{"id": "a", "issuer": "https://a.example"}])
    removed = _publish(run, s3_proxy, bucket, *deletes)
    assert removed.exit_code == 0, removed.output
    assert "0 created, 0 updated, 2 unchanged, 2 deleted" in removed.output
    assert root_keys <= set(_keys(moto_server, bucket))
    assert not any(k.startswith(f"{bucket}.{REGION_HOST}/") for k in _keys(moto_server, bucket))
    # each state index lists only its own deployment's objects
    whole_state = json.loads(
        s3.get_object(Bucket=bucket, Key=".wellknown-build/state.json")["Body"].read()
    )
    site_state = json.loads(
        s3.get_object(
            Bucket=bucket, Key=f".wellknown-build/sites/{bucket}.{REGION_HOST}/state.json"
        )["Body"].read()
    )
    assert sorted(whole_state["objects"]) == [
        "a.example/.well-known/jwks.json",
        "a.example/.well-known/openid-configuration",
    ]
    assert sorted(site_state["objects"]) == sorted(root_keys)


def test_a_site_deployment_has_its_own_lease(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    site = "https://oidc.example.com"
    _render(run, tmp_path, [{"id": "c", "issuer": site}])
    s3 = _s3(moto_server)
    lease = json.dumps({"holder": "ci@runner pid 7", "expires": "2999-01-01T00:00:00Z"})
    s3.put_object(Bucket=bucket, Key=".wellknown-build/lease.json", Body=lease.encode())
    beside = _publish(run, s3_proxy, bucket, "--site", site)  # the whole-tree one's lease
    assert beside.exit_code == 0, beside.output
    site_lease = ".wellknown-build/sites/oidc.example.com/lease.json"
    assert site_lease not in _keys(moto_server, bucket)  # released
    s3.put_object(Bucket=bucket, Key=site_lease, Body=lease.encode())
    _render(run, tmp_path, [{"id": "c", "issuer": site, "cache_control": "max-age=60"}])
    held = _publish(run, s3_proxy, bucket, "--site", site)
    assert held.exit_code == 1
    assert "another publish is running (ci@runner pid 7" in held.output
    assert site_lease in held.output


def test_a_site_matching_no_document_is_an_error_before_any_request(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, [{"id": "c", "issuer": f"https://{bucket}.{REGION_HOST}"}])
    s3_proxy.clear()
    wrong_region = f"https://{bucket}.s3.us-west-2.amazonaws.com"
    result = _publish(run, s3_proxy, bucket, "--site", wrong_region)
    assert result.exit_code == 1
    assert (
        f"error: --site {wrong_region}/ matches no document in out, so nothing was published "
        f"(its issuers: https://{bucket}.{REGION_HOST}). Did you mean --site "
        f"https://{bucket}.{REGION_HOST}?"
    ) in result.output
    assert s3_proxy.requests == []


def test_a_document_in_the_tools_own_folder_is_refused(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    site = "https://oidc.example.com"
    _render(run, tmp_path, [{"id": "c", "issuer": site + "/.wellknown-build"}])
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket, "--site", site)
    assert result.exit_code == 1
    assert "would be uploaded into the tool's own .wellknown-build/ folder" in result.output
    assert s3_proxy.requests == []


def test_a_dry_run_with_a_site_plans_relative_keys_and_writes_nothing(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, [{"id": "c", "issuer": "https://oidc.example.com/t/a"}])
    result = _publish(run, s3_proxy, bucket, "--site", "https://oidc.example.com/t", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "create  a/.well-known/jwks.json  (new)" in result.output
    assert "dry run, would publish: 2 created" in result.output
    assert _keys(moto_server, bucket) == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://oidc.example.com", "must be an https:// URL: issuers and jwks_uri are https"),
        ("oidc.example.com", "must be an https:// URL, e.g."),
        ("", "must be an https:// URL, e.g."),
        ("https://OIDC.example.com", "is not a valid lowercase DNS name"),
        ("https://oidc.example.com/?x=1", "must not have a query"),
        ("https://oidc.example.com/#top", "must not have a fragment"),
        ("https://user@oidc.example.com", "must not contain userinfo"),
        ("https://oidc.example.com//a", "must not contain empty path segments"),
        ("https://oidc.example.com/a/../b", "must not contain '.' or '..' path segments"),
        ("https://oidc.example.com/a%20b", "percent-encoding"),
        ("https://oidc.example.com/a b", "must not contain whitespace"),
        ("https://oidc.example.com:0", "port 0 is out of range"),
        ("https://", "must have a host"),
        ("https://oidc.example.com/.wellknown-build", "the tool's own .wellknown-build/ folder"),
        ("https://oidc.example.com/" + "a" * 1000, "is too long (at most 1024 characters)"),
    ],
)
def test_a_bad_site_is_a_usage_error(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, value: str, reason: str
) -> None:
    _render(run, tmp_path, [{"id": "c", "issuer": "https://oidc.example.com"}])
    s3_proxy.clear()
    result = _publish(run, s3_proxy, bucket, "--site", value)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--site'" in result.output and reason in result.output
    assert "Traceback" not in result.output
    assert s3_proxy.requests == []


def test_the_site_comes_from_its_environment_variable_too(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    _render(run, tmp_path, [{"id": "c", "issuer": "https://oidc.example.com"}])
    args = ("publish", "--bucket", bucket, "--endpoint-url", s3_proxy.url)
    bad = run(*args, env={"WELLKNOWN_SITE": "http://oidc.example.com"})
    assert bad.exit_code == 2
    empty = run(*args, "--dry-run", env={"WELLKNOWN_SITE": ""})  # empty: unset
    assert "create  oidc.example.com/.well-known/jwks.json" in empty.output
    good = run(*args, env={"WELLKNOWN_SITE": "https://oidc.example.com"})
    assert good.exit_code == 0, good.output
    assert _documents(moto_server, bucket) == [
        ".well-known/jwks.json",
        ".well-known/openid-configuration",
    ]


def test_another_buckets_url_as_site(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    """On AWS that URL serves only its own bucket: a usage error. Against another store
    (--endpoint-url: MinIO, a test server) the names may differ: a warning."""
    other = f"https://other-bucket.{REGION_HOST}"
    _render(run, tmp_path, [{"id": "c", "issuer": other}])
    on_aws = run("publish", "--bucket", bucket, "--site", other)
    assert on_aws.exit_code == 2
    assert (
        f"{other} is bucket other-bucket's own URL, but --bucket is {bucket}: that URL serves "
        "only the objects of bucket other-bucket (publish with --bucket other-bucket)"
    ) in on_aws.output
    elsewhere = _publish(run, s3_proxy, bucket, "--site", other, "--dry-run")
    assert elsewhere.exit_code == 0, elsewhere.output
    assert f"WARNING: {other}/ is bucket other-bucket's own URL" in elsewhere.output


def test_a_virtual_hosted_bucket_name_with_dots_is_warned_about(
    run: Run, tmp_path: Path, s3_proxy: Proxy, moto_server: str, aws_env: None
) -> None:
    name = f"oidc.{int(time.time() * 1000)}.example"
    _s3(moto_server).create_bucket(Bucket=name)
    site = f"https://{name}.{REGION_HOST}"
    _render(run, tmp_path, [{"id": "c", "issuer": site}])
    result = _publish(run, s3_proxy, name, "--site", site, "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        f"S3's TLS certificate (*.s3.REGION.amazonaws.com) does not cover bucket names with "
        f"dots, so relying parties cannot fetch it over https; use the path-style issuer "
        f"https://s3.REGION.amazonaws.com/{name}"
    ) in result.output
