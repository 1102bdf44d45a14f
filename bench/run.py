"""`make bench`: figures as ratios against a baseline measured in the same run.

Machines here are noisy (2 cores), so each figure is the best of a few runs, and only the
ratio to the baseline of the same run means anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from choices import bench_choices
from fixtures import big_config, fleet_config

ROOT = Path(__file__).parent.parent
WORK = ROOT / ".bench"
BIN = Path(sys.executable).parent
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
TRASH: list[Path] = []  # folders of outputs set aside, deleted at the end
INSTANCES = int(os.environ.get("BENCH_INSTANCES", "10000"))


PEAK_RSS: dict[str, int] = {}  # KiB, the largest seen per command (its first three words)
# Runs the command as its only child: RUSAGE_CHILDREN is then that command's own peak RSS.
_WRAP = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "seconds = time.perf_counter() - start\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'\\nwellknown-bench {seconds} {rss}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _once(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one run, its peak RSS kept in PEAK_RSS; a failed run stops the
    benchmark with its output."""
    result = subprocess.run(
        [sys.executable, "-c", _WRAP, *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    _, seconds, rss = result.stderr.strip().rsplit("\n", 1)[-1].split()
    name = " ".join(command[:3])
    PEAK_RSS[name] = max(PEAK_RSS.get(name, 0), int(rss))
    return float(seconds)


def timed_pair(
    a: list[str], b: list[str], outs: Path, repeat: int = REPEAT
) -> tuple[float, float, Path]:
    """Best of REPEAT runs of each command, interleaved (A B A B ...) so that a slow spell of
    this machine's disk hits both. The output folder is the command's last argument; every
    run gets a new one, because deleting 20,000 files on this disk (mounted with online
    discard) slows whatever runs next. Returns the last output folder of B."""
    best = [float("inf"), float("inf")]
    last = outs
    for attempt in range(repeat):
        for index, command in enumerate((a, b)):
            last = outs / f"{'ab'[index]}{attempt}"
            os.sync()
            best[index] = min(best[index], _once([*command, str(last)]))
    return best[0], best[1], last


def timed(command: list[str], repeat: int = REPEAT) -> float:
    best = float("inf")
    for _ in range(repeat):
        os.sync()
        best = min(best, _once(command))
    return best


def files_written_since(folder: Path, since: float) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime > since)


def _touch_one_tenant(config: Path) -> Path:
    """Change one tenant's discovery (a new member) in its included file; the edited file."""
    first = sorted((config.parent / "tenants").glob("*.yaml"))[0]
    text = first.read_text()
    marker = "  issuer: https://"
    at = text.index(marker)
    end = text.index("\n", at)
    edit = "\n  discovery: {service_documentation: 'https://docs.example/changed'}"
    if edit in text:
        first.write_text(text.replace(edit, ""))
    else:
        first.write_text(text[:end] + edit + text[end:])
    return first


def _delete_later(folder: Path) -> None:
    """Set a run's output aside, deleted when the whole bench is done: on this machine's
    disk (ext4 without a journal) creating files is several times slower for minutes after
    a few hundred thousand were deleted, which would slow the next part's runs."""
    if folder.exists():
        trash = folder.with_name(folder.name + ".trash")
        trash.mkdir(exist_ok=True)
        folder.rename(trash / f"{folder.name}-{time.time_ns()}")
        TRASH.append(trash)


def bench_render(instances: int = INSTANCES, repeat: int = REPEAT) -> None:
    fleet = instances >= 100_000 or os.environ.get("BENCH_FLEET") == "1"
    shape = "included files of 1,000, keys from a pool of 60" if fleet else "one file"
    print(f"== render: {instances} instances, 2 keys each ({shape})")
    start = time.perf_counter()
    if fleet:
        config = fleet_config(WORK / f"fleet-{instances}", instances)
    else:
        config = big_config(WORK / f"render-{instances}", instances)
    print(f"   fixture ready in {time.perf_counter() - start:.1f} s ({config})")
    baseline = [sys.executable, str(ROOT / "bench/baseline_render.py"), str(config)]
    render = [str(BIN / "wellknown-build"), "-q", "render", str(config), "--out"]
    figures = {}
    places = os.environ.get("BENCH_PLACES", "disk,tmpfs").split(",")
    for place, outs in (("disk", WORK / "runs"), ("tmpfs", Path("/dev/shm/wkb-bench"))):
        if place not in places or (place == "tmpfs" and not outs.parent.is_dir()):
            continue
        shutil.rmtree(outs, ignore_errors=True)
        os.sync()
        base, ours, ours_out = timed_pair(baseline, render, outs, repeat)
        mark = time.time()
        time.sleep(0.01)
        again = timed([render[0], *render[2:], str(ours_out)], repeat)
        written = files_written_since(ours_out, mark)
        one = (0.0, 0)
        if fleet:
            _touch_one_tenant(config)
            mark = time.time()
            time.sleep(0.01)
            one = (_once([render[0], "render", *render[3:], str(ours_out)]), 0)
            one = (one[0], files_written_since(ours_out, mark))
            _touch_one_tenant(config)  # back as it was
        figures[place] = (base, ours, again, written, one)
        if place == "disk" and not fleet:
            shutil.rmtree(WORK / "out-ours", ignore_errors=True)
            shutil.copytree(ours_out, WORK / "out-ours")
        if place == "disk":
            _delete_later(outs)
        else:  # tmpfs: no slow spell after a delete, and the memory is wanted back
            shutil.rmtree(outs, ignore_errors=True)
    for name, rss in sorted(PEAK_RSS.items()):
        print(f"   peak RSS {rss / 1024:7.0f} MiB  {name}")
    PEAK_RSS.clear()
    for place, (base, ours, again, written, one) in figures.items():
        print(f"   [{place}]")
        print(f"   baseline (PyYAML + jwcrypto)   {base:7.2f} s   1.00x")
        print(f"   wellknown-build render         {ours:7.2f} s   {ours / base:.2f}x")
        ratio = again / base
        print(
            f"   re-render, nothing changed     {again:7.2f} s   {ratio:.2f}x   written: {written}"
        )
        if fleet:
            print(
                f"   re-render, one tenant changed  {one[0]:7.2f} s   {one[0] / base:.2f}x"
                f"   written: {one[1]}"
            )


def _moto_server() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return server, url


def _rotated_tree() -> Path:
    """The bench config with every kid changed (kid_method: kubernetes): every JWKS differs,
    as after a fleet-wide key rotation; the discovery documents stay the same."""
    config = big_config(WORK / f"render-{INSTANCES}", INSTANCES)
    rotated = config.with_name("rotated.yaml")
    rotated.write_text(
        config.read_text().replace("defaults:\n", "defaults:\n  key: {kid_method: kubernetes}\n", 1)
    )
    out = WORK / "out-rotated"
    shutil.rmtree(out, ignore_errors=True)
    _once([str(BIN / "wellknown-build"), "-q", "render", str(rotated), "--out", str(out)])
    return out


def bench_publish() -> None:
    from tests.s3server import start_proxy

    tree = WORK / "out-ours"
    files = sum(1 for p in tree.rglob("*") if p.is_file() and not p.name.startswith(".wellknown"))
    print(f"== publish: the {files}-file tree to moto's server on 127.0.0.1 (a separate process)")
    server, url = _moto_server()
    try:
        address = urllib.parse.urlsplit(url)
        proxy = start_proxy((address.hostname or "127.0.0.1", address.port or 0))
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        for name in ("ours", "awscli"):
            s3.create_bucket(Bucket=f"bench-{name}")
        rotated = _rotated_tree()
        rows = []
        for label, tool in (("wellknown-build publish", "ours"), ("aws s3 sync", "awscli")):
            for run in ("first", "fresh copy", "rotation"):
                source = tree
                if run == "fresh copy":  # a new CI checkout: same bytes, new mtimes
                    source = WORK / f"copy-{tool}"
                    shutil.rmtree(source, ignore_errors=True)
                    shutil.copytree(tree, source, copy_function=shutil.copyfile)
                if run == "rotation":  # every instance's JWKS changes
                    source = rotated
                if tool == "ours":
                    command = [
                        str(BIN / "wellknown-build"),
                        "-q",
                        "publish",
                        "--bucket",
                        "bench-ours",
                        "--endpoint-url",
                        proxy.url,
                        "--out",
                        str(source),
                    ]
                else:
                    command = [
                        str(BIN / "aws"),
                        "s3",
                        "sync",
                        "--quiet",
                        "--exclude",
                        ".wellknown-build*",
                        str(source),
                        "s3://bench-awscli",
                        "--endpoint-url",
                        proxy.url,
                    ]
                proxy.requests.clear()
                seconds = _once(command, env)
                methods = Counter(r.method for r in proxy.requests)
                rows.append((label, run, seconds, methods))
        base = {run: s for label, run, s, _ in rows if label == "aws s3 sync"}
        for label, run, seconds, methods in rows:
            ratio = seconds / base[run]
            counts = " ".join(f"{m} {n}" for m, n in sorted(methods.items()))
            print(f"   {label:<24} {run:<10} {seconds:7.2f} s  {ratio:5.2f}x   {counts}")
        ours = next(
            s for label, run, s, _ in rows if label.startswith("wellknown") and run == "fresh copy"
        )
        print(f"   no-change publish is {base['fresh copy'] / ours:.1f}x faster than aws s3 sync's")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    WORK.mkdir(exist_ok=True)
    sys.path.insert(0, str(ROOT))
    only = os.environ.get("BENCH_ONLY", "choices,render,fleet,publish").split(",")
    if "choices" in only:
        bench_choices(big_config(WORK / f"render-{INSTANCES}", INSTANCES), REPEAT)
    if "render" in only:
        bench_render()
    if "fleet" in only:  # 100,000 issuers (or BENCH_FLEET_INSTANCES), once per place
        bench_render(int(os.environ.get("BENCH_FLEET_INSTANCES", "100000")), 1)
    if "publish" in only:
        bench_publish()
    for trash in dict.fromkeys(TRASH):
        shutil.rmtree(trash, ignore_errors=True)
