"""RSA public keys (RFC 7518 §6.3.1): members n and e, minimal unsigned integers."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..errors import KeyLoadError
from .b64 import uint_minimal
from .pss import RSAPSSPublicKey
from .types import KeyType

MIN_BITS = 2048  # RFC 7518 §3.3
ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
# An RSA-PSS key (id-RSASSA-PSS) signs only with PSS, and with its one hash if it fixes one
# (RFC 4055 §1.2): PS256 by default, or the PSnnn of that hash.


def _key(key: PublicKeyTypes) -> rsa.RSAPublicKey:
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _check(numbers: rsa.RSAPublicNumbers) -> None:
    """An even modulus has the factor 2, and an exponent must be odd and at least 3: no real
    key looks like that, and cryptography loads an even modulus all the same."""
    if numbers.n % 2 == 0:
        raise KeyLoadError("this RSA public key cannot be valid: its modulus is even")
    if numbers.e < 3 or numbers.e % 2 == 0:
        raise KeyLoadError(
            f"this RSA public key cannot be valid: its exponent {numbers.e} is even or below 3"
        )


def _algs(key: PublicKeyTypes, requested: str | None) -> tuple[str, ...]:
    _check(_key(key).public_numbers())
    bits = _key(key).key_size
    if bits < MIN_BITS:
        raise KeyLoadError(f"RSA key of {bits} bits is too short; at least {MIN_BITS} are required")
    return key.algs() if isinstance(key, RSAPSSPublicKey) else ALGS


def _describe(key: PublicKeyTypes) -> str:
    if isinstance(key, RSAPSSPublicKey):
        only = "" if key.restriction is None else f", {key.restriction.hash} only"
        return f"RSA-PSS {key.key_size}{only}"
    return f"RSA {_key(key).key_size}"


def _members(key: PublicKeyTypes) -> dict[str, str]:
    numbers = _key(key).public_numbers()
    return {"n": uint_minimal(numbers.n), "e": uint_minimal(numbers.e)}


RSA = KeyType(
    kty="RSA",
    accepts=lambda key: isinstance(key, rsa.RSAPublicKey),
    describe=_describe,
    algs=_algs,
    members=_members,
    restriction=lambda key: key.note() if isinstance(key, RSAPSSPublicKey) else None,
)
