"""What people see: --help with env vars, -q, shell completion, progress on a terminal and in a
CI log, the plan's caps, dry-run bytes, and refusals and errors that say what to do."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest

from wellknown_build import progress
from wellknown_build.cli import main
from wellknown_build.manifest import Entry
from wellknown_build.publish import report
from wellknown_build.publish import run as publish_run
from wellknown_build.publish.plan import CREATE, DELETE, UNCHANGED, Action, Plan
from wellknown_build.publish.run import Result

from .helpers import KEY_MAKERS, Run, public_pem, write, write_config
from .s3server import Proxy


def _options() -> Iterator[tuple[str, click.Option]]:
    assert isinstance(main, click.Group)
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option):
                yield name, param


def test_every_option_with_an_env_var_shows_it() -> None:
    with_env = [(name, o) for name, o in _options() if o.envvar]
    assert len(with_env) >= 15
    for name, option in with_env:
        assert option.show_envvar, (name, option.name)
        assert "(env " not in (option.help or ""), (name, option.name)  # said once, by click


def test_help_names_the_env_vars(run: Run) -> None:
    result = run("publish", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # click wraps long lines
    for variable in ("WELLKNOWN_BUCKET", "WELLKNOWN_S3_TIMEOUT", "WELLKNOWN_WORKERS_S3"):
        assert f"env var: {variable}" in text
    assert "env var: WELLKNOWN_BASE_URL" in " ".join(run("verify", "--help").output.split())


@pytest.mark.parametrize("command", ["render", "validate", "list", "init", "publish", "verify"])
def test_verbosity_after_the_command(run: Run, command: str) -> None:
    assert "-q, --quiet" in run(command, "--help").output


def test_shell_completion(tmp_path: Path) -> None:
    """click's completion, through the installed entry point as a shell would call it."""
    found = shutil.which("wellknown-build", path=str(Path(sys.executable).parent))
    assert found, "the entry point is installed next to this Python"
    source = subprocess.run(
        [found],
        env={**os.environ, "_WELLKNOWN_BUILD_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert source.returncode == 0
    assert "_wellknown_build_completion" in source.stdout
    words = subprocess.run(
        [found],
        env={
            **os.environ,
            "_WELLKNOWN_BUILD_COMPLETE": "bash_complete",
            "COMP_WORDS": "wellknown-build pu",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert "plain,publish" in words.stdout.splitlines()


# progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_logs_a_line_every_few_seconds_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    progress.show_bar_on(None)
    clock = iter(float(t) for t in range(0, 100))
    monkeypatch.setattr(progress, "clock", lambda: next(clock))
    monkeypatch.setattr(progress, "EVERY", 5.0)
    with (
        caplog.at_level(logging.INFO, "wellknown_build.progress"),
        progress.Progress("uploads", 20) as p,
    ):
        for _ in range(20):
            p.advance()  # one second per step
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["uploads: 5/20", "uploads: 10/20", "uploads: 15/20"]
    assert lines[-1].startswith("uploads: 20/20, ")


def test_progress_quick_run_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    progress.show_bar_on(None)
    with caplog.at_level(logging.INFO, "wellknown_build.progress"), progress.Progress("x", 3) as p:
        p.advance(3)
    assert caplog.records == []


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    progress.show_bar_on(terminal)
    try:
        clock = iter(float(t) for t in range(0, 100))
        monkeypatch.setattr(progress, "clock", lambda: next(clock))

        def work(p: progress.Progress) -> None:
            for _ in range(5):
                p.advance()

        with progress.Progress("uploads", 10) as p:
            threads = [threading.Thread(target=work, args=(p,)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        progress.show_bar_on(None)
    drawn = terminal.getvalue()
    assert "uploads" in drawn and drawn.rstrip().endswith("10/10\x1b[?25h")


def test_cli_draws_bars_only_on_a_terminal_and_not_under_quiet(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[object] = []
    monkeypatch.setattr(progress, "show_bar_on", seen.append)
    run("schema")
    run("schema", "-q")
    assert seen and all(s is None for s in seen)  # CliRunner's stderr is no terminal


# publish output against moto


def _render(run: Run, tmp_path: Path, names: list[str]) -> None:
    lines = []
    for name in names:
        write(tmp_path / "keys" / f"{name}.pem", public_pem(KEY_MAKERS["p256"]()))
        lines.append(
            f"  - {{id: {name}, issuer: 'https://{name}.example', keys: [{{path: keys/{name}.pem}}]}}"
        )
    write_config(tmp_path, "instances:\n" + "\n".join(lines) + "\n")
    assert run("render", "instances.yaml").exit_code == 0


def _publish(run: Run, proxy: Proxy, bucket: str, *args: str) -> object:
    return run("publish", "--bucket", bucket, "--endpoint-url", proxy.url, *args)


def test_quiet_publish_prints_nothing(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a"])
    result = run("publish", "-q", "--bucket", bucket, "--endpoint-url", s3_proxy.url)
    assert result.exit_code == 0 and result.output == ""
    assert run("-q", "publish", "--bucket", bucket, "--endpoint-url", s3_proxy.url).output == ""
    assert s3_proxy.puts(bucket)  # it did publish


def test_dry_run_says_what_it_would_send(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a", "b"])
    sizes = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*.example/**/*") if p.is_file())
    result = run("publish", "--bucket", bucket, "--endpoint-url", s3_proxy.url, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"would send {sizes} bytes in 4 PUTs" in result.output
    assert s3_proxy.puts(bucket) == []
    data = run("publish", "--bucket", bucket, "--endpoint-url", s3_proxy.url, "--dry-run", "--json")
    assert '"planned_bytes": ' + str(sizes) in data.output


def test_progress_lines_in_a_ci_log_for_a_long_publish(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off a terminal, a long phase logs how far it got every few seconds (here 0.2 s, and
    each PUT takes 0.1 s): the CI log shows the run is alive."""
    monkeypatch.setattr(publish_run, "PROGRESS_EVERY", 0.2, raising=False)
    monkeypatch.setattr(progress, "EVERY", 0.2)

    def slow(method: str, key: str, headers: Message) -> tuple[int, str] | None:
        if method == "PUT" and ".well-known" in key:
            time.sleep(0.1)
        return None

    _render(run, tmp_path, [f"t{i}" for i in range(12)])
    s3_proxy.faults.append(slow)
    result = run("publish", "--bucket", bucket, "--endpoint-url", s3_proxy.url, "--workers", "1")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "uploads: " in line]
    assert any(line.startswith("INFO: JWKS uploads: ") for line in lines), result.output
    assert any("/12" in line for line in lines)
    assert not any("uploads: " in line for line in run(
        "publish", "-q", "--bucket", bucket, "--endpoint-url", s3_proxy.url
    ).output.splitlines())  # fmt: skip


def test_max_deletes_refusal_says_how_to_allow_it(
    run: Run, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    _render(run, tmp_path, ["a", "b"])
    assert _publish(run, s3_proxy, bucket).exit_code == 0  # type: ignore[attr-defined]
    _render(run, tmp_path, ["c"])
    (tmp_path / "instances.yaml").write_text(
        "instances: [{id: c, issuer: 'https://c.example', keys: [{path: keys/c.pem}]}]\n"
    )
    assert run("render", "instances.yaml").exit_code == 0
    result = run("publish", "--bucket", bucket, "--endpoint-url", s3_proxy.url, "--delete",
                 "--max-deletes", "3")  # fmt: skip
    assert result.exit_code == 3
    assert "--max-deletes 3" in result.output and "pass --max-deletes" in result.output
    assert "nothing was changed" in result.output


@pytest.fixture
def not_s3() -> Iterator[str]:
    """A web server on loopback that answers 404 to everything, as a website or CDN would."""

    class NotFound(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "9")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b"not found")

        do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_404_from_a_non_s3_endpoint_names_endpoint_url(
    run: Run, tmp_path: Path, aws_env: None, not_s3: str
) -> None:
    _render(run, tmp_path, ["a"])
    result = run("publish", "--bucket", "b", "--endpoint-url", not_s3)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert (
        "404 (HTTP 404)" in result.output
        and "is --endpoint-url the store's S3 API" in result.output
    )


# the plan's caps, on a plan made up here


def _entry(path: str, kids: tuple[str, ...] = ()) -> Entry:
    return Entry(path, "0" * 64, 10, "application/json", "public, max-age=300", "i", "jwks", kids)


def test_plan_caps_every_kind_of_line() -> None:
    n = report.SHOWN_PER_OP + 7
    plan = Plan(
        actions=[
            *(
                Action(CREATE, f"h{i}/jwks.json", "new", _entry(f"h{i}/jwks.json"), "jwks")
                for i in range(n)
            ),
            *(
                Action(DELETE, f"d{i}/jwks.json", "no longer rendered", kind="jwks")
                for i in range(n)
            ),
            *(Action(UNCHANGED, f"u{i}", "same", _entry(f"u{i}"), "jwks") for i in range(n)),
        ],
        kid_changes={f"h{i}/jwks.json": ([f"k{i}"], []) for i in range(n)},
    )
    result = Result(plan, dry_run=False)
    result.invalidation_id = "I1"
    result.invalidation_paths = [f"/p{i}" for i in range(40)]
    lines = report.lines(result, "s3://b/")
    for label in ("create", "delete", "kids"):
        shown = [line for line in lines if line.startswith(f"  {label:<7} ")]
        assert len(shown) == report.SHOWN_PER_OP + 1, label
        assert shown[-1] == f"  {label:<7} ... and 7 more"
    assert f"  {n} unchanged" in lines
    (cdn,) = [line for line in lines if line.startswith("CloudFront invalidation")]
    assert cdn.endswith(f"/p{report.SHOWN_PATHS - 1} ... and {40 - report.SHOWN_PATHS} more")
    assert len(lines) < 4 * (report.SHOWN_PER_OP + 2)


@pytest.mark.parametrize("region", ["us east", "$(touch x)", "a;b", "-us-east-1"])
def test_bad_region_is_a_usage_error(run: Run, region: str) -> None:
    result = run("publish", "--bucket", "b", "--region", region)
    assert result.exit_code == 2
    assert "Invalid value for '--region'" in result.output and "Traceback" not in result.output
