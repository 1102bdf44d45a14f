"""One run reports every problem, in file order: config problems and key problems together."""

from __future__ import annotations

from pathlib import Path

import pytest

from wellknown_build.build import build
from wellknown_build.errors import ConfigError

from .helpers import KEY_MAKERS, public_pem, write, write_config


def _config(tmp_path: Path) -> Path:
    lines = ["instances:"]
    for i in range(6):
        write(tmp_path / "keys" / f"{i}.pem", public_pem(KEY_MAKERS["ed25519"]()))
        scheme = "http" if i in (2, 4) else "https"
        key = "keys/missing.pem" if i in (4, 5) else f"keys/{i}.pem"
        lines.append(
            f"  - {{id: i{i}, issuer: '{scheme}://h{i}.example/t', keys: [{{path: {key}}}]}}"
        )
    lines.append("  - {id: i1, issuer: 'https://h1.example/t', keys: [{path: keys/1.pem}]}")
    return write_config(tmp_path, "\n".join(lines) + "\n")


def test_config_and_key_problems_in_one_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(_config(tmp_path))
    found = [(p.path, p.line) for p in info.value.problems]
    assert found == [
        ("instances[2].issuer", 4),
        # instance 4 has a config problem, yet its missing key is reported in the same run
        ("instances[4].issuer", 6),
        ("instances[4].keys[0]", 6),
        ("instances[5].keys[0]", 7),
        ("instances[6].id", 8),
    ]


def test_a_bad_default_is_one_problem(tmp_path: Path) -> None:
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["ed25519"]()))
    instances = "".join(
        f"  - {{id: i{i}, issuer: 'https://h{i}.example', keys: [{{path: keys/a.pem}}]}}\n"
        for i in range(50)
    )
    config = write_config(
        tmp_path,
        "defaults: {token_lifetime: 1 fortnight, relying_parties: [aws-iamm], "
        'cache_control: "a\\nb"}\ninstances:\n' + instances,
    )
    with pytest.raises(ConfigError) as info:
        build(config)
    assert [p.path for p in info.value.problems] == [
        "defaults.cache_control",
        "defaults.relying_parties",
        "defaults.token_lifetime",
    ]


@pytest.mark.parametrize("maker", sorted(KEY_MAKERS))
def test_the_per_file_jwk_memo_equals_public_jwk(maker: str, tmp_path: Path) -> None:
    """KeyFiles.jwk converts a key once per file and alg and puts the configured kid in; for
    every key type, kid and kid method it must equal public_jwk called each time."""
    from wellknown_build.build import KeyFiles
    from wellknown_build.cache import Index
    from wellknown_build.keys import load_key_file, public_jwk
    from wellknown_build.model import KeySpec

    path = write(tmp_path / "k.pem", public_pem(KEY_MAKERS[maker]()))
    files = KeyFiles(None, Index.new())
    for kid in (None, "given", "given-2", None):
        for method in ("rfc7638", "kubernetes"):
            spec = KeySpec(str(path), "k.pem", kid, None, method, None, "keys[0]")
            loaded = files.load(spec)
            reference = public_jwk(
                load_key_file(path, lambda: None).public_key, kid=kid, kid_method=method
            )
            assert files.jwk(spec, loaded) == reference
