"""The render pipeline up to the tree: config → public keys → documents, problems collected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from . import jsondoc, manifest, progress, relying_parties, tree
from .cache import VERSION as CACHE_VERSION
from .cache import Index, KeptInstance, Stat, seq_ranges, stat_of
from .config import Batch, Reader
from .documents import KIND_DISCOVERY, Document, instance_documents
from .errors import AlgError, ConfigError, KeyLoadError, Problem, TemplateError
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
from .lifecycle import Live, select
from .manifest import Entry
from .model import Config, Instance, KeySpec
from .templating import Renderer, builtin_templates

log = logging.getLogger(__name__)
T = TypeVar("T")
LOADED_KEYS = 1024  # key files kept loaded (and digests remembered) at once
CHUNK = 500  # instances looked up in the last render's cache, and recorded, at once
# Instances rebuilt in place that a run may have and still adopt the last cache (Index.adopt):
# past that, copying the rows costs less than looking for stale files seq range by range.
IN_PLACE = 1000
_NOT_SETTINGS = ("instances", "include")  # top-level fields an included file does not read


@dataclass(frozen=True)
class Build:
    config: Config
    # In instance order: new documents, and the manifest entries of instances a re-render
    # found unchanged (fingerprint and files as the cache saw them) and did not rebuild.
    outputs: tuple[Document | Entry, ...]
    warnings: tuple[Problem, ...] = ()

    @property
    def documents(self) -> tuple[Document, ...]:
        return tuple(o for o in self.outputs if isinstance(o, Document))


@dataclass(frozen=True)
class _Kid:
    """What the rotation rules need of a key an unchanged instance did not load."""

    kid: str


class KeyFiles:
    """Each key file is read once however many instances list it (recently used ones stay
    loaded: a fleet shares a few keys; memory stays bounded when every instance has its own).
    Its SHA-256 comes from the last render's cache while its stat data is unchanged. KMS
    keys are fetched once per run."""

    def __init__(self, previous: Index | None, index: Index) -> None:
        self._loaded: dict[tuple[str, str, str | None], object] = {}
        self._digests: dict[str, str | None] = {}
        self._jwks: dict[tuple[str, str | None, str | None, str], tuple[LoadedKey, JWK]] = {}
        self._previous = previous
        self._index = index
        self.hashed = 0  # files read to hash them: 0 when no key file changed
        self.kms: dict[str, kms.KmsKey | KeyLoadError] = {}

    def fetch_kms(self, instances: Iterable[Instance]) -> None:
        """Every KMS key the instances name and this run has not fetched, each once,
        concurrently. On every run: what an alias points at can change while the
        configuration stays the same, so the fingerprint covers the fetched key, not its id."""
        wanted = {s.path for i in instances for s in i.keys if s.source == "kms"}
        self.kms.update(kms.fetch_all(sorted(wanted - self.kms.keys())))

    def digest(self, spec: KeySpec) -> str | None:
        """SHA-256 of the key file's bytes (of what KMS said, for a KMS key), or None if it
        cannot be read (the build then loads it and reports why)."""
        if spec.source == "kms":
            fetched = self.kms.get(spec.path)
            return fetched.digest if isinstance(fetched, kms.KmsKey) else None
        return self.file_digest(spec.path)

    def file_digest(self, path: str) -> str | None:
        if path in self._digests:
            self._digests[path] = self._digests.pop(path)  # most recently used last
            return self._digests[path]
        stat = stat_of(path)
        found: str | None = None
        if stat is not None:
            known = self._previous.key(path) if self._previous else None
            if known is not None and known[0] == stat:
                found = known[1]
            else:
                try:
                    found = hashlib.sha256(read_regular(path, KEY_LIMIT)).hexdigest()
                    self.hashed += 1
                except OSError:
                    found = None
            if found is not None:
                self._index.add_key(path, stat, found)
        _remember(self._digests, path, found)
        return found

    def _remembered(self, cache_key: tuple[str, str, str | None], make: Callable[[], T]) -> T:
        result = self._loaded.pop(cache_key, None)
        if result is None:
            try:
                result = make()
            except KeyLoadError as e:
                result = e
        _remember(self._loaded, cache_key, result)
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

    def jwk(self, spec: KeySpec, loaded: LoadedKey) -> JWK:
        """A key file's public JWK, converted once per file and alg (a fleet shares keys); a
        kid given in the configuration replaces the computed one, as public_jwk does."""
        memo_key = (spec.path, spec.passphrase_env, spec.alg, spec.kid_method)
        jwk = self._jwks.pop(memo_key, None)
        if jwk is None or jwk[0] is not loaded:
            made = public_jwk(loaded.public_key, alg=spec.alg, kid_method=spec.kid_method)
            jwk = (loaded, made)
        _remember(self._jwks, memo_key, jwk)
        return jwk[1] if spec.kid is None else jwk[1].with_kid(spec.kid)


def _remember(memo: dict[Any, Any], key: object, value: object) -> None:
    memo[key] = value  # most recently used last
    if len(memo) > LOADED_KEYS:
        del memo[next(iter(memo))]


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
    return _finish(spec, jwk, key, certificates, kubernetes)


def _finish(
    spec: KeySpec,
    jwk: JWK,
    key: PublicKeyTypes,
    certificates: tuple[x509.Certificate, ...],
    kubernetes: bool,
) -> JWK:
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
        (
            "",
            _finish(
                spec, files.jwk(spec, loaded), loaded.public_key, loaded.certificates, kubernetes
            ),
        )
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


def _documents(
    instance: Instance,
    files: KeyFiles,
    renderer: Renderer,
    now: dt.datetime,
    problems: list[Problem],
    notices: list[Problem],
    warnings: list[Problem],
    kids: list[tuple[str, ...]],
    published: Mapping[str, Live] | None = None,
) -> list[Document]:
    before = len(problems)
    keyed = instance_jwks(instance, files, problems)
    if len(problems) > before:
        return []
    kids += [tuple(jwk.kid for s, jwk in keyed if s is spec) for spec in instance.keys]
    outcome = select(instance, keyed, now, published)
    notices += outcome.notices
    warnings += outcome.warnings
    problems += outcome.errors
    if len(problems) > before:
        return []
    try:
        # the rotation: what publish records in the bucket's state index
        documents = instance_documents(instance, outcome.published, renderer, outcome.rotation)
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
    return hashlib.sha256(orjson.dumps(payload, default=str)).hexdigest()


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


class Sink(Protocol):
    """Where new documents go: compared with (and staged for) the tree, or kept in memory.
    Returns 0 if the tree has the same bytes already, 1 if the file is new, 2 if replaced;
    and the file's stat data when it is unchanged or staged."""

    def document(self, document: Document) -> tuple[int, Stat | None]: ...

    def settle(self) -> dict[str, Stat]:
        """Stat data of documents staged since the last call whose document() did not have
        them yet (written by a helper process), by path."""
        ...


class _Keep:
    def __init__(self) -> None:
        self.outputs: list[Document | Entry] = []

    def document(self, document: Document) -> tuple[int, Stat | None]:
        self.outputs.append(document)
        return 0, None

    def settle(self) -> dict[str, Stat]:
        return {}


@dataclass
class Outcome:
    instances: int  # valid instances
    keys: int  # their key entries
    warnings: tuple[Problem, ...]
    previous: Index | None  # the last render's cache, when it matches its manifest
    dirty: bool  # anything differs from the last render: its cache must be replaced


class Pipeline:
    """Configuration → documents, one configuration file at a time: each instance is built
    (or found unchanged), its documents handed to the sink and recorded in `index`, and
    nothing of it kept but the index rows. Every problem is collected; the caller acts only
    on a run without any."""

    def __init__(
        self,
        config_path: Path,
        now: dt.datetime | None,
        out: Path | None,
        index: Index,
        sink: Sink,
        kept: list[Document | Entry] | None = None,
        published: Mapping[str, Mapping[str, Live]] | None = None,
        *,
        cache: bool = True,  # False: ignore the last render's cache (it did not match)
    ) -> None:
        self.path = config_path
        self.published = published  # per instance, its kids as a bucket's index knows them
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self.out = out
        self.index = index
        self.sink = sink
        self.kept = kept  # build(): unchanged instances' entries, in order
        self.previous = tree.previous_index(out) if out is not None and cache else None
        if self.previous is not None:
            try:
                index.attach(self.previous)
            except sqlite3.Error:  # cannot be copied from: as good as none
                self.previous.close()
                self.previous = None
        self.problems: list[Problem] = []
        self.notices: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dirty = self.previous is None
        self.instances = 0
        self.keys = 0
        self.valid: list[Instance] = []  # build(): the valid instances
        self.templates_dir: Path | None = None
        self._folders: dict[str, None] = {}  # recently recorded folders
        self._seq = 0  # the last instance recorded
        # The chunk's instances as the last render left them, looked up at once.
        self._previous_rows: dict[str, tuple[int, str, str, list[tuple[str, str, Stat | None]]]]
        self._previous_rows = {}
        self._pending: list[_Rows] = []  # the chunk's rows, recorded together (_flush)
        # Included files: what their digest covers besides their text (None: no file is
        # kept or remembered), and the one found unchanged, until its batch comes.
        self._context: str | None = None
        self._kept_file: tuple[str, list[KeptInstance], tuple[str, str, str, int]] | None
        self._kept_file = None
        self._files: KeyFiles | None = None
        # Instances 1.._seq are the last render's, row for row, and not copied yet, but for
        # those rebuilt in place (_rebuilt: at the seq they had, their rows recorded): a run
        # that changes nothing copies nothing (the new cache is then dropped); one that only
        # rebuilds in place becomes a copy of the last cache with those rows replaced
        # (Index.adopt). The first instance that moves copies the rows (_materialize).
        self._mirroring = self.previous is not None and out is not None and kept is None
        self._mirrored = 0
        self._rebuilt: list[int] = []
        self._copied = False  # rows copied from the last render (_copy)
        self._fresh: list[tuple[int, int]] = []  # seq ranges of rows recorded by _flush

    def run(self) -> Outcome:
        reader = Reader(self.path)
        self.templates_dir = reader.templates_dir
        self.problems += reader.problems
        self.warnings += reader.warnings
        files = self._files = KeyFiles(self.previous, self.index)
        templates = _templates_digest(reader.templates_dir)
        renderer = Renderer(reader.templates_dir)
        self._context = self._context_digest(reader, templates)
        skip = self._unchanged_file if self._context and self.previous and self.out else None
        shown: progress.Progress | None = None
        if reader.names:  # a fleet split over files: one step per file
            shown = progress.Progress("configuration files", 1 + len(reader.names))
        for batch in reader.batches(skip):
            if batch.kept and batch.file is not None:
                self._keep_file(batch.file)
                if shown is not None:
                    shown.advance()
                continue
            if shown is None:
                shown = progress.Progress("instances", len(batch.readable))
            self.problems += batch.problems
            self.warnings += batch.warnings
            files.fetch_kms(instance for instance, _ in batch.readable)
            found: list[Problem] = []
            notices: list[Problem] = []
            warnings: list[Problem] = []
            first = self._seq + 1
            for start in range(0, len(batch.readable), CHUNK):
                chunk = batch.readable[start : start + CHUNK]
                if self.previous is not None and self.out is not None:
                    self._previous_rows = self.previous.instances_files(
                        [instance.id for instance, valid in chunk if valid]
                    )
                for instance, valid in chunk:
                    if not reader.names:
                        shown.advance()
                    if not valid:  # it has other problems: report those of its keys too
                        instance_jwks(instance, files, found)
                        continue
                    self.instances += 1
                    self.keys += len(instance.keys)
                    if self.kept is not None:
                        self.valid.append(instance)
                    self._instance(instance, files, templates, renderer, found, notices, warnings)
                self._flush(found)
            row = None if found or notices or warnings else self._remember_file(batch, first)
            if batch.file is not None and self.previous is not None and not self.dirty:
                # a file remembered now or no longer: the cache must be saved to say so
                self.dirty = not _same_source(self.previous.source(batch.file), row)
            self.problems += batch.locate(found)
            self.notices += batch.locate(notices)
            self.warnings += batch.locate(warnings)
            if reader.names:
                shown.advance()
        if shown is not None:
            shown.close()
        if self.previous is not None and not self.dirty:
            self.dirty = self.previous.count("instances") != self._seq or self.previous.count(
                "keys"
            ) != self.index.count("keys")
        self.dirty = self.dirty or files.hashed > 0
        if self._mirroring and self.dirty:  # the cache is replaced: it needs every row
            self._adopt()
        elif self._mirroring and self.previous is not None:
            self.index.mirrored = self.previous.count("files")
        self._check_copies()
        if self.problems:  # in file order; a stable sort keeps each line's problems as found
            order = {name: i for i, name in enumerate(reader.names, 1)}
            self.problems.sort(key=lambda p: (order.get(p.file or "", 0), p.line or 0))
            raise ConfigError(str(self.path), self.problems)
        for notice in self.notices:
            log.info("%s", notice.located(str(self.path)))
        for warning in self.warnings:
            log.warning("%s", warning.located(str(self.path)))
        return Outcome(self.instances, self.keys, tuple(self.warnings), self.previous, self.dirty)

    def _instance(
        self,
        instance: Instance,
        files: KeyFiles,
        templates: str,
        renderer: Renderer,
        problems: list[Problem],
        notices: list[Problem],
        warnings: list[Problem],
    ) -> None:
        digests = [files.digest(spec) for spec in instance.keys]
        fingerprint = (
            _fingerprint(instance, [d for d in digests if d], templates, self.now)
            if all(digests)
            else None
        )
        kept = self._unchanged(instance, fingerprint)
        if kept is not None:
            old_seq, kids, entries = kept
            outcome = select(
                instance,
                [(s, _Kid(k)) for s, ks in zip(instance.keys, kids, strict=True) for k in ks],
                self.now,
                self._published(instance),
            )
            notices += outcome.notices
            warnings += outcome.warnings
            problems += outcome.errors
            if self._mirror(old_seq, old_seq):
                return
            seq = self._record(instance, fingerprint, json.dumps(kids))
            self.dirty = self.dirty or seq != old_seq
            for entry, line, stat in entries:
                self._pending[-1].files.append((entry.path, entry.kind, line, stat, 0))
                if self.kept is not None:
                    self.kept.append(entry)
            return
        self.dirty = True
        found: list[tuple[str, ...]] = []
        made = _documents(
            instance,
            files,
            renderer,
            self.now,
            problems,
            notices,
            warnings,
            found,
            self._published(instance),
        )
        if not made:
            return
        self._record(instance, fingerprint, json.dumps(found if fingerprint else []))
        for document in made:
            staged, seen = self.sink.document(document)
            line = manifest.line(Entry.of(document))
            self._pending[-1].files.append((document.path, document.kind, line, seen, staged))

    def _record(self, instance: Instance, fingerprint: str | None, kids: str) -> int:
        """A new seq for the instance; its rows are recorded by _flush."""
        if self._mirroring:
            found = self._previous_rows.get(instance.id)
            if found is not None and found[0] == self._seq + 1 and len(self._rebuilt) < IN_PLACE:
                self._rebuilt.append(found[0])  # rebuilt in place: still mirroring
            else:
                self._materialize()
        self._seq += 1
        self._pending.append(_Rows(instance, self._seq, fingerprint, kids, []))
        return self._seq

    def _mirror(self, first: int, last: int) -> bool:
        """Whether the last render's instances first..last (found unchanged, in order) come
        next and every one before them was the last render's too: then they need no rows."""
        if not self._mirroring or first != self._seq + 1 or last < first:
            return False
        self._seq = self._mirrored = last
        return True

    def _materialize(self) -> None:
        """Copy the rows of the instances mirrored so far (not those rebuilt in place: their
        rows are this run's): from here on the run differs."""
        self._mirroring = False
        for first, last in seq_ranges(self._seq, self._rebuilt):
            self._copy(first, last, 0)
        self._rebuilt = []

    def _adopt(self) -> None:
        """At the end of a run that kept every instance where the last render had it: the
        last cache with the rows of those rebuilt in place replaced, else every row copied.
        (Checked against the rows built this run like copied ones: _check_copies.)"""
        assert self.previous is not None
        if self.index.adopt(self.previous, self._seq):
            self._mirroring = False
            self._copied = True
            self._rebuilt = []
        else:
            self._materialize()

    def _copy(self, first: int, last: int, offset: int) -> None:
        """The last render's rows of instances first..last, at seq + offset (a kept file's,
        or those mirrored), copied within SQLite. They clashed with none of each other
        then; with the rows built this run they are checked at the end (_check_copies)."""
        self._copied = True
        if not self.index.copy_rows(first, last, offset):
            raise tree.CacheMismatch(
                "the render cache lost instances it had a moment ago, or an instance "
                "writes a file of an unchanged included file, kept from it"
            )

    def _check_copies(self) -> None:
        """Rows built this run next to rows copied from the last render: a file of one where
        the other needs a folder restarts the render without the cache, which then says
        which instance clashes (its line; a copied row has none)."""
        if self._copied and self._fresh and self.index.clashes(self._fresh):
            raise tree.CacheMismatch(
                "an instance needs a folder where one of an unchanged included file, kept from "
                "the render cache, writes a file (or the other way round)"
            )

    # -- included files found unchanged -------------------------------------------------

    def _context_digest(self, reader: Reader, templates: str) -> str | None:
        """What an included file's instances depend on besides its text and key files: this
        version, the templates, where the configuration is, and its settings (defaults...).
        None when no file may be kept: an in-memory build, the --bucket guard (its answer
        changes with the bucket), or a configuration file with problems."""
        if self.kept is not None or self.published is not None or self.problems:
            return None
        settings = {k: v for k, v in (reader.top or {}).items() if k not in _NOT_SETTINGS}
        folder = os.path.abspath(self.path.parent)
        try:
            payload = orjson.dumps(
                [CACHE_VERSION, templates, folder, settings],
                option=orjson.OPT_SORT_KEYS,
                default=str,
            )
        except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, say
            return None
        return hashlib.sha256(payload).hexdigest()

    def _file_digest(self, name: str, text: str) -> str:
        assert self._context is not None
        data = f"{self._context}\0{name}\0{text}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(data).hexdigest()

    def _unchanged_file(self, name: str, text: str) -> list[str] | None:
        """The ids of the included file's instances if the last render built them all
        without a word from this very text, in the same context, their key files have the
        same bytes and their output files are as the cache saw them (stat data); the
        instances are kept then, not parsed (_keep_file)."""
        assert self.previous is not None and self.out is not None and self._files is not None
        self._kept_file = None
        known = self.previous.source(name)
        if known is None or known[0] != self._file_digest(name, text):
            return None
        digest, keys, first, last, ids, key_count = known
        try:
            listed = jsondoc.loads(keys.encode())
        except ValueError:
            return None
        if not isinstance(listed, list) or not all(
            isinstance(k, list) and len(k) == 2 and all(isinstance(v, str) for v in k)
            for k in listed
        ):
            return None
        if any(self._files.file_digest(path) != sha256 for path, sha256 in listed):
            return None
        if not first <= last < first + len(text):  # an instance takes a line of text at least
            return None  # (a damaged range would read the whole cache into memory)
        found = self.previous.kept_between(first, last)
        if len(found) != last - first + 1 or _ids_digest(i for _, i, _ in found) != ids:
            return None
        out = str(self.out)
        for *_, paths in found:
            for path, stat in paths:
                where = manifest.local_path(out, path)
                if stat is None or stat != stat_of(where, follow=False):
                    return None
        self._kept_file = (name, found, (digest, keys, ids, key_count))
        return [ident for _, ident, _ in found]

    def _keep_file(self, name: str) -> None:
        """Record the instances of an included file found unchanged, as the last render
        left them."""
        assert self._kept_file is not None and self._kept_file[0] == name
        _, found, (digest, keys, ids, key_count) = self._kept_file
        self._kept_file = None
        first = self._seq + 1
        self.instances += len(found)
        self.keys += key_count
        old_first, old_last = found[0][0], found[-1][0]
        if not self._mirror(old_first, old_last):
            if self._mirroring:
                self._materialize()
            self._flush([])  # the rows before the file's
            self._copy(old_first, old_last, first - old_first)
            self._seq = first + old_last - old_first
            self.dirty = self.dirty or first != old_first
        self.index.add_source(name, (digest, keys, first, self._seq, ids, key_count))

    def _remember_file(
        self, batch: Batch, first: int
    ) -> tuple[str, str, int, int, str, int] | None:
        """A sources row for an included file whose instances were all built, without a
        problem, warning or notice, from key files alone (not KMS or a JWKS, and no
        not_before or not_after: their documents change with the clock)."""
        if self._context is None or batch.file is None or batch.source is None:
            return None
        if batch.problems or batch.warnings or not batch.readable:
            return None
        if self._seq - first + 1 != len(batch.readable):  # one was not built
            return None
        assert self._files is not None
        keys: dict[str, str] = {}
        key_count = 0
        for instance, valid in batch.readable:
            for spec in instance.keys:
                if not valid or spec.source != "path" or spec.not_before or spec.not_after:
                    return None
                if spec.path not in keys:
                    sha256 = self._files.file_digest(spec.path)
                    if sha256 is None:
                        return None
                    keys[spec.path] = sha256
            key_count += len(instance.keys)
        listed = json.dumps(sorted([path, sha256] for path, sha256 in keys.items()))
        digest = self._file_digest(batch.file, batch.source.text)
        ids = _ids_digest(instance.id for instance, _ in batch.readable)
        row = (digest, listed, first, self._seq, ids, key_count)
        self.index.add_source(batch.file, row)
        return row

    def _flush(self, problems: list[Problem]) -> None:
        """Record the pending instances' rows: all at once when nothing clashes (the usual
        case), else one at a time, in order, to say which instance clashes with which."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        settled = self.sink.settle()
        if settled:
            for rows in pending:
                rows.files[:] = [
                    (p, kind, line, settled.get(p) if stat is None and staged else stat, staged)
                    for p, kind, line, stat, staged in rows.files
                ]
        folders: list[tuple[str, int]] = []
        remembered = dict(self._folders)
        for rows in pending:
            for path, *_ in rows.files:
                for folder in _folders_of(path):
                    if folder not in self._folders:
                        folders.append((folder, rows.seq))
                        _remember(self._folders, folder, None)
        if self._fresh and self._fresh[-1][1] == pending[0].seq - 1:
            self._fresh[-1] = (self._fresh[-1][0], pending[-1].seq)
        else:
            self._fresh.append((pending[0].seq, pending[-1].seq))
        instances = [(r.seq, r.instance.id, r.fingerprint, r.kids) for r in pending]
        files = [(f[0], r.seq, f[2], f[3], f[4]) for r in pending for f in r.files]
        if self.index.add_rows(instances, files, folders):
            return
        self._folders = remembered
        for rows in pending:
            self.index.add_instance(rows.seq, rows.instance.id, rows.fingerprint, rows.kids)
            for path, kind, line, stat, staged in rows.files:
                self._claim(rows.instance, path, kind, rows.seq, line, stat, staged, problems)

    def _published(self, instance: Instance) -> Mapping[str, Live] | None:
        return self.published.get(instance.id) if self.published is not None else None

    def _unchanged(
        self, instance: Instance, fingerprint: str | None
    ) -> tuple[int, list[list[str]], list[tuple[Entry, str, Stat]]] | None:
        """The last render's seq, kids and files of the instance, if nothing it depends on
        changed and its files are as the cache saw them."""
        if self.previous is None or self.out is None or fingerprint is None:
            return None
        found = self._previous_rows.get(instance.id)
        if found is None or found[1] != fingerprint:
            return None
        try:
            kids = jsondoc.loads(found[2].encode())
        except ValueError:
            return None
        if not (
            isinstance(kids, list)
            and len(kids) == len(instance.keys)
            and all(isinstance(ks, list) and all(isinstance(k, str) for k in ks) for ks in kids)
        ):
            return None
        entries: list[tuple[Entry, str, Stat]] = []
        for path, line, stat in found[3]:
            entry = manifest.entry_of_line(line)
            if (
                entry is None
                or entry.path != path
                or entry.instance != instance.id
                or stat is None
                or stat != stat_of(manifest.local_path(str(self.out), path), follow=False)
            ):
                return None
            entries.append((entry, line, stat))
        return (found[0], kids, entries) if entries else None

    def _claim(
        self,
        instance: Instance,
        path: str,
        kind: str,
        seq: int,
        line: str,
        stat: Stat | None,
        staged: int,
        problems: list[Problem],
    ) -> None:
        """Record an output file; two instances writing one file, or one's file standing
        where another needs a folder, is a problem."""
        owner = self.index.add_file(path, seq, line, stat, staged)
        if owner is not None:
            problems.append(_written_twice(instance, kind, path, owner))
            return
        owner = self.index.folder_owner(path)
        if owner is not None:
            problems.append(
                Problem(
                    instance.where,
                    f"{kind} would be written to {path}, but instance {owner} needs it to be "
                    "a folder",
                    instance.id,
                )
            )
        for folder in _folders_of(path):
            if folder in self._folders:
                continue
            owner = self.index.file_owner(folder)
            if owner is not None:
                problems.append(
                    Problem(
                        instance.where,
                        f"{path} needs {folder} to be a folder, but instance {owner} writes "
                        "a file there",
                        instance.id,
                    )
                )
            self.index.add_folder(folder, seq)
            _remember(self._folders, folder, None)


@dataclass
class _Rows:
    """One instance's rows for the index: its files as (path, kind, manifest line, stat
    data, staged)."""

    instance: Instance
    seq: int
    fingerprint: str | None
    kids: str
    files: list[tuple[str, str, str, Stat | None, int]]


def _same_source(
    old: tuple[str, str, int, int, str, int] | None, new: tuple[str, str, int, int, str, int] | None
) -> bool:
    """Whether two sources rows say the same of a file, its seq range aside (a moved instance
    marks the render changed already)."""
    if old is None or new is None:
        return old is new
    return old[:2] + old[4:] == new[:2] + new[4:]


def _ids_digest(ids: Iterable[str]) -> str:
    """Which instances a kept file holds, in order: a sources row whose seq range was
    damaged must not pass for the file's."""
    return hashlib.sha256(orjson.dumps(list(ids))).hexdigest()


def _written_twice(instance: Instance, kind: str, path: str, owner: str) -> Problem:
    return Problem(
        instance.where,
        f"{kind} would be written to {path}, which instance {owner} also writes",
        instance.id,
    )


def _folders_of(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def build(
    config_path: Path,
    now: dt.datetime | None = None,
    out: Path | None = None,
    published: Mapping[str, Mapping[str, Live]] | None = None,
) -> Build:
    """Everything checked, in memory, nothing written; raises ConfigError with every problem.

    `now` fixes the clock the rotation rules read (default: the current time). With `out`,
    instances the last render of it found the same are not rebuilt (see cache.py).
    `published`: per instance id, its kids as a bucket's state index knows them (the
    rotation guard of `--bucket`)."""
    index = Index.new()
    outputs: list[Document | Entry] = []
    keep = _Keep()
    keep.outputs = outputs
    pipeline = Pipeline(config_path, now, out, index, keep, outputs, published)
    try:
        outcome = pipeline.run()
    finally:
        index.close()
        if pipeline.previous is not None:
            pipeline.previous.close()
    config = Config(config_path, tuple(pipeline.valid), pipeline.templates_dir)
    log.debug("built %d outputs for %d instances", len(outputs), outcome.instances)
    return Build(config, tuple(outputs), outcome.warnings)
