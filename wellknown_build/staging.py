"""Writing staged bodies: in the render's process, or — for a large render — in a helper
process beside it, as git's parallel checkout writes files in workers and hands their stat
data back for the index.

A staged body is a few system calls (a folder or two, open, write, fstat, close) that hold
no lock Python needs, but a thread cannot overlap them with the render: it needs the GIL back
after every call and waits for the render to give it up. A second process has its own, so
the render builds the next documents while the helper writes the last ones: a fifth off a
large full render on tmpfs, about a tenth on disk (README, design notes).

The helper writes only below the staging folder, and only while the render that started it
is alive: it checks before every file, so a render killed with -9 cannot have a file written
after it died (the next render, which removes the staging folder first, starts well after
one file's system calls). It is started with `spawn` everywhere (no fork: the same on Linux,
macOS and Windows) and only when a render has staged WRITER_AFTER bodies already: starting
an interpreter costs more than a small render writes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from multiprocessing.connection import Connection

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode (cache.Stat)
CLASH = "clash"  # another body of this run stands where this one (or its folder) goes
# Per body handed over: a stat (written), CLASH, or the reason it failed.
Result = Stat | str
WRITER_AFTER = 2_000  # bodies staged in the render's own process before a helper starts
BATCH = 64  # bodies sent at once
READY = "ready"  # the helper's first word
READY_WITHIN = 60.0  # seconds a helper may take to start (a loaded machine, a virus scanner)
_REMEMBERED_FOLDERS = 4096  # folders made, per process, at most (memory stays flat)


def write(path: str, body: bytes, made: set[str], top: str) -> Stat:
    """A new staged file with `body`, its folders made from the nearest one known (in
    `made`) down, without looking at each one above first as os.makedirs does; and its stat
    data, taken while it is open. `top`: the folder that exists already. OSError as the
    system reports it (FileExistsError, NotADirectoryError, IsADirectoryError: a clash)."""
    if len(made) > _REMEMBERED_FOLDERS:
        made.clear()
    folder = os.path.dirname(path)
    chain: list[str] = []
    while folder not in made and folder != top:
        chain.append(folder)
        folder = os.path.dirname(folder)
    for new in reversed(chain):
        try:
            os.mkdir(new)
        except FileExistsError:
            if not os.path.isdir(new):
                raise
        made.add(new)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def outcome(path: str, body: bytes, made: set[str], top: str) -> Result:
    """write(), with a failure as its Result."""
    try:
        return write(path, body, made, top)
    except (IsADirectoryError, NotADirectoryError, FileExistsError):
        return CLASH
    except OSError as e:
        return e.strerror or str(e)


def _serve(connection: Connection, top: str) -> None:  # pragma: no cover - the helper
    """The helper: batches of (key, path, body) in, their results out, until told to stop,
    the render's end of the pipe closes or the render is gone."""
    parent = multiprocessing.parent_process()
    made: set[str] = set()
    try:
        connection.send(READY)
    except OSError:
        return
    while True:
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        results = []
        for key, path, body in batch:
            if parent is not None and not parent.is_alive():
                return
            results.append((key, outcome(path, body, made, top)))
        try:
            connection.send(results)
        except OSError:
            return


class HelperGone(Exception):
    """The helper process stopped before it answered."""


class Writer:
    """The render's side of a helper process: bodies are handed over in batches (the pipe
    holds a batch or two, so the render runs at most that far ahead), results collected
    as they come and returned by `wait()`."""

    def __init__(self, top: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, top), name="wellknown-build staging", daemon=True
        )
        try:
            self._process.start()
        finally:
            child.close()
        self._started()
        self._batch: list[tuple[str, str, bytes]] = []
        self._sent = 0  # batches not answered yet
        self._done: list[tuple[str, Result]] = []

    def _started(self) -> None:
        """Wait for the helper's first word. One that stops or hangs while it starts (an
        interpreter that cannot import this package, a launcher that runs something else)
        is no helper, an OSError as when it cannot be started: the render writes itself."""
        try:
            if self._connection.poll(READY_WITHIN) and self._connection.recv() == READY:
                return
        except (EOFError, OSError):
            pass
        self._process.kill()
        self._process.join()
        self._connection.close()
        raise OSError(f"it did not start (exit code {self._process.exitcode})")

    def put(self, key: str, path: str, body: bytes) -> None:
        self._batch.append((key, path, body))
        if len(self._batch) >= BATCH:
            self._send()

    def wait(self) -> list[tuple[str, Result]]:
        """Every body handed over so far, written: (key, result) in the order given."""
        if self._batch:
            self._send()
        self._collect(block=True)
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Stop the helper (it finishes the batch in hand first)."""
        with contextlib.suppress(OSError):
            self._connection.send(None)
        self._process.join(10)
        if self._process.is_alive():  # pragma: no cover - a helper stuck in a system call
            self._process.terminate()
            self._process.join()
        self._connection.close()

    def _send(self) -> None:
        self._collect(block=False)  # (answers waiting would fill the pipe the other way)
        try:
            self._connection.send(self._batch)
        except OSError as e:
            raise HelperGone(str(e)) from None
        self._sent += 1
        self._batch = []

    def _collect(self, block: bool) -> None:
        try:
            while self._sent and (block or self._connection.poll()):
                self._done += self._connection.recv()
                self._sent -= 1
        except (EOFError, OSError) as e:
            raise HelperGone(str(e) or "it stopped") from None
