"""Keys from AWS KMS (`kms:`) against moto's KMS on 127.0.0.1, through a recording proxy
that sees every KMS request and can answer in KMS's place (errors moto does not produce,
hostile answers).

The published JWK of a KMS key must be the JWK of the SPKI GetPublicKey returns, checked
here from the SPKI with cryptography's own numbers, not with the tool's code."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .helpers import Run, write, write_config

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo

# (key id asked for, request body, moto's answer) -> (status, body) to send instead, or None.
Answer = Callable[[str, dict[str, Any], dict[str, Any] | None], tuple[int, dict[str, Any]] | None]


@dataclass
class KmsProxy:
    """Forwards KMS's JSON protocol to moto; records each call, can answer in its place."""

    upstream: tuple[str, int]
    calls: list[tuple[str, str]] = field(default_factory=list)  # (operation, KeyId)
    answers: list[Answer] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fetched(self) -> list[str]:
        return sorted(key for op, key in self.calls if op == "GetPublicKey")

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.answers.clear()
            self.delay = 0.0
            self.most_in_flight = 0


def _start(upstream: tuple[str, int]) -> KmsProxy:
    proxy = KmsProxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
            request = json.loads(body or b"{}")
            key_id = str(request.get("KeyId", ""))
            with proxy.lock:
                proxy.calls.append((operation, key_id))
                proxy.in_flight += 1
                proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
            time.sleep(proxy.delay)
            connection = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            status, data = response.status, response.read()
            connection.close()
            answer = json.loads(data) if status == 200 else None
            for rule in list(proxy.answers):
                replaced = rule(key_id, request, answer)
                if replaced is not None:
                    status, data = replaced[0], json.dumps(replaced[1]).encode()
                    break
            with proxy.lock:
                proxy.in_flight -= 1
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return proxy


@pytest.fixture(scope="module")
def kms_proxy(moto_server: str) -> Iterator[KmsProxy]:
    address = urlsplit(moto_server)
    proxy = _start((address.hostname or "127.0.0.1", address.port or 80))
    yield proxy
    assert proxy.server is not None
    proxy.server.shutdown()


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch, moto_server: str, kms_proxy: KmsProxy) -> Iterator[Any]:
    """A KMS client on moto for the test's setup; the tool reaches KMS through the proxy,
    by boto3's own AWS_ENDPOINT_URL_KMS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", kms_proxy.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    kms_proxy.reset()
    yield boto3.client("kms", endpoint_url=moto_server, region_name="us-east-1")
    kms_proxy.reset()


def _key(client: Any, spec: str, usage: str = "SIGN_VERIFY") -> dict[str, Any]:
    metadata: dict[str, Any] = client.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    return metadata


def _b64(value: int, size: int | None = None) -> str:
    length = size if size is not None else (value.bit_length() + 7) // 8
    return base64.urlsafe_b64encode(value.to_bytes(length, "big")).rstrip(b"=").decode()


def _expected(client: Any, key_id: str) -> dict[str, str]:
    """n/e or crv/x/y of the SPKI moto's GetPublicKey returns, from cryptography's numbers."""
    key = serialization.load_der_public_key(client.get_public_key(KeyId=key_id)["PublicKey"])
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}
    assert isinstance(key, ec.EllipticCurvePublicKey)
    size = (key.curve.key_size + 7) // 8
    point = key.public_numbers()
    crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
    return {
        "kty": "EC",
        "crv": crv.get(key.curve.name, key.curve.name),
        "x": _b64(point.x, size),
        "y": _b64(point.y, size),
    }


def _jwks(tmp_path: Path, host: str = "a.example") -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(
        (tmp_path / "out" / host / ".well-known" / "jwks.json").read_text()
    )["keys"]
    return keys


def _config(tmp_path: Path, keys: str, *more: str) -> Path:
    instances = [f"  - id: a\n    issuer: https://a.example\n    keys:\n{keys}"]
    instances += [
        f"  - id: {chr(98 + i)}\n    issuer: https://{chr(98 + i)}.example\n    keys:\n{k}"
        for i, k in enumerate(more)
    ]
    return write(tmp_path / "instances.yaml", "instances:\n" + "\n".join(instances))


def test_rsa_and_ec_keys_publish_the_spki_kms_returns(run: Run, tmp_path: Path, kms: Any) -> None:
    keys = {spec: _key(kms, spec) for spec in ("RSA_2048", "RSA_4096", "ECC_NIST_P256")}
    keys |= {spec: _key(kms, spec) for spec in ("ECC_NIST_P384", "ECC_NIST_P521")}
    secp = _key(kms, "ECC_SECG_P256K1")
    kms.create_alias(AliasName="alias/rsa", TargetKeyId=keys["RSA_2048"]["KeyId"])
    _config(
        tmp_path,
        "      - kms: alias/rsa\n"
        f"      - kms: {keys['RSA_4096']['Arn']}\n"
        f"      - kms: {keys['ECC_NIST_P256']['KeyId']}\n"
        f"      - kms: {keys['ECC_NIST_P384']['KeyId']}\n"
        f"      - kms: {keys['ECC_NIST_P521']['KeyId']}\n"
        f"      - {{kms: {secp['KeyId']}, alg: ES256K}}\n",
    )
    result = run("render", "instances.yaml")
    assert result.exit_code == 0, result.output
    published = _jwks(tmp_path)
    ids = [*(keys[s]["KeyId"] for s in keys), secp["KeyId"]]
    algs = ["RS256", "RS256", "ES256", "ES384", "ES512", "ES256K"]
    assert [k["alg"] for k in published] == algs
    for jwk, key_id in zip(published, ids, strict=True):
        expected = _expected(kms, key_id)
        assert {name: jwk[name] for name in expected} == expected
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


@pytest.mark.parametrize("kid_method", ["rfc7638", "kubernetes"])
def test_a_key_from_a_pem_file_and_from_kms_is_one_jwk(
    run: Run, tmp_path: Path, kms: Any, kid_method: str
) -> None:
    for spec in ("RSA_2048", "ECC_NIST_P256"):
        key = _key(kms, spec)
        der = kms.get_public_key(KeyId=key["KeyId"])["PublicKey"]
        pem = serialization.load_der_public_key(der).public_bytes(PEM, SPKI)
        write(tmp_path / "k.pem", pem)
        _config(
            tmp_path,
            f"      - {{path: k.pem, kid_method: {kid_method}}}\n",
            f"      - {{kms: {key['KeyId']}, kid_method: {kid_method}}}\n",
        )
        result = run("render", "instances.yaml")
        assert result.exit_code == 0, result.output
        assert _jwks(tmp_path, "a.example") == _jwks(tmp_path, "b.example")


def test_secp256k1_only_with_an_explicit_es256k(run: Run, tmp_path: Path, kms: Any) -> None:
    key = _key(kms, "ECC_SECG_P256K1")
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert (
        "instances.yaml:5: instances[0].keys[0].kms: EC curve secp256k1 is published only on "
        "explicit opt-in: set alg: ES256K"
    ) in result.output
    assert "Traceback" not in result.output


def test_algs_are_those_kms_lists(run: Run, tmp_path: Path, kms: Any, kms_proxy: KmsProxy) -> None:
    key = _key(kms, "RSA_3072")
    _config(tmp_path, f"      - {{kms: {key['KeyId']}, alg: PS384}}\n")
    assert run("render", "instances.yaml").exit_code == 0
    assert _jwks(tmp_path)[0]["alg"] == "PS384"

    def pkcs1_sha256_only(
        key_id: str, request: dict[str, Any], answer: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]] | None:
        if answer is None:
            return None
        return 200, {**answer, "SigningAlgorithms": ["RSASSA_PKCS1_V1_5_SHA_256"]}

    kms_proxy.answers.append(pkcs1_sha256_only)
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert (
        "instances.yaml:5: instances[0].keys[0].alg: PS384 is not among the signing algorithms "
        "KMS lists for this key (RSASSA_PKCS1_V1_5_SHA_256; as JWS algs: RS256)"
    ) in result.output
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")
    assert run("render", "instances.yaml").exit_code == 0
    assert _jwks(tmp_path)[0]["alg"] == "RS256"
    _config(tmp_path, f"      - {{kms: {_key(kms, 'ECC_NIST_P256')['KeyId']}, alg: ES384}}\n")
    result = run("render", "instances.yaml")
    assert "instances[0].keys[0].alg: ES384 does not fit this key (allowed: ES256)" in result.output


def test_an_encryption_key_is_refused(run: Run, tmp_path: Path, kms: Any) -> None:
    key = _key(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert (
        "instances.yaml:5: instances[0].keys[0].kms: KMS key usage is ENCRYPT_DECRYPT, not "
        f"SIGN_VERIFY: only signing keys are published ({key['KeyId']}) [instance a]"
    ) in result.output


def test_unknown_keys_are_errors_and_change_nothing(run: Run, tmp_path: Path, kms: Any) -> None:
    good = _key(kms, "ECC_NIST_P256")
    _config(tmp_path, f"      - kms: {good['KeyId']}\n")
    assert run("render", "instances.yaml").exit_code == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    _config(
        tmp_path,
        f"      - kms: {good['KeyId']}\n"
        "      - kms: alias/nobody\n"
        "      - kms: 0badc0de-0000-4000-8000-000000000000\n",
    )
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    for line, key_id in ((6, "alias/nobody"), (7, "0badc0de-0000-4000-8000-000000000000")):
        assert (
            f"instances.yaml:{line}: instances[0].keys[{line - 5}].kms: KMS GetPublicKey: "
            f"NotFoundException: no such KMS key (check the key id or alias, and the region) "
            f"({key_id}) [instance a]"
        ) in result.output
    assert "Traceback" not in result.output
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert {p: after[p] for p in before if p.name != ".wellknown-build.lock"} == {
        p: before[p] for p in before if p.name != ".wellknown-build.lock"
    }


def test_the_region_comes_from_the_arn(
    run: Run, tmp_path: Path, moto_server: str, kms: Any
) -> None:
    elsewhere = boto3.client("kms", endpoint_url=moto_server, region_name="eu-west-1")
    key = _key(elsewhere, "ECC_NIST_P256")
    assert ":eu-west-1:" in key["Arn"]
    _config(tmp_path, f"      - kms: {key['Arn']}\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 0, result.output
    assert _jwks(tmp_path)[0]["x"] == _expected(elsewhere, key["KeyId"])["x"]
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")  # a bare id: the default region
    assert "NotFoundException" in run("render", "instances.yaml").output


def test_each_key_is_fetched_once_per_run_concurrently(
    run: Run, tmp_path: Path, kms: Any, kms_proxy: KmsProxy
) -> None:
    ids = [_key(kms, "ECC_NIST_P256")["KeyId"] for _ in range(4)]
    kms.create_alias(AliasName="alias/shared", TargetKeyId=ids[0])
    entry = "      - kms: alias/shared\n" + "".join(f"      - kms: {i}\n" for i in ids[1:])
    _config(tmp_path, entry, entry, entry)  # three instances, the same four keys
    kms_proxy.reset()
    kms_proxy.delay = 0.4
    result = run("render", "instances.yaml")
    assert result.exit_code == 0, result.output
    assert kms_proxy.fetched() == sorted(["alias/shared", *ids[1:]])
    assert kms_proxy.most_in_flight > 1  # fetched side by side, not one after another


def test_every_run_fetches_and_sees_an_alias_that_moved(
    run: Run, tmp_path: Path, kms: Any, kms_proxy: KmsProxy
) -> None:
    """The render cache must not keep a KMS key's old material: the fingerprint covers the
    fetched SPKI, so a re-render fetches again, writes nothing when nothing changed, and
    rebuilds the JWKS when the alias now names another key."""
    first, second = _key(kms, "ECC_NIST_P256"), _key(kms, "ECC_NIST_P256")
    kms.create_alias(AliasName="alias/moving", TargetKeyId=first["KeyId"])
    _config(tmp_path, "      - kms: alias/moving\n")
    assert run("render", "instances.yaml").exit_code == 0
    jwks = tmp_path / "out" / "a.example" / ".well-known" / "jwks.json"
    mtime = jwks.stat().st_mtime_ns
    kms_proxy.reset()
    again = run("render", "instances.yaml")
    assert "0 created, 0 updated" in again.output
    assert kms_proxy.fetched() == ["alias/moving"]
    assert jwks.stat().st_mtime_ns == mtime
    kms.update_alias(AliasName="alias/moving", TargetKeyId=second["KeyId"])
    moved = run("render", "instances.yaml")
    assert "1 updated" in moved.output, moved.output
    assert _jwks(tmp_path)[0]["x"] == _expected(kms, second["KeyId"])["x"]


def _error(code: str, message: str = "refused") -> Answer:
    def answer(
        key_id: str, request: dict[str, Any], got: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]] | None:
        return 400, {"__type": code, "message": message}

    return answer


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("DisabledException", "the KMS key is disabled, and KMS refuses GetPublicKey for it"),
        (
            "KMSInvalidStateException",
            "the KMS key's state refuses GetPublicKey (pending deletion?)",
        ),
        (
            "AccessDeniedException",
            "access denied: the credentials need kms:GetPublicKey on this key",
        ),
        ("UnsupportedOperationException", "the KMS key is symmetric: it has no public key"),
        ("SomethingNewException", "refused"),
    ],
)
def test_kms_refusals_are_one_line_each(
    run: Run, tmp_path: Path, kms: Any, kms_proxy: KmsProxy, code: str, expected: str
) -> None:
    key = _key(kms, "ECC_NIST_P256")
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")
    kms_proxy.answers.append(_error(code))
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert f"instances.yaml:5: instances[0].keys[0].kms: KMS GetPublicKey: {code}: {expected}" in (
        result.output
    )
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 2


def test_no_credentials(
    run: Run, tmp_path: Path, kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _config(tmp_path, "      - kms: alias/any\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert (
        "instances[0].keys[0].kms: KMS GetPublicKey: no AWS credentials found in the default "
        "chain (env, profile, role)"
    ) in result.output


def test_no_region(run: Run, tmp_path: Path, kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    _config(tmp_path, "      - kms: alias/any\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert "KMS GetPublicKey: no AWS region: set AWS_REGION" in result.output


def test_an_unreachable_endpoint(
    run: Run, tmp_path: Path, kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{port}")
    _config(tmp_path, "      - kms: alias/any\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert "instances[0].keys[0].kms: KMS GetPublicKey: cannot reach the KMS endpoint" in (
        result.output
    )
    assert "Traceback" not in result.output


def _replace(**members: Any) -> Answer:
    def answer(
        key_id: str, request: dict[str, Any], got: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]] | None:
        return None if got is None else (200, {**got, **members})

    return answer


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"PublicKey": base64.b64encode(b"not a key").decode()}, "not a valid SPKI"),
        ({"KeySpec": "RSA_4096"}, "KMS returned a public key that is not a RSA_4096 key"),
        ({"CustomerMasterKeySpec": "ECC_NIST_P384"}, "not a ECC_NIST_P384 key"),
        ({"KeyUsage": None}, "KMS key usage is missing, not SIGN_VERIFY"),
        ({"CustomerMasterKeySpec": "SM2"}, "KMS key spec SM2 has no JWS algorithm"),
        ({"PublicKey": None}, "KMS GetPublicKey returned no public key"),
        ({"CustomerMasterKeySpec": "RSA_\ud800\n"}, "KMS key spec 'RSA_\\ud800\\n' has no JWS"),
        ({"KeyUsage": ["SIGN_VERIFY"]}, "KMS key usage is ['SIGN_VERIFY'], not SIGN_VERIFY"),
    ],
)
def test_hostile_answers(
    run: Run,
    tmp_path: Path,
    kms: Any,
    kms_proxy: KmsProxy,
    members: dict[str, Any],
    expected: str,
) -> None:
    key = _key(kms, "RSA_2048")
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")
    kms_proxy.answers.append(_replace(**members))
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert expected in result.output
    assert "Traceback" not in result.output


def test_spki_with_trailing_bytes_is_refused(
    run: Run, tmp_path: Path, kms: Any, kms_proxy: KmsProxy
) -> None:
    key = _key(kms, "ECC_NIST_P256")
    der = kms.get_public_key(KeyId=key["KeyId"])["PublicKey"]
    kms_proxy.answers.append(_replace(PublicKey=base64.b64encode(der + b"\0").decode()))
    _config(tmp_path, f"      - kms: {key['KeyId']}\n")
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert "KMS returned a public key that is not" in result.output


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{kms: keys/a.pem}",
            "instances[0].keys[0].kms: 'keys/a.pem' is not a KMS key id, key ARN, alias name",
        ),
        (
            "{kms: alias/a, path: a.pem}",
            "instances[0].keys[0]: give only one of path, kms, jwks (found path and kms)",
        ),
        ("{kid: x}", "instances[0].keys[0].path: is required (or kms: a KMS key, or jwks"),
        ("{kms: 5}", "instances[0].keys[0].kms: must be a string, got the whole number 5"),
    ],
)
def test_bad_kms_entries(run: Run, tmp_path: Path, entry: str, expected: str) -> None:
    _config(tmp_path, f"      - {entry}\n")
    result = run("validate", "instances.yaml")
    assert result.exit_code == 1
    assert f"instances.yaml:5: {expected}" in result.output


def test_inspect_kms(run: Run, kms: Any, kms_proxy: KmsProxy) -> None:
    rsa_key, ec_key = _key(kms, "RSA_2048"), _key(kms, "ECC_SECG_P256K1")
    result = run("inspect", "--json", "--kms", rsa_key["Arn"], "--kms", ec_key["KeyId"])
    assert result.exit_code == 0, result.output
    rsa_report, ec_report = json.loads(result.output)
    assert rsa_report["kms"]["key_spec"] == "RSA_2048"
    assert rsa_report["algs"] == ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    assert rsa_report["kid_rfc7638"] == _thumbprint(_expected(kms, rsa_key["KeyId"]))
    assert ec_report["default_alg"] == "ES256K"
    assert ec_report["source"] == "kms"
    text = run("inspect", "--kms", rsa_key["Arn"])
    assert "KMS key spec      RSA_2048, SIGN_VERIFY" in text.output
    assert run("inspect", "--kms", "keys/a.pem").exit_code == 2
    kms_proxy.answers.append(_error("NotFoundException"))
    missing = run("inspect", "--kms", "alias/none")
    assert missing.exit_code == 1
    assert "error: kms alias/none: KMS GetPublicKey: NotFoundException" in missing.output
    assert run("inspect").exit_code == 2


def _thumbprint(jwk: dict[str, str]) -> str:
    import hashlib

    required = {k: jwk[k] for k in ("e", "kty", "n")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def test_kms_keys_in_an_include_and_in_defaults(run: Run, tmp_path: Path, kms: Any) -> None:
    """A KMS key entry in an included file is located in that file; defaults.key applies."""
    key = _key(kms, "ECC_NIST_P256")
    write_config(
        tmp_path,
        """
        defaults: {key: {kid_method: kubernetes}}
        include: [tenants/*.yaml]
        """,
    )
    write(
        tmp_path / "tenants" / "t.yaml",
        f"id: t\nissuer: https://t.example\nkeys:\n  - kms: {key['KeyId']}\n  - kms: alias/gone\n",
    )
    result = run("render", "instances.yaml")
    assert result.exit_code == 1
    assert "tenants/t.yaml:5: [0].keys[1].kms: KMS GetPublicKey: NotFoundException" in (
        result.output
    )
