"""`keygen`: a new signing key on disk (0600, never overwriting) and the YAML to list it."""

from __future__ import annotations

from pathlib import Path

from ..keys import passphrase_from_env
from ..keys.generate import Generated, generate


def keygen(
    kind: str, out: Path, bits: int, passphrase_env: str | None, kid_method: str
) -> tuple[Generated, bool]:
    """The key made, and whether it is encrypted."""
    passphrase = passphrase_from_env(passphrase_env, "--passphrase-env") if passphrase_env else None
    made = generate(kind, out, bits=bits, passphrase=passphrase, kid_method=kid_method)
    return made, passphrase is not None
