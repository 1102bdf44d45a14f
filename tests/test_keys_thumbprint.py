"""RFC vectors, read from tests/data, through the same code that renders."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from wellknown_build.keys import public_jwk, rfc7638
from wellknown_build.keys.b64 import b64url_decode

from .helpers import vector


def test_rfc7638_rsa_example() -> None:
    v = vector("rfc7638-3.1.json")
    assert rfc7638(v["jwk"]) == v["thumbprint"]


def test_rfc7638_rsa_example_from_the_key_itself() -> None:
    v = vector("rfc7638-3.1.json")
    n = int.from_bytes(b64url_decode(v["jwk"]["n"]), "big")
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    jwk = public_jwk(key)
    assert jwk.kid == v["thumbprint"]
    assert dict(jwk.members) == {"n": v["jwk"]["n"], "e": "AQAB"}


def test_rfc8037_ed25519_example_from_the_private_key() -> None:
    v = vector("rfc8037-a.json")
    private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(v["d"]))
    jwk = public_jwk(private.public_key())
    assert jwk.as_dict() == {"use": "sig", "alg": "EdDSA", "kid": v["thumbprint"], **v["jwk"]}


def test_thumbprint_ignores_optional_members() -> None:
    v = vector("rfc8037-a.json")
    assert rfc7638({**v["jwk"], "kid": "x", "alg": "EdDSA", "use": "sig"}) == v["thumbprint"]
