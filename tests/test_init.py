"""init: a new issuer that renders at once; keygen's snippet pasted as a first or next key."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from wellknown_build.commands.init import GITIGNORE_NAME, SCHEMA_NAME, init
from wellknown_build.keys import load_key_file, public_jwk

from .helpers import Run, write, write_config

POSIX = os.name == "posix"


def _key(folder: Path) -> tuple[Path, Path]:
    (public,) = sorted((folder / "keys").glob("*.pub.pem"))
    return public.with_name(public.name.replace(".pub.pem", ".pem")), public


def _jwks(out: Path, path: str) -> dict[str, object]:
    result: dict[str, object] = json.loads((out / path).read_text())
    return result


def test_init_then_render_and_validate(run: Run, tmp_path: Path) -> None:
    result = run("init", "issuer", "--issuer", "https://auth.example.com/tenants/acme")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "issuer"
    private, _ = _key(folder)
    assert "next:\n  cd issuer\n  wellknown-build render instances.yaml" in result.output
    assert "wellknown-build serve" in result.output
    assert "wellknown-build publish --bucket BUCKET" in result.output
    kid = public_jwk(load_key_file(private, lambda: None).public_key).kid
    assert f"kid {kid}, RS256" in result.output

    config = (folder / "instances.yaml").read_text()
    assert config.startswith(f"# yaml-language-server: $schema={SCHEMA_NAME}\n")
    assert "status: active" in config and "kid_method: rfc7638" in config

    rendered = run("render", "issuer/instances.yaml", "--out", "issuer/out")
    assert rendered.exit_code == 0, rendered.output
    assert "warning" not in rendered.output.lower()
    jwks = _jwks(folder / "out", "auth.example.com/tenants/acme/.well-known/jwks.json")
    assert [k["kid"] for k in jwks["keys"]] == [kid]  # type: ignore[attr-defined]
    validated = run("validate", "issuer/instances.yaml", "--strict")
    assert validated.exit_code == 0, validated.output
    assert run("render", "issuer/instances.yaml", "--out", "issuer/out", "--check").exit_code == 0


def test_schema_is_the_shipped_one(run: Run, tmp_path: Path) -> None:
    assert run("init", "--issuer", "https://a.example", "-q").output == ""
    schema = run("schema")
    assert (tmp_path / SCHEMA_NAME).read_text() == schema.output


@pytest.mark.skipif(not POSIX, reason="file modes are POSIX")
def test_private_key_is_0600_and_public_is_readable(run: Run, tmp_path: Path) -> None:
    assert run("init", "--issuer", "https://a.example", "--type", "ed25519").exit_code == 0
    private, public = _key(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes()
    assert b"PUBLIC KEY" in public.read_bytes()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_gitignore_keeps_private_keys_and_out_out_of_git(run: Run, tmp_path: Path) -> None:
    assert run("init", "--issuer", "https://a.example", "--type", "ec-p256").exit_code == 0
    assert run("render", "instances.yaml").exit_code == 0
    private, public = _key(tmp_path)
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    tracked = subprocess.run(
        [*git, "ls-files"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert sorted(tracked) == sorted(
        [".gitignore", "instances.yaml", SCHEMA_NAME, f"keys/{public.name}"]
    )
    assert f"keys/{private.name}" not in tracked
    assert not any(t.startswith("out/") for t in tracked)


@pytest.mark.parametrize(
    ("kind", "alg"),
    [("ec-p256", "ES256"), ("ec-p384", "ES384"), ("ed25519", "EdDSA"), ("ed448", "EdDSA")],
)
def test_every_key_type_renders(run: Run, tmp_path: Path, kind: str, alg: str) -> None:
    assert run("init", "--issuer", "https://a.example/", "--type", kind).exit_code == 0
    assert run("render", "instances.yaml").exit_code == 0
    jwks = _jwks(tmp_path / "out", "a.example/.well-known/jwks.json")
    assert jwks["keys"][0]["alg"] == alg  # type: ignore[index]


def test_kubernetes_kid_method(run: Run, tmp_path: Path) -> None:
    result = run("init", "--issuer", "https://oidc.example.com/c1", "--type", "ec-p256",
                 "--kid-method", "kubernetes")  # fmt: skip
    assert result.exit_code == 0, result.output
    config = (tmp_path / "instances.yaml").read_text()
    assert "kid_method: kubernetes" in config
    # a cluster's relying party checks every kid is the SPKI hash kube-apiserver signs with
    config = config.replace("# relying_parties: [aws-iam]", "relying_parties: [kubernetes]")
    (tmp_path / "instances.yaml").write_text(config)
    assert run("validate", "instances.yaml", "--strict").exit_code == 0
    private, _ = _key(tmp_path)
    kid = public_jwk(load_key_file(private, lambda: None).public_key, kid_method="kubernetes").kid
    assert f"kid {kid}" in result.output


def test_id_option_and_values_yaml_would_misread(run: Run, tmp_path: Path) -> None:
    for folder, ident in (("a", "true"), ("b", "tenant: 7 # x"), ("c", "123")):
        result = run("init", folder, "--issuer", f"https://{folder}.example", "--id", ident,
                     "--type", "ed25519")  # fmt: skip
        assert result.exit_code == 0, result.output
        listed = run("list", f"{folder}/instances.yaml", "--json")
        assert json.loads(listed.output)[0]["id"] == ident


def test_default_id_is_the_issuer_without_scheme(run: Run, tmp_path: Path) -> None:
    assert (
        run("init", "--issuer", "https://auth.example.com/t/a/", "--type", "ed25519").exit_code == 0
    )
    listed = json.loads(run("list", "instances.yaml", "--json").output)
    assert listed[0]["id"] == "auth.example.com/t/a"
    assert listed[0]["issuer"] == "https://auth.example.com/t/a/"


def test_encrypted_private_key(run: Run, tmp_path: Path) -> None:
    result = run("init", "--issuer", "https://a.example", "--type", "ed25519",
                 "--passphrase-env", "INIT_PASS", env={"INIT_PASS": "s3cret"})  # fmt: skip
    assert result.exit_code == 0, result.output
    private, _ = _key(tmp_path)
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert run("render", "instances.yaml").exit_code == 0  # render reads the public half only


@pytest.mark.parametrize("existing", ["instances.yaml", GITIGNORE_NAME, SCHEMA_NAME, "key"])
def test_never_overwrites_and_writes_nothing(run: Run, tmp_path: Path, existing: str) -> None:
    if existing == "key":
        init(tmp_path / "first", "https://a.example", kind="ed25519")
        (name,) = sorted(p.name for p in (tmp_path / "first" / "keys").glob("*.pub.pem"))
        write(tmp_path / "keys" / name, "mine\n")
    else:
        write(tmp_path / existing, "mine\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = run("init", "--issuer", "https://a.example", "--type", "ed25519")
    assert result.exit_code == 1
    assert "init never overwrites a file" in result.output
    assert "Traceback" not in result.output
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_bad_issuer_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    for issuer in ("http://a.example", "https://A.example", "https://a.example/x?y=1"):
        result = run("init", "--issuer", issuer)
        assert result.exit_code == 2, issuer
        assert "Invalid value for '--issuer'" in result.output
    assert run("init").exit_code == 2  # --issuer is required
    assert list(tmp_path.iterdir()) == []


def test_dir_that_is_a_file(run: Run, tmp_path: Path) -> None:
    write(tmp_path / "taken", "x")
    result = run("init", "taken", "--issuer", "https://a.example")
    assert result.exit_code == 2 and "Traceback" not in result.output


# keygen's printed YAML, pasted as it says


KEYGEN_CONFIG = """\
instances:
  - id: a
    issuer: https://a.example
    keys:
{keys}
"""


def _snippet(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if line.startswith("      "))


def test_keygen_first_key_pasted_renders_without_warning(run: Run, tmp_path: Path) -> None:
    made = run("keygen", "--type", "ec-p256", "--out", "keys/first.pem", "--status", "active")
    assert made.exit_code == 0, made.output
    assert "status: active" in made.output
    write_config(tmp_path, KEYGEN_CONFIG.format(keys=_snippet(made.output)))
    result = run("validate", "instances.yaml", "--strict")
    assert result.exit_code == 0, result.output


def test_keygen_next_key_pasted_after_the_active_one(run: Run, tmp_path: Path) -> None:
    first = run("keygen", "--type", "ec-p256", "--out", "keys/a.pem", "--status", "active")
    second = run("keygen", "--type", "ec-p256", "--out", "keys/b.pem")
    assert "status: next" in second.output and "--status active" in second.output
    keys = _snippet(first.output) + "\n" + _snippet(second.output)
    write_config(tmp_path, KEYGEN_CONFIG.format(keys=keys))
    assert run("render", "instances.yaml").exit_code == 0
    jwks = _jwks(tmp_path / "out", "a.example/.well-known/jwks.json")
    kids = [k["kid"] for k in jwks["keys"]]  # type: ignore[attr-defined]
    printed = [line.split()[-1] for o in (first, second) for line in o.output.splitlines()
               if line.startswith("kid:")]  # fmt: skip
    assert kids == printed


def test_keygen_kubernetes_snippet_names_the_method(run: Run, tmp_path: Path) -> None:
    made = run("keygen", "--type", "rsa", "--out", "k.pem", "--kid-method", "kubernetes",
               "--status", "active")  # fmt: skip
    snippet = _snippet(made.output)
    assert "kid_method: kubernetes" in snippet and "kid:" not in snippet
    # a defaults.key.kid_method cannot change the printed kid: the entry states its method
    config = "defaults: {key: {kid_method: rfc7638}}\n" + KEYGEN_CONFIG.format(keys=snippet)
    write_config(tmp_path, config)
    assert run("render", "instances.yaml").exit_code == 0
    kid = next(line.split()[-1] for line in made.output.splitlines() if line.startswith("kid:"))
    jwks = _jwks(tmp_path / "out", "a.example/.well-known/jwks.json")
    assert jwks["keys"][0]["kid"] == kid  # type: ignore[index]


def test_python_dash_m_init(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wellknown_build", "init", str(tmp_path / "x"),
         "--issuer", "https://a.example", "--type", "ed25519"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x" / "instances.yaml").is_file()


def test_next_steps_quote_a_folder_with_spaces(run: Run, tmp_path: Path) -> None:
    result = run("init", "my issuer", "--issuer", "https://a.example", "--type", "ed25519")
    assert '  cd "my issuer"\n' in result.output
