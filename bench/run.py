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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import big_config

ROOT = Path(__file__).parent.parent
WORK = ROOT / ".bench"
BIN = Path(sys.executable).parent
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
INSTANCES = int(os.environ.get("BENCH_INSTANCES", "10000"))


def timed(command: list[str], fresh: Path | None = None) -> tuple[float, str]:
    """Best wall time of REPEAT runs (each into an emptied folder when `fresh` is given)."""
    best, output = float("inf"), ""
    for _ in range(REPEAT):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        best, output = min(best, elapsed), result.stdout + result.stderr
    return best, output


def files_written_since(folder: Path, since: float) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime > since)


def bench_render() -> None:
    print(f"== render: {INSTANCES} instances, 2 keys each")
    start = time.perf_counter()
    config = big_config(WORK / f"render-{INSTANCES}", INSTANCES)
    print(f"   fixture ready in {time.perf_counter() - start:.1f} s ({config})")
    ours_out, base_out = WORK / "out-ours", WORK / "out-baseline"
    base, _ = timed(
        [sys.executable, str(ROOT / "bench/baseline_render.py"), str(config), str(base_out)],
        base_out,
    )
    ours, text = timed(
        [str(BIN / "wellknown-build"), "-q", "render", str(config), "--out", str(ours_out)],
        ours_out,
    )
    mark = time.time()
    time.sleep(0.01)
    again, text = timed(
        [str(BIN / "wellknown-build"), "render", str(config), "--out", str(ours_out)]
    )
    written = files_written_since(ours_out, mark)
    print(f"   baseline (PyYAML + jwcrypto)   {base:7.2f} s   1.00x")
    print(f"   wellknown-build render         {ours:7.2f} s   {ours / base:.2f}x")
    ratio = again / base
    print(f"   re-render, nothing changed     {again:7.2f} s   {ratio:.2f}x   written: {written}")
    print(f"   ({text.strip()})")


if __name__ == "__main__":
    WORK.mkdir(exist_ok=True)
    bench_render()
