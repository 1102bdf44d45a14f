"""RSA-PSS keys (id-RSASSA-PSS, RFC 4055): published as PS*, hashed over their own SPKI.

The files in data/keys/pss were written by OpenSSL 3.0 (`openssl genpkey -algorithm RSA-PSS`,
`openssl pkey -pubout`, `openssl req -x509`, `openssl pkcs8 -topk8`; every command is listed
in expected.json, with the SPKI SHA-256 openssl gives for each file).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from wellknown_build.build import build
from wellknown_build.errors import AlgError, ConfigError, KeyLoadError
from wellknown_build.keys import der, load_key_file, parse_pem, pbe, pss, public_jwk, spki_sha256
from wellknown_build.keys.b64 import b64url
from wellknown_build.keys.describe import describe, text
from wellknown_build.keys.pss import RSAPSSPublicKey
from wellknown_build.keys.thumbprint import rfc7638
from wellknown_build.keys.x509 import with_certificates

from .helpers import DATA, PEM, SPKI, Run, public_pem, rsa_key, write, write_config

FOLDER = DATA / "keys" / "pss"
EXPECTED: dict[str, Any] = json.loads((FOLDER / "expected.json").read_text())
FILES: dict[str, dict[str, str]] = EXPECTED["files"]
PASS = EXPECTED["passphrase"].encode()
ENV = {"PSS_PASS": EXPECTED["passphrase"]}

# What each publishable file must give: its default alg and every alg it allows.
UNRESTRICTED = ("PS256", "PS384", "PS512")
PUBLISHABLE: dict[str, tuple[str, ...]] = {
    "rsa-pss.pem": UNRESTRICTED,
    "rsa-pss.pub.pem": UNRESTRICTED,
    "rsa-pss-cert.pem": UNRESTRICTED,
    "rsa-pss-encrypted-aes128-sha512.pem": UNRESTRICTED,
    "rsa-pss-encrypted-aes192-sha1.pem": UNRESTRICTED,
    "rsa-pss-encrypted-des3.pem": UNRESTRICTED,
    "rsa-pss-sha384.pem": ("PS384",),
    "rsa-pss-sha384.pub.pem": ("PS384",),
    "rsa-pss-sha384-cert.pem": ("PS384",),
    "rsa-pss-sha384-encrypted.pem": ("PS384",),
    "rsa-pss-sha384-encrypted-scrypt.pem": ("PS384",),
    "rsa-pss-sha384-encrypted-pbes1.pem": ("PS384",),
    "rsa-pss-sha512.pem": ("PS512",),
    "rsa-pss-sha512.pub.pem": ("PS512",),
}
# Well-formed RSA-PSS keys that no JWS alg fits, and why.
REFUSED = {
    "rsa-pss-sha1": "restricted to PSS with SHA-1, which no JWS algorithm uses",
    "rsa-pss-sha384-mgf1-sha256": (
        "restricted to PSS with SHA-384 and MGF1 with SHA-256; PS384 needs MGF1 with SHA-384"
    ),
    "rsa-pss-sha256-salt64": "needs salts of at least 64 octets; PS256 uses 32",
}
RC2 = "rsa-pss-sha384-encrypted-rc2.pem"


def _load(name: str) -> Any:
    return load_key_file(FOLDER / name, lambda: PASS)


def _source(name: str) -> str:
    if name.endswith("-cert.pem"):
        return "certificate"
    return "public" if name.endswith(".pub.pem") else "private"


def _numbers(name: str) -> rsa.RSAPublicNumbers:
    """n and e from the private key the file was made from, as cryptography reads them."""
    base = next(b for b in ("rsa-pss-sha384", "rsa-pss-sha512", "rsa-pss") if name.startswith(b))
    key = serialization.load_pem_private_key((FOLDER / f"{base}.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().public_numbers()


def test_fixtures_are_all_covered() -> None:
    names = {p.name for p in FOLDER.glob("*.pem")}
    refused = {f"{stem}{tail}" for stem in REFUSED for tail in (".pem", ".pub.pem")}
    assert names == set(PUBLISHABLE) | refused | {RC2}
    assert names == set(FILES)


@pytest.mark.parametrize("name", sorted(PUBLISHABLE))
def test_every_form_is_an_rsa_pss_key_with_its_default_alg(name: str) -> None:
    loaded = _load(name)
    key = loaded.public_key
    assert isinstance(key, RSAPSSPublicKey)
    assert isinstance(key, rsa.RSAPublicKey)  # n and e, the JWK, the size checks: all RSA
    assert loaded.source == _source(name)
    jwk = public_jwk(key)
    assert jwk.alg == PUBLISHABLE[name][0]
    for alg in PUBLISHABLE[name]:
        assert public_jwk(key, alg=alg).alg == alg


@pytest.mark.parametrize("name", sorted(PUBLISHABLE))
def test_kubernetes_kid_and_spki_hash_are_openssls(name: str) -> None:
    expected = FILES[name]
    key = _load(name).public_key
    assert spki_sha256(key) == expected["kid_kubernetes"]
    assert public_jwk(key, kid_method="kubernetes").kid == expected["kid_kubernetes"]
    report = describe(_load(name))
    assert report["spki_sha256"] == expected["spki_sha256"]
    assert report["kid_kubernetes"] == expected["kid_kubernetes"]
    # The issue: the rsaEncryption re-encoding hashes to another kid.
    plain = rsa.RSAPublicNumbers(key.public_numbers().e, key.public_numbers().n).public_key()
    assert spki_sha256(plain) != expected["kid_kubernetes"]


@pytest.mark.parametrize("name", sorted(PUBLISHABLE))
@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_rs_algs_are_refused(name: str, alg: str) -> None:
    key = _load(name).public_key
    with pytest.raises(AlgError) as info:
        public_jwk(key, alg=alg)
    message = str(info.value)
    assert message.startswith(f"{alg} does not fit this key: it is an RSA-PSS key (id-RSASSA-PSS")
    assert "restricted to PSS signatures" in message
    assert message.endswith(f"(allowed: {', '.join(PUBLISHABLE[name])})")


@pytest.mark.parametrize("alg", ["PS256", "PS512"])
def test_a_ps_alg_that_contradicts_the_fixed_hash_is_refused(alg: str) -> None:
    key = _load("rsa-pss-sha384.pem").public_key
    with pytest.raises(
        AlgError, match=r"restricted to PSS signatures with SHA-384 \(allowed: PS384\)"
    ):
        public_jwk(key, alg=alg)
    assert public_jwk(key, alg="PS384").alg == "PS384"


@pytest.mark.parametrize("name", sorted(PUBLISHABLE))
def test_the_public_jwk_is_a_plain_rsa_jwk(name: str) -> None:
    key = _load(name).public_key
    numbers = _numbers(name)
    jwk = public_jwk(key).as_dict()
    assert set(jwk) == {"use", "kty", "kid", "alg", "n", "e"}
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == PUBLISHABLE[name][0]
    assert int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big") == numbers.n
    assert jwk["e"] == "AQAB"
    # RFC 7638 over kty, n, e: the same thumbprint as the key under rsaEncryption.
    plain = numbers.public_key()
    assert jwk["kid"] == rfc7638({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    assert jwk["kid"] == public_jwk(plain).kid


@pytest.mark.parametrize("stem", sorted(REFUSED))
@pytest.mark.parametrize("tail", [".pem", ".pub.pem"])
def test_restrictions_no_jws_alg_fits_are_refused(stem: str, tail: str) -> None:
    loaded = _load(stem + tail)
    with pytest.raises(KeyLoadError, match=re.escape(REFUSED[stem])):
        public_jwk(loaded.public_key)
    report = describe(loaded)
    assert report["publishable"] is False
    assert REFUSED[stem] in report["reason"]
    assert report["type"].startswith("RSA-PSS 2048, SHA-")
    assert report["kid_kubernetes"] == FILES[stem + tail]["kid_kubernetes"]


def test_sha1_defaults_of_an_empty_parameter_sequence() -> None:
    """`rsa_pss_keygen_md:sha1` writes empty RSASSA-PSS-params: every RFC 4055 default."""
    key = _load("rsa-pss-sha1.pub.pem").public_key
    assert isinstance(key, RSAPSSPublicKey)
    assert key.restriction == pss.Restriction("SHA-1", "MGF1 with SHA-1", 20, 1)


def test_rc2_encrypted_rsa_keys_are_refused_with_a_way_out() -> None:
    with pytest.raises(KeyLoadError, match=r"encrypted with RC2-CBC.*openssl pkcs8 -topk8 -v2"):
        _load(RC2)


def test_the_public_pem_is_the_files_own() -> None:
    for name in ("rsa-pss.pub.pem", "rsa-pss-sha384.pub.pem"):
        key = _load(name).public_key
        assert key.public_bytes(PEM, SPKI) == (FOLDER / name).read_bytes()
    private = _load("rsa-pss-sha384.pem").public_key
    assert private.public_bytes(PEM, SPKI) == (FOLDER / "rsa-pss-sha384.pub.pem").read_bytes()
    assert private == _load("rsa-pss-sha384-cert.pem").public_key
    assert private != _load("rsa-pss.pem").public_key


def test_private_key_with_its_certificate_is_one_key() -> None:
    data = (FOLDER / "rsa-pss-sha384.pem").read_bytes()
    data += (FOLDER / "rsa-pss-sha384-cert.pem").read_bytes()
    loaded = parse_pem(data, lambda: None)
    assert loaded.source == "private"
    jwk = with_certificates(public_jwk(loaded.public_key), loaded.certificates)
    assert jwk.alg == "PS384"
    assert jwk.certificates


def test_private_key_with_an_rsa_encryption_certificate_is_refused() -> None:
    """The same n and e under rsaEncryption: which one is meant cannot be guessed."""
    pem = (FOLDER / "rsa-pss-sha384.pem").read_bytes()
    private = serialization.load_pem_private_key(pem, None)
    assert isinstance(private, rsa.RSAPrivateKey)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "plain")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    with pytest.raises(
        KeyLoadError, match=r"as an RSA-PSS key \(id-RSASSA-PSS\) and as another algorithm"
    ):
        parse_pem(pem + cert.public_bytes(PEM), lambda: None)


def test_a_plain_rsa_key_is_unchanged() -> None:
    golden = json.loads((DATA.parent / "golden" / "inspect.json").read_text())
    (before,) = [r for r in golden if r["file"] == "rsa2048.pub.pem"]
    loaded = load_key_file(DATA / "keys" / "rsa2048.pub.pem", lambda: None)
    assert not isinstance(loaded.public_key, RSAPSSPublicKey)
    report = describe(loaded)
    assert "rsa_pss" not in report
    assert report["default_alg"] == "RS256"
    assert report["algs"] == ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    assert report["spki_sha256"] == before["spki_sha256"]
    assert report["kid_kubernetes"] == before["kid_kubernetes"]
    assert public_jwk(loaded.public_key, alg="RS512").alg == "RS512"


def test_an_encrypted_plain_rsa_key_is_unchanged() -> None:
    """Encrypted RSA keys are now opened a second time; a plain one stays RS256."""
    key = rsa_key()
    pem = key.private_bytes(
        PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    loaded = parse_pem(pem, lambda: b"secret")
    assert not isinstance(loaded.public_key, RSAPSSPublicKey)
    assert public_jwk(loaded.public_key).alg == "RS256"
    assert spki_sha256(loaded.public_key) == spki_sha256(key.public_key())
    with pytest.raises(KeyLoadError, match="does not decrypt"):
        parse_pem(pem, lambda: b"wrong")


def test_a_plain_rsa_public_key_in_pkcs1_is_unchanged() -> None:
    key = rsa_key().public_key()
    loaded = parse_pem(public_pem(key, serialization.PublicFormat.PKCS1), lambda: None)
    assert not isinstance(loaded.public_key, RSAPSSPublicKey)
    assert spki_sha256(loaded.public_key) == spki_sha256(key)


def test_render_publishes_ps_algs_and_refuses_rs256(tmp_path: Path) -> None:
    for name in ("rsa-pss-sha384.pem", "rsa-pss.pub.pem"):
        write(tmp_path / name, (FOLDER / name).read_bytes())
    config = write_config(
        tmp_path,
        """
        defaults: {key: {kid_method: kubernetes}}
        instances:
          - id: c
            issuer: 'https://oidc.example/c'
            keys: [{path: rsa-pss-sha384.pem}, {path: rsa-pss.pub.pem}]
        """,
    )
    (jwks,) = [d for d in build(config).documents if d.kind == "jwks"]
    published = json.loads(jwks.body)["keys"]
    assert [(k["kid"], k["alg"]) for k in published] == [
        (FILES["rsa-pss-sha384.pem"]["kid_kubernetes"], "PS384"),
        (FILES["rsa-pss.pub.pem"]["kid_kubernetes"], "PS256"),
    ]
    write_config(
        tmp_path,
        """
        instances:
          - id: c
            issuer: 'https://oidc.example/c'
            keys: [{path: rsa-pss-sha384.pem, alg: RS256}, {path: rsa-pss.pub.pem, alg: PS512}]
        """,
    )
    with pytest.raises(ConfigError) as info:
        build(config)
    (problem,) = info.value.problems
    assert problem.path == "instances[0].keys[0].alg"
    assert "RS256 does not fit this key: it is an RSA-PSS key" in problem.message
    assert "with SHA-384 (allowed: PS384)" in problem.message


def test_inspect_shows_rsa_pss_and_openssls_hashes(run: Run) -> None:
    names = sorted(PUBLISHABLE)
    files = [str(FOLDER / n) for n in names]
    result = run("inspect", "--json", "--passphrase-env", "PSS_PASS", *files, env=ENV)
    assert result.exit_code == 0, result.output
    for name, report in zip(names, json.loads(result.output), strict=True):
        assert report["spki_sha256"] == FILES[name]["spki_sha256"]
        assert report["kid_kubernetes"] == FILES[name]["kid_kubernetes"]
        assert report["type"].startswith("RSA-PSS 2048")
        assert report["algs"] == list(PUBLISHABLE[name])
        assert report["default_alg"] == PUBLISHABLE[name][0]
    shown = run("inspect", str(FOLDER / "rsa-pss-sha384.pub.pem"), str(FOLDER / "rsa-pss.pub.pem"))
    assert shown.exit_code == 0, shown.output
    assert "  type              RSA-PSS 2048, SHA-384 only\n" in shown.output
    assert (
        "  PSS restriction   SHA-384, MGF1 with SHA-384, salt of at least 48 octets\n"
        in shown.output
    )
    assert "  algs              PS384\n" in shown.output
    assert "  PSS restriction   none (any hash)\n" in shown.output
    assert "  algs              PS256, PS384, PS512\n" in shown.output
    assert f"  SPKI SHA-256      {FILES['rsa-pss-sha384.pub.pem']['spki_sha256']}" in shown.output


def test_describe_text_for_a_refused_rsa_pss_key() -> None:
    report = {"file": "k.pem", **describe(_load("rsa-pss-sha1.pub.pem"))}
    lines = text(report)
    assert "  type              RSA-PSS 2048, SHA-1 only" in lines
    assert "  PSS restriction   SHA-1, MGF1 with SHA-1, salt of at least 20 octets" in lines


def test_the_key_object_refuses_what_an_rsa_pss_key_cannot_do() -> None:
    key = _load("rsa-pss.pub.pem").public_key
    with pytest.raises(ValueError, match="does not encrypt"):
        key.encrypt(b"x", padding.PKCS1v15())
    with pytest.raises(ValueError, match="only PSS"):
        key.verify(b"s", b"x", padding.PKCS1v15(), hashes.SHA256())


# The DER reader and the RSASSA-PSS-params, by hand.

SHA384 = bytes.fromhex("300d06096086480165030402020500")  # AlgorithmIdentifier, NULL
SHA384_ABSENT = bytes.fromhex("300b0609608648016503040202")
MGF1_SHA384 = der.encode(der.SEQUENCE, bytes.fromhex("06092a864886f70d010108") + SHA384)
PSS_OID = bytes.fromhex("06092a864886f70d01010a")


def _params(*members: bytes) -> bytes:
    return der.encode(der.SEQUENCE, b"".join(members))


def _tagged(number: int, inner: bytes) -> bytes:
    return der.encode(der.context(number), inner)


def _algorithm(params: bytes | None) -> der.TLV:
    return der.parse(der.encode(der.SEQUENCE, PSS_OID + (params or b"")))


def test_restriction_members_and_defaults() -> None:
    assert pss.restriction(_algorithm(None)) is None
    assert pss.restriction(_algorithm(_params())) == pss.Restriction(
        "SHA-1", "MGF1 with SHA-1", 20, 1
    )
    full = _params(
        _tagged(0, SHA384),
        _tagged(1, MGF1_SHA384),
        _tagged(2, der.encode(der.INTEGER, b"\x30")),
        _tagged(3, der.encode(der.INTEGER, b"\x01")),
    )
    assert pss.restriction(_algorithm(full)) == pss.Restriction(
        "SHA-384", "MGF1 with SHA-384", 48, 1
    )
    absent = _params(_tagged(0, SHA384_ABSENT), _tagged(1, MGF1_SHA384))
    assert pss.restriction(_algorithm(absent)) == pss.Restriction(
        "SHA-384", "MGF1 with SHA-384", 20, 1
    )


@pytest.mark.parametrize(
    "params",
    [
        b"\x05\x00",  # NULL, as rsaEncryption has: not RSASSA-PSS-params
        _params(_tagged(1, MGF1_SHA384), _tagged(0, SHA384)),  # out of order
        _params(_tagged(0, SHA384), _tagged(0, SHA384)),  # twice
        _params(_tagged(4, SHA384)),  # no such member
        _params(_tagged(0, SHA384 + SHA384)),  # two elements in one explicit tag
        _params(_tagged(0, der.encode(der.SEQUENCE, SHA384[2:13] + b"\x04\x00"))),  # not NULL
        _params(_tagged(1, der.encode(der.SEQUENCE, bytes.fromhex("06092a864886f70d010108")))),
        _params(_tagged(2, der.encode(der.INTEGER, b"\xff"))),  # negative salt
    ],
)
def test_unreadable_restrictions(params: bytes) -> None:
    with pytest.raises(KeyLoadError, match="RSA-PSS parameters of the key cannot be read"):
        pss.restriction(_algorithm(params))


def test_unknown_hash_and_mask_are_named() -> None:
    sha3 = bytes.fromhex("300b0609608648016503040208")  # id-sha3-256
    restriction = pss.restriction(_algorithm(_params(_tagged(0, sha3))))
    assert restriction is not None
    with pytest.raises(
        KeyLoadError, match=re.escape("PSS with 2.16.840.1.101.3.4.2.8, which no JWS")
    ):
        restriction.algs()
    other = der.encode(der.SEQUENCE, bytes.fromhex("06092a864886f70d010109") + SHA384)
    restriction = pss.restriction(_algorithm(_params(_tagged(0, SHA384), _tagged(1, other))))
    assert restriction is not None
    with pytest.raises(
        KeyLoadError, match=re.escape("mask generation function 1.2.840.113549.1.1.9")
    ):
        restriction.algs()
    trailer = _params(
        _tagged(0, SHA384), _tagged(1, MGF1_SHA384), _tagged(3, der.encode(der.INTEGER, b"\x02"))
    )
    restriction = pss.restriction(_algorithm(trailer))
    assert restriction is not None
    with pytest.raises(KeyLoadError, match="trailer field 2"):
        restriction.algs()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x30", "truncated"),
        (b"\x30\x03\x02\x01", "truncated"),
        (b"\x30\x80\x00\x00", "unsupported length"),  # BER indefinite
        (b"\x30\x81\x01\x00", "shortest form"),
        (b"\x30\x82\x00\x81" + b"\x00" * 0x81, "shortest form"),
        (b"\x1f\x01\x01\x00", "multi-octet tags"),
        (b"\x30\x00\x00", "data after"),
        (b"\x30\x85\x01\x00\x00\x00\x00", "unsupported length"),
    ],
)
def test_der_reader_is_strict(data: bytes, reason: str) -> None:
    with pytest.raises(der.DERError, match=reason):
        der.parse(data)


def test_der_values() -> None:
    assert der.oid(der.parse(PSS_OID)) == pss.RSASSA_PSS
    assert der.oid(der.parse(bytes.fromhex("0603550403"))) == "2.5.4.3"
    assert der.oid(der.parse(bytes.fromhex("06028837"))) == "2.999"
    with pytest.raises(der.DERError):
        der.oid(der.parse(bytes.fromhex("0603808001")))  # arc with a leading 0x80
    with pytest.raises(der.DERError):
        der.oid(der.parse(bytes.fromhex("06022a86")))  # arc cut short
    assert der.integer(der.parse(b"\x02\x02\x00\x80")) == 128
    with pytest.raises(der.DERError, match="shortest"):
        der.integer(der.parse(b"\x02\x02\x00\x01"))
    assert der.parse(der.encode(der.OCTET_STRING, b"\x01" * 300)).value == b"\x01" * 300


def test_pkcs1_and_non_pss_spkis_are_left_as_they_are() -> None:
    key = rsa_key().public_key()
    for data in (
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1),
        key.public_bytes(serialization.Encoding.DER, SPKI),
        b"not DER",
    ):
        assert pss.from_spki(key, data) is key
        assert pss.from_private_key_info(key, data) is key


def test_spki_of_a_pss_private_key_is_the_one_openssl_derives() -> None:
    key = _load("rsa-pss-sha384.pem").public_key
    spki = key.public_bytes(serialization.Encoding.DER, SPKI)
    assert b64url(hashlib.sha256(spki).digest()) == FILES["rsa-pss-sha384.pem"]["kid_kubernetes"]


# Hostile bytes reach the walkers only after cryptography accepted them, but the walkers
# must stand on their own: a KeyLoadError (or the plain key), never another exception.

_SEEDS = {
    name: base64.b64decode(b"".join((FOLDER / name).read_bytes().splitlines()[1:-1]))
    for name in ("rsa-pss-sha384.pub.pem", "rsa-pss-sha384.pem", "rsa-pss-sha384-encrypted.pem")
}
_PLAIN = _numbers("rsa-pss-sha384").public_key()


@st.composite
def _mutated(draw: st.DrawFn, seed: str) -> bytes:
    data = bytearray(_SEEDS[seed])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, min(len(data) - 1, 120)))  # the algorithm is near the start
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300)
@given(data=_mutated("rsa-pss-sha384.pub.pem"))
def test_mutated_spki_gives_a_key_or_a_reason(data: bytes) -> None:
    try:
        key = pss.from_spki(_PLAIN, data)
    except KeyLoadError:
        return
    if isinstance(key, RSAPSSPublicKey):
        with contextlib.suppress(KeyLoadError):
            key.algs()


@settings(max_examples=300)
@given(data=_mutated("rsa-pss-sha384.pem"))
def test_mutated_private_key_info_gives_a_key_or_a_reason(data: bytes) -> None:
    with contextlib.suppress(KeyLoadError):
        pss.from_private_key_info(_PLAIN, data)


@settings(max_examples=60)
@given(data=_mutated("rsa-pss-sha384-encrypted.pem"))
def test_mutated_encrypted_key_gives_plaintext_or_a_reason(data: bytes) -> None:
    with contextlib.suppress(KeyLoadError):
        pbe.decrypt(data, PASS)


_PEMS = sorted(
    FOLDER / name
    for name in ("rsa-pss-sha384.pub.pem", "rsa-pss-sha384.pem", "rsa-pss-sha384-cert.pem")
)


@st.composite
def _mutated_pem(draw: st.DrawFn) -> bytes:
    """One of the PSS files with a few octets of its DER changed, re-encoded as PEM."""
    path = draw(st.sampled_from(_PEMS))
    lines = path.read_bytes().splitlines()
    data = bytearray(base64.b64decode(b"".join(lines[1:-1])))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, min(len(data) - 1, 240)))
        data[at] = draw(st.integers(0, 255))
    body = base64.encodebytes(bytes(data))
    return lines[0] + b"\n" + body + lines[-1] + b"\n"


@settings(max_examples=150)
@given(data=_mutated_pem())
def test_mutated_pss_pem_gives_a_key_or_a_reason(data: bytes) -> None:
    try:
        loaded = parse_pem(data, lambda: PASS)
    except KeyLoadError:
        return
    with contextlib.suppress(KeyLoadError):
        public_jwk(loaded.public_key, kid_method="kubernetes")
    describe(loaded)


def test_an_issuer_name_of_the_wrong_string_type_is_a_reason_not_a_traceback() -> None:
    """Found by the mutation test above: one octet makes an issuer attribute a BitString,
    and cryptography raises TypeError for it, not ValueError."""
    loaded = parse_pem(
        (DATA / "keys" / "mutated" / "rsa-pss-cert-unreadable-issuer.pem").read_bytes(),
        lambda: PASS,
    )
    assert describe(loaded)["certificates"][0]["issuer"] == "(cannot be read)"
    jwk = public_jwk(loaded.public_key, kid_method="kubernetes")
    with pytest.raises(KeyLoadError, match="subject or issuer that cannot be read"):
        with_certificates(jwk, loaded.certificates)
