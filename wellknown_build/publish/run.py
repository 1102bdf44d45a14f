"""publish: plan from the manifest and the bucket, then upload in an order that never breaks
a live issuer — every JWKS, then the discovery documents, then deletes, then the CDN."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import manifest, progress, tree
from ..cache import stat_of
from ..documents import KIND_JWKS
from ..errors import PublishError, SafetyLimitError, WellknownError
from . import cdn, history
from .lease import Lease
from .plan import (
    CREATE,
    DELETE,
    OWNER,
    UNCHANGED,
    UPDATE,
    Action,
    Plan,
    Remote,
    fingerprint,
    fingerprint_of,
    kid_changes,
    kids_of,
    make_plan,
)
from .s3 import (
    META_FINGERPRINT,
    META_OWNER,
    META_PREFIX,
    META_SHA256,
    Bucket,
    Head,
    Listed,
)
from .site import Site, is_site_mark, owner_mark, select, state_keys, tree_paths, warn_about_buckets
from .state import FOLDER, UNKNOWN, Record, State, expand
from .state import load as load_state
from .state import save as save_state

log = logging.getLogger(__name__)
_IN_FLIGHT = 1024  # actions handed to the pool at once (its queue: memory, not speed)
SETTLE_SECONDS = 2  # LastModified younger than this is not recorded (see _settled)


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
    break_lease: bool = False
    site: Site | None = None  # publish only the documents under it, keyed relative to it
    now: dt.datetime | None = None  # the instant recorded as this run's (tests); else the clock


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
    pending_invalidations: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None  # set when some change failed; the run exits 1


class _Tree:
    """The rendered tree as publish sees it: every file checked against the manifest before
    anything is sent. A file whose stat data is what render recorded in its cache is not
    read (its bytes are read when it is uploaded, and checked again then); any other file is
    read and hashed now. A fresh copy (new mtimes) is therefore read once, an untouched tree
    not at all."""

    def __init__(self, out: Path, site: Site | None = None) -> None:
        if tree.interrupted(out):
            raise PublishError(
                f"{out}: a render stopped midway or is running ({tree.JOURNAL_NAME} is there);"
                " render again before publishing"
            )
        found = tree.read_manifest(out)
        if not found.entries:
            raise SafetyLimitError(f"{out}: refusing to publish an empty tree")
        self.out = out
        self.entries = list(found.entries)
        self._source: dict[str, str] = {}  # an entry's path in the tree, if it differs (--site)
        if site is not None:
            self.entries, self._source = select(self.entries, site, out)
        self._reader = tree.Reader(out)
        self._bodies: dict[str, bytes] = {}
        seen = tree.previous_index(out)
        for entry in self.entries:
            path = self._source.get(entry.path, entry.path)
            stat = stat_of(manifest.local_path(str(out), path), follow=False)
            if stat is None or seen is None or seen.file_stat(path) != stat:
                self._bodies[entry.path] = self._checked(entry)
        if seen is not None:
            seen.close()

    def _checked(self, entry: manifest.Entry) -> bytes:
        path = self._source.get(entry.path, entry.path)
        body = self._reader.read(path)
        if hashlib.sha256(body).hexdigest() != entry.sha256:
            raise PublishError(
                f"{self.out / path} differs from the manifest (edited after render?); "
                "render again before publishing"
            )
        return body

    def body(self, entry: manifest.Entry) -> bytes:
        found = self._bodies.pop(entry.path, None)
        return found if found is not None else self._checked(entry)


def _nested_deployments(listing: dict[str, Listed], prefix: str) -> list[str]:
    """Prefixes of other deployments below ours: they keep their own `.wellknown-build/`."""
    found = set()
    for key in listing:
        rest = key[len(prefix) :]
        at = rest.find("/" + FOLDER)
        if at >= 0:
            found.add(prefix + rest[: at + 1])
    return sorted(found)


def _ours(head: Head, mark: str) -> bool:
    """The object's own marks say this deployment wrote it (objects from before the prefix
    mark count as ours when they carry the owner mark, unless we are a --site deployment)."""
    meta = head.metadata
    legacy = None if is_site_mark(mark) else mark
    return meta.get(META_OWNER) == OWNER and meta.get(META_PREFIX, legacy) == mark


def _from_head(key: str, head: Head, listed: Listed, mark: str, acl: str | None) -> Remote:
    """What an object is, from its own headers. Its fingerprint mark counts only if the
    headers it really has give the same fingerprint: a copy_object that replaced
    Content-Type or Cache-Control but kept the metadata is caught here."""
    owned = _ours(head, mark)
    sha256 = head.metadata.get(META_SHA256) if owned else None
    claimed = head.metadata.get(META_FINGERPRINT) if owned else None
    actual = fingerprint_of(sha256, head.content_type, head.cache_control, acl) if sha256 else None
    return Remote(
        key,
        head.etag,
        listed.size,
        claimed if claimed is not None and claimed == actual else None,
        sha256,
        owned,
        _settled(head.modified),
        None,
        True,
    )


def _settled(modified: str) -> str:
    """LastModified as the index may record it: only once it is a few seconds old. S3 keeps
    it to the second, so a copy_object in the same second as our write would keep both ETag
    and LastModified; an entry recorded too early is left out and looked at once more."""
    try:
        when = dt.datetime.fromisoformat(modified)
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    fresh = dt.datetime.now(dt.timezone.utc) - when < dt.timedelta(seconds=SETTLE_SECONDS)
    return "" if fresh else modified


# HEAD answers by (key, ETag, LastModified): planning again under the lease looks again only
# at objects whose listing changed since the first look.
Heads = dict[tuple[str, str, str], "Head | None"]


def _heads(
    bucket: Bucket,
    keys: list[str],
    listing: dict[str, Listed],
    seen: Heads,
    pool: ThreadPoolExecutor,
) -> dict[str, Head | None]:
    ids = {k: (k, listing[k].etag, listing[k].modified) for k in keys}
    missing = [k for k in keys if ids[k] not in seen]
    for key, head in zip(missing, pool.map(bucket.head, missing), strict=True):
        seen[ids[key]] = head
    return {k: seen[ids[k]] for k in keys}


def _remote(
    bucket: Bucket,
    listing: dict[str, Listed],
    state: State,
    wanted: dict[str, manifest.Entry],
    delete: bool,
    mark: str,
    pool: ThreadPoolExecutor,
    seen: Heads,
    acl: str | None,
) -> dict[str, Remote]:
    """What each object is. The index is trusted only where the listing still shows the
    ETag *and* LastModified it recorded; anything else we might write or delete is looked
    at (HEAD), concurrently."""
    remote: dict[str, Remote] = {}
    to_head = []
    for key, listed in listing.items():
        known = state.trusted(key, listed.etag, listed.modified)
        if known:
            entry = wanted.get(key)  # the index keeps shortened hashes: the full ones they match
            remote[key] = Remote(
                key,
                listed.etag,
                listed.size,
                expand(known[0], fingerprint(entry, acl) if entry else None),
                expand(known[1], entry.sha256 if entry else None),
                True,
                listed.modified,
            )
        elif key in wanted or key in state.objects or delete:
            to_head.append(key)
        else:
            remote[key] = Remote(key, listed.etag, listed.size, modified=listed.modified)
    if to_head:
        log.info("reading the metadata of %d objects", len(to_head))
    for key, head in _heads(bucket, to_head, listing, seen, pool).items():
        if head is not None:
            remote[key] = _from_head(key, head, listing[key], mark, acl)
    return remote


def _verify_deletes(
    plan: Plan,
    remote: dict[str, Remote],
    bucket: Bucket,
    listing: dict[str, Listed],
    mark: str,
    pool: ThreadPoolExecutor,
    seen: Heads,
) -> None:
    """A delete happens only if the object itself carries our marks, whatever the index says."""
    unverified = [a.key for a in plan.of(DELETE) if not remote[a.key].verified]
    for key, head in _heads(bucket, unverified, listing, seen, pool).items():
        if head is not None:
            remote[key] = _from_head(key, head, listing[key], mark, None)
    refused = {a.key for a in plan.of(DELETE) if not remote[a.key].owned}
    for key in sorted(refused):
        log.warning("not deleting %s: the object does not carry this deployment's marks", key)
    plan.actions = [a for a in plan.actions if a.key not in refused or a.op != DELETE]


def _old_kids(
    plan: Plan,
    remote: dict[str, Remote],
    bucket: Bucket,
    pool: ThreadPoolExecutor,
    state: State,
) -> dict[str, list[str] | None]:
    """The kids in each JWKS object this publish changes: from the index where it knows
    them, else read (concurrently): a rotation of 10,000 tenants reads nothing."""
    wanted = [a.key for a in plan.of(UPDATE, DELETE) if a.kind == KIND_JWKS and a.key in remote]
    known = {
        k: kids
        for k in wanted
        if (kids := history.kids_at(state.history(k), remote[k].etag)) is not None
    }
    unknown = [k for k in wanted if k not in known]

    def read(key: str) -> list[str] | None:
        found = bucket.get(key)
        return kids_of(found[0]) if found else None

    return {**known, **dict(zip(unknown, pool.map(read, unknown), strict=True))}


def _run_phase(
    name: str,
    actions: Sequence[Action],
    work: Callable[[Action], Any],
    pool: ThreadPoolExecutor,
) -> tuple[list[tuple[Action, Any]], list[str]]:
    """Each action on the pool, at most _IN_FLIGHT at once, results as they finish. (All
    submitted at once, a fleet's first publish or rotation held a Future per object: 1.7 KB
    each, 1.7 GB for a million JWKS.)"""
    done: list[tuple[Action, Any]] = []
    failures: list[str] = []
    if not actions:
        return done, failures
    finished: queue.SimpleQueue[tuple[Action, Any, BaseException | None]] = queue.SimpleQueue()

    def one(action: Action) -> None:
        try:
            finished.put((action, work(action), None))
        except BaseException as e:  # handed to the publishing thread, as a Future would
            finished.put((action, None, e))

    def submit(action: Action) -> None:
        def lost(future: Future[None]) -> None:  # ended without running `one`
            if future.cancelled():
                finished.put((action, None, CancelledError()))
            elif (error := future.exception()) is not None:  # a broken pool
                finished.put((action, None, error))

        pool.submit(one, action).add_done_callback(lost)

    waiting = iter(actions)
    running = 0
    with progress.Progress(name, len(actions)) as shown:
        for action in itertools.islice(waiting, _IN_FLIGHT):
            submit(action)
            running += 1
        while running:
            action, value, error = finished.get()
            running -= 1
            if isinstance(error, WellknownError):
                failures.append(str(error))
            elif error is not None:
                raise error
            else:
                done.append((action, value))
            shown.advance()
            following = next(waiting, None)
            if following is not None:
                submit(following)
                running += 1
    return done, failures


def _listing(
    bucket: Bucket, prefix: str, wanted: set[str], pool: ThreadPoolExecutor
) -> dict[str, Listed]:
    """The deployment's objects: under its prefix, outside its own folder and outside any
    other deployment's prefix below it (those are that deployment's, never ours). Each host
    folder is listed on its own thread."""
    listing, folders = bucket.folders(prefix)
    for part in pool.map(bucket.objects, folders):
        listing.update(part)
    nested = _nested_deployments(listing, prefix)
    for other in nested:
        clash = sorted(k for k in wanted if k.startswith(other))
        if clash:
            raise PublishError(
                f"the tree would write {clash[0]}, inside the deployment at {other} "
                "(it has its own .wellknown-build/ state); choose another --prefix"
            )
        log.info("leaving %s alone: another deployment's prefix", other)
    own = prefix + FOLDER
    return {
        k: v
        for k, v in listing.items()
        if not k.startswith(own) and not any(k.startswith(o) for o in nested)
    }


def publish(options: Options) -> Result:
    """Plan; if there is anything to write, take the lease, plan again under it (another
    publish may have just finished) and carry the plan out. A publish with nothing to do
    writes nothing, not even the lease."""
    start = time.monotonic()
    local = _Tree(options.out, options.site)
    entries = local.entries
    warn_about_buckets(entries, options.bucket, options.site)
    bucket = Bucket(
        options.bucket,
        endpoint_url=options.endpoint_url,
        region=options.region,
        workers=options.workers,
        timeout=options.timeout,
    )
    seen: Heads = {}
    with ThreadPoolExecutor(options.workers) as pool:
        prepared = _prepare(options, bucket, entries, pool, seen)
        if not options.dry_run and _has_work(options, *prepared):
            lease = Lease(
                bucket,
                options.prefix,
                break_existing=options.break_lease,
                key=state_keys(options.prefix, options.site)[1],
            )
            lease.acquire()
            try:
                prepared = _prepare(options, bucket, entries, pool, seen)
                _execute(options, bucket, local, *prepared, pool)
            finally:
                lease.release()
            if lease.lost and prepared[0].error is None:
                prepared[0].error = lease.lost
    result = prepared[0]
    result.seconds = time.monotonic() - start
    return result


Prepared = tuple[Result, dict[str, "Remote"], State]


def _has_work(options: Options, result: Result, remote: dict[str, Remote], state: State) -> bool:
    """Changes to make, CDN paths to send, or an index that is wrong. An index that only
    lacks settled LastModified values is not worth a lease and a write: those objects are
    looked at (HEAD) until the next publish with work records them."""
    if result.plan.changes or options.distribution_id in state.pending:
        return True
    ours, recorded = _looked_at(remote), state.objects
    return (
        _owned(remote) != recorded.keys()
        or any(not record.same_but_modified(recorded[key]) for key, record in ours.items())
        or _keys_to_record(result.plan, remote, state)
    )


def _keys_to_record(plan: Plan, remote: dict[str, Remote], state: State) -> bool:
    """Whether the kids' history (publish/history.py) is missing or out of date for a JWKS
    this publish leaves unchanged."""
    for action in plan.of(UNCHANGED):
        entry = action.entry
        head = history.head_of(entry) if entry and entry.kind == KIND_JWKS else None
        stored = state.history(action.key)
        if head is not None and not history.unchanged(stored, head, remote[action.key].etag):
            return True
    return False


def _prepare(
    options: Options,
    bucket: Bucket,
    entries: list[manifest.Entry],
    pool: ThreadPoolExecutor,
    seen: Heads,
) -> Prepared:
    prefix, mark = options.prefix, owner_mark(options.prefix, options.site)
    state_key = state_keys(prefix, options.site)[0]
    wanted = {prefix + e.path: e for e in entries}
    listing = _listing(bucket, prefix, set(wanted), pool)
    state = load_state(bucket, prefix, pool, _home(options))
    remote = _remote(bucket, listing, state, wanted, options.delete, mark, pool, seen, options.acl)
    plan = make_plan(
        entries, prefix, remote, acl=options.acl, delete=options.delete, state_key=state_key
    )
    _verify_deletes(plan, remote, bucket, listing, mark, pool, seen)
    deletes = plan.of(DELETE)
    if len(deletes) > options.max_deletes:
        shown = ", ".join(a.key for a in deletes[:5])
        raise SafetyLimitError(
            f"refusing to delete {len(deletes)} objects (--max-deletes {options.max_deletes}):"
            f" {shown}{', ...' if len(deletes) > 5 else ''}; nothing was changed. If these "
            f"deletes are intended, pass --max-deletes {len(deletes)}"
        )
    plan.kid_changes = kid_changes(plan, _old_kids(plan, remote, bucket, pool, state), prefix)
    result = Result(plan, options.dry_run)
    result.pending_invalidations = {d: list(p) for d, p in state.pending.items() if p}
    return result, remote, state


def _owned(remote: dict[str, Remote]) -> set[str]:
    """The objects the index should have an entry for."""
    return {key for key, r in remote.items() if r.owned and r.fingerprint}


def _looked_at(remote: dict[str, Remote]) -> dict[str, Record]:
    """Entries for our objects known from their own headers (HEAD) rather than the index:
    those an index entry trusted are what the index already says."""
    return {
        key: Record.of(r.fingerprint, r.sha256 or "", r.etag, r.modified or None)
        for key, r in remote.items()
        if r.owned and r.fingerprint and r.verified
    }


def _home(options: Options) -> str:
    """The folder of the deployment's state index: `<prefix>.wellknown-build/`, or a site's."""
    return state_keys(options.prefix, options.site)[0].removesuffix("state.json")


def _save(bucket: Bucket, options: Options, state: State, new: State, result: Result) -> None:
    """Write what changed in the index, only over the versions this run read."""
    result.puts += save_state(bucket, options.prefix, state, new, _home(options))


def _record_keys(
    options: Options,
    plan: Plan,
    remote: dict[str, Remote],
    state: State,
    new: State,
    uploaded: dict[str, str],
) -> None:
    """The kids' history of every JWKS that now holds what the manifest says (unchanged, or
    uploaded by this run), at this run's clock (publish/history.py)."""
    now = history.epoch(options.now or dt.datetime.now(dt.timezone.utc))
    for action in plan.of(UNCHANGED, CREATE, UPDATE):
        entry, key = action.entry, action.key
        head = history.head_of(entry) if entry and entry.kind == KIND_JWKS else None
        after = remote[key].etag if action.op == UNCHANGED else uploaded.get(key)
        if entry is None or head is None or after is None:
            continue
        stored, record = state.history(key), new.record(key)
        if record is None or history.unchanged(stored, head, after):
            continue
        before = remote[key].etag if key in remote else None
        added = plan.kid_changes.get(key.removeprefix(options.prefix), ([], []))[0]
        there = entry.kids if action.op == UNCHANGED else [k for k in entry.kids if k not in added]
        old = history.decode(stored) if stored else None
        keys = history.record(old, entry, before, after, there, now)
        new.put(key, record, history.encode(keys))


def _execute(
    options: Options,
    bucket: Bucket,
    local: _Tree,
    result: Result,
    remote: dict[str, Remote],
    state: State,
    pool: ThreadPoolExecutor,
) -> None:
    acl, prefix, plan = options.acl, options.prefix, result.plan
    state_key, mark = state_keys(prefix, options.site)[0], owner_mark(prefix, options.site)
    new = state.copy()
    for key in state.objects.keys() - _owned(remote):
        new.drop(key)
    for key, record in _looked_at(remote).items():
        if record.packed() != state.objects.get(key, "")[: len(record.packed())]:
            new.put(key, record, state.history(key))
    uploaded: dict[str, str] = {}

    def upload(action: Action) -> str:
        assert action.entry is not None
        entry = action.entry
        return bucket.put(action.key, local.body(entry), entry, fingerprint(entry, acl), acl, mark)

    def remove(action: Action) -> None:
        bucket.delete(action.key)

    changed: list[str] = []
    phases = (
        (0, upload, "JWKS uploads"),
        (1, upload, "discovery document uploads"),
        (2, remove, "deletes"),
        (3, remove, "deletes"),
    )
    try:
        for phase, work, label in phases:
            actions = [a for a in plan.changes if a.phase == phase]
            done, failures = _run_phase(label, actions, work, pool)
            for action, etag in done:
                changed.append(action.key)
                if action.op in (CREATE, UPDATE):
                    assert action.entry is not None
                    entry = action.entry
                    result.puts += 1
                    result.uploaded_bytes += entry.size
                    written = Record.of(fingerprint(entry, acl), entry.sha256, etag, None)
                    new.put(action.key, written)
                    uploaded[action.key] = etag
                else:
                    result.deletes += 1
                    new.drop(action.key)
            if failures:
                result.failures = sorted(failures)
                skipped = len(plan.changes) - len(changed) - len(failures)
                result.error = (
                    f"{len(failures)} of {len(actions)} {label} failed; {skipped} later "
                    "changes, deletes and the CDN invalidation were not made. Run publish "
                    "again to finish:\n  " + "\n  ".join(result.failures)
                )
                break
        _record_keys(options, plan, remote, state, new, uploaded)
        _learn_modified(bucket, prefix, new, changed, pool)
        if result.error is None:
            _invalidate(options, new, changed, bucket, state_key, state, result)
    finally:
        try:
            _save(bucket, options, state, new, result)
        except PublishError as e:
            result.error = result.error or str(e)
        result.pending_invalidations = {d: list(p) for d, p in state.pending.items() if p}


def _learn_modified(
    bucket: Bucket, prefix: str, new: State, changed: list[str], pool: ThreadPoolExecutor
) -> None:
    """A PUT answers with the ETag but not the LastModified the index needs to trust an
    entry; one listing of each host folder written to (concurrently) gives it, so the next
    publish need not look at these objects again."""
    written = {k for k in changed if (r := new.record(k)) is not None and r.modified == UNKNOWN}
    # each top folder, or the key itself when it has none (a --site's `keys.json`)
    folders = sorted({prefix + "".join(k.removeprefix(prefix).partition("/")[:2]) for k in written})
    try:
        listings = list(pool.map(bucket.objects, folders))
    except PublishError as e:
        log.warning("could not list what was written (%s); the next publish checks it", e)
        return
    for listing in listings:
        for key, listed in listing.items():
            record = new.record(key)
            settled = _settled(listed.modified)
            if key in written and record is not None and record.same_etag(listed.etag) and settled:
                new.put(key, record.settled(settled), new.history(key))


def _invalidate(
    options: Options,
    new: State,
    changed: list[str],
    bucket: Bucket,
    state_key: str,
    state: State,
    result: Result,
) -> None:
    """Changed paths join those a failed invalidation left; they are recorded in the index
    before CloudFront is called, and cleared only once it accepted them."""
    distribution = options.distribution_id
    paths = cdn.url_paths(tree_paths(changed, options.prefix, options.site), "") if changed else []
    if distribution is None:
        if new.pending:
            log.warning(
                "paths of an earlier publish still wait for a CloudFront invalidation (%s); "
                "pass --cloudfront-distribution-id to send them",
                ", ".join(sorted(new.pending)),
            )
        return
    pending = sorted({*new.pending.get(distribution, []), *paths})
    if not pending:
        return
    new.pending[distribution] = pending
    _save(bucket, options, state, new, result)
    sent = cdn.batch(pending)
    try:
        result.invalidation_id = cdn.invalidate(distribution, sent)
    except PublishError as e:
        result.error = (
            f"{e}; the {len(pending)} paths are kept in {state_key} and sent by the next "
            "publish (run it again)"
        )
        return
    result.invalidation_paths = sent
    new.pending.pop(distribution, None)
