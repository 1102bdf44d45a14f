"""A local preview of the tree as the CDN would serve it, on loopback only.

Requests are routed by Host header (`curl -H 'Host: auth.example.com' ...`) or by a leading
`/<host>/` path segment (plain `curl http://127.0.0.1:8000/auth.example.com/...`). Only files
in the manifest are served, with the manifest's headers, read from disk on every request.

The manifest is input like any other: it is read size-capped, and a path in it that would
leave the output folder (`..`, absolute, through a symbolic link) is never read or served.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import manifest
from .errors import TreeError
from .files import DOCUMENT_LIMIT, InputFileError, MiB, read_regular

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 10.0  # seconds a client gets to send its request; then the thread is freed
MANIFEST_LIMIT = 1024 * MiB  # an entry is ~300 bytes: over three million documents
_SEGMENT = re.compile(r"[^/\\\x00-\x1f\x7f]+")  # no separators or control characters


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


def read_manifest(out: Path) -> manifest.Manifest:
    """The manifest in `out`, read size-capped and refused whole if any path is unsafe."""
    path = out / manifest.MANIFEST_NAME
    try:
        data = read_regular(path, MANIFEST_LIMIT)
    except FileNotFoundError:
        raise TreeError(f"{out}: no manifest; run `wellknown-build render` first") from None
    except InputFileError as e:
        raise TreeError(f"{path}: the manifest {e.reason}") from None
    try:
        found = manifest.parse(data, str(path))
    except (RecursionError, OverflowError, ValueError, TypeError) as e:  # what parse misses
        raise TreeError(f"{path}: the manifest is damaged ({e}); render again") from None
    root = os.path.realpath(out)
    for entry in found.entries:
        if tree_file(root, entry.path) is None:
            raise TreeError(
                f"{path}: lists {entry.path[:200]!r}, which is not a file inside {out}; "
                "refusing the manifest (render again)"
            )
    return found


def tree_file(root: str, relative: str) -> str | None:
    """The real path of a manifest path inside `root` (a real path), or None if it would
    lead out of it: `..`, absolute, a symbolic link to elsewhere."""
    segments = relative.split("/")
    if len(relative) > 4096 or not all(
        _SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments
    ):
        return None
    real = os.path.realpath(os.path.join(root, *segments))
    return real if real.startswith(os.path.join(root, "")) else None


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, out: Path, port: int = 0, timeout: float = REQUEST_TIMEOUT) -> None:
        self.out = out
        self.request_timeout = timeout
        self._stamp: tuple[int, ...] | None = None
        self._lock = threading.Lock()
        self.files: dict[str, manifest.Entry] = {}
        self._reload(strict=True)
        try:
            super().__init__((LOOPBACK, port), _Handler)
        except OSError as e:
            raise TreeError(f"cannot listen on {LOOPBACK}:{port}: {e.strerror}") from None

    def _reload(self, strict: bool = False) -> None:
        """Pick up a new render without a restart: the manifest is re-read when it changes.

        A manifest that goes missing or bad while serving empties the table (everything is
        404) rather than stopping the server; at start (`strict`) it is an error."""
        path = self.out / manifest.MANIFEST_NAME
        with self._lock:
            try:
                info = path.stat()
                stamp = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
            except OSError:
                stamp = None
            if stamp is not None and stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self.files = {e.path: e for e in read_manifest(self.out).entries}
            except TreeError as e:
                if strict:
                    raise
                if self.files:
                    log.warning("serving nothing: %s", e)
                self.files = {}

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def lookup(self, host: str, path: str) -> manifest.Entry | None:
        self._reload()
        files = self.files
        return files.get(host + path) or files.get(path.lstrip("/"))

    def body(self, entry: manifest.Entry) -> bytes | None:
        """The file's bytes, or None if it is gone, not a regular file, or leads out of out/.

        Checked on every request: the tree may change under a running server."""
        real = tree_file(os.path.realpath(self.out), entry.path)
        if real is None:
            log.warning("not serving %r: it leads out of %s", entry.path, self.out)
            return None
        try:
            return read_regular(real, DOCUMENT_LIMIT)
        except OSError:
            return None

    def handle_error(self, request: object, client_address: Any) -> None:
        """A client that hangs up or stalls is routine: a debug line, never a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("%s: connection ended: %s", client_address, error)
        else:
            log.error("%s: request failed: %r", client_address, error)
            log.debug("request failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "wellknown-build-preview"

    def setup(self) -> None:
        """Every read of the request shares one deadline: a silent or trickling client
        frees its thread after the server's timeout."""
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # for writes
        self.rfile.close()
        deadline = Deadline(self.server.request_timeout)
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, deadline))

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_OPTIONS(self) -> None:  # CORS preflight
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _respond(self, send_body: bool) -> None:
        self.connection.settimeout(self.server.request_timeout)  # reads may have shortened it
        host = (self.headers.get("Host") or "").lower()
        entry = self.server.lookup(host, urlsplit(self.path).path)
        body = self.server.body(entry) if entry is not None else None
        if entry is None or body is None:
            body = json.dumps({"error": "not found"}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
        else:
            self.send_response(200)
            self.send_header("Content-Type", entry.content_type)
            self.send_header("Cache-Control", entry.cache_control)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


@contextmanager
def running(out: Path, port: int = 0, timeout: float = REQUEST_TIMEOUT) -> Iterator[PreviewServer]:
    """A preview server on a background thread, for tests and `verify`."""
    server = PreviewServer(out, port, timeout)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
