"""Staged bodies written by a helper process (staging.py): the same tree, the same stat data
in the cache, the same errors as when the render writes them itself; and a helper never
writes after its render is gone."""

from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wellknown_build import staging, tree
from wellknown_build.cache import CACHE_NAME
from wellknown_build.commands.render import check, render
from wellknown_build.documents import KIND_JWKS, Document
from wellknown_build.errors import ConfigError, TreeError
from wellknown_build.timing import parse_instant

from .helpers import KEY_MAKERS, public_pem, write, write_config
from .test_render_cache import _stale_stat_rows

NOW = parse_instant("2026-12-01T00:00:00Z")


def _config(folder: Path, count: int, version: int = 1) -> Path:
    """`count` instances over a few hosts, some at the host's root, some under a path."""
    for name in "ab":
        if not (folder / "keys" / f"{name}.pem").exists():
            write(folder / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
    lines = ["defaults:", f"  cache_control: 'public, max-age={300 * version}'", "instances:"]
    for i in range(count):
        issuer = f"https://h{i % 4}.example/t/{i}" if i >= 4 else f"https://h{i}.example"
        lines.append(
            f"  - {{id: i{i}, issuer: '{issuer}', keys: [{{path: keys/{'ab'[i % 2]}.pem}}], discovery: {{v: {version}}}}}"
        )
    return write_config(folder, "\n".join(lines) + "\n")


def _tree(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in (tree.LOCK_NAME, CACHE_NAME)
    }


@pytest.fixture
def helper_from(monkeypatch: pytest.MonkeyPatch) -> object:
    """Set how many bodies the render stages itself before the helper takes over."""

    def set_to(count: int) -> None:
        monkeypatch.setattr(staging, "WRITER_AFTER", count)

    return set_to


@pytest.mark.parametrize("after", [0, 7])
def test_the_helper_stages_the_same_tree_with_true_stat_data(
    tmp_path: Path, helper_from: object, after: int
) -> None:
    """From the first body (0), or after some written here (7): the tree is byte for byte the
    one the render writes alone, the cache holds each file's stat data (so the next render
    writes and reads nothing), and a changed re-render through the helper is right too."""
    config = _config(tmp_path, 30)
    alone, helped = tmp_path / "alone", tmp_path / "helped"
    render(config, alone, NOW)
    helper_from(after)  # type: ignore[operator]
    changes = render(config, helped, NOW).changes
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
    stage = tree.Stage(out, write=True, writer_after=0)
    root = Path(stage.root)
    (root / "h.example" / ".well-known").mkdir(parents=True)
    (root / "h.example" / ".well-known" / "jwks.json").symlink_to("/dev/full")
    assert stage.document(_document("h.example/.well-known/jwks.json")) == (1, None)
    with pytest.raises(TreeError, match=r"staging h.example/.well-known/jwks.json .*space"):
        stage.settle()
    stage.discard()
    assert not root.exists()


def test_a_helper_that_dies_is_an_error_and_changes_nothing(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper killed midway (out of memory, say): the render fails with a clear error
    before anything visible changed."""
    config = _config(tmp_path, 30)
    out = tmp_path / "out"
    render(config, out, NOW)
    before = _tree(out)
    helper_from(0)  # type: ignore[operator]
    real_put = staging.Writer.put

    def put(self: staging.Writer, key: str, path: str, body: bytes) -> None:
        if key.startswith("h2.example/t/"):
            self._process.kill()
            self._process.join()
        real_put(self, key, path, body)

    monkeypatch.setattr(staging.Writer, "put", put)
    with pytest.raises(TreeError, match=r"staging .* failed .*nothing was changed"):
        render(_config(tmp_path, 30, version=2), out, NOW)
    assert _tree(out) == before
    assert not (out / tree.STAGING_NAME).exists()


def test_no_helper_process_means_the_render_writes_itself(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper that cannot be started (a process limit): the render stages every body
    itself and succeeds."""
    config = _config(tmp_path, 10)
    render(config, tmp_path / "alone", NOW)
    helper_from(0)  # type: ignore[operator]

    def refuse(self: staging.Writer, top: str) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(staging.Writer, "__init__", refuse)
    render(config, tmp_path / "out", NOW)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "alone")
    assert _stale_stat_rows(tmp_path / "out") == []


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script as the interpreter")
@pytest.mark.parametrize("helper", ["exit 3", "sleep 30"], ids=["dies", "hangs"])
def test_a_helper_that_does_not_start_means_the_render_writes_itself(
    tmp_path: Path, helper_from: object, monkeypatch: pytest.MonkeyPatch, helper: str
) -> None:
    """An interpreter that stops or hangs before the helper's first word (a launcher that
    cannot import the package, say) is no helper: the render writes every body itself and
    succeeds, and the one started is gone."""
    config = _config(tmp_path, 10)
    render(config, tmp_path / "alone", NOW)
    helper_from(0)  # type: ignore[operator]
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\n{helper}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(staging, "READY_WITHIN", 1.0)
    started: list[staging.Writer] = []
    real = staging.Writer.__init__

    def spy(self: staging.Writer, top: str) -> None:
        started.append(self)
        real(self, top)

    monkeypatch.setattr(staging.Writer, "__init__", spy)
    old = multiprocessing.spawn.get_executable()
    multiprocessing.spawn.set_executable(str(fake))
    try:
        render(config, tmp_path / "out", NOW)
    finally:
        multiprocessing.spawn.set_executable(old)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "alone")
    assert _stale_stat_rows(tmp_path / "out") == []
    assert len(started) == 1 and not started[0]._process.is_alive()


def test_clash_and_failure_results() -> None:
    """What the helper reports per body, from what the system says."""
    assert staging.outcome(__file__ + "/x/y.json", b"{}", set(), "/") == staging.CLASH


# kill -9 of the render while its helper writes: the helper stops at once (it checks that
# its render is alive before every file), and the next render makes the right tree.
_KILLED = """
import os, signal, sys
from wellknown_build import staging
staging.WRITER_AFTER = 0
real_put, count = staging.Writer.put, [0]
def put(self, key, path, body):
    if count[0] == 0:
        print(self._process.pid, file=sys.stderr, flush=True)
    count[0] += 1
    if count[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real_put(self, key, path, body)
staging.Writer.put = put
from wellknown_build.cli import main
main(sys.argv[2:], prog_name="wellknown-build")
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return any(line.split()[:2] == ["State:", "Z"] for line in handle)  # a zombie
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kill_at", [70, 130, 190])
def test_kill_9_while_the_helper_writes(tmp_path: Path, kill_at: int) -> None:
    config = _config(tmp_path, 200)
    out = tmp_path / "out"
    render(config, out, NOW)
    changed = _config(tmp_path, 200, version=2)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED,
            str(kill_at),
            "-q",
            "render",
            str(changed),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    helper = int(next(line for line in killed.stderr.splitlines() if line.isdigit()))
    deadline = time.monotonic() + 10
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(helper)
    render(changed, out, NOW)
    render(changed, tmp_path / "clean", NOW)
    assert _tree(out) == _tree(tmp_path / "clean")
    assert check(changed, out, NOW).changes.clean
