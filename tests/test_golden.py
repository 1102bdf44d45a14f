"""The bundled example renders to exactly the committed tree (`make golden` refreshes it)."""

from __future__ import annotations

import json
from pathlib import Path

from wellknown_build.commands.render import render

from .helpers import BOOKKEEPING, GOLDEN, ROOT


def _files(folder: Path) -> dict[str, bytes]:
    """Every file but the render lock (an empty file the OS locks while a render runs)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING
    }


def test_example_matches_golden_tree(tmp_path: Path) -> None:
    render(ROOT / "examples" / "instances.yaml", tmp_path / "out")
    assert _files(tmp_path / "out") == _files(GOLDEN / "example")


def test_seed_jwks_reproduced() -> None:
    """The seed's hosted service publishes this exact key set for its instance."""
    jwks = json.loads((GOLDEN / "example/clerk.example.com/.well-known/jwks.json").read_text())
    assert jwks["keys"][0]["kid"] == "ins_1lyWDZiobr600AKUeQDoSlrEmoM"
    assert list(jwks["keys"][0]) == ["use", "kty", "kid", "alg", "n", "e"]
    assert jwks["keys"][0]["n"].startswith("r8T9D2xqXhQ3zMFx3kGYx5NUJ4z1TynESh2Yb")
    assert (GOLDEN / "example/clerk.example.com/.well-known/openid-configuration").read_text() == (
        "{\n"
        '  "issuer": "https://clerk.example.com",\n'
        '  "jwks_uri": "https://clerk.example.com/.well-known/jwks.json"\n'
        "}\n"
    )
