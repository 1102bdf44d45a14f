"""serve's headers through real HTTP, and verify against it: clean, tampered, wrong type, redirect."""

from __future__ import annotations

import json
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wellknown_build.commands.render import render
from wellknown_build.commands.serve import PreviewServer
from wellknown_build.manifest import MANIFEST_NAME

from .helpers import ROOT, Run, running


@pytest.fixture
def out(tmp_path: Path) -> Path:
    render(ROOT / "examples" / "instances.yaml", tmp_path / "out")
    return tmp_path / "out"


@pytest.fixture
def preview(out: Path) -> Iterator[PreviewServer]:
    with running(out) as server:
        yield server


def _get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), b""


def test_serve_headers_by_path_and_by_host(preview: PreviewServer, out: Path) -> None:
    path = "auth.example.com/tenants/acme/.well-known/openid-configuration"
    by_path = _get(f"{preview.base_url}/{path}")
    by_host = _get(
        f"{preview.base_url}/tenants/acme/.well-known/openid-configuration", host="auth.example.com"
    )
    for status, headers, body in (by_path, by_host):
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "public, max-age=300"
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert body == (out / path).read_bytes()
    assert _get(f"{preview.base_url}/{MANIFEST_NAME}")[0] == 404  # only manifest files are served
    assert _get(f"{preview.base_url}/nothing/here")[0] == 404


def test_verify_clean(run: Run, preview: PreviewServer) -> None:
    result = run("verify", "--out", "out", "--base-url", preview.base_url)
    assert result.exit_code == 0, result.output
    assert "3 instance(s): 3 ok, 0 drifted" in result.output


def test_verify_finds_a_tampered_file(run: Run, preview: PreviewServer, out: Path) -> None:
    served = out / "edge.example.net/.well-known/jwks.json"
    keys = json.loads(served.read_text())
    keys["keys"][0]["kid"] = "rogue"
    served.write_text(json.dumps(keys))
    # verify compares against the rendered tree; the served copy is the tampered one.
    pristine = out.parent / "pristine"
    render(ROOT / "examples" / "instances.yaml", pristine)
    result = run(
        "verify", "--out", "pristine", "--base-url", preview.base_url, "--instance", "edge"
    )
    assert result.exit_code == 1
    assert "drift  edge" in result.output
    assert (
        "body differs from the rendered file (missing kids" in result.output
        and "extra kids rogue" in result.output
    )


def test_verify_finds_a_wrong_content_type(run: Run, out: Path, tmp_path: Path) -> None:
    served = tmp_path / "served"
    shutil.copytree(out, served)
    manifest = served / MANIFEST_NAME
    manifest.write_text(  # whatever the spacing of the manifest's JSON
        re.sub(
            r'"content_type":\s*"application/json"',
            '"content_type": "binary/octet-stream"',
            manifest.read_text(),
            count=1,
        )
    )
    with running(served) as server:
        result = run("verify", "--out", "out", "--base-url", server.base_url, "--json")
    assert result.exit_code == 1
    drift = {r["instance"]: r["drift"] for r in json.loads(result.output)}
    assert drift["ins_1lyWDZiobr600AKUeQDoSlrEmoM"] == [
        "clerk.example.com/.well-known/jwks.json: Content-Type 'binary/octet-stream', expected 'application/json'"
    ]


class _Redirecting(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(301)
        self.send_header("Location", "https://elsewhere.example" + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_verify_refuses_redirects(run: Run, out: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run(
            "verify",
            "--out",
            "out",
            "--base-url",
            f"http://127.0.0.1:{server.server_address[1]}",
            "--instance",
            "acme",
        )
    finally:
        server.shutdown()
    assert result.exit_code == 1
    assert (
        "redirects to https://elsewhere.example/auth.example.com/tenants/acme/.well-known/jwks.json (HTTP 301)"
        in result.output
    )


def test_verify_unreachable_and_unknown_instance(run: Run, out: Path) -> None:
    closed = run(
        "verify",
        "--out",
        "out",
        "--base-url",
        "http://127.0.0.1:9",
        "--timeout",
        "2",
        "--instance",
        "edge",
    )
    assert closed.exit_code == 1 and "unreachable" in closed.output
    assert run("verify", "--out", "out", "--instance", "nope").exit_code == 1


def test_serve_command_refuses_a_missing_tree(run: Run) -> None:
    result = run("serve", "--out", "missing", "--port", "0")
    assert result.exit_code == 1 and "no manifest" in result.output
