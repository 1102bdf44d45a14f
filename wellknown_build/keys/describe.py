"""What `inspect` tells about a key file: identities a person compares across systems."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import KeyLoadError
from .jwk import key_type, public_jwk
from .pem import LoadedKey
from .pss import RSAPSSPublicKey
from .thumbprint import spki_sha256
from .types import KeyType


def _name(cert: x509.Certificate, which: str) -> str:
    """cryptography parses names only when asked; a broken one is shown, not a traceback."""
    try:
        name: x509.Name = getattr(cert, which)
        return name.rfc4514_string()
    except (ValueError, TypeError):  # TypeError: an attribute of the wrong ASN.1 string type
        return "(cannot be read)"


def _certificate(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": _name(cert, "subject"),
        "issuer": _name(cert, "issuer"),
        "not_valid_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_valid_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def describe(loaded: LoadedKey) -> dict[str, Any]:
    key = loaded.public_key
    # An RSA-PSS key serializes to its own SPKI (id-RSASSA-PSS), as openssl prints it.
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    facts: dict[str, Any] = {
        "source": loaded.source,
        "spki_sha256": hashlib.sha256(spki).hexdigest(),
        "kid_kubernetes": spki_sha256(key),
    }
    if isinstance(key, RSAPSSPublicKey):
        facts["rsa_pss"] = key.describe_restriction()
    try:
        kind: KeyType = key_type(key)
        facts["type"] = kind.describe(key)
        # Asking for ES256K lets inspect describe secp256k1 keys too; other keys ignore it.
        jwk = public_jwk(key, alg=kind.algs(key, "ES256K")[0])
        facts.update(
            publishable=True,
            default_alg=jwk.alg,
            algs=list(kind.algs(key, jwk.alg)),
            kid_rfc7638=jwk.thumbprint,
        )
    except KeyLoadError as e:
        facts.setdefault("type", type(key).__name__.removeprefix("_"))
        facts.update(publishable=False, reason=str(e))
    if loaded.certificates:
        facts["certificates"] = [_certificate(c) for c in loaded.certificates]
    return facts


def text(report: dict[str, Any]) -> list[str]:
    """`inspect`'s lines for a person: the file, then one aligned row per fact."""
    rows = [("type", report["type"]), ("from", f"{report['source']} key")]
    if "rsa_pss" in report:
        rows.append(("PSS restriction", report["rsa_pss"]))
    if report["publishable"]:
        rows += [
            ("default alg", report["default_alg"]),
            ("algs", ", ".join(report["algs"])),
            ("kid (RFC 7638)", report["kid_rfc7638"]),
        ]
    else:
        rows.append(("not publishable", report["reason"]))
    rows += [
        ("kid (kubernetes)", report["kid_kubernetes"]),
        ("SPKI SHA-256", report["spki_sha256"]),
    ]
    for index, cert in enumerate(report.get("certificates", [])):
        rows += [
            (f"certificate {index + 1}", cert["subject"]),
            ("  issuer", cert["issuer"]),
            ("  valid", f"{cert['not_valid_before']} .. {cert['not_valid_after']}"),
        ]
    return [report["file"], *(f"  {name:<17} {value}" for name, value in rows)]
