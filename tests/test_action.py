"""The GitHub Action (action.yml), its steps run as a runner runs them: each `run:` in
`bash --noprofile --norc -eo pipefail`, the step's `env:` with its `${{ }}` expressions
evaluated, GITHUB_OUTPUT read back, against moto's S3 on loopback.

The install step runs once for the module (pip, from PyPI and the pip cache), on a copy of
the project, as the runner installs the action's checkout; the other steps run per test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from wellknown_build.commands.init import init

from .helpers import ROOT, running
from .packaging import project_copy
from .s3server import Proxy

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or shutil.which("bash") is None,
    reason="runs the steps in bash as a Linux or macOS runner does",
)

ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# The inputs, plus `strict`.
INPUTS = [
    "config",
    "out",
    "strict",
    "bucket",
    "prefix",
    "site",
    "region",
    "endpoint-url",
    "cloudfront-distribution-id",
    "delete",
    "max-deletes",
    "dry-run",
    "verify-base-url",
]
OUTPUTS = ["created", "updated", "unchanged", "deleted", "puts", "bytes", "summary"]


def _evaluate(text: str, inputs: Mapping[str, str], outputs: Mapping[str, dict[str, str]]) -> str:
    """The only expressions action.yml may use: `inputs.NAME` and
    `steps.ID.outputs.NAME`; anything else fails the test rather than being guessed."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if found := re.fullmatch(r"inputs\.([\w-]+)", expression):
            return inputs[found.group(1)]
        if found := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression):
            return outputs.get(found.group(1), {}).get(found.group(2), "")
        raise AssertionError(f"an expression this runner cannot evaluate: {expression}")

    return EXPRESSION.sub(value, text)


def _read_outputs(path: Path) -> dict[str, str]:
    result = {}
    for line in path.read_text().splitlines():
        assert "<<" not in line.split("=", 1)[0], "multi-line outputs are not used"
        name, _, value = line.partition("=")
        result[name] = value
    return result


@dataclass
class Run:
    returncode: int = 0
    log: str = ""
    steps: list[str] = field(default_factory=list)  # ids of the steps that ran
    outputs: dict[str, str] = field(default_factory=dict)  # the action's outputs


class Runner:
    def __init__(self, temp: Path) -> None:
        self.temp = temp
        self.step_outputs: dict[str, dict[str, str]] = {}

    def step(
        self, step: dict[str, Any], inputs: Mapping[str, str], workspace: Path, action_path: Path
    ) -> tuple[int, str]:
        assert step.get("shell") == "bash" and "if" not in step and "uses" not in step
        script = self.temp / f"step-{step['id']}.sh"
        script.write_text(step["run"])
        output = self.temp / f"output-{step['id']}"
        output.write_text("")
        env = {
            **os.environ,
            "GITHUB_OUTPUT": str(output),
            "GITHUB_ACTION_PATH": str(action_path),
            "GITHUB_WORKSPACE": str(workspace),
            "RUNNER_TEMP": str(self.temp),
            **{
                k: _evaluate(str(v), inputs, self.step_outputs)
                for k, v in step.get("env", {}).items()
            },
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.step_outputs[step["id"]] = _read_outputs(output)
        return done.returncode, done.stdout + done.stderr

    def run(
        self, given: Mapping[str, str], workspace: Path, action_path: Path, ids: list[str]
    ) -> Run:
        inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        inputs.update(given)
        for name, spec in ACTION["inputs"].items():
            assert not spec.get("required") or inputs[name], f"input {name} is required"
        result = Run()
        for step in ACTION["runs"]["steps"]:
            if step["id"] not in ids:
                continue
            result.steps.append(step["id"])
            code, log = self.step(step, inputs, workspace, action_path)
            result.log += log
            if code:  # a failed step ends the job
                result.returncode = code
                break
        result.outputs = {
            name: _evaluate(spec["value"], inputs, self.step_outputs)
            for name, spec in ACTION["outputs"].items()
        }
        return result


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """The install step, run for real once: a venv, pip install of the action's checkout."""
    temp = tmp_path_factory.mktemp("runner")
    source = project_copy(tmp_path_factory.mktemp("action"))
    runner = Runner(temp)
    code, log = runner.step(ACTION["runs"]["steps"][0], {}, temp, source)
    assert code == 0, log
    assert re.search(r"wellknown-build, version \d", log), log
    yield runner


def _workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "repo"
    init(workspace, "https://auth.example.com/t/a", kind="ec-p256")
    return workspace


def _objects(moto_server: str, bucket: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=moto_server).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


STEPS = ["render", "publish", "verify"]


def test_action_declares_the_inputs_and_outputs() -> None:
    assert list(ACTION["inputs"]) == INPUTS
    assert list(ACTION["outputs"]) == OUTPUTS
    assert ACTION["runs"]["using"] == "composite"
    assert [s["id"] for s in ACTION["runs"]["steps"]] == ["install", *STEPS]
    # inputs reach scripts through env only: never pasted into a script
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step["run"], step["id"]


def test_renders_publishes_and_outputs_the_counts(
    runner: Runner, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    workspace = _workspace(tmp_path)
    inputs = {"bucket": bucket, "endpoint-url": s3_proxy.url, "region": "us-east-1"}
    first = runner.run(inputs, workspace, ROOT, STEPS)
    assert first.returncode == 0, first.log
    assert first.steps == STEPS
    assert "rendered 1 instance(s) into out" in first.log
    assert "create  auth.example.com/t/a/.well-known/jwks.json" in first.log
    sizes = sum(
        p.stat().st_size for p in (workspace / "out" / "auth.example.com").rglob("*") if p.is_file()
    )
    assert first.outputs == {
        "created": "2",
        "updated": "0",
        "unchanged": "0",
        "deleted": "0",
        "puts": "3",  # two documents and the state index
        "bytes": str(sizes),
        "summary": first.outputs["summary"],
    }
    assert first.outputs["summary"].startswith("published: 2 created")
    assert "verify-base-url is empty: not verifying" in first.log
    assert [k for k in _objects(moto_server, bucket) if ".well-known/" in k] == [
        "auth.example.com/t/a/.well-known/jwks.json",
        "auth.example.com/t/a/.well-known/openid-configuration",
    ]
    # a rerun: the tree in out/ now, as a committed tree would be, so render --check
    again = runner.run(inputs, workspace, ROOT, STEPS)
    assert again.returncode == 0, again.log
    assert "checking that it is up to date" in again.log
    assert again.outputs["unchanged"] == "2" and again.outputs["puts"] == "0"


def test_a_stale_committed_tree_fails_before_publishing(
    runner: Runner, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    workspace = _workspace(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "wellknown_build", "render", "-q", "instances.yaml"],
        cwd=workspace,
        check=True,
    )
    config = workspace / "instances.yaml"
    config.write_text(config.read_text().replace("max-age=300", "max-age=600"))
    result = runner.run({"bucket": bucket, "endpoint-url": s3_proxy.url}, workspace, ROOT, STEPS)
    assert result.returncode == 1
    assert result.steps == ["render"]
    assert "out is not up to date" in result.log
    assert _objects(moto_server, bucket) == []


def test_dry_run_then_publish_and_verify(
    runner: Runner, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    workspace = _workspace(tmp_path)
    inputs = {
        "bucket": bucket,
        "endpoint-url": s3_proxy.url,
        "prefix": "site/",
        "dry-run": "true",
        "verify-base-url": "http://127.0.0.1:9/",  # not fetched: a dry run publishes nothing
    }
    dry = runner.run(inputs, workspace, ROOT, STEPS)
    assert dry.returncode == 0, dry.log
    assert dry.outputs["created"] == "2" and dry.outputs["puts"] == "2"
    assert int(dry.outputs["bytes"]) > 0
    assert dry.outputs["summary"].startswith("dry run, would publish: 2 created")
    assert "dry run: nothing was published, not verifying" in dry.log
    assert _objects(moto_server, bucket) == []
    with running(workspace / "out") as preview:
        inputs |= {"dry-run": "false", "verify-base-url": preview.base_url}
        real = runner.run(inputs, workspace, ROOT, STEPS)
    assert real.returncode == 0, real.log
    assert real.steps == STEPS
    assert "ok     auth.example.com/t/a (2 documents)" in real.log  # verify's report
    assert "1 instance(s): 1 ok, 0 drifted" in real.log
    assert "site/auth.example.com/t/a/.well-known/jwks.json" in _objects(moto_server, bucket)


def test_delete_limit_and_exit_code(
    runner: Runner, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    workspace = _workspace(tmp_path)
    inputs = {"bucket": bucket, "endpoint-url": s3_proxy.url}
    assert runner.run(inputs, workspace, ROOT, STEPS).returncode == 0
    shutil.rmtree(workspace / "out")
    config = workspace / "instances.yaml"
    config.write_text(
        config.read_text().replace("https://auth.example.com/t/a", "https://b.example")
    )
    refused = runner.run(inputs | {"delete": "true", "max-deletes": "1"}, workspace, ROOT, STEPS)
    assert refused.returncode == 3, refused.log
    assert "pass --max-deletes" in refused.log
    allowed = runner.run(inputs | {"delete": "true", "max-deletes": "2"}, workspace, ROOT, STEPS)
    assert allowed.returncode == 0, allowed.log
    assert allowed.outputs["deleted"] == "2" and allowed.outputs["created"] == "2"


def test_inputs_are_data_not_code(
    runner: Runner, tmp_path: Path, bucket: str, s3_proxy: Proxy
) -> None:
    workspace = _workspace(tmp_path)
    marker = tmp_path / "injected"
    hostile = f'$(touch {marker})"; touch {marker}; echo "'
    for name in ("prefix", "site", "region", "config"):
        result = runner.run(
            {"bucket": bucket, "endpoint-url": s3_proxy.url, name: hostile}, workspace, ROOT, STEPS
        )
        assert result.returncode != 0, name
        assert not marker.exists(), name
        assert "Traceback" not in result.log


def test_site_publishes_keys_relative_to_it(
    runner: Runner, tmp_path: Path, bucket: str, s3_proxy: Proxy, moto_server: str
) -> None:
    workspace = _workspace(tmp_path)
    inputs = {"bucket": bucket, "endpoint-url": s3_proxy.url, "site": "https://auth.example.com/t"}
    result = runner.run(inputs, workspace, ROOT, ["render", "publish"])
    assert result.returncode == 0, result.log
    assert result.outputs["created"] == "2"
    assert "plan for s3://" + bucket + "/ (site https://auth.example.com/t/):" in result.log
    assert [k for k in _objects(moto_server, bucket) if ".well-known/" in k] == [
        "a/.well-known/jwks.json",
        "a/.well-known/openid-configuration",
    ]
    bad = runner.run(inputs | {"site": "http://auth.example.com/t"}, workspace, ROOT, ["publish"])
    assert bad.returncode == 2
    assert "Invalid value for '--site'" in bad.log
