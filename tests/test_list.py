"""list: the example's instances as JSON (golden, byte for byte), flat strings and text."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .helpers import GOLDEN, ROOT, Run, write_config

EXAMPLE = str(ROOT / "examples" / "instances.yaml")
NOW = "2026-06-01T00:00:00Z"


def test_json_matches_golden(run: Run) -> None:
    result = run("list", EXAMPLE, "--json", "--now", NOW)
    assert result.exit_code == 0, result.output
    golden = GOLDEN / "list.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(result.output)
    assert result.output == golden.read_text()


def test_json_agrees_with_the_rendered_tree(run: Run) -> None:
    """Every listed path is a file render writes, and the kids are the JWKS's."""
    assert run("render", EXAMPLE, "--now", NOW).exit_code == 0
    manifest = json.loads(run("list", EXAMPLE, "--json", "--now", NOW).output)
    tree = {
        entry["path"]: entry
        for entry in json.loads((GOLDEN / "example" / ".wellknown-build.json").read_text())["files"]
    }
    listed = [d["path"] for item in manifest for d in item["documents"]]
    assert sorted(listed) == sorted(tree)
    for item in manifest:
        jwks = tree[item["jwks_uri"].removeprefix("https://")]
        assert item["kids"] == jwks["kids"]
        assert item["discovery_url"] == item["issuer"].removesuffix("/") + (
            "/.well-known/openid-configuration"
        )


def test_flat_is_a_map_of_strings(run: Run) -> None:
    """Terraform's external data source accepts only an object of strings."""
    result = run("list", EXAMPLE, "--flat", "--now", NOW)
    flat = json.loads(result.output)
    assert all(isinstance(v, str) for v in flat.values())
    assert json.loads(flat["ids"]) == ["ins_1lyWDZiobr600AKUeQDoSlrEmoM", "acme", "edge"]
    assert flat["acme.issuer"] == "https://auth.example.com/tenants/acme"
    assert flat["acme.jwks_path"] == "auth.example.com/tenants/acme/.well-known/jwks.json"
    assert flat["acme.kids"] == "WjhJutAuV7_72N86kVpQUCRh1l6XhrVCBDKCksMvqpc"
    assert flat["ins_1lyWDZiobr600AKUeQDoSlrEmoM.algs"] == "RS256"


def test_text(run: Run) -> None:
    result = run("list", EXAMPLE, "--now", NOW, "-q")  # the list is the output, not a summary
    assert result.exit_code == 0
    assert result.output.splitlines()[:4] == [
        "ins_1lyWDZiobr600AKUeQDoSlrEmoM  https://clerk.example.com",
        "  jwks                        https://clerk.example.com/.well-known/jwks.json",
        "  openid-configuration        https://clerk.example.com/.well-known/openid-configuration",
        "  kid ins_1lyWDZiobr600AKUeQDoSlrEmoM  RS256",
    ]


def test_retired_keys_past_not_after_are_not_listed(run: Run, tmp_path: Path) -> None:
    folder = tmp_path
    for name in ("old", "new"):
        assert run("keygen", "--type", "ed25519", "--out", f"keys/{name}.pem").exit_code == 0
    write_config(
        folder,
        """\
        instances:
          - id: a
            issuer: https://a.example
            oauth_metadata: true
            keys:
              - {path: keys/new.pub.pem, status: active, not_before: 2026-01-01}
              - {path: keys/old.pub.pem, status: retired, not_after: 2026-03-01}
        """,
    )
    before = json.loads(run("list", "instances.yaml", "--json", "--now", "2026-02-01").stdout)
    after = json.loads(run("list", "instances.yaml", "--json", "--now", "2026-04-01").stdout)
    assert len(before[0]["kids"]) == 2 and len(after[0]["kids"]) == 1
    assert after[0]["algs"] == ["EdDSA"]
    kinds = [d["kind"] for d in after[0]["documents"]]
    assert kinds == ["jwks", "openid-configuration", "oauth-authorization-server"]
    flat = json.loads(run("list", "instances.yaml", "--flat", "--now", "2026-04-01").stdout)
    assert flat["a.oauth_metadata_path"] == "a.example/.well-known/oauth-authorization-server"


def test_bad_config_is_exit_1_without_output_on_stdout(run: Run, tmp_path: Path) -> None:
    write_config(tmp_path, "instances: []\n")
    result = run("list", "instances.yaml", "--json")
    assert result.exit_code == 1
    assert result.output.startswith("error: instances.yaml")
