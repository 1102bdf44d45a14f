"""x5c and x5t#S256 (RFC 7517 §4.7, §4.9) for keys given as certificates."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..errors import KeyLoadError
from .b64 import b64url
from .jwk import JWK


def check_chain(certificates: tuple[x509.Certificate, ...]) -> None:
    """Leaf first, each certificate issued (and signed) by the one after it (RFC 7517 §4.7)."""
    for index, (child, parent) in enumerate(itertools.pairwise(certificates)):
        try:
            if child.issuer != parent.subject:
                raise ValueError
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise KeyLoadError(
                f"certificate {index + 2} in the file did not issue certificate {index + 1}: "
                "x5c must list the leaf first, then each issuer in order"
            ) from None


def check_names(certificates: tuple[x509.Certificate, ...]) -> None:
    """cryptography parses names only when asked: a certificate published in x5c must have
    a subject and issuer that can be read."""
    for index, cert in enumerate(certificates):
        try:
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
        except (ValueError, TypeError):  # TypeError: an attribute of the wrong string type
            raise KeyLoadError(
                f"certificate {index + 1} in the file has a subject or issuer that cannot be read"
            ) from None


def with_certificates(jwk: JWK, certificates: tuple[x509.Certificate, ...]) -> JWK:
    if not certificates:
        raise KeyLoadError("x5c needs the key given as a certificate (or a chain, leaf first)")
    check_names(certificates)
    check_chain(certificates)
    ders = [c.public_bytes(serialization.Encoding.DER) for c in certificates]
    return dataclasses.replace(
        jwk,
        # x5c is standard base64 with padding, not base64url (RFC 7517 §4.7).
        certificates=tuple(base64.b64encode(der).decode("ascii") for der in ders),
        x5t_s256=b64url(hashlib.sha256(ders[0]).digest()),
    )
