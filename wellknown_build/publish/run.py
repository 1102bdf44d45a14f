"""publish: plan from the manifest and the bucket, then upload in an order that never breaks
a live issuer — every JWKS, then the discovery documents, then deletes, then the CDN."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import manifest, tree
from ..errors import PublishError, SafetyLimitError, WellknownError
from . import cdn
from .plan import (
    CREATE,
    DELETE,
    OWNER,
    UPDATE,
    Action,
    Plan,
    Remote,
    fingerprint,
    kid_changes,
    make_plan,
)
from .s3 import META_FINGERPRINT, META_OWNER, META_SHA256, Bucket, Listed

log = logging.getLogger(__name__)
STATE_NAME = ".wellknown-build/state.json"
PROGRESS_EVERY = 5.0  # seconds between progress lines on long runs


@dataclass(frozen=True)
class Options:
    bucket: str
    out: Path = Path("out")
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    dry_run: bool = False
    delete: bool = False
    max_deletes: int = 10
    distribution_id: str | None = None
    acl: str | None = None
    workers: int = 16
    timeout: float = 30.0  # seconds per request attempt


@dataclass
class Result:
    plan: Plan
    dry_run: bool
    puts: int = 0
    deletes: int = 0
    uploaded_bytes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    invalidation_paths: list[str] = field(default_factory=list)
    invalidation_id: str | None = None
    error: str | None = None  # set when some change failed; the run exits 1


def _read_tree(out: Path) -> tuple[list[manifest.Entry], dict[str, bytes]]:
    if tree.interrupted(out):
        raise PublishError(
            f"{out}: a render stopped midway or is running ({tree.JOURNAL_NAME} is there); "
            "render again before publishing"
        )
    found = tree.read_manifest(out)
    if not found.entries:
        raise SafetyLimitError(f"{out}: refusing to publish an empty tree")
    bodies: dict[str, bytes] = {}
    reader = tree.Reader(out)
    for entry in found.entries:
        body = reader.read(entry.path)
        if hashlib.sha256(body).hexdigest() != entry.sha256:
            raise PublishError(
                f"{out / entry.path} differs from the manifest (edited after render?); "
                "render again before publishing"
            )
        bodies[entry.path] = body
    return list(found.entries), bodies


def _state(bucket: Bucket, key: str, listing: dict[str, Listed]) -> dict[str, dict[str, str]]:
    """What we recorded at our last publish: per key, fingerprint, body hash and ETag.

    A cache: an entry counts only while the listing still shows its ETag, so an object
    changed behind our back is looked at again (HEAD) rather than trusted.
    """
    if key not in listing:
        return {}
    data = bucket.get(key)
    try:
        objects = json.loads(data or b"{}").get("objects", {})
        return {k: v for k, v in objects.items() if isinstance(v, dict)}
    except (ValueError, AttributeError):
        log.warning("%s is unreadable; checking every object's metadata instead", key)
        return {}


def _remote(
    bucket: Bucket,
    listing: dict[str, Listed],
    state: dict[str, dict[str, str]],
    wanted: set[str],
    delete: bool,
    pool: ThreadPoolExecutor,
) -> dict[str, Remote]:
    remote: dict[str, Remote] = {}
    to_head = []
    for key, listed in listing.items():
        known = state.get(key)
        if known and known.get("etag") == listed.etag:
            remote[key] = Remote(
                key, listed.etag, listed.size, known.get("fingerprint"), known.get("sha256"), True
            )
        elif key in wanted or known is not None or delete:
            to_head.append(key)
        else:
            remote[key] = Remote(key, listed.etag, listed.size)  # not ours to judge or touch
    if to_head:
        log.info("reading the metadata of %d objects", len(to_head))
    for key, head in zip(to_head, pool.map(bucket.head, to_head), strict=True):
        if head is None:
            continue
        owned = head.metadata.get(META_OWNER) == OWNER
        remote[key] = Remote(
            key,
            head.etag,
            listing[key].size,
            head.metadata.get(META_FINGERPRINT) if owned else None,
            head.metadata.get(META_SHA256) if owned else None,
            owned,
        )
    return remote


def _run_phase(
    name: str,
    actions: Sequence[Action],
    work: Callable[[Action], Any],
    pool: ThreadPoolExecutor,
) -> tuple[list[tuple[Action, Any]], list[str]]:
    done: list[tuple[Action, Any]] = []
    failures: list[str] = []
    if not actions:
        return done, failures
    futures = {pool.submit(work, action): action for action in actions}
    last = time.monotonic()
    for future in as_completed(futures):
        action = futures[future]
        try:
            done.append((action, future.result()))
        except WellknownError as e:
            failures.append(str(e))
        if time.monotonic() - last > PROGRESS_EVERY:
            last = time.monotonic()
            log.info("%s: %d/%d", name, len(done) + len(failures), len(actions))
    return done, failures


def publish(options: Options) -> Result:
    start = time.monotonic()
    prefix = options.prefix
    entries, bodies = _read_tree(options.out)
    bucket = Bucket(
        options.bucket,
        endpoint_url=options.endpoint_url,
        region=options.region,
        workers=options.workers,
        timeout=options.timeout,
    )
    state_key = prefix + STATE_NAME
    with ThreadPoolExecutor(options.workers) as pool:
        listing = bucket.list(prefix)
        state = _state(bucket, state_key, listing)
        wanted = {prefix + e.path for e in entries}
        listing.pop(state_key, None)
        remote = _remote(bucket, listing, state, wanted, options.delete, pool)
        plan = make_plan(
            entries, prefix, remote, acl=options.acl, delete=options.delete, state_key=state_key
        )
        deletes = plan.of(DELETE)
        if len(deletes) > options.max_deletes:
            shown = ", ".join(a.key for a in deletes[:5])
            raise SafetyLimitError(
                f"refusing to delete {len(deletes)} objects (--max-deletes {options.max_deletes}):"
                f" {shown}{', ...' if len(deletes) > 5 else ''}; nothing was changed"
            )
        plan.kid_changes = kid_changes(plan, bucket.get, prefix)
        result = Result(plan, options.dry_run)
        if not options.dry_run:
            _execute(options, bucket, plan, bodies, remote, state, state_key, pool, result)
    result.seconds = time.monotonic() - start
    return result


def _execute(
    options: Options,
    bucket: Bucket,
    plan: Plan,
    bodies: dict[str, bytes],
    remote: dict[str, Remote],
    state: dict[str, dict[str, str]],
    state_key: str,
    pool: ThreadPoolExecutor,
    result: Result,
) -> None:
    acl = options.acl
    records: dict[str, dict[str, str]] = {
        key: {"fingerprint": r.fingerprint, "sha256": r.sha256 or "", "etag": r.etag}
        for key, r in remote.items()
        if r.owned and r.fingerprint and key != state_key
    }

    def upload(action: Action) -> str:
        assert action.entry is not None
        entry = action.entry
        return bucket.put(action.key, bodies[entry.path], entry, fingerprint(entry, acl), acl)

    def remove(action: Action) -> None:
        bucket.delete(action.key)

    changed: list[str] = []
    try:
        phases = (
            (0, upload, "JWKS uploads"),
            (1, upload, "discovery document uploads"),
            (2, remove, "deletes"),
            (3, remove, "deletes"),
        )
        for phase, work, label in phases:
            actions = [a for a in plan.changes if a.phase == phase]
            done, failures = _run_phase(label, actions, work, pool)
            for action, etag in done:
                changed.append(action.key)
                if action.op in (CREATE, UPDATE):
                    assert action.entry is not None
                    result.puts += 1
                    result.uploaded_bytes += action.entry.size
                    records[action.key] = {
                        "fingerprint": fingerprint(action.entry, acl),
                        "sha256": action.entry.sha256,
                        "etag": etag,
                    }
                else:
                    result.deletes += 1
                    records.pop(action.key, None)
            if failures:
                result.failures = sorted(failures)
                skipped = len(plan.changes) - len(changed) - len(failures)
                result.error = (
                    f"{len(failures)} of {len(actions)} {label} failed; {skipped} later "
                    "changes, deletes and the CDN invalidation were not made. Run publish "
                    "again to finish:\n  " + "\n  ".join(result.failures)
                )
                return
    finally:
        if records != state:
            try:
                bucket.put_json(state_key, {"format": 1, "objects": dict(sorted(records.items()))})
            except PublishError as e:
                log.warning("could not record the publish state (%s); the next run re-checks", e)
    if changed and options.distribution_id and result.error is None:
        result.invalidation_paths = cdn.invalidation_paths(changed, options.prefix)
        result.invalidation_id = cdn.invalidate(options.distribution_id, result.invalidation_paths)
