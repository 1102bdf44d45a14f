"""Private key material and passphrases never reach the output folder, the manifest or a log."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from .helpers import KEY_MAKERS, Run, private_pem, write, write_config

SECRET = "pass-phrase-that-must-not-leak"


def test_private_inputs_leave_no_trace(run: Run, tmp_path: Path) -> None:
    lines = ["instances:"]
    secrets: list[bytes] = []
    for name, make in sorted(KEY_MAKERS.items()):
        key = make()
        raw = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        secrets.append(base64.b64encode(raw)[40:80])  # a run of the private key's own bytes
        write(tmp_path / "keys" / f"{name}.pem", private_pem(key, passphrase=SECRET.encode()))
        lines.append(
            f"  - {{id: {name}, issuer: 'https://{name}.example', keys: [{{path: keys/{name}.pem, passphrase_env: WKB_SECRET}}]}}"
        )
    write_config(tmp_path, "\n".join(lines) + "\n")
    result = run("-v", "render", "instances.yaml", env={"WKB_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    wrong = run(
        "-v", "render", "instances.yaml", "--out", "other", env={"WKB_SECRET": "wrong-" + SECRET}
    )
    assert wrong.exit_code == 1
    logs = result.output + wrong.output
    assert SECRET not in logs
    written = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert b'"d"' not in written and b'"p"' not in written and b"PRIVATE" not in written
    for fragment in secrets:
        assert fragment not in written
        assert fragment.decode() not in logs
