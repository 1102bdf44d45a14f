"""What specific relying parties accept beyond the RFCs, as one table of rules with sources.

Adding a relying party is adding rows. Each check gets the instance, the JWKs it publishes
and its openid-configuration (parsed only for parties that read it), and returns what that
relying party would reject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import jsondoc
from .errors import Problem
from .keys import JWK
from .model import Instance
from .timing import describe

Document = Mapping[str, Any]
Check = Callable[[Instance, Sequence[JWK], Document], list[str]]

AWS_IAM = (
    "AWS IAM OIDC identity providers "
    "(docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html)"
)
AWS_APIGW = (
    "API Gateway HTTP API JWT authorizers "
    "(docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html)"
)
GCP_WIF = (
    "Google Cloud workload identity federation with OIDC providers "
    "(cloud.google.com/iam/docs/workload-identity-federation-with-other-providers)"
)
KUBERNETES = (
    "Kubernetes service-account issuer discovery (KEP-1393; kube-apiserver pkg/serviceaccount)"
)
AZURE_ENTRA = (
    "Microsoft Entra workload identity federation "
    "(learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust: the "
    "issuer URL, at most 600 characters, must match the token's iss exactly; RS256 tokens)"
)
VAULT_JWT = (
    "HashiCorp Vault JWT/OIDC auth (developer.hashicorp.com/vault/api-docs/auth/jwt: "
    "jwt_supported_algs defaults to RS256)"
)
OCI_APIGW = (
    "OCI API Gateway JWT authentication with remote JWKS "
    "(docs.oracle.com/iaas/Content/APIGateway/Tasks/apigatewayusingjwttokens.htm: at most 10 keys)"
)
JAVA_NIMBUS = (
    "Nimbus JOSE+JWT RemoteJWKSet (com.nimbusds.jose.jwk.source: DEFAULT_HTTP_SIZE_LIMIT "
    "51,200 bytes), used by Spring Security"
)
NODE_JOSE = "node jose createRemoteJWKSet (github.com/panva/jose: EdDSA means Ed25519 only)"
OIDC_STRICT = (
    "OpenID Connect Discovery 1.0 §3 (openid.net/specs/openid-connect-discovery-1_0.html), as "
    "strict clients read it: Nimbus OIDCProviderMetadata.parse, used by Spring Security"
)


@dataclass(frozen=True)
class Cache:
    seconds: int
    source: str


# How long relying parties keep a JWKS themselves, on top of HTTP caching. cache_ttl must
# cover it: a key dropped or added sooner is unknown to them for that long.
CACHES: dict[str, Cache] = {
    "aws-apigateway-http": Cache(
        7200,
        f'{AWS_APIGW}: "API Gateway can cache the public key for two hours"',
    ),
}


def only(attribute: str, allowed: set[str], noun: str) -> Check:
    """Every published key's `attribute` (alg, kty) must be one of `allowed`."""

    def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
        return [
            f"kid {j.kid}: {noun.format(getattr(j, attribute))} not accepted "
            f"(only {', '.join(sorted(allowed))})"
            for j in jwks
            if getattr(j, attribute) not in allowed
        ]

    return check


def algs_in(allowed: set[str]) -> Check:
    return only("alg", allowed, "alg {} is")


def kty_in(allowed: set[str]) -> Check:
    return only("kty", allowed, "{} keys are")


def at_most_per_kty(limits: dict[str, int]) -> Check:
    def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
        counts = Counter(j.kty for j in jwks)
        return [
            f"{counts[kty]} {kty} keys, more than the {limit} accepted"
            for kty, limit in limits.items()
            if counts[kty] > limit
        ]

    return check


def cache_covers(party: str) -> Check:
    """cache_ttl (which the rotation rules use) must cover the party's own JWKS cache."""

    def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
        held = CACHES[party].seconds
        if instance.cache_ttl >= held:
            return []
        return [
            f"it caches a JWKS up to {describe(held)}, longer than cache_ttl "
            f"({describe(instance.cache_ttl)}): set cache_ttl to at least {describe(held)}"
        ]

    return check


def oidc_required_members(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
    """OIDC Discovery §3's REQUIRED members; token_endpoint unless only implicit flows."""
    required = [
        "issuer",
        "authorization_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ]
    types = document.get("response_types_supported")
    implicit_only = (
        isinstance(types, list)
        and types
        and all(isinstance(t, str) and "code" not in t.split() for t in types)
    )
    if not implicit_only:
        required.append("token_endpoint")
    missing = [name for name in required if name not in document]
    found = [f"the discovery document lacks REQUIRED {', '.join(missing)}"] if missing else []
    algs = document.get("id_token_signing_alg_values_supported")
    if isinstance(algs, list) and "RS256" not in algs:
        found.append("id_token_signing_alg_values_supported must include RS256")
    return found


def at_most_keys(limit: int) -> Check:
    def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
        return [f"{len(jwks)} keys, more than the {limit} accepted"] if len(jwks) > limit else []

    return check


def issuer_at_most(limit: int) -> Check:
    def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
        size = len(instance.issuer)
        return [f"the issuer has {size} characters, more than {limit}"] if size > limit else []

    return check


def jwks_at_most(limit: int) -> Check:
    """The JWKS as published (the same bytes render writes) must fit the client's limit."""

    def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
        size = len(jsondoc.dumps({"keys": [j.as_dict() for j in jwks]}))
        return [f"the JWKS is {size} bytes, more than {limit}"] if size > limit else []

    return check


def no_ed448(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
    return [
        f"kid {j.kid}: Ed448 keys are ignored (EdDSA is Ed25519 only there)"
        for j in jwks
        if dict(j.members).get("crv") == "Ed448"
    ]


def no_port(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
    port = urlsplit(instance.issuer).port
    return [f"the issuer has a port ({port}); it must not"] if port is not None else []


def spki_kids(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[str]:
    return [
        f"kid {j.kid} is not the key's SPKI hash {j.spki_kid}, which kube-apiserver puts in "
        "tokens (use kid_method: kubernetes)"
        for j in jwks
        if j.spki_kid and j.kid != j.spki_kid
    ]


@dataclass(frozen=True)
class Rule:
    party: str
    check: Check
    source: str


RULES: tuple[Rule, ...] = (
    Rule("aws-iam", algs_in({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}), AWS_IAM),
    Rule("aws-iam", at_most_per_kty({"RSA": 100, "EC": 100}), AWS_IAM),
    Rule("aws-iam", no_port, AWS_IAM),
    Rule("aws-apigateway-http", kty_in({"RSA"}), AWS_APIGW),
    Rule("aws-apigateway-http", cache_covers("aws-apigateway-http"), AWS_APIGW),
    # GCP's member allow-list (kty alg use kid n e x y crv) is for uploaded key sets
    # (jwksJson) only; fetching jwks_uri, it ignores other members such as x5c.
    Rule("gcp-wif", kty_in({"RSA", "EC"}), GCP_WIF),
    Rule("kubernetes", algs_in({"RS256", "ES256", "ES384", "ES512"}), KUBERNETES),
    Rule("kubernetes", spki_kids, KUBERNETES),
    Rule("oidc-strict", oidc_required_members, OIDC_STRICT),
    Rule("azure-entra", algs_in({"RS256"}), AZURE_ENTRA),
    Rule("azure-entra", issuer_at_most(600), AZURE_ENTRA),
    Rule("vault-jwt", algs_in({"RS256"}), VAULT_JWT),
    Rule("oci-apigateway", at_most_keys(10), OCI_APIGW),
    Rule("java-nimbus", jwks_at_most(51_200), JAVA_NIMBUS),
    Rule("node-jose", no_ed448, NODE_JOSE),
)
PARTIES: tuple[str, ...] = tuple(sorted({rule.party for rule in RULES}))
# Parties whose rules read the discovery document (it is parsed only for them).
READ_DOCUMENT = frozenset({"oidc-strict"})


def check(instance: Instance, jwks: Sequence[JWK], document: Document) -> list[Problem]:
    problems = []
    for rule in RULES:
        if rule.party in instance.relying_parties:
            for message in rule.check(instance, jwks, document):
                problems.append(
                    Problem(
                        f"{instance.where}.relying_parties",
                        f"{rule.party} would reject this: {message} (source: {rule.source})",
                        instance.id,
                    )
                )
    return problems
