"""The render pipeline up to the tree: config → public keys → documents, problems collected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import progress, relying_parties, tree
from .cache import Cache, Stat, stat_of
from .cache import read as read_cache
from .config import load
from .documents import KIND_DISCOVERY, KIND_JWKS, Document, instance_documents
from .errors import AlgError, ConfigError, KeyLoadError, Problem, TemplateError, WellknownError
from .files import KEY_LIMIT, read_regular
from .keys import (
    JWK,
    LoadedKey,
    load_key_file,
    passphrase_from_env,
    public_jwk,
    spki_sha256,
)
from .keys.x509 import with_certificates
from .lifecycle import Live, select
from .manifest import Entry
from .manifest import read as read_manifest
from .model import Config, Instance, KeySpec
from .templating import Renderer, builtin_templates

log = logging.getLogger(__name__)
LOADED_KEYS = 1024  # key files kept loaded at once
# Part of every fingerprint: an upgrade rebuilds everything once.
CACHE_VERSION = f"2/{importlib.metadata.version('wellknown-build')}"


@dataclass(frozen=True)
class Build:
    config: Config
    # In instance order: new documents, and the manifest entries of instances a re-render
    # found unchanged (fingerprint and files as the cache saw them) and did not rebuild.
    outputs: tuple[Document | Entry, ...]
    warnings: tuple[Problem, ...] = ()
    cache: Cache = field(default_factory=Cache)  # for the next render

    @property
    def documents(self) -> tuple[Document, ...]:
        return tuple(o for o in self.outputs if isinstance(o, Document))


@dataclass(frozen=True)
class _Kid:
    """What the rotation rules need of a key an unchanged instance did not load."""

    kid: str


class KeyFiles:
    """Each key file is read once, however many instances list it; its SHA-256 comes from
    the cache while its stat data is unchanged."""

    def __init__(self, cache: Cache | None = None) -> None:
        self._cache: dict[tuple[str, str | None], LoadedKey | KeyLoadError] = {}
        self._previous = cache.keys if cache else {}
        self.digests: dict[str, tuple[Stat, str]] = {}

    def digest(self, path: str) -> str | None:
        """SHA-256 of the file's bytes, or None if it cannot be read (the build then loads
        it and reports why)."""
        if path not in self.digests:
            stat = stat_of(path)
            if stat is None:
                return None
            known = self._previous.get(path)
            if known is not None and known[0] == stat:
                self.digests[path] = known
            else:
                try:
                    data = read_regular(path, KEY_LIMIT)
                except OSError:
                    return None
                self.digests[path] = (stat, hashlib.sha256(data).hexdigest())
        return self.digests[path][1]

    def load(self, spec: KeySpec) -> LoadedKey:
        """Recently used files stay loaded (a fleet shares a few keys); memory stays bounded
        when every instance has its own."""
        cache_key = (spec.path, spec.passphrase_env)
        result = self._cache.pop(cache_key, None)
        if result is None:
            try:
                result = load_key_file(Path(spec.path), lambda: _passphrase(spec))
            except KeyLoadError as e:
                result = e
        self._cache[cache_key] = result  # most recently used last
        if len(self._cache) > LOADED_KEYS:
            del self._cache[next(iter(self._cache))]
        if isinstance(result, KeyLoadError):
            raise result
        return result


def _passphrase(spec: KeySpec) -> bytes | None:
    if spec.passphrase_env is None:
        return None
    try:
        return passphrase_from_env(spec.passphrase_env)
    except KeyLoadError as e:
        raise KeyLoadError(f"the private key is encrypted, and {e}") from None


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


def _collisions(documents: list[Document | Entry], where: dict[str, str]) -> list[Problem]:
    """Two instances writing one file, or one's file standing where another needs a folder."""
    problems = []
    owner: dict[str, Document | Entry] = {}
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
    kids: list[str],
    published: Mapping[str, Live] | None = None,
) -> list[Document]:
    before = len(problems)
    keyed = instance_jwks(instance, files, problems)
    if len(problems) > before:
        return []
    kids += [jwk.kid for _, jwk in keyed]
    outcome = select(instance, keyed, now, published)
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
    documents = [  # what publish records in the bucket's state index
        dataclasses.replace(d, rotation=outcome.rotation) if d.kind == KIND_JWKS else d
        for d in documents
    ]
    discovery: dict[str, object] = {}
    if relying_parties.READ_DOCUMENT.intersection(instance.relying_parties):
        discovery = json.loads(next(d.body for d in documents if d.kind == KIND_DISCOVERY))
    problems += relying_parties.check(instance, outcome.published, discovery)
    return [] if len(problems) > before else documents


_INSTANCE_FIELDS = [
    f.name for f in dataclasses.fields(Instance) if f.name not in ("where", "file", "keys")
]
_KEY_FIELDS = [
    f.name for f in dataclasses.fields(KeySpec) if f.name not in ("where", "file", "path")
]


def _fingerprint(instance: Instance, digests: list[str], templates: str, now: dt.datetime) -> str:
    """Everything an instance's documents depend on; `where` and `file` only locate it.
    (Field by field: dataclasses.asdict deep-copies, and was most of a no-change render.)"""
    keys = [
        [
            [getattr(spec, name) for name in _KEY_FIELDS],
            digest,
            spec.not_after is None or now < spec.not_after,
        ]
        for spec, digest in zip(instance.keys, digests, strict=True)
    ]
    payload = [CACHE_VERSION, templates, [getattr(instance, n) for n in _INSTANCE_FIELDS], keys]
    text = json.dumps(payload, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _templates_digest(user_dir: Path | None) -> str:
    """One hash over every template file: a changed template rebuilds every instance."""
    digest = hashlib.sha256()
    for folder in (user_dir, builtin_templates()):
        if folder is None or not os.path.isdir(folder):  # False for any OSError
            continue
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(root, name)
                digest.update(os.path.relpath(path, folder).encode() + b"\0")
                try:
                    digest.update(read_regular(path, 16 * 1024 * 1024))
                except OSError:
                    digest.update(b"unreadable")
    return digest.hexdigest()


@dataclass
class _Previous:
    """What the last render of the output folder left: the manifest's entries per instance,
    and the cache; empty without a folder, after an interrupted render, or when damaged."""

    out: Path | None = None
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    cache: Cache = field(default_factory=Cache)

    @classmethod
    def of(cls, out: Path | None) -> _Previous:
        if out is None or tree.interrupted(out):
            return cls()
        try:
            found = read_manifest(out)
        except WellknownError:
            return cls()
        if found is None:
            return cls()
        entries: dict[str, list[Entry]] = {}
        for entry in found.entries:
            entries.setdefault(entry.instance, []).append(entry)
        return cls(out, entries, read_cache(out))

    def unchanged(self, instance: Instance, fingerprint: str | None) -> list[Entry] | None:
        """The instance's entries if nothing it depends on changed and its files are as the
        cache saw them."""
        if self.out is None or fingerprint is None:
            return None
        cached = self.cache.instances.get(instance.id)
        entries = self.entries.get(instance.id)
        if cached is None or cached[0] != fingerprint or not entries:
            return None
        if len(cached[1]) != len(instance.keys):
            return None
        for entry in entries:
            seen = self.cache.files.get(entry.path)
            if seen is None or seen != stat_of(
                os.path.join(self.out, *entry.path.split("/")), follow=False
            ):
                return None
        return entries


def build(
    config_path: Path,
    now: dt.datetime | None = None,
    out: Path | None = None,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> Build:
    """Everything checked before anything is written; raises ConfigError with every problem.

    `now` fixes the clock the rotation rules read (default: the current time). With `out`,
    instances the last render of it found the same are not rebuilt (see cache.py).
    `published`: per instance id, its kids as a bucket's state index knows them (the
    rotation guard of `--bucket`)."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    loaded = load(config_path)
    problems = list(loaded.problems)
    previous = _Previous.of(out)
    files = KeyFiles(previous.cache)
    templates = _templates_digest(loaded.config.templates_dir)
    key_problems: list[Problem] = []
    renderer = Renderer(loaded.config.templates_dir)
    outputs: list[Document | Entry] = []
    notices: list[Problem] = []
    warnings: list[Problem] = []
    cache = Cache()
    shown = progress.Progress("instances", len(loaded.readable))
    for instance, valid in loaded.readable:
        shown.advance()
        if not valid:  # it has other problems: report those of its keys in the same run
            instance_jwks(instance, files, key_problems)
            continue
        digests = [files.digest(spec.path) for spec in instance.keys]
        fingerprint = (
            _fingerprint(instance, [d for d in digests if d], templates, moment)
            if all(digests)
            else None
        )
        kept = previous.unchanged(instance, fingerprint)
        if kept is not None and fingerprint is not None:
            kids = previous.cache.instances[instance.id][1]
            outcome = select(
                instance,
                [(s, _Kid(k)) for s, k in zip(instance.keys, kids, strict=True)],
                moment,
                published.get(instance.id) if published is not None else None,
            )
            notices += outcome.notices
            warnings += outcome.warnings
            key_problems += outcome.errors
            outputs += kept
            cache.instances[instance.id] = (fingerprint, kids)
            cache.files.update((e.path, previous.cache.files[e.path]) for e in kept)
            continue
        found: list[str] = []
        made = _documents(
            instance,
            files,
            renderer,
            moment,
            key_problems,
            notices,
            warnings,
            found,
            published.get(instance.id) if published is not None else None,
        )
        outputs += made
        if made and fingerprint is not None:
            cache.instances[instance.id] = (fingerprint, tuple(found))
    shown.close()
    cache.keys = dict(files.digests)
    instances = loaded.config.instances
    key_problems += _collisions(outputs, {i.id: i.where for i in instances})
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
    log.debug("built %d outputs for %d instances", len(outputs), len(instances))
    return Build(loaded.config, tuple(outputs), located, cache)
