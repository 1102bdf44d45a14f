"""The validated configuration every later stage reads: frozen, plain data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CACHE_CONTROL = "public, max-age=300"  # PyJWT's PyJWKClient caches for 300 s too
DEFAULT_TEMPLATE = "default"
DEFAULT_TOKEN_LIFETIME = 3600
# Relying parties cache a JWKS on top of HTTP caching: node jose up to 10 minutes.
CLIENT_CACHE = 600


@dataclass(frozen=True)
class KeySpec:
    path: str  # the PEM or JWKS file (joined to the YAML's folder), or the KMS key id
    file: str  # as written in the YAML, for messages
    kid: str | None
    alg: str | None
    kid_method: str
    passphrase_env: str | None
    where: str  # YAML path, e.g. instances[2].keys[0]
    status: str = "active"
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    x5c: bool = False
    source: str = "path"  # the field that names the key: path (a PEM file), kms or jwks


@dataclass(frozen=True)
class Instance:
    id: str
    issuer: str
    jwks_uri: str
    template: str
    cache_control: str
    keys: tuple[KeySpec, ...]
    discovery: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    cache_ttl: int = 0
    relying_parties: tuple[str, ...] = ()
    oauth_metadata: bool = False
    file: str = ""  # the included file it comes from; "" for the configuration file


@dataclass(frozen=True)
class Config:
    source: Path
    instances: tuple[Instance, ...]
    templates_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class Rotation:
    """A JWKS's keys as render published them, carried in the manifest for publish's state
    index (README: Rotation status): each kid's status and not_after, in the JWKS's order,
    and the instance's timings."""

    cache_ttl: int
    token_lifetime: int
    status: tuple[str, ...]
    not_after: tuple[dt.datetime | None, ...]
