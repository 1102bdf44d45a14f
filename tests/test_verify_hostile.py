"""verify against servers and trees that misbehave: every case ends as drift or an error line,
in bounded time and memory, never as a traceback (the `run` fixture re-raises exceptions)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import Result

from wellknown_build.commands.render import render
from wellknown_build.manifest import MANIFEST_NAME

from .helpers import ROOT, Run, running

T = TypeVar("T")
Reply = Callable[[socket.socket, bytes], None]
JWKS = "auth.example.com/tenants/acme/.well-known/jwks.json"
DISCOVERY = "auth.example.com/tenants/acme/.well-known/openid-configuration"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    render(ROOT / "examples" / "instances.yaml", tmp_path / "out")
    return tmp_path / "out"


def within(seconds: float, call: Callable[[], T]) -> T:
    """call() on a thread: a test that would hang fails instead."""
    done: list[T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            done.append(call())
        except BaseException as e:
            failed.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s"
    if failed:
        raise failed[0]
    return done[0]


class RawServer:
    """TCP on 127.0.0.1: each connection's request is read, then `reply` does as it likes."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            request = b""
            try:
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                self.reply(conn, request)
            except OSError:
                pass  # the client went away: what these servers provoke

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def serve_raw() -> Iterator[Callable[[Reply], RawServer]]:
    servers: list[RawServer] = []

    def start(reply: Reply) -> RawServer:
        servers.append(RawServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def head(length: int | None = None, extra: str = "") -> bytes:
    sized = f"Content-Length: {length}\r\n" if length is not None else ""
    return (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Access-Control-Allow-Origin: *\r\n{sized}{extra}Connection: close\r\n\r\n"
    ).encode()


def answering(body: bytes) -> Reply:
    def reply(conn: socket.socket, request: bytes) -> None:
        conn.sendall(head(len(body)) + body)

    return reply


def verify_acme(run: Run, base_url: str, *more: str) -> Result:
    return run("verify", "--out", "out", "--base-url", base_url, "--instance", "acme", *more)


# 1. local files that are not there, or not files


def test_verify_reports_missing_and_odd_local_files(run: Run, out: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    shutil.copytree(out, served)
    (out / JWKS).unlink()
    (out / DISCOVERY).unlink()
    (out / DISCOVERY).mkdir()
    os.unlink(out / "edge.example.net/.well-known/jwks.json")
    os.mkfifo(out / "edge.example.net/.well-known/jwks.json")  # reading it whole would hang
    with running(served) as server:
        result = within(20, lambda: run("verify", "--out", "out", "--base-url", server.base_url))
    assert result.exit_code == 1
    assert f"{JWKS}: the rendered file is missing" in result.output
    assert f"{DISCOVERY}: the rendered file is a folder" in result.output
    assert "edge.example.net/.well-known/jwks.json: the rendered file is not a regular file" in (
        result.output
    )
    assert "1 ok, 2 drifted" in result.output


# 2. served bodies that are not what a key set or a discovery document can be


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b"[1, 2]",
            f"{JWKS}: body differs from the rendered file (not a JSON key set: not a JSON object but an array)",
        ),
        (
            b'{"keys": 5}',
            f'{JWKS}: body differs from the rendered file (not a JSON key set: "keys" is not an array of objects)',
        ),
        (b'{"keys": [5]}', '"keys" is not an array of objects'),
        (
            b"<html>nope</html>",
            f"{JWKS}: body differs from the rendered file (not a JSON key set: not JSON)",
        ),
        (b'{"keys": "\xff\xfe"}', "(not a JSON key set: not UTF-8)"),
        (b"[" * 100_000, f"{DISCOVERY}: served document is not JSON"),
        (b"[1, 2]", f"{DISCOVERY}: served document is not a JSON object but an array"),
        (
            b'"just a string"',
            f"{DISCOVERY}: served document is not a JSON object but 'just a string'",
        ),
        (b"\xff\xfe[]", f"{DISCOVERY}: served document is not UTF-8"),
        (
            b'{"issuer": 5, "jwks_uri": 7}',
            f"{DISCOVERY}: issuer 5 (not a string), expected 'https://auth.example.com/tenants/acme'",
        ),
        (b'{"issuer": {"a": 1}, "jwks_uri": 7}', f"{DISCOVERY}: jwks_uri 7 is not an https URL"),
        (
            b'{"jwks_uri": "https://bad host/\\u0000"}',
            "jwks_uri https://bad host/\\x00 is not reachable (jwks_uri must not contain whitespace)",
        ),
    ],
)
def test_verify_reports_hostile_bodies(
    run: Run, out: Path, serve_raw: Callable[[Reply], RawServer], body: bytes, expected: str
) -> None:
    server = serve_raw(answering(body))
    result = verify_acme(run, server.base_url)
    assert result.exit_code == 1
    assert expected in result.output
    assert "drift  acme" in result.output


# 3. transports that break


def _garbage(conn: socket.socket, request: bytes) -> None:
    conn.sendall(b"garbage, not HTTP\r\n\r\n")


def _closes_mid_body(conn: socket.socket, request: bytes) -> None:
    conn.sendall(head(100) + b'{"keys": [')


def _resets(conn: socket.socket, request: bytes) -> None:
    conn.sendall(head(100) + b'{"keys": [')
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _bad_chunks(conn: socket.socket, request: bytes) -> None:
    conn.sendall(head(extra="Transfer-Encoding: chunked\r\n") + b"zz\r\nhello\r\n0\r\n\r\n")


def _many_headers(conn: socket.socket, request: bytes) -> None:
    conn.sendall(head(2, "".join(f"X-{i}: {i}\r\n" for i in range(200))) + b"{}")


def _redirects_to_itself(conn: socket.socket, request: bytes) -> None:
    path = request.split(b" ")[1].decode()
    conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {path}\r\nContent-Length: 0\r\n\r\n".encode())


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (_garbage, f"{JWKS}: not a valid HTTP response (BadStatusLine"),
        (_closes_mid_body, f"{JWKS}: the body is cut short or malformed (10 bytes read)"),
        (_resets, f"{JWKS}: unreachable: "),
        (_bad_chunks, f"{JWKS}: the body is cut short or malformed (0 bytes read)"),
        (
            _many_headers,
            f"{JWKS}: not a valid HTTP response (HTTPException: got more than 100 headers)",
        ),
        (_redirects_to_itself, f"{JWKS}: redirects to /{JWKS} (HTTP 302)"),
    ],
)
def test_verify_reports_broken_transports(
    run: Run, out: Path, serve_raw: Callable[[Reply], RawServer], reply: Reply, expected: str
) -> None:
    server = serve_raw(reply)
    result = within(20, lambda: verify_acme(run, server.base_url, "--timeout", "5"))
    assert result.exit_code == 1
    assert expected in result.output


# 4. a --base-url or --timeout requests cannot use


@pytest.mark.parametrize(
    "base_url",
    [
        "foo",
        "127.0.0.1:8000",
        "ftp://127.0.0.1/",
        "http://",
        "http://127.0.0.1:8000/?a=1",
        "http://127.0.0.1:8000/#top",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:8000/a b",
        "",
    ],
)
def test_verify_refuses_a_bad_base_url(run: Run, out: Path, base_url: str) -> None:
    result = run("verify", "--out", "out", "--base-url", base_url)
    assert result.exit_code == 2
    assert "Usage:" in result.output and "Invalid value for '--base-url'" in result.output


@pytest.mark.parametrize("timeout", ["nan", "inf"])
def test_verify_refuses_a_timeout_that_is_not_finite(run: Run, out: Path, timeout: str) -> None:
    result = run("verify", "--out", "out", "--timeout", timeout)
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.output


# 5. bounded in time and memory


def _trickles(at: str) -> Reply:
    """A byte every 0.1 s for 30 s: no single read ever waits long enough to time out."""

    def reply(conn: socket.socket, request: bytes) -> None:
        data = head(3000) + b" " * 3000
        split = 0 if at == "headers" else len(head(3000))
        conn.sendall(data[:split])
        for i in range(split, split + 300):
            conn.sendall(data[i : i + 1])
            time.sleep(0.1)

    return reply


@pytest.mark.parametrize("at", ["headers", "body"])
def test_verify_gives_a_trickling_server_one_timeout_in_all(
    run: Run, out: Path, serve_raw: Callable[[Reply], RawServer], at: str
) -> None:
    server = serve_raw(_trickles(at))
    start = time.monotonic()
    result = within(20, lambda: verify_acme(run, server.base_url, "--timeout", "1"))
    elapsed = time.monotonic() - start
    assert result.exit_code == 1
    assert f"{JWKS}: no complete response within 1s (--timeout)" in result.output
    assert elapsed < 4, elapsed  # 1 s, and slack for two shared cores


def _endless(conn: socket.socket, request: bytes) -> None:
    """No Content-Length, then 64 MiB (endless for the purpose; the cap is 4 MiB)."""
    conn.sendall(head())
    chunk = b"x" * 65536
    for _ in range(1024):
        conn.sendall(chunk)


def _announces_3_gb(conn: socket.socket, request: bytes) -> None:
    conn.sendall(head(3 * 1024**3) + b"{")
    time.sleep(10)


@pytest.mark.parametrize("reply", [_endless, _announces_3_gb])
def test_verify_stops_reading_a_body_over_the_cap(
    run: Run, out: Path, serve_raw: Callable[[Reply], RawServer], reply: Reply
) -> None:
    server = serve_raw(reply)
    start = time.monotonic()
    result = within(20, lambda: verify_acme(run, server.base_url, "--timeout", "8"))
    assert result.exit_code == 1
    assert f"{JWKS}: the response is larger than 4 MiB" in result.output
    assert time.monotonic() - start < 5


# 6. manifests that are damaged or point out of the tree


def _rewrite_first_path(out: Path, path: str) -> None:
    manifest = out / MANIFEST_NAME
    raw = json.loads(manifest.read_text())
    raw["files"][0]["path"] = path
    manifest.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/passwd", "a//b", "./x", "a/../../b", "a\x00b", "a\\..\\b"]
)
def test_verify_refuses_a_manifest_path_out_of_the_tree(run: Run, out: Path, path: str) -> None:
    _rewrite_first_path(out, path)
    result = run("verify", "--out", "out", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {Path('out') / MANIFEST_NAME}: ")
    assert repr(path) in result.output


def test_verify_refuses_a_manifest_path_through_a_symlink(
    run: Run, out: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "secret")  # read, it would hang the run
    (out / "link").symlink_to(outside)
    _rewrite_first_path(out, "link/secret")
    result = within(20, lambda: run("verify", "--out", "out", "--base-url", "http://127.0.0.1:9"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {Path('out') / MANIFEST_NAME}: lists 'link/secret'")


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b"[" * 100_000, b'{"format": 1, "files": 5}', b"\xff\xfe"],
)
def test_verify_refuses_a_damaged_manifest(run: Run, out: Path, content: bytes) -> None:
    (out / MANIFEST_NAME).write_bytes(content)
    result = run("verify", "--out", "out")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {Path('out') / MANIFEST_NAME}: ")


def test_verify_refuses_a_manifest_that_is_not_a_file(run: Run, out: Path) -> None:
    (out / MANIFEST_NAME).unlink()
    os.mkfifo(out / MANIFEST_NAME)
    result = within(20, lambda: run("verify", "--out", "out"))
    assert result.exit_code == 1
    assert "is not a regular file" in result.output
    (out / MANIFEST_NAME).unlink()
    (out / MANIFEST_NAME).mkdir()
    assert "is a folder" in run("verify", "--out", "out").output
