"""Every configuration error, reported together with its path, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellknown_build.build import build
from wellknown_build.config import load
from wellknown_build.errors import ConfigError

from .helpers import KEY_MAKERS, Run, public_pem, rsa_key, write, write_config


def _problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build(config)
    return [str(p) for p in info.value.problems]


def _one(tmp_path: Path, instance: str, extra: str = "") -> list[str]:
    return _problems(write_config(tmp_path, f"{extra}\ninstances:\n{instance}"))


def test_defaults_cascade(tmp_path: Path, ed_key: Path) -> None:
    config = load(
        write_config(
            tmp_path,
            """
            defaults:
              template: minimal
              cache_control: "max-age=60"
              discovery: {a: 1, b: 2}
              key: {kid_method: kubernetes}
            instances:
              - id: one
                issuer: https://h.example
                discovery: {b: 3}
                keys: [{path: keys/ed.pem}]
              - id: two
                issuer: https://i.example
                template: default
                cache_control: "no-cache"
                keys: [{path: keys/ed.pem, kid_method: rfc7638}]
            """,
        )
    )
    one, two = config.config.instances
    assert (one.template, one.cache_control, dict(one.discovery)) == (
        "minimal",
        "max-age=60",
        {"a": 1, "b": 3},
    )
    assert one.keys[0].kid_method == "kubernetes"
    assert (two.template, two.cache_control, two.keys[0].kid_method) == (
        "default",
        "no-cache",
        "rfc7638",
    )
    assert one.jwks_uri == "https://h.example/.well-known/jwks.json"


def test_all_problems_reported_at_once(tmp_path: Path, ed_key: Path) -> None:
    write(tmp_path / "keys" / "rsa.pem", public_pem(rsa_key()))
    problems = _problems(
        write_config(
            tmp_path,
            """
            instances:
              - id: a
                issuer: http://a.example
                keys: [{path: keys/ed.pem}]
              - id: b
                issuer: https://b.example
                keys: [{path: keys/rsa.pem, alg: ES256}]
              - id: c
                issuer: https://c.example
                keyz: []
            """,
        )
    )
    assert problems == [  # in file order
        "instances[0].issuer: issuer must use https (got 'http') [instance a]",
        "instances[1].keys[0].alg: ES256 does not fit this key (allowed: RS256, RS384, RS512, "
        "PS256, PS384, PS512) (keys/rsa.pem) [instance b]",
        "instances[2].keys: is required [instance c]",
        "instances[2].keyz: unknown field; did you mean 'keys'? Known: "
        "id, issuer, keys, jwks_uri, template, discovery, cache_control, token_lifetime, cache_ttl, relying_parties, oauth_metadata [instance c]",
    ]


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("https://h.example?x=1", "must not have a query"),
        ("https://h.example#f", "must not have a fragment"),
        ("https://u:p@h.example", "must not contain userinfo"),
        ("https://h.example/a/../b", "'.' or '..'"),
        ("https://h.example/a/./b", "'.' or '..'"),
        ("https://H.example", "lowercase"),
        ("https:///path", "must have a host"),
        ("https://h.example/a b", "whitespace"),
        ("https://h.example/a%2Fb", "percent-encoding"),
        ("https://h.example//a", "empty path segments"),
    ],
)
def test_issuer_rules(tmp_path: Path, ed_key: Path, issuer: str, message: str) -> None:
    problems = _one(tmp_path, f"  - {{id: x, issuer: '{issuer}', keys: [{{path: keys/ed.pem}}]}}")
    assert any(message in p and p.startswith("instances[0].issuer:") for p in problems), problems


def test_jwks_uri_rules(tmp_path: Path, ed_key: Path) -> None:
    problems = _one(
        tmp_path,
        "  - {id: x, issuer: 'https://h.example', jwks_uri: 'http://h.example/k/', keys: [{path: keys/ed.pem}]}",
    )
    assert "instances[0].jwks_uri: jwks_uri must use https (got 'http') [instance x]" in problems
    assert (
        "instances[0].jwks_uri: jwks_uri must name a file, not end with '/' [instance x]"
        in problems
    )


def test_duplicate_ids_and_paths(tmp_path: Path, ed_key: Path) -> None:
    problems = _one(
        tmp_path,
        """
          - {id: x, issuer: 'https://h.example', keys: [{path: keys/ed.pem}]}
          - {id: x, issuer: 'https://i.example', keys: [{path: keys/ed.pem}]}
          - {id: y, issuer: 'https://h.example/', keys: [{path: keys/ed.pem}]}
          - {id: z, issuer: 'https://j.example', jwks_uri: 'https://h.example/.well-known/jwks.json', keys: [{path: keys/ed.pem}]}
        """,
    )
    assert "instances[1].id: duplicate instance id (also instances[0]) [instance x]" in problems
    assert any(
        p.startswith(
            "instances[2]: openid-configuration would be written to h.example/.well-known/openid-configuration, which instance x"
        )
        for p in problems
    )
    assert any(
        p.startswith("instances[3]: jwks would be written to h.example/.well-known/jwks.json")
        for p in problems
    )


def test_file_where_a_folder_is_needed(tmp_path: Path, ed_key: Path) -> None:
    problems = _one(
        tmp_path,
        """
          - {id: a, issuer: 'https://h.example/t', jwks_uri: 'https://h.example/t/x', keys: [{path: keys/ed.pem}]}
          - {id: b, issuer: 'https://h.example/t/x', keys: [{path: keys/ed.pem}]}
        """,
    )
    assert any(
        "needs h.example/t/x to be a folder, but instance a writes a file there" in p
        for p in problems
    )


def test_same_key_twice_and_kid_clash(tmp_path: Path, ed_key: Path) -> None:
    write(tmp_path / "keys" / "other.pem", public_pem(KEY_MAKERS["p256"]()))
    write(tmp_path / "keys" / "ed-copy.pem", ed_key.read_bytes())
    problems = _one(
        tmp_path,
        """
          - id: x
            issuer: https://h.example
            keys:
              - {path: keys/ed.pem, kid: one}
              - {path: keys/ed-copy.pem, kid: two}
              - {path: keys/other.pem, kid: one}
        """,
    )
    assert problems == [
        "instances[0].keys[1]: the same key as keys[0] is listed twice (keys/ed-copy.pem) [instance x]",
        "instances[0].keys[2].kid: kid 'one' is also the kid of keys[0], a different key; "
        "relying parties would pick either [instance x]",
    ]


def test_key_file_problems(tmp_path: Path) -> None:
    write(tmp_path / "keys" / "bad.pem", "not a key")
    write(
        tmp_path / "keys" / "enc.pem",
        __import__("tests.helpers", fromlist=["x"]).private_pem(
            KEY_MAKERS["p256"](), passphrase=b"pw"
        ),
    )
    problems = _one(
        tmp_path,
        """
          - id: x
            issuer: https://h.example
            keys:
              - {path: keys/missing.pem}
              - {path: keys/bad.pem}
              - {path: keys/enc.pem}
              - {path: keys/enc.pem, passphrase_env: WKB_TEST_UNSET_VAR}
        """,
    )
    assert problems[0] == "instances[0].keys[0]: key file not found (keys/missing.pem) [instance x]"
    assert problems[1:] == [
        "instances[0].keys[1]: no PEM block found (keys/bad.pem) [instance x]",
        "instances[0].keys[2]: the private key is encrypted; set passphrase_env (keys/enc.pem) [instance x]",
        "instances[0].keys[3]: the private key is encrypted, and environment variable "
        "WKB_TEST_UNSET_VAR, named by passphrase_env, is not set (keys/enc.pem) [instance x]",
    ]


def test_passphrase_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .helpers import private_pem

    write(tmp_path / "keys" / "enc.pem", private_pem(KEY_MAKERS["p256"](), passphrase=b"s3cret"))
    config = write_config(
        tmp_path,
        "instances: [{id: x, issuer: 'https://h.example', keys: [{path: keys/enc.pem, passphrase_env: WKB_PASS}]}]",
    )
    monkeypatch.setenv("WKB_PASS", "wrong")
    assert _problems(config) == [
        "instances[0].keys[0]: the passphrase does not decrypt the private key (keys/enc.pem) [instance x]"
    ]
    monkeypatch.setenv("WKB_PASS", "s3cret")
    assert len(build(config).documents) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "instances: [\n  {id: x\n",
            "instances.yaml:2: YAML syntax error at column 3: unclosed bracket",
        ),
        (
            "instances: []\ninstances: []\n",
            "instances.yaml:2: duplicate mapping key: 'instances'",
        ),
        ("- a\n- b\n", "top level: must be a mapping"),
        ("instances: []\n", "instances: must list at least one instance"),
        ("instance: []\n", "instance: unknown field; did you mean 'instances'?"),
        (
            "instances: [{id: 1, issuer: https://h, keys: []}]",
            "instances[0].id: must be a string, got the whole number 1",
        ),
        (
            "defaults: {key: {kid_method: kube}}\ninstances: []",
            "'kube' is not one of rfc7638, kubernetes",
        ),
        (
            "defaults: {discovery: {issuer: x}}\ninstances: []",
            "defaults.discovery.issuer: set issuer on the instance",
        ),
        (
            'defaults: {cache_control: "a\\nb"}\ninstances: []',
            "must be printable ASCII on one line",
        ),
        ("templates_dir: nowhere\ninstances: []", "templates_dir: folder not found"),
        (
            "instances: [{id: x, issuer: https://h, keys: []}]",
            "instances[0].keys: must list at least one key",
        ),
        (
            "instances: [{id: x, issuer: https://h, keys: [{kid: a}]}]",
            "instances[0].keys[0].path: is required",
        ),
    ],
)
def test_messages(tmp_path: Path, text: str, expected: str) -> None:
    config = write(tmp_path / "instances.yaml", text)
    with pytest.raises(ConfigError) as info:
        build(config)
    assert expected in str(info.value)
    assert str(info.value).startswith(f"{config}: ")


_CLASHES = """
  - {id: a, issuer: 'https://h.example/t', jwks_uri: 'https://h.example/t/x', keys: [{path: keys/ed.pem}]}
  - {id: b, issuer: 'https://i.example', keys: [{path: keys/ed.pem}]}
  - {id: c, issuer: 'https://h.example/t/x', keys: [{path: keys/ed.pem}]}
  - {id: d, issuer: 'https://i.example/', keys: [{path: keys/ed.pem}]}
  - {id: e, issuer: 'https://j.example', keys: [{path: keys/ed.pem}]}
  - {id: f, issuer: 'https://k.example/u', jwks_uri: 'https://k.example/u/.well-known', keys: [{path: keys/ed.pem}]}
"""


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 500])
def test_clashes_are_the_same_in_chunks_of_any_size(
    tmp_path: Path, ed_key: Path, run: Run, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Instances are recorded CHUNK at a time, and one at a time only when a chunk clashes:
    which instance is blamed for which clash must not depend on where the chunks fall,
    nor on whether the clashing instances were kept from the last render."""
    config = write_config(tmp_path, "instances:\n" + _CLASHES)
    out = tmp_path / "out"
    monkeypatch.setattr("wellknown_build.build.CHUNK", 500)
    expected = _problems(config)
    # c below a's file, d on b's two files, f's JWKS where its own discovery needs a folder
    assert len(expected) == 4, expected
    monkeypatch.setattr("wellknown_build.build.CHUNK", chunk)
    assert _problems(config) == expected
    # The same clashes after a render of the clean instances: a, b, e kept from the cache.
    monkeypatch.chdir(tmp_path)
    clean = "\n".join(
        line for line in _CLASHES.splitlines() if not any(f"id: {i}," in line for i in "cdf")
    )
    write_config(tmp_path, "instances:\n" + clean)
    assert run("-q", "render", str(config), "--out", str(out)).exit_code == 0
    write_config(tmp_path, "instances:\n" + _CLASHES)
    with pytest.raises(ConfigError) as caught:
        build(config, out=out)
    assert [str(p) for p in caught.value.problems] == expected
