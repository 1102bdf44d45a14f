"""EC public keys (RFC 7518 §6.2.1): crv, and x, y padded to exactly the field size."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..errors import KeyLoadError
from .b64 import uint_fixed
from .types import KeyType


@dataclass(frozen=True)
class Curve:
    crv: str
    size: int  # octets per coordinate
    alg: str
    opt_in: bool = False  # published only when its alg is asked for explicitly


CURVES: dict[str, Curve] = {
    "secp256r1": Curve("P-256", 32, "ES256"),
    "secp384r1": Curve("P-384", 48, "ES384"),
    "secp521r1": Curve("P-521", 66, "ES512"),  # ES512, not ES521 (RFC 7518 §3.4)
    "secp256k1": Curve("secp256k1", 32, "ES256K", opt_in=True),  # RFC 8812
}


def _key(key: PublicKeyTypes) -> ec.EllipticCurvePublicKey:
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _curve(key: PublicKeyTypes) -> Curve:
    name = _key(key).curve.name
    if name not in CURVES:
        raise KeyLoadError(
            f"EC curve {name} is not supported; use P-256, P-384 or P-521 "
            "(or secp256k1 with alg ES256K)"
        )
    return CURVES[name]


def _algs(key: PublicKeyTypes, requested: str | None) -> tuple[str, ...]:
    curve = _curve(key)
    if curve.opt_in and requested != curve.alg:
        raise KeyLoadError(
            f"EC curve {curve.crv} is published only on explicit opt-in: set alg: {curve.alg}"
        )
    return (curve.alg,)


def _members(key: PublicKeyTypes) -> dict[str, str]:
    curve = _curve(key)
    numbers = _key(key).public_numbers()
    return {
        "crv": curve.crv,
        "x": uint_fixed(numbers.x, curve.size),
        "y": uint_fixed(numbers.y, curve.size),
    }


def _describe(key: PublicKeyTypes) -> str:
    name = _key(key).curve.name
    return f"EC {CURVES[name].crv if name in CURVES else name}"


EC = KeyType(
    kty="EC",
    accepts=lambda key: isinstance(key, ec.EllipticCurvePublicKey),
    describe=_describe,
    algs=_algs,
    members=_members,
)
