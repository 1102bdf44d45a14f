"""Real S3 on loopback for tests: moto's standalone server, and a recording, fault-injecting
HTTP proxy in front of it that sees every request the tool sends."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

# (method, key, headers) -> (HTTP status, S3 error code) to answer instead of forwarding,
# or None to forward the request to moto.
Fault = Callable[[str, str, Message], tuple[int, str] | None]


@dataclass
class Seen:
    method: str
    bucket: str
    key: str
    status: int


@dataclass
class Proxy:
    upstream: tuple[str, int]
    requests: list[Seen] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def puts(self, bucket: str) -> list[str]:
        return [
            r.key
            for r in self.requests
            if r.method == "PUT" and r.bucket == bucket and r.status == 200
        ]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()


def _split(path: str) -> tuple[str, str]:
    parts = unquote(urlsplit(path).path).lstrip("/").split("/", 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def start_proxy(upstream: tuple[str, int]) -> Proxy:
    proxy = Proxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            bucket, key = _split(self.path)
            injected = None
            for fault in list(proxy.faults):
                injected = fault(self.command, key, self.headers)
                if injected:
                    break
            if injected:
                status, code = injected
                payload = (
                    f"<?xml version='1.0'?><Error><Code>{code}</Code>"
                    f"<Message>injected {status}</Message></Error>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            else:
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                status = response.status
                self.send_response(status)
                for name, value in response.getheaders():
                    if name.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()
            with proxy.lock:
                proxy.requests.append(Seen(self.command, bucket, key, status))

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            """A client that gave up (a timed-out attempt) is expected; printing it would
            land in whatever CliRunner is capturing stderr at that moment."""

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return proxy
