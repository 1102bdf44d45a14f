"""RFC 8414 metadata: where it lands for root and path issuers, and what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wellknown_build.build import build
from wellknown_build.publish.plan import Action, kind_of

from .helpers import write_config


@pytest.mark.parametrize(
    ("issuer", "path"),
    [
        ("https://h.example", "h.example/.well-known/oauth-authorization-server"),
        ("https://h.example/", "h.example/.well-known/oauth-authorization-server"),
        (
            "https://h.example/tenants/acme",
            "h.example/.well-known/oauth-authorization-server/tenants/acme",
        ),
        (
            "https://h.example/tenants/acme/",
            "h.example/.well-known/oauth-authorization-server/tenants/acme",
        ),
    ],
)
def test_rfc8414_paths(tmp_path: Path, ed_key: Path, issuer: str, path: str) -> None:
    config = write_config(
        tmp_path,
        f"""
        instances:
          - id: x
            issuer: '{issuer}'
            oauth_metadata: true
            keys: [{{path: keys/ed.pem}}]
            discovery: {{token_endpoint: 'https://h.example/token', claims_supported: [sub]}}
        """,
    )
    documents = {d.path: d for d in build(config).documents}
    metadata = documents[path]
    assert metadata.kind == "oauth-authorization-server"
    assert metadata.content_type == "application/json"
    assert json.loads(metadata.body) == {
        "issuer": issuer,
        "jwks_uri": issuer.removesuffix("/") + "/.well-known/jwks.json",
        "response_types_supported": ["id_token"],
        "token_endpoint": "https://h.example/token",
    }


def test_not_written_unless_asked(tmp_path: Path, ed_key: Path) -> None:
    config = write_config(
        tmp_path, "instances: [{id: x, issuer: 'https://h.example', keys: [{path: keys/ed.pem}]}]"
    )
    assert not [d for d in build(config).documents if d.kind == "oauth-authorization-server"]


def test_publish_deletes_metadata_before_keys() -> None:
    oauth_key, jwks_key = "h/.well-known/oauth-authorization-server/t", "h/t/.well-known/jwks.json"
    oauth = Action("delete", oauth_key, "", kind=kind_of(oauth_key))
    jwks = Action("delete", jwks_key, "", kind=kind_of(jwks_key))
    assert oauth.kind == "oauth-authorization-server" and jwks.kind == "jwks"
    assert oauth.phase < jwks.phase
