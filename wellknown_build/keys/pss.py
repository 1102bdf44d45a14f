"""RSA-PSS keys: RSA keys whose algorithm is id-RSASSA-PSS (RFC 4055 §1.2, §3.1).

Such a key may sign only with RSASSA-PSS, and its RSASSA-PSS-params, when present, fix the
hash, the mask generation function and the least salt length (RFC 8017 §A.2.3). cryptography
(since 37) loads these keys as plain RSA keys and drops the algorithm, so that re-encoding
one gives an rsaEncryption SPKI: another kid, and RS256 allowed. Here the algorithm is read
from the file's own DER, and the key is carried as an RSAPSSPublicKey, which remembers the
SPKI as written (id-RSASSA-PSS and its parameters) and its restriction.
"""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding

from ..errors import KeyLoadError
from . import der

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
HASHES = {
    "1.3.14.3.2.26": "SHA-1",
    "2.16.840.1.101.3.4.2.4": "SHA-224",
    "2.16.840.1.101.3.4.2.1": "SHA-256",
    "2.16.840.1.101.3.4.2.2": "SHA-384",
    "2.16.840.1.101.3.4.2.3": "SHA-512",
    "2.16.840.1.101.3.4.2.5": "SHA-512/224",
    "2.16.840.1.101.3.4.2.6": "SHA-512/256",
}
# RFC 7518 §3.5: PSnnn is RSASSA-PSS with SHA-nnn, MGF1 with SHA-nnn and a salt as long as
# the hash output.
JOSE = {"SHA-256": ("PS256", 32), "SHA-384": ("PS384", 48), "SHA-512": ("PS512", 64)}
UNRESTRICTED_ALGS = ("PS256", "PS384", "PS512")


@dataclass(frozen=True)
class Restriction:
    """The RSASSA-PSS-params of a key, RFC 4055's defaults filled in (SHA-1, MGF1 with SHA-1,
    salt 20, trailer 1): an empty parameter SEQUENCE means exactly those."""

    hash: str  # a name from HASHES, or the dotted OID of a hash this module does not know
    mgf: str  # "MGF1 with SHA-384", or the dotted OID of another mask generation function
    salt_length: int  # the least salt length the key allows
    trailer_field: int = 1

    def describe(self) -> str:
        return f"{self.hash}, {self.mgf}, salt of at least {self.salt_length} octets"

    def algs(self) -> tuple[str, ...]:
        """The one JWS algorithm the key may sign with; KeyLoadError if there is none."""
        if self.hash not in JOSE:
            raise KeyLoadError(
                f"this RSA-PSS key is restricted to PSS with {self.hash}, which no JWS "
                "algorithm uses (PS256, PS384 and PS512 use SHA-256, SHA-384 and SHA-512)"
            )
        alg, size = JOSE[self.hash]
        if self.mgf != f"MGF1 with {self.hash}":
            raise KeyLoadError(
                f"this RSA-PSS key is restricted to PSS with {self.hash} and {self.mgf}; "
                f"{alg} needs MGF1 with {self.hash} (RFC 7518 §3.5)"
            )
        if self.salt_length > size:
            raise KeyLoadError(
                f"this RSA-PSS key needs salts of at least {self.salt_length} octets; "
                f"{alg} uses {size} (RFC 7518 §3.5)"
            )
        if self.trailer_field != 1:
            raise KeyLoadError(
                f"this RSA-PSS key has trailer field {self.trailer_field}; "
                "RSASSA-PSS defines only 1 (RFC 8017 §A.2.3)"
            )
        return (alg,)


class RSAPSSPublicKey(rsa.RSAPublicKey):
    """An RSA public key whose algorithm is id-RSASSA-PSS.

    It is an rsa.RSAPublicKey (n, e and the JWK are those of the RSA key), but it serializes
    to its own SPKI, so that the Kubernetes kid and the SPKI SHA-256 are the ones openssl
    gives for the file. `restriction` is None for a key without parameters (any hash)."""

    def __init__(self, key: rsa.RSAPublicKey, spki: bytes, restriction: Restriction | None) -> None:
        self._key = key
        self._spki = spki
        self.restriction = restriction

    @property
    def spki(self) -> bytes:
        return self._spki

    def algs(self) -> tuple[str, ...]:
        return UNRESTRICTED_ALGS if self.restriction is None else self.restriction.algs()

    def describe_restriction(self) -> str:
        return "none (any hash)" if self.restriction is None else self.restriction.describe()

    def note(self) -> str:
        """Why RS* (or another PS*) does not fit the key, for the alg error."""
        only = "" if self.restriction is None else f" with {self.restriction.hash}"
        return f"it is an RSA-PSS key (id-RSASSA-PSS, RFC 4055), restricted to PSS signatures{only}"

    @property
    def key_size(self) -> int:
        return self._key.key_size

    def public_numbers(self) -> rsa.RSAPublicNumbers:
        return self._key.public_numbers()

    def public_bytes(self, encoding: ser.Encoding, format: ser.PublicFormat) -> bytes:
        if format is ser.PublicFormat.SubjectPublicKeyInfo:
            if encoding is ser.Encoding.DER:
                return self._spki
            if encoding is ser.Encoding.PEM:
                body = "\n".join(textwrap.wrap(base64.b64encode(self._spki).decode(), 64))
                return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n".encode()
        return self._key.public_bytes(encoding, format)

    def verify(
        self,
        signature: bytes,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: asym_utils.Prehashed | hashes.HashAlgorithm,
    ) -> None:
        _pss_only(padding)
        self._key.verify(signature, data, padding, algorithm)

    def encrypt(self, plaintext: bytes, padding: AsymmetricPadding) -> bytes:
        raise ValueError("an RSA-PSS key is a signature key: it does not encrypt (RFC 4055)")

    def recover_data_from_signature(
        self,
        signature: bytes,
        padding: AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | asym_utils.NoDigestInfo | None,
    ) -> bytes:
        _pss_only(padding)
        return self._key.recover_data_from_signature(signature, padding, algorithm)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RSAPSSPublicKey) and other._spki == self._spki

    def __hash__(self) -> int:
        return hash(self._spki)

    def __copy__(self) -> RSAPSSPublicKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> RSAPSSPublicKey:
        return self

    def __repr__(self) -> str:
        return f"<RSAPSSPublicKey {self.key_size} bits, {self.describe_restriction()}>"


def _pss_only(scheme: AsymmetricPadding) -> None:
    if not isinstance(scheme, padding.PSS):
        raise ValueError("an RSA-PSS key verifies only PSS signatures (RFC 4055 §1.2)")


def _unreadable() -> KeyLoadError:
    return KeyLoadError("the RSA-PSS parameters of the key cannot be read (RFC 4055 §3.1)")


def _hash(algorithm: der.TLV) -> str:
    """A HashAlgorithm: its OID, parameters NULL or absent (RFC 4055 §2.1)."""
    fields = der.children(algorithm)
    if not 1 <= len(fields) <= 2 or (len(fields) == 2 and fields[1].encoded != b"\x05\x00"):
        raise der.DERError("hash parameters")
    name = der.oid(fields[0])
    return HASHES.get(name, name)


def _explicit(element: der.TLV) -> der.TLV:
    inner = der.children(element, None)
    if len(inner) != 1:
        raise der.DERError("an explicit tag holds one element")
    return inner[0]


def restriction(algorithm: der.TLV) -> Restriction | None:
    """The restriction an id-RSASSA-PSS AlgorithmIdentifier states; None when it has no
    parameters. KeyLoadError when they cannot be read."""
    try:
        fields = der.children(algorithm)
        if len(fields) == 1:
            return None
        if len(fields) != 2:
            raise der.DERError("algorithm identifier")
        hash_name, mgf, salt, trailer = "SHA-1", "MGF1 with SHA-1", 20, 1
        last = -1
        for field in der.children(fields[1]):  # RSASSA-PSS-params, explicitly tagged members
            number = field.tag ^ 0xA0
            if not 0 <= number <= 3 or number <= last:
                raise der.DERError("RSASSA-PSS-params member out of order")
            last = number
            inner = _explicit(field)
            if number == 0:
                hash_name = _hash(inner)
            elif number == 1:
                function = der.children(inner)
                name = _algorithm(inner)
                if name == _MGF1:
                    if len(function) != 2:
                        raise der.DERError("MGF1 parameters")
                    mgf = f"MGF1 with {_hash(function[1])}"
                else:
                    mgf = f"mask generation function {name}"
            elif number == 2:
                salt = der.integer(inner)
            else:
                trailer = der.integer(inner)
        return Restriction(hash_name, mgf, salt, trailer)
    except der.DERError:
        raise _unreadable() from None


def _algorithm(algorithm: der.TLV) -> str:
    """The OID of an AlgorithmIdentifier."""
    fields = der.children(algorithm)
    if not 1 <= len(fields) <= 2:
        raise der.DERError("algorithm identifier")
    return der.oid(fields[0])


def from_spki(key: rsa.RSAPublicKey, spki: bytes) -> rsa.RSAPublicKey:
    """The key a SubjectPublicKeyInfo holds: an RSAPSSPublicKey if its algorithm is
    id-RSASSA-PSS, else `key` as cryptography loaded it (a PKCS#1 RSAPublicKey included)."""
    try:
        fields = der.children(der.parse(spki))
        if len(fields) != 2 or fields[1].tag != der.BIT_STRING:
            raise der.DERError("not a SubjectPublicKeyInfo")
        algorithm = fields[0]
        name = _algorithm(algorithm)
    except der.DERError:  # not an SPKI: PKCS#1 (a SEQUENCE of two INTEGERs)
        return key
    if name != RSASSA_PSS:
        return key
    return RSAPSSPublicKey(key, spki, restriction(algorithm))


def spki_for(key: rsa.RSAPublicKey, algorithm: der.TLV) -> bytes:
    """The SPKI of `key` under `algorithm`, as openssl derives it from a private key."""
    pkcs1 = key.public_bytes(ser.Encoding.DER, ser.PublicFormat.PKCS1)
    return der.encode(der.SEQUENCE, algorithm.encoded + der.encode(der.BIT_STRING, b"\0" + pkcs1))


def from_private_key_info(key: rsa.RSAPublicKey, info: bytes) -> rsa.RSAPublicKey:
    """The public half of a PKCS#8 PrivateKeyInfo (RFC 5208 §5) whose key cryptography loaded
    as `key`: an RSAPSSPublicKey if privateKeyAlgorithm is id-RSASSA-PSS. A traditional
    PKCS#1 RSAPrivateKey (no algorithm) is plain RSA."""
    try:
        fields = der.children(der.parse(info))
        if len(fields) < 3 or fields[0].tag != der.INTEGER or fields[1].tag != der.SEQUENCE:
            return key  # PKCS#1: version, then INTEGERs
        algorithm = fields[1]
        name = _algorithm(algorithm)
    except der.DERError:
        return key
    if name != RSASSA_PSS:
        return key
    return RSAPSSPublicKey(key, spki_for(key, algorithm), restriction(algorithm))


def certificate_spki(tbs_certificate: bytes) -> bytes:
    """The subjectPublicKeyInfo of a TBSCertificate (RFC 5280 §4.1), as written."""
    fields = der.children(der.parse(tbs_certificate))
    skip = 1 if fields and fields[0].tag == der.context(0) else 0  # [0] version
    # serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo
    if len(fields) < skip + 6:
        raise der.DERError("TBSCertificate too short")
    return fields[skip + 5].encoded
