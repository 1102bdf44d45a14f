"""Templates: built-in shapes, user overrides, and validation of whatever a template produces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wellknown_build import jsondoc
from wellknown_build.build import build
from wellknown_build.errors import ConfigError
from wellknown_build.jsondoc import dumps

from .helpers import KEY_MAKERS, public_pem, write, write_config


def _docs(config: Path) -> dict[str, dict[str, object]]:
    return {d.path: json.loads(d.body) for d in build(config).documents}


def test_default_template_derives_algs(tmp_path: Path, ed_key: Path) -> None:
    write(tmp_path / "keys" / "p384.pem", public_pem(KEY_MAKERS["p384"]()))
    docs = _docs(
        write_config(
            tmp_path,
            """
            instances:
              - id: x
                issuer: https://h.example/tenants/acme/
                keys: [{path: keys/p384.pem}, {path: keys/ed.pem}]
                discovery: {response_types_supported: [code], claims_supported: [sub]}
            """,
        )
    )
    doc = docs["h.example/tenants/acme/.well-known/openid-configuration"]
    assert doc == {
        "issuer": "https://h.example/tenants/acme/",
        "jwks_uri": "https://h.example/tenants/acme/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES384", "EdDSA"],
        "claims_supported": ["sub"],
    }
    assert list(doc) == list(doc)  # order kept: issuer first
    assert next(iter(doc)) == "issuer"


def test_jwks_uri_elsewhere(tmp_path: Path, ed_key: Path) -> None:
    docs = _docs(
        write_config(
            tmp_path,
            """
            instances:
              - id: k8s
                issuer: https://oidc.example.com/cluster-1
                jwks_uri: https://oidc.example.com/cluster-1/openid/v1/jwks
                template: minimal
                keys: [{path: keys/ed.pem}]
            """,
        )
    )
    assert sorted(docs) == [
        "oidc.example.com/cluster-1/.well-known/openid-configuration",
        "oidc.example.com/cluster-1/openid/v1/jwks",
    ]


def _user_template(tmp_path: Path, body: str) -> list[str]:
    write(tmp_path / "tpl" / "openid-configuration" / "mine.json.j2", body)
    config = write_config(
        tmp_path,
        """
        templates_dir: tpl
        instances:
          - {id: x, issuer: 'https://h.example', template: mine, keys: [{path: keys/ed.pem}]}
        """,
    )
    with pytest.raises(ConfigError) as info:
        build(config)
    return [str(p) for p in info.value.problems]


def test_user_template_is_used(tmp_path: Path, ed_key: Path) -> None:
    write(
        tmp_path / "tpl" / "openid-configuration" / "minimal.json.j2",
        '{"issuer": {{ issuer | tojson }}, "jwks_uri": {{ jwks_uri | tojson }}, "x": {{ keys | length }}}',
    )
    config = write_config(
        tmp_path,
        "templates_dir: tpl\ninstances: [{id: x, issuer: 'https://h.example', template: minimal, keys: [{path: keys/ed.pem}]}]",
    )
    assert _docs(config)["h.example/.well-known/openid-configuration"]["x"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ nope }}", "'nope' is undefined"),
        ("{% if %}", "tpl/openid-configuration/mine.json.j2:1:"),
        ("not json", "did not produce JSON"),
        ("[1]", "must produce a JSON object"),
        (
            '{"issuer": "https://h.example/", "jwks_uri": {{ jwks_uri | tojson }}}',
            "is not byte-identical",
        ),
        (
            '{"issuer": {{ issuer | tojson }}, "jwks_uri": "https://h.example/k"}',
            "is not where the JWKS is published",
        ),
        (
            '{"issuer": {{ issuer | tojson }}, "jwks_uri": {{ jwks_uri | tojson }}, "id_token_signing_alg_values_supported": ["none"]}',
            "must not contain 'none'",
        ),
        (
            '{"issuer": {{ issuer | tojson }}, "jwks_uri": {{ jwks_uri | tojson }}, "scopes_supported": []}',
            "scopes_supported is an empty array",
        ),
    ],
)
def test_bad_template(tmp_path: Path, ed_key: Path, body: str, message: str) -> None:
    (problem,) = _user_template(tmp_path, body)
    assert problem.startswith("instances[0].template: ")
    assert message in problem


def test_missing_template(tmp_path: Path, ed_key: Path) -> None:
    config = write_config(
        tmp_path,
        "instances: [{id: x, issuer: 'https://h.example', template: fancy, keys: [{path: keys/ed.pem}]}]",
    )
    with pytest.raises(
        ConfigError, match=r"template openid-configuration/fancy\.json\.j2 not found"
    ):
        build(config)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=300)
@given(value=_json)
def test_dumps_is_json_dumps_indent_2(value: object) -> None:
    """orjson writes every value that passes jsondoc.problems as the stdlib reads it back, and
    byte for byte as the stdlib writes it except for the notation of some floats
    (0.00006103515625 where Python writes 6.103515625e-05)."""
    assert jsondoc.problems(value) == []
    written = dumps(value)
    assert json.loads(written) == value
    if "e" not in json.dumps(value).lower() or not _has_float(value):
        expected = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
        assert written == expected.encode("utf-8")


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    return isinstance(value, list) and any(_has_float(v) for v in value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "nan is not a number JSON can carry"),
        ({"a": [float("inf")]}, "inf is not a number JSON can carry"),
        ({"a": 2**53}, "beyond ±(2**53 - 1)"),
        ({1: "a"}, "member name 1 is not a string"),
        ({"a": {1, 2}}, "set is not a JSON value"),
        ({"a": b"x"}, "bytes is not a JSON value"),
        ({"a": "\ud800"}, "lone surrogate"),
    ],
)
def test_not_plain_json_is_named(value: object, reason: str) -> None:
    found = jsondoc.problems(value)
    assert found and reason in found[0][1]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ('{"issuer": {{ issuer|tojson }}, "x": NaN}', "did not produce JSON"),
        ('{"issuer": {{ issuer|tojson }}, "x": 1e999}', "not a number JSON can carry"),
        ('{"issuer": {{ issuer|tojson }}, "x": 12345678901234567890}', "beyond"),
        ("[1]", "must produce a JSON object"),
        ("{{ undefined_name }}", "undefined"),
    ],
)
def test_template_errors_are_template_errors(tmp_path: Path, template: str, message: str) -> None:
    write(tmp_path / "t" / "openid-configuration" / "bad.json.j2", template)
    write(tmp_path / "keys" / "ed.pem", public_pem(KEY_MAKERS["ed25519"]()))
    config = write_config(
        tmp_path,
        "templates_dir: t\ninstances: [{id: x, issuer: 'https://h.example', template: bad, "
        "keys: [{path: keys/ed.pem}]}]",
    )
    with pytest.raises(ConfigError, match=message):
        build(config)


def _discovery(tmp_path: Path, instance_extra: str, key: str = "ed25519") -> dict[str, object]:
    write(tmp_path / "keys" / "k.pem", public_pem(KEY_MAKERS[key]()))
    config = write_config(
        tmp_path,
        "defaults: {discovery: {claims_supported: [sub]}}\n"
        f"instances: [{{id: x, issuer: 'https://h.example', keys: [{{path: keys/k.pem}}]{instance_extra}}}]",
    )
    (document,) = [d for d in build(config).documents if d.kind == "openid-configuration"]
    result: dict[str, object] = json.loads(document.body)
    return result


def test_minimal_template_merges_discovery_members(tmp_path: Path) -> None:
    assert _discovery(tmp_path, ", template: minimal, discovery: {scopes_supported: [openid]}") == {
        "issuer": "https://h.example",
        "jwks_uri": "https://h.example/.well-known/jwks.json",
        "claims_supported": ["sub"],
        "scopes_supported": ["openid"],
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ", discovery: {id_token_signing_alg_values_supported: [RS256]}",
            "does not list EdDSA, the alg of published keys",
        ),
        (
            ", discovery: {token_endpoint_auth_signing_alg_values_supported: [RS256, none]}",
            "token_endpoint_auth_signing_alg_values_supported must not contain 'none'",
        ),
        (
            ", oauth_metadata: true, discovery: {revocation_endpoint_auth_signing_alg_values_supported: [none]}",
            "must not contain 'none'",
        ),
    ],
)
def test_advertised_algs_must_be_sound(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _discovery(tmp_path, extra)


def test_advertised_algs_covering_the_keys_pass(tmp_path: Path) -> None:
    algs = _discovery(
        tmp_path, ", discovery: {id_token_signing_alg_values_supported: [RS256, EdDSA]}"
    )
    assert algs["id_token_signing_alg_values_supported"] == ["RS256", "EdDSA"]
