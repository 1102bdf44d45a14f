"""The render pipeline up to the tree: config → public keys → documents, problems collected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import relying_parties
from .config import Config, Instance, KeySpec, Outline, load_outline
from .documents import Document, instance_documents
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
from .render import Renderer

log = logging.getLogger(__name__)
PARALLEL_FROM = 2000  # instances; below this a fork costs more than it saves
SLICES_PER_WORKER = 4


@dataclass(frozen=True)
class Build:
    config: Config
    documents: tuple[Document, ...]
    warnings: tuple[Problem, ...] = ()
    notices: tuple[Problem, ...] = ()


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


# The configuration being built and the render instant, shared with forked workers by
# inheritance rather than by pickling 10,000 instances into them.
_JOB: tuple[Outline, dt.datetime] | None = None


@dataclass
class Part:
    """What a slice of the instances yields."""

    instances: list[Instance]
    documents: list[Document]
    problems: list[Problem]
    notices: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def extend(self, other: Part) -> None:
        self.instances += other.instances
        self.documents += other.documents
        self.problems += other.problems
        self.notices += other.notices
        self.warnings += other.warnings


def _slice(start: int, stop: int) -> Part:
    """Validate, load keys and make documents for instances [start, stop): independent of
    every other instance, so slices can run in separate processes."""
    assert _JOB is not None
    outline, now = _JOB
    instances, problems = outline.instances(start, stop)
    part = Part(instances, [], problems)
    renderer = Renderer(outline.templates_dir)
    files = KeyFiles()
    for instance in instances:
        before = len(problems)
        keyed = instance_jwks(instance, files, problems)
        if len(problems) > before:
            continue
        outcome = select(instance, keyed, now)
        part.notices += outcome.notices
        part.warnings += outcome.warnings
        problems += outcome.errors + relying_parties.check(instance, outcome.published)
        if len(problems) > before:
            continue
        try:
            part.documents += instance_documents(instance, outcome.published, renderer)
        except TemplateError as e:
            problems.append(Problem(f"{instance.where}.template", str(e), instance.id))
    return part


def _workers(instances: int) -> int:
    """Processes to share the per-instance work: worth a fork only for large configs."""
    wanted = os.environ.get("WELLKNOWN_WORKERS")
    if wanted:
        return max(1, int(wanted))
    if instances < PARALLEL_FROM or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(len(os.sched_getaffinity(0)), 4)


def _all_slices(outline: Outline, now: dt.datetime) -> Part:
    global _JOB
    count = len(outline.raw_instances)
    workers = _workers(count)
    # More slices than workers: results stream back (and are unpickled) while others are
    # still being built, and a slow slice holds up less.
    slices = 1 if workers == 1 else workers * SLICES_PER_WORKER
    size = -(-count // slices) if count else 1
    bounds = [(i, min(i + size, count)) for i in range(0, count, size)]
    _JOB = (outline, now)
    try:
        if len(bounds) <= 1:
            return _slice(0, count)
        whole = Part([], [], [])
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            # map keeps slice order, so the result is the same as a serial run's.
            starts, stops = zip(*bounds, strict=True)
            for part in pool.map(_slice, starts, stops):
                whole.extend(part)
        log.debug("built documents in %d slices on %d processes", len(bounds), workers)
        return whole
    finally:
        _JOB = None


def build(config_path: Path, now: dt.datetime | None = None) -> Build:
    """Everything checked before anything is written; raises ConfigError with every problem.

    `now` fixes the clock the rotation rules read (default: the current time)."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    outline = load_outline(config_path)
    part = _all_slices(outline, moment)
    config = Config(config_path, tuple(part.instances), outline.templates_dir)
    problems = [*outline.problems, *part.problems]
    problems += _collisions(part.documents, {i.id: i.where for i in part.instances})
    if problems:
        raise ConfigError(str(config_path), problems)
    for notice in part.notices:
        log.info("%s: %s", config_path, notice)
    for warning in part.warnings:
        log.warning("%s: %s", config_path, warning)
    log.debug("built %d documents for %d instances", len(part.documents), len(part.instances))
    return Build(config, tuple(part.documents), tuple(part.warnings), tuple(part.notices))
