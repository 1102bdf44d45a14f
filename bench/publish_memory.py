"""`make bench-publish-memory`: peak memory of a publish at fleet scale (issue 10).

A rendered tree (the fleet of BENCH_FLEET_INSTANCES instances, default 100,000, rendered into
.bench/out-fleet-N once; BENCH_PUBLISH_OUT names another) is published
to an in-memory bucket through the real code (publish/run.py, with `Bucket` replaced): first
publish (every object a PUT, kept as its ETag and LastModified), then, in a new process, a
publish with nothing changed, which lists every object and reads the whole state index.
Each run's peak RSS is printed next to the RSS of the same process before it published (the
interpreter, the imports and, for the second, the bucket itself), so their difference is
what publish held. No network: the seconds are CPU, not S3's latency.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))
sys.path.insert(0, str(Path(__file__).parent))

import state_index

from wellknown_build.manifest import Entry
from wellknown_build.publish import run
from wellknown_build.publish.s3 import Head, Listed
from wellknown_build.publish.state import FOLDER

MODIFIED = "2026-01-01T00:00:00+00:00"  # old enough to be recorded (settled)


class MemoryBucket(state_index.MemoryBucket):
    """make bench-state's in-memory bucket (bookkeeping objects, S3's conditional writes)
    with the rest of what publish needs: documents by host folder, listed by folder."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "bench"
        self.folders_: dict[str, dict[str, tuple[str, int]]] = {}

    def folders(self, prefix: str) -> tuple[dict[str, Listed], list[str]]:
        assert prefix == ""
        return {}, [*sorted(f"{folder}/" for folder in self.folders_), FOLDER]

    def objects(self, prefix: str) -> dict[str, Listed]:
        if prefix.startswith(FOLDER):
            return super().objects(prefix)
        found = self.folders_.get(prefix.split("/", 1)[0], {})
        return {k: Listed(etag, size, MODIFIED) for k, (etag, size) in found.items()}

    def head(self, key: str) -> Head | None:
        raise AssertionError(f"HEAD {key}: the bench's publishes should need none")

    def put(
        self, key: str, body: bytes, entry: Entry, fingerprint: str, acl: Any, prefix: str
    ) -> str:
        etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        self.folders_.setdefault(key.split("/", 1)[0], {})[key] = (etag, len(body))
        return etag


def _rss_mib() -> float:
    """This process's resident memory now (Linux), else its peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_mib()


def _peak_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def one(label: str, out: Path, saved: Path) -> None:
    """One publish in this process; the bucket from `saved` if it exists, saved back after."""
    bucket = MemoryBucket()
    if saved.exists():
        bucket.folders_, bucket.data = pickle.loads(saved.read_bytes())
    objects = sum(len(f) for f in bucket.folders_.values())
    before = _rss_mib()
    run.Bucket = lambda *a, **k: bucket  # type: ignore[assignment, misc]
    start = time.perf_counter()
    result = run.publish(run.Options(bucket="bench", out=out, workers=16))
    seconds = time.perf_counter() - start
    peak = _peak_mib()
    assert result.error is None, result.error
    print(
        f"   {label:<34} {seconds:7.1f} s   peak RSS {peak:7.0f} MiB, before it {before:5.0f} MiB:"
        f" publish held {peak - before:6.0f} MiB   ({objects:,} objects in the bucket before,"
        f" {result.puts:,} written)",
        flush=True,
    )
    saved.write_bytes(pickle.dumps((bucket.folders_, bucket.data)))


def main() -> None:
    if len(sys.argv) == 4:
        one(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
        return
    root = Path(__file__).parent.parent
    instances = int(os.environ.get("BENCH_FLEET_INSTANCES", "100000"))
    out = root / ".bench" / f"out-fleet-{instances}"
    out = Path(os.environ.get("BENCH_PUBLISH_OUT", out))
    if not (out / ".wellknown-build.json").exists():
        from fixtures import fleet_config

        config = fleet_config(root / ".bench" / f"fleet-{instances}", instances)
        print(f"rendering {config} into {out} first")
        subprocess.run([sys.executable, "-m", "wellknown_build", "-q", "render", str(config),
                        "--out", str(out)], check=True)  # fmt: skip
    saved = out.parent / (out.name + ".bucket.pickle")
    saved.unlink(missing_ok=True)
    print(f"== publish to an in-memory bucket: {out}")
    try:
        for label in ("first publish", "publish, nothing changed"):
            subprocess.run([sys.executable, __file__, label, str(out), str(saved)], check=True)
    finally:
        saved.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
