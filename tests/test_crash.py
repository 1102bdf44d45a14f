"""kill -9 at any instant of a re-render, and two renders at once, never leave a tree that a
later run or `--check` misreads.

The render runs in a child process whose file operations (open for writing, os.replace,
os.unlink) are counted by a wrapper in this file; at the k-th one the child sends itself
SIGKILL. Sweeping k over the whole run kills it before the journal, while staging, between
renames, while removing, before and after the manifest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import filelock
import pytest

from wellknown_build import tree
from wellknown_build.cache import ADOPTING, CACHE_NAME, SEAL_NAME
from wellknown_build.commands.render import render
from wellknown_build.errors import PublishError, TreeError
from wellknown_build.publish.run import _Tree

from .helpers import BOOKKEEPING, KEY_MAKERS, public_pem, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# Count every file operation that changes the tree; die at the k-th.
_CHILD = """
import builtins, os, pathlib, signal, sys  # pathlib first: 3.10's keeps os.unlink as a method
limit, count = int(sys.argv[1]), [0]
def tick():
    count[0] += 1
    if count[0] == limit:
        os.kill(os.getpid(), signal.SIGKILL)
def counted(function):
    def wrapper(*args, **kwargs):
        tick()
        return function(*args, **kwargs)
    return wrapper
real_open = builtins.open
def open_(file, mode="r", *args, **kwargs):
    if any(m in mode for m in "wxa"):
        tick()
    return real_open(file, mode, *args, **kwargs)
builtins.open = open_
real_os_open = os.open
def os_open(path, flags, *args, **kwargs):  # staged bodies are written with os calls
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        tick()
    return real_os_open(path, flags, *args, **kwargs)
os.open = os_open
os.replace, os.unlink = counted(os.replace), counted(os.unlink)
import atexit
atexit.register(lambda: print(f"operations={count[0]}", file=sys.stderr))
from wellknown_build.cli import main
main(sys.argv[2:], prog_name="wellknown-build")
"""
INSTANCES = 40


def _config(folder: Path, version: int) -> Path:
    """Version 2 changes every document and adds instances; version 1 is the start."""
    lines = ["defaults:", f"  cache_control: 'public, max-age={300 * version}'", "instances:"]
    count = INSTANCES + (10 if version == 2 else 0)
    for i in range(count):
        extra = f", discovery: {{v: {version}}}" if i % 2 else ""
        lines.append(
            f"  - {{id: i{i}, issuer: 'https://h{i % 7}.example/t{i}', "
            f"keys: [{{path: keys/k{i % 3}.pem}}]{extra}}}"
        )
    path = folder / f"v{version}.yaml"
    write(path, "\n".join(lines) + "\n")
    return path


# Render's own bookkeeping, not part of the tree: the lock, the cache, and what a killed run
# leaves while checking (the cache being made, the staging folder), which the next render
# removes first and nothing else reads.
_BOOKKEEPING = (*BOOKKEEPING, CACHE_NAME + ".wkb.tmp", SEAL_NAME + ".wkb.tmp")


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and p.name not in _BOOKKEEPING
        and tree.STAGING_NAME not in p.relative_to(out).parts
    }


def _cli(*args: str, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(kill_at), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("crash")
    for i in range(3):
        write(folder / "keys" / f"k{i}.pem", public_pem(KEY_MAKERS["ed25519"]()))
    v1, v2 = _config(folder, 1), _config(folder, 2)
    expected = {}
    for version, config in ((1, v1), (2, v2)):
        reference = folder / f"reference{version}"
        render(config, reference)
        expected[version] = _files(reference)
    # How many counted operations a full re-render from v1 to v2 makes.
    probe = folder / "probe"
    render(v1, probe)
    done = _cli("-q", "render", str(v2), "--out", str(probe))
    assert done.returncode == 0, done.stderr
    operations = int(done.stderr.strip().rsplit("operations=", 1)[1])
    return {"folder": folder, "v1": v1, "v2": v2, "expected": expected, "ops": operations}


def _killed_at(world: dict[str, object], k: int, name: str) -> Path:
    folder, v1, v2 = (world[key] for key in ("folder", "v1", "v2"))
    assert isinstance(folder, Path) and isinstance(v1, Path) and isinstance(v2, Path)
    out = folder / name
    render(v1, out)
    result = _cli("-q", "render", str(v2), "--out", str(out), kill_at=k)
    assert result.returncode == -9, result.stderr
    return out


def test_the_sweep_covers_a_whole_render(world: dict[str, object]) -> None:
    # The journal, staging of every changed file, renames, the manifest: dozens of steps.
    # (a new issuer folder moves into place in one rename)
    assert isinstance(world["ops"], int) and world["ops"] > INSTANCES


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 0.6, 0.9, 0.97, 1.0])
def test_kill_9_at_any_instant(world: dict[str, object], fraction: float) -> None:
    operations = world["ops"]
    assert isinstance(operations, int)
    k = max(1, min(operations - 1, round(fraction * operations)))
    out = _killed_at(world, k, f"killed-{k}")
    expected = world["expected"]
    assert isinstance(expected, dict)
    v1, v2 = world["v1"], world["v2"]
    assert isinstance(v1, Path) and isinstance(v2, Path)

    # 1. --check says "up to date" only when the tree is exactly what render writes.
    check = _cli("render", str(v2), "--out", str(out), "--check")
    if check.returncode == 0:
        assert _files(out) == expected[2]
    else:
        assert check.returncode == 1 and "not up to date" in check.stderr

    # 2. publish reads the tree only when every file matches its manifest, else refuses.
    try:
        local = _Tree(out)
    except (PublishError, TreeError) as e:
        assert "render again" in str(e)
    else:
        assert not tree.interrupted(out)
        for entry in local.entries:  # every body it would send matches the manifest
            local.body(entry)

    # 3. The next render finishes cleanly: exactly the reference tree, no temporary left.
    again = _cli("-q", "render", str(v2), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _files(out) == expected[2]
    assert not (out / tree.STAGING_NAME).exists()
    assert not (out / (CACHE_NAME + ".wkb.tmp")).exists()
    assert _cli("render", str(v2), "--out", str(out), "--check").returncode == 0


@pytest.mark.parametrize("fraction", [0.3, 0.7, 0.97])
def test_going_back_after_a_kill_removes_what_the_killed_run_wrote(
    world: dict[str, object], fraction: float
) -> None:
    """Files the killed run created (new instances) are ours: the journal says so."""
    operations = world["ops"]
    assert isinstance(operations, int)
    k = round(fraction * operations)
    out = _killed_at(world, k, f"back-{k}")
    v1, expected = world["v1"], world["expected"]
    assert isinstance(v1, Path) and isinstance(expected, dict)
    again = _cli("-q", "render", str(v1), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert _files(out) == expected[1]


def test_a_second_render_at_the_same_time_is_refused(world: dict[str, object]) -> None:
    folder, v1, v2 = world["folder"], world["v1"], world["v2"]
    assert isinstance(folder, Path) and isinstance(v1, Path) and isinstance(v2, Path)
    out = folder / "concurrent"
    render(v1, out)
    before = _files(out)
    with filelock.FileLock(str(out / tree.LOCK_NAME), timeout=0):  # a render in progress
        busy = _cli("render", str(v2), "--out", str(out))
    assert busy.returncode == 1
    assert "another render is writing" in busy.stderr
    assert "Traceback" not in busy.stderr
    assert _files(out) == before
    assert _cli("-q", "render", str(v2), "--out", str(out)).returncode == 0


def test_a_leftover_staging_folder_blocks_nothing(world: dict[str, object]) -> None:
    """A run killed while staging leaves only the staging folder (fixed name, ours alone):
    the next render removes it first, and nothing of it reaches the tree."""
    folder, v1, v2 = world["folder"], world["v1"], world["v2"]
    assert isinstance(folder, Path) and isinstance(v1, Path) and isinstance(v2, Path)
    out = folder / "leftover"
    render(v1, out)
    leftover = out / tree.STAGING_NAME / "h1.example/t1/.well-known/openid-configuration"
    write(leftover, "stale")
    write(out / tree.STAGING_NAME / "elsewhere.example/x", "stale")
    assert _cli("-q", "render", str(v2), "--out", str(out)).returncode == 0
    assert not (out / tree.STAGING_NAME).exists()
    assert not (out / "elsewhere.example").exists()
    assert _files(out) == world["expected"][2]  # type: ignore[index]


# -- every instant of a small re-render and of a first render ------------------------------
# The child above counts writes, renames and unlinks. This one counts every call that changes
# the file system (folders removed too) and names the step it dies at. It imports render once
# and forks a fresh process for each step (one single-threaded helper process: fork is safe
# there), so a sweep over every step stays short.
_STEP_CHILD = """
import builtins, os, pathlib, signal, sys
from wellknown_build.commands.render import render
config = pathlib.Path(sys.argv[1])
def run(limit, out):
    count = [0]
    def tick(name, path):
        count[0] += 1
        if count[0] == limit:
            where = os.path.relpath(os.fspath(path), out).replace(os.sep, "/")
            print(f"{limit} killed at {name} {where}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    def counted(name, function):
        def wrapper(path, *args, **kwargs):
            tick(name, path)
            return function(path, *args, **kwargs)
        return wrapper
    real_open = builtins.open
    def open_(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wxa"):
            tick("open", file)
        return real_open(file, mode, *args, **kwargs)
    builtins.open = open_
    real_os_open = os.open
    def os_open(file, flags, *args, **kwargs):  # staged bodies are written with os calls
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            tick("open", file)
        return real_os_open(file, flags, *args, **kwargs)
    os.open = os_open
    for name in ("replace", "unlink", "rmdir", "rename"):
        setattr(os, name, counted(name, getattr(os, name)))
        if hasattr(getattr(pathlib, "_NormalAccessor", None), name):  # Python 3.10's Path
            setattr(pathlib._NormalAccessor, name, staticmethod(getattr(os, name)))
    render(config, pathlib.Path(out))
    print(f"{limit} operations={count[0]}", flush=True)
for pair in sys.argv[2:]:
    limit, out = pair.split("=", 1)
    child = os.fork()
    if child == 0:
        try:
            run(int(limit), out)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
"""

# a changes, b stays, c goes (its host folder with it), d is a new host (one folder moved
# in), e a new folder on b's host.
_SMALL = {
    1: {"a": "https://a.example", "b": "https://b.example/t/x", "c": "https://c.example"},
    2: {
        "a": "https://a.example",
        "b": "https://b.example/t/x",
        "d": "https://d.example",
        "e": "https://b.example/t/y",
    },
    # a changes in place, b stays, c goes: the render adopts the last cache (Index.adopt)
    3: {"a": "https://a.example", "b": "https://b.example/t/x"},
    # a changes in place, b and c stay: the manifest is patched too (manifest.patch)
    4: {"a": "https://a.example", "b": "https://b.example/t/x", "c": "https://c.example"},
}


def _small_config(folder: Path, version: int) -> Path:
    lines = ["instances:"]
    for ident, issuer in _SMALL[version].items():
        extra = f", discovery: {{v: {version}}}" if ident == "a" else ""
        lines.append(
            f"  - {{id: {ident}, issuer: '{issuer}', keys: [{{path: keys/k0.pem}}]{extra}}}"
        )
    return write(folder / f"small{version}.yaml", "\n".join(lines) + "\n")


def _layout(out: Path) -> tuple[dict[str, bytes], list[str]]:
    """The tree as a reader sees it: files with their bytes, and every folder (an empty
    folder left behind is a difference too); render's bookkeeping aside."""
    folders = sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_dir() and tree.STAGING_NAME not in p.relative_to(out).parts
    )
    return _files(out), folders


def _steps(config: Path, runs: list[tuple[int, Path]]) -> dict[int, str]:
    """Render `config` into each folder, killed at the given step (0: never); what each run
    printed: where it died, or how many steps it took."""
    done = subprocess.run(
        [sys.executable, "-c", _STEP_CHILD, str(config), *(f"{k}={out}" for k, out in runs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    said = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    return {int(k): text for k, text in said.items()}


def _versions_of(folder: Path) -> dict[str, set[bytes]]:
    """Every body a path has in either version: what a reader may see mid-render."""
    seen: dict[str, set[bytes]] = {}
    for reference in folder.glob("small-reference*"):
        for path, body in _files(reference).items():
            seen.setdefault(path, set()).add(body)
    return seen


def _assert_read_right(out: Path, config: Path, clean: tuple[dict[str, bytes], list[str]]) -> None:
    """After a kill: --check, publish, serve and the next render read the state right."""
    from wellknown_build.commands.render import check
    from wellknown_build.commands.serve import PreviewServer

    # --check is clean only when the tree is exactly what render writes.
    if check(config, out).changes.clean:
        assert _layout(out) == clean
    # publish reads only a finished tree whose every file matches its manifest.
    try:
        local = _Tree(out)
    except (PublishError, TreeError) as e:
        assert "render" in str(e)
    else:
        assert not tree.interrupted(out)
        for entry in local.entries:
            local.body(entry)
    # serve never serves a torn document: each body is one a render wrote there.
    bodies = _versions_of(out.parent)
    try:
        server = PreviewServer(out)
    except TreeError:
        pass
    else:
        try:
            for path, entry in server.files.items():
                body = server.body(entry)
                assert body is None or body in bodies[path]
        finally:
            server.server_close()
    # The next render leaves exactly the tree a clean render writes, and no bookkeeping.
    render(config, out)
    assert _layout(out) == clean
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == sorted(
        [*BOOKKEEPING, ".wellknown-build.json"]
    )
    assert check(config, out).changes.clean


@pytest.mark.parametrize("first", [False, True], ids=["re-render", "first-render"])
def test_kill_9_at_every_step(tmp_path: Path, first: bool) -> None:
    write(tmp_path / "keys" / "k0.pem", public_pem(KEY_MAKERS["ed25519"]()))
    v1, v2 = _small_config(tmp_path, 1), _small_config(tmp_path, 2)
    references = {}
    for version, config in ((1, v1), (2, v2)):
        render(config, tmp_path / f"small-reference{version}")
        references[version] = _layout(tmp_path / f"small-reference{version}")
    probe = tmp_path / "probe"
    if not first:
        render(v1, probe)
    operations = int(_steps(v2, [(0, probe)])[0].split("=")[1])
    runs = [(k, tmp_path / f"killed-{k}") for k in range(1, operations + 1)]
    if not first:
        for _, out in runs:
            render(v1, out)
    steps = _steps(v2, runs)
    assert sorted(steps) == [k for k, _ in runs]
    for k, out in runs:
        assert steps[k].startswith("killed at "), steps[k]
        _assert_read_right(out, v2, references[2])
    # The sweep went through staging, the journal, removals, folder and file moves, the
    # manifest, the cache and the journal's removal, in that order.
    order = {text.removeprefix("killed at "): k for k, text in sorted(steps.items(), reverse=True)}
    staged = [k for text, k in order.items() if text.startswith(f"open {tree.STAGING_NAME}/")]
    journal = order[f"replace {tree.JOURNAL_NAME}.wkb.tmp"]
    new_host = order[f"replace {tree.STAGING_NAME}/d.example"]
    manifest = order["replace .wellknown-build.json.wkb.tmp"]
    cache = order[f"replace {CACHE_NAME}.wkb.tmp"]
    done = order[f"unlink {tree.JOURNAL_NAME}"]
    assert staged and max(staged) < journal < new_host < manifest < cache < done
    if not first:
        removed = order["unlink c.example/.well-known/jwks.json"]
        assert journal < removed < order["rmdir c.example"] < new_host
        assert journal < order[f"replace {tree.STAGING_NAME}/b.example/t/y"] < manifest


@pytest.mark.parametrize("version", [3, 4], ids=["one-gone", "manifest-patched"])
def test_kill_9_at_every_step_of_a_render_that_adopts_the_last_cache(
    tmp_path: Path, version: int
) -> None:
    """The same sweep over a re-render that copies the last cache and replaces one
    instance's rows (a changed in place; c gone, or c kept and the manifest patched): a copy
    left by a kill goes with the next render, which leaves the clean tree."""
    write(tmp_path / "keys" / "k0.pem", public_pem(KEY_MAKERS["ed25519"]()))
    v1, v3 = _small_config(tmp_path, 1), _small_config(tmp_path, version)
    for number, config in ((1, v1), (version, v3)):
        render(config, tmp_path / f"small-reference{number}")
    clean = _layout(tmp_path / f"small-reference{version}")
    probe = tmp_path / "probe"
    render(v1, probe)
    operations = int(_steps(v3, [(0, probe)])[0].split("=")[1])
    runs = [(k, tmp_path / f"killed-{k}") for k in range(1, operations + 1)]
    for _, out in runs:
        render(v1, out)
    steps = _steps(v3, runs)
    for k, out in runs:
        assert steps[k].startswith("killed at "), steps[k]
        _assert_read_right(out, v3, clean)
    order = {text.removeprefix("killed at "): k for k, text in sorted(steps.items(), reverse=True)}
    adopting = f"{CACHE_NAME}.wkb.tmp{ADOPTING}"
    assert order[f"open {adopting}"] < order[f"replace {adopting}"]
    assert order[f"replace {adopting}"] < order["replace .wellknown-build.json.wkb.tmp"]
