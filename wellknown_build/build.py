"""The render pipeline up to the tree: config → public keys → documents, problems collected."""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .config import Config, Instance, KeySpec, Outline, load_outline
from .documents import Document, instance_documents
from .errors import ConfigError, KeyLoadError, Problem, TemplateError
from .keys import JWK, LoadedKey, allowed_algs, load_key_file, public_jwk
from .render import Renderer

log = logging.getLogger(__name__)
PARALLEL_FROM = 2000  # instances; below this a fork costs more than it saves


@dataclass(frozen=True)
class Build:
    config: Config
    documents: tuple[Document, ...]


class KeyFiles:
    """Each key file is read once, however many instances list it."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Path, str | None], LoadedKey | KeyLoadError] = {}

    def load(self, spec: KeySpec) -> LoadedKey:
        cache_key = (spec.path, spec.passphrase_env)
        if cache_key not in self._cache:
            try:
                self._cache[cache_key] = load_key_file(spec.path, lambda: _passphrase(spec))
            except KeyLoadError as e:
                self._cache[cache_key] = e
        result = self._cache[cache_key]
        if isinstance(result, KeyLoadError):
            raise result
        return result


def _passphrase(spec: KeySpec) -> bytes | None:
    if spec.passphrase_env is None:
        return None
    value = os.environ.get(spec.passphrase_env)
    if value is None:
        raise KeyLoadError(
            f"the private key is encrypted and environment variable {spec.passphrase_env} "
            "(passphrase_env) is not set"
        )
    return value.encode("utf-8")


def instance_jwks(instance: Instance, files: KeyFiles, problems: list[Problem]) -> list[JWK]:
    jwks: list[JWK] = []
    by_thumbprint: dict[str, str] = {}
    by_kid: dict[str, tuple[str, str]] = {}
    for spec in instance.keys:
        try:
            key = files.load(spec).public_key
            algs = allowed_algs(key, spec.alg)
            if spec.alg is not None and spec.alg not in algs:
                problems.append(
                    Problem(
                        f"{spec.where}.alg",
                        f"{spec.alg} does not fit this key (allowed: {', '.join(algs)}) "
                        f"({spec.file})",
                        instance.id,
                    )
                )
                continue
            jwk = public_jwk(key, alg=spec.alg, kid=spec.kid, kid_method=spec.kid_method)
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
                    f"kid {jwk.kid!r} is also the kid of {by_kid[jwk.kid][0]}, a different key; "
                    "relying parties would pick either",
                    instance.id,
                )
            )
            continue
        by_thumbprint[jwk.thumbprint] = spec.where.rsplit(".", 1)[-1]
        by_kid[jwk.kid] = (spec.where.rsplit(".", 1)[-1], jwk.thumbprint)
        jwks.append(jwk)
    return jwks


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


# The configuration being built, shared with forked workers by inheritance rather than by
# pickling 10,000 instances into them.
_OUTLINE: Outline | None = None


def _slice(start: int, stop: int) -> tuple[list[Instance], list[Document], list[Problem]]:
    """Validate, load keys and make documents for instances [start, stop): independent of
    every other instance, so slices can run in separate processes."""
    assert _OUTLINE is not None
    instances, problems = _OUTLINE.instances(start, stop)
    renderer = Renderer(_OUTLINE.templates_dir)
    files = KeyFiles()
    documents: list[Document] = []
    for instance in instances:
        before = len(problems)
        jwks = instance_jwks(instance, files, problems)
        if len(problems) > before:
            continue
        try:
            documents += instance_documents(instance, jwks, renderer)
        except TemplateError as e:
            problems.append(Problem(f"{instance.where}.template", str(e), instance.id))
    return instances, documents, problems


def _workers(instances: int) -> int:
    """Processes to share the per-instance work: worth a fork only for large configs."""
    wanted = os.environ.get("WELLKNOWN_WORKERS")
    if wanted:
        return max(1, int(wanted))
    if instances < PARALLEL_FROM or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(len(os.sched_getaffinity(0)), 4)


def _all_slices(outline: Outline) -> tuple[list[Instance], list[Document], list[Problem]]:
    global _OUTLINE
    count = len(outline.raw_instances)
    workers = _workers(count)
    size = -(-count // workers) if count else 1
    bounds = [(i, min(i + size, count)) for i in range(0, count, size)]
    _OUTLINE = outline
    try:
        if len(bounds) <= 1:
            return _slice(0, count)
        instances: list[Instance] = []
        documents: list[Document] = []
        problems: list[Problem] = []
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(bounds), mp_context=context) as pool:
            # map keeps slice order, so the result is the same as a serial run's.
            starts, stops = zip(*bounds, strict=True)
            for part in pool.map(_slice, starts, stops):
                instances += part[0]
                documents += part[1]
                problems += part[2]
        log.debug("built documents in %d processes", len(bounds))
        return instances, documents, problems
    finally:
        _OUTLINE = None


def build(config_path: Path) -> Build:
    """Everything checked before anything is written; raises ConfigError with every problem."""
    outline = load_outline(config_path)
    instances, documents, more = _all_slices(outline)
    config = Config(config_path, tuple(instances), outline.templates_dir)
    problems = [*outline.problems, *more]
    problems += _collisions(documents, {i.id: i.where for i in instances})
    if problems:
        raise ConfigError(str(config_path), problems)
    log.debug("built %d documents for %d instances", len(documents), len(config.instances))
    return Build(config, tuple(documents))
