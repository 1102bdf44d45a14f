"""Keys from an existing JWKS file (`jwks:`): kids, algs and use kept; private members
refused by name; the checks of PEM keys apply (each JWK must be exactly what its key
serializes to); hostile files refused with their reason, never a traceback."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellknown_build.keys import public_jwk
from wellknown_build.keys.jwks_source import PRIVATE_MEMBERS

from .helpers import KEY_MAKERS, Run, certificate, public_pem, rsa_key, vector, write

KUBERNETES = vector("azwi-jwks.json")  # a cluster's key as kubectl get --raw /openid/v1/jwks


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int, size: int | None = None) -> str:
    return _b64(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


_CRV = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _public(key: Any, **extra: Any) -> dict[str, Any]:
    """A public JWK written here from the key's numbers (RFC 7518 §6), not by the tool."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        jwk: dict[str, Any] = {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    elif isinstance(public, ec.EllipticCurvePublicKey):
        size = (public.curve.key_size + 7) // 8
        point = public.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": _CRV[public.curve.name],
            "x": _uint(point.x, size),
            "y": _uint(point.y, size),
        }
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        crv = type(public).__name__.removeprefix("_").replace("PublicKey", "")
        jwk = {"kty": "OKP", "crv": crv, "x": _b64(raw)}
    return {**jwk, **extra}


def _private_rsa(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    numbers = key.private_numbers()
    return _public(
        key,
        d=_uint(numbers.d),
        p=_uint(numbers.p),
        q=_uint(numbers.q),
        dp=_uint(numbers.dmp1),
        dq=_uint(numbers.dmq1),
        qi=_uint(numbers.iqmp),
    )


def _set(tmp_path: Path, *keys: dict[str, Any], name: str = "cluster-jwks.json") -> Path:
    return write(tmp_path / name, json.dumps({"keys": list(keys)}))


def _config(tmp_path: Path, *entries: str, relying: str = "") -> Path:
    lines = "".join(f"      - {e}\n" for e in entries)
    parties = f"    relying_parties: [{relying}]\n" if relying else ""
    return write(
        tmp_path / "instances.yaml",
        f"instances:\n  - id: a\n    issuer: https://a.example\n{parties}    keys:\n{lines}",
    )


def _published(tmp_path: Path) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(
        (tmp_path / "out" / "a.example" / ".well-known" / "jwks.json").read_text()
    )["keys"]
    return keys


def _render(run: Run, *args: str) -> Any:
    return run("render", "instances.yaml", "--now", "2026-12-01T00:00:00Z", *args)


def test_a_cluster_jwks_is_published_as_it_is(run: Run, tmp_path: Path) -> None:
    _set(tmp_path, KUBERNETES["jwk"])
    _config(tmp_path, "jwks: cluster-jwks.json", relying="kubernetes")
    result = _render(run)
    assert result.exit_code == 0, result.output
    assert _published(tmp_path) == [KUBERNETES["jwk"]]


@pytest.mark.parametrize("kind", sorted(KEY_MAKERS))
def test_every_key_type_round_trips(run: Run, tmp_path: Path, kind: str) -> None:
    """A JWK with kid and alg keeps them; one without gets the kid and alg its key would
    get from a PEM file, so the two sources give one JWK."""
    key = KEY_MAKERS[kind]()
    given = _public(key, kid="given-kid", use="sig")
    alg = "EdDSA" if kind.startswith("ed") else public_jwk(key.public_key()).alg
    given["alg"] = alg
    fresh = rsa.generate_private_key(65537, 2048) if kind == "rsa2048" else KEY_MAKERS[kind]()
    bare = _public(fresh)  # no kid, no alg
    _set(tmp_path, given, bare)
    write(tmp_path / "bare.pem", public_pem(_public_key_of(bare)))
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run)
    assert result.exit_code == 0, result.output
    first, second = _published(tmp_path)
    assert first == {"use": "sig", **given}
    _config(tmp_path, "path: bare.pem")
    assert _render(run).exit_code == 0
    assert _published(tmp_path) == [second]


def _public_key_of(jwk: dict[str, Any]) -> Any:
    from wellknown_build.keys.jwks_source import public_key

    return public_key(jwk)


def test_algs_use_and_kids(run: Run, tmp_path: Path) -> None:
    key = rsa_key(2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _set(tmp_path, _public(key, kid="one", alg="PS256"), _public(other, kid="two"))
    _config(tmp_path, "{jwks: cluster-jwks.json, alg: RS384}")
    result = _render(run)
    assert result.exit_code == 0, result.output
    assert [(k["kid"], k["alg"]) for k in _published(tmp_path)] == [
        ("one", "PS256"),
        ("two", "RS384"),
    ]
    _config(tmp_path, "{jwks: cluster-jwks.json, kid: two}")
    assert _render(run).exit_code == 0
    assert [(k["kid"], k["alg"]) for k in _published(tmp_path)] == [("two", "RS256")]
    _config(tmp_path, "{jwks: cluster-jwks.json, kid: three}")
    result = _render(run)
    assert result.exit_code == 1
    assert (
        "instances.yaml:5: instances[0].keys[0].kid: the JWKS file has no key with kid 'three' "
        "(cluster-jwks.json) [instance a]"
    ) in result.output


def test_one_entry_many_keys_share_its_status_and_dates(run: Run, tmp_path: Path) -> None:
    _set(
        tmp_path,
        _public(KEY_MAKERS["p256"](), kid="old1"),
        _public(KEY_MAKERS["p256"](), kid="old2"),
    )
    write(tmp_path / "new.pem", public_pem(KEY_MAKERS["p256"]()))
    _config(
        tmp_path,
        "{jwks: cluster-jwks.json, status: retired, not_after: 2026-12-02T00:00:00Z}",
        "{path: new.pem, kid: new, not_before: 2026-11-01T00:00:00Z}",
    )
    result = _render(run)
    assert result.exit_code == 0, result.output
    assert [k["kid"] for k in _published(tmp_path)] == ["new", "old1", "old2"]
    later = run("render", "instances.yaml", "--now", "2026-12-03T00:00:00Z")
    assert later.exit_code == 0, later.output
    assert [k["kid"] for k in _published(tmp_path)] == ["new"]
    assert "kid old1 dropped" in later.output and "kid old2 dropped" in later.output


@pytest.mark.parametrize("member", PRIVATE_MEMBERS)
def test_private_members_are_refused_by_name(run: Run, tmp_path: Path, member: str) -> None:
    leaked = {**_public(KEY_MAKERS["p256"](), kid="k"), member: "AQAB"}
    _set(tmp_path, _public(KEY_MAKERS["p384"](), kid="fine"), leaked)
    for entry in ("jwks: cluster-jwks.json", "{jwks: cluster-jwks.json, kid: fine}"):
        _config(tmp_path, entry)
        result = _render(run)
        assert result.exit_code == 1
        assert (
            f"instances.yaml:5: instances[0].keys[0].jwks: keys[1]: member {member} is private "
            "key material"
        ) in result.output
        assert not (tmp_path / "out" / "a.example").exists()


def test_a_whole_private_jwk_is_refused(run: Run, tmp_path: Path) -> None:
    private = _private_rsa(rsa_key(2048))
    _set(tmp_path, private)
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run)
    assert "keys[0]: member d is private key material" in result.output
    assert private["d"] not in result.output


def _short_p256() -> dict[str, Any]:
    """A P-256 key whose x has a leading zero octet, written 31 octets long (the bug of
    keycloak, jjwt, go-jose, PyJWT and jwcrypto)."""
    while True:
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        x = key.public_numbers().x
        if x.bit_length() <= 248:
            jwk = _public(key)
            jwk["x"] = _b64(x.to_bytes(31, "big"))
            return jwk


def _rsa_with(**members: str) -> dict[str, Any]:
    return {**_public(rsa_key(2048)), **members}


def _padded_n() -> dict[str, Any]:
    jwk = _public(rsa_key(2048))
    return {**jwk, "n": jwk["n"] + "=" * (-len(jwk["n"]) % 4 or 4)}


def _leading_zero_n() -> dict[str, Any]:
    n = rsa_key(2048).public_key().public_numbers().n
    return _rsa_with(n=_b64(b"\0" + n.to_bytes(256, "big")))


def _off_curve() -> dict[str, Any]:
    jwk = _public(KEY_MAKERS["p256"]())
    y = base64.urlsafe_b64decode(jwk["y"] + "=")
    return {**jwk, "y": _b64(y[:-1] + bytes([y[-1] ^ 1]))}


@pytest.mark.parametrize(
    ("jwk", "expected"),
    [
        (_short_p256, "keys[0]: member x is 31 octets; P-256 coordinates are exactly 32"),
        (_leading_zero_n, "keys[0]: member n has a leading zero octet"),
        (_padded_n, "keys[0]: member n is not base64url without padding"),
        (lambda: _rsa_with(e="AQ+B"), "keys[0]: member e is not base64url without padding"),
        (_off_curve, "keys[0]: the point (x, y) is not on the curve P-256"),
        (lambda: _rsa_with(e="AQAC"), "keys[0]: not a valid RSA public key"),  # 65538: even
        (
            lambda: _public(rsa.generate_private_key(65537, 1024)),
            "RSA key of 1024 bits is too short",
        ),
        (
            lambda: _public(x25519.X25519PrivateKey.generate()),
            "keys[0]: X25519 keys are key-agreement keys, not signing keys",
        ),
        (lambda: {"kty": "oct", "k": "c2VjcmV0"}, "keys[0]: member k is private key material"),
        (lambda: {"kty": "oct"}, "keys[0]: kty 'oct' is not supported (RSA, EC, OKP)"),
        (lambda: {"n": "AQAB"}, "keys[0]: member kty is missing"),
        (
            lambda: {**_public(KEY_MAKERS["p256"]()), "crv": "P-192"},
            "EC curve 'P-192' is not supported",
        ),
        (lambda: {**_public(KEY_MAKERS["p256"]()), "x": 5}, "keys[0]: member x must be a string"),
        (lambda: _rsa_with(n=""), "keys[0]: member n is empty"),
        (
            lambda: {"kty": "OKP", "crv": "Ed25519", "x": "AQAB"},
            "member x is 3 octets, not a Ed25519",
        ),
        (
            lambda: {**_public(KEY_MAKERS["p256"]()), "use": "enc"},
            "use is 'enc': only signing keys",
        ),
        (
            lambda: {**_public(KEY_MAKERS["p256"]()), "key_ops": ["encrypt"]},
            "key_ops does not include verify",
        ),
        (lambda: {**_public(KEY_MAKERS["p256"]()), "kid": ""}, "member kid must be a non-empty"),
        (
            lambda: {**_public(KEY_MAKERS["p256"]()), "kid": "\ud800"},
            # refused by the JSON reader itself (orjson: strict UTF-8)
            "the JWKS file is not JSON (no low surrogate in string",
        ),
        (lambda: {**_public(KEY_MAKERS["p256"]()), "alg": "RS256"}, "its alg: RS256 does not fit"),
        (lambda: {**_public(KEY_MAKERS["p256"]()), "x5c": ["%%%"]}, "x5c[0] is not a base64 DER"),
        (lambda: 5, "keys[0]: must be a JSON object"),
    ],
)
def test_hostile_keys(run: Run, tmp_path: Path, jwk: Any, expected: str) -> None:
    _set(tmp_path, jwk())
    _config(tmp_path, "{jwks: cluster-jwks.json, x5c: false}")
    result = _render(run)
    assert result.exit_code == 1, result.output
    assert "instances.yaml:5: instances[0].keys[0].jwks: " in result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 2


def test_a_non_canonical_encoding_is_refused(run: Run, tmp_path: Path) -> None:
    """A 256-octet n takes 342 base64url characters, the last carrying 2 bits of n and 4
    unused ones. Setting an unused bit decodes to the same n: only the re-serialized JWK
    shows that the member is not what the key serializes to."""
    jwk = _public(rsa_key(2048))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(jwk["n"][-1]) | 1]
    assert base64.urlsafe_b64decode(jwk["n"][:-1] + last + "==") == base64.urlsafe_b64decode(
        jwk["n"] + "=="
    )
    _set(tmp_path, {**jwk, "n": jwk["n"][:-1] + last})
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run)
    assert result.exit_code == 1
    assert "keys[0]: member n is not the canonical encoding of the key it holds" in result.output


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", "the JWKS file is not JSON"),
        (b'{"keys": 5}', 'the JWKS file is not a JWK Set: it needs {"keys": [...]}'),
        (b"[]", "the JWKS file is not a JWK Set"),
        (b'{"keys": []}', "the JWKS file holds no key"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"\xff\xfe{", "the JWKS file is not JSON"),
        (b" " * (1024 * 1024 + 1), "JWKS file is larger than 1 MiB"),
    ],
)
def test_hostile_files(run: Run, tmp_path: Path, data: bytes, expected: str) -> None:
    write(tmp_path / "cluster-jwks.json", data)
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run)
    assert result.exit_code == 1
    assert "instances.yaml:5: instances[0].keys[0].jwks: " in result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_missing_file_and_folder(run: Run, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    _config(tmp_path, "jwks: nothing.json", "jwks: folder")
    result = _render(run)
    assert "instances[0].keys[0].jwks: JWKS file not found (nothing.json)" in result.output
    assert "instances[0].keys[1].jwks: JWKS file is a folder, not a file (folder)" in result.output


@pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs")
def test_a_fifo_is_not_read(run: Run, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "cluster-jwks.json")
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run)
    assert result.exit_code == 1
    assert "JWKS file is not a regular file (a device, FIFO or socket)" in result.output


def test_duplicates_within_and_across_sources(run: Run, tmp_path: Path) -> None:
    key = KEY_MAKERS["p256"]()
    _set(tmp_path, _public(key, kid="same"), _public(KEY_MAKERS["p256"](), kid="same"))
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run)
    assert (
        "instances[0].keys[0].jwks: kid 'same' is also the kid of keys[0] (cluster-jwks.json "
        "keys[0]), a different key; relying parties would pick either"
    ) in result.output
    write(tmp_path / "k.pem", public_pem(key))
    _set(tmp_path, _public(key, kid="k1"))
    _config(tmp_path, "path: k.pem", "jwks: cluster-jwks.json")
    result = _render(run)
    assert (
        "instances[0].keys[1].jwks: the same key as keys[0] is listed twice (cluster-jwks.json "
        "keys[0])"
    ) in result.output


def test_x5c_from_the_file(run: Run, tmp_path: Path) -> None:
    key = KEY_MAKERS["p256"]()
    der = certificate(key, "signer").public_bytes(serialization.Encoding.DER)
    x5c = [base64.b64encode(der).decode()]
    _set(tmp_path, _public(key, kid="k", x5c=x5c))
    _config(tmp_path, "{jwks: cluster-jwks.json, x5c: true}")
    result = _render(run)
    assert result.exit_code == 0, result.output
    (published,) = _published(tmp_path)
    assert published["x5c"] == x5c
    _config(tmp_path, "jwks: cluster-jwks.json")  # x5c: false: not published
    assert _render(run).exit_code == 0
    assert "x5c" not in _published(tmp_path)[0]
    other = certificate(KEY_MAKERS["p256"](), "other").public_bytes(serialization.Encoding.DER)
    _set(tmp_path, _public(key, kid="k", x5c=[base64.b64encode(other).decode()]))
    _config(tmp_path, "{jwks: cluster-jwks.json, x5c: true}")
    result = _render(run)
    assert (
        "instances[0].keys[0].jwks: the first certificate of its x5c holds another key "
        "(cluster-jwks.json keys[0])"
    ) in result.output


def test_the_render_cache_sees_the_file_change(run: Run, tmp_path: Path) -> None:
    path = _set(tmp_path, _public(KEY_MAKERS["p256"](), kid="one"))
    _config(tmp_path, "jwks: cluster-jwks.json")
    assert _render(run).exit_code == 0
    jwks = tmp_path / "out" / "a.example" / ".well-known" / "jwks.json"
    mtime = jwks.stat().st_mtime_ns
    os.utime(path)  # touched, same bytes: nothing rebuilt
    again = _render(run)
    assert "0 created, 0 updated" in again.output
    assert jwks.stat().st_mtime_ns == mtime
    _set(
        tmp_path, _public(KEY_MAKERS["p256"](), kid="one"), _public(KEY_MAKERS["p384"](), kid="two")
    )
    changed = _render(run)
    assert "0 created, 2 updated" in changed.output, changed.output  # JWKS, and discovery's algs
    assert [k["kid"] for k in _published(tmp_path)] == ["one", "two"]


def test_inspect_jwks(run: Run, tmp_path: Path) -> None:
    _set(tmp_path, KUBERNETES["jwk"], _public(KEY_MAKERS["ed25519"]()))
    result = run("inspect", "--json", "--jwks", str(tmp_path / "cluster-jwks.json"))
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.output)
    assert first["jwks"] == {
        "file": str(tmp_path / "cluster-jwks.json"),
        "index": 0,
        "kid": KUBERNETES["jwk"]["kid"],
        "alg": "RS256",
    }
    assert first["kid_kubernetes"] == KUBERNETES["jwk"]["kid"]
    assert second["type"] == "Ed25519" and second["jwks"]["kid"] is None
    text = run("inspect", "--jwks", str(tmp_path / "cluster-jwks.json"))
    assert "cluster-jwks.json keys[0]\n" in text.output
    assert f"  kid (in the file) {KUBERNETES['jwk']['kid']}" in text.output
    _set(tmp_path, {**KUBERNETES["jwk"], "d": "AQAB"})
    refused = run("inspect", "--jwks", str(tmp_path / "cluster-jwks.json"))
    assert refused.exit_code == 1
    assert "cluster-jwks.json: keys[0]: member d is private key material" in refused.output


def test_an_included_file_names_its_jwks_relative_to_itself(run: Run, tmp_path: Path) -> None:
    _set(tmp_path / "tenants", KUBERNETES["jwk"], name="t.json")
    write(tmp_path / "instances.yaml", "include: [tenants/*.yaml]\n")
    write(
        tmp_path / "tenants" / "t.yaml",
        "id: t\nissuer: https://t.example\nkeys:\n  - jwks: t.json\n  - jwks: gone.json\n",
    )
    result = _render(run)
    assert result.exit_code == 1
    assert "tenants/t.yaml:5: [0].keys[1].jwks: JWKS file not found (gone.json) [instance t]" in (
        result.output
    )
    assert "keys[0]" not in result.output.split("tenants/t.yaml:5")[0].split("problem")[1]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_B64URL = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ ", max_size=90
)
_FUZZ_RSA = _public(rsa_key(2048), kid="r", alg="RS256", use="sig")
_FUZZ_EC = _public(KEY_MAKERS["p521"](), kid="e", alg="ES512", use="sig")


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.sampled_from([_FUZZ_RSA, _FUZZ_EC]),
    member=st.sampled_from(
        ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "x5c"]
    ),
    value=_JSON | _B64URL | st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u2028"]),
    drop=st.booleans(),
)
def test_fuzzed_members_never_crash(
    run: Run, tmp_path: Path, base: dict[str, Any], member: str, value: Any, drop: bool
) -> None:
    """Any JSON in any member (or the member missing): published only if it is exactly a
    valid public key's JWK, else one located line per problem; never a traceback."""
    jwk = {k: v for k, v in base.items() if not (drop and k == member)}
    if not drop:
        jwk[member] = value
    _set(tmp_path, jwk)
    _config(tmp_path, "jwks: cluster-jwks.json")
    result = _render(run, "-q")
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        (published,) = _published(tmp_path)
        required = ("kty", "n", "e") if base["kty"] == "RSA" else ("kty", "crv", "x", "y")
        # exactly the key given (a fuzzed value can be another valid key: e = "000" is 54093)
        assert {k: published[k] for k in required} == {k: jwk[k] for k in required}
        assert set(published) <= {"use", "kty", "kid", "alg", "n", "e", "crv", "x", "y"}
        return
    lines = result.output.splitlines()
    assert lines[0].startswith("error: instances.yaml: "), result.output
    assert all(line.startswith("  instances.yaml:5: instances[0].keys[0].") for line in lines[1:])
