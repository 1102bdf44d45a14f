"""Reading input files: regular files only, with a size cap; and making scratch files anew.

A key or config path may point at /dev/zero, /dev/urandom or a FIFO; reading those whole hangs
or eats memory. Every input file is opened without blocking, checked to be a regular file, and
read up to a limit that no real input comes near.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import BinaryIO

MiB = 1024 * 1024
CONFIG_LIMIT = 512 * MiB  # one YAML/JSON file; 1,000,000 instances are about 150 MB
KEY_LIMIT = 1 * MiB  # a PEM file: a long certificate chain is a few tens of KB
DOCUMENT_LIMIT = 16 * MiB  # one rendered document or a template

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # absent on Windows, where FIFOs are not files
_BINARY = getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows: checked with lstat there


class InputFileError(OSError):
    """Not a readable regular file, or larger than its limit; `reason` says which."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def read_regular(path: str | os.PathLike[str], limit: int, *, follow: bool = True) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; with `follow=False`, a
    symbolic link at `path` is refused rather than followed.

    Raises FileNotFoundError if it does not exist and InputFileError for anything else that
    goes wrong (a folder, a device, a FIFO, too large, unreadable), with a reason to show."""
    name = os.fspath(path)
    fd = open_regular(name, limit, follow=follow)
    try:
        chunks: list[bytes] = []
        total = 0
        while True:  # the file may grow while it is read: the limit holds anyway
            chunk = os.read(fd, min(limit + 1 - total, 4 * MiB) or 1)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise InputFileError(name, f"is larger than {_size(limit)}")
        return b"".join(chunks)
    except InputFileError:
        raise
    except OSError as e:
        raise InputFileError(name, f"cannot be read ({e.strerror})") from None
    finally:
        os.close(fd)


def create_new(path: str | os.PathLike[str]) -> BinaryIO:
    """A scratch file made anew for writing: whatever is at `path` (left by a kill, or
    planted: a link, a FIFO) is removed first, and O_EXCL makes the file this call's own, so a
    link put there in between is never written through."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o644)
    return os.fdopen(fd, "wb")


def open_regular(path: str | os.PathLike[str], limit: int, *, follow: bool = True) -> int:
    """A descriptor open for reading on a regular file of at most `limit` bytes, as
    read_regular() checks it (never blocking on a FIFO); the caller closes it. Raises as
    read_regular() does."""
    name = os.fspath(path)
    flags = os.O_RDONLY | _NONBLOCK | _BINARY
    if not follow:
        if not _NOFOLLOW and os.path.islink(name):
            raise InputFileError(name, "is a symbolic link")
        flags |= _NOFOLLOW
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise InputFileError(name, "is a folder, not a file") from None
    except OSError as e:
        if not follow and e.errno == errno.ELOOP:
            raise InputFileError(name, "is a symbolic link") from None
        raise InputFileError(name, f"cannot be read ({e.strerror})") from None
    except ValueError:  # a NUL byte in the name
        raise InputFileError(name, "cannot be read (its path is not valid)") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError(name, "is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(name, "is not a regular file (a device, FIFO or socket)")
        if info.st_size > limit:
            raise InputFileError(name, f"is larger than {_size(limit)}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit >= MiB else f"{limit} bytes"
