"""`export`: an instance's published keys as GCP workload identity federation's jwksJson and
as Vault's jwt_validation_pubkeys, byte for byte, with the reminder to upload them again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from wellknown_build.keys import load_key_file

from .helpers import DATA, KEY_MAKERS, Run, public_pem, write, write_config

KEYS = DATA / "keys"
NOW = "2026-12-01T00:00:00Z"
CONFIG = """
instances:
  - id: acme
    issuer: https://auth.example.com/acme
    keys:
      - {path: keys/p256-cert.pem, x5c: true, kid: ec-1}
      - {path: keys/rsa2048.pub.pem, kid: rsa-1}
      - {path: keys/p384.pub.pem, kid: next-1, status: next, not_before: 2027-01-01T00:00:00Z}
      - {path: keys/p521.pub.pem, kid: gone-1, status: retired, not_after: 2026-11-01T00:00:00Z}
  - id: other
    issuer: https://auth.example.com/other
    keys:
      - {path: keys/ed.pem}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = _mk(tmp_path)
    for name in ("p256-cert.pem", "rsa2048.pub.pem", "p384.pub.pem", "p521.pub.pem"):
        shutil.copy(KEYS / name, folder / name)
    write(tmp_path / "keys" / "ed.pem", public_pem(KEY_MAKERS["ed25519"]()))
    return write_config(tmp_path, CONFIG)


def _mk(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    return tmp_path / "keys"


def _published(run: Run, tmp_path: Path) -> list[dict[str, Any]]:
    assert run("render", "instances.yaml", "--now", NOW).exit_code == 0
    path = tmp_path / "out" / "auth.example.com" / "acme" / ".well-known" / "jwks.json"
    keys: list[dict[str, Any]] = json.loads(path.read_text())["keys"]
    return keys


def test_gcp_wif_is_the_published_jwks_with_gcps_members_only(
    run: Run, tmp_path: Path, config: Path
) -> None:
    published = _published(run, tmp_path)
    assert [k["kid"] for k in published] == ["ec-1", "rsa-1", "next-1"]  # gone-1 dropped
    assert "x5c" in published[0]
    result = run("export", "--format", "gcp-wif", "--now", NOW, "instances.yaml", "acme")
    assert result.exit_code == 0, result.output
    allowed = ("kty", "alg", "use", "kid", "n", "e", "x", "y", "crv")
    expected = {"keys": [{k: v for k, v in key.items() if k in allowed} for key in published]}
    assert result.stdout == json.dumps(expected, indent=2) + "\n"  # byte for byte
    assert "x5c" not in result.stdout and "x5t#S256" not in result.stdout
    assert "upload it again after every rotation" in result.stderr
    assert "--jwk-json-path FILE" in result.stderr


def test_gcp_wif_refuses_okp_keys(run: Run, config: Path) -> None:
    result = run("export", "--format", "gcp-wif", "instances.yaml", "other")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error: instance other: GCP workload identity federation takes RSA and EC keys only" in (
        result.stderr
    )
    assert "is OKP Ed25519" in result.stderr


def _vault_elements(text: str) -> list[str]:
    """What Vault's JWT auth makes of `jwt_validation_pubkeys=@FILE`: the value split on
    commas, each element trimmed (go-secure-stdlib parseutil.ParseCommaStringSlice)."""
    return [element.strip() for element in text.split(",")]


def test_vault_pem_blocks_parse_back_to_the_keys(run: Run, tmp_path: Path, config: Path) -> None:
    result = run("export", "--format", "vault-pem", "--now", NOW, "instances.yaml", "acme")
    assert result.exit_code == 0, result.output
    files = ["p256-cert.pem", "rsa2048.pub.pem", "p384.pub.pem"]
    spkis = [
        load_key_file(KEYS / name, lambda: None).public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for name in files
    ]
    assert result.stdout.encode() == b",\n".join(spkis)  # byte for byte
    elements = _vault_elements(result.stdout)
    assert len(elements) == 3
    for element, spki in zip(elements, spkis, strict=True):
        assert element.count("-----BEGIN PUBLIC KEY-----") == 1  # one key per list element
        parsed = serialization.load_pem_public_key(element.encode())
        assert (
            parsed.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == spki
        )
    assert "write them again after every rotation" in result.stderr
    assert "set jwt_supported_algs to include them (Vault's default is RS256 only)" in result.stderr


def test_vault_pem_of_one_rsa_key(run: Run, tmp_path: Path) -> None:
    _mk(tmp_path)
    shutil.copy(KEYS / "rsa2048.pub.pem", tmp_path / "keys" / "rsa.pem")
    write_config(
        tmp_path,
        """
        instances:
          - {id: one, issuer: 'https://one.example', keys: [{path: keys/rsa.pem}]}
        """,
    )
    result = run("export", "--format", "vault-pem", "instances.yaml", "one")
    assert result.exit_code == 0, result.output
    assert result.stdout.encode() == (KEYS / "rsa2048.pub.pem").read_bytes()
    assert "jwt_supported_algs" not in result.stderr.split("write them again")[1]


@pytest.mark.parametrize(("name", "what"), [("ed448.pub.pem", "OKP Ed448"), ("k1", "EC secp256k1")])
def test_vault_pem_refuses_keys_vault_cannot_read(
    run: Run, tmp_path: Path, name: str, what: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    _mk(tmp_path)
    if name == "k1":
        write(tmp_path / "keys" / "k.pem", public_pem(ec.generate_private_key(ec.SECP256K1())))
        alg = ", alg: ES256K"
    else:
        shutil.copy(KEYS / name, tmp_path / "keys" / "k.pem")
        alg = ""
    write_config(
        tmp_path,
        f"""
        instances:
          - {{id: one, issuer: 'https://one.example', keys: [{{path: keys/k.pem, kid: k{alg}}}]}}
        """,
    )
    result = run("export", "--format", "vault-pem", "instances.yaml", "one")
    assert result.exit_code == 1
    assert (
        f"Vault reads RSA, EC P-256/P-384/P-521 and Ed25519 public keys only: kid k is {what}"
        in (result.stderr)
    )


def test_out_file(run: Run, tmp_path: Path, config: Path) -> None:
    target = tmp_path / "gcp.json"
    result = run(
        "export",
        "--format",
        "gcp-wif",
        "--now",
        NOW,
        "--out",
        str(target),
        "instances.yaml",
        "acme",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    written = target.read_bytes()
    assert [k["kid"] for k in json.loads(written)["keys"]] == ["ec-1", "rsa-1", "next-1"]
    (tmp_path / "keys" / "rsa2048.pub.pem").write_text("broken")
    failed = run(
        "export",
        "--format",
        "gcp-wif",
        "--now",
        NOW,
        "--out",
        str(target),
        "instances.yaml",
        "acme",
    )
    assert failed.exit_code == 1
    assert "instances[0].keys[1]: no PEM block found (keys/rsa2048.pub.pem)" in failed.stderr
    assert target.read_bytes() == written  # the older export is left as it was
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_keys_of_that_instant(run: Run, config: Path) -> None:
    """At another --now the published set differs, and so does the export."""
    earlier = run("export", "--format", "gcp-wif", "--now", "2026-10-01", "instances.yaml", "acme")
    assert [k["kid"] for k in json.loads(earlier.stdout)["keys"]] == [
        "ec-1",
        "rsa-1",
        "next-1",
        "gone-1",
    ]


def test_usage_errors(run: Run, config: Path) -> None:
    unknown = run("export", "--format", "gcp-wif", "instances.yaml", "nobody")
    assert unknown.exit_code == 2
    assert "no instance 'nobody' (instances: acme, other)" in unknown.stderr
    assert run("export", "--format", "pem", "instances.yaml", "acme").exit_code == 2
    assert run("export", "instances.yaml", "acme").exit_code == 2
