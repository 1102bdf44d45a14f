"""`inspect`: what each key file (or KMS key, or JWKS file) holds, as a person compares it
across systems."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import KeyLoadError
from ..keys import LoadedKey, jwks_source, kms, load_key_file, passphrase_from_env
from ..keys.describe import describe, text


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


def inspect(
    pems: Sequence[Path],
    passphrase_env: str | None,
    kms_ids: Sequence[str] = (),
    jwks_files: Sequence[Path] = (),
) -> list[dict[str, Any]]:
    """One report per key: each PEM file's, each KMS key's, each key of each JWKS file."""
    reports = []
    for pem in pems:
        try:
            loaded = load_key_file(pem, passphrase_source(passphrase_env, str(pem)))
        except KeyLoadError as e:
            raise KeyLoadError(f"{pem}: {e}") from None
        reports.append({"file": str(pem), **describe(loaded)})
    fetched = kms.fetch_all(kms_ids)
    for key_id in kms_ids:
        reports.append(_kms_report(key_id, fetched[key_id]))
    for path in jwks_files:
        reports += _jwks_reports(path)
    return reports


def _kms_report(key_id: str, fetched: kms.KmsKey | KeyLoadError) -> dict[str, Any]:
    """What KMS says of the key, and the facts of its public key as for a PEM file; the
    algs are those both the key and KMS allow."""
    try:
        if isinstance(fetched, KeyLoadError):
            raise fetched
        key = kms.public_key(fetched)
    except KeyLoadError as e:
        raise KeyLoadError(f"kms {key_id}: {e}") from None
    facts = describe(LoadedKey(key, "kms"))
    if facts["publishable"]:
        allowed = kms.algs(fetched)
        facts["algs"] = [alg for alg in facts["algs"] if alg in allowed]
        if facts["default_alg"] not in facts["algs"]:
            facts["default_alg"] = facts["algs"][0] if facts["algs"] else None
    return {
        "file": f"kms:{key_id}",
        "kms": {
            "key_id": key_id,
            "key_arn": fetched.arn,
            "key_spec": fetched.key_spec,
            "key_usage": fetched.key_usage,
            "signing_algorithms": list(fetched.signing_algorithms),
        },
        **facts,
    }


def _jwks_reports(path: Path) -> list[dict[str, Any]]:
    try:
        found = jwks_source.load(path)
    except KeyLoadError as e:
        raise KeyLoadError(f"{path}: {e}") from None
    reports = []
    for item in found:
        if isinstance(item, KeyLoadError):
            raise KeyLoadError(f"{path}: {item}")
        facts = describe(LoadedKey(item.public_key, "jwks", item.certificates))
        reports.append(
            {
                "file": f"{path} keys[{item.index}]",
                "jwks": {"file": str(path), "index": item.index, "kid": item.kid, "alg": item.alg},
                **facts,
            }
        )
    return reports


def lines(report: dict[str, Any]) -> list[str]:
    """`inspect`'s text: the key's facts, then what KMS or the JWKS file said of it."""
    rows: list[tuple[str, str]] = []
    if "kms" in report:
        told = report["kms"]
        rows += [
            ("KMS key ARN", told["key_arn"]),
            ("KMS key spec", f"{told['key_spec']}, {told['key_usage']}"),
            ("KMS algorithms", ", ".join(told["signing_algorithms"]) or "none"),
        ]
    if "jwks" in report:
        told = report["jwks"]
        rows += [
            ("kid (in the file)", told["kid"] or "none"),
            ("alg (in the file)", told["alg"] or "none"),
        ]
    return [*text(report), *(f"  {name:<17} {value}" for name, value in rows)]
