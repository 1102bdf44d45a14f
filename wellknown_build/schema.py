"""The shape of instances.yaml, declared once: validation reads these tables.

A field's `types` are Python types as the YAML reader builds them; `choices` restricts strings.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import relying_parties, timing, urls
from .errors import Problem, shown
from .keys import kms


@dataclass(frozen=True)
class Field:
    """One field: its types, and each rule JSON Schema can say too (`pattern`, `min_items`);
    the rules it cannot say (files, keys, dates that do not exist, cross-field order) live in
    config.py and are listed in the README."""

    name: str
    types: tuple[type, ...]
    doc: str
    required: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # for editors; the field's own parser gives the message
    min_items: int = 0
    item: str = "item"  # what a list holds, for "must list at least one key"


def _f(name: str, types: type | tuple[type, ...], doc: str, **kw: Any) -> Field:
    return Field(name, types if isinstance(types, tuple) else (types,), doc, **kw)


KNOWN_PARTIES = relying_parties.PARTIES
TEMPLATE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
HEADER_PATTERN = r"^[\x20-\x7e]+$"
KMS_KEY_PATTERN = kms.KEY_ID_PATTERN
NOT_BLANK = r"\S"  # every string field: validation refuses blank strings
RESERVED_DISCOVERY = ("issuer", "jwks_uri")

_INSTANT = str  # the YAML reader leaves dates as strings; timing.parse_instant reads them
_DURATION = (str, int, float)  # JSON Schema's integer includes 3.0

# Every alg some key type here can sign with (RFC 7518, RFC 8037, RFC 8812, RFC 9864); which
# one fits a given key is checked when the key is read.
ALGS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519", "Ed448",
)  # fmt: skip

KEY_DEFAULT_FIELDS = (
    _f(
        "alg",
        str,
        "JWS algorithm; default derived from the key (RS256, PS256 for RSA-PSS, ES256/384/512, "
        "EdDSA).",
        choices=ALGS,
    ),
    _f("kid_method", str, "How a missing kid is computed.", choices=("rfc7638", "kubernetes")),
    _f("passphrase_env", str, "Environment variable holding the passphrase of an encrypted PEM."),
    _f("x5c", bool, "Publish x5c and x5t#S256 for keys given as certificates."),
)
# Exactly one of these names a key entry's key.
KEY_SOURCES = ("path", "kms", "jwks")
KEY_FIELDS = (
    _f("path", str, "PEM file, relative to the YAML file's folder."),
    _f(
        "kms",
        str,
        "AWS KMS signing key (key id, key ARN, alias name or alias ARN): its public key.",
        pattern=KMS_KEY_PATTERN,
    ),
    _f(
        "jwks",
        str,
        "JWKS file (e.g. kubectl get --raw /openid/v1/jwks): every public key in it, or the "
        "one whose kid is given.",
    ),
    _f(
        "kid",
        str,
        "Key id as the signer puts it in token headers; default by kid_method. With jwks: "
        "publish only the file's key of this kid.",
    ),
    _f("status", str, "Rotation state (default active).", choices=("next", "active", "retired")),
    _f(
        "not_before",
        _INSTANT,
        "When the key starts (or started) signing: RFC 3339 with an offset, or a date.",
        pattern=timing.INSTANT_PATTERN,
    ),
    _f(
        "not_after",
        _INSTANT,
        "When the key leaves the JWKS: RFC 3339 with an offset, or a date.",
        pattern=timing.INSTANT_PATTERN,
    ),
    *KEY_DEFAULT_FIELDS,
)
INSTANCE_DEFAULT_FIELDS = (
    _f(
        "template",
        str,
        "openid-configuration template: default, minimal, or one of yours.",
        pattern=TEMPLATE_PATTERN,
    ),
    _f("discovery", dict, "Extra openid-configuration members, merged over the template's."),
    _f(
        "cache_control",
        str,
        "Cache-Control header of both documents.",
        pattern=HEADER_PATTERN,
    ),
    _f(
        "token_lifetime",
        _DURATION,
        "Longest lifetime of a token the issuer signs (default 1h).",
        pattern=timing.DURATION_PATTERN,
    ),
    _f(
        "cache_ttl",
        _DURATION,
        "Longest a relying party may hold an old JWKS (CDN + client).",
        pattern=timing.DURATION_PATTERN,
    ),
    _f(
        "relying_parties",
        list,
        f"Check the rules of: {', '.join(KNOWN_PARTIES)}.",
    ),
    _f(
        "oauth_metadata",
        bool,
        "Also write RFC 8414 metadata at /.well-known/oauth-authorization-server.",
    ),
)
INSTANCE_FIELDS = (
    _f("id", str, "Unique instance id (used in messages and the manifest).", required=True),
    _f(
        "issuer",
        str,
        "Issuer URL, exactly as it appears in tokens' iss claim.",
        required=True,
        pattern=urls.ISSUER_PATTERN,
    ),
    _f(
        "keys",
        list,
        "Signing keys, published in this order.",
        required=True,
        min_items=1,
        item="key",
    ),
    _f(
        "jwks_uri",
        str,
        "Where the JWKS is served; default issuer + /.well-known/jwks.json.",
        pattern=urls.JWKS_URI_PATTERN,
    ),
    *INSTANCE_DEFAULT_FIELDS,
)
DEFAULTS_FIELDS = (
    *INSTANCE_DEFAULT_FIELDS,
    _f("key", dict, "Defaults for every key: alg, kid_method, passphrase_env."),
)
TOP_FIELDS = (
    _f("instances", list, "The issuers to publish.", min_items=1, item="instance"),
    _f(
        "include",
        list,
        "Globs of more files of instances (YAML or JSON; each a list or one instance), "
        "relative to this file.",
        min_items=1,
        item="glob",
    ),
    _f("defaults", dict, "Defaults for every instance (and, under key:, every key)."),
    _f("templates_dir", str, "Folder of your templates, searched before the built-in ones."),
)

# Where a list's items or a mapping's members are themselves described by a table.
_NESTED = {
    "instances": INSTANCE_FIELDS,
    "keys": KEY_FIELDS,
    "defaults": DEFAULTS_FIELDS,
    "key": KEY_DEFAULT_FIELDS,
}


def _scalar_schema(field: Field, kind: type) -> dict[str, Any]:
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer", "minimum": 0, "maximum": timing.MAX_DURATION}
    result: dict[str, Any] = {"type": "string"}
    if field.choices:
        result["enum"] = list(field.choices)
    else:
        result["pattern"] = field.pattern or NOT_BLANK
    return result


def _field_schema(field: Field) -> dict[str, Any]:
    nested = _NESTED.get(field.name)
    if field.types == (list,):
        if nested is KEY_FIELDS:
            items = key_schema()
        elif nested:
            items = object_schema(nested)
        elif field.name == "relying_parties":
            items = {"type": "string", "enum": list(KNOWN_PARTIES)}
        else:
            items = {"type": "string", "pattern": NOT_BLANK}
        result: dict[str, Any] = {"type": "array", "items": items}
        if field.min_items:
            result["minItems"] = field.min_items
    elif field.types == (dict,):
        result = object_schema(nested) if nested else {"type": "object"}
        if field.name == "discovery":
            result["not"] = {"anyOf": [{"required": [name]} for name in RESERVED_DISCOVERY]}
    else:
        variants = [_scalar_schema(field, t) for t in field.types if t is not float]
        result = variants[0] if len(variants) == 1 else {"anyOf": variants}
    result["description"] = field.doc
    return result


def object_schema(fields: tuple[Field, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _field_schema(f) for f in fields},
        "additionalProperties": False,
    }
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


def key_schema() -> dict[str, Any]:
    """A key entry: its fields, and exactly one of the fields that name its key."""
    schema = object_schema(KEY_FIELDS)
    schema["oneOf"] = [{"required": [name]} for name in KEY_SOURCES]
    return schema


def key_source_problem(value: Mapping[Any, Any]) -> tuple[str, str] | None:
    """(field, message) when a key entry does not name exactly one key (path, kms or jwks)."""
    named = [name for name in KEY_SOURCES if name in value]
    if not named:
        return "path", "is required (or kms: a KMS key, or jwks: a JWKS file)"
    if len(named) > 1:
        return "", f"give only one of {', '.join(KEY_SOURCES)} (found {' and '.join(named)})"
    return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of instances.yaml and of the files it includes (a list of instances or
    one instance), for editors (yaml-language-server), from the tables validation reads."""
    instance = object_schema(INSTANCE_FIELDS)
    top = object_schema(TOP_FIELDS)
    top["anyOf"] = [{"required": ["instances"]}, {"required": ["include"]}]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "wellknown-build instances.yaml (or an included file of instances)",
        "$defs": {"instance": instance},
        "anyOf": [
            top,
            {"$ref": "#/$defs/instance"},
            {"type": "array", "items": {"$ref": "#/$defs/instance"}, "minItems": 1},
        ],
    }


_TYPE_NAMES = {
    str: "a string",
    dict: "a mapping",
    list: "a list",
    bool: "true or false",
    int: "a whole number",
}


def check_mapping(
    value: object,
    fields: tuple[Field, ...],
    path: str,
    problems: list[Problem],
    instance: str | None = None,
) -> dict[str, Any] | None:
    """Structural checks of one mapping; returns only its well-typed members, or None."""
    where = path or "top level"
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"must be a mapping, got {_yaml_type(value)}", instance))
        return None
    by_name, required = _tables(fields)
    good: dict[str, Any] = {}
    for name, item in value.items():
        field = by_name.get(name) if isinstance(name, str) else None
        if (  # the common case first: a known field, well typed, no choice to check
            field is not None
            and type(item) in field.types
            and not field.choices
            and not (type(item) is str and not item.strip())
            and not (type(item) is list and len(item) < field.min_items)
        ):
            good[name] = item
            continue
        named = name if isinstance(name, str) else shown(name)
        at = f"{path}.{named}" if path else named
        if field is None and name == "<<":
            problems.append(Problem(at, "a merge key (<<) must refer to a mapping", instance))
        elif field is None:
            close = difflib.get_close_matches(named, by_name, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(by_name)
            end = "" if hint else "."
            problems.append(Problem(at, f"unknown field{hint}{end} Known: {known}", instance))
        elif type(item) not in field.types:  # exact: a bool is not an int here
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in field.types)
            problems.append(Problem(at, f"must be {want}, got {_yaml_type(item)}", instance))
        elif field.choices and item not in field.choices:
            close = difflib.get_close_matches(str(item), field.choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                Problem(
                    at, f"{shown(item)} is not one of {', '.join(field.choices)}{hint}", instance
                )
            )
        elif isinstance(item, str) and not item.strip():
            problems.append(Problem(at, "must not be empty", instance))
        elif isinstance(item, list) and len(item) < field.min_items:
            problems.append(Problem(at, f"must list at least one {field.item}", instance))
        else:
            good[name] = item
    for name in required:
        if name not in value:
            at = f"{path}.{name}" if path else name
            problems.append(Problem(at, "is required", instance))
    return good


_TABLES: dict[int, tuple[tuple[Field, ...], dict[str, Field], tuple[str, ...]]] = {}


def _tables(fields: tuple[Field, ...]) -> tuple[dict[str, Field], tuple[str, ...]]:
    """Fields by name and the required names, made once per field table."""
    known = _TABLES.get(id(fields))
    if known is None or known[0] is not fields:
        known = (fields, {f.name: f for f in fields}, tuple(f.name for f in fields if f.required))
        _TABLES[id(fields)] = known
    return known[1], known[2]


def _yaml_type(value: object) -> str:
    if value is None:
        return "nothing (null)"
    names = {str: "a string", dict: "a mapping", list: "a list", bool: "a boolean"}
    if type(value) in names:
        return (
            f"{names[type(value)]} {shown(value)}"
            if type(value) in (str, bool)
            else names[type(value)]
        )
    if type(value) is int:
        return f"the whole number {shown(value)}"
    if type(value) is float:
        return f"the decimal number {shown(value)}"
    return f"{type(value).__name__} {shown(value)}"
