"""inspect (golden output for every key type) and keygen (modes, refusal to overwrite)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from wellknown_build.keys import load_key_file, public_jwk

from .helpers import DATA, GOLDEN, Run, vector

KEYS = sorted((DATA / "keys").glob("*.pem"))
ENV = {"INSPECT_PASS": "inspect-test"}


def test_inspect_json_matches_golden(run: Run) -> None:
    result = run("inspect", "--json", "--passphrase-env", "INSPECT_PASS", *map(str, KEYS), env=ENV)
    assert result.exit_code == 0, result.output
    reports = json.loads(result.output)
    for report in reports:
        report["file"] = Path(report["file"]).name
    golden = GOLDEN / "inspect.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(reports, indent=2) + "\n")
    assert reports == json.loads(golden.read_text())


def test_inspect_text_names_the_identities(run: Run) -> None:
    result = run(
        "inspect", str(DATA / "keys" / "rsa2048.pub.pem"), str(DATA / "keys" / "p256-cert.pem")
    )
    assert result.exit_code == 0
    assert f"kid (kubernetes)  {vector('kubernetes-keyid.json')['kid']}" in result.output
    assert "certificate 1     CN=issuer.example" in result.output
    assert "    valid           2026-01-01T00:00:00Z .. 2027-01-01T00:00:00Z" in result.output


def test_inspect_rfc8037_key_thumbprint(run: Run) -> None:
    result = run(
        "inspect",
        "--json",
        "--passphrase-env",
        "INSPECT_PASS",
        str(DATA / "keys" / "ed25519-encrypted.pem"),
        env=ENV,
    )
    (report,) = json.loads(result.output)
    assert report["kid_rfc7638"] == vector("rfc8037-a.json")["thumbprint"]
    assert report["source"] == "private"


def test_inspect_encrypted_without_passphrase(run: Run) -> None:
    result = run("inspect", str(DATA / "keys" / "ed25519-encrypted.pem"))
    assert result.exit_code == 1
    assert "ed25519-encrypted.pem: the private key is encrypted" in result.output
    assert "pass --passphrase-env VAR" in result.output  # what inspect takes, not the YAML field
    assert "inspect-test" not in result.output


@pytest.mark.parametrize("kind", ["rsa", "ec-p256", "ec-p384", "ec-p521", "ed25519", "ed448"])
def test_keygen(run: Run, tmp_path: Path, kind: str) -> None:
    result = run("keygen", "--type", kind, "--out", "keys/new.pem")
    assert result.exit_code == 0, result.output
    private, public = tmp_path / "keys/new.pem", tmp_path / "keys/new.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    kid = public_jwk(load_key_file(public, lambda: None).public_key).kid
    assert f"kid:         {kid}" in result.output
    assert (
        "      - path: keys/new.pub.pem\n        kid_method: rfc7638\n        status: next\n"
        in result.output
    )
    assert public_jwk(load_key_file(private, lambda: None).public_key).kid == kid


def test_keygen_never_overwrites(run: Run, tmp_path: Path) -> None:
    assert run("keygen", "--type", "ed25519", "--out", "k.pem").exit_code == 0
    before = (tmp_path / "k.pem").read_bytes()
    again = run("keygen", "--type", "ed25519", "--out", "k.pem")
    assert again.exit_code == 1 and "k.pem exists; keygen never overwrites a key" in again.output
    assert (tmp_path / "k.pem").read_bytes() == before
    (tmp_path / "k.pem").unlink()
    assert (
        run("keygen", "--type", "ed25519", "--out", "k.pem").exit_code == 1
    )  # the .pub.pem is still there


def test_keygen_encrypted(run: Run, tmp_path: Path) -> None:
    result = run(
        "keygen",
        "--type",
        "ec-p384",
        "--out",
        "k.pem",
        "--passphrase-env",
        "KG_PASS",
        env={"KG_PASS": "s3cret"},
    )
    assert result.exit_code == 0 and "encrypted" in result.output
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k.pem").read_bytes()
    assert load_key_file(tmp_path / "k.pem", lambda: b"s3cret").source == "private"
    assert (
        run(
            "keygen", "--type", "ec-p384", "--out", "j.pem", "--passphrase-env", "KG_UNSET"
        ).exit_code
        == 1
    )
    assert run("keygen", "--type", "rsa", "--bits", "1024", "--out", "r.pem").exit_code == 2
