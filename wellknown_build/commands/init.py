"""`init`: a new issuer's folder — a commented instances.yaml, its first key and a .gitignore
that keeps private keys out of git — that `render` accepts at once. Never overwrites."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from .. import jsondoc, urls
from ..errors import WellknownError
from ..keys import passphrase_from_env
from ..keys.generate import Generated, generate, public_path_for
from ..schema import json_schema

CONFIG_NAME = "instances.yaml"
SCHEMA_NAME = "instances.schema.json"
GITIGNORE_NAME = ".gitignore"

GITIGNORE = """\
# Written by `wellknown-build init`. Private keys never go into git: only the signer holds
# them. The public halves (*.pub.pem) are what render reads; commit those.
/keys/*.pem
!/keys/*.pub.pem
# The rendered tree: render writes it, publish uploads it.
/out/
"""

CONFIG = """\
# yaml-language-server: $schema={schema}
# wellknown-build: one entry per JWT issuer under `instances`. Paths are relative to this
# file. Every field: `wellknown-build schema`, or the README's "instances.yaml" section.
# (After upgrading wellknown-build: wellknown-build schema > {schema})

defaults:
  cache_control: "public, max-age=300"  # Cache-Control of every document
  token_lifetime: 1h                    # the longest-lived token your issuers sign
  # Check the rules of whoever verifies your tokens (any of: aws-iam, aws-apigateway-http,
  # gcp-wif, kubernetes, oidc-strict):
  # relying_parties: [aws-iam]

instances:
  - id: {id}
    issuer: {issuer}  # exactly the tokens' iss claim
    # jwks_uri: {jwks_uri}  # the default
    keys:
      # {alg}, kid {kid}
      # The signer holds the private half, {private} (git-ignored);
      # render reads only this public half.
      - path: {public}
        kid_method: {kid_method}
        status: active
      # Rotation: `wellknown-build keygen --type {kind} --out keys/NEXT.pem`, add the entry it
      # prints (status: next), publish, wait cache_ttl, then promote it (README: Key rotation).
"""


class InitError(WellknownError):
    """init found a file it would have to overwrite, or could not write one."""


@dataclass(frozen=True)
class Created:
    folder: Path
    config: Path
    files: tuple[Path, ...]  # everything written, in order
    key: Generated


def default_id(issuer: str) -> str:
    """The issuer without its scheme and trailing slash: unique whenever issuers are."""
    return issuer.removeprefix("https://").removesuffix("/")


def key_name(today: dt.date) -> str:
    """Keys are named by the month they were made, as the README's rotation steps name them."""
    return f"keys/{today:%Y-%m}.pem"


_TYPED = ("true", "false", "null")  # plain scalars YAML 1.2 reads as something else


def _yaml_string(value: str) -> str:
    """A plain scalar where YAML reads it back as the same string, else double-quoted."""
    plain = value[:1].isalpha() and value.isascii() and not value.endswith(":")
    if plain and all(c.isalnum() or c in "-_./:~" for c in value) and value.lower() not in _TYPED:
        return value
    return jsondoc.dumps_line(value)


def init(
    folder: Path,
    issuer: str,
    *,
    instance_id: str | None = None,
    kind: str = "rsa",
    bits: int = 2048,
    kid_method: str = "rfc7638",
    passphrase_env: str | None = None,
    today: dt.date | None = None,
) -> Created:
    problems = urls.check_https_url(issuer, what="issuer")
    if problems:  # the CLI checks first; this keeps the function safe on its own
        raise InitError("; ".join(problems))
    private = folder / key_name(today or dt.datetime.now(dt.timezone.utc).date())
    public = public_path_for(private)
    config, schema, gitignore = folder / CONFIG_NAME, folder / SCHEMA_NAME, folder / GITIGNORE_NAME
    taken = [p for p in (config, schema, gitignore, private, public) if os.path.lexists(p)]
    if taken:
        names = ", ".join(str(p) for p in taken)
        raise InitError(
            f"{names} already exist{'s' if len(taken) == 1 else ''}; init never "
            "overwrites a file (choose an empty folder)"
        )
    passphrase = passphrase_from_env(passphrase_env, "--passphrase-env") if passphrase_env else None
    try:
        (folder / "keys").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InitError(f"cannot create {folder / 'keys'}: {e.strerror}") from None
    made = generate(kind, private, bits=bits, passphrase=passphrase, kid_method=kid_method)
    text = CONFIG.format(
        schema=SCHEMA_NAME,
        id=_yaml_string(instance_id or default_id(issuer)),
        issuer=_yaml_string(issuer),
        jwks_uri=urls.default_jwks_uri(issuer),
        alg=made.alg,
        kid=made.kid,
        private=private.relative_to(folder).as_posix(),
        public=public.relative_to(folder).as_posix(),
        kid_method=kid_method,
        kind=kind,
    )
    for path, data in (
        (schema, jsondoc.dumps(json_schema())),
        (gitignore, GITIGNORE.encode()),
        (config, text.encode()),
    ):
        _write_new(path, data)
    return Created(folder, config, (config, schema, gitignore, private, public), made)


def _write_new(path: Path, data: bytes) -> None:
    try:
        with open(path, "xb") as handle:
            handle.write(data)
    except FileExistsError:
        raise InitError(f"{path} appeared while init ran; init never overwrites a file") from None
    except OSError as e:
        raise InitError(f"cannot write {path}: {e.strerror}") from None


def next_steps(created: Created) -> list[str]:
    """What was made, then the commands that take it to a bucket, as mkdocs new says."""
    config, schema, gitignore, private, public = created.files
    made = created.key
    lines = [
        f"created {config}: one entry per issuer; edit it to add more",
        f"created {schema}: the schema editors complete {config.name} with",
        f"created {gitignore}: private keys and out/ stay out of git",
        f"created {private}: the private key (mode 0600), for the signer only",
        f"created {public}: the public key render reads (kid {made.kid}, {made.alg})",
        "",
        "next:",
    ]
    if created.folder.resolve() != Path.cwd().resolve():
        folder = str(created.folder)
        # double quotes work in sh, cmd and PowerShell alike
        lines.append(f'  cd "{folder}"' if any(c.isspace() for c in folder) else f"  cd {folder}")
    lines += [
        f"  wellknown-build render {CONFIG_NAME}      # writes out/<host>/<path>/.well-known/",
        "  wellknown-build serve                       # preview at http://127.0.0.1:8000",
        "  wellknown-build publish --bucket BUCKET     # upload (AWS credentials: default chain)",
    ]
    return lines
