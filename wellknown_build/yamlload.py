"""YAML reading with libyaml when present, duplicate keys refused, errors located by line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import ConfigError, Problem

_STR = "tag:yaml.org,2002:str"

if TYPE_CHECKING:
    _Base = yaml.SafeLoader
else:  # libyaml's parser when PyYAML was built with it: several times faster
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# First characters with which PyYAML's implicit resolvers (bool, int, float, null, merge,
# timestamp, value) can match; a plain scalar starting otherwise is a string.
_MAYBE_TYPED = frozenset("yYnNtTfFoO-+0123456789.<~=")


class _Loader(_Base):
    """libyaml's parser with PyYAML's safe scalar constructors."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> Any:
        # Tag resolution tries regexes on every scalar in Python; most of a large config is
        # ids, URLs and paths that cannot be anything but strings.
        if kind is yaml.ScalarNode and value and value[0] not in _MAYBE_TYPED:
            return _STR
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


def _construct(loader: _Loader, node: yaml.Node) -> Any:
    """Nodes to Python objects: what SafeLoader builds, in a fraction of its time (its generic
    constructor is most of a 10,000-instance load), and refusing duplicate mapping keys, which
    PyYAML silently resolves to the last one."""
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag == _STR else loader.construct_object(node)
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        return [_construct(loader, item) for item in node.value]
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        loader.flatten_mapping(node)  # merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(loader, key_node)
            if not isinstance(key, str | int | float | bool | None):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark
                )
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            result[key] = _construct(loader, value_node)
        return result
    return loader.construct_object(node)  # other tags: SafeLoader refuses what it must


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), [Problem("", "file not found")]) from None
    except OSError as e:
        raise ConfigError(str(path), [Problem("", f"cannot read: {e.strerror}")]) from None
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else _construct(loader, node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise ConfigError(str(path), [Problem(where, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError(str(path), [Problem("", f"YAML error: {e}")]) from None
    except RecursionError:
        raise ConfigError(
            str(path), [Problem("", "YAML nests too deep (a recursive alias?)")]
        ) from None
