"""x5c and x5t#S256: standard base64 chain, leaf first, certificate key equal to the JWK."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from wellknown_build.build import build
from wellknown_build.errors import ConfigError
from wellknown_build.keys.b64 import b64url

from .helpers import KEY_MAKERS, certificate, private_pem, write, write_config

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


def _config(tmp_path: Path, data: bytes) -> Path:
    write(tmp_path / "k.pem", data)
    return write_config(
        tmp_path,
        "instances: [{id: x, issuer: 'https://h.example', keys: [{path: k.pem, x5c: true}]}]",
    )


def test_chain_published_leaf_first(tmp_path: Path) -> None:
    leaf, ca = KEY_MAKERS["rsa2048"](), KEY_MAKERS["p384"]()
    leaf_cert, ca_cert = certificate(leaf, "leaf", ca, issuer="ca"), certificate(ca, "ca")
    config = _config(tmp_path, leaf_cert.public_bytes(PEM) + ca_cert.public_bytes(PEM))
    (jwks,) = [d for d in build(config).documents if d.kind == "jwks"]
    (key,) = json.loads(jwks.body)["keys"]
    assert key["x5c"] == [
        base64.b64encode(c.public_bytes(DER)).decode() for c in (leaf_cert, ca_cert)
    ]
    assert key["x5t#S256"] == b64url(hashlib.sha256(leaf_cert.public_bytes(DER)).digest())
    assert key["n"]  # the JWK is the leaf's key


def test_chain_out_of_order_refused(tmp_path: Path) -> None:
    leaf, ca = KEY_MAKERS["p256"](), KEY_MAKERS["p256"]()
    leaf_cert, ca_cert = certificate(leaf, "leaf", ca, issuer="ca"), certificate(ca, "ca")
    # Root first: the file's first certificate is then the CA's, and the leaf follows it.
    config = _config(tmp_path, ca_cert.public_bytes(PEM) + leaf_cert.public_bytes(PEM))
    with pytest.raises(ConfigError, match="did not issue certificate 1"):
        build(config)


def test_certificate_of_another_key_refused(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        private_pem(KEY_MAKERS["p256"]())
        + certificate(KEY_MAKERS["p256"](), "other").public_bytes(PEM),
    )
    with pytest.raises(ConfigError, match="2 different keys"):
        build(config)


def test_x5c_needs_a_certificate(tmp_path: Path) -> None:
    config = _config(tmp_path, private_pem(KEY_MAKERS["p256"]()))
    with pytest.raises(ConfigError, match="x5c needs the key given as a certificate"):
        build(config)
