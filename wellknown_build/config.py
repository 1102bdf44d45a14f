"""instances.yaml → frozen, validated configuration; every problem collected with its path.

Defaults are checked once, where they are written: a bad default is one problem, not one per
instance. An instance with problems is still returned among `readable` when its keys can be
read, so that render reports its key problems in the same run.
"""

from __future__ import annotations

import difflib
import functools
import glob
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cachecontrol, jsondoc, relying_parties, schema, timing, urls
from .errors import ConfigError, Problem, shown
from .model import (
    CLIENT_CACHE,
    DEFAULT_CACHE_CONTROL,
    DEFAULT_TEMPLATE,
    DEFAULT_TOKEN_LIFETIME,
    Config,
    Instance,
    KeySpec,
)
from .yamlload import Source, load_yaml, read_text

_TEMPLATE_NAME = re.compile(schema.TEMPLATE_PATTERN)
_HEADER_VALUE = re.compile(schema.HEADER_PATTERN)
_KMS_KEY = re.compile(schema.KMS_KEY_PATTERN)
_DURATIONS = ("token_lifetime", "cache_ttl")


@dataclass(frozen=True)
class Loaded:
    """What a configuration yields: valid instances in `config`, every problem, and every
    instance whose keys can be read in file order, with whether it is valid (the keys of
    one that is not are still checked, so that one run reports everything)."""

    config: Config
    problems: tuple[Problem, ...]
    readable: tuple[tuple[Instance, bool], ...]
    source: Source
    included: Mapping[str, Source] = field(default_factory=dict)  # by display name
    files: Mapping[str, str] = field(default_factory=dict)  # instance id -> included file
    warnings: tuple[Problem, ...] = ()

    def locate(self, problems: list[Problem]) -> list[Problem]:
        """Each problem with its file (an instance's included file) and line."""
        located = []
        for problem in problems:
            owner = self.files.get(problem.instance or "")
            if problem.file is None and owner is not None:
                problem = problem.in_file(owner)
            source = self.included.get(problem.file) if problem.file else self.source
            if source is not None and problem.path and not problem.line:
                problem = problem.at_line(source.line(problem.path))
            located.append(problem)
        return located


# (display name, text) -> the ids of its instances if they need not be read again
Unchanged = Callable[[str, str], "list[str] | None"]


@dataclass(frozen=True)
class _Defaults:
    values: Mapping[str, Any]
    key: Mapping[str, Any]
    durations: Mapping[str, int]


@dataclass
class Batch:
    """The instances of one file (the configuration file, or one included file), with its
    problems, located while its text is at hand."""

    file: str | None  # display name of an included file; None for the configuration file
    source: Source | None  # None: the file could not be read (its problems say why)
    readable: list[tuple[Instance, bool]]
    problems: list[Problem]
    warnings: list[Problem]
    # The file is as the last render read it, and its instances are left as they were:
    # not parsed (Reader.batches' `unchanged`), `readable` is empty.
    kept: bool = False

    def locate(self, problems: list[Problem]) -> list[Problem]:
        """Each problem of this file's instances with the file and its line."""
        located = []
        for problem in problems:
            if problem.file is None and self.file is not None:
                problem = problem.in_file(self.file)
            if (
                self.source is not None
                and problem.path
                and not problem.line
                and problem.file == self.file
            ):
                problem = problem.at_line(self.source.line(problem.path))
            located.append(problem)
        return located


class Reader:
    """The configuration one file at a time: the configuration file first, then each included
    file in order. Only ids (to find duplicates across files) outlive a file's batch, so a
    fleet split over included files is read in bounded memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = load_yaml(path)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.top = schema.check_mapping(self.source.data, schema.TOP_FIELDS, "", self.problems)
        top = self.top or {}
        self._defaults = _defaults(top, self.problems)
        self.templates_dir: Path | None = None
        if "templates_dir" in top:
            self.templates_dir = path.parent / top["templates_dir"]
            if not os.path.isdir(self.templates_dir):  # False for any OSError (too long)
                self.problems.append(
                    Problem("templates_dir", f"folder not found: {top['templates_dir']}")
                )
        if "instances" not in top and "include" not in top:
            self.problems.append(Problem("instances", "is required (or include)"))
        self.names: list[str] = []  # included files, by display name, in reading order
        for index, pattern in enumerate(top.get("include", [])):
            self.names += _matches(path, pattern, f"include[{index}]", self.names, self.warnings)
        self.problems = self.locate_main(self.problems)
        self.warnings = self.locate_main(self.warnings)
        # id -> file number << 32 | item number: all that outlives a file's batch
        self._seen: dict[str, int] = {}

    def locate_main(self, problems: list[Problem]) -> list[Problem]:
        return Batch(None, self.source, [], [], []).locate(problems)

    def batches(self, unchanged: Unchanged | None = None) -> Iterator[Batch]:
        """Each file's instances. `unchanged(name, text)`: the ids of an included file's
        instances, in order, if the last render found nothing wrong in this very text and
        nothing it depends on changed since; such a file is not parsed (a kept Batch)."""
        top = self.top or {}
        items = top.get("instances", [])
        yield self._batch(None, self.source, items, "instances[{}]", self.path.parent, 0)
        for number, name in enumerate(self.names, 1):
            try:
                text = read_text(self.path.parent / name)
                ids = unchanged(name, text) if unchanged is not None else None
                if ids is not None and not any(i in self._seen for i in ids):
                    self._seen.update((i, number << 32 | item) for item, i in enumerate(ids))
                    yield Batch(name, None, [], [], [], kept=True)
                    continue
                source = load_yaml(self.path.parent / name, text)
            except ConfigError as e:
                yield Batch(name, None, [], [p.in_file(name) for p in e.problems], [])
                continue
            data = source.data
            items = data if isinstance(data, list) else [data]
            folder = (self.path.parent / name).parent
            batch = self._batch(name, source, items, "[{}]", folder, number)
            if data is None or not items:
                batch.warnings.append(Problem("", "holds no instance", file=name))
            yield batch

    def _batch(
        self,
        name: str | None,
        source: Source,
        items: list[object],
        form: str,
        base: Path,
        number: int,
    ) -> Batch:
        problems: list[Problem] = []
        readable: list[tuple[Instance, bool]] = []
        for index, raw in enumerate(items):
            where = form.format(index)
            duplicate = self._duplicate(raw, where, name, number, index, problems)
            before = len(problems)
            instance = _instance(raw, where, self._defaults, base, problems, name)
            if instance is not None:
                readable.append((instance, len(problems) == before and not duplicate))
        batch = Batch(name, source, readable, [], [])
        batch.problems = batch.locate(problems)
        return batch

    def _duplicate(
        self,
        raw: object,
        where: str,
        name: str | None,
        number: int,
        index: int,
        problems: list[Problem],
    ) -> bool:
        ident = raw.get("id") if isinstance(raw, Mapping) else None
        if not isinstance(ident, str):
            return False
        first = self._seen.setdefault(ident, number << 32 | index)
        if first == number << 32 | index:
            return False
        file_number, item = first >> 32, first & 0xFFFFFFFF
        if file_number == 0:
            also = f"instances[{item}]"
        else:
            also = f"{self.names[file_number - 1]}: [{item}]"
        problems.append(
            Problem(f"{where}.id", f"duplicate instance id (also {also})", ident, file=name)
        )
        return True


def load(path: Path) -> Loaded:
    """Read and validate all at once; never raises for a problem of the content, only
    collects it. (Render reads file by file, through Reader.)"""
    reader = Reader(path)
    problems = list(reader.problems)
    warnings = list(reader.warnings)
    readable: list[tuple[Instance, bool]] = []
    included: dict[str, Source] = {}
    files: dict[str, str] = {}
    for batch in reader.batches():
        problems += batch.problems
        warnings += batch.warnings
        readable += batch.readable
        if batch.file is not None and batch.source is not None:
            included[batch.file] = batch.source
            files.update((i.id, batch.file) for i, _ in batch.readable)
    config = Config(path, tuple(i for i, ok in readable if ok), reader.templates_dir)
    return Loaded(
        config, tuple(problems), tuple(readable), reader.source, included, files, tuple(warnings)
    )


def _matches(
    main: Path, pattern: str, at: str, earlier: list[str], warnings: list[Problem]
) -> list[str]:
    """The files a glob names, relative to the main file's folder, sorted; folders and the
    configuration file itself are skipped (a FIFO still gets its error when read)."""
    base = main.parent
    matches = sorted(glob.glob(pattern, root_dir=base, recursive=True))
    itself = main.resolve()
    names = [m for m in matches if not os.path.isdir(base / m) and (base / m).resolve() != itself]
    if not names:
        warnings.append(Problem(at, f"{pattern!r} matches no file"))
    seen = set(earlier)  # a file per tenant: 100,000 names, so not a list scan each
    found: list[str] = []
    for name in names:
        display = name.replace(os.sep, "/")
        if display not in seen:  # named by an earlier glob too
            seen.add(display)
            found.append(display)
    return found


def _defaults(top: Mapping[str, Any], problems: list[Problem]) -> _Defaults:
    values = (
        schema.check_mapping(top.get("defaults", {}), schema.DEFAULTS_FIELDS, "defaults", problems)
        or {}
    )
    key = (
        schema.check_mapping(
            values.get("key", {}), schema.KEY_DEFAULT_FIELDS, "defaults.key", problems
        )
        or {}
    )
    _check_common(values, "defaults", None, problems)
    durations = {
        name: seconds
        for name in _DURATIONS
        if name in values
        and (seconds := _duration(values[name], f"defaults.{name}", None, problems)) is not None
    }
    # Checked here once; instances take only the good values.
    good = {k: v for k, v in values.items() if k not in _DURATIONS}
    return _Defaults(good, key, durations)


def _check_common(
    values: dict[str, Any], where: str, label: str | None, problems: list[Problem]
) -> None:
    """Checks of the fields that instances and defaults share; bad values are removed."""
    template = values.get("template")
    if template is not None and not _TEMPLATE_NAME.fullmatch(template):
        problems.append(Problem(f"{where}.template", f"{template!r} is not a template name", label))
        del values["template"]
    cache = values.get("cache_control")
    if cache is not None and not _HEADER_VALUE.fullmatch(cache):
        problems.append(
            Problem(f"{where}.cache_control", "must be printable ASCII on one line", label)
        )
        del values["cache_control"]
    discovery = values.get("discovery")
    if discovery is not None:
        before = len(problems)
        for name in discovery:
            if isinstance(name, str) and name in schema.RESERVED_DISCOVERY:
                problems.append(
                    Problem(
                        f"{where}.discovery.{name}",
                        f"set {name} on the instance, not among discovery members",
                        label,
                    )
                )
        for at, reason in jsondoc.problems(discovery, f"{where}.discovery"):
            problems.append(Problem(at, reason, label))
        if len(problems) > before:
            del values["discovery"]
    parties = values.get("relying_parties")
    if parties is not None:
        for party in parties:
            if party not in schema.KNOWN_PARTIES:
                close = difflib.get_close_matches(shown(party), schema.KNOWN_PARTIES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(schema.KNOWN_PARTIES)
                problems.append(
                    Problem(
                        f"{where}.relying_parties",
                        f"unknown relying party {shown(party)}{hint} (known: {known})",
                        label,
                    )
                )
                del values["relying_parties"]
                break


def _instance(
    raw: object,
    where: str,
    defaults: _Defaults,
    base: Path,
    problems: list[Problem],
    file: str | None = None,
) -> Instance | None:
    label = raw.get("id") if isinstance(raw, Mapping) else None
    label = label if isinstance(label, str) else None
    values = schema.check_mapping(raw, schema.INSTANCE_FIELDS, where, problems, label)
    if values is None:
        return None
    _check_common(values, where, label, problems)
    issuer = values.get("issuer")
    if issuer is not None:
        for message in urls.check_https_url(issuer, what="issuer"):
            problems.append(Problem(f"{where}.issuer", message, label))
    jwks_uri = values.get("jwks_uri")
    if jwks_uri is not None:
        for message in urls.check_https_url(jwks_uri, what="jwks_uri", allow_trailing_slash=False):
            problems.append(Problem(f"{where}.jwks_uri", message, label))
    raw_keys = values.get("keys")
    keys = [
        _key(item, f"{where}.keys[{i}]", label, defaults.key, base, problems)
        for i, item in enumerate(raw_keys or [])
    ]
    durations = dict(defaults.durations)
    for name in _DURATIONS:
        if name in values:
            seconds = _duration(values[name], f"{where}.{name}", label, problems)
            if seconds is not None:
                durations[name] = seconds
    merged = {**defaults.values, **values}
    cache_control = merged.get("cache_control", DEFAULT_CACHE_CONTROL)
    parties = tuple(merged.get("relying_parties", ()))
    if not raw_keys or None in keys:
        return None
    return Instance(
        id=label or "",
        issuer=issuer or "",
        jwks_uri=jwks_uri or (urls.default_jwks_uri(issuer) if issuer else ""),
        template=merged.get("template", DEFAULT_TEMPLATE),
        cache_control=cache_control,
        keys=tuple(k for k in keys if k is not None),
        discovery={**defaults.values.get("discovery", {}), **values.get("discovery", {})},
        where=where,
        token_lifetime=durations.get("token_lifetime", DEFAULT_TOKEN_LIFETIME),
        cache_ttl=durations.get("cache_ttl", _default_cache_ttl(cache_control, parties)),
        relying_parties=parties,
        oauth_metadata=merged.get("oauth_metadata", False),
        file=file or "",
    )


@functools.lru_cache(maxsize=256)  # a fleet shares a few Cache-Control values
def _default_cache_ttl(cache_control: str, parties: tuple[str, ...]) -> int:
    """What HTTP caches may hold (max-age or s-maxage, plus stale-while-revalidate or
    stale-if-error), plus the relying parties' own JWKS cache: node jose's 10 minutes, or
    longer for a listed relying party that caches longer (API Gateway: 2 hours)."""
    client = max(
        (relying_parties.CACHES[p].seconds for p in parties if p in relying_parties.CACHES),
        default=0,
    )
    return cachecontrol.held_for(cache_control, timing.MAX_DURATION) + max(CLIENT_CACHE, client)


def _duration(raw: object, at: str, label: str | None, problems: list[Problem]) -> int | None:
    try:
        return timing.parse_duration(raw)
    except ValueError as e:
        problems.append(Problem(at, str(e), label))
        return None


def _key(
    raw: object,
    where: str,
    label: str | None,
    key_defaults: Mapping[str, Any],
    base: Path,
    problems: list[Problem],
) -> KeySpec | None:
    values = schema.check_mapping(raw, schema.KEY_FIELDS, where, problems, label)
    if values is None:
        return None
    assert isinstance(raw, Mapping)  # check_mapping returned its members
    wrong = schema.key_source_problem(raw)
    if wrong is not None:
        name, message = wrong
        problems.append(Problem(f"{where}.{name}" if name else where, message, label))
        return None
    source = next(name for name in schema.KEY_SOURCES if name in raw)
    if source not in values:  # its value was refused above
        return None
    named = values[source]
    if source == "kms" and not _KMS_KEY.fullmatch(named):
        problems.append(
            Problem(
                f"{where}.kms",
                f"{shown(named)} is not a KMS key id, key ARN, alias name (alias/...) or alias ARN",
                label,
            )
        )
        return None
    merged = {**key_defaults, **values}
    moments: dict[str, Any] = {}
    for name in ("not_before", "not_after"):
        moments[name] = None
        if name in values:
            try:
                moments[name] = timing.parse_instant(values[name])
            except ValueError as e:
                problems.append(Problem(f"{where}.{name}", str(e), label))
    nb, na = moments["not_before"], moments["not_after"]
    if nb is not None and na is not None and na <= nb:
        problems.append(Problem(f"{where}.not_after", "must be later than not_before", label))
    return KeySpec(
        path=named if source == "kms" else os.path.join(base, named),
        file=named,
        kid=merged.get("kid"),
        alg=merged.get("alg"),
        kid_method=merged.get("kid_method", "rfc7638"),
        passphrase_env=merged.get("passphrase_env"),
        where=where,
        status=values.get("status", "active"),
        not_before=nb,
        not_after=na,
        x5c=merged.get("x5c", False),
        source=source,
    )
