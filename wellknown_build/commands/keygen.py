"""`keygen`: a new signing key on disk (0600, never overwriting) and the YAML to list it."""

from __future__ import annotations

from pathlib import Path

from ..keys import passphrase_from_env
from ..keys.generate import Generated, generate

STATUSES = ("next", "active")


def keygen(
    kind: str, out: Path, bits: int, passphrase_env: str | None, kid_method: str
) -> tuple[Generated, bool]:
    """The key made, and whether it is encrypted."""
    passphrase = passphrase_from_env(passphrase_env, "--passphrase-env") if passphrase_env else None
    made = generate(kind, out, bits=bits, passphrase=passphrase, kid_method=kid_method)
    return made, passphrase is not None


def snippet(made: Generated, kid_method: str, status: str) -> list[str]:
    """The key entry to paste under an instance's `keys:`. It names the kid method rather
    than pinning the kid, so the entry reads as the rule it follows, and it states the method
    even when it is the default, so a `defaults.key.kid_method` cannot change the kid."""
    return [
        f"      - path: {made.public_path.as_posix()}",
        f"        kid_method: {kid_method}",
        f"        status: {status}",
    ]


def advice(status: str) -> str:
    if status == "active":
        return "Add it to the instance's keys; it signs from now on (an instance's first key):"
    return (
        "Add it to the instance's keys as the next key; publish it at least cache_ttl before "
        "it signs (for an instance's first key, use --status active):"
    )
