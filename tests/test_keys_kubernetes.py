"""The Kubernetes kid: base64url(SHA-256(DER SPKI)), checked against the projects' own vectors."""

from __future__ import annotations

from pathlib import Path

from wellknown_build.build import build
from wellknown_build.keys import parse_pem, public_jwk, spki_sha256

from .helpers import PKCS1, public_pem, vector, write, write_config


def test_kube_apiserver_vector() -> None:
    v = vector("kubernetes-keyid.json")
    key = parse_pem(v["pem"].encode(), lambda: None).public_key
    assert spki_sha256(key) == v["kid"]
    assert public_jwk(key, kid_method="kubernetes").kid == v["kid"]


def test_azwi_vector() -> None:
    v = vector("azwi-jwks.json")
    key = parse_pem(v["pem"].encode(), lambda: None).public_key
    assert public_jwk(key, kid_method="kubernetes").as_dict() == v["jwk"]


def test_kid_is_hashed_over_spki_even_from_pkcs1(tmp_path: Path) -> None:
    """Re-encoded to SPKI first: the bytes as given (PKCS#1 here) would hash differently."""
    v = vector("kubernetes-keyid.json")
    key = parse_pem(v["pem"].encode(), lambda: None).public_key
    write(tmp_path / "k.pem", public_pem(key, PKCS1))
    config = write_config(
        tmp_path,
        """
        defaults: {key: {kid_method: kubernetes}}
        instances:
          - {id: c, issuer: 'https://oidc.example/c', keys: [{path: k.pem}]}
          - {id: d, issuer: 'https://oidc.example/d', keys: [{path: k.pem, kid: explicit}]}
        """,
    )
    jwks = [d for d in build(config).documents if d.kind == "jwks"]
    assert [d.kids for d in jwks] == [(v["kid"],), ("explicit",)]
