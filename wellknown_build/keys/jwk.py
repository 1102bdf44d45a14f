"""Public JWKs from public keys: allow-listed members, alg, use and kid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..errors import AlgError, KeyLoadError
from .ec import EC
from .okp import OKP
from .rsa import RSA
from .thumbprint import rfc7638, spki_sha256
from .types import KeyType

KEY_TYPES: tuple[KeyType, ...] = (RSA, EC, OKP)
KID_METHODS = ("rfc7638", "kubernetes")

_REFUSED = (
    (x25519.X25519PublicKey, "X25519 keys are key-agreement keys, not signing keys"),
    (x448.X448PublicKey, "X448 keys are key-agreement keys, not signing keys"),
)
# Named, not imported: cryptography deprecates its DSA (51) and finite-field DH classes, and
# touching them warns on every run.
_REFUSED_BY_NAME = (
    ("DSA", "DSA keys are not supported by JOSE relying parties"),
    ("DH", "DH keys are key-agreement keys, not signing keys"),
)


@dataclass(frozen=True)
class JWK:
    """A public signing key as published: `use`, `kty`, `kid`, `alg`, then its members."""

    kty: str
    kid: str
    alg: str
    members: tuple[tuple[str, str], ...]
    thumbprint: str
    certificates: tuple[str, ...] = ()  # x5c: standard base64 DER, leaf first
    x5t_s256: str | None = None
    spki_kid: str = ""  # the Kubernetes kid, filled in when a relying party needs it

    def with_kid(self, kid: str) -> JWK:
        """The same key under another kid (dataclasses.replace, at less than half the cost:
        it is called for every key of every instance that names its kid)."""
        return JWK(
            self.kty,
            kid,
            self.alg,
            self.members,
            self.thumbprint,
            self.certificates,
            self.x5t_s256,
            self.spki_kid,
        )

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "use": "sig",
            "kty": self.kty,
            "kid": self.kid,
            "alg": self.alg,
            **dict(self.members),
        }
        if self.certificates:
            result["x5c"] = list(self.certificates)
            result["x5t#S256"] = self.x5t_s256
        return result


def key_type(key: PublicKeyTypes) -> KeyType:
    for candidate in KEY_TYPES:
        if candidate.accepts(key):
            return candidate
    for cls, reason in _REFUSED:
        if isinstance(key, cls):
            raise KeyLoadError(reason)
    name = type(key).__name__
    for prefix, reason in _REFUSED_BY_NAME:
        if name.startswith(prefix):
            raise KeyLoadError(reason)
    raise KeyLoadError(f"{name} is not a supported key type")


def public_jwk(
    key: PublicKeyTypes,
    *,
    alg: str | None = None,
    kid: str | None = None,
    kid_method: str = "rfc7638",
) -> JWK:
    kind = key_type(key)
    algs = kind.algs(key, alg)
    if alg is None:
        alg = algs[0]
    elif alg not in algs:
        why = kind.restriction(key)
        raise AlgError(
            f"{alg} does not fit this key{f': {why}' if why else ''} (allowed: {', '.join(algs)})"
        )
    members = kind.members(key)
    thumbprint = rfc7638({"kty": kind.kty, **members})
    if kid is None:
        kid = thumbprint if kid_method == "rfc7638" else spki_sha256(key)
    return JWK(kind.kty, kid, alg, tuple(members.items()), thumbprint)
