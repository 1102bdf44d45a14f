"""serve against clients and trees that misbehave: threads are freed, nothing outside the tree
is read, and a client hanging up prints no traceback."""

from __future__ import annotations

import http.client
import json
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wellknown_build.commands.render import render
from wellknown_build.commands.serve import PreviewServer
from wellknown_build.manifest import MANIFEST_NAME

from .helpers import ROOT, Run, running
from .test_verify_hostile import within

JWKS = "edge.example.net/.well-known/jwks.json"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    render(ROOT / "examples" / "instances.yaml", tmp_path / "out")
    return tmp_path / "out"


@pytest.fixture
def serve_log() -> Iterator[list[logging.LogRecord]]:
    """The serve module's records, kept apart from whatever handlers the CLI left behind."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("wellknown_build.commands.serve")
    keep, saved = Keep(), (logger.level, logger.propagate)
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield records
    logger.removeHandler(keep)
    logger.level, logger.propagate = saved


def get(server: PreviewServer, path: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as given (no normalising of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes `sock`, sending `trickle` a byte every 0.1 s meanwhile."""
    start = time.monotonic()
    for i in range(int(seconds * 10)):
        try:
            if trickle:
                sock.sendall(trickle[i % len(trickle) : i % len(trickle) + 1])
            if select.select([sock], [], [], 0.1)[0] and not sock.recv(4096):
                return time.monotonic() - start
        except OSError:  # reset: closed too
            return time.monotonic() - start
    raise AssertionError(f"the server kept the connection open for {seconds}s")


def test_serve_frees_a_silent_client(out: Path) -> None:
    with (
        running(out, timeout=0.5) as server,
        socket.create_connection(("127.0.0.1", server.server_address[1])) as s,
    ):
        assert closed_within(s, 5) < 3


def test_serve_frees_a_trickling_client(out: Path) -> None:
    """A byte every 0.1 s never lets one read time out; the request as a whole does."""
    with (
        running(out, timeout=0.5) as server,
        socket.create_connection(("127.0.0.1", server.server_address[1])) as s,
    ):
        assert closed_within(s, 10, trickle=b"GET /" + b"a" * 200) < 3


def test_serve_client_hanging_up_mid_response_prints_no_traceback(
    out: Path, serve_log: list[logging.LogRecord], capfd: pytest.CaptureFixture[str]
) -> None:
    (out / JWKS).write_bytes(b" " * (15 * 1024 * 1024))  # more than the socket buffers hold
    with running(out) as server:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(server.server_address)
        client.sendall(f"GET /{JWKS} HTTP/1.0\r\n\r\n".encode())
        time.sleep(0.3)  # the server is now blocked writing
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset, mid-body
        deadline = time.monotonic() + 5
        while not any("connection ended" in r.getMessage() for r in serve_log):
            assert time.monotonic() < deadline, [r.getMessage() for r in serve_log]
            time.sleep(0.05)
        assert get(server, "/" + JWKS.replace("edge", "clerk").replace(".net", ".com"))[0] == 200
    assert "Traceback" not in capfd.readouterr().err
    assert all(r.levelno == logging.DEBUG for r in serve_log)


def test_serve_never_follows_a_symlink_out_of_the_tree(out: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / ".well-known"
    outside.mkdir(parents=True)
    (outside / "jwks.json").write_text("SECRET")
    with running(out) as server:
        assert get(server, "/" + JWKS)[0] == 200
        folder = out / "edge.example.net" / ".well-known"
        folder.rename(tmp_path / "moved")
        folder.symlink_to(outside)  # swapped under the running server
        status, body = get(server, "/" + JWKS)
    assert status == 404 and b"SECRET" not in body


@pytest.mark.parametrize("where", ["../secret", "{tmp}/secret", "link/secret"])
def test_serve_never_serves_a_tampered_path(out: Path, tmp_path: Path, where: str) -> None:
    (tmp_path / "secret").write_text("SECRET")
    (out / "link").symlink_to(tmp_path)
    path = where.format(tmp=tmp_path)
    with running(out) as server:
        manifest = out / MANIFEST_NAME
        raw = json.loads(manifest.read_text())
        raw["files"][0]["path"] = path
        manifest.write_text(json.dumps(raw))  # after the server started
        status, body = get(server, "/" + path)
        assert status == 404 and b"SECRET" not in body
        assert get(server, "/" + JWKS)[0] == 404  # a manifest like that is refused whole


def test_serve_answers_404_for_a_fifo(out: Path) -> None:
    (out / JWKS).unlink()
    os.mkfifo(out / JWKS)  # read whole, it would hold the thread forever
    with running(out) as server:
        assert get(server, "/" + JWKS)[0] == 404


def test_serve_command_refuses_a_manifest_leading_out(run: Run, out: Path, tmp_path: Path) -> None:
    (out / "link").symlink_to(tmp_path)
    manifest = out / MANIFEST_NAME
    raw = json.loads(manifest.read_text())
    raw["files"][0]["path"] = "link/secret"
    manifest.write_text(json.dumps(raw))
    result = within(20, lambda: run("serve", "--out", "out", "--port", "0"))
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {Path('out') / MANIFEST_NAME}: lists 'link/secret'")
