"""The render pipeline up to the tree: config → public keys → documents, problems collected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from . import relying_parties
from .config import load
from .documents import KIND_DISCOVERY, Document, instance_documents
from .errors import AlgError, ConfigError, KeyLoadError, Problem, TemplateError
from .keys import (
    JWK,
    LoadedKey,
    load_key_file,
    passphrase_from_env,
    public_jwk,
    spki_sha256,
)
from .keys.x509 import with_certificates
from .lifecycle import select
from .model import Config, Instance, KeySpec
from .templating import Renderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Build:
    config: Config
    documents: tuple[Document, ...]
    warnings: tuple[Problem, ...] = ()


class KeyFiles:
    """Each key file is read once, however many instances list it."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str | None], LoadedKey | KeyLoadError] = {}

    def load(self, spec: KeySpec) -> LoadedKey:
        cache_key = (spec.path, spec.passphrase_env)
        if cache_key not in self._cache:
            try:
                self._cache[cache_key] = load_key_file(Path(spec.path), lambda: _passphrase(spec))
            except KeyLoadError as e:
                self._cache[cache_key] = e
        result = self._cache[cache_key]
        if isinstance(result, KeyLoadError):
            raise result
        return result


def _passphrase(spec: KeySpec) -> bytes | None:
    if spec.passphrase_env is None:
        return None
    try:
        return passphrase_from_env(spec.passphrase_env)
    except KeyLoadError as e:
        raise KeyLoadError(f"the private key is encrypted and {e}") from None


def instance_jwks(
    instance: Instance, files: KeyFiles, problems: list[Problem]
) -> list[tuple[KeySpec, JWK]]:
    """Every key of the instance as a JWK, whatever its rotation state."""
    keyed: list[tuple[KeySpec, JWK]] = []
    by_thumbprint: dict[str, str] = {}
    by_kid: dict[str, str] = {}
    for spec in instance.keys:
        name = spec.where.rsplit(".", 1)[-1]
        try:
            loaded = files.load(spec)
            jwk = public_jwk(
                loaded.public_key, alg=spec.alg, kid=spec.kid, kid_method=spec.kid_method
            )
            if spec.x5c:
                jwk = with_certificates(jwk, loaded.certificates)
            if "kubernetes" in instance.relying_parties:
                jwk = dataclasses.replace(jwk, spki_kid=spki_sha256(loaded.public_key))
        except AlgError as e:
            problems.append(Problem(f"{spec.where}.alg", f"{e} ({spec.file})", instance.id))
            continue
        except KeyLoadError as e:
            problems.append(Problem(spec.where, f"{e} ({spec.file})", instance.id))
            continue
        if jwk.thumbprint in by_thumbprint:
            problems.append(
                Problem(
                    spec.where,
                    f"the same key as {by_thumbprint[jwk.thumbprint]} is listed twice "
                    f"({spec.file})",
                    instance.id,
                )
            )
            continue
        if jwk.kid in by_kid:
            problems.append(
                Problem(
                    f"{spec.where}.kid" if spec.kid else spec.where,
                    f"kid {jwk.kid!r} is also the kid of {by_kid[jwk.kid]}, a different key; "
                    "relying parties would pick either",
                    instance.id,
                )
            )
            continue
        by_thumbprint[jwk.thumbprint] = name
        by_kid[jwk.kid] = name
        keyed.append((spec, jwk))
    return keyed


def _collisions(documents: list[Document], where: dict[str, str]) -> list[Problem]:
    """Two instances writing one file, or one's file standing where another needs a folder."""
    problems = []
    owner: dict[str, Document] = {}
    for document in documents:
        other = owner.get(document.path)
        if other is not None:
            problems.append(
                Problem(
                    where[document.instance],
                    f"{document.kind} would be written to {document.path}, "
                    f"which instance {other.instance} also writes",
                    document.instance,
                )
            )
        else:
            owner[document.path] = document
    for document in documents:
        parts = document.path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in owner:
                problems.append(
                    Problem(
                        where[document.instance],
                        f"{document.path} needs {folder} to be a folder, but instance "
                        f"{owner[folder].instance} writes a file there",
                        document.instance,
                    )
                )
    return problems


def _documents(
    instance: Instance,
    files: KeyFiles,
    renderer: Renderer,
    now: dt.datetime,
    problems: list[Problem],
    notices: list[Problem],
    warnings: list[Problem],
) -> list[Document]:
    before = len(problems)
    keyed = instance_jwks(instance, files, problems)
    if len(problems) > before:
        return []
    outcome = select(instance, keyed, now)
    notices += outcome.notices
    warnings += outcome.warnings
    problems += outcome.errors
    if len(problems) > before:
        return []
    try:
        documents = instance_documents(instance, outcome.published, renderer)
    except TemplateError as e:
        problems.append(Problem(f"{instance.where}.template", str(e), instance.id))
        return []
    discovery: dict[str, object] = {}
    if relying_parties.READ_DOCUMENT.intersection(instance.relying_parties):
        discovery = json.loads(next(d.body for d in documents if d.kind == KIND_DISCOVERY))
    problems += relying_parties.check(instance, outcome.published, discovery)
    return [] if len(problems) > before else documents


def build(config_path: Path, now: dt.datetime | None = None) -> Build:
    """Everything checked before anything is written; raises ConfigError with every problem.

    `now` fixes the clock the rotation rules read (default: the current time)."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    loaded = load(config_path)
    problems = list(loaded.problems)
    files = KeyFiles()
    key_problems: list[Problem] = []
    renderer = Renderer(loaded.config.templates_dir)
    documents: list[Document] = []
    notices: list[Problem] = []
    warnings: list[Problem] = []
    for instance, valid in loaded.readable:
        if valid:
            documents += _documents(
                instance, files, renderer, moment, key_problems, notices, warnings
            )
        else:  # it has other problems: report those of its keys in the same run
            instance_jwks(instance, files, key_problems)
    instances = loaded.config.instances
    key_problems += _collisions(documents, {i.id: i.where for i in instances})
    problems += loaded.locate(key_problems)
    if problems:  # in file order; a stable sort keeps each line's problems as found
        order = {name: i for i, name in enumerate(loaded.included, 1)}
        problems.sort(key=lambda p: (order.get(p.file or "", 0), p.line or 0))
        raise ConfigError(str(config_path), problems)
    for notice in loaded.locate(notices):
        log.info("%s", notice.located(str(config_path)))
    located = (*loaded.warnings, *loaded.locate(warnings))
    for warning in located:
        log.warning("%s", warning.located(str(config_path)))
    log.debug("built %d documents for %d instances", len(documents), len(instances))
    return Build(loaded.config, tuple(documents), located)
