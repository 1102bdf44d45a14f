"""Reading instances.yaml (or JSON): YAML 1.2 by yaml-rs, with what it lets through refused.

yaml-rs (Rust) reads a 10,000-instance file about ten times faster than libyaml through
PyYAML, refuses duplicate keys and bounds alias expansion. Three things it would let through
silently are checked here: tags it drops or turns into other types (`!!binary`, `!!set`,
`!custom`), a recursive alias (it yields null) and a second document (it yields a list). Those
checks need PyYAML's event parser, which runs only when the text contains a character that
can start a tag, an anchor or an alias, or a line that can separate documents.

Merge keys (`<<`, YAML 1.1) are applied here as PyYAML applies them: explicit keys win over
merged ones, earlier merged maps over later ones.

When validation finds problems, `Source.line` maps their YAML paths to line numbers; it
composes the text with PyYAML only then, on the error path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml_rs

from .errors import ConfigError, Problem
from .files import CONFIG_LIMIT, InputFileError, read_regular

# YAML 1.2 core schema tags; `!` is the non-specific tag (a quoted-string marker).
_ALLOWED_TAGS = frozenset(
    {
        "!",
        *(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")),
    }
)
_NEEDS_EVENTS = re.compile(r"[!&*]|^(?:---|\.\.\.)(?:[ \t]|$)", re.MULTILINE)
_LOCATION = re.compile(r"at line (\d+), column (\d+)")
_BASE_REPLAY = 1_000_000  # events yaml-rs may replay for aliases, at least
MERGE = "<<"
COMPOSE_LIMIT = 32 * 1024 * 1024  # characters

# libyaml's parser when PyYAML was built with it; the pure-Python one gives the same events
# (a test runs the checks with both).
_EventLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Source:
    """A configuration file read: its data, and its text for locating problems."""

    path: Path
    data: Any
    text: str = field(repr=False)
    _nodes: yaml.Node | None = field(default=None, init=False, repr=False)
    _composed: bool = field(default=False, init=False, repr=False)

    def line(self, where: str) -> int | None:
        """The line of the YAML path `instances[3].keys[0].kid` (of its deepest part found)."""
        if not self._composed:
            self._composed = True
            try:
                self._nodes = _compose(self.text)
            except (yaml.YAMLError, RecursionError):
                self._nodes = None
        node = self._nodes
        if node is None:
            return None
        line = node.start_mark.line + 1
        parts = list(_parts(where))
        if parts and isinstance(parts[0], int) and isinstance(node, yaml.MappingNode):
            parts = parts[1:]  # an included file holding one instance: `[0]` is its root
        for part in parts:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line


def _compose(text: str) -> yaml.Node | None:
    """PyYAML's node tree, for line numbers only: on the error path, and not for a file so
    large that its Python nodes would take gigabytes (problems then come without lines)."""
    if len(text) > COMPOSE_LIMIT:
        return None
    return yaml.compose(text, Loader=_EventLoader)


def _parts(where: str) -> Iterator[str | int]:
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", where):
        yield int(index) if index else name


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
        return node.value[part] if part < len(node.value) else None
    if isinstance(part, str) and isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return value if isinstance(value, yaml.Node) else None
    return None


def _error(path: Path, message: str, line: int | None = None) -> ConfigError:
    return ConfigError(str(path), [Problem("", message, line=line)])


def read_text(path: Path) -> str:
    try:
        raw = read_regular(path, CONFIG_LIMIT)
    except FileNotFoundError:
        raise _error(path, "file not found") from None
    except InputFileError as e:
        raise _error(path, str(e)) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _error(path, "is UTF-16; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise _error(path, f"is not UTF-8 (byte {raw[e.start]:#04x})", line) from None


def load_yaml(path: Path, text: str | None = None) -> Source:
    """Read (unless `text` is what read_text gave) and parse; raises ConfigError (with the
    line) for anything that is not plain data."""
    if text is None:
        text = read_text(path)
    if _NEEDS_EVENTS.search(text):
        _check_events(path, text)
    limits = yaml_rs.AliasLimits(max_total_replayed_events=max(_BASE_REPLAY, 4 * len(text)))
    try:
        data = yaml_rs.loads(text, parse_datetime=False, alias_limits=limits)
    except yaml_rs.YAMLDecodeError as e:
        raise _decode_error(path, text, str(e)) from None
    except (ValueError, OverflowError) as e:  # an integer of thousands of digits, say
        raise _error(path, f"YAML value error: {e}") from None
    except RecursionError:
        raise _error(path, "YAML nests too deep") from None
    if MERGE in text:
        data = _apply_merges(path, text, data)
    return Source(path, data, text)


def _decode_error(path: Path, text: str, message: str) -> ConfigError:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    found = _LOCATION.search(message)
    if found:  # "YAML parse error at line 2, column 1 | 2 | b: 2 | ^ | reason"
        reason = lines[-1] if len(lines) > 1 else lines[0]
        return _error(
            path, f"YAML syntax error at column {found.group(2)}: {reason}", int(found.group(1))
        )
    if message.startswith("duplicate mapping key"):
        return _error(path, message, _duplicate_line(text))
    if message.startswith("alias replay limit"):
        return _error(path, "aliases expand to too much data (an alias bomb?)")
    first = lines[0] if lines else message
    return _error(path, f"YAML error: {first}", _line_of_quoted(text, first))


def _line_of_quoted(text: str, message: str) -> int | None:
    """The first line holding the value yaml-rs quotes in its message (it gives no line)."""
    quoted = re.search(r"'([^']+)'", message)
    if quoted is None:
        return None
    at = text.find(quoted.group(1))
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _duplicate_line(text: str) -> int | None:
    """yaml-rs names the duplicate key but not its line; PyYAML's nodes know it."""
    try:
        root = _compose(text)
    except (yaml.YAMLError, RecursionError):
        return None
    stack = [root] if root is not None else []
    seen_nodes: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys and key.value != MERGE:
                        return int(key.start_mark.line) + 1
                    keys.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def _check_events(path: Path, text: str) -> None:
    """One document; core-schema tags only; no alias to a collection still being read."""
    documents = 0
    open_anchors: list[str | None] = []
    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _error(path, "holds more than one YAML document (a second ---)", line)
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in _ALLOWED_TAGS:
                shown = tag.replace("tag:yaml.org,2002:", "!!")
                raise _error(
                    path,
                    f"the tag {shown} is not supported (plain YAML 1.2 data only: strings, "
                    "numbers, booleans, null, lists and mappings)",
                    line,
                )
            if isinstance(event, yaml.CollectionStartEvent):
                open_anchors.append(event.anchor)
            elif isinstance(event, yaml.CollectionEndEvent):
                open_anchors.pop()
            elif isinstance(event, yaml.AliasEvent) and event.anchor in open_anchors:
                raise _error(path, f"the alias *{event.anchor} refers to itself", line)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise _error(path, f"YAML syntax error: {what}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise _error(path, f"YAML error: {e}") from None


def _apply_merges(path: Path, text: str, data: Any) -> Any:
    """`<<: *base` and `<<: [*a, *b]` as YAML 1.1 defines them (and PyYAML builds them)."""
    if isinstance(data, list):
        return [_apply_merges(path, text, item) for item in data]
    if not isinstance(data, dict):
        return data
    values = {k: _apply_merges(path, text, v) for k, v in data.items()}
    if MERGE not in values:
        return values
    sources = values.pop(MERGE)
    if isinstance(sources, dict):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise _error(path, "a merge key (<<) must be a mapping or a list of mappings")
    merged: dict[Any, Any] = {}
    for source in sources:  # earlier sources win over later ones
        for key, value in source.items():
            merged.setdefault(key, value)
    merged.update(values)
    return merged
