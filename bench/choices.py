"""The library choices behind render, measured on the bench's generated config.

YAML: yaml-rs (what the reader uses) against PyYAML's libyaml loader, the usual choice.
JSON: orjson (what jsondoc uses) against `json.dumps(indent=2)`, on the documents of a render.
Each figure is the best of REPEAT runs, printed as a ratio to the PyYAML / stdlib baseline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wellknown_build import jsondoc
from wellknown_build.build import build
from wellknown_build.yamlload import load_yaml


def _best(repeat: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def bench_choices(config: Path, repeat: int) -> None:
    print(f"== library choices on {config}")
    text = config.read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    base = _best(repeat, lambda: yaml.load(text, Loader=loader))
    ours = _best(repeat, lambda: load_yaml(config))
    assert load_yaml(config).data == yaml.load(text, Loader=loader)
    print(f"   YAML  PyYAML {loader.__name__:<12} {base:7.3f} s   1.00x")
    print(f"   YAML  yaml-rs + checks       {ours:7.3f} s   {ours / base:.2f}x")
    documents: list[Any] = [json.loads(d.body) for d in build(config).documents]
    base = _best(repeat, lambda: [json.dumps(d, indent=2, ensure_ascii=False) for d in documents])
    ours = _best(repeat, lambda: [jsondoc.dumps(d) for d in documents])
    print(f"   JSON  json.dumps(indent=2)   {base:7.3f} s   1.00x   ({len(documents)} documents)")
    print(f"   JSON  orjson (jsondoc)       {ours:7.3f} s   {ours / base:.2f}x")
