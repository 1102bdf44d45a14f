"""Staged bodies written by a helper process (staging.py): the same tree, the same stat data
in the cache and the same errors as when the render writes them itself; a helper that dies,
hangs or cannot start costs speed, never a wrong file; and a helper whose render was killed
cannot write into a later render's staging folder."""

from __future__ import annotations

import marshal
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from wellknown_build import staging, tree
from wellknown_build.commands.render import check, render
from wellknown_build.documents import KIND_JWKS, Document
from wellknown_build.errors import ConfigError, TreeError
from wellknown_build.timing import parse_instant

from .helpers import BOOKKEEPING, KEY_MAKERS, public_pem, write, write_config
from .test_render_cache import _stale_stat_rows

pytestmark = pytest.mark.skipif(not staging.available(), reason="no helper on this system")
fcntl = pytest.importorskip("fcntl")  # (POSIX: where there is a helper)
NOW = parse_instant("2026-12-01T00:00:00Z")
ROOT = Path(__file__).resolve().parent.parent


def _config(folder: Path, count: int, version: int = 1) -> Path:
    """`count` instances over a few hosts, some at the host's root, some under a path."""
    for name in "ab":
        if not (folder / "keys" / f"{name}.pem").exists():
            write(folder / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
    lines = ["defaults:", f"  cache_control: 'public, max-age={300 * version}'", "instances:"]
    for i in range(count):
        issuer = f"https://h{i % 4}.example/t/{i}" if i >= 4 else f"https://h{i}.example"
        lines.append(
            f"  - {{id: i{i}, issuer: '{issuer}', keys: [{{path: keys/{'ab'[i % 2]}.pem}}], "
            f"discovery: {{v: {version}}}}}"
        )
    return write_config(folder, "\n".join(lines) + "\n")


def _identity(folder: Path) -> tuple[int, int]:
    info = folder.lstat()
    return info.st_dev, info.st_ino


def _tree(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in BOOKKEEPING
    }


@pytest.fixture
def helper_from(monkeypatch: pytest.MonkeyPatch) -> object:
    """Set how many bodies the render stages itself before the helper takes over."""

    def set_to(count: int) -> None:
        monkeypatch.setattr(staging, "WRITER_AFTER", count)

    return set_to


def _started(monkeypatch: pytest.MonkeyPatch) -> list[staging.Writer]:
    """Every helper the render starts, as it is started."""
    started: list[staging.Writer] = []
    real = staging.Writer.__init__

    def init(self: staging.Writer, root: str, folder: tuple[int, int]) -> None:
        real(self, root, folder)
        started.append(self)

    monkeypatch.setattr(staging.Writer, "__init__", init)
    return started


@pytest.mark.parametrize("after", [0, 7])
def test_the_helper_stages_the_same_tree_with_true_stat_data(
    tmp_path: Path, helper_from: object, after: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the first body (0), or after some written here (7): the tree is byte for byte the
    one the render writes alone, the cache holds each file's stat data (so the next render
    writes and reads nothing), and a changed re-render through the helper is right too."""
    config = _config(tmp_path, 30)
    alone, helped = tmp_path / "alone", tmp_path / "helped"
    render(config, alone, NOW)
    helper_from(after)  # type: ignore[operator]
    started = _started(monkeypatch)
    changes = render(config, helped, NOW).changes
    assert len(started) == 1 and started[0]._process.returncode == 0  # it was used, and ended
    assert len(changes.created) == 60
    assert _tree(helped) == _tree(alone)
    assert _stale_stat_rows(helped) == []
    assert not (helped / tree.STAGING_NAME).exists()
    again = render(config, helped, NOW).changes
    assert (again.created, again.updated, again.unchanged) == ((), (), 60)

    changed = _config(tmp_path, 34, version=2)  # every discovery document replaced, 4 added
    render(changed, alone, NOW)
    result = render(changed, helped, NOW).changes
    assert (len(result.created), len(result.updated)) == (8, 30)
    assert _tree(helped) == _tree(alone)
    assert _stale_stat_rows(helped) == []
    assert check(changed, helped, NOW).changes.clean


def test_a_clash_staged_by_the_helper_is_the_same_problem(
    tmp_path: Path, helper_from: object
) -> None:
    """One instance's file where another's folder must be: the render names both instances
    (file, line), whoever staged the bodies, and the tree is not made."""
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    text = (
        "instances:\n"
        "  - {id: y, issuer: 'https://z.example', jwks_uri: 'https://z.example/x/y', "
        "keys: [{path: keys/a.pem}]}\n"
        "  - {id: z, issuer: 'https://z.example/x/y', keys: [{path: keys/a.pem}]}\n"
    )
    config = write_config(tmp_path, text)
    problems = []
    for after in (10**9, 0):
        helper_from(after)  # type: ignore[operator]
        with pytest.raises(ConfigError) as caught:
            render(config, tmp_path / f"out{after}", NOW)
        problems.append([(p.instance, p.line, str(p)) for p in caught.value.problems])
        assert not (tmp_path / f"out{after}").exists()
    assert problems[0] == problems[1] and problems[0]


def _document(path: str) -> Document:
    return Document(path, b'{"keys": []}\n', "application/jwk-set+json", "", "i", KIND_JWKS)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_write_failure_in_the_helper_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    """The disk full under the helper (a staged path that is /dev/full): the render's error
    names the file and the reason, as when it writes itself."""
    out = tmp_path / "out"
    out.mkdir()
    stage = tree.Stage(out, write=True, writer_after=1)
    root = Path(stage.root)
    assert stage.document(_document("first.example/.well-known/jwks.json"))[1] is not None
    (root / "h.example" / ".well-known").mkdir(parents=True)
    (root / "h.example" / ".well-known" / "jwks.json").symlink_to("/dev/full")
    assert stage.document(_document("h.example/.well-known/jwks.json")) == (1, None)
    with pytest.raises(TreeError, match=r"staging h.example/.well-known/jwks.json .*space"):
        stage.settle()
    stage.discard()
    assert not root.exists()


def _killed_at(writer: staging.Writer, signal_number: int) -> None:
    os.kill(writer._process.pid, signal_number)


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_helper_that_dies_or_hangs_leaves_the_render_writing_itself(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The helper killed midway (out of memory, say) or stopped (SIGSTOP: it answers nothing
    for STALL seconds): it is killed and waited for, the bodies it had not confirmed are
    written by the render, and the tree and the cache are as if it had never been there."""
    config = _config(tmp_path, 40)
    render(config, tmp_path / "alone", NOW)
    helper_from(0)  # type: ignore[operator]
    monkeypatch.setattr(staging, "STALL", 1.0)
    monkeypatch.setattr(staging, "BATCH", 4)
    started = _started(monkeypatch)
    real_put, count = staging.Writer.put, [0]

    def put(self: staging.Writer, key: str, path: str, body: bytes) -> None:
        count[0] += 1
        if count[0] == 13:
            _killed_at(self, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        real_put(self, key, path, body)

    monkeypatch.setattr(staging.Writer, "put", put)
    out = tmp_path / "out"
    render(config, out, NOW)
    assert len(started) == 1 and started[0]._process.returncode == -signal.SIGKILL
    assert count[0] < 80  # the rest were written without it
    assert _tree(out) == _tree(tmp_path / "alone")
    assert _stale_stat_rows(out) == []
    assert check(config, out, NOW).changes.clean


def test_an_answer_that_makes_no_sense_is_a_helper_gone(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results that are not one per body (a helper of another version): not believed."""
    config = _config(tmp_path, 12)
    render(config, tmp_path / "alone", NOW)
    helper_from(0)  # type: ignore[operator]
    real = staging.Writer._receive

    def receive(self: staging.Writer, deadline: float) -> object:
        found = real(self, deadline)
        return found[:-1] if isinstance(found, list) else found

    monkeypatch.setattr(staging.Writer, "_receive", receive)
    render(config, tmp_path / "out", NOW)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "alone")
    assert _stale_stat_rows(tmp_path / "out") == []


@pytest.mark.parametrize("interpreter", ["exits", "hangs", "missing"])
def test_a_helper_that_cannot_start_leaves_the_render_writing_itself(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch, interpreter: str
) -> None:
    """An interpreter that exits at once or hangs while it starts (a launcher that runs
    something else), or none at all: the render stages every body itself and succeeds."""
    config = _config(tmp_path, 10)
    render(config, tmp_path / "alone", NOW)
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexit 3\n" if interpreter == "exits" else "#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    executable = script if interpreter != "missing" else tmp_path / "none"
    monkeypatch.setattr(sys, "executable", str(executable))
    monkeypatch.setattr(staging, "STALL", 1.0)
    helper_from(0)  # type: ignore[operator]
    render(config, tmp_path / "out", NOW)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "alone")
    assert _stale_stat_rows(tmp_path / "out") == []


def test_the_helper_writes_through_its_folder_not_its_path(tmp_path: Path) -> None:
    """Once its staging folder is gone — removed by a later render and made again — the
    helper cannot write into the new one, whatever it was doing: it writes through a
    descriptor of the folder it was given, never through the path."""
    root = tmp_path / "staging"
    root.mkdir()
    writer = staging.Writer(str(root), _identity(root))
    try:
        writer.put("a", "h.example/.well-known/jwks.json", b"first")
        ((_, seen),) = writer.wait()
        assert isinstance(seen, tuple)
        assert (root / "h.example/.well-known/jwks.json").read_bytes() == b"first"
        (root / "h.example/.well-known/jwks.json").unlink()
        (root / "h.example/.well-known").rmdir()
        (root / "h.example").rmdir()
        root.rmdir()
        root.mkdir()  # the next render's staging folder, at the same path
        writer.put("b", "h.example/.well-known/jwks.json", b"stale")
        writer.put("c", "other.example/x", b"stale")
        results = writer.wait()
    finally:
        writer.close()
    assert [r for _, r in results] == ["No such file or directory"] * 2
    assert list(root.iterdir()) == []


def test_the_helper_stops_when_its_render_is_gone(tmp_path: Path) -> None:
    """A helper whose render died writes nothing more, even with bodies in hand: it checks
    before every file that its render is still its parent."""
    root = tmp_path / "staging"
    root.mkdir()
    helper = subprocess.Popen(
        [sys.executable, "-I", "-S", staging.__file__, str(root), "1"],  # not its parent
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    out, _ = helper.communicate(b"".join(staging._frame([("x/y.json", b"{}")])), timeout=30)
    assert helper.returncode == 0
    size = staging._HEADER.unpack_from(out)[0]
    assert len(out) == staging._HEADER.size + size  # one message: ready; nothing answered
    assert marshal.loads(out[staging._HEADER.size :]) == (staging.READY, *_identity(root))
    assert list(root.iterdir()) == []


def test_the_helper_has_its_own_session_and_ends_with_its_pipe(tmp_path: Path) -> None:
    """Its own session: a terminal's Ctrl-C or hang-up reaches the render, which then stops
    it; closed, it exits by itself (status 0) once its pipe ends."""
    root = tmp_path / "staging"
    root.mkdir()
    writer = staging.Writer(str(root), _identity(root))
    helper = writer._process.pid
    try:
        assert os.getsid(helper) == helper != os.getsid(0)
    finally:
        writer.close()
    assert writer._process.returncode == 0


# kill -9 of the render while its helper is stopped in the middle of a batch; the next render
# runs, and the old helper goes on only then: it must not touch the new tree.
_KILLED = """
import os, signal, sys
from wellknown_build import staging
staging.WRITER_AFTER = 0
real_put, count = staging.Writer.put, [0]
def put(self, key, path, body):
    count[0] += 1
    if count[0] == int(sys.argv[1]):
        print(self._process.pid, file=sys.stderr, flush=True)
        os.kill(self._process.pid, signal.SIGSTOP)
        os.kill(os.getpid(), signal.SIGKILL)
    real_put(self, key, path, body)
staging.Writer.put = put
from wellknown_build.cli import main
main(sys.argv[2:], prog_name="wellknown-build")
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/status") as handle:
            return any(line.split()[:2] == ["State:", "Z"] for line in handle)  # a zombie
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kill_at", [70, 190])
@pytest.mark.parametrize("resume", ["before", "during", "after"])
def test_kill_9_while_the_helper_is_stopped(tmp_path: Path, kill_at: int, resume: str) -> None:
    """The helper goes on before the next render (of a newer configuration), while it
    stages, or after it is done: the tree is the one a clean render makes, `render --check`
    agrees, and the helper exits without writing anything more."""
    config = _config(tmp_path, 200)
    out = tmp_path / "out"
    render(config, out, NOW)
    changed = _config(tmp_path, 200, version=2)
    command = ["-q", "render", str(changed), "--out", str(out)]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED, str(kill_at), *command],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert killed.returncode == -signal.SIGKILL
    helper = int(killed.stderr.split()[0])
    assert not _gone(helper)
    changed = _config(tmp_path, 200, version=3)  # (a body the old helper holds is stale)
    if resume == "before":
        os.kill(helper, signal.SIGCONT)
    nxt = subprocess.Popen(
        [sys.executable, "-m", "wellknown_build", *command], cwd=ROOT, stderr=subprocess.PIPE
    )
    if resume == "during":
        time.sleep(0.3)
        os.kill(helper, signal.SIGCONT)
    assert nxt.wait(120) == 0, nxt.stderr.read() if nxt.stderr else ""
    if resume == "after":
        os.kill(helper, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(helper)
    render(changed, tmp_path / "clean", NOW)
    assert _tree(out) == _tree(tmp_path / "clean")
    assert check(changed, out, NOW).changes.clean
    assert not (out / tree.STAGING_NAME).exists()


_INTERRUPTED = """
import os, signal, sys
from wellknown_build import staging
staging.WRITER_AFTER = 0
real_put, count = staging.Writer.put, [0]
def put(self, key, path, body):
    count[0] += 1
    if count[0] == 50:
        print(self._process.pid, file=sys.stderr, flush=True)
        os.killpg(os.getpgrp(), signal.SIGINT)  # Ctrl-C in a terminal: the whole group
    real_put(self, key, path, body)
staging.Writer.put = put
from wellknown_build.cli import main
main(sys.argv[1:], prog_name="wellknown-build")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_reaches_the_render_only(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the foreground process group): the render stops as it always did,
    the helper (in its own session) prints nothing, is gone, and nothing changed."""
    config = _config(tmp_path, 200)
    out = tmp_path / "out"
    render(config, out, NOW)
    before = _tree(out)
    changed = _config(tmp_path, 200, version=2)
    run = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED, "-q", "render", str(changed), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    helper = int(run.stderr.split()[0])
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert _gone(helper)
    assert _tree(out) == before
    assert not (out / tree.STAGING_NAME).exists()


_LIBRARY_CALLER = """
print("top level ran", flush=True)
from pathlib import Path
import sys
from wellknown_build import staging
from wellknown_build.commands.render import render
staging.WRITER_AFTER = 0
render(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_program_calling_render_runs_once(tmp_path: Path) -> None:
    """A program that calls render() with no `__main__` guard: the helper is this module's
    own file, so the program's top-level code is not run again."""
    config = _config(tmp_path, 20)
    script = tmp_path / "program.py"
    script.write_text(_LIBRARY_CALLER)
    run = subprocess.run(
        [sys.executable, str(script), str(config), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("top level ran") == 1
    assert len(_tree(tmp_path / "out")) == 41  # 40 documents and the manifest


@pytest.mark.parametrize("after", [0, 10**9])
def test_a_staged_path_too_long_is_refused_with_or_without_the_helper(
    tmp_path: Path, helper_from: object, after: int
) -> None:
    """A document whose tree path fits the system's limit but whose staged path does not:
    the helper (which writes by shorter relative paths) would stage it, and the commit could
    then never move it. Refused alike either way, before anything changes."""
    write(tmp_path / "keys" / "a.pem", public_pem(KEY_MAKERS["p256"]()))
    out = tmp_path / "out"
    limit = os.pathconf(tmp_path, "PC_PATH_MAX")
    tail = "/.well-known/openid-configuration"
    budget = limit - 1 - len(f"{out}/h.example") - len(tail)  # the tree path just fits
    segments, left = [], budget - 1
    while left > 0:
        segments.append("s" * min(200, left))
        left -= len(segments[-1]) + 1
    issuer = "https://h.example/" + "/".join(segments)
    assert len(f"{out}/h.example/{issuer[18:]}{tail}") < limit
    config = write_config(
        tmp_path,
        f"instances:\n  - {{id: a, issuer: '{issuer}', keys: [{{path: keys/a.pem}}]}}\n"
        "  - {id: b, issuer: 'https://h.example', keys: [{path: keys/a.pem}]}\n",
    )
    helper_from(after)  # type: ignore[operator]
    with pytest.raises(TreeError, match=r"staging h.example/s+.* failed \(File name too long\)"):
        render(config, out, NOW)
    assert not (out / "h.example").exists()
    assert not (out / tree.STAGING_NAME).exists()


@pytest.mark.parametrize("after", [0, 10**9])
@pytest.mark.parametrize("swap", ["folder", "link"])
def test_a_staging_folder_replaced_during_the_render_is_refused(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch, after: int, swap: str
) -> None:
    """Someone replaces the staging folder while the render stages (with a folder holding a
    planted file, or a link to one): nothing of it is moved into the tree."""
    config = _config(tmp_path, 30)
    out = tmp_path / "out"
    render(config, out, NOW)
    before = _tree(out)
    planted = tmp_path / "planted"
    write(planted / "evil.example" / ".well-known" / "jwks.json", "planted")
    helper_from(after)  # type: ignore[operator]
    real, count = tree.Stage.document, [0]

    def document(self: tree.Stage, found: Document) -> tuple[int, object]:
        count[0] += 1
        if count[0] == 20:
            os.rename(self.root, self.root + ".moved")
            if swap == "link":
                os.symlink(planted, self.root)
            else:
                os.rename(planted, self.root)
        return real(self, found)

    monkeypatch.setattr(tree.Stage, "document", document)
    with pytest.raises(TreeError, match=r"staging.*nothing was changed"):  # (or "replaced")
        render(_config(tmp_path, 30, version=2), out, NOW)
    moved = tree.STAGING_NAME + ".moved"
    assert {k: v for k, v in _tree(out).items() if not k.startswith(moved)} == before


def test_a_program_with_many_files_open_still_gets_a_helper(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Descriptors past 1,024 (a server calling render() with many connections open): the
    helper's pipes are watched with selectors, which select.select would refuse."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot open 1,100 files here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        config = _config(tmp_path, 10)
        render(config, tmp_path / "alone", NOW)
        helper_from(0)  # type: ignore[operator]
        started = _started(monkeypatch)
        render(config, tmp_path / "out", NOW)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(started) == 1 and started[0]._process.returncode == 0
    assert started[0]._in > 1024
    assert _tree(tmp_path / "out") == _tree(tmp_path / "alone")


def test_large_bodies_go_in_batches_of_bounded_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies larger than a pipe holds arrive whole; a batch is sent once its bodies reach
    BATCH_BYTES, so memory does not grow with BATCH times the body size."""
    monkeypatch.setattr(staging, "BATCH_BYTES", 500_000)
    root = tmp_path / "staging"
    root.mkdir()
    writer = staging.Writer(str(root), _identity(root))
    bodies = [os.urandom(300_000) for _ in range(3)]
    try:
        writer.put("a", "a.example/x", bodies[0])
        assert len(writer._sent) == 0
        writer.put("b", "b.example/x", bodies[1])
        assert len(writer._sent) == 1  # 600,000 bytes: sent
        writer.put("c", "c.example/x", bodies[2])
        results = writer.wait()
    finally:
        writer.close()
    assert [(key, seen[0]) for key, seen in results] == [(k, 300_000) for k in "abc"]
    for name, body in zip("abc", bodies, strict=True):
        assert (root / f"{name}.example" / "x").read_bytes() == body


def test_no_helper_where_a_closed_pipe_would_kill_the_render() -> None:
    """A program that restored SIGPIPE's default (Python ignores it) would die, silently, of
    a write to a helper that died: it gets none."""
    assert staging.available()
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        assert not staging.available()
    finally:
        signal.signal(signal.SIGPIPE, previous)


def test_ctrl_c_while_the_helper_starts_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted while waiting for the helper's first word: the helper is killed and
    waited for before the interrupt goes on (no process left behind)."""
    made: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    def interrupted(self: staging.Writer, deadline: float) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    monkeypatch.setattr(staging.Writer, "_receive", interrupted)
    root = tmp_path / "staging"
    root.mkdir()
    with pytest.raises(KeyboardInterrupt):
        staging.Writer(str(root), _identity(root))
    assert len(made) == 1 and made[0].returncode is not None


@pytest.mark.parametrize("after", [0, 10**9])
def test_a_staging_folder_replaced_just_before_the_move_is_refused(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    """Replaced after the check before the commit (while the journal is written): the
    folder is looked at again just before its files move, the planted file stays out, and
    the next render finishes the job."""
    config = _config(tmp_path, 30)
    out = tmp_path / "out"
    render(config, out, NOW)
    planted = tmp_path / "planted"
    write(planted / "evil.example" / ".well-known" / "jwks.json", "planted")
    helper_from(after)  # type: ignore[operator]
    real = tree._write_journal

    def write_journal(*args: Any) -> None:
        real(*args)
        root = out / tree.STAGING_NAME
        os.rename(root, tmp_path / "moved")
        os.symlink(planted, root)

    monkeypatch.setattr(tree, "_write_journal", write_journal)
    changed = _config(tmp_path, 30, version=2)
    with pytest.raises(TreeError, match=r"staging was replaced .*render again to finish"):
        render(changed, out, NOW)
    assert not (out / "evil.example").exists()
    monkeypatch.undo()
    render(changed, out, NOW)
    render(changed, tmp_path / "clean", NOW)
    assert _tree(out) == _tree(tmp_path / "clean")
    assert check(changed, out, NOW).changes.clean


def test_a_staging_folder_made_again_is_not_taken_for_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed and made again mid-render (ext4 hands a new folder the inode just freed): the
    render holds its folder open, so the new one cannot have its identity."""
    config = _config(tmp_path, 30)
    out = tmp_path / "out"
    render(config, out, NOW)
    before = _tree(out)
    real, count = tree.Stage.document, [0]

    def document(self: tree.Stage, found: Document) -> tuple[int, object]:
        count[0] += 1
        if count[0] == 20:  # the same folders again, new inodes (the root's perhaps not)
            shutil.copytree(self.root, tmp_path / "copy")
            shutil.rmtree(self.root)
            shutil.copytree(tmp_path / "copy", self.root)
            write(Path(self.root) / "evil.example" / ".well-known" / "jwks.json", "planted")
        return real(self, found)

    monkeypatch.setattr(tree.Stage, "document", document)
    with pytest.raises(TreeError, match=r"staging was replaced .*nothing was changed"):
        render(_config(tmp_path, 30, version=2), out, NOW)
    assert _tree(out) == before


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_pipes_of_one_page_do_not_stall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user past its pipe quota gets pipes of a page: the answers of the batches in flight
    no longer fit the pipe back, and the render reads them while it waits to send."""
    monkeypatch.setattr(staging, "STALL", 10.0)
    root = tmp_path / "staging"
    root.mkdir()
    writer = staging.Writer(str(root), _identity(root))
    for fd in (writer._in, writer._out):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)
    start = time.monotonic()
    try:
        for i in range(staging.BATCH * staging.WINDOW * 3):
            writer.put(str(i), f"host{i % 7}.example/tenants/{i:06d}/.well-known/jwks.json", b"{}")
        results = writer.wait()
    finally:
        writer.close()
    assert time.monotonic() - start < 5
    assert writer._process.returncode == 0  # it was never taken for stuck
    assert len(results) == staging.BATCH * staging.WINDOW * 3
    assert all(isinstance(seen, tuple) for _, seen in results)


def test_a_body_of_a_batch_or_more_is_written_by_the_render(tmp_path: Path) -> None:
    """Through the helper it would be copied three times over: the render writes it, and
    has its stat data at once."""
    out = tmp_path / "out"
    out.mkdir()
    stage = tree.Stage(out, write=True, writer_after=0)
    try:
        big = Document(
            "h.example/.well-known/jwks.json",
            b" " * staging.BATCH_BYTES,
            "application/jwk-set+json",
            "",
            "i",
            KIND_JWKS,
        )
        assert stage.document(_document("a.example/.well-known/jwks.json")) == (1, None)
        flag, seen = stage.document(big)
        assert flag == 1 and seen is not None and seen[0] == staging.BATCH_BYTES
        assert stage._writer is not None  # the helper is still there for the rest
        assert list(stage.settle()) == ["a.example/.well-known/jwks.json"]
    finally:
        stage.discard()
