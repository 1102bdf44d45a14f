"""Real tokens, verified by PyJWT's PyJWKClient over HTTP against the rendered tree on loopback."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from wellknown_build.commands import render
from wellknown_build.serve import PreviewServer, running

from .helpers import DEFAULT_ALGS, KEY_MAKERS, PrivateKeyTypes, private_pem, write, write_config

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
