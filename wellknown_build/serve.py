"""A local preview of the tree as the CDN would serve it, on loopback only.

Requests are routed by Host header (`curl -H 'Host: auth.example.com' ...`) or by a leading
`/<host>/` path segment (plain `curl http://127.0.0.1:8000/auth.example.com/...`). Only files
in the manifest are served, with the manifest's headers, read from disk on every request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from . import manifest
from .errors import TreeError

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, out: Path, port: int = 0) -> None:
        self.out = out
        self._stamp: int | None = None
        self.files: dict[str, manifest.Entry] = {}
        self._reload()
        try:
            super().__init__((LOOPBACK, port), _Handler)
        except OSError as e:
            raise TreeError(f"cannot listen on {LOOPBACK}:{port}: {e.strerror}") from None

    def _reload(self) -> None:
        """Pick up a new render without a restart: the manifest is re-read when it changes."""
        path = self.out / manifest.MANIFEST_NAME
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise TreeError(
                f"{self.out}: no manifest; run `wellknown-build render` first"
            ) from None
        if stamp != self._stamp:
            found = manifest.read(self.out)
            self.files = {entry.path: entry for entry in found.entries} if found else {}
            self._stamp = stamp

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def lookup(self, host: str, path: str) -> manifest.Entry | None:
        try:
            self._reload()
        except TreeError:
            return None
        return self.files.get(host + path) or self.files.get(path.lstrip("/"))


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "wellknown-build-preview"

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
        host = (self.headers.get("Host") or "").lower()
        entry = self.server.lookup(host, urlsplit(self.path).path)
        body: bytes | None = None
        if entry is not None:
            try:
                body = (self.server.out / entry.path).read_bytes()
            except OSError:
                body = None
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
def running(out: Path, port: int = 0) -> Iterator[PreviewServer]:
    """A preview server on a background thread, for tests and `verify`."""
    server = PreviewServer(out, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
