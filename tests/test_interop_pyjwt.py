"""Real tokens, verified by PyJWT's PyJWKClient and node jose's createRemoteJWKSet over HTTP,
against the rendered tree served by `serve` on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from wellknown_build.commands.render import render
from wellknown_build.commands.serve import PreviewServer

from .helpers import (
    DEFAULT_ALGS,
    KEY_MAKERS,
    PrivateKeyTypes,
    private_pem,
    running,
    write,
    write_config,
)

Served = tuple[PreviewServer, dict[str, tuple[PrivateKeyTypes, str]]]
EXTRA = {"rsa2048-ps256": ("rsa2048", "PS256")}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One issuer per key type, each with its private key kept for signing."""
    folder = tmp_path_factory.mktemp("interop")
    signers = {}
    lines = ["instances:"]
    cases = {name: (name, DEFAULT_ALGS[name]) for name in KEY_MAKERS} | EXTRA
    for case, (maker, alg) in cases.items():
        key = KEY_MAKERS[maker]()
        write(folder / "keys" / f"{case}.pem", private_pem(key))
        signers[case] = (key, alg)
        lines.append(
            f"  - {{id: {case}, issuer: 'https://idp.example/{case}', "
            f"keys: [{{path: keys/{case}.pem, alg: {alg}}}]}}"
        )
    # A second key in one set, so the client must pick by kid.
    write(folder / "keys" / "decoy.pem", private_pem(KEY_MAKERS["p256"]()))
    lines[1] = lines[1].replace("keys: [", "keys: [{path: keys/decoy.pem}, ")
    render(write_config(folder, "\n".join(lines) + "\n"), folder / "out")
    with running(folder / "out") as server:
        yield server, signers


@pytest.mark.parametrize("case", sorted({*KEY_MAKERS, *EXTRA}))
def test_pyjwt_verifies_every_key_type(served: Served, case: str) -> None:
    server, signers = served
    issuer = f"https://idp.example/{case}"
    discovery_url = f"{server.base_url}/idp.example/{case}/.well-known/openid-configuration"
    with urllib.request.urlopen(discovery_url, timeout=5) as response:
        discovery = json.load(response)
        assert response.headers["Content-Type"] == "application/json"
    assert discovery["issuer"] == issuer
    # The CDN's https://host/... becomes the preview server's /host/... on loopback.
    jwks_url = discovery["jwks_uri"].replace("https://", f"{server.base_url}/")
    key, alg = signers[case]
    client = jwt.PyJWKClient(jwks_url, cache_keys=False)
    kid = next(k["kid"] for k in client.fetch_data()["keys"] if k["alg"] == alg)
    now = int(time.time())
    token = jwt.encode(
        {"iss": issuer, "sub": "user", "aud": "api", "iat": now, "exp": now + 60},
        key,
        algorithm=alg,
        headers={"kid": kid},
    )
    signing_key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=[alg], audience="api", issuer=issuer)
    assert claims["sub"] == "user"
    # A token from a key that is not published must not verify.
    maker = case.split("-")[0]
    stranger = rsa.generate_private_key(65537, 2048) if maker == "rsa2048" else KEY_MAKERS[maker]()
    forged = jwt.encode({"iss": issuer}, stranger, algorithm=alg, headers={"kid": kid})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            forged,
            client.get_signing_key_from_jwt(forged).key,
            algorithms=[alg],
            issuer=issuer,
            options={"verify_aud": False},
        )


INTEROP = Path(__file__).parent / "interop"


@pytest.fixture(scope="session")
def node_jose() -> Path:
    """node jose from npm, installed by the test setup (package-lock.json pins it)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the jose interop test")
    if not (INTEROP / "node_modules" / "jose").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(INTEROP)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return INTEROP / "verify.mjs"


def _token(issuer: str, key: PrivateKeyTypes, alg: str, kid: str) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": "user", "iat": now, "exp": now + 60}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_node_jose_verifies_every_key_type(served: Served, node_jose: Path) -> None:
    server, signers = served
    cases = []
    for case, (key, alg) in sorted(signers.items()):
        issuer = f"https://idp.example/{case}"
        jwks_url = f"{server.base_url}/idp.example/{case}/.well-known/jwks.json"
        with urllib.request.urlopen(jwks_url, timeout=5) as response:
            kid = next(k["kid"] for k in json.load(response)["keys"] if k["alg"] == alg)
        cases.append(
            {
                "name": case,
                "jwks_url": jwks_url,
                "token": _token(issuer, key, alg, kid),
                "issuer": issuer,
                "alg": alg,
            }
        )
        stranger = (
            rsa.generate_private_key(65537, 2048)
            if case.startswith("rsa")
            else KEY_MAKERS[case.split("-")[0]]()
        )
        forged = _token(issuer, stranger, alg, kid)
        cases.append({**cases[-1], "name": f"{case} forged", "token": forged})
    result = subprocess.run(
        ["node", str(node_jose)],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    verdicts = json.loads(result.stdout)
    # jose 6 implements EdDSA for Ed25519 only: it skips Ed448 keys, so a set of Ed448 keys
    # verifies nothing there (README, relying parties).
    assert verdicts.pop("ed448").startswith("ERR_JWKS_NO_MATCHING_KEY")
    verdicts.pop("ed448 forged")
    for case in set(signers) - {"ed448"}:
        assert verdicts[case] == "ok", (case, verdicts[case])
        assert verdicts[f"{case} forged"].startswith("ERR_JWS_SIGNATURE_VERIFICATION_FAILED"), (
            verdicts[f"{case} forged"]
        )
