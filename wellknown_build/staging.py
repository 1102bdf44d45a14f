"""Writing staged bodies: in the render's process, or — for a large render on POSIX — in a
helper process beside it, as git's parallel checkout writes files in workers and hands their
stat data back for the index.

A staged body is a few system calls (a folder or two, open, write, fstat, close) that hold
no lock Python needs, but a thread cannot overlap them with the render: it needs the GIL back
after every call and waits for the render to give it up. A second process has its own, so the
render builds the next documents while the helper writes the last ones (README, design notes).

The helper must never write where a later render could see it. So:
- it writes only through a descriptor of the staging folder it was given (`openat`,
  `mkdirat`): once a later render has removed that folder, nothing the helper does can reach
  the new one, even a call that was stalled for seconds on a slow disk when its render died;
- before every file it checks that its render is still its parent, and it stops when the
  render's end of the pipe closes;
- it runs in its own session (Ctrl-C in a terminal reaches the render, not the helper) and is
  this very file run as a script by the same interpreter, isolated (`-I -S`: no site, no
  environment, nothing but the standard library), so no user code is imported or re-run;
- it reports the identity (device, inode) of the folder it opened, which must be the one the
  render made; before the commit the render checks that the staging folder is still that one
  (tree.Stage), and it hands over no path longer than it could itself write (the commit
  moves by full paths);
- the render waits for it to exit before moving anything staged into the tree; one that
  stops answering (STALL seconds), dies or says anything unexpected is killed, waited for,
  and the render writes the bodies it had not confirmed itself: the helper costs speed at
  worst, never a wrong file.
Only where `os.open` and `os.mkdir` take a folder descriptor (not Windows), SIGPIPE is
ignored, and past WRITER_AFTER bodies: starting an interpreter costs more than a small
render writes.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import selectors
import signal
import stat
import struct
import subprocess
import sys
import time
from collections import deque
from typing import NoReturn

Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode (cache.Stat)
# A result per body: its stat data (written), CLASH, or the reason it failed.
CLASH = "clash"  # another body of this run stands where this one (or its folder) goes
WRITER_AFTER = 2_000  # bodies staged in the render's own process before a helper starts
BATCH = 64  # bodies handed over at once, at most
BATCH_BYTES = 1 << 20  # ... and bytes of them, past which a batch goes (memory stays flat)
# Batches handed over and not answered yet, at most (2 and 4 were slower on 100,000
# instances). A body of BATCH_BYTES or more is written by the render itself: through the
# helper it would be copied three times over, for no gain.
WINDOW = 8
STALL = 60.0  # seconds a helper may take to start, or to answer, before it counts as stuck
READY = "ready"  # the helper's first word, with the identity of its folder (device, inode)
_REMEMBERED_FOLDERS = 4096  # folders made, per process, at most (memory stays flat)
# Every message: its length, then marshal's bytes (lists, tuples, str, bytes, int: between
# two processes of this same interpreter, over a pipe no one else holds).
_HEADER = struct.Struct("<Q")
_LARGEST = 1 << 30
# How a staging folder is held open, by the helper and by the render (POSIX; None where a
# folder cannot be opened with os.open, as on Windows).
FOLDER_FLAGS = (
    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    if hasattr(os, "O_DIRECTORY") and hasattr(os, "O_NOFOLLOW")
    else None
)


def available() -> bool:
    """Whether a helper can write through a folder descriptor here (POSIX), this file can be
    run by the interpreter running the render (not a frozen application), and a helper that
    dies cannot kill the render: SIGPIPE ignored, as Python sets it (a program that restored
    its default would die of a write to a closed pipe)."""
    return (
        getattr(signal, "SIGPIPE", None) is not None
        and signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
        and FOLDER_FLAGS is not None
        and os.open in os.supports_dir_fd
        and os.mkdir in os.supports_dir_fd
        and os.stat in os.supports_dir_fd
        and not getattr(sys, "frozen", False)
        and bool(sys.executable)
        and os.path.isfile(__file__)
    )


def write(path: str, body: bytes, made: set[str], top: str, folder_fd: int | None = None) -> Stat:
    """A new staged file with `body`, its folders made from the nearest one known (in
    `made`) down, without looking at each one above first as os.makedirs does; and its stat
    data, taken while it is open. `top`: the folder that exists already. With `folder_fd`,
    `path` is relative to that folder, and `top` is "". OSError as the system reports it
    (FileExistsError, NotADirectoryError, IsADirectoryError: a clash)."""
    if len(made) > _REMEMBERED_FOLDERS:
        made.clear()
    folder = os.path.dirname(path)
    chain: list[str] = []
    while folder not in made and folder != top:
        chain.append(folder)
        folder = os.path.dirname(folder)
    for new in reversed(chain):
        try:
            os.mkdir(new, dir_fd=folder_fd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(new, dir_fd=folder_fd, follow_symlinks=False).st_mode):
                raise
        made.add(new)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666, dir_fd=folder_fd)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        info = os.fstat(fd)
    finally:
        os.close(fd)
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def outcome(
    path: str, body: bytes, made: set[str], top: str, folder_fd: int | None = None
) -> Stat | str:
    """write(), with a failure as its result."""
    try:
        return write(path, body, made, top, folder_fd)
    except (IsADirectoryError, NotADirectoryError, FileExistsError):
        return CLASH
    except OSError as e:
        return e.strerror or str(e)


# The helper ------------------------------------------------------------------------------


# What goes over the pipes: a batch of [tree path, body], or a result per body, or READY.
Message = tuple[str, int, int] | list[tuple[str, bytes]] | list[Stat | str]


def _send(fd: int, value: Message) -> None:
    for part in _frame(value):
        data = memoryview(part)
        while data:
            data = data[os.write(fd, data) :]


def _frame(value: Message) -> tuple[bytes, bytes]:
    """A message as its header and its payload (not joined: a batch may be megabytes)."""
    payload = marshal.dumps(value)
    return _HEADER.pack(len(payload)), payload


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def serve(root: str, parent: int) -> None:  # pragma: no cover - run in the helper
    """The helper: batches of [tree path, body] in on stdin, a result per body out on
    stdout, until stdin ends or the render that started it is gone."""
    try:
        folder_fd = os.open(root, FOLDER_FLAGS or 0)  # (never 0: see available())
    except OSError:
        return
    made: set[str] = set()
    with contextlib.suppress(OSError):
        folder = os.fstat(folder_fd)
        _send(1, (READY, folder.st_dev, folder.st_ino))
        while True:
            header = _read_exactly(0, _HEADER.size)
            if header is None:
                return
            data = _read_exactly(0, _HEADER.unpack(header)[0])
            if data is None:
                return
            results = []
            for path, body in marshal.loads(data):  # noqa: S302 - from its render's pipe
                if os.getppid() != parent:  # the render is gone: write nothing more
                    return
                results.append(outcome(path, body, made, "", folder_fd))
            _send(1, results)


# The render's side -----------------------------------------------------------------------


class HelperGone(Exception):
    """The helper stopped, hung or answered nonsense: the results it gave that wait() has
    not returned yet, (key, result); and the bodies it had not confirmed, to be written by
    the render, (key, tree path, body)."""

    def __init__(
        self,
        reason: str,
        done: list[tuple[str, Stat | str]],
        bodies: list[tuple[str, str, bytes]],
    ) -> None:
        super().__init__(reason)
        self.done = done
        self.bodies = bodies


class Writer:
    """A helper process writing staged bodies below `root`, the folder whose identity
    (device, inode) is `folder`: bodies are handed over in batches, at most WINDOW of them
    unanswered, so the render runs at most that far ahead; results come back by `wait()`, in
    the order given. OSError if it cannot start, or opened another folder."""

    def __init__(self, root: str, folder: tuple[int, int]) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - this file, by this interpreter
            [sys.executable, "-I", "-S", os.path.abspath(__file__), root, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._in = self._process.stdin.fileno()
            self._out = self._process.stdout.fileno()
            os.set_blocking(self._in, False)
            # (selectors, not select.select: a program with 1,024 files open has higher fds)
            self._readable = selectors.DefaultSelector()
            self._readable.register(self._out, selectors.EVENT_READ)
            self._both = selectors.DefaultSelector()  # (while sending: see _send)
            self._both.register(self._out, selectors.EVENT_READ)
            self._both.register(self._in, selectors.EVENT_WRITE)
            self._buffer = bytearray()
            self._batch: list[tuple[str, str, bytes]] = []
            self._bytes = 0  # of the bodies in _batch
            self._sent: deque[list[tuple[str, str, bytes]]] = deque()  # not answered yet
            self._done: list[tuple[str, Stat | str]] = []
            if self._receive(time.monotonic() + STALL) != (READY, *folder):
                raise HelperGone("it did not start in its folder", [], [])
        except HelperGone as e:
            self._stop(kill=True)
            raise OSError(f"{e} (exit code {self._process.returncode})") from None
        except BaseException:  # Ctrl-C while it starts, say: it goes too
            self._stop(kill=True)
            raise

    def put(self, key: str, path: str, body: bytes) -> None:
        self._batch.append((key, path, body))
        self._bytes += len(body)
        if len(self._batch) >= BATCH or self._bytes >= BATCH_BYTES:
            self._send()

    def wait(self) -> list[tuple[str, Stat | str]]:
        """Every body handed over so far, written: (key, result) in the order given."""
        if self._batch:
            self._send()
        while self._sent:
            self._collect()
        done, self._done = self._done, []
        return done

    def close(self, kill: bool = False) -> None:
        """Stop the helper (it finishes the batch in hand first, unless killed) and wait
        until it has exited: only then is nothing more written."""
        self._stop(kill)

    def _send(self) -> None:
        while len(self._sent) >= WINDOW:
            self._collect()
        batch, self._batch, self._bytes = self._batch, [], 0
        self._sent.append(batch)
        deadline = time.monotonic() + STALL
        for part in _frame([(path, body) for _, path, body in batch]):
            data = memoryview(part)
            while data:
                events = self._both.select(_left(deadline))
                if not events:
                    self._failed(f"it did not read for {STALL:.0f} s")
                for key, _ in events:
                    if key.fd == self._out:
                        # Its answers, read while waiting: a pipe back too small for them
                        # (a user past its pipe quota gets a page or two) would have the
                        # helper wait for the render while the render waits for it.
                        self._read_some()
                        continue
                    try:
                        data = data[os.write(self._in, data) :]
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        self._failed(f"it stopped ({e.strerror or e})")

    def _collect(self) -> None:
        """The answer to the oldest batch handed over (believed whole or not at all)."""
        results = self._receive(time.monotonic() + STALL)
        batch = self._sent[0]
        if not (
            isinstance(results, list)
            and len(results) == len(batch)
            and all(isinstance(r, str) or _is_stat(r) for r in results)
        ):
            self._failed("it answered something else")
        self._done += [(key, result) for (key, _, _), result in zip(batch, results, strict=True)]
        self._sent.popleft()

    def _receive(self, deadline: float) -> object:
        while True:
            if len(self._buffer) >= _HEADER.size:
                size = _HEADER.unpack_from(self._buffer)[0]
                if size > _LARGEST:
                    self._failed("it answered something else")
                end = _HEADER.size + size
                if len(self._buffer) >= end:
                    data = bytes(self._buffer[_HEADER.size : end])
                    del self._buffer[:end]
                    try:
                        return marshal.loads(data)  # noqa: S302 - from its own helper
                    except (EOFError, ValueError, TypeError):
                        self._failed("it answered something else")
            if not self._readable.select(_left(deadline)):
                self._failed(f"it did not answer for {STALL:.0f} s")
            self._read_some()

    def _read_some(self) -> None:
        try:
            chunk = os.read(self._out, 1 << 16)
        except OSError as e:
            self._failed(f"it stopped ({e.strerror or e})")
        if not chunk:
            self._failed("it stopped")
        self._buffer += chunk

    def _failed(self, reason: str) -> NoReturn:
        """Kill the helper, wait until it is gone, and hand back what it had not confirmed."""
        self._stop(kill=True)
        bodies = [item for batch in self._sent for item in batch] + self._batch
        done, self._done, self._batch = self._done, [], []
        self._sent.clear()
        raise HelperGone(reason, done, bodies)

    def _stop(self, kill: bool) -> None:
        with contextlib.suppress(OSError):
            self._process.stdin.close()  # type: ignore[union-attr]
        if not kill:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(STALL)
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.kill()
            # No timeout: a killed process still in a system call finishes that call
            # first, and nothing may be written in its folder after the render goes on.
            self._process.wait()
        with contextlib.suppress(OSError):
            self._process.stdout.close()  # type: ignore[union-attr]
        for selector in ("_readable", "_both"):
            if hasattr(self, selector):
                getattr(self, selector).close()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _is_stat(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 4 and all(type(n) is int for n in value)


if __name__ == "__main__":  # pragma: no cover - the helper, run as `python -I -S staging.py`
    serve(sys.argv[1], int(sys.argv[2]))
