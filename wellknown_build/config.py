"""instances.yaml → frozen, validated configuration; every problem collected with its path."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import schema, timing, urls
from .errors import ConfigError, Problem
from .yamlload import load_yaml

DEFAULT_CACHE_CONTROL = "public, max-age=300"  # PyJWT's PyJWKClient caches for 300 s too
DEFAULT_TEMPLATE = "default"
DEFAULT_TOKEN_LIFETIME = 3600
# Relying parties cache a JWKS on top of HTTP caching: node jose up to 10 minutes.
CLIENT_CACHE = 600
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:max-age|s-maxage)\s*=\s*(\d+)")
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]+$")
_RESERVED_DISCOVERY = ("issuer", "jwks_uri")
KNOWN_PARTIES = schema.KNOWN_PARTIES


@dataclass(frozen=True)
class KeySpec:
    # A string, not a Path: 20,000 of these travel back from render's worker processes, and
    # unpickling Paths was a third of that.
    path: str
    file: str  # as written in the YAML, for messages
    kid: str | None
    alg: str | None
    kid_method: str
    passphrase_env: str | None
    where: str  # YAML path, e.g. instances[2].keys[0]
    status: str = "active"
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    x5c: bool = False


@dataclass(frozen=True)
class Instance:
    id: str
    issuer: str
    jwks_uri: str
    template: str
    cache_control: str
    keys: tuple[KeySpec, ...]
    discovery: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    cache_ttl: int = 0
    relying_parties: tuple[str, ...] = ()
    oauth_metadata: bool = False


@dataclass(frozen=True)
class Config:
    source: Path
    instances: tuple[Instance, ...]
    templates_dir: Path | None = None


def load(path: Path) -> Config:
    """Read and validate; raises ConfigError listing every problem found."""
    config, problems = load_partial(path)
    if problems:
        raise ConfigError(str(path), problems)
    return config


@dataclass(frozen=True)
class Outline:
    """A configuration read and checked except for its instances, which `instances` validates
    in slices (render validates large configs in several processes)."""

    source: Path
    raw_instances: tuple[Any, ...]
    defaults: Mapping[str, Any]
    key_defaults: Mapping[str, Any]
    templates_dir: Path | None
    problems: tuple[Problem, ...]

    def instances(
        self, start: int = 0, stop: int | None = None
    ) -> tuple[list[Instance], list[Problem]]:
        problems: list[Problem] = []
        instances: list[Instance] = []
        base = self.source.parent
        for index in range(start, len(self.raw_instances) if stop is None else stop):
            raw = self.raw_instances[index]
            label = raw.get("id") if isinstance(raw, Mapping) else None
            label = label if isinstance(label, str) else None
            before = len(problems)
            instance = _instance(
                raw, f"instances[{index}]", label, self.defaults, self.key_defaults, base, problems
            )
            if instance is not None and len(problems) == before:
                instances.append(instance)
        return instances, problems


def load_outline(path: Path) -> Outline:
    """Everything but the instances themselves: top level, defaults, duplicate ids."""
    problems: list[Problem] = []
    top = schema.check_mapping(load_yaml(path), schema.TOP_FIELDS, "", problems)
    if top is None:
        raise ConfigError(str(path), problems)
    defaults = (
        schema.check_mapping(top.get("defaults", {}), schema.DEFAULTS_FIELDS, "defaults", problems)
        or {}
    )
    key_defaults = (
        schema.check_mapping(
            defaults.get("key", {}), schema.KEY_DEFAULT_FIELDS, "defaults.key", problems
        )
        or {}
    )
    _check_common(defaults, "defaults", None, problems)
    raw_instances = top.get("instances", [])
    seen_ids: dict[str, str] = {}
    for index, raw in enumerate(raw_instances):
        ident = raw.get("id") if isinstance(raw, Mapping) else None
        if not isinstance(ident, str):
            continue
        if ident in seen_ids:
            problems.append(
                Problem(
                    f"instances[{index}].id",
                    f"duplicate instance id (also {seen_ids[ident]})",
                    ident,
                )
            )
        else:
            seen_ids[ident] = f"instances[{index}]"
    if not raw_instances and "instances" in top:
        problems.append(Problem("instances", "must list at least one instance"))
    templates_dir = None
    if "templates_dir" in top:
        templates_dir = path.parent / top["templates_dir"]
        if not templates_dir.is_dir():
            problems.append(Problem("templates_dir", f"folder not found: {templates_dir}"))
    return Outline(
        path, tuple(raw_instances), defaults, key_defaults, templates_dir, tuple(problems)
    )


def load_partial(path: Path) -> tuple[Config, list[Problem]]:
    """The instances that are valid, and the problems of those that are not."""
    outline = load_outline(path)
    instances, problems = outline.instances()
    config = Config(path, tuple(instances), outline.templates_dir)
    return config, [*outline.problems, *problems]


def _check_common(
    values: Mapping[str, Any], where: str, label: str | None, problems: list[Problem]
) -> None:
    """Checks of the fields that instances and defaults share."""
    template = values.get("template")
    if template is not None and not _TEMPLATE_NAME.match(template):
        problems.append(Problem(f"{where}.template", f"{template!r} is not a template name", label))
    cache = values.get("cache_control")
    if cache is not None and not _HEADER_VALUE.match(cache):
        problems.append(
            Problem(f"{where}.cache_control", "must be printable ASCII on one line", label)
        )
    for name in values.get("discovery", {}):
        at = f"{where}.discovery.{name}"
        if not isinstance(name, str):
            problems.append(Problem(at, "member names must be strings", label))
        elif name in _RESERVED_DISCOVERY:
            problems.append(
                Problem(at, f"set {name} on the instance, not among discovery members", label)
            )


def _instance(
    raw: object,
    where: str,
    label: str | None,
    defaults: Mapping[str, Any],
    key_defaults: Mapping[str, Any],
    base: Path,
    problems: list[Problem],
) -> Instance | None:
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
    if raw_keys == []:
        problems.append(Problem(f"{where}.keys", "must list at least one key", label))
    keys = [
        _key(item, f"{where}.keys[{i}]", label, key_defaults, base, problems)
        for i, item in enumerate(raw_keys or [])
    ]
    cache_control = values.get(
        "cache_control", defaults.get("cache_control", DEFAULT_CACHE_CONTROL)
    )
    token_lifetime = _duration(values, defaults, "token_lifetime", where, label, problems)
    cache_ttl = _duration(values, defaults, "cache_ttl", where, label, problems)
    parties = values.get("relying_parties", defaults.get("relying_parties", []))
    where_parties = (
        f"{where}.relying_parties" if "relying_parties" in values else "defaults.relying_parties"
    )
    for party in parties:
        if party not in KNOWN_PARTIES:
            close = difflib.get_close_matches(str(party), KNOWN_PARTIES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                Problem(
                    where_parties,
                    f"unknown relying party {party!r}{hint} (known: {', '.join(KNOWN_PARTIES)})",
                    label,
                )
            )
    if issuer is None or "id" not in values or raw_keys is None or None in keys:
        return None
    return Instance(
        id=values["id"],
        issuer=issuer,
        jwks_uri=jwks_uri or urls.default_jwks_uri(issuer),
        template=values.get("template", defaults.get("template", DEFAULT_TEMPLATE)),
        cache_control=cache_control,
        keys=tuple(k for k in keys if k is not None),
        discovery={**defaults.get("discovery", {}), **values.get("discovery", {})},
        where=where,
        token_lifetime=DEFAULT_TOKEN_LIFETIME if token_lifetime is None else token_lifetime,
        cache_ttl=_default_cache_ttl(cache_control) if cache_ttl is None else cache_ttl,
        relying_parties=tuple(parties),
        oauth_metadata=values.get("oauth_metadata", defaults.get("oauth_metadata", False)),
    )


def _default_cache_ttl(cache_control: str) -> int:
    """The longest of max-age and s-maxage (the CDN's), plus relying parties' own cache."""
    ages = [int(m) for m in _MAX_AGE.findall(cache_control)]
    return max(ages, default=0) + CLIENT_CACHE


def _duration(
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    name: str,
    where: str,
    label: str | None,
    problems: list[Problem],
) -> int | None:
    raw, at = (
        (values[name], f"{where}.{name}")
        if name in values
        else (defaults.get(name), f"defaults.{name}")
    )
    if raw is None:
        return None
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
    if values is None or "path" not in values:
        return None
    merged = {**key_defaults, **values}
    moments: dict[str, dt.datetime | None] = {}
    for name in ("not_before", "not_after"):
        moments[name] = None
        if name in values:
            try:
                moments[name] = timing.parse_instant(values[name])
            except ValueError as e:
                problems.append(Problem(f"{where}.{name}", str(e), label))
                return None
    nb, na = moments["not_before"], moments["not_after"]
    if nb is not None and na is not None and na <= nb:
        problems.append(Problem(f"{where}.not_after", "must be later than not_before", label))
        return None
    return KeySpec(
        path=os.path.join(base, values["path"]),
        file=values["path"],
        kid=merged.get("kid"),
        alg=merged.get("alg"),
        kid_method=merged.get("kid_method", "rfc7638"),
        passphrase_env=merged.get("passphrase_env"),
        where=where,
        status=values.get("status", "active"),
        not_before=nb,
        not_after=na,
        x5c=merged.get("x5c", False),
    )
