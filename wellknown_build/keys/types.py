"""The one shape every key-type module fills in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


@dataclass(frozen=True)
class KeyType:
    """How one family of public keys becomes JWK members.

    `algs` returns the algorithms the key may sign with, the default first; it raises
    KeyLoadError for a key of this family that must not be published (too short, wrong curve).
    `restriction` says why a key allows fewer algs than its family (an RSA-PSS key), or None.
    """

    kty: str
    accepts: Callable[[PublicKeyTypes], bool]
    describe: Callable[[PublicKeyTypes], str]
    algs: Callable[[PublicKeyTypes, str | None], tuple[str, ...]]
    members: Callable[[PublicKeyTypes], dict[str, str]]
    restriction: Callable[[PublicKeyTypes], str | None] = field(default=lambda key: None)
