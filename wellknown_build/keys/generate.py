"""New signing keys for `keygen`: the private key stays in this package and on disk (0600)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ..errors import KeyLoadError
from .jwk import public_jwk

TYPES = ("rsa", "ec-p256", "ec-p384", "ec-p521", "ed25519", "ed448")
_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ec-p256": ec.SECP256R1,
    "ec-p384": ec.SECP384R1,
    "ec-p521": ec.SECP521R1,
}


@dataclass(frozen=True)
class Generated:
    private_path: Path
    public_path: Path
    kid: str
    alg: str


def _new(kind: str, bits: int) -> PrivateKeyTypes:
    if kind == "rsa":
        if bits < 2048:
            raise KeyLoadError(f"RSA keys of {bits} bits are too short; use at least 2048")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind]())
    return (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else ed448.Ed448PrivateKey.generate()
    )


def public_path_for(private_path: Path) -> Path:
    name = private_path.name
    stem = name[: -len(".pem")] if name.endswith(".pem") else name
    return private_path.with_name(f"{stem}.pub.pem")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create the file, never replacing one: O_EXCL, with its mode from the start."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def generate(
    kind: str,
    out: Path,
    *,
    bits: int = 2048,
    passphrase: bytes | None = None,
    kid_method: str = "rfc7638",
) -> Generated:
    public_out = public_path_for(out)
    for path in (out, public_out):
        if path.exists() or path.is_symlink():
            raise KeyLoadError(f"{path} exists; keygen never overwrites a key")
    key = _new(kind, bits)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_new(out, private_pem, 0o600)
        os.chmod(out, 0o600)  # whatever the umask
        _write_new(public_out, public_pem, 0o644)
    except FileExistsError as e:
        raise KeyLoadError(f"{e.filename} exists; keygen never overwrites a key") from None
    except OSError as e:
        raise KeyLoadError(f"cannot write {e.filename}: {e.strerror}") from None
    jwk = public_jwk(key.public_key(), kid_method=kid_method)
    return Generated(out, public_out, jwk.kid, jwk.alg)
