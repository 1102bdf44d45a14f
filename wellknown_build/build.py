"""The render pipeline up to the tree: config → public keys → documents, problems collected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from . import progress, relying_parties, tree
from .cache import Cache, Stat, stat_of
from .cache import read as read_cache
from .config import load
from .documents import KIND_DISCOVERY, Document, instance_documents
from .errors import AlgError, ConfigError, KeyLoadError, Problem, TemplateError, WellknownError
from .files import KEY_LIMIT, read_regular
from .keys import (
    JWK,
    LoadedKey,
    jwks_source,
    kms,
    load_key_file,
    passphrase_from_env,
    public_jwk,
    spki_sha256,
)
from .keys.jwks_source import Imported
from .keys.x509 import with_certificates
from .lifecycle import select
from .manifest import Entry
from .manifest import read as read_manifest
from .model import Config, Instance, KeySpec
from .templating import Renderer, builtin_templates

log = logging.getLogger(__name__)
T = TypeVar("T")
LOADED_KEYS = 1024  # key files kept loaded at once
# Part of every fingerprint: an upgrade rebuilds everything once.
CACHE_VERSION = f"1/{importlib.metadata.version('wellknown-build')}"


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
    the cache while its stat data is unchanged. KMS keys are fetched once per run."""

    def __init__(self, cache: Cache | None = None) -> None:
        self._cache: dict[tuple[str, str, str | None], object] = {}
        self._previous = cache.keys if cache else {}
        self.digests: dict[str, tuple[Stat, str]] = {}
        self.kms: dict[str, kms.KmsKey | KeyLoadError] = {}

    def fetch_kms(self, instances: Iterable[Instance]) -> None:
        """Every KMS key the instances name, each once, concurrently. On every run: what an
        alias points at can change while the configuration stays the same, so the render
        cache's fingerprint covers the fetched key, not the key id."""
        self.kms.update(
            kms.fetch_all(s.path for i in instances for s in i.keys if s.source == "kms")
        )

    def digest(self, spec: KeySpec) -> str | None:
        """SHA-256 of the key file's bytes (of what KMS said, for a KMS key), or None if it
        cannot be read (the build then loads it and reports why)."""
        if spec.source == "kms":
            fetched = self.kms.get(spec.path)
            return fetched.digest if isinstance(fetched, kms.KmsKey) else None
        path = spec.path
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

    def _remembered(self, cache_key: tuple[str, str, str | None], make: Callable[[], T]) -> T:
        """Recently used files stay loaded (a fleet shares a few keys); memory stays bounded
        when every instance has its own."""
        result = self._cache.pop(cache_key, None)
        if result is None:
            try:
                result = make()
            except KeyLoadError as e:
                result = e
        self._cache[cache_key] = result  # most recently used last
        if len(self._cache) > LOADED_KEYS:
            del self._cache[next(iter(self._cache))]
        if isinstance(result, KeyLoadError):
            raise result
        return cast(T, result)

    def load(self, spec: KeySpec) -> LoadedKey:
        return self._remembered(
            ("path", spec.path, spec.passphrase_env),
            lambda: load_key_file(Path(spec.path), lambda: _passphrase(spec)),
        )

    def jwks(self, spec: KeySpec) -> list[Imported | KeyLoadError]:
        return self._remembered(
            ("jwks", spec.path, None), lambda: jwks_source.load(Path(spec.path))
        )

    def kms_key(self, spec: KeySpec) -> kms.KmsKey:
        if spec.path not in self.kms:  # not among the keys fetched up front
            self.kms.update(kms.fetch_all([spec.path]))
        fetched = self.kms[spec.path]
        if isinstance(fetched, KeyLoadError):
            raise fetched
        return fetched


def _passphrase(spec: KeySpec) -> bytes | None:
    if spec.passphrase_env is None:
        return None
    try:
        return passphrase_from_env(spec.passphrase_env)
    except KeyLoadError as e:
        raise KeyLoadError(f"the private key is encrypted, and {e}") from None


class _NoSuchKid(KeyLoadError):
    """A jwks entry's kid that names no key of its file; located at the entry's kid."""


def _jwk(
    spec: KeySpec,
    key: PublicKeyTypes,
    certificates: tuple[x509.Certificate, ...],
    alg: str | None,
    kid: str | None,
    kubernetes: bool,
) -> JWK:
    jwk = public_jwk(key, alg=alg, kid=kid, kid_method=spec.kid_method)
    if spec.x5c:
        jwk = with_certificates(jwk, certificates)
    if kubernetes:
        jwk = dataclasses.replace(jwk, spki_kid=spki_sha256(key))
    return jwk


def _imported_jwk(spec: KeySpec, item: Imported, kubernetes: bool) -> JWK:
    """A key of a JWKS file: its own kid and alg win; the entry's alg (or defaults.key's)
    only fills in a missing one."""
    if spec.x5c and item.certificates and not jwks_source.same_key(item):
        raise KeyLoadError("the first certificate of its x5c holds another key")
    try:
        return _jwk(
            spec, item.public_key, item.certificates, item.alg or spec.alg, item.kid, kubernetes
        )
    except AlgError as e:
        if item.alg is None:
            raise
        raise KeyLoadError(f"its alg: {e}") from None


def key_jwks(
    spec: KeySpec, files: KeyFiles, kubernetes: bool
) -> list[tuple[str, JWK | KeyLoadError]]:
    """The JWKs a key entry names, each with its place in its source (" keys[2]" for a
    JWKS file's key, else ""). Raises KeyLoadError when the source cannot be read at all."""
    if spec.source == "kms":
        fetched = files.kms_key(spec)
        jwk = _jwk(spec, kms.public_key(fetched), (), spec.alg, spec.kid, kubernetes)
        kms.check_alg(fetched, jwk.alg)
        return [("", jwk)]
    if spec.source == "jwks":
        found = files.jwks(spec)
        if spec.kid is not None:
            # One key chosen by its kid; the others need not be publishable (an encryption
            # key beside it, say), but a leaked private key anywhere refuses the file.
            leaked: list[Imported | KeyLoadError] = [
                e for e in found if isinstance(e, jwks_source.PrivateMemberError)
            ]
            found = leaked or [i for i in found if isinstance(i, Imported) and i.kid == spec.kid]
            if not found:
                raise _NoSuchKid(f"the JWKS file has no key with kid {spec.kid!r}")
        made: list[tuple[str, JWK | KeyLoadError]] = []
        for item in found:
            if isinstance(item, KeyLoadError):
                made.append(("", item))  # its message names keys[i]
                continue
            try:
                made.append((f" keys[{item.index}]", _imported_jwk(spec, item, kubernetes)))
            except KeyLoadError as e:
                made.append((f" keys[{item.index}]", e))
        return made
    loaded = files.load(spec)
    return [
        ("", _jwk(spec, loaded.public_key, loaded.certificates, spec.alg, spec.kid, kubernetes))
    ]


def instance_jwks(
    instance: Instance, files: KeyFiles, problems: list[Problem]
) -> list[tuple[KeySpec, JWK]]:
    """Every key of the instance as a JWK, whatever its rotation state."""
    keyed: list[tuple[KeySpec, JWK]] = []
    by_thumbprint: dict[str, str] = {}
    by_kid: dict[str, str] = {}
    kubernetes = "kubernetes" in instance.relying_parties
    for spec in instance.keys:
        field = spec.where if spec.source == "path" else f"{spec.where}.{spec.source}"
        try:
            made = key_jwks(spec, files, kubernetes)
        except KeyLoadError as e:
            made = [("", e)]
        for part, jwk in made:
            source = f"{spec.file}{part}"
            name = spec.where.rsplit(".", 1)[-1] + (f" ({source})" if part else "")
            if isinstance(jwk, KeyLoadError):
                where = (
                    f"{spec.where}.alg"
                    if isinstance(jwk, AlgError)
                    else f"{spec.where}.kid"
                    if isinstance(jwk, _NoSuchKid)
                    else field
                )
                problems.append(Problem(where, f"{jwk} ({source})", instance.id))
                continue
            if jwk.thumbprint in by_thumbprint:
                problems.append(
                    Problem(
                        field,
                        f"the same key as {by_thumbprint[jwk.thumbprint]} is listed twice "
                        f"({source})",
                        instance.id,
                    )
                )
                continue
            if jwk.kid in by_kid:
                problems.append(
                    Problem(
                        f"{spec.where}.kid" if spec.kid else field,
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
    kids: list[tuple[str, ...]],
) -> list[Document]:
    before = len(problems)
    keyed = instance_jwks(instance, files, problems)
    if len(problems) > before:
        return []
    kids += [tuple(jwk.kid for s, jwk in keyed if s is spec) for spec in instance.keys]
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


def build(config_path: Path, now: dt.datetime | None = None, out: Path | None = None) -> Build:
    """Everything checked before anything is written; raises ConfigError with every problem.

    `now` fixes the clock the rotation rules read (default: the current time). With `out`,
    instances the last render of it found the same are not rebuilt (see cache.py)."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    loaded = load(config_path)
    problems = list(loaded.problems)
    previous = _Previous.of(out)
    files = KeyFiles(previous.cache)
    files.fetch_kms(instance for instance, _ in loaded.readable)
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
        digests = [files.digest(spec) for spec in instance.keys]
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
                [(s, _Kid(k)) for s, ks in zip(instance.keys, kids, strict=True) for k in ks],
                moment,
            )
            notices += outcome.notices
            warnings += outcome.warnings
            key_problems += outcome.errors
            outputs += kept
            cache.instances[instance.id] = (fingerprint, kids)
            cache.files.update((e.path, previous.cache.files[e.path]) for e in kept)
            continue
        found: list[tuple[str, ...]] = []
        made = _documents(instance, files, renderer, moment, key_problems, notices, warnings, found)
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
