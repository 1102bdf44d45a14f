"""The output folder: all-or-nothing, untouched when unchanged, only our files removed."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wellknown_build import manifest, staging, tree
from wellknown_build.cache import CACHE_NAME, Stat, stat_of
from wellknown_build.commands.render import check, render
from wellknown_build.errors import ConfigError, TreeError
from wellknown_build.manifest import MANIFEST_NAME

from .helpers import write, write_config

TWO = """
instances:
  - {id: a, issuer: 'https://a.example', keys: [{path: keys/ed.pem}]}
  - {id: b, issuer: 'https://b.example/t/x', keys: [{path: keys/ed.pem}]}
"""
ONE = """
instances:
  - {id: a, issuer: 'https://a.example', keys: [{path: keys/ed.pem}]}
"""


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file but the lock (the OS locks it; filelock may rewrite it) with its mtime."""
    return {
        str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in (tree.LOCK_NAME, CACHE_NAME)
    }


def test_rerender_touches_nothing(tmp_path: Path, ed_key: Path) -> None:
    config, out = write_config(tmp_path, TWO), tmp_path / "out"
    first = render(config, out).changes
    assert len(first.created) == 4 and first.manifest_changed
    before = _snapshot(out)
    again = render(config, out).changes
    assert again.clean and again.unchanged == 4
    assert _snapshot(out) == before


def test_removed_instance_files_go_foreign_files_stay(tmp_path: Path, ed_key: Path) -> None:
    out = tmp_path / "out"
    render(write_config(tmp_path, TWO), out)
    foreign = write(out / "b.example" / "t" / "notes.txt", "mine")
    other = write(out / "index.html", "<html>")
    changes = render(write_config(tmp_path, ONE), out).changes
    assert sorted(changes.removed) == [
        "b.example/t/x/.well-known/jwks.json",
        "b.example/t/x/.well-known/openid-configuration",
    ]
    assert not (out / "b.example" / "t" / "x").exists()  # emptied folders pruned
    assert foreign.read_text() == "mine" and other.exists()


def test_failed_config_leaves_tree_alone(tmp_path: Path, ed_key: Path) -> None:
    out = tmp_path / "out"
    render(write_config(tmp_path, TWO), out)
    before = _snapshot(out)
    broken = TWO.replace("https://a.example", "http://a.example").replace("t/x", "t/y")
    with pytest.raises(ConfigError):
        render(write_config(tmp_path, broken), out)
    assert _snapshot(out) == before


def test_failed_write_leaves_tree_alone(
    tmp_path: Path, ed_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fails on the third file: no file replaced, no temporary left behind."""
    out = tmp_path / "out"
    render(write_config(tmp_path, TWO), out)
    before = _snapshot(out)
    config = write_config(
        tmp_path,
        TWO.replace("ed.pem", "p.pem")
        + "\n  - {id: c, issuer: 'https://c.example', keys: [{path: keys/p.pem}]}\n",
    )
    from .helpers import KEY_MAKERS, public_pem

    write(tmp_path / "keys" / "p.pem", public_pem(KEY_MAKERS["p256"]()))
    real_write = staging.write
    calls = {"n": 0}

    def failing_write(
        path: str, body: bytes, made: set[str], top: str, folder_fd: int | None = None
    ) -> Stat:
        calls["n"] += 1
        if calls["n"] == 3:  # staging a body: half of it written, then the disk is full
            real_write(path, body[: len(body) // 2], made, top)
            raise OSError(28, "No space left on device", path)
        return real_write(path, body, made, top)

    monkeypatch.setattr(staging, "write", failing_write)
    with pytest.raises(TreeError, match=r"No space left on device.*nothing was changed"):
        render(config, out)
    monkeypatch.undo()
    assert _snapshot(out) == before
    assert not (out / "c.example").exists()


def test_check_reports_drift(tmp_path: Path, ed_key: Path) -> None:
    config, out = write_config(tmp_path, TWO), tmp_path / "out"
    assert not check(config, out).changes.clean
    assert not out.exists()  # --check writes nothing
    render(config, out)
    assert check(config, out).changes.clean
    (out / "a.example/.well-known/jwks.json").write_text("{}")
    changes = check(config, out).changes
    assert changes.updated == ("a.example/.well-known/jwks.json",)
    render(write_config(tmp_path, ONE), out)
    changes = check(write_config(tmp_path, TWO), out).changes
    assert len(changes.created) == 2


def test_symlinked_folder_is_refused(tmp_path: Path, ed_key: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    os.symlink(elsewhere, out / "a.example")
    with pytest.raises(TreeError, match="symbolic link"):
        render(write_config(tmp_path, ONE), out)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "a/./b"])
def test_paths_never_leave_out(tmp_path: Path, path: str) -> None:
    with pytest.raises(TreeError, match="would leave"):
        tree._Paths(tmp_path)(path)


@pytest.mark.parametrize(
    "damage",
    [
        "{not json",
        '{"format": 1, "files": [{"path": "../../etc/passwd"}]}',
        '{"format": 99, "files": []}',
        "[]",
    ],
)
def test_damaged_manifest_is_rewritten_and_names_nothing_to_remove(
    tmp_path: Path, ed_key: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path, ONE)
    write(out / MANIFEST_NAME, damage)
    keep = write(out / "elsewhere.example" / "keep.json", "not ours")
    assert not check(config, out).changes.clean
    render(config, out)
    assert "files it listed will not be removed" in caplog.text
    assert keep.exists()
    assert check(config, out).changes.clean


def test_out_is_a_file(tmp_path: Path, ed_key: Path) -> None:
    write(tmp_path / "out", "x")
    with pytest.raises(TreeError, match="not a folder"):
        render(write_config(tmp_path, ONE), tmp_path / "out")


def test_no_space_for_the_manifest_is_an_error_and_the_next_render_finishes(
    tmp_path: Path, ed_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    render(write_config(tmp_path, ONE), out)
    config = write_config(tmp_path, TWO)
    real_open = os.open

    def full_disk(file: Any, flags: int, *args: Any, **kwargs: Any) -> Any:
        if flags & os.O_CREAT and Path(file).name.startswith(MANIFEST_NAME):
            raise OSError(28, "No space left on device", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", full_disk)
    before = _snapshot(out)
    with pytest.raises(TreeError, match=r"No space left on device.*nothing was changed"):
        render(config, out)
    monkeypatch.undo()
    # The new manifest is written aside before the first visible change: nothing changed.
    assert _snapshot(out) == before and not tree.interrupted(out)
    assert not (out / tree.STAGING_NAME).exists()
    assert not check(config, out).changes.clean
    render(config, out)
    assert check(config, out).changes.clean and not tree.interrupted(out)
    assert not list(out.rglob("*.tmp"))


def test_permission_denied_while_removing_is_an_error(
    tmp_path: Path, ed_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    render(write_config(tmp_path, TWO), out)
    config = write_config(tmp_path, ONE)
    real = Path.unlink

    def denied(self: Path, missing_ok: bool = False) -> None:
        if "b.example" in str(self):
            raise PermissionError(13, "Permission denied", str(self))
        real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", denied)
    with pytest.raises(TreeError, match=r"Permission denied.*render again to finish"):
        render(config, out)
    monkeypatch.undo()
    render(config, out)
    assert not (out / "b.example").exists()
    assert check(config, out).changes.clean


@pytest.mark.parametrize(
    "journal",
    [
        b"[" * 100_000,
        b'{"paths": [], "temporaries": ["a.example/.well-known/jwks.json", "keep.txt"]}',
    ],
)
def test_a_hostile_journal_deletes_nothing_render_did_not_stage(
    tmp_path: Path, ed_key: Path, journal: bytes
) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path, ONE)
    render(config, out)
    keep = write(out / "keep.txt", "not ours")
    (out / tree.JOURNAL_NAME).write_bytes(journal)
    render(config, out)
    assert keep.exists()
    assert (out / "a.example/.well-known/jwks.json").exists()
    assert check(config, out).changes.clean


def _segment_rule(path: str) -> bool:
    """The rule as first written: segment by segment."""
    segment = re.compile(r"[^/\\\x00-\x1f]+")
    return 0 < len(path) <= 4096 and all(
        segment.fullmatch(p) and p not in (".", "..") for p in path.split("/")
    )


@settings(max_examples=3000)
@given(st.text(alphabet=st.sampled_from(["/", ".", "\\", "\x00", "\n", "\x1f", "a", "é", " "])))
def test_the_one_regex_tree_path_rule_equals_the_segment_rule(path: str) -> None:
    assert manifest.is_tree_path(path) == _segment_rule(path)


@pytest.mark.parametrize(
    "path", [".", "..", "a/./b", "a/../b", "a/..", "./a", "a//b", "/a", "a/", "...", "a/.x", "a\\b"]
)
def test_tree_path_edges(path: str) -> None:
    assert manifest.is_tree_path(path) == _segment_rule(path)


@settings(max_examples=2000)
@given(
    st.sampled_from(["out", "/srv/out", "/", "out/", "C:\\", "a\\b", ""]),
    st.text(alphabet=st.sampled_from(["/", ".", "\\", ":", "a", "é", " ", "C"]), max_size=12),
)
def test_local_path_is_os_path_join_for_every_tree_path(folder: str, path: str) -> None:
    """manifest.local_path builds the path by string: for a tree path, what os.path.join
    of its parts gives (on this system's separators); for any other, still below `folder`."""
    local = manifest.local_path(folder, path)
    # (on Windows, os.path.join reads a part like "c:443" as a drive: local_path does not)
    if manifest.is_tree_path(path) and (os.name != "nt" or ":" not in path):
        assert local == os.path.join(folder, *path.split("/"))
    prefix = folder if not folder or folder.endswith(("/", os.sep)) else folder + os.sep
    assert local.startswith(prefix)


def _manifest_a_line_at_a_time(lines: list[str]) -> bytes:
    """The manifest as it was written before lines came in batches (the format's text)."""
    head = '{\n  "generator": "wellknown-build",\n  "format": %d,\n  "files": [\n'
    body = ",\n".join("    " + line for line in lines)
    return (head % manifest.FORMAT + body + "\n  ]\n}\n").encode("utf-8")


@settings(max_examples=1000)
@given(
    st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=8), max_size=12),
    st.lists(st.integers(0, 12), max_size=6),
)
def test_the_manifest_is_the_same_bytes_however_its_lines_are_batched(
    lines: list[str], cuts: list[int]
) -> None:
    """Lines come from the render cache in batches; the bytes do not depend on where the
    batches fall (empty batches included), and are one line per file as ever."""
    edges = sorted({0, len(lines), *(min(c, len(lines)) for c in cuts)})
    batches = [lines[a:b] for a, b in itertools.pairwise(edges)] + [[]] * (len(cuts) % 3)
    made = b"".join(manifest.chunks(batches))
    assert made == _manifest_a_line_at_a_time(lines)
    assert made == b"".join(manifest.chunks([lines]))


def test_folders_found_missing_are_only_those_below_a_real_folder(tmp_path: Path) -> None:
    """Render reads nothing below a folder it found missing; a path below a file is not
    'missing' (Windows reports it as not found, POSIX as not a directory)."""
    from wellknown_build.tree import _Paths

    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "f").write_text("a file where a folder is needed")
    paths = _Paths(out)
    paths("a/x/y/jwks.json")
    paths("f/x/jwks.json")
    paths("a/x/z/jwks.json")
    folders = [f"{out}/{f}" for f in ("a", "a/x", "a/x/y", "a/x/z", "f", "f/x")]
    assert {f for f in folders if paths.missing(f)} == {
        f"{out}/a/x",
        f"{out}/a/x/y",
        f"{out}/a/x/z",
    }


def test_a_document_not_staged_is_never_committed_unreported(tmp_path: Path) -> None:
    """Two documents of one render where one needs the other's path as a folder: staging
    the second fails, which the render reports as a clash between instances. Were that
    report missing, the commit refuses instead of publishing a tree without the file."""
    from wellknown_build.documents import Document

    (tmp_path / "out").mkdir()
    stage = tree.Stage(tmp_path / "out", write=True)
    for path in ("h.example/x", "h.example/x/.well-known/jwks.json"):
        stage.document(Document(path, b"{}\n", "application/json", "no-store", "a", "jwks"))
    assert stage.unstaged == ["h.example/x/.well-known/jwks.json"]
    with pytest.raises(TreeError, match=r"staging h.example/x/.well-known/jwks.json .* in its way"):
        stage.assert_staged()
    stage.discard()


_PATH = st.text(st.sampled_from('ab.-/é\\"\n'), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    written=st.lists(st.tuples(_PATH, _PATH), max_size=6),
    asked=st.lists(_PATH, max_size=6),
)
def test_listed_names_exactly_the_paths_of_the_manifest_s_entries(
    tmp_path_factory: pytest.TempPathFactory,
    written: list[tuple[str, str]],
    asked: list[str],
) -> None:
    """manifest.listed() finds a path only as an entry's own path, however the manifest's
    other values (instance names here) look: it is what a sealed cache's stale files are
    checked against before anything is removed."""
    out = tmp_path_factory.mktemp("listed")
    entries = [
        manifest.Entry(path, "0" * 64, 1, "application/json", "no-cache", instance, "jwks")
        for path, instance in written
    ]
    (out / MANIFEST_NAME).write_bytes(manifest.Manifest(tuple(entries)).to_bytes())
    queries = asked + [instance for _, instance in written] + [p for p, _ in written[:2]]
    expected = {q for q in queries if any(path == q for path, _ in written)}
    assert manifest.listed(out, queries) == expected


def test_listed_reads_a_long_line_by_its_start_only(tmp_path: Path) -> None:
    """A kid has no length limit, so an entry's line can be long: its start names its path;
    a piece from the middle of a line that looks like an entry is not one."""
    path = "a.example/.well-known/jwks.json"
    line = manifest.line(
        manifest.Entry(path, "0" * 64, 1, "application/json", "no-cache", "a", "jwks")
    )
    b, c = (f"{host}.example/.well-known/jwks.json" for host in "bc")
    long = f'    {{"path":"{b}",' + "x" * (2 << 20) + "\n"
    cut = "x" * (1 << 20) + f'    {{"path":"{c}",}}\n'  # a line's second piece looks like one
    (tmp_path / MANIFEST_NAME).write_text(long + cut + "    " + line + "\n")
    assert manifest.listed(tmp_path, [path, b, c]) == {path, b}
    assert manifest.listed(tmp_path / "nowhere", [path]) == set()


def _entry_line(path: str, instance: str) -> str:
    return manifest.line(
        manifest.Entry(path, "0" * 64, 1, "application/json", "no-cache", instance, "jwks")
    )


_LINE = st.tuples(_PATH, _PATH).map(lambda t: _entry_line(*t))


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    lines=st.lists(_LINE, min_size=1, max_size=12, unique=True),
    piece=st.sampled_from([1, 7, 64, 1 << 20]),
)
def test_a_patched_manifest_is_the_manifest_written_whole(
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
    lines: list[str],
    piece: int,
) -> None:
    """manifest.patch() (the last manifest with the lines of instances rebuilt in place
    replaced) gives the bytes chunks() writes for the new lines, read in pieces of any size,
    whatever the other lines hold (here: other lines' text, quoted in their values)."""
    folder = tmp_path_factory.mktemp("patch")
    lines = [*lines, *(_entry_line(f"q{i}", line) for i, line in enumerate(lines[:2]))]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(lines)), min_size=2, max_size=6)))
    runs = [(a, b) for a, b in itertools.pairwise(cuts)][::2]  # disjoint, in order
    blocks: list[tuple[list[str], list[str]]] = []
    new_lines: list[str] = []
    at = 0
    for first, end in runs:
        new = data.draw(st.lists(_LINE, min_size=1, max_size=3))
        blocks.append((lines[first:end], new))
        new_lines += [*lines[at:first], *new]
        at = end
    new_lines += lines[at:]
    source = folder / MANIFEST_NAME
    source.write_bytes(b"".join(manifest.chunks([lines])))
    seen = stat_of(str(source), follow=False)
    assert seen is not None
    target = str(folder / "new")
    old_piece = manifest._PIECE
    manifest._PIECE = piece
    try:
        done = manifest.patch(source, seen, target, blocks)
    finally:
        manifest._PIECE = old_piece
    assert done
    assert Path(target).read_bytes() == b"".join(manifest.chunks([new_lines]))


def test_a_manifest_is_patched_only_where_its_lines_are_found_in_order(tmp_path: Path) -> None:
    """A block's lines not in the file (not whole lines, out of order, or the file not the one
    the cache saw, or none): False and no file left, so the caller writes the manifest
    whole."""
    lines = [_entry_line(f"h{i}.example/x", f"i{i}") for i in range(4)]
    source = tmp_path / MANIFEST_NAME
    source.write_bytes(b"".join(manifest.chunks([lines])))
    seen = stat_of(str(source), follow=False)
    assert seen is not None
    target = tmp_path / "new"
    other = _entry_line("o.example/x", "o")
    cases: list[list[tuple[list[str], list[str]]]] = [
        [([other], [other])],  # not there
        [([lines[2]], [other]), ([lines[1]], [other])],  # out of order
        [([lines[1], lines[3]], [other])],  # not next to each other
        [([lines[1][:-1]], [other])],  # a line's start only
        [([lines[1]], [])],  # nothing in its place
    ]
    for blocks in cases:
        assert manifest.patch(source, seen, str(target), blocks) is False
        assert not target.exists()
    moved = (seen[0], seen[1] + 1, *seen[2:])
    assert manifest.patch(source, moved, str(target), [([lines[1]], [other])]) is False
    assert not target.exists()
    assert manifest.patch(tmp_path / "none", seen, str(target), [([lines[1]], [other])]) is False
    assert not target.exists()
    outside = tmp_path / "outside"
    outside.write_bytes(b"theirs")
    target.symlink_to(outside)  # planted: replaced, never written through
    assert manifest.patch(source, seen, str(target), [([lines[1]], [other])]) is True
    assert outside.read_bytes() == b"theirs" and not target.is_symlink()
    assert target.read_bytes() == b"".join(manifest.chunks([[lines[0], other, *lines[2:]]]))


# Reader.locator() (plain folders looked at once per pass) against Reader.locate (realpath
# per path): random trees of folders, files and links (into the tree, out of it, to its root,
# dangling, loops, loops followed by `..`, chains), every path of up to four parts over the
# same names asked of both.

_NAMES = ["a", "b", ".well-known", "jwks.json"]
_TARGETS = [
    "a", "b", "..", "../..", "../a", "../../outside", "a/b", "jwks.json", "nowhere", "/",
    "SELF", "OUTSIDE", "OUTSIDE/a", "ROOT", "ROOT/a/..", "b/../../a", "SELF/..", "a/..",
    "a/../..", "b/a/..",
]  # fmt: skip


@pytest.mark.skipif(os.name != "posix", reason="the resolver is POSIX only")
@settings(max_examples=150, deadline=None)
@given(
    made=st.lists(
        st.tuples(
            st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3),
            st.sampled_from(["dir", "file", "link"]),
            st.sampled_from(_TARGETS),
        ),
        max_size=14,
    ),
    remembered=st.sampled_from([1, 2, 4096]),
)
def test_locator_equals_realpath_per_path(
    tmp_path_factory: pytest.TempPathFactory, made: list[Any], remembered: int
) -> None:
    base = tmp_path_factory.mktemp("resolve")
    out, outside = base / "out", base / "outside"
    out.mkdir()
    (outside / "a").mkdir(parents=True)
    for parts, kind, target in made:
        path = out.joinpath(*parts)
        if os.path.lexists(path) or not path.parent.is_dir():
            continue
        if kind == "dir":
            path.mkdir()
        elif kind == "file":
            path.write_bytes(b"{}")
        else:
            named = {"SELF": str(path), "OUTSIDE": str(outside), "ROOT": str(out)}
            head, _, rest = target.partition("/")
            os.symlink(
                named[head] + ("/" + rest if rest else "") if head in named else target, path
            )
    reader = tree.Reader(out)
    original = tree._REMEMBERED_FOLDERS
    tree._REMEMBERED_FOLDERS = remembered  # a tiny limit: the folders forgotten mid-pass
    try:
        locate = reader.locator()
        for depth in range(1, 5):
            for parts in itertools.product(_NAMES, repeat=depth):
                relative = "/".join(parts)
                assert locate(relative) == reader.locate(relative), relative
    finally:
        tree._REMEMBERED_FOLDERS = original


@pytest.mark.skipif(os.name != "posix", reason="the fast path is POSIX only")
def test_locator_equals_realpath_past_loops_and_the_root(tmp_path: Path) -> None:
    """Cases where resolving folder by folder would differ from realpath (found by review):
    a loop followed by `..` (realpath stops at a loop and takes the rest as text), a link to
    `/` walked back into the tree, a loop entered from another link (3.13 caches a loop's
    answer by where it was entered)."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    os.symlink("a/..", out / "a")
    os.symlink("loop", out / "loop")
    os.symlink("loop/..", out / "c")
    os.symlink("../outside", out / "x")
    os.symlink("/", out / "slash")
    os.symlink(outside / "b", out / "m")
    os.symlink(out / "m", outside / "b")
    os.symlink("m/..", out / "n")
    os.symlink(outside / "b", out / "d")
    (out / "real").mkdir()
    (out / "real" / "f").write_bytes(b"{}")
    reader = tree.Reader(out)
    locate = reader.locator()
    inside = str(out.resolve()).lstrip("/")
    paths = ["a/a", "a/a/f", "c/x/jwks.json", "n/d/x", f"slash/{inside}/real/f", "real/f"]
    for relative in paths:
        assert locate(relative) == reader.locate(relative), relative
    assert locate("real/f") == str(out.resolve() / "real" / "f")
    assert locate("x/f") is None
