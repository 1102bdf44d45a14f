"""What specific relying parties accept beyond the RFCs, as one table of rules with sources.

Adding a relying party is adding rows. Each check gets the instance and the JWKs it
publishes, and returns what that relying party would reject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import Problem
from .keys import JWK
from .model import Instance

Check = Callable[[Instance, Sequence[JWK]], list[str]]

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


def only(attribute: str, allowed: set[str], noun: str) -> Check:
    """Every published key's `attribute` (alg, kty) must be one of `allowed`."""

    def check(instance: Instance, jwks: Sequence[JWK]) -> list[str]:
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
    def check(instance: Instance, jwks: Sequence[JWK]) -> list[str]:
        counts = Counter(j.kty for j in jwks)
        return [
            f"{counts[kty]} {kty} keys, more than the {limit} accepted"
            for kty, limit in limits.items()
            if counts[kty] > limit
        ]

    return check


def members_only(allowed: set[str]) -> Check:
    def check(instance: Instance, jwks: Sequence[JWK]) -> list[str]:
        found = []
        for j in jwks:
            extra = sorted(set(j.as_dict()) - allowed)
            if extra:
                found.append(f"kid {j.kid}: members {', '.join(extra)} are not accepted")
        return found

    return check


def no_port(instance: Instance, jwks: Sequence[JWK]) -> list[str]:
    port = urlsplit(instance.issuer).port
    return [f"the issuer has a port ({port}); it must not"] if port is not None else []


def spki_kids(instance: Instance, jwks: Sequence[JWK]) -> list[str]:
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
    Rule("gcp-wif", kty_in({"RSA", "EC"}), GCP_WIF),
    Rule(
        "gcp-wif",
        members_only({"kty", "alg", "use", "kid", "n", "e", "x", "y", "crv"}),
        GCP_WIF,
    ),
    Rule("kubernetes", algs_in({"RS256", "ES256", "ES384", "ES512"}), KUBERNETES),
    Rule("kubernetes", spki_kids, KUBERNETES),
)
PARTIES: tuple[str, ...] = tuple(sorted({rule.party for rule in RULES}))


def check(instance: Instance, jwks: Sequence[JWK]) -> list[Problem]:
    problems = []
    for rule in RULES:
        if rule.party in instance.relying_parties:
            for message in rule.check(instance, jwks):
                problems.append(
                    Problem(
                        f"{instance.where}.relying_parties",
                        f"{rule.party} would reject this: {message} (source: {rule.source})",
                        instance.id,
                    )
                )
    return problems
