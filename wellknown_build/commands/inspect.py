"""`inspect`: what each key file holds, as a person compares it across systems."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import KeyLoadError
from ..keys import load_key_file, passphrase_from_env
from ..keys.describe import describe


def passphrase_source(env: str | None, label: str) -> Callable[[], bytes | None]:
    """From the named environment variable, else a hidden prompt on a terminal; asked only
    for an encrypted key. Without either, the error says what inspect takes (the key
    loader's own message names the config field, passphrase_env)."""

    def ask() -> bytes | None:
        if env:
            return passphrase_from_env(env, "--passphrase-env")
        if sys.stdin.isatty():
            return str(click.prompt(f"Passphrase for {label}", hide_input=True)).encode(
                "utf-8", "surrogateescape"
            )
        raise KeyLoadError(
            "the private key is encrypted; pass --passphrase-env VAR, or run on a terminal "
            "to be asked"
        )

    return ask


def inspect(pems: Sequence[Path], passphrase_env: str | None) -> list[dict[str, Any]]:
    reports = []
    for pem in pems:
        try:
            loaded = load_key_file(pem, passphrase_source(passphrase_env, str(pem)))
        except KeyLoadError as e:
            raise KeyLoadError(f"{pem}: {e}") from None
        reports.append({"file": str(pem), **describe(loaded)})
    return reports
