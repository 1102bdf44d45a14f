"""The streamed render against a hostile output folder: its SQLite cache, its staging folder,
folders swapped for links mid-run, a second render at the same time, a full disk.

Whatever is found there, render never crashes, never removes a file it did not write, never
writes outside the folder, and leaves the tree a clean render writes (or, failing, the tree
as it was)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import SimpleNamespace
from typing import Any

import filelock
import pytest

from wellknown_build import staging, tree
from wellknown_build.cache import ADOPTING, CACHE_NAME, SEAL_NAME, read_only_uri, stat_of
from wellknown_build.commands.render import check, render
from wellknown_build.documents import Document
from wellknown_build.errors import PublishError, TreeError
from wellknown_build.manifest import MANIFEST_NAME
from wellknown_build.publish.run import _Tree

from .helpers import BOOKKEEPING, KEY_MAKERS, public_pem, write

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="symbolic links, FIFOs, rlimits")
SIX = [f"https://h{i % 3}.example/t{i}" for i in range(6)]


def _config(folder: Path, name: str, issuers: list[str]) -> Path:
    lines = ["instances:"]
    for i, issuer in enumerate(issuers):
        lines.append(f"  - {{id: i{i}, issuer: '{issuer}', keys: [{{path: keys/k{i % 2}.pem}}]}}")
    return write(folder / name, "\n".join(lines) + "\n")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """`all`: six instances; `fewer`: the first four (a re-render removes four files)."""
    for i in range(2):
        write(tmp_path / "keys" / f"k{i}.pem", public_pem(KEY_MAKERS["ed25519"]()))
    configs = {
        "all": _config(tmp_path, "all.yaml", SIX),
        "fewer": _config(tmp_path, "fewer.yaml", SIX[:4]),
    }
    for name, config in configs.items():
        render(config, tmp_path / f"reference-{name}")
    return configs


def _tree(out: Path) -> dict[str, bytes]:
    """Every file and folder but the lock and the cache."""
    return {
        p.relative_to(out).as_posix(): (p.read_bytes() if p.is_file() else b"/")
        for p in sorted(out.rglob("*"))
        if p.name not in BOOKKEEPING
    }


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Files with their bytes and mtimes (the cache too: a failed run must not replace it)."""
    return {
        p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != tree.LOCK_NAME
    }


def _clean(world: dict[str, Path], name: str) -> dict[str, bytes]:
    return _tree(world[name].parent / f"reference-{name}")


def _stamp(out: Path, db: sqlite3.Connection) -> None:
    """What only a forger does: make the cache claim the manifest's stat data."""
    seen = stat_of(str(out / MANIFEST_NAME), follow=False)
    db.execute("UPDATE meta SET value=? WHERE name='manifest'", (json.dumps(seen),))


def _edit_cache(out: Path, *statements: str) -> None:
    db = sqlite3.connect(out / CACHE_NAME, isolation_level=None)
    try:
        for statement in statements:
            db.execute(statement)
        _stamp(out, db)
    finally:
        db.close()


def _rendered(world: dict[str, Path], tmp_path: Path, name: str = "out") -> Path:
    out = tmp_path / name
    render(world["all"], out)
    write(out / "keep.txt", "not render's")
    return out


def _assert_sound(world: dict[str, Path], out: Path, name: str) -> None:
    """After a render of `name`: exactly the clean tree, `--check` agrees, publish reads it."""
    assert (out / "keep.txt").read_text() == "not render's"
    found = _tree(out)
    del found["keep.txt"]
    assert found == _clean(world, name)
    assert check(world[name], out).changes.clean
    local = _Tree(out)
    for entry in local.entries:
        local.body(entry)


# -- the cache is input ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["all", "fewer"])
def test_a_cache_that_claims_a_file_the_manifest_does_not_list_removes_nothing_of_it(
    world: dict[str, Path], tmp_path: Path, name: str
) -> None:
    out = _rendered(world, tmp_path)
    # (instance i5's row: its instance is rebuilt, so the run goes on to look for stale files)
    _edit_cache(out, "INSERT INTO files VALUES('keep.txt', 6, '{}', 1, 1, 1, 1, 0)")
    render(world[name], out)
    _assert_sound(world, out, name)


@pytest.mark.parametrize("name", ["all", "fewer"])
def test_a_forged_seal_does_not_make_such_a_cache_remove_a_file(
    world: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """A sealed cache is not compared with the manifest line for line (cache.Index.sealed);
    a forger can write the seal too. A file its rows name stale is still removed only if the
    manifest lists it."""
    out = _rendered(world, tmp_path)
    planted = write(out / "h9.example" / ".well-known" / "jwks.json", '{"keys": []}')
    line = '{"path":"h9.example/.well-known/jwks.json","size":12}'
    _edit_cache(
        out,
        f"INSERT INTO files VALUES('{planted.relative_to(out).as_posix()}', 6, "
        f"'{line}', 1, 1, 1, 1, 0)",
    )
    forged = json.dumps(stat_of(str(out / CACHE_NAME), follow=False))
    write(out / SEAL_NAME, forged)
    render(world[name], out)
    assert planted.read_text() == '{"keys": []}'
    planted.unlink()
    planted.parent.rmdir()
    planted.parent.parent.rmdir()
    _assert_sound(world, out, name)


def test_check_with_such_a_cache_names_only_render_s_files(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out = _rendered(world, tmp_path)
    _edit_cache(out, "INSERT INTO files VALUES('keep.txt', 6, '{}', 1, 1, 1, 1, 0)")
    removed = check(world["fewer"], out).changes.removed
    assert sorted(removed) == [
        f"h{i % 3}.example/t{i}/.well-known/{name}"
        for i in (4, 5)
        for name in ("jwks.json", "openid-configuration")
    ]


@pytest.mark.parametrize("name", ["all", "fewer"])
def test_a_cache_row_under_another_path_than_its_line(
    world: dict[str, Path], tmp_path: Path, name: str
) -> None:
    out = _rendered(world, tmp_path)
    _edit_cache(out, "UPDATE files SET path='keep.txt' WHERE path LIKE 'h2.example/t5/%jwks.json'")
    render(world[name], out)
    _assert_sound(world, out, name)


@pytest.mark.parametrize("name", ["all", "fewer"])
def test_a_cache_from_another_tree_stamped_with_this_manifest(
    world: dict[str, Path], tmp_path: Path, name: str
) -> None:
    out = _rendered(world, tmp_path)
    other = tmp_path / "other"
    render(world["fewer"], other)  # knows nothing of i4 and i5
    db = sqlite3.connect(other / CACHE_NAME, isolation_level=None)
    db.execute("INSERT INTO files VALUES('keep.txt', 1, '{}', 1, 1, 1, 1, 0)")
    db.close()
    shutil.copyfile(other / CACHE_NAME, out / CACHE_NAME)
    _edit_cache(out)
    render(world[name], out)
    _assert_sound(world, out, name)


def test_a_damaged_page_anywhere_in_the_cache_costs_only_time(
    world: dict[str, Path], tmp_path: Path
) -> None:
    reference = _rendered(world, tmp_path, "reference")
    pages = (reference / CACHE_NAME).stat().st_size // 4096
    assert pages > 8
    for page in range(1, pages):
        for name in ("all", "fewer"):
            out = tmp_path / f"page-{page}-{name}"
            shutil.copytree(reference, out)
            os.unlink(out / CACHE_NAME)
            render(world["all"], out)  # its own cache, stat data matching its manifest
            data = bytearray((out / CACHE_NAME).read_bytes())
            data[page * 4096 : (page + 1) * 4096] = b"\xa5" * 4096
            (out / CACHE_NAME).write_bytes(bytes(data))
            render(world[name], out)
            _assert_sound(world, out, name)


def _hostile_rows(outside: Path) -> dict[str, tuple[str, ...]]:
    return {
        "dotdot": ("INSERT INTO files VALUES('../victim', 6, '{}', 1, 1, 1, 1, 0)",),
        "absolute": (
            f"INSERT INTO files VALUES('{outside / 'victim'}', 6, '{{}}', 1, 1, 1, 1, 0)",
        ),
        "nul": ("UPDATE files SET path = path || char(0) || 'x' WHERE seq = 6",),
        "kids not a list": ("UPDATE instances SET kids = '{\"a\": 1}'",),
        "kids of numbers": ("UPDATE instances SET kids = '[[1]]'",),
        "kids an integer": ("UPDATE instances SET kids = 5",),
        "kids nested deep": ("UPDATE instances SET kids = '" + "[" * 100_000 + "'",),
        "huge line": ("UPDATE files SET line = printf('%.*c', 20000000, 'x') WHERE seq = 1",),
        "stat of wrong types": ("UPDATE files SET size = '235', mtime = 1.5, ino = X'00'",),
        "line a blob": ("UPDATE files SET line = X'FF00'",),
        "fingerprint a blob": ("UPDATE instances SET fingerprint = X'00'",),
        "version a blob": ("UPDATE meta SET value = X'00' WHERE name = 'version'",),
        "keys of wrong types": ("UPDATE keys SET sha256 = 5, size = 'x'",),
        "owned rows": ("INSERT INTO owned VALUES('keep.txt')",),
        "folder rows": ("INSERT INTO folders VALUES('h2.example/t5', 99)",),
        "a view": ("CREATE VIEW v AS SELECT 1",),
        "a trigger": ("CREATE TRIGGER t AFTER INSERT ON meta BEGIN DELETE FROM files; END",),
        "no index": ("DROP INDEX files_seq",),
        "another schema": ("DROP TABLE owned", "CREATE TABLE owned(path BLOB)"),
    }


@POSIX
@pytest.mark.parametrize("attack", list(_hostile_rows(Path("/x"))))
@pytest.mark.parametrize("name", ["all", "fewer"])
def test_hostile_rows_in_a_well_formed_cache(
    world: dict[str, Path], tmp_path: Path, attack: str, name: str
) -> None:
    outside = tmp_path / "outside"
    write(outside / "victim", "outside")
    out = _rendered(world, tmp_path)
    write(tmp_path / "victim", "beside out")
    _edit_cache(out, *_hostile_rows(outside)[attack])
    render(world[name], out)
    _assert_sound(world, out, name)
    assert (outside / "victim").read_text() == "outside"
    assert (tmp_path / "victim").read_text() == "beside out"


@POSIX
def test_a_fifo_for_a_manifest_hangs_neither_render_nor_check(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """(The manifest's digest was read with open(): a FIFO there blocked both for ever.)"""
    out = _rendered(world, tmp_path)
    os.unlink(out / MANIFEST_NAME)
    os.mkfifo(out / MANIFEST_NAME)
    command = [sys.executable, "-m", "wellknown_build", "-q", "render", str(world["fewer"])]
    for extra in (["--check"], []):
        done = subprocess.run(
            [*command, *extra, "--out", str(out)], capture_output=True, timeout=120, check=False
        )
        assert done.returncode == (1 if extra else 0), done.stderr
    assert (out / MANIFEST_NAME).is_file()
    assert check(world["fewer"], out).changes.clean


@pytest.mark.parametrize("name", [f"{CACHE_NAME}.wkb.tmp", f"{CACHE_NAME}.wkb.tmp{ADOPTING}"])
def test_a_folder_where_the_cache_is_made_is_a_clear_error(
    world: dict[str, Path], tmp_path: Path, name: str
) -> None:
    out = _rendered(world, tmp_path)
    write(out / name / "x", "x")
    before = _snapshot(out)
    with pytest.raises(TreeError, match=r"writing the render cache .* failed"):
        render(world["fewer"], out)
    assert _snapshot(out) == before


def _random(out: Path) -> None:
    (out / CACHE_NAME).write_bytes(os.urandom(20_000))


def _truncated(out: Path) -> None:
    (out / CACHE_NAME).write_bytes((out / CACHE_NAME).read_bytes()[:5000])


def _symlink(out: Path) -> None:
    elsewhere = out.parent / "elsewhere.db"
    os.replace(out / CACHE_NAME, elsewhere)
    (out / CACHE_NAME).symlink_to(elsewhere)


def _fifo(out: Path) -> None:
    os.unlink(out / CACHE_NAME)
    os.mkfifo(out / CACHE_NAME)


def _folder(out: Path) -> None:
    os.unlink(out / CACHE_NAME)
    write(out / CACHE_NAME / "x", "x")


@POSIX
@pytest.mark.parametrize("attack", [_random, _truncated, _symlink, _fifo, _folder])
def test_a_cache_that_is_no_database_or_no_file(
    world: dict[str, Path], tmp_path: Path, attack: Callable[[Path], None]
) -> None:
    out = _rendered(world, tmp_path)
    attack(out)
    kept = out.parent / "elsewhere.db"
    before = kept.read_bytes() if kept.exists() else None
    render(world["fewer"], out)
    found = _tree(out)
    assert found.pop("keep.txt") == b"not render's"
    for name in list(found):
        if name.startswith(CACHE_NAME + "/"):  # a folder there is not render's to remove
            del found[name]
    assert found == _clean(world, "fewer")
    assert check(world["fewer"], out).changes.clean
    if before is not None:  # a link is never written through
        assert kept.read_bytes() == before


def test_read_only_uris_of_windows_paths() -> None:
    cache = PureWindowsPath("C:/Users/a b/o?u#t%/out") / CACHE_NAME
    assert read_only_uri(cache) == (
        "file:///C:/Users/a%20b/o%3Fu%23t%25/out/.wellknown-build.cache?mode=ro"
    )
    # SQLite's URIs cannot name a UNC path (the authority must be empty): no cache there.
    assert read_only_uri(PureWindowsPath("//server/share/out") / CACHE_NAME) is None
    assert read_only_uri(PurePosixPath("/o?u#t%/x")) == "file:///o%3Fu%23t%25/x?mode=ro"


def test_an_output_folder_with_uri_characters_in_its_path_keeps_its_cache(
    world: dict[str, Path], tmp_path: Path
) -> None:
    odd = "#" if sys.platform == "win32" else "?#"  # (Windows allows no `?` in a name)
    out = tmp_path / f"we{odd}ird #dir%25 é" / f"o{odd}u#t%"
    render(world["all"], out)
    changes = render(world["all"], out).changes
    assert changes.clean and not tree.interrupted(out)
    assert tree.previous_index(out) is not None


# A full disk while the cache is written: the page cache is made tiny so that the database
# spills to disk as a large fleet's does, and the file size limit makes that write fail.
_FULL_DISK = """
import resource, signal, sqlite3, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
real = sqlite3.connect
def connect(*args, **kwargs):
    db = real(*args, **kwargs)
    db.execute("PRAGMA cache_size=2")
    return db
sqlite3.connect = connect
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from wellknown_build.cli import main
main(sys.argv[2:], prog_name="wellknown-build")
"""


@POSIX
@pytest.mark.parametrize("first", [False, True], ids=["re-render", "first-render"])
def test_a_full_disk_while_the_cache_is_written(
    world: dict[str, Path], tmp_path: Path, first: bool
) -> None:
    fleet = [f"https://h{i % 5}.example/t{i}" for i in range(60)]
    config = _config(tmp_path, "fleet.yaml", fleet)
    out = tmp_path / "out"
    if not first:
        render(world["all"], out)
    before = _snapshot(out) if not first else None
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, "65536", "render", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "writing the render cache" in done.stderr and "nothing was changed" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if first:
        assert not out.exists()
    else:
        assert _snapshot(out) == before
        render(world["all"], out)
        assert _tree(out) == _clean(world, "all")


# -- staging -------------------------------------------------------------------------------


@POSIX
def test_staging_a_link_to_elsewhere(world: dict[str, Path], tmp_path: Path) -> None:
    out = _rendered(world, tmp_path)
    elsewhere = write(tmp_path / "elsewhere" / "h0.example" / "x", "elsewhere")
    (out / tree.STAGING_NAME).symlink_to(elsewhere.parent.parent, target_is_directory=True)
    render(world["fewer"], out)
    _assert_sound(world, out, "fewer")
    assert sorted(p.name for p in elsewhere.parent.parent.rglob("*")) == ["h0.example", "x"]


@POSIX
def test_staging_a_file_or_holding_links(world: dict[str, Path], tmp_path: Path) -> None:
    out = _rendered(world, tmp_path)
    write(out / tree.STAGING_NAME, "a file")
    render(world["fewer"], out)
    _assert_sound(world, out, "fewer")
    outside = write(tmp_path / "outside" / "jwks.json", "outside")
    inside = out / tree.STAGING_NAME / "h0.example" / "t0"
    inside.mkdir(parents=True)
    (inside / ".well-known").symlink_to(outside.parent, target_is_directory=True)
    (out / tree.STAGING_NAME / "h9.example").symlink_to(outside.parent)
    render(world["all"], out)
    _assert_sound(world, out, "all")
    assert outside.read_text() == "outside"


def test_a_staging_folder_that_cannot_be_removed_is_refused(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _rendered(world, tmp_path)
    write(out / tree.STAGING_NAME / "evil.example" / "x", "left over")
    before = _snapshot(out)
    monkeypatch.setattr(shutil, "rmtree", lambda *args, **kwargs: None)  # EPERM, EBUSY, ...
    with pytest.raises(TreeError, match=r"cannot remove .*staging.*render again"):
        render(world["fewer"], out)
    assert not (out / "evil.example").exists()
    assert _snapshot(out) == before


def _between_staging_and_commit(monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Run `act` once the journal is written: everything is staged, nothing moved yet."""
    real = tree._write_journal

    def write_journal(*args: Any) -> None:
        real(*args)
        act()

    monkeypatch.setattr(tree, "_write_journal", write_journal)


def _swap_for_link(folder: Path, elsewhere: Path) -> None:
    shutil.copytree(folder, elsewhere)
    shutil.rmtree(folder)
    folder.symlink_to(elsewhere, target_is_directory=True)


@POSIX
@pytest.mark.parametrize("host", ["h1.example", "h2.example"])
def test_a_folder_swapped_for_a_link_before_commit(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """h1 loses t4 and gains `new`, h2 loses t5: through the link, nothing is removed from
    or moved into the folder it leads to."""
    out = _rendered(world, tmp_path)
    config = _config(tmp_path, "changed.yaml", [*SIX[:4], "https://h1.example/new"])
    elsewhere = tmp_path / "elsewhere"
    _between_staging_and_commit(monkeypatch, lambda: _swap_for_link(out / host, elsewhere))
    with pytest.raises(TreeError, match=r"symbolic link|Not a directory"):
        render(config, out)
    monkeypatch.undo()
    found = sorted(p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*.json"))
    gone = "t4" if host == "h1.example" else "t5"
    assert found == [f"t{int(gone[1]) - 3}/.well-known/jwks.json", f"{gone}/.well-known/jwks.json"]
    # Put back, the next render finishes the job.
    os.unlink(out / host)
    shutil.copytree(elsewhere, out / host)
    render(config, out)
    render(config, tmp_path / "reference-changed")
    found_tree = _tree(out)
    assert found_tree.pop("keep.txt") == b"not render's"
    assert found_tree == _tree(tmp_path / "reference-changed")


def _windows_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a/b/c where a/b is a file: Windows says "path not found", not ENOTDIR."""
    from wellknown_build.files import read_regular as real

    def read_regular(path: Any, limit: int, *, follow: bool = True) -> bytes:
        folder = os.path.dirname(os.fspath(path))
        while folder and not os.path.lexists(folder):
            folder = os.path.dirname(folder)
        if folder and not os.path.isdir(folder):
            raise FileNotFoundError(2, "The system cannot find the path specified", path)
        return real(path, limit, follow=follow)

    monkeypatch.setattr(tree, "read_regular", read_regular)


@pytest.mark.parametrize("windows", [False, True], ids=["posix", "windows"])
def test_a_file_where_a_folder_is_needed_changes_nothing(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, windows: bool
) -> None:
    out = tmp_path / "out"
    render(world["fewer"], out)
    write(out / "h2.example" / "t5", "a file of someone else's")  # i5 needs a folder there
    before = _snapshot(out)
    if windows:
        _windows_reads(monkeypatch)
    with pytest.raises(TreeError, match=r"t5.*(is a file|Not a directory)"):
        render(world["all"], out)
    with pytest.raises(TreeError, match=r"t5.*(is a file|Not a directory)"):
        check(world["all"], out)  # --check says so too, not "to be created"
    assert _snapshot(out) == before
    assert not tree.interrupted(out) and not (out / tree.STAGING_NAME).exists()


@POSIX
def test_a_journal_s_temporaries_are_never_removed_through_a_link(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out = _rendered(world, tmp_path)
    outside = write(tmp_path / "outside" / ".x.wkb.tmp", "outside")
    (out / "h9.example").symlink_to(outside.parent, target_is_directory=True)
    (out / tree.JOURNAL_NAME).write_text(
        json.dumps({"paths": [], "temporaries": ["h9.example/.x.wkb.tmp"]})
    )
    render(world["all"], out)
    assert outside.read_text() == "outside"


# -- failures and neighbours -----------------------------------------------------------------


def _fail(failure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path | None:
    """Make the next render fail: a bad configuration (returned), or a write that fails while
    staging or when the journal is written (the last step before anything visible)."""
    if failure == "config":
        return write(tmp_path / "bad.yaml", "instances: [{id: x}]\n")
    if failure == "staging":

        def write_new(*args: Any) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(staging, "write", write_new)
    else:

        def refuse(*args: Any) -> None:
            raise TreeError("writing the journal failed (No space left on device)")

        monkeypatch.setattr(tree, "_write_journal", refuse)
    return None


@pytest.mark.parametrize("failure", ["config", "staging", "journal"])
def test_a_failing_first_render_leaves_no_folder(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    config = _fail(failure, tmp_path, monkeypatch) or world["all"]
    out = tmp_path / "new" / "out"
    with pytest.raises(Exception, match=r"bad.yaml|No space left"):
        render(config, out)
    assert not out.exists()


@pytest.mark.parametrize("failure", ["config", "staging", "journal"])
def test_a_failing_re_render_leaves_every_byte_and_mtime(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    out = _rendered(world, tmp_path)
    before = _snapshot(out)
    more = _config(tmp_path, "more.yaml", [*SIX[1:], "https://h3.example/new"])
    config = _fail(failure, tmp_path, monkeypatch) or more
    with pytest.raises(Exception, match=r"bad.yaml|No space left"):
        render(config, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            *BOOKKEEPING,
            MANIFEST_NAME,
            "keep.txt",
            "h0.example",
            "h1.example",
            "h2.example",
        ]
    )


def test_a_render_that_loses_the_race_for_a_new_folder_leaves_the_winner_s_lock(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    winner = filelock.FileLock(str(out / tree.LOCK_NAME), timeout=0)
    real = tree.locked

    def racing(path: Path) -> Any:
        out.mkdir()  # the other render made the folder and took the lock just now
        winner.acquire()
        return real(path)

    monkeypatch.setattr(tree, "locked", racing)
    try:
        with pytest.raises(TreeError, match="another render is writing"):
            render(world["all"], out)
        assert (out / tree.LOCK_NAME).exists()
        monkeypatch.undo()
        with pytest.raises(TreeError, match="another render is writing"):
            render(world["all"], out)  # a third still finds it locked
    finally:
        winner.release()
    render(world["all"], out)
    assert _tree(out) == _clean(world, "all")


def test_check_and_publish_while_a_render_commits(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --check (no lock) at each step of a commit: never "up to date" before the tree is
    complete, and publish refuses the tree until the journal is gone."""
    out = _rendered(world, tmp_path)
    seen: list[tuple[str, bool, bool]] = []

    def look(step: str) -> None:
        clean = check(world["fewer"], out).changes.clean
        try:
            _Tree(out)
            readable = True
        except (PublishError, TreeError):
            readable = False
        seen.append((step, clean, readable))

    for name in ("_write_journal", "_move", "_save"):
        real = getattr(tree, name)

        def wrapped(*args: Any, _real: Any = real, _name: str = name) -> Any:
            look(f"before {_name}")
            result = _real(*args)
            look(f"after {_name}")
            return result

        monkeypatch.setattr(tree, name, wrapped)
    render(world["fewer"], out)
    monkeypatch.undo()
    look("done")
    assert [s for s, _, _ in seen][-1] == "done" and len(seen) >= 5
    assert all(not clean and not readable for _, clean, readable in seen[1:-1]), seen
    assert seen[-1][1:] == (True, True)


# -- memory ----------------------------------------------------------------------------------


def test_staging_memory_does_not_grow_with_the_folders(tmp_path: Path) -> None:
    """Folders checked for links (and made) are remembered only while few: a first render
    of a million issuers meets three million folders."""
    out = tmp_path / "out"
    out.mkdir()
    stage = tree.Stage(out, write=False)

    def feed(start: int, count: int) -> None:
        for i in range(start, start + count):
            path = f"h{i % 50}.example/tenants/t{i:07d}/.well-known/jwks.json"
            stage.document(Document(path, b"{}", "application/json", "no-cache", f"i{i}", "jwks"))

    feed(0, 10_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed(10_000, 20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 2_000_000, grown  # unbounded: about 8 MB for 20,000 more folders


def test_a_windows_junction_is_a_link(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory junction is a reparse point that os.path.islink does not report before
    Python 3.12; emulated here by the attribute Windows sets on it."""
    out = _rendered(world, tmp_path)
    junction = out / "h3.example"
    junction.mkdir()
    real = os.lstat

    def lstat(path: Any, *args: Any, **kwargs: Any) -> Any:
        found = real(path, *args, **kwargs)
        if os.fspath(path) == str(junction):
            return SimpleNamespace(st_mode=found.st_mode, st_file_attributes=0x400)
        return found

    monkeypatch.setattr(os, "lstat", lstat)
    config = _config(tmp_path, "junction.yaml", [*SIX, "https://h3.example/new"])
    with pytest.raises(TreeError, match="refusing to write through the symbolic link"):
        render(config, out)
    assert list(junction.iterdir()) == []


def test_render_s_own_files_are_never_documents(world: dict[str, Path], tmp_path: Path) -> None:
    """A host never starts with a dot: a manifest or journal naming the lock, the cache, the
    journal or a scratch file names no document, and nothing of render's own is removed."""
    out = _rendered(world, tmp_path)
    found = json.loads((out / MANIFEST_NAME).read_text())
    for name in (tree.LOCK_NAME, CACHE_NAME, tree.JOURNAL_NAME, MANIFEST_NAME):
        found["files"].append({**found["files"][0], "path": name})
    (out / MANIFEST_NAME).write_text(json.dumps(found))
    with pytest.raises(TreeError, match="is not one render writes"):
        _Tree(out)
    lock = (out / tree.LOCK_NAME).stat().st_ino
    render(world["fewer"], out)  # a damaged manifest: rewritten, nothing it named removed
    assert (out / tree.LOCK_NAME).stat().st_ino == lock  # the lock held was not removed
    assert (out / CACHE_NAME).exists() and _Tree(out).entries
    # A journal naming the new manifest's scratch file as a temporary to remove: once
    # followed, every render after it failed to put its manifest in place.
    (out / tree.JOURNAL_NAME).write_text(
        json.dumps({"paths": [], "temporaries": [MANIFEST_NAME + ".wkb.tmp"]})
    )
    render(world["all"], out)
    assert not tree.interrupted(out)
    _assert_sound(world, out, "all")
