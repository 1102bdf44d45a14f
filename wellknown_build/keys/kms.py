"""Public keys of AWS KMS signing keys, whose private halves never leave KMS.

GetPublicKey returns the key as DER SubjectPublicKeyInfo with its KeySpec, KeyUsage and
SigningAlgorithms (docs.aws.amazon.com/kms/latest/APIReference/API_GetPublicKey.html). The
SPKI is read exactly as a PEM public key would be; the other fields decide which JWS algs the
key may publish. Each distinct key is fetched once per run, concurrently, through one boto3
client per region (the region of a key ARN, else the usual AWS settings); botocore honours
AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..errors import AlgError, KeyLoadError, shown

WORKERS = 8
# A key ARN or alias ARN (its region is the one asked), an alias name, or a key id (a UUID,
# or mrk- and one for a multi-Region key): what GetPublicKey's KeyId takes.
KEY_ID_PATTERN = (
    r"^(?:arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(?:key|alias)/[A-Za-z0-9/_-]+"
    r"|alias/[A-Za-z0-9/_-]+"
    r"|(?:mrk-)?[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12})$"
)
_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):")

# KMS signing algorithm -> JWS alg (RFC 7518 §3.1, RFC 8812 for secp256k1, RFC 8037).
_RSA_ALGS = {
    "RSASSA_PKCS1_V1_5_SHA_256": "RS256",
    "RSASSA_PKCS1_V1_5_SHA_384": "RS384",
    "RSASSA_PKCS1_V1_5_SHA_512": "RS512",
    "RSASSA_PSS_SHA_256": "PS256",
    "RSASSA_PSS_SHA_384": "PS384",
    "RSASSA_PSS_SHA_512": "PS512",
}


@dataclass(frozen=True)
class _Spec:
    kind: type
    size: int | str  # RSA modulus bits, or the EC curve's name
    algs: dict[str, str]


# The key specs that sign with a JWS algorithm. ECC_NIST_EDWARDS25519's ED25519_SHA_512 is
# pure Ed25519 (EdDSA); ED25519_PH_SHA_512 (Ed25519ph) has no JWS name. SM2 and ML-DSA
# have none either.
SPECS: dict[str, _Spec] = {
    "RSA_2048": _Spec(rsa.RSAPublicKey, 2048, _RSA_ALGS),
    "RSA_3072": _Spec(rsa.RSAPublicKey, 3072, _RSA_ALGS),
    "RSA_4096": _Spec(rsa.RSAPublicKey, 4096, _RSA_ALGS),
    "ECC_NIST_P256": _Spec(ec.EllipticCurvePublicKey, "secp256r1", {"ECDSA_SHA_256": "ES256"}),
    "ECC_NIST_P384": _Spec(ec.EllipticCurvePublicKey, "secp384r1", {"ECDSA_SHA_384": "ES384"}),
    "ECC_NIST_P521": _Spec(ec.EllipticCurvePublicKey, "secp521r1", {"ECDSA_SHA_512": "ES512"}),
    "ECC_SECG_P256K1": _Spec(ec.EllipticCurvePublicKey, "secp256k1", {"ECDSA_SHA_256": "ES256K"}),
    "ECC_NIST_EDWARDS25519": _Spec(ed25519.Ed25519PublicKey, "", {"ED25519_SHA_512": "EdDSA"}),
}

_EXPLAIN = {
    "NotFoundException": "no such KMS key (check the key id or alias, and the region)",
    "AccessDeniedException": "access denied: the credentials need kms:GetPublicKey on this key",
    "DisabledException": (
        "the KMS key is disabled, and KMS refuses GetPublicKey for it: enable it while it is "
        "published, or publish its public key from a PEM file instead (aws kms get-public-key)"
    ),
    "KMSInvalidStateException": (
        "the KMS key's state refuses GetPublicKey (pending deletion?): cancel the deletion "
        "while it is published, or publish its public key from a PEM file instead"
    ),
    "UnsupportedOperationException": "the KMS key is symmetric: it has no public key",
    "InvalidArnException": "KMS says the ARN is not valid",
    "KeyUnavailableException": "the KMS key is unavailable (its custom key store is disconnected)",
}


@dataclass(frozen=True)
class KmsKey:
    """What GetPublicKey said about one key, as asked for by `key_id`."""

    key_id: str
    arn: str
    spki: bytes
    key_spec: str
    key_usage: str
    signing_algorithms: tuple[str, ...]

    @property
    def digest(self) -> str:
        """Everything the published JWK depends on: a key behind an alias that now points
        elsewhere, or a key whose algorithms changed, changes it."""
        text = "\0".join(
            [self.key_id, self.key_spec, self.key_usage, *sorted(self.signing_algorithms)]
        )
        return hashlib.sha256(text.encode("utf-8") + b"\0" + self.spki).hexdigest()


def region_of(key_id: str) -> str | None:
    """The region a key ARN or alias ARN names; None for a bare key id or alias."""
    found = _ARN_REGION.match(key_id)
    return found.group(1) if found else None


def _describe(error: Exception) -> str:
    import botocore.exceptions as bx

    if isinstance(error, bx.ClientError):
        code = str(error.response.get("Error", {}).get("Code", "Unknown"))
        message = str(error.response.get("Error", {}).get("Message", "")) or "no message"
        return f"KMS GetPublicKey: {code}: {_EXPLAIN.get(code, message)}"
    if isinstance(error, bx.NoCredentialsError):
        return (
            "KMS GetPublicKey: no AWS credentials found in the default chain (env, profile, role)"
        )
    if isinstance(error, bx.NoRegionError):
        return (
            "KMS GetPublicKey: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, a "
            "profile's region), or name the key by its ARN"
        )
    if isinstance(error, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return f"KMS GetPublicKey: cannot reach the KMS endpoint ({error})"
    return f"KMS GetPublicKey: {error}"


def _clients(regions: Iterable[str | None]) -> dict[str | None, Any]:
    """One client per region, made here on one thread (making clients is not thread-safe;
    using one is)."""
    import boto3
    import botocore.config

    config = botocore.config.Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=30,
        max_pool_connections=WORKERS,
    )
    session = boto3.session.Session()
    return {region: session.client("kms", region_name=region, config=config) for region in regions}


def _fetch(client: Any, key_id: str) -> KmsKey:
    answer = client.get_public_key(KeyId=key_id)
    spki = answer.get("PublicKey")
    if not isinstance(spki, bytes) or not spki:
        raise KeyLoadError("KMS GetPublicKey returned no public key")
    algorithms = answer.get("SigningAlgorithms") or []
    return KmsKey(
        key_id=key_id,
        arn=_text(answer.get("KeyId")) or key_id,
        spki=spki,
        # moto and older answers carry only the deprecated CustomerMasterKeySpec.
        key_spec=_text(answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")),
        key_usage=_text(answer.get("KeyUsage")),
        signing_algorithms=tuple(_text(a) for a in algorithms if a),
    )


def _text(value: object) -> str:
    """A value of the answer as messages and reports may show it: printable ASCII, else its
    repr (an answer is input like any other)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and value.isascii() and value.isprintable():
        return value
    return shown(value).encode("ascii", "backslashreplace").decode("ascii")


def fetch_all(key_ids: Iterable[str]) -> dict[str, KmsKey | KeyLoadError]:
    """Each distinct key once, concurrently; a failure is the key's KeyLoadError, so that
    every instance listing it reports it."""
    import botocore.exceptions as bx

    wanted = sorted(set(key_ids))
    if not wanted:
        return {}
    results: dict[str, KmsKey | KeyLoadError] = {}
    try:
        clients = _clients({region_of(k) for k in wanted})
    except (bx.BotoCoreError, ValueError) as e:  # a bad profile, a bad endpoint URL
        error = KeyLoadError(_describe(e))
        return dict.fromkeys(wanted, error)

    def one(key_id: str) -> KmsKey | KeyLoadError:
        try:
            return _fetch(clients[region_of(key_id)], key_id)
        except (bx.BotoCoreError, bx.ClientError) as e:
            return KeyLoadError(_describe(e))
        except KeyLoadError as e:
            return e

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(wanted))) as pool:
        results.update(zip(wanted, pool.map(one, wanted), strict=True))
    return results


def public_key(fetched: KmsKey) -> PublicKeyTypes:
    """The SPKI as a public key, after checking that KMS says it signs and that the key is
    the one its KeySpec names (an answer is input like any other)."""
    if fetched.key_usage != "SIGN_VERIFY":
        raise KeyLoadError(
            f"KMS key usage is {fetched.key_usage or 'missing'}, not SIGN_VERIFY: "
            "only signing keys are published"
        )
    spec = SPECS.get(fetched.key_spec)
    if spec is None:
        known = ", ".join(SPECS)
        raise KeyLoadError(
            f"KMS key spec {fetched.key_spec or 'missing'} has no JWS algorithm "
            f"(supported: {known})"
        )
    try:
        key = serialization.load_der_public_key(fetched.spki)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyLoadError("KMS returned a public key that is not a valid SPKI") from None
    canonical = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if canonical != fetched.spki:
        raise KeyLoadError("KMS returned a public key that is not canonical DER SPKI")
    if not isinstance(key, spec.kind) or _size(key) != spec.size:
        raise KeyLoadError(f"KMS returned a public key that is not a {fetched.key_spec} key")
    return key


def _size(key: PublicKeyTypes) -> int | str:
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name
    return ""


def algs(fetched: KmsKey) -> tuple[str, ...]:
    """The JWS algs KMS lists for the key, in the order of its spec's table."""
    spec = SPECS.get(fetched.key_spec)
    table = spec.algs if spec else {}
    listed = set(fetched.signing_algorithms)
    return tuple(alg for name, alg in table.items() if name in listed)


def check_alg(fetched: KmsKey, alg: str) -> None:
    """An alg that fits the key but that KMS will not sign with is an AlgError too."""
    allowed = algs(fetched)
    if alg not in allowed:
        listed = ", ".join(fetched.signing_algorithms) or "none"
        raise AlgError(
            f"{alg} is not among the signing algorithms KMS lists for this key ({listed}; "
            f"as JWS algs: {', '.join(allowed) or 'none'})"
        )
