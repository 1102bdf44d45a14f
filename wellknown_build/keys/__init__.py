"""Keys in, public JWKs out. Private key objects never leave this package."""

from __future__ import annotations

from .jwk import JWK, KID_METHODS, key_type, public_jwk
from .pem import LoadedKey, PassphraseSource, load_key_file, parse_pem, passphrase_from_env
from .thumbprint import rfc7638, spki_sha256

__all__ = [
    "JWK",
    "KID_METHODS",
    "LoadedKey",
    "PassphraseSource",
    "key_type",
    "load_key_file",
    "parse_pem",
    "passphrase_from_env",
    "public_jwk",
    "rfc7638",
    "spki_sha256",
]
