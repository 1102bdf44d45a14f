"""Pure: an instance and its JWKs → the files to publish, with their headers decided once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import jsondoc, urls
from .errors import TemplateError
from .keys import JWK
from .model import Instance, Rotation
from .templating import Renderer

JSON_CONTENT_TYPE = "application/json"  # Discovery §4.2; also accepted for JWKS (RFC 7517 §8.5)
KIND_JWKS = "jwks"
KIND_DISCOVERY = "openid-configuration"
KIND_OAUTH = "oauth-authorization-server"


@dataclass(frozen=True)
class Document:
    path: str  # relative to the output folder, `/`-separated
    body: bytes
    content_type: str
    cache_control: str
    instance: str
    kind: str
    kids: tuple[str, ...] = ()
    rotation: Rotation | None = None  # a JWKS's: its keys' statuses, for publish's state index


def jwks_document(
    instance: Instance,
    jwks: list[JWK],
    keys: list[dict[str, Any]],
    rotation: Rotation | None = None,
) -> Document:
    """`keys` are the JWKs as published (`jwk.as_dict()`), made once per instance."""
    return Document(
        path=urls.tree_path(instance.jwks_uri),
        body=jsondoc.dumps({"keys": keys}),
        content_type=JSON_CONTENT_TYPE,
        cache_control=instance.cache_control,
        instance=instance.id,
        kind=KIND_JWKS,
        kids=tuple(jwk.kid for jwk in jwks),
        rotation=rotation,
    )


def template_context(
    instance: Instance, jwks: list[JWK], keys: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "instance_id": instance.id,
        "issuer": instance.issuer,
        "jwks_uri": instance.jwks_uri,
        "algs": sorted({jwk.alg for jwk in jwks}),
        "keys": keys,
        "discovery": dict(instance.discovery),
    }


# Members whose algs sign client authentication (OIDC Discovery §3, RFC 8414 §2): "none" MUST
# NOT be among them.
_AUTH_SIGNING_ALGS = (
    "token_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
)


def check_metadata(document: dict[str, Any], instance: Instance, algs: list[str]) -> list[str]:
    """What a template produced that relying parties would reject. `algs` are the published
    keys' algs."""
    problems = []
    if document.get("issuer") != instance.issuer:
        problems.append(
            f"issuer {document.get('issuer')!r} is not byte-identical to the configured "
            f"{instance.issuer!r}"
        )
    if document.get("jwks_uri") != instance.jwks_uri:
        problems.append(
            f"jwks_uri {document.get('jwks_uri')!r} is not where the JWKS is published "
            f"({instance.jwks_uri!r})"
        )
    for name in ("id_token_signing_alg_values_supported", *_AUTH_SIGNING_ALGS):
        listed = document.get(name)
        if listed is None:
            continue
        if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
            problems.append(f"{name} must be a list of strings")
        elif "none" in listed:
            problems.append(f"{name} must not contain 'none'")
    advertised = document.get("id_token_signing_alg_values_supported")
    if isinstance(advertised, list):
        # go-oidc and others verify only the algs listed here: a key outside it verifies nothing
        uncovered = sorted(set(algs) - set(advertised))
        if uncovered:
            problems.append(
                f"id_token_signing_alg_values_supported does not list {', '.join(uncovered)}, "
                "the alg of published keys: clients that honour it would reject their tokens"
            )
    problems += [f"{name} is an empty array; omit it" for name, v in document.items() if v == []]
    return problems


def metadata_document(
    instance: Instance,
    context: dict[str, Any],
    renderer: Renderer,
    kind: str,
    template: str,
    url: str,
) -> Document:
    """A metadata document (openid-configuration, RFC 8414) from its template, checked."""
    name = f"{kind}/{template}.json.j2"
    document = renderer.json_object(name, context)
    problems = check_metadata(document, instance, context["algs"])
    if problems:
        raise TemplateError(f"template {name}: " + "; ".join(problems))
    return Document(
        path=urls.tree_path(url),
        body=jsondoc.dumps(document),
        content_type=JSON_CONTENT_TYPE,
        cache_control=instance.cache_control,
        instance=instance.id,
        kind=kind,
    )


def instance_documents(
    instance: Instance, jwks: list[JWK], renderer: Renderer, rotation: Rotation | None = None
) -> list[Document]:
    """The JWKS first: it is what the metadata documents point at."""
    keys = [jwk.as_dict() for jwk in jwks]
    context = template_context(instance, jwks, keys)
    documents = [
        jwks_document(instance, jwks, keys, rotation),
        metadata_document(
            instance,
            context,
            renderer,
            KIND_DISCOVERY,
            instance.template,
            urls.discovery_url(instance.issuer),
        ),
    ]
    if instance.oauth_metadata:
        documents.append(
            metadata_document(
                instance,
                context,
                renderer,
                KIND_OAUTH,
                "default",
                urls.oauth_metadata_url(instance.issuer),
            )
        )
    return documents
