"""Re-renders cost what changed: unchanged instances are neither rebuilt nor rewritten, and
every change that matters (key bytes, template, defaults, a deleted or edited output file,
the clock passing a not_after) rebuilds exactly the instances it touches."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from wellknown_build import build as build_module
from wellknown_build import config as config_module
from wellknown_build import manifest as manifest_module
from wellknown_build import tree as tree_module
from wellknown_build.cache import ADOPTING, CACHE_NAME, SEAL_NAME, Index, stat_of
from wellknown_build.commands.render import check, render
from wellknown_build.errors import ConfigError, TreeError
from wellknown_build.timing import parse_instant
from wellknown_build.tree import LOCK_NAME
from wellknown_build.yamlload import load_yaml

from .helpers import BOOKKEEPING, KEY_MAKERS, public_pem, write, write_config

CONFIG = """
defaults: {{cache_control: "public, max-age={age}"}}
templates_dir: templates
instances:
  - {{id: a, issuer: 'https://a.example', keys: [{{path: keys/a.pem}}]}}
  - {{id: b, issuer: 'https://b.example', keys: [{{path: keys/b.pem, not_after: 2030-01-01T00:00:00Z}}, {{path: keys/c.pem}}]}}
  - {{id: c, issuer: 'https://c.example', template: mine, keys: [{{path: keys/c.pem}}]}}
"""


def _write_world(folder: Path, age: int, layout: str) -> Path:
    """CONFIG in one file, or split as a fleet is: one included file per instance (a and c
    are then kept unread when unchanged; b never is, its key has a not_after)."""
    text = CONFIG.format(age=age)
    if layout == "inline":
        return write_config(folder, text)
    head, items = text.split("instances:\n")
    for item in items.strip().splitlines():
        name = item.split("id: ")[1][0]
        write(folder / "tenants" / f"{name}.yaml", item.replace("keys/", "../keys/") + "\n")
    return write_config(folder, head + "include: [tenants/*.yaml]\n")


@pytest.fixture(params=["inline", "included"])
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    for name in "abc":
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
    write(
        tmp_path / "templates" / "openid-configuration" / "mine.json.j2",
        '{"issuer": {{ issuer|tojson }}, "jwks_uri": {{ jwks_uri|tojson }}}',
    )
    return _write_world(tmp_path, 300, request.param)


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key files a render reads to build JWKs."""
    seen: list[str] = []
    real = build_module.load_key_file  # type: ignore[attr-defined]

    def counting(path: Path, passphrase: object) -> object:
        seen.append(path.name)
        return real(path, passphrase)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "load_key_file", counting)
    return seen


def _mtimes(out: Path) -> dict[Path, int]:
    """Every file but the lock, which filelock may rewrite on each acquire."""
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME}


def _rerender(world: Path, now: str = "2026-12-01T00:00:00Z") -> tuple[list[str], int]:
    out = world.parent / "out"
    changes = render(world, out, parse_instant(now)).changes
    return sorted([*changes.created, *changes.updated, *changes.removed]), changes.unchanged


def test_nothing_changed_nothing_loaded_nothing_written(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rerender(world)
    out = world.parent / "out"
    before = _mtimes(out)
    loads = _loads(monkeypatch)
    assert _rerender(world) == ([], 6)
    assert loads == []
    assert _mtimes(out) == before
    assert check(world, out, parse_instant("2026-12-01T00:00:00Z")).changes.clean


def test_touch_without_change_rebuilds_nothing(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rerender(world)
    time.sleep(0.01)
    os.utime(world.parent / "keys" / "a.pem")  # new mtime, same bytes
    loads = _loads(monkeypatch)
    assert _rerender(world) == ([], 6)
    assert loads == []  # the bytes were hashed again, equal: the key needs no loading


def test_a_key_file_changed_rebuilds_its_instances(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rerender(world)
    write(world.parent / "keys" / "c.pem", public_pem(KEY_MAKERS["p256"]()))
    loads = _loads(monkeypatch)
    changed, _ = _rerender(world)
    assert changed == ["b.example/.well-known/jwks.json", "c.example/.well-known/jwks.json"]
    assert sorted(set(loads)) == ["b.pem", "c.pem"]  # a is not rebuilt


def test_a_template_changed_rebuilds_what_uses_it(world: Path) -> None:
    _rerender(world)
    write(
        world.parent / "templates" / "openid-configuration" / "mine.json.j2",
        '{"issuer": {{ issuer|tojson }}, "jwks_uri": {{ jwks_uri|tojson }}, "x": 1}',
    )
    changed, _ = _rerender(world)
    assert changed == ["c.example/.well-known/openid-configuration"]


def test_defaults_changed(world: Path) -> None:
    _rerender(world)
    _write_world(world.parent, 60, "included" if (world.parent / "tenants").is_dir() else "inline")
    changed, _ = _rerender(world)
    assert changed == []  # Cache-Control lives in the manifest, not in the bodies
    out = world.parent / "out"
    assert '"cache_control":"public, max-age=60"' in (out / ".wellknown-build.json").read_text()


@pytest.mark.parametrize("damage", ["delete", "edit", "edit-same-size"])
def test_a_damaged_output_file_is_rewritten(world: Path, damage: str) -> None:
    _rerender(world)
    target = world.parent / "out" / "a.example" / ".well-known" / "jwks.json"
    if damage == "delete":
        target.unlink()
    else:
        body = target.read_bytes()
        time.sleep(0.01)
        target.write_bytes(body.replace(b'"', b"'", 1) if damage == "edit-same-size" else b"{}")
    changed, _ = _rerender(world)
    assert changed == ["a.example/.well-known/jwks.json"]


def test_passing_a_not_after_rebuilds_that_instance(world: Path) -> None:
    _rerender(world, "2029-12-31T23:59:59Z")
    changed, _ = _rerender(world, "2030-01-01T00:00:00Z")
    assert changed == [
        "b.example/.well-known/jwks.json",
        "b.example/.well-known/openid-configuration",
    ] or changed == ["b.example/.well-known/jwks.json"]


def test_a_damaged_cache_costs_only_time(world: Path) -> None:
    _rerender(world)
    out = world.parent / "out"
    for junk in (b"{", b"[]", b'{"format": 1, "instances": {"a": 5}, "files": {"x": [1]}}'):
        (out / CACHE_NAME).write_bytes(junk)
        assert _rerender(world) == ([], 6)
    assert check(world, out, parse_instant("2026-12-01T00:00:00Z")).changes.clean


def _line_checks(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The results of each line-for-line comparison of the last cache with the manifest."""
    seen: list[bool] = []
    real = tree_module._mirrors

    def counting(previous: Index, old: bytes | None) -> bool:
        seen.append(real(previous, old))
        return seen[-1]

    monkeypatch.setattr(tree_module, "_mirrors", counting)
    return seen


def test_a_sealed_cache_is_not_compared_line_by_line(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seal holds the cache's stat data as the render that wrote it left it: then its
    rows are that render's, which wrote the manifest from them. Without it, or with the cache
    changed since, the rows are compared with the manifest line for line (as git trusts its
    index by stat data)."""
    _rerender(world)
    out = world.parent / "out"
    assert (out / SEAL_NAME).read_text() == json.dumps(stat_of(str(out / CACHE_NAME), follow=False))
    checks = _line_checks(monkeypatch)
    keys = world.parent / "keys"
    write(keys / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    assert _rerender(world)[0] == ["a.example/.well-known/jwks.json"]
    assert checks == []
    (out / SEAL_NAME).unlink()
    write(keys / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    assert _rerender(world)[0] == ["a.example/.well-known/jwks.json"]
    assert checks == [True]
    with contextlib.closing(sqlite3.connect(out / CACHE_NAME)) as db, db:
        db.execute("INSERT INTO owned VALUES ('x')")  # written, and back as it was
    with contextlib.closing(sqlite3.connect(out / CACHE_NAME)) as db, db:
        db.execute("DELETE FROM owned")
    write(keys / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    assert _rerender(world)[0] == ["a.example/.well-known/jwks.json"]
    assert checks == [True, True]


@pytest.mark.parametrize("kind", ["fifo", "folder", "link", "huge", "garbage", "old"])
def test_a_seal_that_is_not_this_cache_s_is_not_trusted(
    world: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    _rerender(world)
    out = world.parent / "out"
    seal = out / SEAL_NAME
    right = seal.read_text()
    seal.unlink()
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs")
        os.mkfifo(seal)
    elif kind == "folder":
        seal.mkdir()
    elif kind == "link":
        write(out / "elsewhere", right)
        try:
            seal.symlink_to(out / "elsewhere")
        except OSError:
            pytest.skip("no symbolic links")
    elif kind == "huge":
        seal.write_text(right + " " * 10_000)
    elif kind == "garbage":
        seal.write_bytes(b"\xff\x00[")
    else:  # a seal of an earlier cache: another inode and ctime
        seal.write_text(right)
        shutil.copyfile(out / CACHE_NAME, out / "copy")
        os.replace(out / "copy", out / CACHE_NAME)
    checks = _line_checks(monkeypatch)
    write(world.parent / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    assert _rerender(world)[0] == ["a.example/.well-known/jwks.json"]
    assert checks == [True]
    if kind in ("fifo", "folder", "link"):  # not replaced by render: not a file it wrote
        return
    assert seal.read_text() == json.dumps(stat_of(str(out / CACHE_NAME), follow=False))


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "folder"])
def test_what_stands_at_the_seal_s_scratch_name_is_never_written_through(
    world: Path, kind: str
) -> None:
    """A link there is not followed (the file it names stays as it was), a FIFO does not
    hang the render, a folder costs the seal only."""
    _rerender(world)
    out = world.parent / "out"
    victim = write(world.parent / "victim.txt", "precious")
    scratch = out / (SEAL_NAME + ".wkb.tmp")
    try:
        if kind == "symlink":
            scratch.symlink_to(victim)
        elif kind == "hardlink":
            os.link(victim, scratch)
        elif kind == "fifo":
            os.mkfifo(scratch)
        else:
            scratch.mkdir()
    except (OSError, AttributeError, NotImplementedError):
        pytest.skip(f"no {kind} here")
    write(world.parent / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    assert _rerender(world)[0] == ["a.example/.well-known/jwks.json"]
    assert victim.read_text() == "precious"
    assert not (out / SEAL_NAME).is_symlink()
    if kind != "folder":
        assert not scratch.exists()
        assert (out / SEAL_NAME).read_text() == json.dumps(
            stat_of(str(out / CACHE_NAME), follow=False)
        )


@pytest.mark.skipif(os.name != "posix", reason="SQLite's Unix path limit; POSIX long paths")
def test_an_output_folder_too_deep_for_sqlite_renders_without_a_cache(
    world: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's Unix VFS opens no file past about 500 bytes of path: such a folder renders,
    with a warning, its index in a temporary folder that goes, and no cache kept in it (an
    old one there is removed: it would not match the new tree)."""
    _rerender(world)
    deep = world.parent.joinpath(*["d" * 100] * 5, "out")
    deep.mkdir(parents=True)
    shutil.copy(world.parent / "out" / CACHE_NAME, deep / CACHE_NAME)
    scratch = world.parent / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    now = parse_instant("2026-12-01T00:00:00Z")
    for written in (6, 0):
        caplog.clear()
        changes = render(world, deep, now).changes
        assert (len(changes.created), changes.unchanged) == (written, 6 - written)
        assert "longer than SQLite allows" in caplog.text
        assert not (deep / CACHE_NAME).exists()
        assert list(scratch.iterdir()) == []
    assert _files(deep) == _files(world.parent / "out")
    assert check(world, deep, now).changes.clean


@pytest.mark.skipif(os.name != "posix", reason="`..` after a link is resolved by text on Windows")
def test_an_output_path_through_a_link_and_dotdot_keeps_its_cache(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`link/../out` is the link target's sibling to the system; SQLite, given the text, made
    the cache in `./out` instead, and the next render failed on that stray file."""
    (world.parent / "a" / "b").mkdir(parents=True)
    (world.parent / "cwd").mkdir()
    (world.parent / "cwd" / "link").symlink_to(world.parent / "a" / "b")
    monkeypatch.chdir(world.parent / "cwd")
    now = parse_instant("2026-12-01T00:00:00Z")
    render(world, Path("link/../out"), now)
    assert (world.parent / "a" / "out" / CACHE_NAME).is_file()
    assert not (world.parent / "cwd" / "out").exists()
    loads = _loads(monkeypatch)
    assert render(world, Path("link/../out"), now).changes.unchanged == 6
    assert loads == []


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name not in BOOKKEEPING
    }


def test_a_key_behind_a_swapped_symlink_is_seen(tmp_path: Path) -> None:
    """A Kubernetes secret volume rotates by swapping `..data`; key.pem's own link stays."""
    secret = tmp_path / "secret"
    for version in ("v1", "v2"):
        write(secret / version / "key.pem", public_pem(KEY_MAKERS["p256"]()))
    (secret / "..data").symlink_to("v1")
    (secret / "key.pem").symlink_to("..data/key.pem")
    config = write_config(
        tmp_path,
        "instances: [{id: a, issuer: 'https://a.example', keys: [{path: secret/key.pem}]}]\n",
    )
    out = tmp_path / "out"
    render(config, out)
    (secret / "..tmp").symlink_to("v2")
    os.replace(secret / "..tmp", secret / "..data")
    changes = render(config, out).changes
    assert changes.updated == ("a.example/.well-known/jwks.json",)


def test_a_same_size_edit_with_the_mtime_put_back_is_seen(world: Path) -> None:
    _rerender(world)
    key = world.parent / "keys" / "a.pem"
    before = key.stat()
    write(key, public_pem(KEY_MAKERS["p256"]()))  # a P-256 SPKI PEM: the same size
    assert key.stat().st_size == before.st_size
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))  # the ctime still moves
    changed, _ = _rerender(world)
    assert changed == ["a.example/.well-known/jwks.json"]


# -- included files found unchanged are not read again --------------------------------


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    for name in "abc":
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
    write(
        tmp_path / "templates" / "openid-configuration" / "mine.json.j2",
        '{"issuer": {{ issuer|tojson }}, "jwks_uri": {{ jwks_uri|tojson }}}',
    )
    return _write_world(tmp_path, 300, "included")


def _parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The configuration files a render parses."""
    seen: list[str] = []

    def counting(path: Path, text: str | None = None) -> object:
        seen.append(path.name)
        return load_yaml(path, text)

    monkeypatch.setattr(config_module, "load_yaml", counting)
    return seen


def _problems(config: Path, out: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        render(config, out, parse_instant("2026-12-01T00:00:00Z"))
    return [str(p) for p in caught.value.problems]


def test_unchanged_included_files_are_not_parsed(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rerender(fleet)
    parsed = _parsed(monkeypatch)
    assert _rerender(fleet) == ([], 6)
    assert parsed == ["instances.yaml", "b.yaml"]  # b's key has a not_after: read each time
    parsed.clear()
    edited = fleet.parent / "tenants" / "c.yaml"
    edited.write_text(edited.read_text().replace("template: mine", "template: default"))
    assert _rerender(fleet)[0] == ["c.example/.well-known/openid-configuration"]
    assert parsed == ["instances.yaml", "b.yaml", "c.yaml"]
    parsed.clear()
    _write_world(fleet.parent, 60, "included")  # the main file's settings: every file again
    _rerender(fleet)
    assert parsed == ["instances.yaml", "a.yaml", "b.yaml", "c.yaml"]


@pytest.mark.parametrize(
    ("name", "item"),
    [
        ("0.yaml", "{id: c, issuer: 'https://z.example', keys: [{path: ../keys/a.pem}]}"),
        ("z.yaml", "{id: a, issuer: 'https://z.example', keys: [{path: ../keys/a.pem}]}"),
        ("z.yaml", "{id: z, issuer: 'https://a.example', keys: [{path: ../keys/a.pem}]}"),
        ("0.yaml", "{id: z, issuer: 'https://c.example/', keys: [{path: ../keys/a.pem}]}"),
    ],
    ids=["dup-id-before", "dup-id-after", "same-path-after", "same-path-before"],
)
def test_problems_with_a_kept_file_are_those_of_a_full_render(
    fleet: Path, name: str, item: str
) -> None:
    """A new instance whose id or files clash with those of a file kept unread: the same
    problems, with file and line, as when every file is read."""
    out = fleet.parent / "out"
    _rerender(fleet)
    write(fleet.parent / "tenants" / name, f"- {item}\n")
    expected = _problems(fleet, fleet.parent / "fresh")
    assert expected
    assert _problems(fleet, out) == expected
    (fleet.parent / "tenants" / name).unlink()
    assert _rerender(fleet) == ([], 6)  # the tree was left as it was


def test_an_included_file_with_a_warning_is_read_every_time(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(fleet.parent / "tenants" / "empty.yaml", "[]\n")
    out = fleet.parent / "out"
    _rerender(fleet)
    parsed = _parsed(monkeypatch)
    warnings = render(fleet, out, parse_instant("2026-12-01T00:00:00Z")).warnings
    assert "empty.yaml" in parsed
    assert any("holds no instance" in str(w) for w in warnings)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE sources SET keys = 'not json'",
        "UPDATE sources SET keys = '[[1, 2]]'",
        'UPDATE sources SET keys = \'[["/nowhere.pem", "00"]]\'',
        "UPDATE sources SET first = first + 5, last = last + 5",
        "UPDATE sources SET last = last + 1",
        "UPDATE sources SET first = 'x'",
        "UPDATE sources SET digest = 'x'",
        "UPDATE sources SET ids = 'x'",
        # an empty range with the digest of no ids: the file's instances must not vanish
        "UPDATE sources SET last = first - 1, ids = '4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945'",
        "UPDATE sources SET first = 1, last = 1000000000",
        "UPDATE instances SET id = 'q' WHERE id = 'a'",
        "UPDATE files SET size = size + 1",
        "DELETE FROM files WHERE path LIKE 'a.example/%'",
    ],
)
def test_a_damaged_sources_row_costs_only_time(fleet: Path, damage: str) -> None:
    import sqlite3

    out = fleet.parent / "out"
    _rerender(fleet)
    stat = (out / CACHE_NAME).stat()
    with sqlite3.connect(out / CACHE_NAME) as db:
        db.execute(damage)
    db.close()
    os.utime(out / CACHE_NAME, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed, unchanged = _rerender(fleet)
    assert changed == [] and unchanged == 6
    assert check(fleet, out, parse_instant("2026-12-01T00:00:00Z")).changes.clean


def test_a_cache_without_a_sources_row_gains_it(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render that finds a file it could remember, and a cache that does not say so, saves
    the cache although nothing else changed: the next render keeps the file unread."""
    import sqlite3

    out = fleet.parent / "out"
    _rerender(fleet)
    stat = (out / CACHE_NAME).stat()
    with sqlite3.connect(out / CACHE_NAME) as db:
        db.execute("DELETE FROM sources")
    db.close()
    os.utime(out / CACHE_NAME, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert _rerender(fleet) == ([], 6)
    parsed = _parsed(monkeypatch)
    assert _rerender(fleet) == ([], 6)
    assert parsed == ["instances.yaml", "b.yaml"]


# -- a run equal to the last one so far copies no row ----------------------------------


def _tenants(folder: Path, files: dict[str, list[str]]) -> Path:
    """Included files of tenants (name -> ids); every key file the same."""
    if not (folder / "keys" / "k.pem").exists():
        write(folder / "keys" / "k.pem", public_pem(KEY_MAKERS["p256"]()))
    for stale in (folder / "tenants").glob("*.yaml") if (folder / "tenants").is_dir() else ():
        stale.unlink()
    for name, ids in files.items():
        write(
            folder / "tenants" / name,
            "".join(
                f"- {{id: {i}, issuer: 'https://{i}.example', keys: [{{path: ../keys/k.pem}}]}}\n"
                for i in ids
            ),
        )
    return write_config(folder, "include: [tenants/*.yaml]\n")


def _rows(out: Path) -> tuple[list[tuple[object, ...]], ...]:
    """The cache's rows that do not depend on when files were written."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(out / CACHE_NAME)) as db:
        return tuple(
            db.execute(sql).fetchall()
            for sql in (
                "SELECT * FROM instances ORDER BY seq",
                "SELECT path, seq, line FROM files ORDER BY seq, path",
                "SELECT name, digest, keys, first, last, ids, key_count FROM sources ORDER BY name",
            )
        )


START = {"1.yaml": ["a", "b"], "2.yaml": ["c", "d"], "3.yaml": ["e"], "4.yaml": ["f", "g"]}


@pytest.mark.parametrize(
    "after",
    [
        {**START, "2.yaml": ["c", "d2"]},  # a change in the middle: 1.yaml mirrored, 3-4 copied
        {**START, "1.yaml": ["a", "b", "b2"]},  # one more first: every later seq moves
        {**START, "1.yaml": ["b"]},  # one fewer first
        {k: v for k, v in START.items() if k != "4.yaml"},  # the last file gone
        {**START, "5.yaml": ["h"]},  # a file more at the end
        {**START, "4.yaml": ["f", "g", "h"]},  # the last file grows
    ],
    ids=["middle", "grown-first", "shrunk-first", "last-gone", "new-last", "grown-last"],
)
def test_a_partly_mirrored_run_leaves_the_cache_a_full_render_makes(
    tmp_path: Path, after: dict[str, list[str]]
) -> None:
    """Rows mirrored from the last render (not copied while nothing differed) are copied
    when something does: the cache is row for row the one of a render from scratch, and
    the next render finds nothing to do."""
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    _tenants(tmp_path, after)
    for name in after:  # files that did not change keep their stat data too
        if after[name] == START.get(name):
            os.utime(tmp_path / "tenants" / name, ns=(0, 0))
    render(config, out)
    render(config, tmp_path / "fresh")
    assert _rows(out) == _rows(tmp_path / "fresh")
    before = (out / CACHE_NAME).stat()
    changes = render(config, out).changes
    assert changes.clean and changes.unchanged == 2 * sum(map(len, after.values()))
    assert (out / CACHE_NAME).stat().st_mtime_ns == before.st_mtime_ns  # not rewritten


def _move_hosts(folder: Path, moves: dict[str, str]) -> None:
    """Give instances (by id) another issuer host, in place in their included files."""
    for name in (folder / "tenants").glob("*.yaml"):
        text = name.read_text()
        for ident, host in moves.items():
            text = text.replace(f"'https://{ident}.example'", f"'https://{host}.example'")
        name.write_text(text)


def _documents(*hosts: str) -> list[str]:
    return sorted(
        f"{h}.example/.well-known/{n}" for h in hosts for n in ("jwks.json", "openid-configuration")
    )


@pytest.mark.parametrize(
    ("moves", "gone"),
    [({"d": "d2"}, []), ({"a": "a2"}, []), ({"a": "a2", "e": "e2"}, []), ({"d": "d2"}, ["4.yaml"])],
    ids=["middle", "first", "two", "and-the-last-file-gone"],
)
def test_instances_rebuilt_in_place_adopt_the_last_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    moves: dict[str, str],
    gone: list[str],
) -> None:
    """Instances rebuilt where they were (same id, same seq) while every other one is the
    last render's: the new cache is a copy of the last one with their rows replaced
    (Index.adopt: no row copied), row for row the cache of a render from scratch, and their
    old files go. The manifest is the last one with their lines replaced (manifest.patch),
    byte for byte a render from scratch's; not when instances are gone from the end."""
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    after = {k: v for k, v in START.items() if k not in gone}
    _tenants(tmp_path, after)
    _move_hosts(tmp_path, moves)
    copied: list[object] = []
    monkeypatch.setattr(Index, "copy_rows", lambda self, *args: copied.append(args))
    patched: list[bool] = []
    real_patch = manifest_module.patch

    def patch(*args: Any) -> bool:
        patched.append(real_patch(*args))
        return patched[-1]

    monkeypatch.setattr(manifest_module, "patch", patch)
    changes = render(config, out).changes
    assert copied == []
    assert patched == ([] if gone else [True])
    assert "rendering without it" not in caplog.text
    assert sorted(changes.created) == _documents(*moves.values())
    assert sorted(changes.removed) == _documents(*moves, *(i for g in gone for i in START[g]))
    monkeypatch.undo()
    render(config, tmp_path / "fresh")
    assert _rows(out) == _rows(tmp_path / "fresh")
    assert _files(out) == _files(tmp_path / "fresh")
    again = render(config, out).changes
    assert again.clean and again.unchanged == 2 * sum(map(len, after.values()))


def test_an_instance_rebuilt_in_place_then_one_that_moves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rebuilt in place first (a), then an instance added (c2): from there the rows are
    copied, around a's, which are this run's (with the cache: not started over)."""
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    _tenants(tmp_path, {**START, "2.yaml": ["c", "c2", "d"]})
    _move_hosts(tmp_path, {"a": "a2"})
    changes = render(config, out).changes
    assert "rendering without it" not in caplog.text
    assert sorted(changes.created) == _documents("a2", "c2")
    assert sorted(changes.removed) == _documents("a")
    render(config, tmp_path / "fresh")
    assert _rows(out) == _rows(tmp_path / "fresh")
    assert render(config, out).changes.clean


def test_a_failed_adoption_copies_the_rows_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The last cache cannot be copied (a full disk, say): the rows are copied one range at a
    time, as before, around the one rebuilt in place; the same cache."""
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    _move_hosts(tmp_path, {"d": "d2"})

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("wellknown_build.cache.shutil.copyfile", full)
    copied: list[tuple[int, ...]] = []
    real = Index.copy_rows

    def counting(self: Index, first: int, last: int, offset: int) -> bool:
        copied.append((first, last, offset))
        return real(self, first, last, offset)

    monkeypatch.setattr(Index, "copy_rows", counting)
    render(config, out)
    assert "rendering without it" not in caplog.text
    assert copied == [(1, 3, 0), (5, 7, 0)]  # d is seq 4
    assert not list(out.glob("*.adopt"))
    monkeypatch.undo()
    render(config, tmp_path / "fresh")
    assert _rows(out) == _rows(tmp_path / "fresh")


def test_an_instance_rebuilt_to_the_same_lines_leaves_the_manifest_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deleted document: its instance is rebuilt in place to the same lines, so the manifest
    is neither patched nor written (it is the file it was), and the document is back."""
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    manifest_file = out / manifest_module.MANIFEST_NAME
    before = manifest_file.stat()
    (out / _documents("d")[0]).unlink()
    patched: list[object] = []
    copied: list[object] = []
    monkeypatch.setattr(manifest_module, "patch", lambda *args: patched.append(args))
    monkeypatch.setattr(Index, "copy_rows", lambda self, *args: copied.append(args))
    changes = render(config, out).changes
    assert changes.created == (_documents("d")[0],) and not changes.manifest_changed
    assert patched == copied == []  # (the last cache adopted)
    after = manifest_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert render(config, out).changes.clean


@pytest.mark.parametrize("layout", ["one-file", "included"])
def test_an_instance_moved_below_another_s_document_is_the_clash_a_fresh_render_finds(
    tmp_path: Path, layout: str
) -> None:
    """d's issuer moves below f's jwks.json, a file of the tree: the re-render names the clash
    as a render into an empty folder does (a ConfigError with both instances), not an error
    reading d's document through that file; the tree stays as it was."""
    if layout == "included":
        config = _tenants(tmp_path, START)
    else:
        write(tmp_path / "keys" / "k.pem", public_pem(KEY_MAKERS["p256"]()))
        items = "".join(
            f"  - {{id: {i}, issuer: 'https://{i}.example', keys: [{{path: keys/k.pem}}]}}\n"
            for i in "abcdefg"
        )
        config = write_config(tmp_path, "instances:\n" + items)
    out = tmp_path / "out"
    render(config, out)
    before = _files(out)
    for name in [config, *(tmp_path / "tenants").glob("*.yaml")]:
        name.write_text(
            name.read_text().replace(
                "'https://d.example'", "'https://f.example/.well-known/jwks.json'"
            )
        )
    expected = _problems(config, tmp_path / "fresh")
    assert any("needs it to be a folder" in p for p in expected)
    assert _problems(config, out) == expected
    assert _files(out) == before


def test_a_copy_left_by_a_killed_adoption_goes_with_the_next_render(tmp_path: Path) -> None:
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    left = out / f"{CACHE_NAME}.wkb.tmp{ADOPTING}"
    shutil.copyfile(out / CACHE_NAME, left)
    assert render(config, out).changes.clean  # nothing to adopt: the copy goes all the same
    assert not left.exists()


def test_an_instance_rebuilt_in_place_onto_a_kept_path_is_a_problem_as_in_a_full_render(
    tmp_path: Path,
) -> None:
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    before = _files(out)
    _move_hosts(tmp_path, {"d": "f"})  # f's files, in a file kept unread
    expected = _problems(config, tmp_path / "fresh")
    assert expected
    assert _problems(config, out) == expected
    assert _files(out) == before


@pytest.mark.parametrize(
    "damage",
    [
        "DELETE FROM instances WHERE id = 'b'",
        "DELETE FROM files WHERE path LIKE 'a.example/%'",
        "UPDATE instances SET seq = seq + 100 WHERE id = 'c'",
    ],
)
def test_rows_gone_from_the_cache_before_they_are_copied_cost_only_time(
    tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last render's rows are read twice: when found unchanged, and when copied after
    something differs. Rows gone in between (damage, here injected between the two) make
    the render start again without the cache, as any damage found does."""
    import sqlite3

    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    _tenants(tmp_path, {**START, "4.yaml": ["f", "g2"]})
    real = build_module.Pipeline._materialize

    def damaged(self: build_module.Pipeline) -> None:
        assert self.previous is not None
        writer = sqlite3.connect(out / CACHE_NAME)
        writer.execute(damage)
        writer.commit()
        writer.close()
        real(self)

    monkeypatch.setattr(build_module.Pipeline, "_materialize", damaged)
    changes = render(config, out).changes
    assert changes.created == (
        "g2.example/.well-known/jwks.json",
        "g2.example/.well-known/openid-configuration",
    )
    assert len(changes.removed) == 2
    monkeypatch.undo()
    render(config, tmp_path / "fresh")
    assert _rows(out) == _rows(tmp_path / "fresh")


def test_a_last_cache_unreadable_when_stale_files_are_sought_costs_only_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stale files are read from the last cache itself (attached), after everything else
    was checked: an error there starts the render again without the cache, and the files
    it would have named stale are still removed (found in the manifest then)."""
    config = _tenants(tmp_path, START)
    out = tmp_path / "out"
    render(config, out)
    _tenants(tmp_path, {**START, "4.yaml": ["f", "g2"]})
    real, calls = Index.stale_last, []

    def failing(self: Index) -> object:
        calls.append(self._own_last)
        if self._own_last:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real(self)

    monkeypatch.setattr(Index, "stale_last", failing)
    changes = render(config, out).changes
    assert calls == [True, False]  # with the cache, then without it
    assert changes.created == (
        "g2.example/.well-known/jwks.json",
        "g2.example/.well-known/openid-configuration",
    )
    assert changes.removed == (
        "g.example/.well-known/jwks.json",
        "g.example/.well-known/openid-configuration",
    )
    monkeypatch.undo()
    render(config, tmp_path / "fresh")
    assert _rows(out) == _rows(tmp_path / "fresh")


AT_FOLDER = "https://a.example/.well-known"  # where a.example/.well-known/jwks.json is kept
BELOW_FILE = "https://a.example/.well-known/jwks.json/x"


@pytest.mark.parametrize("name", ["0.yaml", "z.yaml"])
@pytest.mark.parametrize("jwks_uri", [AT_FOLDER, BELOW_FILE], ids=["at-folder", "below-file"])
def test_a_new_file_against_a_kept_file_folder_is_refused_as_without_the_cache(
    fleet: Path, name: str, jwks_uri: str
) -> None:
    """A new instance's file where a kept instance needs a folder, or a folder where one
    has a file (before or after it in order): refused, nothing changed, with the words a
    render without the cache has (the tree has that folder or file already; below a file,
    the clash with the instance that writes it, as a render into an empty folder says)."""
    out = fleet.parent / "out"
    _rerender(fleet)
    item = f"{{id: z, issuer: 'https://z.example', jwks_uri: '{jwks_uri}', keys: [{{path: ../keys/a.pem}}]}}"
    write(fleet.parent / "tenants" / name, f"- {item}\n")
    uncached = fleet.parent / "uncached"
    shutil.copytree(out, uncached)
    (uncached / CACHE_NAME).unlink()
    before = _mtimes(out)
    errors = []
    for where in (out, uncached):
        with pytest.raises((TreeError, ConfigError)) as caught:
            render(fleet, where, parse_instant("2026-12-01T00:00:00Z"))
        errors.append(str(caught.value).replace(str(where), "OUT"))
        if jwks_uri == BELOW_FILE:
            assert isinstance(caught.value, ConfigError)
            assert re.search(
                r"instance z needs it to be a folder|instance a writes a file", errors[-1]
            )
    assert errors[0] == errors[1]
    assert _mtimes(out) == before


@pytest.mark.parametrize("jwks_uri", [AT_FOLDER, BELOW_FILE], ids=["at-folder", "below-file"])
def test_a_clash_between_new_files_is_a_problem_not_a_staging_failure(
    fleet: Path, jwks_uri: str
) -> None:
    """Staging both files of a clash fails (a file where a folder is); the render says which
    instances clash, with file and line, as `validate` does."""
    item = f"{{id: z, issuer: 'https://z.example', jwks_uri: '{jwks_uri}', keys: [{{path: ../keys/a.pem}}]}}"
    write(fleet.parent / "tenants" / "z.yaml", f"- {item}\n")
    with pytest.raises(ConfigError) as caught:
        render(fleet, fleet.parent / "out", parse_instant("2026-12-01T00:00:00Z"))
    [problem] = caught.value.problems
    assert (Path(problem.file or "").name, problem.line) == ("z.yaml", 1)
    assert problem.instance == "z" and "to be a folder" in str(problem)  # the later one
    assert not (fleet.parent / "out").exists()


def _index_with(rows: list[tuple[int, str]], path: Path | None = None) -> Index:
    index = Index.new(str(path) if path else None)
    for seq, file in rows:
        index.add_instance(seq, f"i{seq}", "f", "[]")
        index.add_file(file, seq, "{}", None)
    return index


def _attached(tmp_path: Path, rows: list[tuple[object, str]]) -> tuple[Index, Index]:
    """A last render's cache with these (seq, path) rows, and a new index attached to it."""
    last = _index_with([], tmp_path / "last.db")
    for seq, path in rows:
        if type(seq) is int:  # (a file row's seq may be anything in a damaged cache)
            last.db.execute("INSERT INTO instances VALUES (?, ?, 'f', '[]')", (seq, f"i{seq}"))
        last.db.execute("INSERT INTO files VALUES (?, ?, '{}', 0, 0, 0, 0, 0)", (path, seq))
    last.db.execute("COMMIT")
    last.db.close()
    previous = Index(sqlite3.connect(tmp_path / "last.db"))
    previous.uri = (tmp_path / "last.db").as_uri() + "?mode=ro"
    index = Index.new(str(tmp_path / "new.db"))
    index.attach(previous)
    return previous, index


def test_kept_instances_leave_out_rows_of_the_wrong_types(tmp_path: Path) -> None:
    """kept_between() reads a last cache that may be damaged: an instance without a file
    of the right types is left out, stat data of the wrong types reads as none, a file row
    without its instance is not anyone's."""
    previous, index = _attached(tmp_path, [])
    index.discard()
    previous.close()
    with sqlite3.connect(tmp_path / "last.db") as db:
        db.executemany(
            "INSERT INTO instances VALUES (?, ?, 'f', '[]')",
            [(1, "i1"), (2, "i2"), (3, "i3"), (4, "i4"), (5, b"i5"), (7, "i7")],
        )
        db.executemany(
            "INSERT INTO files VALUES (?, ?, '{}', ?, ?, ?, ?, 0)",
            [
                ("p1a", 1, 10, 11, 12, 13),
                ("p1b", 1, "x", 11, 12, 13),  # a size that is text
                (b"p2", 2, 1, 1, 1, 1),  # a path that is not text: i2 has no file then
                ("p4", 4, 1, None, 1, 1),
                ("p4b", 4, 1, 1.5, 1, 1),
                ("p5", 5, 1, 1, 1, 1),  # an id that is not text
                ("p6", 6, 1, 1, 1, 1),  # no instance 6
                ("p6.5", 6.5, 1, 1, 1, 1),
                ("p7", 7, 1, 2, 3, 4),
            ],
        )
    db.close()
    found = Index(sqlite3.connect(tmp_path / "last.db"))
    assert found.kept_between(1, 7) == [
        (1, "i1", [("p1a", (10, 11, 12, 13)), ("p1b", None)]),
        (4, "i4", [("p4", None), ("p4b", None)]),
        (7, "i7", [("p7", (1, 2, 3, 4))]),
    ]
    assert found.kept_between(2, 6) == [(4, "i4", [("p4", None), ("p4b", None)])]
    found.close()


@pytest.mark.parametrize(
    ("fresh", "kept", "clash"),
    [
        ("h/x/.well-known/jwks.json", "h/y/.well-known/jwks.json", False),
        ("h/x", "h/x/.well-known/jwks.json", True),  # a new file where a kept one needs a folder
        ("h/x/.well-known/jwks.json", "h/x", True),  # a new file below a kept file
        ("h/x.json", "h/x/.well-known/jwks.json", False),  # '.' sorts before '/'
        ("h/x", "h/x0/.well-known/jwks.json", False),  # '0' sorts after '/'
    ],
)
@pytest.mark.parametrize("order", ["fresh-first", "kept-first"])
def test_copied_rows_are_checked_against_rows_built_this_run(
    tmp_path: Path, fresh: str, kept: str, clash: bool, order: str
) -> None:
    """Rows copied from the last render are not checked as they are copied (they clashed
    with none of each other then); clashes() finds one of them against a row built this
    run, whichever came first."""
    previous, index = _attached(tmp_path, [(1, kept)])
    folders = [("/".join(fresh.split("/")[:d]), 1) for d in range(1, fresh.count("/") + 1)]
    if order == "fresh-first":
        assert index.add_rows([(1, "new", "f", "[]")], [(fresh, 1, "{}", None, 1)], folders)
        assert index.copy_rows(1, 1, 1)
        assert index.clashes([(1, 1)]) is clash
    else:
        assert index.copy_rows(1, 1, 0)
        folders = [(f, 2) for f, _ in folders]
        added = index.add_rows([(2, "new", "f", "[]")], [(fresh, 2, "{}", None, 1)], folders)
        # a new file below a kept one: add_rows refuses it already (then says who clashes)
        assert (index.clashes([(2, 2)]) if added else True) is clash
    index.discard()
    previous.close()


@pytest.mark.parametrize(
    ("copies", "fresh"),
    [
        ([], []),
        ([], [(1, "p1")]),
        ([(1, 9)], []),  # the whole render copied: nothing stale
        ([(1, 3)], [(4, "p5"), (5, "p4")]),
        ([(4, 5)], [(1, "p9"), (2, "p1")]),
        ([(2, 3), (7, 9)], [(1, "p6")]),
        ([(7, 9), (2, 3)], []),  # copied out of order (included files renamed)
        ([(1, 5), (6, 9)], []),  # next to each other: the 5.5 between them is stale
        ([(3, 3)], [(1, "p2"), (2, "p1")]),  # files swapped between instances
        ([(1, 0)], []),  # nothing mirrored when the first instance differs: an empty copy
        ([(1, 0), (2, 3)], []),
    ],
)
def test_stale_files_are_those_no_row_of_this_run_writes(
    tmp_path: Path, copies: list[tuple[int, int]], fresh: list[tuple[int, str]]
) -> None:
    """stale() looks only between the ranges copy_rows() copied, yet finds what a look at
    every row of the last cache finds, in the same order: odd seqs (a real, text) too."""
    rows: list[tuple[object, str]] = [(n, f"p{n}") for n in range(1, 10)]
    rows += [(5.5, "p5.5"), (0.5, "p0.5"), ("x", "px"), (-1, "pminus")]
    previous, index = _attached(tmp_path, rows)
    offset = 100
    for first, last in copies:
        assert index.copy_rows(first, last, offset)
        offset += 100
    for seq, path in fresh:
        index.add_instance(seq, f"new{seq}", "f", "[]")
        assert index.add_file(path, seq, "{}", None) is None
    index.own_last()
    naive = [
        p
        for (p,) in index.db.execute(
            "SELECT path FROM last.files WHERE path NOT IN (SELECT path FROM main.files) "
            "ORDER BY seq, rowid"
        )
    ]
    assert list(index.stale()) == naive
    assert "p5.5" in naive or any(start <= 5 and end >= 6 for start, end in copies)
    index.discard()
    previous.close()


def _stale_stat_rows(out: Path) -> list[str]:
    """Output files whose stat data in the cache are not theirs now."""
    with contextlib.closing(sqlite3.connect(out / CACHE_NAME)) as db:
        rows = db.execute("SELECT path, size, mtime, ctime, ino FROM files").fetchall()
    return [
        path
        for path, *stat in rows
        if tuple(stat) != stat_of(str(out.joinpath(*path.split("/"))), follow=False)
    ]


def test_the_cache_has_the_stat_data_of_every_file_written(world: Path) -> None:
    """Stat data are taken when a body is staged: true after the move for a file that moves
    with its new folder; a file renamed on its own (a new ctime) is looked at again. Were
    they wrong, the next render would read every file again."""
    out = world.parent / "out"
    _rerender(world)
    assert _stale_stat_rows(out) == []
    write(world.parent / "keys" / "c.pem", public_pem(KEY_MAKERS["p256"]()))  # replaced
    item = "{id: n, issuer: 'https://n.example', keys: [{path: KEYS/a.pem}]}"
    if (world.parent / "tenants").is_dir():
        write(world.parent / "tenants" / "n.yaml", "- " + item.replace("KEYS", "../keys") + "\n")
    else:
        world.write_text(world.read_text() + "  - " + item.replace("KEYS", "keys") + "\n")
    changed, _ = _rerender(world)
    assert "n.example/.well-known/jwks.json" in changed  # a new folder, moved whole
    assert "c.example/.well-known/jwks.json" in changed  # replaced in its folder
    assert _stale_stat_rows(out) == []
