"""Reading key files: every PEM form seen in the wild, identified by content, not label.

Private keys are turned into their public halves here and never leave this module.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning

from .. import files
from ..errors import KeyLoadError
from . import der, pbe, pss

_LABEL_CHAR = rb"[\x21-\x2c\x2e-\x7e]"
# A line that starts with -----BEGIN or -----END is an encapsulation boundary and must be a
# whole one: a label of RFC 7468 §3 (hyphens and spaces between its characters), then -----
# and blanks to the end of the line. Group 2 is None for a broken boundary line.
_BOUNDARY = re.compile(
    rb"-----(BEGIN|END)(?: ((?:" + _LABEL_CHAR + rb"(?:[- ]?" + _LABEL_CHAR + rb")*)?)"
    rb"-----[ \t]*(?![^\r\n]))?"
)
# Parameters repeat what the key that follows holds (its curve), or belong to a key type
# that is refused by name once the key is read; either way the key, not they, is judged.
_PARAMETERS = {b"EC PARAMETERS", b"DSA PARAMETERS", b"DH PARAMETERS", b"X9.42 DH PARAMETERS"}
_DEK_INFO = re.compile(rb"^DEK-Info:[ \t]*([^,\r\n]*),([^\r\n]*)$", re.MULTILINE)
_IV_SIZES = {b"AES-128-CBC": 16, b"AES-256-CBC": 16, b"DES-EDE3-CBC": 8}  # what cryptography reads

# The passphrase is asked for only when a block turns out to be encrypted.
PassphraseSource = Callable[[], bytes | None]


@dataclass(frozen=True)
class LoadedKey:
    """The public key a file holds, and the certificates it came with (leaf first).

    An RSA key whose algorithm is id-RSASSA-PSS is a pss.RSAPSSPublicKey: an RSA public key
    that serializes to the file's own SPKI and knows its PSS restriction."""

    public_key: PublicKeyTypes
    source: str  # "private", "public" or "certificate"
    certificates: tuple[x509.Certificate, ...] = ()


def passphrase_from_env(name: str, option: str = "passphrase_env") -> bytes:
    """Secrets come from the environment only, and are never echoed.

    On POSIX the raw bytes (os.environb): a passphrase need not be UTF-8, and os.environ would
    hand its other bytes over as surrogates that cannot be encoded back."""
    try:
        if sys.platform != "win32":
            value = os.environb.get(os.fsencode(name), b"")
        else:
            value = os.environ.get(name, "").encode("utf-8", "surrogatepass")
    except UnicodeError:  # a name that no environment variable can have
        value = b""
    if not value:
        raise KeyLoadError(f"environment variable {name}, named by {option}, is not set")
    return value


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private(data: bytes, passphrase: PassphraseSource) -> PublicKeyTypes:
    secret = None
    try:
        # Only the public half is used, so the slow RSA private-key consistency check buys nothing.
        key = serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # encrypted
        secret = passphrase()
        if secret is None:
            raise KeyLoadError("the private key is encrypted; set passphrase_env") from None
        try:
            key = serialization.load_der_private_key(
                data, secret, unsafe_skip_rsa_key_validation=True
            )
        except ValueError:
            raise KeyLoadError("the passphrase does not decrypt the private key") from None
        except UnsupportedAlgorithm:
            raise KeyLoadError("the private key is encrypted with an unsupported cipher") from None
    public = key.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return public
    # cryptography loads an RSA-PSS key as plain RSA: its algorithm is read from the DER.
    info = data if secret is None else pbe.decrypt(data, secret)
    return pss.from_private_key_info(public, info)


def _legacy_encrypted(block: bytes, passphrase: PassphraseSource) -> PublicKeyTypes:
    """OpenSSL's traditional `Proc-Type: 4,ENCRYPTED` PEM, which only the PEM loader reads."""
    block = b"\n".join(block.splitlines())  # the PEM loader wants LF line ends
    _check_dek_info(block)
    secret = passphrase()
    if secret is None:
        raise KeyLoadError("the private key is encrypted; set passphrase_env")
    try:
        key = serialization.load_pem_private_key(block, secret, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise KeyLoadError("the passphrase does not decrypt the private key") from None
    except UnsupportedAlgorithm:
        raise KeyLoadError("the private key is encrypted with an unsupported cipher") from None
    return key.public_key()


def _check_dek_info(block: bytes) -> None:
    """cryptography panics (PanicException, not an Exception) on an IV shorter than its
    cipher's, so the one DEK-Info header is checked before the loader sees it."""
    headers = _DEK_INFO.findall(block)
    if len(headers) != 1:
        raise KeyLoadError("the encrypted private key needs one DEK-Info header")
    cipher, iv = (value.strip() for value in headers[0])
    if cipher not in _IV_SIZES:
        raise KeyLoadError("the private key is encrypted with an unsupported cipher")
    try:
        size = len(bytes.fromhex(iv.decode("ascii")))
    except ValueError:  # UnicodeDecodeError included
        size = -1
    if size != _IV_SIZES[cipher]:
        raise KeyLoadError("the DEK-Info header of the encrypted private key has a broken IV")


def _public(data: bytes) -> PublicKeyTypes:
    key = serialization.load_der_public_key(data)
    return pss.from_spki(key, data) if isinstance(key, rsa.RSAPublicKey) else key


def _decode(label: bytes, data: bytes, passphrase: PassphraseSource) -> tuple[str, object]:
    """Try each DER structure, the one the label suggests first; labels are only a hint."""
    order = ["public", "private", "certificate"]
    if b"CERTIFICATE" in label:
        order = ["certificate", "public", "private"]
    elif b"PRIVATE" in label:
        order = ["private", "public", "certificate"]
    for kind in order:
        try:
            if kind == "public":
                return kind, _public(data)
            if kind == "private":
                return kind, _private(data, passphrase)
            return kind, x509.load_der_x509_certificate(data)
        except (ValueError, TypeError, x509.InvalidVersion):
            continue
        except UnsupportedAlgorithm:  # a key of a type cryptography does not know
            raise KeyLoadError(f"unsupported key algorithm in the {kind} key") from None
    raise KeyLoadError(f"the {_name(label)} block is not a key or certificate")


def _name(label: bytes) -> str:
    return label.decode("ascii") if label else "unlabelled"


def _line(data: bytes, position: int) -> int:
    """The 1-based number of the line that starts at `position`, whatever the line ends."""
    return len(data[:position].splitlines()) + 1


def _blocks(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """(label, body, whole block) of each PEM block (RFC 7468), text outside them skipped.

    A BEGIN without its END, an END without its BEGIN or with another label, and a broken
    BEGIN or END line are errors: skipping them would, say, silently shorten a chain.
    One search for the boundaries, so 20,000 key files scan quickly."""
    found = []
    begin: re.Match[bytes] | None = None
    for boundary in _BOUNDARY.finditer(data):
        start = boundary.start()
        if start and data[start - 1] not in b"\r\n":
            continue  # not at the start of a line: text
        kind, label = boundary.group(1, 2)
        if label is None:
            raise KeyLoadError(f"line {_line(data, start)} is not a valid {kind.decode()} line")
        if kind == b"BEGIN":
            if begin is not None:
                break  # a BEGIN inside a block: reported below as a missing END
            begin = boundary
            continue
        if begin is None:
            raise KeyLoadError(
                f"the END {_name(label)} line at line {_line(data, start)} has no BEGIN line"
            )
        if label != begin[2]:
            raise KeyLoadError(
                f"the {_name(begin[2])} block that starts at line {_line(data, begin.start())} "
                f"ends with END {_name(label)} at line {_line(data, start)}"
            )
        found.append((label, data[begin.end() : start], data[begin.start() : boundary.end()]))
        begin = None
    if begin is not None:
        raise KeyLoadError(
            f"the {_name(begin[2])} block that starts at line {_line(data, begin.start())} "
            "has no END line"
        )
    return found


def _der(label: bytes, body: bytes) -> bytes:
    """The DER a block's base64 holds; line breaks and blanks anywhere are allowed."""
    try:
        decoded = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"the {_name(label)} block is not valid base64") from None
    if not decoded:
        raise KeyLoadError(f"the {_name(label)} block is empty")
    return decoded


def _certificate_key(certificate: x509.Certificate) -> PublicKeyTypes:
    """cryptography reads a certificate's key only when asked, and may refuse it then."""
    try:
        key = certificate.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyLoadError("the key in the certificate cannot be read") from None
    if not isinstance(key, rsa.RSAPublicKey):
        return key
    try:
        spki = pss.certificate_spki(certificate.tbs_certificate_bytes)
    except der.DERError:
        raise KeyLoadError("the key in the certificate cannot be read") from None
    return pss.from_spki(key, spki)


def parse_pem(data: bytes, passphrase: PassphraseSource) -> LoadedKey:
    keys: list[tuple[str, PublicKeyTypes]] = []
    certificates: list[x509.Certificate] = []
    blocks = _blocks(data)
    if not blocks:
        raise KeyLoadError("no PEM block found")
    for label, body, whole in blocks:
        if label in _PARAMETERS:
            continue
        if b"Proc-Type:" in body:
            keys.append(("private", _legacy_encrypted(whole, passphrase)))
            continue
        with warnings.catch_warnings():
            # Loading a DH key warns that FFDH is deprecated; we refuse such keys anyway.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            kind, value = _decode(label, _der(label, body), passphrase)
        if isinstance(value, x509.Certificate):
            certificates.append(value)
        else:
            keys.append((kind, value))  # type: ignore[arg-type]
    if certificates:
        keys.append(("certificate", _certificate_key(certificates[0])))
    if not keys:
        raise KeyLoadError("no key found (only parameter blocks)")
    distinct = {_spki(key) for _, key in keys} if len(keys) > 1 else {b""}
    if len(distinct) > 1 and _one_rsa_key(key for _, key in keys):
        raise KeyLoadError(
            "the file holds one RSA key as an RSA-PSS key (id-RSASSA-PSS) and as another "
            "algorithm (rsaEncryption, or other RSA-PSS parameters); its blocks must agree"
        )
    if len(distinct) > 1:
        raise KeyLoadError(
            f"the file holds {len(distinct)} different keys; give each key its own file "
            "(a certificate chain must start with the certificate of the key)"
        )
    source = "private" if any(k == "private" for k, _ in keys) else keys[0][0]
    return LoadedKey(keys[0][1], source, tuple(certificates))


def _one_rsa_key(keys: Iterable[PublicKeyTypes]) -> bool:
    """Whether every key is RSA with the same n and e, whatever algorithm its SPKI names."""
    numbers = set()
    for key in keys:
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        public = key.public_numbers()
        numbers.add((public.n, public.e))
    return len(numbers) == 1


def load_key_file(path: Path, passphrase: PassphraseSource) -> LoadedKey:
    """The key a file holds. Errors give the reason only: every caller names the file."""
    try:
        data = files.read_regular(path, files.KEY_LIMIT)
    except FileNotFoundError:
        raise KeyLoadError("key file not found") from None
    except files.InputFileError as e:
        raise KeyLoadError(f"key file {e}") from None
    except ValueError:  # a NUL byte, or a name the file system cannot encode
        raise KeyLoadError("key file cannot be read (its path is not valid)") from None
    return parse_pem(data, passphrase)
