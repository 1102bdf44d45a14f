"""`publish --site URL`: publish only the documents under one URL, keyed relative to it.

The tree is `<host>/<path>/...`, which a CDN serving `<prefix><host>/` reads. An issuer that
is a bucket's own URL is served from the bucket root instead: virtual-hosted
`https://BUCKET.s3.REGION.amazonaws.com` or path-style `https://s3.REGION.amazonaws.com/BUCKET`
(the self-hosted setup of amazon-eks-pod-identity-webhook, and kOps). So is a CDN that serves
one host per bucket. With a site, `<host>/<path>/x` goes to `<prefix>x`.

A site deployment is a deployment of its own: its objects carry the site in their prefix
mark, and it keeps its state index and lease under `<prefix>.wellknown-build/sites/`, so it
and a whole-tree deployment at the same prefix never count each other's objects as theirs.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from ..documents import KIND_DISCOVERY
from ..errors import PublishError
from ..manifest import Entry
from ..urls import WELL_KNOWN_OIDC
from .state import FOLDER, LEASE_NAME, STATE_NAME

# S3 endpoint host names, as the S3 user guide lists them ("Virtual hosting of general purpose
# buckets", "Amazon S3 endpoints and quotas"): s3.REGION (and the legacy s3-REGION of older
# Regions), the legacy global s3 and s3-external-1, dual-stack and FIPS forms, and China's
# amazonaws.com.cn. Website endpoints (s3-website...) serve http only, never an issuer.
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_S3 = rf"s3(?:-fips)?(?:\.dualstack)?(?:[.-]{_REGION}|-external-1)?\.amazonaws\.com(?:\.cn)?"
_VIRTUAL = re.compile(rf"(?P<bucket>[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9])\.{_S3}")
_PATH_STYLE = re.compile(_S3)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SHOWN = 5
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    url: str  # https://host[:port][/path]/, always ending in '/'
    folder: str  # host[:port][/path]/: where its documents are in the tree

    @classmethod
    def of(cls, url: str) -> Site:
        """A site from a URL options.site_problem accepted; a trailing '/' is optional."""
        base = url.rstrip("/") + "/"
        return cls(base, base.removeprefix("https://"))


@dataclass(frozen=True)
class BucketURL:
    bucket: str
    site: str  # the URL that serves the bucket's root, ending in '/'
    virtual_hosted: bool


def bucket_url(folder: str) -> BucketURL | None:
    """Whether a tree folder (`host/...`) lies under an S3 bucket's own URL, and whose."""
    host, _, rest = folder.partition("/")
    if found := _VIRTUAL.fullmatch(host):
        return BucketURL(found["bucket"], f"https://{host}/", True)
    bucket = rest.split("/", 1)[0]
    if _PATH_STYLE.fullmatch(host) and _BUCKET.fullmatch(bucket):
        return BucketURL(bucket, f"https://{host}/{bucket}/", False)
    return None


def owner_mark(prefix: str, site: Site | None) -> str:
    """The x-amz-meta-wellknown-prefix value of the deployment's objects. A prefix has no
    whitespace, so a site deployment's mark ("/ https://b.s3.amazonaws.com/") never equals a
    plain prefix mark: not even a version of this tool without --site takes them for its own."""
    return prefix or "/" if site is None else f"{prefix or '/'} {site.url}"


def is_site_mark(mark: str) -> bool:
    return " " in mark


def state_keys(prefix: str, site: Site | None) -> tuple[str, str]:
    """The deployment's state index and lease: `<prefix>.wellknown-build/`, or for a site
    `<prefix>.wellknown-build/sites/<host>/<path>/`."""
    if site is None:
        return prefix + STATE_NAME, prefix + LEASE_NAME
    folder = f"{prefix}{FOLDER}sites/{site.folder}"
    return folder + STATE_NAME.removeprefix(FOLDER), folder + LEASE_NAME.removeprefix(FOLDER)


def tree_paths(keys: list[str], prefix: str, site: Site | None) -> list[str]:
    """Where objects are in the tree (`<host>/<path>`), for their URL paths."""
    folder = site.folder if site else ""
    return [folder + key.removeprefix(prefix) for key in keys]


def select(entries: list[Entry], site: Site, out: Path) -> tuple[list[Entry], dict[str, str]]:
    """The entries under the site with paths relative to it, and each one's tree path."""
    chosen: list[Entry] = []
    source: dict[str, str] = {}
    for entry in entries:
        if not entry.path.startswith(site.folder):
            continue
        relative = entry.path[len(site.folder) :]
        if FOLDER[:-1] in relative.split("/"):
            raise PublishError(
                f"{entry.path} would be uploaded into the tool's own {FOLDER} folder "
                f"(instance {entry.instance}); choose another issuer path or --site"
            )
        chosen.append(replace(entry, path=relative))
        source[relative] = entry.path
    if not chosen:
        raise PublishError(_nothing_under(entries, site, out))
    _warn_split_instances(entries, site)
    return chosen, source


def _issuers(entries: list[Entry]) -> list[str]:
    return sorted(
        {
            "https://" + e.path.removesuffix(WELL_KNOWN_OIDC)
            for e in entries
            if e.kind == KIND_DISCOVERY and e.path.endswith(WELL_KNOWN_OIDC)
        }
    )


def _nothing_under(entries: list[Entry], site: Site, out: Path) -> str:
    issuers = _issuers(entries)
    close = difflib.get_close_matches(site.url.rstrip("/"), issuers, n=1, cutoff=0.6)
    hint = f" Did you mean --site {close[0]}?" if close else ""
    shown = ", ".join(issuers[:_SHOWN]) + (" ..." if len(issuers) > _SHOWN else "")
    return (
        f"--site {site.url} matches no document in {out}, so nothing was published (its "
        f"issuers: {shown}).{hint}"
    )


def _warn_split_instances(entries: list[Entry], site: Site) -> None:
    """An instance with documents both under the site and elsewhere (a jwks_uri on another
    host, RFC 8414 metadata at the host's root) is published only in part by this run."""
    outside: dict[str, list[str]] = defaultdict(list)
    inside = {e.instance for e in entries if e.path.startswith(site.folder)}
    for entry in entries:
        if entry.instance in inside and not entry.path.startswith(site.folder):
            outside[entry.instance].append("https://" + entry.path)
    for instance, urls in sorted(outside.items()):
        log.warning(
            "instance %s: %s %s not under --site %s and not published by this run; publish "
            "%s with a --site of %s own",
            instance,
            ", ".join(urls),
            "is" if len(urls) == 1 else "are",
            site.url,
            "it" if len(urls) == 1 else "them",
            "its" if len(urls) == 1 else "their",
        )


def bucket_problem(site: str, bucket: str) -> str | None:
    """--site names another bucket's own URL: that URL serves that bucket's objects only."""
    found = bucket_url(Site.of(site).folder)
    if found is None or found.bucket == bucket:
        return None
    return (
        f"{site} is bucket {found.bucket}'s own URL, but --bucket is {bucket}: that URL serves "
        f"only the objects of bucket {found.bucket} (publish with --bucket {found.bucket})"
    )


def warn_about_buckets(entries: list[Entry], bucket: str, site: Site | None) -> None:
    """Bucket-URL issuers published without --site land under a host folder nobody reads;
    a virtual-hosted bucket name with a dot has no valid TLS certificate."""
    if site is not None:
        found = bucket_url(site.folder)
        if found is not None and found.bucket != bucket:
            log.warning("%s", bucket_problem(site.url, bucket))
        if found is not None and found.virtual_hosted and "." in found.bucket:
            log.warning(
                "%s: S3's TLS certificate (*.s3.REGION.amazonaws.com) does not cover bucket "
                "names with dots, so relying parties cannot fetch it over https; use the "
                "path-style issuer https://s3.REGION.amazonaws.com/%s",
                site.url,
                found.bucket,
            )
        return
    sites = {found.site: found for e in entries if (found := bucket_url(e.path))}
    for url, found in sorted(sites.items()):
        folder = url.removeprefix("https://")
        where = (
            f"bucket {bucket}'s own URL"
            if found.bucket == bucket
            else f"bucket {found.bucket}'s own URL, served only from that bucket"
        )
        hint = "" if found.bucket == bucket else f"--bucket {found.bucket} "
        log.warning(
            "the tree holds documents of %s, %s: without --site they are uploaded under %s, "
            "where that URL does not serve them; publish them with %s--site %s",
            url,
            where,
            folder,
            hint,
            url,
        )
