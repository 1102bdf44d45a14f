"""`list`: per instance, what relying parties and infrastructure code need to know — its
issuer, where its documents are served and written, its kids and algs — as plain data for
CI scripts and Terraform (`jsondecode(file(...))`, or the external data source's string map).

Everything comes from the documents render would write, so the list cannot disagree with the
tree: the kids and algs are those of the JWKS as published (keys past `not_after` dropped).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from ..documents import KIND_DISCOVERY, KIND_JWKS
from .validate import validate


def listing(config: Path, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    built = validate(config, now)
    documents: dict[str, list[Any]] = {}
    for document in built.documents:
        documents.setdefault(document.instance, []).append(document)
    result = []
    for instance in built.config.instances:
        mine = documents.get(instance.id, [])
        jwks = next(d for d in mine if d.kind == KIND_JWKS)
        keys = json.loads(jwks.body)["keys"]
        result.append(
            {
                "id": instance.id,
                "issuer": instance.issuer,
                "jwks_uri": instance.jwks_uri,
                "discovery_url": f"https://{_path(mine, KIND_DISCOVERY)}",
                "host": jwks.path.split("/", 1)[0],
                "documents": [
                    {"kind": d.kind, "path": d.path, "url": f"https://{d.path}"} for d in mine
                ],
                "kids": [k["kid"] for k in keys],
                "algs": sorted({k["alg"] for k in keys}),
                "keys": [{"kid": k["kid"], "alg": k["alg"], "kty": k["kty"]} for k in keys],
            }
        )
    return result


def _path(documents: list[Any], kind: str) -> str:
    return str(next(d.path for d in documents if d.kind == kind))


def flat(instances: list[dict[str, Any]]) -> dict[str, str]:
    """One map of strings, as Terraform's `external` data source takes: `ID.issuer`,
    `ID.jwks_uri`, `ID.discovery_url`, `ID.host`, `ID.kids` and `ID.algs` (comma-separated),
    `ID.jwks_path` and `ID.discovery_path` (under the output folder), and `ids`, every id
    as a JSON array (`jsondecode(...)`), since ids may hold any character."""
    result = {"ids": json.dumps([i["id"] for i in instances], ensure_ascii=False)}
    for item in instances:
        ident = item["id"]
        for name in ("issuer", "jwks_uri", "discovery_url", "host"):
            result[f"{ident}.{name}"] = item[name]
        result[f"{ident}.kids"] = ",".join(item["kids"])
        result[f"{ident}.algs"] = ",".join(item["algs"])
        for document in item["documents"]:
            name = {KIND_JWKS: "jwks_path", KIND_DISCOVERY: "discovery_path"}.get(
                document["kind"], "oauth_metadata_path"
            )
            result[f"{ident}.{name}"] = document["path"]
    return result


def text(instances: list[dict[str, Any]]) -> list[str]:
    lines = []
    for item in instances:
        lines.append(f"{item['id']}  {item['issuer']}")
        for document in item["documents"]:
            lines.append(f"  {document['kind']:<27} {document['url']}")
        for key in item["keys"]:
            lines.append(f"  kid {key['kid']}  {key['alg']}")
    return lines
