"""Public keys from an existing JWKS document (RFC 7517 §5), e.g. a cluster's
`kubectl get --raw /openid/v1/jwks`, or a hosted issuer's keys during a migration.

Each JWK becomes a cryptography public key and goes through the checks every PEM key goes
through; its members must be exactly what that key serializes to (so a short EC coordinate,
a leading zero octet in `n` or base64 padding is refused, not repaired). Private members
are refused by name, never dropped: a set that carries them has leaked a private key.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .. import files, jsondoc
from ..errors import KeyLoadError, shown
from .jwk import key_type
from .thumbprint import REQUIRED_MEMBERS

LIMIT = files.KEY_LIMIT
# RFC 7518 §6.2.2, §6.3.2 and RFC 8037 §2: what only a private (or symmetric) key has.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
}
_OKP_CURVES: dict[str, Callable[[bytes], PublicKeyTypes]] = {
    "Ed25519": ed25519.Ed25519PublicKey.from_public_bytes,
    "Ed448": ed448.Ed448PublicKey.from_public_bytes,
    "X25519": x25519.X25519PublicKey.from_public_bytes,
    "X448": x448.X448PublicKey.from_public_bytes,
}


class PrivateMemberError(KeyLoadError):
    """A key of the set carries private key material."""


@dataclass(frozen=True)
class Imported:
    """One key of the set, with what the set said about it."""

    index: int  # its place in the set's `keys`
    public_key: PublicKeyTypes
    kid: str | None
    alg: str | None
    certificates: tuple[x509.Certificate, ...] = ()  # from x5c, leaf first


def _b64url(jwk: Mapping[str, object], name: str) -> bytes:
    value = jwk.get(name)
    if value is None:
        raise KeyLoadError(f"member {name} is missing")
    if not isinstance(value, str):
        raise KeyLoadError(f"member {name} must be a string")
    if not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise KeyLoadError(f"member {name} is not base64url without padding (RFC 7515 §2)")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"member {name} is not base64url without padding") from None


def _rsa(jwk: Mapping[str, object]) -> PublicKeyTypes:
    n, e = _b64url(jwk, "n"), _b64url(jwk, "e")
    for name, octets in (("n", n), ("e", e)):
        if not octets:
            raise KeyLoadError(f"member {name} is empty")
        if len(octets) > 1 and octets[0] == 0:
            raise KeyLoadError(
                f"member {name} has a leading zero octet: RSA integers are minimal "
                "(RFC 7518 §6.3.1; AWS STS rejects such an n)"
            )
    try:
        return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
    except ValueError as error:
        raise KeyLoadError(f"not a valid RSA public key ({error})") from None


def _ec(jwk: Mapping[str, object]) -> PublicKeyTypes:
    crv = jwk.get("crv")
    if not isinstance(crv, str) or crv not in _EC_CURVES:
        raise KeyLoadError(
            f"EC curve {crv!r} is not supported; use P-256, P-384 or P-521 (or secp256k1 "
            "with alg ES256K)"
        )
    curve = _EC_CURVES[crv]
    size = (curve.key_size + 7) // 8
    x, y = _b64url(jwk, "x"), _b64url(jwk, "y")
    for name, octets in (("x", x), ("y", y)):
        if len(octets) != size:
            raise KeyLoadError(
                f"member {name} is {len(octets)} octets; {crv} coordinates are exactly {size} "
                "(RFC 7518 §6.2.1.2)"
            )
    try:
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
        )
        return numbers.public_key()
    except ValueError:
        raise KeyLoadError(f"the point (x, y) is not on the curve {crv}") from None


def _okp(jwk: Mapping[str, object]) -> PublicKeyTypes:
    crv = jwk.get("crv")
    if not isinstance(crv, str) or crv not in _OKP_CURVES:
        raise KeyLoadError(f"OKP curve {crv!r} is not supported; use Ed25519 or Ed448")
    x = _b64url(jwk, "x")
    try:
        return _OKP_CURVES[crv](x)
    except ValueError:
        raise KeyLoadError(f"member x is {len(x)} octets, not a {crv} public key") from None


_READERS = {"RSA": _rsa, "EC": _ec, "OKP": _okp}


def public_key(jwk: Mapping[str, object]) -> PublicKeyTypes:
    """The public key a JWK holds, refused unless serializing that key gives back exactly
    the JWK's key members."""
    for name in PRIVATE_MEMBERS:
        if name in jwk:
            raise PrivateMemberError(
                f"member {name} is private key material: a JWKS must hold only public keys "
                "(RFC 7517 §8.1.1); this set has leaked a private key, which must be replaced"
            )
    kty = jwk.get("kty")
    if kty is None:
        raise KeyLoadError("member kty is missing")
    if not isinstance(kty, str) or kty not in _READERS:
        raise KeyLoadError(f"kty {shown(kty)} is not supported (RSA, EC, OKP)")
    key = _READERS[kty](jwk)
    kind = key_type(key)  # refuses X25519/X448 with the reason, as for PEM keys
    members = kind.members(key)
    for name in REQUIRED_MEMBERS[kty]:
        if name != "kty" and members[name] != jwk.get(name):
            raise KeyLoadError(
                f"member {name} is not the canonical encoding of the key it holds "
                f"({kind.kty} {name} must be {members[name]!r})"
            )
    return key


def _optional_string(jwk: Mapping[str, object], name: str) -> str | None:
    value = jwk.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise KeyLoadError(f"member {name} must be a non-empty string")
    for _, reason in jsondoc.problems(value):  # a lone surrogate: not UTF-8, cannot be written
        raise KeyLoadError(f"member {name} {reason}")
    return value


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_key(item: Imported) -> bool:
    """Whether the first certificate of the key's x5c holds the key itself."""
    try:
        return _spki(item.certificates[0].public_key()) == _spki(item.public_key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _certificates(jwk: Mapping[str, object]) -> tuple[x509.Certificate, ...]:
    chain = jwk.get("x5c")
    if chain is None:
        return ()
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise KeyLoadError("member x5c must be a non-empty list of base64 strings")
    certificates = []
    for index, text in enumerate(chain):
        try:
            # Standard base64 with padding, not base64url (RFC 7517 §4.7).
            certificates.append(
                x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
            )
        except (binascii.Error, ValueError):
            raise KeyLoadError(f"x5c[{index}] is not a base64 DER certificate") from None
    return tuple(certificates)


def _key(index: int, jwk: object) -> Imported:
    if not isinstance(jwk, dict):
        raise KeyLoadError("must be a JSON object")
    key = public_key(jwk)
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyLoadError(f"use is {use!r}: only signing keys (use sig) are published")
    ops = jwk.get("key_ops")
    if ops is not None and (
        not isinstance(ops, list) or not all(isinstance(o, str) for o in ops) or "verify" not in ops
    ):
        raise KeyLoadError("key_ops does not include verify: not a signature verification key")
    return Imported(
        index, key, _optional_string(jwk, "kid"), _optional_string(jwk, "alg"), _certificates(jwk)
    )


def parse(data: bytes) -> list[Imported | KeyLoadError]:
    """Every key of a JWKS document, or the reason each one cannot be published (`keys[i]:
    ...`). Raises KeyLoadError when the document itself is not a JWKS."""
    try:
        document = jsondoc.loads(data)
    except ValueError as e:  # UnicodeDecodeError included
        raise KeyLoadError(f"the JWKS file is not JSON ({e})") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeyLoadError('the JWKS file is not a JWK Set: it needs {"keys": [...]} (RFC 7517 §5)')
    if not keys:
        raise KeyLoadError("the JWKS file holds no key")
    found: list[Imported | KeyLoadError] = []
    for index, jwk in enumerate(keys):
        try:
            found.append(_key(index, jwk))
        except KeyLoadError as e:
            found.append(type(e)(f"keys[{index}]: {e}"))
    return found


def load(path: Path) -> list[Imported | KeyLoadError]:
    """A JWKS file's keys. Errors give the reason only: every caller names the file."""
    try:
        data = files.read_regular(path, LIMIT)
    except FileNotFoundError:
        raise KeyLoadError("JWKS file not found") from None
    except files.InputFileError as e:
        raise KeyLoadError(f"JWKS file {e}") from None
    except ValueError:
        raise KeyLoadError("JWKS file cannot be read (its path is not valid)") from None
    return parse(data)
