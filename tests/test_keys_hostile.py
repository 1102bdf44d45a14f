"""Hostile key inputs: paths that are not files, broken PEM, impossible keys, odd passphrases.

Each ends in a KeyLoadError with a reason, never a hang or a traceback. The files in
data/keys/forms were written by OpenSSL 3.0 (`openssl dsaparam -genkey`, `openssl genpkey`
with DH and DHX parameters, `openssl genrsa -traditional -aes128` with passphrase
inspect-test) and by tests.helpers (p256-chain.pem: leaf, then its CA).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wellknown_build.errors import KeyLoadError
from wellknown_build.files import KEY_LIMIT
from wellknown_build.keys import load_key_file, parse_pem, passphrase_from_env, public_jwk
from wellknown_build.keys import rsa as rsa_jwk
from wellknown_build.keys.describe import describe
from wellknown_build.keys.x509 import with_certificates

from .helpers import DATA, KEY_MAKERS, PEM, certificate, certificate_pem, public_pem, rsa_key

FORMS = DATA / "keys" / "forms"
PASS = b"inspect-test"
SEEDS = sorted((DATA / "keys").glob("*.pem")) + sorted(FORMS.glob("*.pem"))

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")


def _error_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What `call` raised, or None; fails the test instead of hanging when it blocks."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # handed to the test thread
            outcome.append(e)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still reading after {seconds} s"
    return outcome[0]


def _not_a_file(kind: str, tmp_path: Path) -> Path:
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(tmp_path / "key.pem")
    elif kind == "folder":
        (tmp_path / "key.pem").mkdir()
    elif kind == "too-large":
        (tmp_path / "key.pem").write_bytes(b"A" * (2 * KEY_LIMIT))
    elif kind != "missing":
        device = Path("/dev") / kind
        if not device.exists():
            pytest.skip(f"no {device} here")
        return device
    return tmp_path / "key.pem"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "key file not found"),
        ("zero", "key file is not a regular file (a device, FIFO or socket)"),
        ("urandom", "key file is not a regular file (a device, FIFO or socket)"),
        ("fifo", "key file is not a regular file (a device, FIFO or socket)"),
        ("folder", "key file is a folder, not a file"),
        ("too-large", "key file is larger than 1 MiB"),
    ],
)
def test_key_path_that_is_not_a_key_file(kind: str, reason: str, tmp_path: Path) -> None:
    """The reason only: callers add the file, so the message must not repeat the path."""
    path = _not_a_file(kind, tmp_path)
    error = _error_within(10, lambda: load_key_file(path, lambda: None))
    assert isinstance(error, KeyLoadError)
    assert str(error) == reason
    assert path.name not in str(error)


def test_key_path_with_a_nul_byte() -> None:
    error = _error_within(10, lambda: load_key_file(Path("keys/a\0.pem"), lambda: None))
    assert isinstance(error, KeyLoadError)
    assert "a.pem" not in str(error)


# --- PEM structure -----------------------------------------------------------------------


def _chain() -> bytes:
    return (FORMS / "p256-chain.pem").read_bytes()


def _refused(data: bytes, passphrase: bytes | None = None) -> str:
    with pytest.raises(KeyLoadError) as caught:
        parse_pem(data, lambda: passphrase)
    return str(caught.value)


def test_a_truncated_second_certificate_is_an_error() -> None:
    """Before: the chain silently shrank to its leaf, and x5c with it."""
    chain = _chain()
    cut = chain[: chain.rindex(b"-----END")]
    second = chain[: chain.rindex(b"-----BEGIN")].count(b"\n") + 1
    assert parse_pem(chain, lambda: None).certificates[1:]
    assert _refused(cut) == f"the CERTIFICATE block that starts at line {second} has no END line"
    assert "has no END line" in _refused(cut.replace(b"\n", b"\r\n"))


def test_a_nested_begin_is_an_error() -> None:
    chain = _chain()
    second = chain.rindex(b"-----BEGIN")
    nested = chain[:second] + chain[second:].replace(b"-----END", b"-----BEGIN", 1)
    line = chain[:second].count(b"\n") + 1
    assert _refused(nested) == f"the CERTIFICATE block that starts at line {line} has no END line"


def test_an_end_label_that_does_not_match() -> None:
    data = public_pem(KEY_MAKERS["p256"]()).replace(b"END PUBLIC KEY", b"END PRIVATE KEY")
    assert _refused(data) == (
        "the PUBLIC KEY block that starts at line 1 ends with END PRIVATE KEY at line 4"
    )


def test_an_end_line_without_its_begin() -> None:
    data = public_pem(KEY_MAKERS["p256"]())
    assert _refused(data + b"-----END PUBLIC KEY-----\n") == (
        "the END PUBLIC KEY line at line 5 has no BEGIN line"
    )
    assert "has no BEGIN line" in _refused(data[data.index(b"\n") + 1 :])


@pytest.mark.parametrize(
    "line", [b"-----BEGIN PUBLIC KEY", b"-----BEGIN PUBLIC KEY-----junk", b"-----BEGIN a--b-----"]
)
def test_a_broken_begin_line(line: bytes) -> None:
    data = public_pem(KEY_MAKERS["p256"]())
    assert _refused(line + b"\n" + data) == "line 1 is not a valid BEGIN line"


def test_text_outside_blocks_is_allowed() -> None:
    """RFC 7468 §5.2: explanatory text before, between and after blocks, as openssl writes."""
    leaf, ca = _chain().split(b"-----END CERTIFICATE-----\n", 1)
    data = (
        b"Certificate:\n    Data: see -----BEGIN CERTIFICATE----- below\n"
        + leaf
        + b"-----END CERTIFICATE-----\nsubject=CN=ca.example\n\n"
        + ca
        + b"trailing words\r\n\x00\xff"
    )
    assert len(parse_pem(data, lambda: None).certificates) == 2


def test_labels_with_hyphens_and_spaces() -> None:
    """RFC 7468 §3 labels; the label is only a hint, the content decides."""
    spki = public_pem(KEY_MAKERS["p256"]())
    expected = public_jwk(parse_pem(spki, lambda: None).public_key)
    for label in (b"NEW-PUBLIC KEY", b"X9.42 PUBLIC-KEY", b"a-b c"):
        relabelled = spki.replace(b"PUBLIC KEY", label)
        assert public_jwk(parse_pem(relabelled, lambda: None).public_key) == expected


def test_line_lengths_and_endings_are_lax() -> None:
    """Other writers wrap base64 at 76 or not at all, and end lines with CRLF or CR."""
    spki = public_pem(KEY_MAKERS["p256"]())
    body = base64.b64encode(
        serialization.load_pem_public_key(spki).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    expected = public_jwk(parse_pem(spki, lambda: None).public_key)
    for width in (76, len(body)):
        lines = [body[i : i + width] for i in range(0, len(body), width)]
        for eol in (b"\n", b"\r\n", b"\r"):
            data = eol.join([b"-----BEGIN PUBLIC KEY-----  ", *lines, b"-----END PUBLIC KEY-----"])
            assert public_jwk(parse_pem(data, lambda: None).public_key) == expected


def test_legacy_encrypted_with_cr_line_endings() -> None:
    data = (FORMS / "rsa2048-legacy-encrypted.pem").read_bytes()
    for eol in (b"\r\n", b"\r"):
        loaded = parse_pem(data.replace(b"\n", eol), lambda: PASS)
        assert loaded.source == "private"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"03C924973BE34615AABEB7A3B4A1A6B5", b"03C924973BE34615", "broken IV"),
        (b"03C924973BE34615AABEB7A3B4A1A6B5", b"03C924973BE34615AABEB7A3B4A1A6", "broken IV"),
        (b"03C924973BE34615AABEB7A3B4A1A6B5", b"zz", "broken IV"),
        (b"AES-128-CBC", b"DES-CBC", "unsupported cipher"),
        (b"DEK-Info", b"DEK-Inf0", "one DEK-Info header"),
    ],
)
def test_legacy_encrypted_with_a_broken_dek_info(old: bytes, new: bytes, message: str) -> None:
    """A short IV made cryptography panic: a PanicException, which is not even an Exception."""
    data = (FORMS / "rsa2048-legacy-encrypted.pem").read_bytes()
    assert message in _refused(data.replace(old, new), PASS)


# --- keys that cannot be valid ------------------------------------------------------------


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(raw)) + raw


def _der_length(length: int) -> bytes:
    if length < 128:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _pkcs1_public_pem(n: int, e: int) -> bytes:
    """RSAPublicKey (RFC 8017 A.1.1) by hand: cryptography refuses to build the bad ones."""
    body = _der_int(n) + _der_int(e)
    der = b"\x30" + _der_length(len(body)) + body
    return (
        b"-----BEGIN RSA PUBLIC KEY-----\n"
        + base64.encodebytes(der)
        + (b"-----END RSA PUBLIC KEY-----\n")
    )


EVEN_N = rsa_key().public_key().public_numbers().n + 1


def test_rsa_even_modulus_refused() -> None:
    crafted = rsa.RSAPublicNumbers(65537, EVEN_N).public_key()
    loaded = parse_pem(public_pem(crafted), lambda: None)
    with pytest.raises(
        KeyLoadError, match="this RSA public key cannot be valid: its modulus is even"
    ):
        public_jwk(loaded.public_key)
    assert describe(loaded)["publishable"] is False


@pytest.mark.parametrize("e", [1, 2, 65536])
def test_rsa_impossible_exponent_refused(e: int) -> None:
    """cryptography refuses these when it loads them; the JWK check would too."""
    n = rsa_key().public_key().public_numbers().n
    assert "not a key or certificate" in _refused(_pkcs1_public_pem(n, e))
    with pytest.raises(KeyLoadError, match=f"its exponent {e} is even or below 3"):
        rsa_jwk._check(rsa.RSAPublicNumbers(e, n))


def test_certificate_holding_an_impossible_rsa_key() -> None:
    """The certificate parses; its key only fails when asked for, which was a traceback."""
    der = certificate(rsa_key()).public_bytes(serialization.Encoding.DER)
    assert der.count(b"\x02\x03\x01\x00\x01") == 1  # e = 65537
    tampered = der.replace(b"\x02\x03\x01\x00\x01", b"\x02\x03\x01\x00\x00")
    data = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(tampered)
    assert "cannot be read" in _refused(data + b"-----END CERTIFICATE-----\n")


def test_certificate_with_a_broken_subject() -> None:
    """cryptography parses the subject only when asked: inspect and x5c gave a traceback."""
    data = (DATA / "keys" / "p256-cert.pem").read_bytes()
    der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    common_name = der.rindex(bytes.fromhex("0603550403"))  # the subject's CN, after the issuer's
    broken = der[: common_name + 5] + b"\x01" + der[common_name + 6 :]  # UTF8String -> BOOLEAN
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(broken)
    loaded = parse_pem(pem + b"-----END CERTIFICATE-----\n", lambda: None)
    assert describe(loaded)["certificates"][0]["subject"] == "(cannot be read)"
    with pytest.raises(KeyLoadError, match="certificate 1 in the file has a subject or issuer"):
        with_certificates(public_jwk(loaded.public_key), loaded.certificates)


# --- refused key types: named for what they are --------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dsa-with-parameters.pem", "DSA keys are not supported by JOSE relying parties"),
        ("dh-with-parameters.pem", "DH keys are key-agreement keys, not signing keys"),
        ("dhx-with-parameters.pem", "DH keys are key-agreement keys, not signing keys"),
        ("x25519.pem", "X25519 keys are key-agreement keys, not signing keys"),
    ],
)
def test_refused_types_are_named(name: str, message: str) -> None:
    """Whatever form the key comes in: with its parameters, private only, or public only."""
    data = (FORMS / name).read_bytes()
    private_only = data[data.index(b"-----BEGIN PRIVATE KEY") :]
    public_only = parse_pem(data, lambda: None).public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for form in (data, private_only, public_only):
        loaded = parse_pem(form, lambda: None)
        with pytest.raises(KeyLoadError, match=message):
            public_jwk(loaded.public_key)
        assert describe(loaded)["reason"].startswith(message)


@pytest.mark.parametrize("name", ["dsa-with-parameters.pem", "dh-with-parameters.pem"])
def test_refusing_a_deprecated_type_does_not_warn(name: str) -> None:
    """cryptography deprecates its DSA (51) and FFDH classes: touching them prints a warning
    on every run (and breaks a caller running with -W error). The refusal names the type
    without touching them."""
    script = (
        "import pathlib, sys\n"
        "from wellknown_build.keys import parse_pem, public_jwk\n"
        "from wellknown_build.errors import KeyLoadError\n"
        "try:\n"
        "    data = pathlib.Path(sys.argv[1]).read_bytes()\n"
        "    public_jwk(parse_pem(data, lambda: None).public_key)\n"
        "except KeyLoadError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(FORMS / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "keys are" in done.stdout


def test_dsa_traditional_private_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import dsa

    key = dsa.generate_private_key(1024)
    data = key.private_bytes(
        PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    with pytest.raises(KeyLoadError, match="DSA keys are not supported"):
        public_jwk(parse_pem(data, lambda: None).public_key)


def test_only_parameters() -> None:
    data = (FORMS / "dsa-with-parameters.pem").read_bytes()
    assert _refused(data[: data.index(b"-----BEGIN PRIVATE KEY")]) == (
        "no key found (only parameter blocks)"
    )


# --- passphrases ---------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="os.environb is POSIX only")
def test_passphrase_that_is_not_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"\xff\xfe latin-1 caf\xe9"
    monkeypatch.setitem(os.environb, b"WKB_TEST_RAW_PASS", secret)
    assert passphrase_from_env("WKB_TEST_RAW_PASS") == secret
    key = KEY_MAKERS["p256"]()
    data = key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(secret)
    )
    loaded = parse_pem(data, lambda: passphrase_from_env("WKB_TEST_RAW_PASS"))
    assert loaded.source == "private"


def test_passphrase_variable_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WKB_TEST_RAW_PASS", raising=False)
    with pytest.raises(
        KeyLoadError, match=r"WKB_TEST_RAW_PASS, named by passphrase_env, is not set"
    ):
        passphrase_from_env("WKB_TEST_RAW_PASS")
    monkeypatch.setenv("WKB_TEST_RAW_PASS", "")
    with pytest.raises(KeyLoadError, match="is not set"):
        passphrase_from_env("WKB_TEST_RAW_PASS")


# --- fuzz: mutated real PEM files ------------------------------------------------------------


def _mutations(data: bytes, draw: st.DrawFn) -> bytes:
    """Byte edits of the text, or edits of the DER inside one block (which reach the parsers)."""
    how = draw(st.sampled_from(["bytes", "der", "truncate", "splice"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "splice":
        other = draw(st.sampled_from(SEEDS)).read_bytes()
        return data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))) :]
    if how == "der":
        begin = data.find(b"-----\n") + 6
        end = data.find(b"\n-----END", begin)
        if begin < 6 or end < 0 or b":" in data[begin:end]:
            return data
        der = bytearray(base64.b64decode(b"".join(data[begin:end].split())))
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.integers(0, len(der) - 1))
            der[where] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(der)))
        return data[:begin] + base64.encodebytes(bytes(der[: max(cut, len(der) - 8)])) + data[end:]
    edited = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(edited)))
        edited[where:where] = draw(st.binary(min_size=0, max_size=4))
        del edited[where : where + draw(st.integers(0, 3))]
    return bytes(edited)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    return _mutations(draw(st.sampled_from(SEEDS)).read_bytes(), draw)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated())
def test_mutated_pem_gives_a_key_or_a_reason(data: bytes) -> None:
    try:
        loaded = parse_pem(data, lambda: PASS)
    except KeyLoadError:
        return
    try:
        jwk = public_jwk(loaded.public_key)
        if loaded.certificates:
            with_certificates(jwk, loaded.certificates)
    except KeyLoadError:
        pass
    describe(loaded)


def test_certificate_from_helpers_still_reads() -> None:
    """The fuzz seeds include a chain; a plain certificate stays the happy path."""
    loaded = parse_pem(certificate_pem(KEY_MAKERS["p256"]()), lambda: None)
    assert loaded.source == "certificate"
