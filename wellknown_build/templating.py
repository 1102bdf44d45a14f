"""Jinja2 with StrictUndefined: user templates first, then ours; output must be a JSON object."""

from __future__ import annotations

import json
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

    def json_object(self, name: str, context: Mapping[str, Any]) -> dict[str, Any]:
        template = self._template(name)
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
