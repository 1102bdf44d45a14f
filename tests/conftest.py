from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from wellknown_build.cli import main

from .helpers import KEY_MAKERS, Run, public_pem, write
from .s3server import Proxy, start_proxy

# Two shared cores: a wall-clock deadline per example would make property tests flaky.
settings.register_profile("wellknown", deadline=None)
settings.load_profile("wellknown")


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def run(cli: CliRunner, tmp_path: Path) -> Run:
    """Run the CLI in tmp_path; returns click's Result."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            return cli.invoke(main, list(args), env=env, catch_exceptions=False)
        finally:
            os.chdir(cwd)

    return invoke


@pytest.fixture
def ed_key(tmp_path: Path) -> Path:
    return write(tmp_path / "keys" / "ed.pem", public_pem(KEY_MAKERS["ed25519"]()))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's standalone server on 127.0.0.1, real HTTP, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_proxy(moto_server: str) -> Iterator[Proxy]:
    address = urlsplit(moto_server)
    proxy = start_proxy((address.hostname or "127.0.0.1", address.port or 80))
    yield proxy
    assert proxy.server is not None
    proxy.server.shutdown()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> None:
    """Credentials for moto, and CloudFront pointed at it through boto3's own endpoint variable."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFRONT", moto_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def bucket(aws_env: None, s3_proxy: Proxy, moto_server: str) -> Iterator[str]:
    """A fresh, empty bucket; the proxy's record starts empty too."""
    import uuid

    import boto3

    name = f"wkb-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=name)
    s3_proxy.clear()
    yield name
    s3_proxy.clear()
