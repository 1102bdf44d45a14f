"""The streamed render writes what the all-in-memory render wrote, byte for byte.

The golden digest is the SHA-256 of the manifest that the render before streaming wrote for
the generated 5,000-instance fleet below, at --now 2026-11-30: first from commit d1b6437, then
(when manifest entries gained each JWKS's rotation data) from the last all-in-memory render,
the `status` branch's 3b2db23. The manifest
holds every file's size and SHA-256, so an equal manifest and files that match it are an
identical tree. The fleet crosses file boundaries (five included files, two globs, one
nested folder), mixes key types, trailing-slash issuers, host-root issuers, next keys,
discovery members and RFC 8414 metadata.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from wellknown_build import tree
from wellknown_build.commands.render import check, render
from wellknown_build.manifest import MANIFEST_NAME

DATA = Path(__file__).parent / "data" / "keys"
GOLDEN = Path(__file__).parent / "golden" / "fleet-5000.manifest.sha256"
NOW = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
KEYS = ["p256.pem", "p384.pub.pem", "p521.pub.pem", "rsa2048.pub.pem", "ed448.pub.pem"]


def fleet(folder: Path) -> Path:
    tenants = folder / "tenants"
    (tenants / "nested").mkdir(parents=True, exist_ok=True)
    for part in range(5):
        lines = []
        for i in range(part * 1000, part * 1000 + 1000):
            a, b = KEYS[i % 5], KEYS[(i * 3 + 1) % 5]
            path = "" if i % 11 == 0 else f"/tenants/t{i}"
            host = f"root{i}.example.com" if not path else f"t{i % 37}.example.com"
            lines.append(f"- id: t{i}")
            lines.append(f"  issuer: https://{host}{path}" + ("/" if i % 13 == 0 and path else ""))
            if i % 7 == 0:
                lines.append("  oauth_metadata: true")
            if i % 5 == 0:
                lines.append(f"  discovery: {{scopes_supported: [openid, s{i}]}}")
            lines.append("  keys:")
            lines.append(f"    - path: {DATA / a}")
            if b != a:
                lines.append(f"    - path: {DATA / b}")
                lines.append("      status: next")
        where = tenants / ("nested" if part % 2 else "") / f"{part:02d}.yaml"
        where.write_text("\n".join(lines) + "\n")
    config = folder / "instances.yaml"
    config.write_text(
        "defaults:\n  cache_control: public, max-age=600\ninclude:\n"
        "  - tenants/*.yaml\n  - tenants/nested/*.yaml\n"
    )
    return config


def test_a_5000_instance_fleet_renders_byte_identical_to_the_render_before_streaming(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    result = render(fleet(tmp_path), out, NOW)
    assert result.instances == 5000
    data = (out / MANIFEST_NAME).read_bytes()
    assert hashlib.sha256(data).hexdigest() == GOLDEN.read_text().strip()
    found = tree.read_manifest(out)
    reader = tree.Reader(out)
    for entry in found.entries:
        assert hashlib.sha256(reader.read(entry.path)).hexdigest() == entry.sha256
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".wellknown-build")
    }
    assert on_disk == {e.path for e in found.entries}  # nothing more, nothing less
    assert not (out / tree.STAGING_NAME).exists()
    assert check(tmp_path / "instances.yaml", out, NOW).changes.clean
