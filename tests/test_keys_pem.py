"""Every PEM form seen in the wild gives the same public JWK; everything else a clear refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, rsa, x448, x25519

from wellknown_build.errors import KeyLoadError
from wellknown_build.keys import parse_pem, public_jwk

from .helpers import (
    KEY_MAKERS,
    PKCS1,
    PKCS8,
    TRADITIONAL,
    certificate,
    certificate_pem,
    ec_with_parameters,
    private_pem,
    public_pem,
    rsa_key,
)

PASS = b"correct horse"


def _jwk(data: bytes, passphrase: bytes | None = None) -> dict[str, str]:
    return public_jwk(parse_pem(data, lambda: passphrase).public_key).as_dict()


@pytest.mark.parametrize("name", sorted(KEY_MAKERS))
def test_every_form_gives_the_public_jwk(name: str) -> None:
    key = KEY_MAKERS[name]()
    expected = _jwk(public_pem(key))
    forms = {
        "spki": public_pem(key),
        "pkcs8": private_pem(key),
        "pkcs8-encrypted": private_pem(key, passphrase=PASS),
        "certificate": certificate_pem(key),
        "key-and-certificate": private_pem(key) + certificate_pem(key),
    }
    if isinstance(key, rsa.RSAPrivateKey):
        forms["pkcs1-public"] = public_pem(key, PKCS1)
        forms["pkcs1-private"] = private_pem(key, TRADITIONAL)
        forms["pkcs1-encrypted"] = private_pem(key, TRADITIONAL, PASS)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        forms["sec1"] = private_pem(key, TRADITIONAL)
        forms["sec1-with-parameters"] = ec_with_parameters(key)
        forms["sec1-encrypted"] = private_pem(key, TRADITIONAL, PASS)
    for form, data in forms.items():
        assert _jwk(data, PASS) == expected, form


def test_label_is_only_a_hint() -> None:
    spki = public_pem(KEY_MAKERS["p256"]())
    mislabelled = spki.replace(b"PUBLIC KEY", b"PRIVATE KEY")
    assert _jwk(mislabelled) == _jwk(spki)


def test_certificate_chain_uses_the_leaf() -> None:
    leaf, ca = KEY_MAKERS["p256"](), KEY_MAKERS["p384"]()
    chain = certificate(leaf, "leaf", ca).public_bytes(
        __import__("cryptography").hazmat.primitives.serialization.Encoding.PEM
    ) + certificate_pem(ca, "ca")
    loaded = parse_pem(chain, lambda: None)
    assert len(loaded.certificates) == 2
    assert public_jwk(loaded.public_key).as_dict() == _jwk(public_pem(leaf))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello", "no PEM block found"),
        (b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "not valid base64"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a key"),
    ],
)
def test_not_a_key(data: bytes, message: str) -> None:
    with pytest.raises(KeyLoadError, match=message):
        parse_pem(data, lambda: None)


def test_two_different_keys_in_one_file() -> None:
    data = public_pem(KEY_MAKERS["p256"]()) + public_pem(KEY_MAKERS["p256"]())
    with pytest.raises(KeyLoadError, match="2 different keys"):
        parse_pem(data, lambda: None)


def test_private_key_and_foreign_certificate() -> None:
    data = private_pem(KEY_MAKERS["p256"]()) + certificate_pem(KEY_MAKERS["p256"]())
    with pytest.raises(KeyLoadError, match="different keys"):
        parse_pem(data, lambda: None)


@pytest.mark.parametrize("fmt", ["pkcs8", "traditional"])
def test_encrypted_without_passphrase(fmt: str) -> None:
    key = KEY_MAKERS["p256"]()
    data = private_pem(key, TRADITIONAL if fmt == "traditional" else PKCS8, PASS)
    with pytest.raises(KeyLoadError, match="encrypted; set passphrase_env"):
        parse_pem(data, lambda: None)
    with pytest.raises(KeyLoadError, match="does not decrypt"):
        parse_pem(data, lambda: b"wrong")


def test_passphrase_is_asked_only_for_encrypted_keys() -> None:
    def never() -> bytes:
        raise AssertionError("asked")

    _jwk(private_pem(KEY_MAKERS["p256"]()), None)
    parse_pem(private_pem(KEY_MAKERS["p256"]()), never)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "1024 bits is too short"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "curve secp224r1 is not supported"),
        (lambda: ec.generate_private_key(ec.BrainpoolP256R1()), "not supported"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "explicit opt-in"),
        (x25519.X25519PrivateKey.generate, "X25519 keys are key-agreement keys"),
        (x448.X448PrivateKey.generate, "X448 keys are key-agreement keys"),
        (lambda: dsa.generate_private_key(2048), "DSA keys are not supported"),
    ],
)
def test_refused_key_types(make: Callable[[], Any], message: str) -> None:
    key = make()
    with pytest.raises(KeyLoadError, match=message):
        public_jwk(parse_pem(public_pem(key), lambda: None).public_key)


def test_dh_refused() -> None:
    params = dh.generate_parameters(generator=2, key_size=512)
    key = params.generate_private_key()
    with pytest.raises(KeyLoadError, match="DH keys are key-agreement keys"):
        public_jwk(parse_pem(public_pem(key), lambda: None).public_key)


def test_secp256k1_on_opt_in() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    jwk = public_jwk(key.public_key(), alg="ES256K")
    assert jwk.as_dict()["crv"] == "secp256k1"


@pytest.mark.parametrize(
    ("name", "alg", "ok"),
    [
        ("rsa2048", "PS256", True),
        ("rsa2048", "ES256", False),
        ("p256", "ES384", False),
        ("p521", "ES521", False),
        ("p521", "ES512", True),
        ("ed25519", "Ed25519", True),
        ("ed448", "Ed448", True),
        ("ed25519", "Ed448", False),
        ("ed25519", "none", False),
    ],
)
def test_alg_must_fit_the_key(name: str, alg: str, ok: bool) -> None:
    key = KEY_MAKERS[name]().public_key()
    if ok:
        assert public_jwk(key, alg=alg).alg == alg
    else:
        with pytest.raises(KeyLoadError, match="does not fit"):
            public_jwk(key, alg=alg)


def test_rsa_exponent_minimal() -> None:
    key = rsa.RSAPublicNumbers(3, rsa_key().public_key().public_numbers().n).public_key()
    assert dict(public_jwk(key).members)["e"] == "Aw"
