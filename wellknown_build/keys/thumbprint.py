"""kid computations: RFC 7638 thumbprints and the Kubernetes SPKI hash."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .b64 import b64url

REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


_PLAIN = re.compile(r"^[A-Za-z0-9_.-]*$")  # needs no JSON escaping


def rfc7638(jwk: Mapping[str, str]) -> str:
    """SHA-256 over the required members only, sorted, no whitespace (RFC 7638 §3)."""
    names = REQUIRED_MEMBERS[jwk["kty"]]  # listed in sorted order
    values = [jwk[name] for name in names]
    if all(_PLAIN.match(v) for v in values):  # base64url and curve names: the usual case
        canonical = "{" + ",".join(f'"{n}":"{v}"' for n, v in zip(names, values, strict=True)) + "}"
    else:
        required = dict(zip(names, values, strict=True))
        canonical = json.dumps(required, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def spki_sha256(key: PublicKeyTypes) -> str:
    """base64url(SHA-256(DER SubjectPublicKeyInfo)), as kube-apiserver computes its kids."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(der).digest())
