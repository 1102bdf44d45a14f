"""A wall-clock limit over many socket reads, for verify's requests and serve's clients."""

from __future__ import annotations

import io
import socket
import time
from typing import Any


class Deadline:
    """A wall-clock limit over many socket reads: a per-read timeout is not one, since a peer
    that trickles a byte at a time never lets a single read time out."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once there are none."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {self.seconds:g}s")
        return min(left, 1e6)  # settimeout() refuses what time_t cannot hold


class DeadlineReader(io.RawIOBase):
    """A socket's reads, each allowed only what is left of a shared Deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open until closed
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.left())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()
