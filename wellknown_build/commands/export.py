"""`export`: an instance's keys for relying parties that take an uploaded copy instead of
fetching jwks_uri, so the copy must be uploaded again after every rotation.

The keys are exactly those of the JWKS render would publish at `--now`: next, active and
retired keys until their not_after (lifecycle.select), so a key added as `next` reaches the
relying party before it signs, and a retired key stays until its tokens have expired.

- gcp-wif: the JWKS as Google Cloud workload identity federation's OIDC provider takes it
  in `jwksJson` (gcloud `--jwk-json-path`): RSA and EC keys only, and only the members kty,
  alg, use, kid, n, e, x, y, crv (cloud.google.com/iam/docs/reference/rest/v1/
  projects.locations.workloadIdentityPools.providers#oidc).
- vault-pem: the keys as PEM SubjectPublicKeyInfo blocks for HashiCorp Vault's JWT auth
  `jwt_validation_pubkeys` (developer.hashicorp.com/vault/api-docs/auth/jwt). That field is a
  comma-separated list, and Vault reads one PEM block per list element (the first), so the
  blocks are separated by a line holding a comma: `jwt_validation_pubkeys=@keys.pem` then
  gives one element per key. PEM parsers skip text between blocks (RFC 7468 §2).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from .. import jsondoc
from ..documents import KIND_JWKS
from ..errors import KeyLoadError, WellknownError, shown
from ..keys import jwks_source
from .validate import validate

FORMATS = ("gcp-wif", "vault-pem")
GCP_MEMBERS = ("kty", "alg", "use", "kid", "n", "e", "x", "y", "crv")
GCP_KTYS = ("RSA", "EC")
# What Vault's certutil.ParsePublicKeyPEM (Go's crypto/x509) reads: RSA, ECDSA on the NIST
# curves, and Ed25519 in releases whose JWT auth takes EdDSA.
VAULT_CURVES = ("P-256", "P-384", "P-521", "Ed25519")


class UnknownInstance(WellknownError):
    """An INSTANCE argument that names no instance: a usage error."""

    exit_code = 2


class ExportError(WellknownError):
    """The instance's keys cannot be expressed in the format."""


@dataclass(frozen=True)
class Exported:
    body: bytes
    notes: tuple[str, ...]


def published_keys(config: Path, instance_id: str, now: dt.datetime | None) -> list[dict[str, Any]]:
    """The JWKs of the instance's JWKS as render writes it at `now` (every check passed)."""
    built = validate(config, now)
    ids = [i.id for i in built.config.instances]
    if instance_id not in ids:
        known = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
        raise UnknownInstance(f"{config}: no instance {shown(instance_id)} (instances: {known})")
    body = next(
        d.body for d in built.documents if d.instance == instance_id and d.kind == KIND_JWKS
    )
    keys: list[dict[str, Any]] = json.loads(body)["keys"]
    return keys


def _refuse(instance_id: str, what: str, bad: list[str]) -> None:
    if bad:
        raise ExportError(f"instance {instance_id}: {what}: {'; '.join(bad)}")


def gcp_wif(instance_id: str, keys: list[dict[str, Any]]) -> Exported:
    _refuse(
        instance_id,
        "GCP workload identity federation takes RSA and EC keys only",
        [
            f"kid {k['kid']} is {k['kty']} {k.get('crv', '')}".rstrip()
            for k in keys
            if k["kty"] not in GCP_KTYS
        ],
    )
    trimmed = [{name: k[name] for name in k if name in GCP_MEMBERS} for k in keys]
    return Exported(
        jsondoc.dumps({"keys": trimmed}),
        (
            f"instance {instance_id}: {len(keys)} key(s) as GCP's jwksJson. GCP keeps this copy "
            "and never fetches jwks_uri: upload it again after every rotation (a key added, "
            "promoted or dropped), e.g. gcloud iam workload-identity-pools providers "
            "update-oidc PROVIDER --location global --workload-identity-pool POOL "
            "--jwk-json-path FILE",
        ),
    )


def vault_pem(instance_id: str, keys: list[dict[str, Any]]) -> Exported:
    _refuse(
        instance_id,
        "Vault reads RSA, EC P-256/P-384/P-521 and Ed25519 public keys only",
        [
            f"kid {k['kid']} is {k['kty']} {k['crv']}"
            for k in keys
            if "crv" in k and k["crv"] not in VAULT_CURVES
        ],
    )
    blocks = []
    for jwk in keys:
        try:
            key = jwks_source.public_key(jwk)
        except KeyLoadError as e:  # our own output: cannot happen, but say so if it does
            raise ExportError(f"instance {instance_id}: kid {jwk['kid']}: {e}") from None
        blocks.append(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    algs = sorted({k["alg"] for k in keys})
    notes = [
        f"instance {instance_id}: {len(keys)} key(s) for Vault's jwt_validation_pubkeys "
        "(vault write auth/jwt/config jwt_validation_pubkeys=@FILE; the comma lines between "
        "the blocks make one list element per key). Vault keeps these keys and never fetches "
        "jwks_uri: write them again after every rotation (a key added, promoted or dropped)",
    ]
    if algs != ["RS256"]:
        notes.append(
            f"instance {instance_id}: the keys sign {', '.join(algs)}: set jwt_supported_algs "
            "to include them (Vault's default is RS256 only)"
        )
    return Exported(b",\n".join(blocks), tuple(notes))


def export(config: Path, instance_id: str, fmt: str, now: dt.datetime | None = None) -> Exported:
    keys = published_keys(config, instance_id, now)
    return gcp_wif(instance_id, keys) if fmt == "gcp-wif" else vault_pem(instance_id, keys)


def write(path: Path, data: bytes) -> None:
    """Through a temporary and a rename: a failed export leaves an older file as it was."""
    scratch = path.with_name(f".{path.name}.wkb.tmp")
    try:
        scratch.write_bytes(data)
        os.replace(scratch, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise ExportError(f"cannot write {path} ({e.strerror or e})") from None
