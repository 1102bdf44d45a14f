"""Reading key files: every PEM form seen in the wild, identified by content, not label.

Private keys are turned into their public halves here and never leave this module.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import KeyLoadError

_LABEL = re.compile(rb"^[A-Z0-9 ]+$")
_SKIPPED_LABELS = {b"EC PARAMETERS"}  # the curve is repeated inside the key that follows

# The passphrase is asked for only when a block turns out to be encrypted.
PassphraseSource = Callable[[], bytes | None]


@dataclass(frozen=True)
class LoadedKey:
    """The public key a file holds, and the certificates it came with (leaf first)."""

    public_key: PublicKeyTypes
    source: str  # "private", "public" or "certificate"
    certificates: tuple[x509.Certificate, ...] = ()


def passphrase_from_env(name: str, option: str = "passphrase_env") -> bytes:
    """Secrets come from the environment only, and are never echoed."""
    value = os.environ.get(name)
    if not value:
        raise KeyLoadError(f"environment variable {name} ({option}) is not set")
    return value.encode("utf-8")


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private(der: bytes, passphrase: PassphraseSource) -> PublicKeyTypes:
    try:
        # Only the public half is used, so the slow RSA private-key consistency check buys nothing.
        key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # encrypted
        secret = passphrase()
        if secret is None:
            raise KeyLoadError("the private key is encrypted; set passphrase_env") from None
        try:
            key = serialization.load_der_private_key(
                der, secret, unsafe_skip_rsa_key_validation=True
            )
        except ValueError:
            raise KeyLoadError("the passphrase does not decrypt the private key") from None
    return key.public_key()


def _legacy_encrypted(block: bytes, passphrase: PassphraseSource) -> PublicKeyTypes:
    """OpenSSL's traditional `Proc-Type: 4,ENCRYPTED` PEM, which only the PEM loader reads."""
    secret = passphrase()
    if secret is None:
        raise KeyLoadError("the private key is encrypted; set passphrase_env")
    try:
        key = serialization.load_pem_private_key(block, secret, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise KeyLoadError("the passphrase does not decrypt the private key") from None
    return key.public_key()


def _decode(label: bytes, der: bytes, passphrase: PassphraseSource) -> tuple[str, object]:
    """Try each DER structure, the one the label suggests first; labels are only a hint."""
    order = ["public", "private", "certificate"]
    if b"CERTIFICATE" in label:
        order = ["certificate", "public", "private"]
    elif b"PRIVATE" in label:
        order = ["private", "public", "certificate"]
    for kind in order:
        try:
            if kind == "public":
                return kind, serialization.load_der_public_key(der)
            if kind == "private":
                return kind, _private(der, passphrase)
            return kind, x509.load_der_x509_certificate(der)
        except (ValueError, TypeError, x509.InvalidVersion):
            continue
        except Exception as e:  # cryptography raises UnsupportedAlgorithm for foreign keys
            if type(e).__name__ == "UnsupportedAlgorithm":
                raise KeyLoadError(f"unsupported key algorithm in the {kind} key") from None
            raise
    raise KeyLoadError(f"the {label.decode()} block is not a key or certificate")


def _blocks(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """(label, body, whole block) of each PEM block; a plain scan, several times faster than
    the equivalent regex, which render runs 20,000 times on a large config."""
    found = []
    position = 0
    while (start := data.find(b"-----BEGIN ", position)) >= 0:
        label_end = data.find(b"-----", start + 11)
        if label_end < 0:
            break
        label = data[start + 11 : label_end]
        closing = b"-----END " + label + b"-----"
        end = data.find(closing, label_end + 5)
        if end < 0 or not _LABEL.match(label):
            break
        found.append((label, data[label_end + 5 : end], data[start : end + len(closing)]))
        position = end + len(closing)
    return found


def parse_pem(data: bytes, passphrase: PassphraseSource) -> LoadedKey:
    keys: list[tuple[str, PublicKeyTypes]] = []
    certificates: list[x509.Certificate] = []
    blocks = _blocks(data)
    if not blocks:
        raise KeyLoadError("no PEM block found")
    for label, body, whole in blocks:
        if label in _SKIPPED_LABELS:
            continue
        if b"Proc-Type:" in body:
            keys.append(("private", _legacy_encrypted(whole, passphrase)))
            continue
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise KeyLoadError(f"the {label.decode()} block is not valid base64") from None
        with warnings.catch_warnings():
            # Loading a DH key warns that FFDH is deprecated; we refuse such keys anyway.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            kind, value = _decode(label, der, passphrase)
        if isinstance(value, x509.Certificate):
            certificates.append(value)
        else:
            keys.append((kind, value))  # type: ignore[arg-type]
    if certificates:
        keys.append(("certificate", certificates[0].public_key()))
    if not keys:
        raise KeyLoadError("no key found (only parameter blocks)")
    distinct = {_spki(key) for _, key in keys} if len(keys) > 1 else {b""}
    if len(distinct) > 1:
        raise KeyLoadError(
            f"the file holds {len(distinct)} different keys; give each key its own file "
            "(a certificate chain must start with the certificate of the key)"
        )
    source = "private" if any(k == "private" for k, _ in keys) else keys[0][0]
    return LoadedKey(keys[0][1], source, tuple(certificates))


def load_key_file(path: Path, passphrase: PassphraseSource) -> LoadedKey:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise KeyLoadError(f"key file not found: {path}") from None
    except OSError as e:
        raise KeyLoadError(f"cannot read key file {path}: {e.strerror}") from None
    return parse_pem(data, passphrase)
