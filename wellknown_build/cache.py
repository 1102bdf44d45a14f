"""What a render knows about the last one: `DIR/.wellknown-build.cache`, an SQLite database.

Per instance, a fingerprint of everything its documents depend on (its configuration after
defaults, the bytes of its key files, the templates, the tool's version, which keys are past
their not_after) and its kids; per output file, its manifest line and the stat data seen
after writing it; per key file, the stat data and SHA-256 — the way git's index finds
unchanged files without reading them. A later render rebuilds an instance only if its
fingerprint changed or one of its output files is not as the cache saw it; a key file is read
only if its stat data changed.

Why SQLite (Python's own sqlite3): a million issuers are two million files. Held as Python
objects, the last render's manifest and cache alone would take gigabytes; on disk with an
index, a render looks up one instance at a time and keeps memory flat. The same database,
created fresh for each run, finds duplicate paths and a file standing where another needs a
folder. It is written beside the old one and renamed over it at the end, so a killed render
leaves the old cache (or none), never half of one.

The cache is a hint, checked against the disk. Anything unexpected — not a database, another
schema, a value of the wrong type — makes it count as absent: a full render, never a wrong
tree. It stays separate from the manifest, which is deterministic (no mtimes) and is what
publish reads.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath
from typing import TypeVar

from .files import create_new, read_regular

log = logging.getLogger(__name__)
T = TypeVar("T")
CACHE_NAME = ".wellknown-build.cache"
# The cache's stat data as the render that wrote it left it (seal(), Index.sealed()).
SEAL_NAME = CACHE_NAME + ".seal"
ADOPTING = ".adopt"  # after the name of the index being made: its copy of the last cache
FORMAT = "4"
# Part of every fingerprint: an upgrade rebuilds everything once.
VERSION = f"4/{importlib.metadata.version('wellknown-build')}"

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
# Values bound in one statement's IN (...): SQLite before 3.32 allows 999 in all.
IN_LIST = 500
# An instance as the cache has it: seq, id, fingerprint, kids, and its files (path, manifest
# line, stat data)
CachedInstance = tuple[int, str, str, str, list[tuple[str, str, "Stat | None"]]]
# An instance of an included file kept unread: seq, id, its files (path, stat data)
KeptInstance = tuple[int, str, list[tuple[str, "Stat | None"]]]

_SCHEMA = (
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE instances(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "fingerprint TEXT, kids TEXT NOT NULL)",
    "CREATE TABLE files(path TEXT PRIMARY KEY, seq INTEGER NOT NULL, line TEXT NOT NULL, "
    "size INTEGER, mtime INTEGER, ctime INTEGER, ino INTEGER, staged INTEGER NOT NULL)",
    "CREATE INDEX files_seq ON files(seq)",
    "CREATE TABLE keys(path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime INTEGER NOT NULL, "
    "ctime INTEGER NOT NULL, ino INTEGER NOT NULL, sha256 TEXT NOT NULL)",
    "CREATE TABLE folders(path TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE owned(path TEXT PRIMARY KEY)",
    # An included file whose instances were all built without a problem, warning or notice,
    # and depend on nothing but the file's text, the main file's settings and key files: its
    # digest over those, its key files with their SHA-256 ([[path, sha256], ...]), the seq
    # range of its instances, the SHA-256 of their ids (a JSON list) and their number of
    # key entries.
    "CREATE TABLE sources(name TEXT PRIMARY KEY, digest TEXT NOT NULL, keys TEXT NOT NULL, "
    "first INTEGER NOT NULL, last INTEGER NOT NULL, ids TEXT NOT NULL, "
    "key_count INTEGER NOT NULL)",
)


def stat_of(path: str, *, follow: bool = True) -> Stat | None:
    """Stat data as git's index keeps it. ctime too: restoring an mtime (touch -r, utime)
    changes the ctime. Followed through symbolic links by default: a key file is often a
    link whose target changes (a Kubernetes secret volume swaps `..data`)."""
    try:
        info = os.stat(path, follow_symlinks=follow)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return stat_data(info)


def stat_data(info: os.stat_result) -> Stat:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def sqlite_name(path: str) -> str:
    """`path` as SQLite is to be given it: absolute, and on POSIX with symbolic links resolved.
    SQLite makes a name absolute by text, so `link/../out` would name `./out`, not the folder
    the system opens (the link's parent's `out`). Windows resolves `..` by text itself; there
    the path stays as given (a resolved mapped drive would be a UNC path, see read_only_uri)."""
    return os.path.realpath(path) if os.name == "posix" else os.path.abspath(path)


def read_only_uri(path: PurePath) -> str | None:
    """The SQLite URI that opens the absolute `path` read-only, or None where a URI cannot
    name it: a Windows UNC path (SQLite wants an empty authority). Made from the path as
    given, not Path.resolve(), which on Windows turns a mapped drive into a UNC path."""
    uri = path.as_uri()  # file:///C:/... on Windows; `?` and `#` in names are escaped
    return f"{uri}?mode=ro" if uri.startswith("file:///") else None


def seal(out: Path) -> None:
    """Record the stat data of the cache a render has just saved in `out` (after the
    manifest it goes with), for Index.sealed(). Only a hint: on any failure there is none,
    and a seal left from before names another file's stat data (a new inode or ctime)."""
    name = out / SEAL_NAME
    scratch = out / (SEAL_NAME + ".wkb.tmp")
    seen = stat_of(str(out / CACHE_NAME), follow=False)
    if seen is None:
        with contextlib.suppress(OSError):
            os.unlink(name)
        return
    try:
        with create_new(scratch) as handle:  # (a link or FIFO there is never written through)
            handle.write(json.dumps(seen).encode())
        os.replace(scratch, name)
    except OSError as e:
        log.warning(
            "cannot write %s (%s): the next render compares the cache with the manifest line "
            "by line",
            name,
            e.strerror or e,
        )
        for stale in (scratch, name):
            with contextlib.suppress(OSError):
                os.unlink(stale)


# The types are checked by SQLite: a row of the wrong types is left out, stat data of the
# wrong types reads as none. (Instances and files are read apart and matched by seq: checked
# in Python and joined in SQL, they were a third of a no-change render.)
_KEPT_IDS = (
    "SELECT seq, id FROM instances WHERE seq BETWEEN ? AND ? AND typeof(seq) = 'integer' "
    "AND typeof(id) = 'text' ORDER BY seq"
)
_KEPT_FILES = (
    "SELECT seq, path, size, mtime, ctime, ino, typeof(size) = 'integer' "
    "AND typeof(mtime) = 'integer' AND typeof(ctime) = 'integer' AND typeof(ino) = 'integer' "
    "FROM files WHERE seq BETWEEN ? AND ? AND typeof(path) = 'text' ORDER BY seq, rowid"
)
# `{}`: one placeholder per id (_marks); the ids themselves are bound
_INSTANCES = (
    "SELECT seq, id, fingerprint, kids, path, line, size, mtime, ctime, ino FROM instances "
    "JOIN files USING (seq) WHERE id IN {} ORDER BY seq, files.rowid"
)


def _parts(values: list[T]) -> Iterator[tuple[T, ...]]:
    """`values` IN_LIST at a time, each part a tuple to bind in one statement's IN (...)."""
    for start in range(0, len(values), IN_LIST):
        yield tuple(values[start : start + IN_LIST])


def _marks(values: tuple[object, ...] | list[str]) -> str:
    """`(?,?,...)`: one placeholder per value, for IN (no value is ever put in SQL text)."""
    return f"({','.join('?' * len(values))})"


def _file_row(path: str, seq: int, line: str, stat: Stat | None, staged: int) -> tuple[object, ...]:
    return (path, seq, line, *(stat or (None, None, None, None)), staged)


def _stat(row: tuple[object, ...]) -> Stat | None:
    if len(row) == 4 and all(type(n) is int for n in row):
        return (row[0], row[1], row[2], row[3])  # type: ignore[return-value]
    return None


def _scratch(path: str | None) -> sqlite3.Connection:
    """A connection to the database being made at `path` (in memory without), in a
    transaction. URIs are on, for attach(): an absolute path never reads as one."""
    db = sqlite3.connect(sqlite_name(path) if path else ":memory:", isolation_level=None, uri=True)
    try:
        # A scratch file renamed into place at the end: no rollback journal is needed.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
    except sqlite3.Error:
        db.close()
        raise
    return db


def seq_ranges(count: int, skipped: list[int]) -> list[tuple[int, int]]:
    """1..count without the sorted seqs `skipped`, as ranges."""
    ranges, start = [], 1
    for seq in [*skipped, count + 1]:
        if start < seq:
            ranges.append((start, seq - 1))
        start = seq + 1
    return ranges


def _gaps(ranges: list[tuple[int, int]]) -> Iterator[tuple[str, tuple[int, ...]]]:
    """WHERE clauses on `seq` for everything outside the ranges, in ascending order (NULL,
    which SQLite sorts first, falls in the first; text, sorted after every number, in the
    last)."""
    merged: list[list[int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1]:  # (not next to it: a seq of 5.5 is neither)
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    if not merged:
        yield "1", ()
        return
    yield "(seq < ? OR seq IS NULL)", (merged[0][0],)  # (NULL: only in a damaged file)
    for (_, end), (start, _) in itertools.pairwise(merged):
        yield "seq > ? AND seq < ?", (end, start)
    yield "seq > ?", (merged[-1][1],)


class Index:
    """One render's database: the previous render's (read-only) or the one being made."""

    def __init__(
        self, connection: sqlite3.Connection, path: str | None = None, kept: bool = True
    ) -> None:
        self.db = connection
        self.path = path  # the file being written; None in memory or when read-only
        self.kept = kept  # save() keeps it for the next render (else only this run's)
        # Output files of a run that found everything as the last render left it: their rows
        # were not copied (the last cache stays), but they count as this run's.
        self.mirrored = 0
        self.uri: str | None = None  # the last render's, read-only: what attach() opens
        self._own_last = False  # stale() reads the last cache's files as owned
        self._copied_last: list[tuple[int, int]] = []  # seq ranges copy_rows() copied
        self.stat: Stat | None = None  # previous(): the file's stat data when opened
        self.file: str | None = None  # previous(): the file
        self.rebuilt: list[int] | None = None  # adopt(): the seqs rebuilt in place
        self.manifest_stat: Stat | None = None  # previous(): the manifest's, as it names them

    def attach(self, last: Index) -> None:
        """The last render's cache, read-only, as `last` in this one's statements: rows are
        copied from it without a trip through Python (copy_rows; stale() reads its files)."""
        assert last.uri is not None
        self.db.execute("COMMIT")  # (no ATTACH inside a transaction)
        try:
            self.db.execute("ATTACH DATABASE ? AS last", (last.uri,))
        finally:
            self.db.execute("BEGIN")

    @classmethod
    def new(cls, path: str | None = None, kept: bool = True) -> Index:
        """A fresh database at `path` (replaced if there), or in memory. `kept`: save() puts
        it where the next render finds it (else it is this run's scratch only)."""
        if path is not None:
            for stale in (path, path + ADOPTING):  # (the second: left by a killed adopt())
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
        db = _scratch(path)
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
            db.execute("INSERT INTO meta VALUES ('version', ?)", (VERSION,))
        except sqlite3.Error:
            cls(db, path).discard()
            raise
        return cls(db, path, kept)

    @classmethod
    def previous(cls, out: Path, manifest_name: str) -> Index | None:
        """The last render's cache of `out`, if this version wrote it together with the
        manifest there (same stat data); else None."""
        path = out / CACHE_NAME
        if not path.is_file() or path.is_symlink():
            return None
        uri = read_only_uri(Path(sqlite_name(str(path))))
        if uri is None:
            return None
        db: sqlite3.Connection | None = None
        before = stat_of(str(path), follow=False)
        try:
            db = sqlite3.connect(uri, uri=True)
            db.execute("PRAGMA query_only=ON")
            db.execute("PRAGMA trusted_schema=OFF")
            schema = [
                r[0]
                for r in db.execute(
                    "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
                )
            ]
            # Exactly our tables, no view or trigger: only then is a SELECT what it reads.
            if schema != list(_SCHEMA) or cls(db).meta("version") != VERSION:
                raise sqlite3.DatabaseError("not this version's cache")
            seen = stat_of(str(out / manifest_name), follow=False)
            if seen is None or cls(db).meta("manifest") != json.dumps(seen):
                raise sqlite3.DatabaseError("written with another manifest")
        except (sqlite3.Error, ValueError, OSError):
            if db is not None:
                db.close()
            return None
        found = cls(db)
        found.uri = uri
        found.manifest_stat = seen
        found.stat = before if before == stat_of(str(path), follow=False) else None
        found.file = str(path)
        return found

    def sealed(self, out: Path) -> bool:
        """Whether this last cache is the very file a render left, by the seal it wrote
        beside it (seal()): the cache's stat data then, as git trusts its index. That render
        wrote the manifest from these rows, and previous() found that manifest's stat data
        unchanged too, so the rows still mirror it without reading them all. The file must
        be as it was when opened, too (rows copied since were read from it). Anything else at
        SEAL_NAME (missing, another file's, not a file) says no: the rows are checked. (As
        with git's index, a change within the same clock tick as the render's own last write,
        keeping the size, would not show; only a process writing the cache while the render
        that made it still held the lock could do that.)"""
        if self.stat is None or self.file is None:
            return False
        if stat_of(self.file, follow=False) != self.stat:
            return False
        try:
            found = read_regular(out / SEAL_NAME, 4096, follow=False)
        except OSError:
            return False
        return found == json.dumps(self.stat).encode()

    # -- reading (both sides) ------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE name=?", (name,))
        return row[0] if row and isinstance(row[0], str) else None

    def instances_files(
        self, idents: list[str]
    ) -> dict[str, tuple[int, str, str, list[tuple[str, str, Stat | None]]]]:
        """Per instance id, its seq, fingerprint, kids and files (path, manifest line, stat
        data), for many ids in one query each IN_LIST: a re-render asks for every instance."""
        found = {}
        for part in _parts(idents):
            for seq, ident, fingerprint, kids, files in self._instances(part):
                found[ident] = (seq, fingerprint, kids, files)
        return found

    def source(self, name: str) -> tuple[str, str, int, int, str, int] | None:
        """The sources row of an included file: digest, keys, first, last, ids, key_count."""
        row = self._one(
            "SELECT digest, keys, first, last, ids, key_count FROM sources WHERE name=?", (name,)
        )
        if row is None or not all(isinstance(row[i], str) for i in (0, 1, 4)):
            return None
        if not all(type(row[i]) is int for i in (2, 3, 5)):
            return None
        return row  # type: ignore[return-value]

    def kept_between(self, first: int, last: int) -> list[KeptInstance]:
        """The instances first..last, in order: seq, id and files (path, stat data); an
        instance without files, or a value of the wrong type, is left out."""
        ids: dict[object, object] = dict(self._all(_KEPT_IDS, (first, last)))  # type: ignore[arg-type]
        found: list[KeptInstance] = []
        files: list[tuple[str, Stat | None]] = []
        current = None
        for row in self._all(_KEPT_FILES, (first, last)):
            if row[0] != current:
                current, files = row[0], []
                if current in ids:
                    found.append((current, ids[current], files))  # type: ignore[arg-type]
            files.append((row[1], row[2:6] if row[6] else None))  # type: ignore[arg-type]
        return found

    def _instances(self, idents: tuple[str, ...]) -> list[CachedInstance]:
        """(seq, id, fingerprint, kids, files: path, manifest line, stat data) of the
        instances `idents`, in order; an instance without files, or a value of the wrong
        type, is left out."""
        found: list[CachedInstance] = []
        for row in self._all(_INSTANCES.format(_marks(idents)), idents):
            seq, ident, fingerprint, kids, path, line = row[:6]
            if not (
                type(seq) is int
                and isinstance(ident, str)
                and isinstance(fingerprint, str)
                and isinstance(kids, str)
                and isinstance(path, str)
                and isinstance(line, str)
            ):
                continue
            if not found or found[-1][0] != seq:
                found.append((seq, ident, fingerprint, kids, []))
            found[-1][4].append((path, line, _stat(row[6:])))
        return found

    def paths_agree(self) -> bool:
        """Whether every file row is text and its manifest line names its own path first
        (`{"path":"<path>",`: a path render writes has no character JSON escapes)."""
        row = self._one(
            "SELECT count(*) FROM files WHERE typeof(path) != 'text' OR typeof(line) != 'text' "
            "OR instr(path, '\"') OR substr(line, 1, length(path) + 11) != "
            "'{\"path\":\"' || path || '\",'",
            (),
        )
        return row == (0,)

    def file_stat(self, path: str) -> Stat | None:
        row = self._one("SELECT size, mtime, ctime, ino FROM files WHERE path=?", (path,))
        return _stat(row) if row else None

    def key(self, path: str) -> tuple[Stat, str] | None:
        row = self._one("SELECT size, mtime, ctime, ino, sha256 FROM keys WHERE path=?", (path,))
        stat = _stat(row[:4]) if row else None
        return (stat, row[4]) if stat and row and isinstance(row[4], str) else None

    def count(self, table: str) -> int:
        assert table in ("instances", "files", "keys", "owned")
        row = self._one(f"SELECT count(*) FROM {table}", ())  # noqa: S608 - a fixed name
        return row[0] if row and type(row[0]) is int else -1

    def lines(self, batch: int = 4096) -> Iterator[list[str]]:
        """The manifest's lines, in order (instances in configuration order), `batch` at a
        time: fetched and joined a line at a time, they were a tenth of a re-render."""
        rows = self.db.execute("SELECT line FROM files ORDER BY seq, rowid")
        while found := rows.fetchmany(batch):
            yield [line for (line,) in found]

    def staged(self, created: bool) -> Iterator[str]:
        """Paths written this run: new files, or files replaced. (In an index that adopted
        the last cache only rows of the instances rebuilt are staged: looked up by seq, not
        found by reading every row.)"""
        flag = 1 if created else 2
        if self.rebuilt is None:
            query = "SELECT path FROM files WHERE staged=? ORDER BY seq, rowid"
            yield from (p for (p,) in self._iter(query, (flag,)))
            return
        for part in _parts(self.rebuilt):
            query = f"SELECT path FROM files WHERE seq IN {_marks(part)} AND staged=?"  # noqa: S608
            yield from (p for (p,) in self._iter(query + " ORDER BY seq, rowid", (*part, flag)))

    def stale(self) -> Iterator[str]:
        """Paths the last render owned that this one does not write, in their order: the
        last cache's files (own_last), then the rest of `owned`."""
        yield from self.stale_last()
        yield from self.stale_owned()

    def stale_last(self) -> Iterator[str]:
        """The last cache's files (own_last) this render does not write. Files of instances
        that copy_rows() copied are written again under the same path: only the last
        cache's rows between those seq ranges are looked at (by the seq index)."""
        if self._own_last:
            anti = (
                "SELECT path FROM last.files AS l WHERE {} AND typeof(path) = 'text' "
                "AND NOT EXISTS (SELECT 1 FROM main.files AS f WHERE f.path = l.path) "
                "ORDER BY seq, rowid"
            )
            for where, args in _gaps(self._copied_last):
                yield from (p for (p,) in self._iter(anti.format(where), args))

    def stale_owned(self) -> Iterator[str]:
        """The other paths owned (add_owned) that this render does not write."""
        also = " AND path NOT IN (SELECT path FROM last.files)" if self._own_last else ""
        yield from (
            p
            for (p,) in self._iter(
                "SELECT path FROM owned WHERE path NOT IN (SELECT path FROM main.files)"  # noqa: S608
                f"{also} ORDER BY rowid"
            )
        )

    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        try:
            row: tuple[object, ...] | None = self.db.execute(sql, args).fetchone()
        except sqlite3.Error:
            return None
        return row

    def _all(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error:
            return []

    def _iter(self, sql: str, args: tuple[object, ...] = ()) -> Iterator[tuple[str]]:
        yield from self.db.execute(sql, args)

    # -- writing (the new side) ----------------------------------------------------------

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def add_instance(self, seq: int, ident: str, fingerprint: str | None, kids: str) -> None:
        self.db.execute(
            "INSERT INTO instances VALUES (?, ?, ?, ?)", (seq, ident, fingerprint, kids)
        )

    def add_file(
        self, path: str, seq: int, line: str, stat: Stat | None, staged: int = 0
    ) -> str | None:
        """Record an output file; if another instance writes it already, that one's id."""
        try:
            self.db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _file_row(path, seq, line, stat, staged),
            )
        except sqlite3.IntegrityError:
            return self._owner("files", path)
        return None

    def add_rows(
        self,
        instances: list[tuple[int, str, str | None, str]],
        files: list[tuple[str, int, str, Stat | None, int]],
        folders: list[tuple[str, int]],
    ) -> bool:
        """Many instances' rows at once (executemany: a statement per row was most of a
        no-change render), if no file clashes with another file or folder; else none of
        them, and False: the caller then records them one by one, to say which clash.

        Checked here: a file path taken already (the primary key), a new file standing
        where any instance needs a folder, and a folder of `folders` where a file stands."""
        if not instances:
            return True
        first = instances[0][0]
        try:
            self.db.executemany("INSERT INTO instances VALUES (?, ?, ?, ?)", instances)
            self.db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_file_row(*f) for f in files),
            )
            self.db.executemany("INSERT OR IGNORE INTO folders VALUES (?, ?)", folders)
            clash = self._one(
                "SELECT 1 FROM files JOIN folders USING (path) WHERE files.seq >= ? LIMIT 1",
                (first,),
            )
            for part in _parts([path for path, _ in folders]):
                if clash:
                    break
                clash = self._one(f"SELECT 1 FROM files WHERE path IN {_marks(part)}", part)  # noqa: S608
        except sqlite3.IntegrityError:
            clash = (1,)
        if clash:  # undone row by row: with journal_mode=OFF, ROLLBACK does not work
            for table in ("instances", "files", "folders"):
                self.db.execute(f"DELETE FROM {table} WHERE seq >= ?", (first,))  # noqa: S608
        return not clash

    def adopt(self, last: Index, count: int) -> bool:
        """Become a copy of the last render's cache (attached) with this run's rows in place
        of its rows of the same seqs, and none past `count`: for a run that found every
        instance where the last render had it and rebuilt some in place, a copy of the file
        and a few statements, where copy_rows() would insert every row again (a third of a
        re-render with one tenant changed). The copy's rows are those copy_rows() would copy
        (1..count, without this run's seqs), staged flags cleared; its other tables are this
        run's. False, and this index as it was, when it is in memory, the last cache's file
        is not the one opened (its stat data), a path of this run's rows is taken by a kept
        row, or anything fails: the caller then copies the rows."""
        if self.path is None or last.file is None or last.stat is None:
            return False
        copy = self.path + ADOPTING
        rows = self._all("SELECT seq FROM instances ORDER BY seq", ())
        fresh = [seq for (seq,) in rows if type(seq) is int and 1 <= seq <= count]
        if len(fresh) != len(rows):
            return False
        try:
            shutil.copyfile(last.file, copy)
            if stat_of(last.file, follow=False) != last.stat:
                raise OSError("the last cache changed")
            self.db.execute("COMMIT")
            self.db.execute("ATTACH DATABASE ? AS adopted", (sqlite_name(copy),))
        except (OSError, sqlite3.Error):
            self._drop_copy(copy)
            return False
        try:
            self.db.execute("PRAGMA adopted.journal_mode=OFF")
            self.db.execute("PRAGMA adopted.synchronous=OFF")
            self.db.execute("BEGIN")
            kept = (
                "typeof(seq) = 'integer' AND seq BETWEEN 1 AND ? "
                "AND seq NOT IN (SELECT seq FROM main.instances)"
            )
            for table in ("instances", "files"):
                self.db.execute(f"DELETE FROM adopted.{table} WHERE NOT ({kept})", (count,))  # noqa: S608
            self.db.execute("UPDATE adopted.files SET staged = 0 WHERE staged != 0")
            self.db.execute("INSERT INTO adopted.instances SELECT * FROM main.instances")
            self.db.execute("INSERT INTO adopted.files SELECT * FROM main.files ORDER BY rowid")
            for table in ("meta", "keys", "folders", "owned", "sources"):
                self.db.execute(f"DELETE FROM adopted.{table}")  # noqa: S608 - fixed names
                self.db.execute(f"INSERT INTO adopted.{table} SELECT * FROM main.{table}")  # noqa: S608
            self.db.execute("COMMIT")
            self.db.execute("DETACH DATABASE adopted")
        except sqlite3.Error:
            self._drop_copy(copy)
            return False
        self.db.close()
        try:
            os.replace(copy, self.path)
            adopted = True
        except OSError:  # this index's file is as it was
            with contextlib.suppress(OSError):
                os.unlink(copy)
            adopted = False
        self.db = _scratch(self.path)
        self.attach(last)
        if adopted:
            self._copied_last = seq_ranges(count, fresh)
            self.rebuilt = sorted(fresh)
        return adopted

    def replaced(self) -> list[tuple[list[str], list[str]]] | None:
        """For an index that adopted the last cache (attached): per instance rebuilt in
        place, in order, its manifest lines in the last cache and in this one; what turns the
        last manifest into this one (manifest.patch). None when adopt() dropped a row of the
        last cache that was not rebuilt (past the instances of this run, or damaged), or a
        rebuilt instance has no line or one that is not text on either side: only the whole
        manifest then says what is listed. Raises sqlite3.Error."""
        if self.rebuilt is None:
            return None
        if self._count_outside("main") != self._count_outside("last"):
            return None
        query = "SELECT line FROM {}.files WHERE seq = ? ORDER BY rowid"
        blocks = []
        for seq in self.rebuilt:
            old = [line for (line,) in self.db.execute(query.format("last"), (seq,))]
            new = [line for (line,) in self.db.execute(query.format("main"), (seq,))]
            if not (old and new and all(type(line) is str for line in (*old, *new))):
                return None
            blocks.append((old, new))
        return blocks

    def _count_outside(self, schema: str) -> int:
        """How many file rows `schema` has of instances not rebuilt (adopt())."""
        assert self.rebuilt is not None
        total = self.db.execute(f"SELECT count(*) FROM {schema}.files").fetchone()[0]  # noqa: S608
        for part in _parts(self.rebuilt):
            total -= self.db.execute(
                f"SELECT count(*) FROM {schema}.files WHERE seq IN {_marks(part)}",  # noqa: S608
                part,
            ).fetchone()[0]
        return int(total)

    def _drop_copy(self, copy: str) -> None:
        """After a failed adopt(): the copy gone, this index in a transaction again."""
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("COMMIT")
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("DETACH DATABASE adopted")
        with contextlib.suppress(OSError):
            os.unlink(copy)
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def copy_rows(self, first: int, last: int, offset: int) -> bool:
        """The last render's instances first..last (attach()) with their files, at seq +
        `offset`; False, and nothing copied, if one is missing, a path is taken or the
        last cache cannot be read (damaged: so is a write failure here, found again when
        the render starts over without it). Files and folders are not checked against
        each other: see clashes()."""
        try:
            copied = self.db.execute(
                "INSERT INTO instances SELECT seq + ?, id, fingerprint, kids FROM last.instances "
                "WHERE seq BETWEEN ? AND ?",
                (offset, first, last),
            ).rowcount
            self.db.execute(
                "INSERT INTO files SELECT path, seq + ?, line, size, mtime, ctime, ino, 0 "
                "FROM last.files WHERE seq BETWEEN ? AND ? ORDER BY seq, rowid",
                (offset, first, last),
            )
            if copied == last - first + 1:
                if last >= first:  # (an empty range would overlap the gaps around it)
                    self._copied_last.append((first, last))
                return True
        except sqlite3.Error:
            pass
        with contextlib.suppress(sqlite3.Error):
            for table in ("instances", "files"):
                self.db.execute(f"DELETE FROM {table} WHERE seq >= ?", (first + offset,))  # noqa: S608
        return False

    def clashes(self, fresh: list[tuple[int, int]]) -> bool:
        """Whether a file of the instances in the seq ranges `fresh` stands where any file
        needs a folder, or any file where they need one (`folders` holds theirs)."""
        if self._one("SELECT 1 FROM folders JOIN files USING (path) LIMIT 1", ()):
            return True
        below = (
            "SELECT 1 FROM files AS f JOIN files AS g ON g.path > f.path || '/' "
            "AND g.path < f.path || '0' WHERE f.seq BETWEEN ? AND ? LIMIT 1"
        )
        return any(self._one(below, seqs) for seqs in fresh)

    def folder_owner(self, path: str) -> str | None:
        """The instance that writes files below `path`, if any."""
        return self._owner("folders", path)

    def file_owner(self, path: str) -> str | None:
        return self._owner("files", path)

    def add_folder(self, path: str, seq: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO folders VALUES (?, ?)", (path, seq))

    def _owner(self, table: str, path: str) -> str | None:
        row = self.db.execute(
            f"SELECT instances.id FROM {table} JOIN instances USING (seq) "  # noqa: S608
            "WHERE path=?",
            (path,),
        ).fetchone()
        return row[0] if row else None

    def add_source(self, name: str, row: tuple[str, str, int, int, str, int]) -> None:
        """`row`: as source() gives it."""
        self.db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?, ?)", (name, *row))

    def add_key(self, path: str, stat: Stat, sha256: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?)", (path, *stat, sha256)
        )

    def add_owned(self, paths: Iterator[str] | list[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO owned VALUES (?)", ((p,) for p in paths))

    def own_last(self) -> None:
        """Every output file of the last render (attach()) counts as owned, in its order,
        before what add_owned() adds: stale() reads them from there (copying them into
        `owned` was a tenth of a re-render with one tenant changed)."""
        self.db.execute("SELECT 1 FROM last.files LIMIT 1")  # attached, or sqlite3.Error
        self._own_last = True

    def set_stats(self, stats: Iterable[tuple[str, Stat | None]]) -> None:
        """Stat data of files as they are now, by path (one statement for all of them)."""
        self.db.executemany(
            "UPDATE files SET size=?, mtime=?, ctime=?, ino=? WHERE path=?",
            ((*(stat or (None, None, None, None)), path) for path, stat in stats),
        )

    def save(self, final: Path) -> None:
        """Commit and rename over the last cache; a failure only costs the next render its
        speed (the cache is then removed: an old one would not match the new tree). One
        that is not `kept` only removes the last cache."""
        assert self.path is not None
        if self.kept:
            try:
                self.db.execute("DELETE FROM folders")
                self.db.execute("DELETE FROM owned")
                self.db.execute("COMMIT")
                self.db.close()
                os.replace(self.path, final)
                return
            except (sqlite3.Error, OSError):
                pass
        self.discard()
        with contextlib.suppress(OSError):
            os.unlink(final)

    def discard(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
