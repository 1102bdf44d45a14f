"""Opening an EncryptedPrivateKeyInfo (RFC 5208 §6) to read its key's algorithm.

cryptography decrypts PKCS#8 for us but hands back a key that no longer says whether it was
an RSA-PSS key, so an RSA key that arrived encrypted is decrypted once more here, with the
same passphrase, to read privateKeyAlgorithm. The schemes are those OpenSSL and cryptography
write: PBES2 (RFC 8018 §6.2) with PBKDF2 (HMAC-SHA-1/224/256/384/512) or scrypt (RFC 7914)
and AES-128/192/256-CBC or DES-EDE3-CBC, and PBES1 pbeWithSHAAnd3-KeyTripleDES-CBC with the
PKCS#12 key derivation (RFC 7292 §B.2). RC2 (40 or 128 bits) is not: such a key is refused
with a way out, rather than published without knowing its algorithm.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes

from ..errors import KeyLoadError
from . import der

try:  # cryptography >= 43 moved TripleDES here
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import (
        TripleDES,
    )

_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_SCRYPT = "1.3.6.1.4.1.11591.4.11"
_PBE_SHA1_3DES = "1.2.840.113549.1.12.1.3"
_PRFS = {
    "1.2.840.113549.2.7": "sha1",
    "1.2.840.113549.2.8": "sha224",
    "1.2.840.113549.2.9": "sha256",
    "1.2.840.113549.2.10": "sha384",
    "1.2.840.113549.2.11": "sha512",
}
_AES = {  # key size in octets
    "2.16.840.1.101.3.4.1.2": 16,
    "2.16.840.1.101.3.4.1.22": 24,
    "2.16.840.1.101.3.4.1.42": 32,
}
_DES_EDE3_CBC = "1.2.840.113549.3.7"
_NAMES = {
    "1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC",
    "1.2.840.113549.1.12.1.5": "pbeWithSHAAnd128BitRC2-CBC",
    "1.2.840.113549.3.2": "RC2-CBC",
}


class Unsupported(Exception):
    """A scheme cryptography may open but this module does not."""


def _unsupported(name: str) -> Unsupported:
    return Unsupported(_NAMES.get(name, name))


def _algorithm(element: der.TLV) -> tuple[str, der.TLV | None]:
    """An AlgorithmIdentifier: its OID and its parameters (None when absent)."""
    fields = der.children(element)
    if not 1 <= len(fields) <= 2:
        raise der.DERError("algorithm identifier")
    return der.oid(fields[0]), fields[1] if len(fields) == 2 else None


def _pbkdf2(params: der.TLV, password: bytes, size: int) -> bytes:
    fields = der.children(params)
    if len(fields) < 2:
        raise der.DERError("PBKDF2-params")
    salt, iterations = der.octets(fields[0]), der.integer(fields[1])  # salt: specified only
    prf = "sha1"
    rest = fields[2:]
    if rest and rest[0].tag == der.INTEGER:  # keyLength
        if der.integer(rest[0]) != size:
            raise der.DERError("PBKDF2 key length does not match the cipher")
        rest = rest[1:]
    if rest:
        name, _ = _algorithm(rest[0])
        if name not in _PRFS:
            raise _unsupported(name)
        prf = _PRFS[name]
        rest = rest[1:]
    if rest or iterations < 1:
        raise der.DERError("PBKDF2-params")
    return hashlib.pbkdf2_hmac(prf, password, salt, iterations, size)


def _scrypt(params: der.TLV, password: bytes, size: int) -> bytes:
    fields = der.children(params)
    if not 4 <= len(fields) <= 5:
        raise der.DERError("scrypt-params")
    salt = der.octets(fields[0])
    n, r, p = (der.integer(f) for f in fields[1:4])
    if len(fields) == 5 and der.integer(fields[4]) != size:
        raise der.DERError("scrypt key length does not match the cipher")
    # cryptography already ran the same derivation; this only lifts hashlib's 32 MiB default.
    maxmem = 128 * r * (n + p + 2) + 2**20
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=size)


def _pbes2(params: der.TLV, password: bytes) -> tuple[BlockCipherAlgorithm, bytes]:
    fields = der.children(params)
    if len(fields) != 2:
        raise der.DERError("PBES2-params")
    kdf, scheme = fields
    cipher_name, cipher_params = _algorithm(scheme)
    if cipher_name in _AES:
        size = _AES[cipher_name]
    elif cipher_name == _DES_EDE3_CBC:
        size = 24
    else:
        raise _unsupported(cipher_name)
    if cipher_params is None:
        raise der.DERError("no IV")
    iv = der.octets(cipher_params)
    kdf_name, kdf_params = _algorithm(kdf)
    if kdf_params is None:
        raise der.DERError("no key derivation parameters")
    if kdf_name == _PBKDF2:
        key = _pbkdf2(kdf_params, password, size)
    elif kdf_name == _SCRYPT:
        key = _scrypt(kdf_params, password, size)
    else:
        raise _unsupported(kdf_name)
    algorithm = algorithms.AES(key) if cipher_name in _AES else TripleDES(key)
    return algorithm, iv


def _pkcs12_kdf(password: bytes, salt: bytes, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 §B.2 with SHA-1 (u = 20, v = 64); the password as a BMPString with its two
    terminating zero octets, as cryptography and OpenSSL read it."""
    v = 64
    secret = password.decode("utf-8").encode("utf-16-be") + b"\0\0"

    def stretch(data: bytes) -> bytes:  # copies of data, to the next multiple of v octets
        length = v * -(-len(data) // v)
        return (data * (length // max(len(data), 1) + 1))[:length]

    block = stretch(salt) + stretch(secret)
    out = b""
    while len(out) < size:
        # SHA-1 is what this scheme is defined with, not a choice made here.
        digest = hashlib.sha1(bytes([purpose]) * v + block).digest()  # noqa: S324
        for _ in range(iterations - 1):
            digest = hashlib.sha1(digest).digest()  # noqa: S324
        out += digest
        b = int.from_bytes((digest * 4)[:v], "big") + 1
        block = b"".join(
            ((int.from_bytes(block[i : i + v], "big") + b) % 2 ** (8 * v)).to_bytes(v, "big")
            for i in range(0, len(block), v)
        )
    return out[:size]


def _pbes1_sha1_3des(params: der.TLV, password: bytes) -> tuple[BlockCipherAlgorithm, bytes]:
    fields = der.children(params)
    if len(fields) != 2:
        raise der.DERError("PBEParameter")
    salt, iterations = der.octets(fields[0]), der.integer(fields[1])
    if iterations < 1:
        raise der.DERError("PBEParameter")
    try:
        key = _pkcs12_kdf(password, salt, 1, iterations, 24)
        iv = _pkcs12_kdf(password, salt, 2, iterations, 8)
    except UnicodeDecodeError:
        raise der.DERError("PKCS#12 passwords are text") from None
    return TripleDES(key), iv


def decrypt(data: bytes, password: bytes) -> bytes:
    """The PrivateKeyInfo that an EncryptedPrivateKeyInfo holds.

    KeyLoadError if it cannot be opened here (cryptography could: it loaded the key)."""
    try:
        fields = der.children(der.parse(data))
        if len(fields) != 2:
            raise der.DERError("EncryptedPrivateKeyInfo")
        name, params = _algorithm(fields[0])
        encrypted = der.octets(fields[1])
        if params is None:
            raise der.DERError("no encryption parameters")
        if name == _PBES2:
            algorithm, iv = _pbes2(params, password)
        elif name == _PBE_SHA1_3DES:
            algorithm, iv = _pbes1_sha1_3des(params, password)
        else:
            raise _unsupported(name)
        block = algorithm.block_size // 8
        if len(iv) != block or not encrypted or len(encrypted) % block:
            raise der.DERError("IV or ciphertext size")
        decryptor = Cipher(algorithm, modes.CBC(iv)).decryptor()
        plain = decryptor.update(encrypted) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= block or plain[-pad:] != bytes([pad]) * pad:
            raise der.DERError("padding")
        return plain[:-pad]
    except Unsupported as e:
        raise KeyLoadError(
            f"this RSA key is encrypted with {e}, which wellknown-build does not open to check "
            "whether it is an RSA-PSS key; re-encrypt it with PBES2 and AES "
            "(openssl pkcs8 -topk8 -v2 aes-256-cbc)"
        ) from None
    except (der.DERError, ValueError):
        raise KeyLoadError(
            "the encrypted RSA private key cannot be opened to check whether it is an RSA-PSS key"
        ) from None
