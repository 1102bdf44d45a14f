"""The state index a deployment keeps under `<prefix>.wellknown-build/`.

What the last publish wrote, per object: its ETag and LastModified, the fingerprint of body
and headers and the body's SHA-256; per JWKS, its kids with their statuses and dates
(publish/history.py). An object's entry is trusted only while the listing shows the same
ETag *and* LastModified: a copy_object that replaced headers or metadata keeps the ETag but
not the LastModified. It also remembers CDN paths still to be invalidated, so a failed
invalidation is sent by the next run.

Format 3 is built to be read and written at millions of objects (README: Design notes, State
index; measured by bench/state_index.py):
- an entry is one string: 77 fixed-width characters (16 of the ETag, LastModified as listed,
  the fingerprint's first 24 hex digits, the SHA-256's first 12), then for a JWKS its kids'
  history; it is sliced when looked at, never decoded into objects in bulk;
- up to INLINE entries live in `state.json` itself; past that, `state.json` says how many
  shards there are (a power of two) and each entry lives in shard crc32(key) mod N, at
  `state/<N>-<i>.json`. Shards are read concurrently; only shards with a changed entry are
  written, each with If-Match on the ETag it had (If-None-Match when new), before
  `state.json`. A shard that is missing, damaged or claims to be another is empty for its
  objects (they are then looked at with HEAD, as without an index).

Keys are stored relative to the prefix. Formats 1 and 2 (a JSON object per entry in
`state.json`) are still read, and replaced by format 3 at the next publish that writes.

The index is input like any bucket object: anything malformed in it is dropped or never
matches, never acted on; and deletes are always checked against the object's own marker, not
against the index.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import jsondoc
from ..errors import PublishError
from .s3 import Bucket, PreconditionFailed

log = logging.getLogger(__name__)
FOLDER = ".wellknown-build/"
STATE_NAME = FOLDER + "state.json"
SHARD_FOLDER = FOLDER + "state/"
LEASE_NAME = FOLDER + "lease.json"
FORMAT = 3
INLINE = 16_384  # entries kept in state.json itself
PER_SHARD = 8_192  # entries a shard is sized for
MAX_SHARDS = 1 << 16
UNKNOWN = "-" * 25  # LastModified not seen yet (after our own PUT): never trusted
_SIZE = 77  # 16 of the ETag, 25 of LastModified, 24 of the fingerprint, 12 of the SHA-256


def short_etag(etag: str) -> str:
    """16 characters that stand for an ETag: an S3 MD5 ETag's first 16 hex digits, else a
    hash of whatever the store sent."""
    if len(etag) == 34 and etag[0] == '"' == etag[-1]:
        return etag[1:17]
    return "h" + hashlib.sha256(etag.encode()).hexdigest()[:15]


def _modified(modified: str | None) -> str:
    """25 characters that stand for a LastModified: itself in its usual form
    (`2026-01-05T12:34:56+00:00`, kept as it is: compared once per object, millions of
    times), else a hash of it."""
    if modified is None:
        return UNKNOWN
    if len(modified) == 25:
        return modified
    return "h" + hashlib.sha256(modified.encode()).hexdigest()[:24]


class Record(NamedTuple):
    """What the index knows of one object, in its stored (shortened) form. (A tuple: publish
    makes one per object, millions at scale.)"""

    fingerprint: str  # first 24 hex digits
    sha256: str  # first 12 hex digits
    etag: str  # short_etag()
    modified: str = UNKNOWN  # _modified()

    @classmethod
    def of(cls, fingerprint: str, sha256: str, etag: str, modified: str | None) -> Record:
        return cls(fingerprint[:24], sha256[:12], short_etag(etag), _modified(modified))

    def same_etag(self, etag: str) -> bool:
        return self.etag == short_etag(etag)

    def settled(self, modified: str) -> Record:
        return Record(self.fingerprint, self.sha256, self.etag, _modified(modified))

    def same_but_modified(self, packed: str) -> bool:
        """Equal to a stored entry but perhaps for LastModified."""
        return self.etag == packed[:16] and f"{self.fingerprint}{self.sha256}" == packed[41:_SIZE]

    def packed(self) -> str:
        return f"{self.etag}{self.modified}{self.fingerprint}{self.sha256}"

    @classmethod
    def unpack(cls, text: str) -> Record:
        return cls(text[41:65], text[65:_SIZE], text[:16], text[16:41])


def expand(short: str, full: str | None) -> str:
    """A recorded (shortened) hash as the full one it stands for, when they agree: what the
    plan compares against the manifest's."""
    return full if full is not None and full.startswith(short) else short


@dataclass
class State:
    """The index as read (or as last written by this run). `objects` holds the stored
    strings by full object key: the entry's 77 characters, then for a JWKS its kids'
    history (publish/history.py). Decode with `record()` and `history()`; change it with
    `put()` and `drop()`, which note what to write."""

    objects: dict[str, str] = field(default_factory=dict)
    # distribution id -> URL paths whose invalidation has not succeeded yet
    pending: dict[str, list[str]] = field(default_factory=dict)
    etag: str = ""  # of state.json as read; "" when there was none (If-None-Match: *)
    shards: int = 0
    shard_etags: dict[str, str] = field(default_factory=dict)  # every object under state/
    format: int = FORMAT
    # the keys in each shard as read or written, so that a write of one shard need not sort
    # millions of keys into shards again; None when unknown
    members: list[list[str]] | None = field(default=None, compare=False, repr=False)
    touched: set[str] = field(default_factory=set, compare=False, repr=False)

    def record(self, key: str) -> Record | None:
        found = self.objects.get(key)
        return Record.unpack(found) if found is not None else None

    def trusted(self, key: str, etag: str, modified: str) -> tuple[str, str] | None:
        """The recorded (shortened) fingerprint and SHA-256 of an object, if the listing
        shows it as it was recorded: the same ETag and LastModified."""
        found = self.objects.get(key)
        if found is None or found[16:17] == "-":  # LastModified not recorded yet
            return None
        if found[16:41] != (modified if len(modified) == 25 else _modified(modified)):
            return None
        if found[:16] != (etag[1:17] if len(etag) == 34 else short_etag(etag)):
            return None
        return found[41:65], found[65:_SIZE]

    def history(self, key: str) -> str:
        """A JWKS's kids as stored ("" when there are none)."""
        return self.objects.get(key, "")[_SIZE:]

    def put(self, key: str, record: Record, history: str = "") -> None:
        self.objects[key] = record.packed() + history
        self.touched.add(key)

    def drop(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            self.touched.add(key)

    def copy(self) -> State:
        """To change and then save over this one."""
        return State(
            dict(self.objects),
            {d: list(p) for d, p in self.pending.items()},
            self.etag,
            self.shards,
            dict(self.shard_etags),
            self.format,
        )


def shard_of(relative: str, shards: int) -> int:
    return zlib.crc32(relative.encode("utf-8")) & (shards - 1)


def shard_count(entries: int, current: int) -> int:
    """Inline up to INLINE entries; past that about PER_SHARD per shard, a power of two. The
    count changes only when it is 4 times off, so a growing fleet reshards rarely."""
    if entries <= (INLINE if current == 0 else INLINE // 2):
        return 0
    ideal = 1
    while ideal * PER_SHARD < entries and ideal < MAX_SHARDS:
        ideal *= 2
    if current and current // 4 < ideal < current * 4:
        return current
    return ideal


def shard_name(home: str, shards: int, index: int) -> str:
    """`home`: the folder of the index (`<prefix>.wellknown-build/`, or a site's)."""
    return f"{home}state/{shards}-{index}.json"


# Reading


def _pending(raw: object) -> dict[str, list[str]]:
    return {
        d: [p for p in paths if isinstance(p, str) and p.startswith("/")]
        for d, paths in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(d, str) and isinstance(paths, list)
    }


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 4096 else None


def _old_record(raw: object) -> str | None:
    """An entry of formats 1 and 2 (a JSON object with the full values), as format 3's."""
    if not isinstance(raw, Mapping):
        return None
    fingerprint, sha256, etag = (_text(raw.get(n)) for n in ("fingerprint", "sha256", "etag"))
    if not (fingerprint and sha256 is not None and etag):
        return None
    return Record.of(fingerprint, sha256, etag, _text(raw.get("modified"))).packed()


def _entries(raw: object, prefix: str) -> dict[str, str]:
    """The entries, by full key; any that is not a string is dropped. (Each is read by
    slicing, so a short or garbled one is simply never trusted; one in the wrong shard does no
    harm either: the next write of its own shard puts it right.)"""
    if not isinstance(raw, dict):
        return {}
    if not all(type(v) is str for v in raw.values()):
        raw = {k: v for k, v in raw.items() if type(v) is str}
    return {prefix + k: v for k, v in raw.items()} if prefix else raw


def _parse_root(data: bytes, etag: str, key: str, prefix: str) -> State:
    try:
        raw = jsondoc.loads(data)
        if not isinstance(raw, dict) or raw.get("format") not in (1, 2, FORMAT):
            raise ValueError("not a state index")
    except ValueError:
        log.warning("%s is unreadable; checking every object's metadata instead", key)
        return State(etag=etag)
    state = State(pending=_pending(raw.get("pending_invalidations")), etag=etag)
    if raw["format"] != FORMAT:
        state.format = raw["format"]
        old = raw.get("objects")
        for name, item in old.items() if isinstance(old, dict) else ():
            packed = _old_record(item)
            if isinstance(name, str) and packed is not None:
                state.objects[name] = packed
        return state
    shards = raw.get("shards")
    if type(shards) is not int or not (0 <= shards <= MAX_SHARDS) or shards & (shards - 1):
        log.warning("%s names no valid shard count; checking every object's metadata", key)
        return state
    state.shards = shards
    if shards == 0:
        state.objects = _entries(raw.get("objects"), prefix)
    return state


def _parse_shard(data: bytes, key: str, index: int, shards: int) -> Any:
    try:
        raw = jsondoc.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError("not a shard")
        if raw.get("shard") != [index, shards]:
            raise ValueError("another shard's")
    except ValueError as e:
        log.warning("%s is unreadable (%s); checking its objects' metadata instead", key, e)
        return {}
    return raw.get("objects")


def load(bucket: Bucket, prefix: str, pool: ThreadPoolExecutor, home: str | None = None) -> State:
    """The deployment's state index, or an empty one (then every object is looked at).
    `home`: the index's folder, `<prefix>.wellknown-build/` unless a site's."""
    home = prefix + FOLDER if home is None else home
    key = home + "state.json"
    found = bucket.get(key)
    if found is None:
        return State()
    state = _parse_root(found[0], found[1], key, prefix)
    if state.shards == 0:
        return state
    listed = bucket.objects(home + "state/")
    state.shard_etags = {k: v.etag for k, v in listed.items()}
    names = [shard_name(home, state.shards, i) for i in range(state.shards)]

    def fetch(index: int) -> tuple[bytes, str] | None:
        return bucket.get(names[index]) if names[index] in listed else None

    # Fetched concurrently, parsed here as they come, in order: parsed in the fetching
    # threads, they took turns at the GIL with this merge (1.25 s against 1.05 s for 2,000,000
    # objects in memory).
    state.members = []
    cut = len(prefix)
    for index, got in enumerate(pool.map(fetch, range(state.shards))):
        objects: dict[str, str] = {}
        etag = None
        if got is not None:
            objects = _entries(_parse_shard(got[0], names[index], index, state.shards), prefix)
            etag = got[1]
        state.objects.update(objects)
        state.members.append([k[cut:] for k in objects] if cut else list(objects))
        if etag is not None:
            state.shard_etags[names[index]] = etag
    return state


# Writing


def _relative(section: Mapping[str, str], prefix: str) -> dict[str, str]:
    if not prefix:
        return dict(sorted(section.items()))
    return {k[len(prefix) :]: v for k, v in sorted(section.items()) if k.startswith(prefix)}


def _all_parts(
    new: State, prefix: str, shards: int
) -> tuple[dict[int, dict[str, str]], list[list[str]]]:
    """Every shard with its entries (a first write, a new shard count), and their keys. (In
    no particular order: sorting 2,000,000 keys took longer than the rest.)"""
    cut, mask = len(prefix), shards - 1
    split: list[dict[str, str]] = [{} for _ in range(shards)]
    crc32 = zlib.crc32
    for key, value in new.objects.items():
        relative = key[cut:]
        split[crc32(relative.encode()) & mask][relative] = value
    return dict(enumerate(split)), [list(part) for part in split]


def _changed_parts(
    old: State, new: State, changed: set[str], prefix: str, shards: int
) -> tuple[dict[int, dict[str, str]], list[list[str]]]:
    """The shards of the changed keys with their entries, and every shard's keys."""
    assert old.members is not None
    cut, members = len(prefix), list(old.members)
    routed: dict[int, list[str]] = {}
    for key in changed:
        routed.setdefault(shard_of(key[cut:], shards), []).append(key[cut:])
    parts = {}
    for index, added in routed.items():
        keys = [k for k in dict.fromkeys([*members[index], *added]) if prefix + k in new.objects]
        members[index] = keys
        parts[index] = {k: new.objects[prefix + k] for k in keys}
    return parts, members


def _write(bucket: Bucket, key: str, body: dict[str, Any], if_match: str) -> str:
    try:
        return bucket.put_json(key, body, if_match=if_match)
    except PreconditionFailed:
        raise PublishError(
            f"{key} was changed by someone else during this publish; run publish again"
        ) from None


def save(bucket: Bucket, prefix: str, old: State, new: State, home: str | None = None) -> int:
    """Write what changed between `old` (as read, or as last written) and `new`: the changed
    shards first, then `state.json`; each conditional on the ETag this run saw. `old` then
    describes what is in the bucket. Returns the number of objects written."""
    home = prefix + FOLDER if home is None else home
    shards = shard_count(len(new.objects), old.shards if old.format == FORMAT else 0)
    whole = shards != old.shards or old.format != FORMAT or (shards and old.members is None)
    changed = (
        set() if whole else {k for k in new.touched if old.objects.get(k) != new.objects.get(k)}
    )
    new.touched.clear()
    if not (whole or changed or new.pending != old.pending):
        return 0
    members: list[list[str]] | None = None
    written = 0
    etags = dict(old.shard_etags)
    if shards and shards != old.shards:  # a new shard set: what is already there?
        etags = {k: v.etag for k, v in bucket.objects(home + "state/").items()}
    if shards:
        if whole:
            parts, members = _all_parts(new, prefix, shards)
        else:
            parts, members = _changed_parts(old, new, changed, prefix, shards)

        def put(index: int) -> tuple[str, str]:
            name = shard_name(home, shards, index)
            body = {"format": FORMAT, "shard": [index, shards], "objects": parts[index]}
            return name, _write(bucket, name, body, etags.get(name, ""))

        with ThreadPoolExecutor(max(1, min(16, len(parts)))) as pool:
            for name, etag in pool.map(put, sorted(parts)):
                etags[name] = etag
                written += 1
    root: dict[str, Any] = {"format": FORMAT, "shards": shards}
    if not shards:
        root["objects"] = _relative(new.objects, prefix)
    root["pending_invalidations"] = {d: sorted(p) for d, p in sorted(new.pending.items()) if p}
    if shards == 0 or shards != old.shards or new.pending != old.pending or old.format != FORMAT:
        old.etag = _write(bucket, home + "state.json", root, old.etag)
        written += 1
    current = {shard_name(home, shards, i) for i in range(shards)}
    for name in sorted(set(etags) - current):  # another shard count's, now unused
        try:
            bucket.delete(name, if_match=etags.pop(name))
        except PublishError as e:
            log.warning("could not remove %s, an unused shard of the state index: %s", name, e)
    old.objects = dict(new.objects)
    old.pending = {d: list(p) for d, p in new.pending.items()}
    old.shards, old.shard_etags, old.format, old.members = shards, etags, FORMAT, members
    return written
