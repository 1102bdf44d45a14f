"""Keys in every PEM form, configs written to disk, and vectors read from tests/data."""

from __future__ import annotations

import contextlib
import functools
import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from wellknown_build.cache import CACHE_NAME, SEAL_NAME
from wellknown_build.commands.serve import REQUEST_TIMEOUT, PreviewServer
from wellknown_build.tree import LOCK_NAME

# The `run` fixture: the CLI invoked in the test's folder.
Run = Callable[..., Result]

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parent.parent
# Render's own files beside the tree: the lock, the cache and its seal.
BOOKKEEPING = (LOCK_NAME, CACHE_NAME, SEAL_NAME)

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PKCS1 = serialization.PublicFormat.PKCS1
PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL
NO_ENCRYPTION = serialization.NoEncryption()

# DER of the named-curve OID, as `openssl ecparam -genkey` writes it before the key.
EC_PARAMETERS = {
    "secp256r1": "BggqhkjOPQMBBw==",
    "secp384r1": "BgUrgQQAIg==",
    "secp521r1": "BgUrgQQAIw==",
}


def vector(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DATA / name).read_text())
    return result


@functools.cache
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    """RSA generation is slow: each size is made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


# The private keys a JWT signer holds; what KEY_MAKERS make.
PrivateKeyTypes = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

KEY_MAKERS: dict[str, Callable[[], PrivateKeyTypes]] = {
    "rsa2048": lambda: rsa_key(2048),
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
}
DEFAULT_ALGS = {
    "rsa2048": "RS256",
    "p256": "ES256",
    "p384": "ES384",
    "p521": "ES512",
    "ed25519": "EdDSA",
    "ed448": "EdDSA",
}


def public_pem(key: Any, fmt: serialization.PublicFormat = SPKI) -> bytes:
    """Any private or public key, including the kinds we refuse."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    data: bytes = public.public_bytes(PEM, fmt)
    return data


def private_pem(
    key: PrivateKeyTypes,
    fmt: serialization.PrivateFormat = PKCS8,
    passphrase: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else NO_ENCRYPTION
    )
    return key.private_bytes(PEM, fmt, encryption)


def ec_with_parameters(key: ec.EllipticCurvePrivateKey) -> bytes:
    """`EC PARAMETERS` then a SEC1 `EC PRIVATE KEY`, as `openssl ecparam -genkey` writes."""
    params = EC_PARAMETERS[key.curve.name]
    head = f"-----BEGIN EC PARAMETERS-----\n{params}\n-----END EC PARAMETERS-----\n"
    return head.encode() + private_pem(key, TRADITIONAL)


def certificate(
    key: PrivateKeyTypes,
    subject: str = "test",
    issuer_key: PrivateKeyTypes | None = None,
    issuer: str | None = None,
) -> x509.Certificate:
    import datetime

    signer = issuer_key or key
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)])
    issuer_name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer or subject)])
    algorithm = (
        None
        if isinstance(signer, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else hashes.SHA256()
    )
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
        .sign(signer, algorithm)
    )


def certificate_pem(key: PrivateKeyTypes, subject: str = "test") -> bytes:
    return certificate(key, subject).public_bytes(PEM)


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def write_config(folder: Path, text: str, name: str = "instances.yaml") -> Path:
    return write(folder / name, textwrap.dedent(text))


@contextlib.contextmanager
def running(out: Path, port: int = 0, timeout: float = REQUEST_TIMEOUT) -> Iterator[PreviewServer]:
    """The preview server on a background thread, on 127.0.0.1."""
    server = PreviewServer(out, port, timeout)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
