"""The JSON Schema editors use says what validation says.

For generated configurations, `jsonschema` with the shipped schema and the validator
(`config.load`) agree on valid/invalid. Generated values avoid only the rules JSON Schema
cannot express, which the README lists: key files and what they hold, the templates_dir
folder, unique ids across instances, not_after after not_before, dates that do not exist
(2026-02-30), string durations over 100 years, integers beyond ±(2**53 - 1) inside
discovery members, and a string ending in a newline (Python's `$` matches before it; the
ECMAScript regexes of editors do not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellknown_build.config import load
from wellknown_build.schema import json_schema

Pool = tuple[list[Any], list[Any]]  # (valid values, invalid values) of a field
SCHEMA = json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

_ISSUERS: Pool = (
    [
        "https://h.example",
        "https://h.example/",
        "https://h.example/t/acme",
        "https://h.example/t/acme/",
        "https://h.example:8443/x",
        "https://a-b.c1.example/x~y/z@1",
    ],
    [
        "http://h.example",
        "https://H.example",
        "https://h.example/a/../b",
        "https://h.example/./b",
        "https://h.example//",
        "https://h.example/a//b",
        "https://h.example?x=1",
        "https://h.example#f",
        "https://u@h.example",
        "https://h.example:0",
        "https://h.example:70000",
        "https://h.example:",
        "https://h.example/a b",
        "https://h.example/a%2Fb",
        "https://h.example/é",
        "https://-h.example",
        "https://",
        "h.example",
        "",
        " ",
    ],
)
_JWKS_URIS: Pool = (
    [
        "https://h.example/.well-known/jwks.json",
        "https://h.example/openid/v1/jwks",
    ],
    [
        "https://h.example/keys/",
        "https://h.example/",
        "https://h.example",
        "https://h.example/a/../jwks",
        "http://h.example/jwks",
    ],
)
_DURATIONS: Pool = (
    [
        300,
        0,
        3.0,
        "300",
        " 300 ",
        "90s",
        "15m",
        "1h",
        "7d",
        "2w",
        "5 m",
        "PT1H30M",
        "P1D",
        "P1W",
        "P1DT2H",
    ],
    [
        3.5,
        -1,
        "PT",
        "P",
        "P1DT",
        "1 fortnight",
        "1h30m",
        "",
        "-5",
        True,
        None,
        4_000_000_000,
    ],
)
_INSTANTS: Pool = (
    [
        "2026-12-01T00:00:00Z",
        "2026-12-01t00:00:00z",
        "2026-12-01 01:00:00+01:00",
        "2026-12-01T00:00:00.5Z",
        "2026-12-01T01:00:00+0100",
        "2026-12-01",
        " 2026-12-01 ",
    ],
    [
        "2026-12-01T00:00:00",
        "2026-12-01T00:00Z",
        "yesterday",
        "",
        20261201,
        None,
    ],
)
_STRINGS: Pool = ["a", "ins_1"], ["", "  ", 5, None, True, ["a"]]
_TEMPLATES: Pool = ["default", "minimal", "my.tpl-2"], ["../x", ".x", "", 5]
_CACHE: Pool = ["public, max-age=300", "no-store"], ["a\tb", "é", "", 300]
_PARTIES: Pool = [[], ["aws-iam"], ["gcp-wif", "kubernetes"]], [["aws"], [5], "aws-iam"]
_DISCOVERY: Pool = (
    [
        {},
        {"claims_supported": ["sub"]},
        {"a": {"b": [1, 2.5, None, True]}},
    ],
    [
        {"issuer": "https://h.example"},
        {"jwks_uri": "x"},
        [],
        "x",
    ],
)


def _pick(draw: st.DrawFn, pool: Pool) -> Any:
    """Mostly a valid value: a config with one broken field is the interesting case."""
    good, bad = pool
    return draw(st.sampled_from(good if draw(st.integers(0, 9)) else bad))


_SOURCES: dict[str, Pool] = {
    "path": (["keys/k.pem", "k.pem"], ["", " ", 5]),
    "kms": (
        [
            "alias/signer",
            "alias/a/b_c-d",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/signer",
        ],
        ["keys/k.pem", "alias/", "alias/a b", "1234", "arn:aws:kms:us-east-1:1:key/x", "", 5],
    ),
    "jwks": (["cluster-jwks.json"], ["", " ", 5, ["a"]]),
}


def _key(draw: st.DrawFn) -> Any:
    key: dict[str, Any] = {}
    if draw(st.integers(0, 19)):  # the key's source: mostly one, sometimes none or two
        source = draw(st.sampled_from(list(_SOURCES)))
        key[source] = _pick(draw, _SOURCES[source])
        if draw(st.integers(0, 19)) == 0:
            other = draw(st.sampled_from([s for s in _SOURCES if s != source]))
            key[other] = _pick(draw, _SOURCES[other])
    for name, pool in (
        ("kid", _STRINGS),
        ("alg", (["RS256", "ES256", "EdDSA"], ["", 256, "none", "rs256"])),
        ("status", (["next", "active", "retired"], ["expired", ""])),
        ("kid_method", (["rfc7638", "kubernetes"], ["kube"])),
        ("passphrase_env", (["PASS"], [""])),
        ("x5c", ([True, False], ["yes", 1])),
    ):
        if draw(st.integers(0, 4)) == 0:
            key[name] = _pick(draw, pool)
    if draw(st.booleans()):  # one instant only: their order is not the schema's business
        key[draw(st.sampled_from(["not_before", "not_after"]))] = _pick(draw, _INSTANTS)
    if draw(st.integers(0, 29)) == 0:
        key["pth"] = "keys/k.pem"
    return key if draw(st.integers(0, 29)) else draw(st.sampled_from(["k.pem", None, 5]))


_DEFAULT_FIELDS: list[tuple[str, Pool]] = [
    ("template", _TEMPLATES),
    ("cache_control", _CACHE),
    ("token_lifetime", _DURATIONS),
    ("cache_ttl", _DURATIONS),
    ("relying_parties", _PARTIES),
    ("oauth_metadata", ([True, False], ["yes", None])),
    ("discovery", _DISCOVERY),
]


@st.composite
def configs(draw: st.DrawFn) -> Any:
    instances = []
    for index in range(draw(st.integers(0, 2)) or draw(st.integers(0, 1))):
        instance: dict[str, Any] = {}
        if draw(st.integers(0, 29)):
            instance["id"] = _pick(draw, ([f"i{index}"], ["", " ", 5]))
        if draw(st.integers(0, 29)):
            instance["issuer"] = _pick(draw, _ISSUERS)
        if draw(st.integers(0, 29)):
            keys = [_key(draw) for _ in range(draw(st.integers(0, 2)) or 1)]
            instance["keys"] = _pick(draw, ([keys], [[], "x", None]))
        if draw(st.integers(0, 3)) == 0:
            instance["jwks_uri"] = _pick(draw, _JWKS_URIS)
        for name, pool in _DEFAULT_FIELDS:
            if draw(st.integers(0, 4)) == 0:
                instance[name] = _pick(draw, pool)
        if draw(st.integers(0, 29)) == 0:
            instance["isuer"] = "x"
        instances.append(instance)
    config: dict[str, Any] = {}
    if draw(st.integers(0, 29)):
        config["instances"] = instances
    if draw(st.booleans()):
        defaults: dict[str, Any] = {}
        for name, pool in _DEFAULT_FIELDS:
            if draw(st.integers(0, 3)) == 0:
                defaults[name] = _pick(draw, pool)
        if draw(st.integers(0, 3)) == 0:
            defaults["key"] = {"alg": _pick(draw, (["ES256"], [""])), "x5c": False}
        if draw(st.integers(0, 29)) == 0:
            defaults["keys"] = []
        config["defaults"] = defaults
    return config


def _schema_ok(config: Any) -> bool:
    return bool(VALIDATOR.is_valid(config))


def _validator_ok(tmp_path: Path, config: Any) -> bool:
    path = tmp_path / "instances.json"  # JSON is YAML 1.2
    path.write_text(json.dumps(config))
    return not load(path).problems


@settings(max_examples=1500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs())
def test_schema_and_validator_agree(tmp_path: Path, config: Any) -> None:
    schema_ok = _schema_ok(config)
    validator_ok = _validator_ok(tmp_path, config)
    if schema_ok != validator_ok:
        errors = [e.message for e in VALIDATOR.iter_errors(config)][:3]
        problems = [str(p) for p in load(tmp_path / "instances.json").problems][:3]
        raise AssertionError(f"schema {schema_ok}, validator {validator_ok}: {errors} {problems}")


def test_both_see_valid_configs_too() -> None:
    """The generator is not only broken configs: this one is valid for both."""
    config = {
        "defaults": {"token_lifetime": "1h", "cache_ttl": 3.0},
        "instances": [
            {"id": "a", "issuer": "https://h.example/t/", "keys": [{"path": "k.pem"}]},
        ],
    }
    assert _schema_ok(config)
