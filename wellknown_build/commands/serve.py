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
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import manifest, tree
from ..deadline import Deadline, DeadlineReader
from ..errors import TreeError

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 10.0  # seconds a client gets to send its request; then the thread is freed


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, out: Path, port: int = 0, timeout: float = REQUEST_TIMEOUT) -> None:
        self.out = out
        self.reader = tree.Reader(out)
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
                self.files = {e.path: e for e in tree.read_manifest(self.out).entries}
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
        try:
            return self.reader.read(entry.path)
        except TreeError as e:
            log.warning("not serving %r: %s", entry.path, e)
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
