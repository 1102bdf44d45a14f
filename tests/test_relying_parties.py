"""Each relying-party rule with a config it accepts and one it rejects, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellknown_build.build import build
from wellknown_build.errors import ConfigError

from .helpers import KEY_MAKERS, PEM, certificate, public_pem, rsa_key, write, write_config


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    write(folder / "rsa.pem", public_pem(rsa_key()))
    write(folder / "ec.pem", public_pem(KEY_MAKERS["p256"]()))
    write(folder / "ed.pem", public_pem(KEY_MAKERS["ed25519"]()))
    write(folder / "ed448.pem", public_pem(KEY_MAKERS["ed448"]()))
    write(folder / "cert.pem", certificate(KEY_MAKERS["p256"]()).public_bytes(PEM))
    return folder


def _problems(tmp_path: Path, party: str, issuer: str, keys: str, extra: str = "") -> list[str]:
    path = write_config(
        tmp_path,
        f"instances: [{{id: x, issuer: '{issuer}', relying_parties: [{party}], keys: [{keys}]{extra}}}]",
    )
    try:
        build(path)
    except ConfigError as e:
        return [p.message for p in e.problems]
    return []


@pytest.mark.parametrize(
    ("party", "issuer", "good", "bad", "reason"),
    [
        (
            "aws-iam",
            "https://h.example",
            "{path: keys/ec.pem}",
            "{path: keys/ed.pem}",
            "alg EdDSA is not accepted",
        ),
        (
            "aws-iam",
            "https://h.example:8443",
            None,
            "{path: keys/ec.pem}",
            "the issuer has a port (8443)",
        ),
        (
            "aws-apigateway-http",
            "https://h.example",
            "{path: keys/rsa.pem}",
            "{path: keys/ec.pem}",
            "EC keys are not accepted (only RSA)",
        ),
        (
            "gcp-wif",
            "https://h.example",
            "{path: keys/ec.pem}",
            "{path: keys/ed.pem}",
            "OKP keys are not accepted",
        ),
        (
            "oidc-strict",
            "https://h.example",
            None,
            "{path: keys/rsa.pem}",
            "lacks REQUIRED authorization_endpoint",
        ),
        (
            "azure-entra",
            "https://h.example",
            "{path: keys/rsa.pem}",
            "{path: keys/ec.pem}",
            "alg ES256 is not accepted (only RS256)",
        ),
        (
            "azure-entra",
            "https://h.example/" + "a" * 600,
            None,
            "{path: keys/rsa.pem}",
            "the issuer has 618 characters, more than 600",
        ),
        (
            "vault-jwt",
            "https://h.example",
            "{path: keys/rsa.pem}",
            "{path: keys/rsa.pem, alg: PS256}",
            "alg PS256 is not accepted (only RS256)",
        ),
        (
            "node-jose",
            "https://h.example",
            "{path: keys/ed.pem}",
            "{path: keys/ed448.pem}",
            "Ed448 keys are ignored",
        ),
        (
            "kubernetes",
            "https://h.example",
            "{path: keys/rsa.pem, kid_method: kubernetes}",
            "{path: keys/rsa.pem}",
            "is not the key's SPKI hash",
        ),
        (
            "kubernetes",
            "https://h.example",
            "{path: keys/ec.pem, kid_method: kubernetes}",
            "{path: keys/ed.pem, kid_method: kubernetes}",
            "alg EdDSA is not accepted",
        ),
    ],
)
def test_rule(
    tmp_path: Path, keys: Path, party: str, issuer: str, good: str | None, bad: str, reason: str
) -> None:
    if good is not None:
        assert _problems(tmp_path, party, issuer, good) == []
    (problem,) = _problems(tmp_path, party, issuer, bad)
    assert problem.startswith(f"{party} would reject this: ")
    assert reason in problem and "(source: " in problem


def test_aws_iam_key_count(tmp_path: Path) -> None:
    lines = []
    for i in range(101):
        write(tmp_path / "keys" / f"{i}.pem", public_pem(KEY_MAKERS["p256"]()))
        lines.append(f"{{path: keys/{i}.pem}}")
    assert any(
        "101 EC keys, more than the 100 accepted" in p
        for p in _problems(tmp_path, "aws-iam", "https://h.example", ", ".join(lines))
    )
    assert _problems(tmp_path, "aws-iam", "https://h.example", ", ".join(lines[:100])) == []


def test_unknown_party(tmp_path: Path, keys: Path) -> None:
    (problem,) = _problems(tmp_path, "aws-iamm", "https://h.example", "{path: keys/ec.pem}")
    assert "unknown relying party 'aws-iamm'; did you mean 'aws-iam'?" in problem


def test_defaults_apply(tmp_path: Path, keys: Path) -> None:
    path = write_config(
        tmp_path,
        "defaults: {relying_parties: [aws-apigateway-http]}\ninstances: [{id: x, issuer: 'https://h.example', keys: [{path: keys/ec.pem}]}]",
    )
    with pytest.raises(ConfigError, match="aws-apigateway-http would reject this"):
        build(path)


def test_gcp_wif_fetching_jwks_uri_takes_x5c(tmp_path: Path, keys: Path) -> None:
    """GCP's member allow-list is for uploaded key sets (jwksJson), not for jwks_uri."""
    assert (
        _problems(tmp_path, "gcp-wif", "https://h.example", "{path: keys/cert.pem, x5c: true}")
        == []
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", []),  # the default cache_ttl covers the 2 hours
        (", cache_ttl: 2h", []),
        (", cache_ttl: 7199", ["caches a JWKS up to 2h, longer than cache_ttl (7199s)"]),
        (", cache_ttl: 15m", ["caches a JWKS up to 2h, longer than cache_ttl (15m)"]),
    ],
)
def test_api_gateway_caches_two_hours(
    tmp_path: Path, keys: Path, extra: str, expected: list[str]
) -> None:
    found = _problems(
        tmp_path, "aws-apigateway-http", "https://h.example", "{path: keys/rsa.pem}", extra
    )
    assert len(found) == len(expected)
    for problem, reason in zip(found, expected, strict=True):
        assert reason in problem


STRICT_OK = (
    ", discovery: {authorization_endpoint: 'https://h.example/authorize', "
    "token_endpoint: 'https://h.example/token', "
    "response_types_supported: [code, id_token]}"
)


@pytest.mark.parametrize(
    ("keys_yaml", "extra", "reasons"),
    [
        ("{path: keys/rsa.pem}", STRICT_OK, []),
        ("{path: keys/ec.pem}", STRICT_OK, ["must include RS256"]),
        (
            "{path: keys/rsa.pem}",
            ", discovery: {authorization_endpoint: 'https://h.example/a'}",
            [],  # implicit only (id_token): no token_endpoint needed
        ),
        (
            "{path: keys/rsa.pem}",
            ", discovery: {authorization_endpoint: 'https://h.example/a', response_types_supported: [code]}",
            ["lacks REQUIRED token_endpoint"],
        ),
        (
            "{path: keys/rsa.pem}",
            ", template: minimal",
            [
                "lacks REQUIRED authorization_endpoint, response_types_supported, "
                "subject_types_supported, id_token_signing_alg_values_supported, token_endpoint"
            ],
        ),
    ],
)
def test_oidc_strict(
    tmp_path: Path, keys: Path, keys_yaml: str, extra: str, reasons: list[str]
) -> None:
    found = _problems(tmp_path, "oidc-strict", "https://h.example", keys_yaml, extra)
    assert len(found) == len(reasons), found
    for problem, reason in zip(found, reasons, strict=True):
        assert reason in problem


def test_oci_apigateway_takes_ten_keys(tmp_path: Path) -> None:
    lines = []
    for i in range(11):
        write(tmp_path / "keys" / f"{i}.pem", public_pem(KEY_MAKERS["p256"]()))
        lines.append(f"{{path: keys/{i}.pem}}")
    found = _problems(tmp_path, "oci-apigateway", "https://h.example", ", ".join(lines))
    assert any("11 keys, more than the 10 accepted" in p for p in found)
    assert _problems(tmp_path, "oci-apigateway", "https://h.example", ", ".join(lines[:10])) == []


def test_java_nimbus_reads_at_most_51200_bytes(tmp_path: Path) -> None:
    """Nimbus' RemoteJWKSet stops reading at 51,200 bytes: about 200 P-256 keys."""
    lines = []
    for i in range(220):
        write(tmp_path / "keys" / f"{i}.pem", public_pem(KEY_MAKERS["p256"]()))
        lines.append(f"{{path: keys/{i}.pem}}")
    found = _problems(tmp_path, "java-nimbus", "https://h.example", ", ".join(lines))
    assert any("more than 51200" in p for p in found), found
    assert _problems(tmp_path, "java-nimbus", "https://h.example", ", ".join(lines[:20])) == []
