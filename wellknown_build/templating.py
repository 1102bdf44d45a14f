"""Jinja2 with StrictUndefined: user templates first, then ours; output must be a JSON object."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from . import jsondoc
from .errors import TemplateError


def builtin_templates() -> Path:
    """Inside the wheel the templates sit in the package; in a checkout, at the top level."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    return {**base, **extra}


def _tojson(value: Any) -> str:
    # Jinja's own tojson escapes for HTML; these are JSON files.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# The bundled discovery template, by the SHA-256 of its text (newlines as Jinja reads them).
# For it, json_object() makes the document without Jinja and the JSON round trip, a tenth of
# a full render, when every value is plain JSON: then json.loads(tojson(value)) equals value,
# and the result is what rendering gives (tests/test_templating.py holds the two equal, on
# any context). Any doubt, and the template is rendered.
DEFAULT_DISCOVERY = "openid-configuration/default.json.j2"
_DEFAULT_DISCOVERY_SHA256 = "637eed20a3ca332c86c58c845e5e7e3db79f67907529686c309b62a4a9ff762f"
_PLAIN_DEPTH = 32  # deeper goes through Jinja (json's C code has a recursion limit)
_DEFAULT_DISCOVERY_NAMES = frozenset({"issuer", "jwks_uri", "algs"})  # besides `discovery`


def _default_discovery(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """What DEFAULT_DISCOVERY renders to, or None if a value is not plain JSON."""
    if type(context) is not dict or not all(type(name) is str for name in context):
        return None  # (Jinja would refuse other names, or read a subclass otherwise)
    discovery = context.get("discovery")
    if type(discovery) is not dict or not context.keys() >= _DEFAULT_DISCOVERY_NAMES:
        return None
    document = {
        "issuer": context["issuer"],
        "jwks_uri": context["jwks_uri"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": context["algs"],
    }
    copy = _plain({**document, **discovery}, _PLAIN_DEPTH)
    return None if copy is _NOT_PLAIN else copy


_NOT_PLAIN = object()


def _plain(value: Any, depth: int) -> Any:
    """A copy of `value` (new lists and objects, as json.loads makes them) if it is JSON that
    tojson and json.loads give back unchanged and that jsondoc.problems passes; else
    _NOT_PLAIN. Stricter than needed: a string that is not printable goes through Jinja."""
    kind = type(value)
    if kind is str:
        return value if value.isprintable() else _NOT_PLAIN
    if kind is bool or value is None:
        return value
    if kind is int:
        return value if abs(value) <= jsondoc.MAX_SAFE_INTEGER else _NOT_PLAIN
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if depth == 0 or (kind is not list and kind is not dict):
        return _NOT_PLAIN
    if kind is list:
        items = [_plain(item, depth - 1) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    members = {}
    for key, member in value.items():
        copy = _plain(member, depth - 1)
        if type(key) is not str or copy is _NOT_PLAIN:
            return _NOT_PLAIN
        members[key] = copy
    return members


class Renderer:
    """Templates are trusted code (they run unsandboxed); their files are found only if they
    are regular files (jinja2's loader checks os.path.isfile), so a FIFO is "not found"."""

    def __init__(self, user_dir: Path | None = None) -> None:
        search = [str(user_dir)] if user_dir else []
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*search, str(builtin_templates())]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701 - JSON output, escaped by tojson
            keep_trailing_newline=True,
        )
        self.env.filters["tojson"] = _tojson
        self.env.filters["merge"] = _merge
        self._cache: dict[str, jinja2.Template] = {}
        self._bundled: bool | None = None  # DEFAULT_DISCOVERY is the bundled text

    def _template(self, name: str) -> jinja2.Template:
        if name not in self._cache:
            try:
                self._cache[name] = self.env.get_template(name)
            except jinja2.TemplateNotFound:
                raise TemplateError(f"template {name} not found") from None
            except jinja2.TemplateSyntaxError as e:
                raise TemplateError(f"{e.filename or name}:{e.lineno}: {e.message}") from None
            except (OSError, UnicodeDecodeError) as e:
                raise TemplateError(f"template {name} cannot be read: {e}") from None
        return self._cache[name]

    def _bundled_discovery(self) -> bool:
        """Whether DEFAULT_DISCOVERY is found among our templates (not a user's) and is the
        text the shortcut stands for."""
        if self._bundled is None:
            assert self.env.loader is not None
            try:  # (read again after _template() found it: it may be gone or changed since)
                source, filename, _ = self.env.loader.get_source(self.env, DEFAULT_DISCOVERY)
            except (jinja2.TemplateNotFound, OSError, UnicodeDecodeError):
                self._bundled = False
                return False
            text = source.replace("\r\n", "\n").encode("utf-8", "surrogatepass")
            self._bundled = (
                filename is not None
                and Path(filename) == builtin_templates() / DEFAULT_DISCOVERY
                and hashlib.sha256(text).hexdigest() == _DEFAULT_DISCOVERY_SHA256
            )
        return self._bundled

    def json_object(self, name: str, context: Mapping[str, Any]) -> dict[str, Any]:
        template = self._template(name)
        if name == DEFAULT_DISCOVERY and self._bundled_discovery():
            document = _default_discovery(context)
            if document is not None:
                return document
        try:
            text = template.render(context)
        except jinja2.UndefinedError as e:
            raise TemplateError(f"template {name}: {e.message}") from None
        except TemplateError:
            raise
        except Exception as e:  # a template is user code: any error in it is theirs
            raise TemplateError(f"template {name}: {type(e).__name__}: {e}") from None
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as e:
            raise TemplateError(
                f"template {name} did not produce JSON (line {e.lineno}: {e.msg})"
            ) from None
        except (ValueError, RecursionError) as e:
            raise TemplateError(f"template {name} did not produce JSON ({e})") from None
        if not isinstance(value, dict):
            raise TemplateError(f"template {name} must produce a JSON object")
        bad = jsondoc.problems(value)
        if bad:
            at, reason = bad[0]
            raise TemplateError(f"template {name} produced {at or 'a value'} that {reason}")
        return value
