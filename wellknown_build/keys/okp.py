"""OKP signing keys (RFC 8037 §2): Ed25519 and Ed448, member x as raw public bytes."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .b64 import b64url
from .types import KeyType


def _crv(key: PublicKeyTypes) -> str:
    return "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"


def _members(key: PublicKeyTypes) -> dict[str, str]:
    assert isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": _crv(key), "x": b64url(raw)}


OKP = KeyType(
    kty="OKP",
    accepts=lambda key: isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey),
    describe=_crv,
    # EdDSA first (RFC 8037); the fully specified names of RFC 9864 on request.
    algs=lambda key, requested: ("EdDSA", _crv(key)),
    members=_members,
)
