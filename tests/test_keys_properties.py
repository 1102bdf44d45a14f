"""Rules that must hold for every key: exact lengths, round trips, no private members."""

from __future__ import annotations

import base64
import json
import re

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk as jwcrypto_jwk

from wellknown_build.errors import KeyLoadError
from wellknown_build.keys import parse_pem, public_jwk
from wellknown_build.keys.b64 import b64url_decode, uint_minimal
from wellknown_build.keys.pem import _blocks, _der

from .helpers import private_pem, rsa_key

CURVES = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
ALLOWED = {
    "RSA": {"use", "kty", "kid", "alg", "n", "e"},
    "EC": {"use", "kty", "kid", "alg", "crv", "x", "y"},
    "OKP": {"use", "kty", "kid", "alg", "crv", "x"},
}
PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _through_private_pem(key: object) -> dict[str, str]:
    """Render from the private PEM, the input that could leak."""
    loaded = parse_pem(private_pem(key), lambda: None)  # type: ignore[arg-type]
    return public_jwk(loaded.public_key).as_dict()


def _check_with_jwcrypto(jwk: dict[str, str]) -> None:
    other = jwcrypto_jwk.JWK(**jwk)
    assert not other.has_private
    assert other.thumbprint() == jwk["kid"]


@settings(max_examples=150, deadline=None)
@given(crv=st.sampled_from(sorted(CURVES)), data=st.data())
def test_ec_coordinates_are_padded(crv: str, data: st.DataObject) -> None:
    curve, size = CURVES[crv]
    # Any scalar below 2^(bits-1) is below the group order of these curves.
    scalar = data.draw(st.integers(min_value=1, max_value=2 ** (curve.key_size - 1)))
    key = ec.derive_private_key(scalar, curve)
    jwk = _through_private_pem(key)
    assert set(jwk) == ALLOWED["EC"]
    assert len(b64url_decode(jwk["x"])) == size
    assert len(b64url_decode(jwk["y"])) == size
    numbers = key.public_key().public_numbers()
    assert int.from_bytes(b64url_decode(jwk["x"]), "big") == numbers.x
    assert int.from_bytes(b64url_decode(jwk["y"]), "big") == numbers.y
    _check_with_jwcrypto(jwk)


def test_short_p256_coordinate_is_padded() -> None:
    """Search the first scalars for a point whose x has a leading zero octet, then check it."""
    for scalar in range(1, 5000):
        key = ec.derive_private_key(scalar, ec.SECP256R1())
        if key.public_key().public_numbers().x < 1 << 248:
            break
    else:
        raise AssertionError("no short coordinate among the first scalars")
    jwk = _through_private_pem(key)
    assert b64url_decode(jwk["x"])[0] == 0
    assert len(b64url_decode(jwk["x"])) == 32


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32))
def test_ed25519(seed: bytes) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    jwk = _through_private_pem(key)
    assert set(jwk) == ALLOWED["OKP"]
    assert len(b64url_decode(jwk["x"])) == 32
    assert jwk["alg"] == "EdDSA"
    _check_with_jwcrypto(jwk)


@settings(max_examples=30, deadline=None)
@given(seed=st.binary(min_size=57, max_size=57))
def test_ed448(seed: bytes) -> None:
    key = ed448.Ed448PrivateKey.from_private_bytes(seed)
    jwk = _through_private_pem(key)
    assert len(b64url_decode(jwk["x"])) == 57
    _check_with_jwcrypto(jwk)


@settings(max_examples=300)
@given(value=st.integers(min_value=1, max_value=1 << 4200))
def test_uint_minimal(value: int) -> None:
    raw = b64url_decode(uint_minimal(value))
    assert raw[0] != 0
    assert int.from_bytes(raw, "big") == value
    assert "=" not in uint_minimal(value)


def test_rsa_sizes_are_exact() -> None:
    for bits in (2048, 3072, 4096):
        key = rsa_key(bits)
        jwk = _through_private_pem(key)
        assert set(jwk) == ALLOWED["RSA"]
        n = b64url_decode(jwk["n"])
        assert len(n) == bits // 8 and n[0] != 0
        numbers = key.public_key().public_numbers()
        back = rsa.RSAPublicNumbers(
            int.from_bytes(b64url_decode(jwk["e"]), "big"), int.from_bytes(n, "big")
        )
        assert back == numbers
        _check_with_jwcrypto(jwk)


def test_no_private_member_ever() -> None:
    for key in (
        rsa_key(),
        ec.generate_private_key(ec.SECP521R1()),
        ed448.Ed448PrivateKey.generate(),
    ):
        jwk = _through_private_pem(key)
        assert not PRIVATE & set(jwk)
        assert '"d"' not in json.dumps(jwk)


# --- the PEM scanner against RFC 7468's strict grammar ---------------------------------------

_LABEL = rb"(?:[\x21-\x2c\x2e-\x7e](?:[- ]?[\x21-\x2c\x2e-\x7e])*)?"  # RFC 7468 §3 `label`
_B64 = rb"[A-Za-z0-9+/]"
_EOL = rb"(?:\r\n|\r|\n)"
_AT_LINE_START = rb"(?<![^\r\n])"
# stricttextualmsg (RFC 7468 §3), the posteb's eol optional at the end of the file.
STRICT = re.compile(
    _AT_LINE_START
    + rb"-----BEGIN (?P<label>"
    + _LABEL
    + rb")-----"
    + _EOL
    + rb"(?P<body>(?:"
    + _B64
    + rb"{64}"
    + _EOL
    + rb")*(?:"
    + _B64
    + rb"{4}){0,15}(?:"
    + _B64
    + rb"{4}|"
    + _B64
    + rb"{3}=|"
    + _B64
    + rb"{2}==)"
    + _EOL
    + rb")-----END (?P=label)-----(?="
    + _EOL
    + rb"|\Z)"
)
BOUNDARY_LINE = re.compile(_AT_LINE_START + rb"-----(?:BEGIN|END)")
EOLS = st.sampled_from([b"\n", b"\r\n", b"\r"])
LABELS = st.sampled_from(
    [b"CERTIFICATE", b"PUBLIC KEY", b"X9.42 DH PARAMETERS", b"NEW CERTIFICATE REQUEST", b"A-B", b""]
) | st.from_regex(re.compile(_LABEL + rb"\Z"), fullmatch=True)


def _reference(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The strict blocks, or None when a BEGIN or END line is not part of one."""
    matches = list(STRICT.finditer(data))
    accounted = {m.start() for m in matches} | {m.end("body") for m in matches}
    if any(line.start() not in accounted for line in BOUNDARY_LINE.finditer(data)):
        return None
    return [(m["label"], base64.b64decode(b"".join(m["body"].split()))) for m in matches]


def _scanned(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """What parse_pem sees: each block's label and DER, or None for a refusal."""
    try:
        return [(label, _der(label, body)) for label, body, _ in _blocks(data)]
    except KeyLoadError:
        return None


@st.composite
def _pem_files(draw: st.DrawFn) -> bytes:
    """Strict blocks among explanatory text, with hostile pieces: lone BEGIN or END lines,
    truncated blocks, mismatched END labels, junk after an END, a truncated file."""
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 5))):
        label = draw(LABELS)
        body = base64.b64encode(draw(st.binary(min_size=1, max_size=120)))
        body_lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
        piece = draw(
            st.sampled_from(
                ["block"] * 3 + ["text"] * 2 + ["begin", "end", "truncated", "mismatched", "junk"]
            )
        )
        if piece == "block":
            lines += [begin, *body_lines, end]
        elif piece == "text":  # never base64 alone, never a boundary
            lines.append(
                b"#" + draw(st.binary(max_size=30)).replace(b"\r", b"").replace(b"\n", b"")
            )
        elif piece == "begin":
            lines.append(begin)
        elif piece == "end":
            lines.append(end)
        elif piece == "truncated":
            lines += [begin, *body_lines[: draw(st.integers(0, len(body_lines) - 1))]]
        elif piece == "mismatched":
            other = draw(LABELS.filter(label.__ne__))
            lines += [begin, *body_lines, b"-----END " + other + b"-----"]
        else:
            junk = draw(st.binary(min_size=1, max_size=8).filter(lambda j: j[:1] not in b" \t\r\n"))
            lines += [begin, *body_lines, end + junk]
    data = b"".join(line + draw(EOLS) for line in lines)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=600)
@given(data=_pem_files())
def test_pem_scanner_finds_the_strict_blocks(data: bytes) -> None:
    """Exactly the blocks of RFC 7468's strict grammar; any BEGIN or END line outside them
    is refused, never skipped (a chain must not shrink silently)."""
    assert _scanned(data) == _reference(data)
