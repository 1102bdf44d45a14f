"""The JSON Schema editors use: generated from the validation tables, shipped, and correct."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from wellknown_build.schema import json_schema

from .helpers import ROOT, Run

SHIPPED = ROOT / "wellknown_build" / "instances.schema.json"


def _example() -> object:
    return yaml.safe_load((ROOT / "examples" / "instances.yaml").read_text())


def test_shipped_schema_is_current(run: Run) -> None:
    """`make schema` refreshes it."""
    printed = run("schema")
    assert printed.exit_code == 0
    assert json.loads(printed.output) == json_schema() == json.loads(SHIPPED.read_text())


def test_example_validates() -> None:
    jsonschema.validate(_example(), json_schema())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["instances"][0].update(isuer="x"),
            "Additional properties are not allowed ('isuer' was unexpected)",
        ),
        (
            lambda c: c["instances"][0]["keys"][0].update(status="expired"),
            "'expired' is not one of",
        ),
        (lambda c: c["instances"][0].update(relying_parties=["aws"]), "'aws' is not one of"),
        (lambda c: c["instances"][0].pop("issuer"), "'issuer' is a required property"),
    ],
)
def test_schema_rejects(mutate: Callable[[Any], object], message: str) -> None:
    config = _example()
    mutate(config)
    with pytest.raises(
        jsonschema.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        jsonschema.validate(config, json_schema())


def test_example_points_editors_at_the_schema() -> None:
    first = (ROOT / "examples" / "instances.yaml").read_text().splitlines()[0]
    target = first.removeprefix("# yaml-language-server: $schema=")
    assert (ROOT / "examples" / target).resolve() == SHIPPED.resolve()
    assert Path(target).name == "instances.schema.json"
