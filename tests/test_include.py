"""`include:` globs: instances from many files (YAML or JSON), with errors naming the file
and line, and the same output as the same instances written in one file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from wellknown_build.build import build
from wellknown_build.errors import ConfigError
from wellknown_build.schema import json_schema

from .helpers import KEY_MAKERS, public_pem, write


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["ed25519"]()))
    write(tmp_path / "tenants" / "keys" / "b.pem", public_pem(KEY_MAKERS["p256"]()))
    write(
        tmp_path / "instances.yaml",
        "include: ['tenants/**/*.yaml', 'tenants/**/*.json']\n"
        "instances:\n"
        "  - {id: main, issuer: 'https://m.example', keys: [{path: keys/a.pem}]}\n",
    )
    # one instance per file, key paths relative to the file naming them
    write(
        tmp_path / "tenants" / "b.yaml",
        "id: b\nissuer: https://b.example\nkeys: [{path: keys/b.pem}]\n",
    )
    write(
        tmp_path / "tenants" / "eu" / "c.json",
        json.dumps(
            [
                {"id": "c1", "issuer": "https://c1.example", "keys": [{"path": "../keys/b.pem"}]},
                {"id": "c2", "issuer": "https://c2.example", "keys": [{"path": "../keys/b.pem"}]},
            ]
        ),
    )
    return tmp_path / "instances.yaml"


def test_instances_from_every_file_in_order(fleet: Path) -> None:
    result = build(fleet)
    assert [i.id for i in result.config.instances] == ["main", "b", "c1", "c2"]
    assert [i.file for i in result.config.instances] == [
        "",
        "tenants/b.yaml",
        *["tenants/eu/c.json"] * 2,
    ]


def test_the_same_output_as_one_file(fleet: Path, tmp_path: Path) -> None:
    inline = write(
        tmp_path / "inline.yaml",
        "instances:\n"
        "  - {id: main, issuer: 'https://m.example', keys: [{path: keys/a.pem}]}\n"
        "  - {id: b, issuer: 'https://b.example', keys: [{path: tenants/keys/b.pem}]}\n"
        "  - {id: c1, issuer: 'https://c1.example', keys: [{path: tenants/keys/b.pem}]}\n"
        "  - {id: c2, issuer: 'https://c2.example', keys: [{path: tenants/keys/b.pem}]}\n",
    )
    assert build(fleet).documents == build(inline).documents


def _problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build(config)
    return [p.located(str(config)) for p in info.value.problems]


def test_errors_name_the_included_file_and_line(fleet: Path, tmp_path: Path) -> None:
    write(
        tmp_path / "tenants" / "d.yaml",
        "- id: d\n  issuer: http://d.example\n  keys: [{path: keys/missing.pem}]\n",
    )
    found = _problems(fleet)
    assert found == [
        "tenants/d.yaml:2: [0].issuer: issuer must use https (got 'http') [instance d]",
        "tenants/d.yaml:3: [0].keys[0]: key file not found (keys/missing.pem) [instance d]",
    ]


def test_a_broken_included_file(fleet: Path, tmp_path: Path) -> None:
    write(tmp_path / "tenants" / "e.yaml", "- id: e\n  issuer: [\n")
    (problem,) = _problems(fleet)
    assert problem.startswith("tenants/e.yaml:2: YAML syntax error at column 11")


def test_duplicate_ids_across_files(fleet: Path, tmp_path: Path) -> None:
    write(
        tmp_path / "tenants" / "z.yaml",
        "id: c1\nissuer: https://z.example\nkeys: [{path: keys/b.pem}]\n",
    )
    found = _problems(fleet)
    # the YAML glob comes first, so z.yaml's c1 is the first and c.json's the duplicate
    assert found == [
        "tenants/eu/c.json:1: [0].id: duplicate instance id (also tenants/z.yaml: [0]) [instance c1]"
    ]


def test_a_glob_matching_nothing_is_a_warning(fleet: Path, tmp_path: Path) -> None:
    fleet.write_text(fleet.read_text().replace("include: [", "include: ['nowhere/*.yaml', "))
    result = build(fleet)
    assert [str(w) for w in result.warnings] == ["include[0]: 'nowhere/*.yaml' matches no file"]


def test_the_schema_covers_an_included_file(fleet: Path, tmp_path: Path) -> None:
    schema = json_schema()
    jsonschema.validate(json.loads((tmp_path / "tenants/eu/c.json").read_text()), schema)
    jsonschema.validate({"id": "b", "issuer": "https://b.example", "keys": [{"path": "k"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"id": "b", "issuer": "http://b.example", "keys": []}], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"defaults": {}}, schema)  # instances or include is required
