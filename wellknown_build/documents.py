"""Pure: an instance and its JWKs → the files to publish, with their headers decided once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import jsondoc, urls
from .errors import TemplateError
from .keys import JWK
from .model import Instance
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


def jwks_document(instance: Instance, jwks: list[JWK], keys: list[dict[str, Any]]) -> Document:
    """`keys` are the JWKs as published (`jwk.as_dict()`), made once per instance."""
    return Document(
        path=urls.tree_path(instance.jwks_uri),
        body=jsondoc.dumps({"keys": keys}),
        content_type=JSON_CONTENT_TYPE,
        cache_control=instance.cache_control,
        instance=instance.id,
        kind=KIND_JWKS,
        kids=tuple(jwk.kid for jwk in jwks),
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


def check_metadata(document: dict[str, Any], instance: Instance) -> list[str]:
    """What a template produced that relying parties would reject."""
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
    algs = document.get("id_token_signing_alg_values_supported")
    if algs is not None and (
        not isinstance(algs, list) or not all(isinstance(a, str) for a in algs)
    ):
        problems.append("id_token_signing_alg_values_supported must be a list of strings")
    elif algs is not None and "none" in algs:
        problems.append("id_token_signing_alg_values_supported must not contain 'none'")
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
    problems = check_metadata(document, instance)
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


def instance_documents(instance: Instance, jwks: list[JWK], renderer: Renderer) -> list[Document]:
    """The JWKS first: it is what the metadata documents point at."""
    keys = [jwk.as_dict() for jwk in jwks]
    context = template_context(instance, jwks, keys)
    documents = [
        jwks_document(instance, jwks, keys),
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
