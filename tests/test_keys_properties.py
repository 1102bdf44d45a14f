"""Rules that must hold for every key: exact lengths, round trips, no private members."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk as jwcrypto_jwk

from wellknown_build.keys import parse_pem, public_jwk
from wellknown_build.keys.b64 import b64url_decode, uint_minimal

from .helpers import private_pem, rsa_key

CURVES = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
ALLOWED = {
    "RSA": {"use", "kty", "kid", "alg", "n", "e"},
    "EC": {"use", "kty", "kid", "alg", "crv", "x", "y"},
    "OKP": {"use", "kty", "kid", "alg", "crv", "x"},
}
PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _through_private_pem(key: object) -> dict[str, str]:
    """Render from the private PEM, the input that could leak."""
    loaded = parse_pem(private_pem(key), lambda: None)  # type: ignore[arg-type]
    return public_jwk(loaded.public_key).as_dict()


def _check_with_jwcrypto(jwk: dict[str, str]) -> None:
    other = jwcrypto_jwk.JWK(**jwk)
    assert not other.has_private
    assert other.thumbprint() == jwk["kid"]


@settings(max_examples=150, deadline=None)
@given(crv=st.sampled_from(sorted(CURVES)), data=st.data())
def test_ec_coordinates_are_padded(crv: str, data: st.DataObject) -> None:
    curve, size = CURVES[crv]
    # Any scalar below 2^(bits-1) is below the group order of these curves.
    scalar = data.draw(st.integers(min_value=1, max_value=2 ** (curve.key_size - 1)))
    key = ec.derive_private_key(scalar, curve)
    jwk = _through_private_pem(key)
    assert set(jwk) == ALLOWED["EC"]
    assert len(b64url_decode(jwk["x"])) == size
    assert len(b64url_decode(jwk["y"])) == size
    numbers = key.public_key().public_numbers()
    assert int.from_bytes(b64url_decode(jwk["x"]), "big") == numbers.x
    assert int.from_bytes(b64url_decode(jwk["y"]), "big") == numbers.y
    _check_with_jwcrypto(jwk)


def test_short_p256_coordinate_is_padded() -> None:
    """Search the first scalars for a point whose x has a leading zero octet, then check it."""
    for scalar in range(1, 5000):
        key = ec.derive_private_key(scalar, ec.SECP256R1())
        if key.public_key().public_numbers().x < 1 << 248:
            break
    else:
        raise AssertionError("no short coordinate among the first scalars")
    jwk = _through_private_pem(key)
    assert b64url_decode(jwk["x"])[0] == 0
    assert len(b64url_decode(jwk["x"])) == 32


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32))
def test_ed25519(seed: bytes) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    jwk = _through_private_pem(key)
    assert set(jwk) == ALLOWED["OKP"]
    assert len(b64url_decode(jwk["x"])) == 32
    assert jwk["alg"] == "EdDSA"
    _check_with_jwcrypto(jwk)


@settings(max_examples=30, deadline=None)
@given(seed=st.binary(min_size=57, max_size=57))
def test_ed448(seed: bytes) -> None:
    key = ed448.Ed448PrivateKey.from_private_bytes(seed)
    jwk = _through_private_pem(key)
    assert len(b64url_decode(jwk["x"])) == 57
    _check_with_jwcrypto(jwk)


@settings(max_examples=300)
@given(value=st.integers(min_value=1, max_value=1 << 4200))
def test_uint_minimal(value: int) -> None:
    raw = b64url_decode(uint_minimal(value))
    assert raw[0] != 0
    assert int.from_bytes(raw, "big") == value
    assert "=" not in uint_minimal(value)


def test_rsa_sizes_are_exact() -> None:
    for bits in (2048, 3072, 4096):
        key = rsa_key(bits)
        jwk = _through_private_pem(key)
        assert set(jwk) == ALLOWED["RSA"]
        n = b64url_decode(jwk["n"])
        assert len(n) == bits // 8 and n[0] != 0
        numbers = key.public_key().public_numbers()
        back = rsa.RSAPublicNumbers(
            int.from_bytes(b64url_decode(jwk["e"]), "big"), int.from_bytes(n, "big")
        )
        assert back == numbers
        _check_with_jwcrypto(jwk)


def test_no_private_member_ever() -> None:
    for key in (
        rsa_key(),
        ec.generate_private_key(ec.SECP521R1()),
        ed448.Ed448PrivateKey.generate(),
    ):
        jwk = _through_private_pem(key)
        assert not PRIVATE & set(jwk)
        assert '"d"' not in json.dumps(jwk)
