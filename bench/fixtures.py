"""Large generated inputs for `make bench`, made once and kept in .bench/."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

VERSION = "1"
PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def big_config(folder: Path, instances: int = 10_000) -> Path:
    """`instances` issuers with 2 keys each, every key in its own file.

    Key A: a P-256 private key (PKCS#8), distinct per instance.
    Key B: alternately an Ed25519 public key (distinct) and an RSA-2048 public key (copies of a
    pool of 64: RSA generation is too slow for 10,000, and each copy is its own file).
    """
    config = folder / "instances.yaml"
    stamp = folder / f".complete-{VERSION}-{instances}"
    if stamp.exists():
        return config
    keys = folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    pool = [
        rsa.generate_private_key(65537, 2048).public_key().public_bytes(PEM, SPKI)
        for _ in range(64)
    ]
    lines = ["defaults:", "  cache_control: public, max-age=300", "instances:"]
    for i in range(instances):
        a = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if i % 2:
            b = pool[i % len(pool)]
        else:
            b = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(PEM, SPKI)
        (keys / f"t{i}-a.pem").write_bytes(a)
        (keys / f"t{i}-b.pem").write_bytes(b)
        host = f"tenant{i % 100}.auth.example.com"
        lines += [
            f"  - id: t{i}",
            f"    issuer: https://{host}/tenants/t{i}",
            "    keys:",
            f"      - path: keys/t{i}-a.pem",
            f"      - path: keys/t{i}-b.pem",
        ]
    config.write_text("\n".join(lines) + "\n")
    stamp.touch()
    return config


def fleet_config(folder: Path, instances: int, per_file: int = 1000) -> Path:
    """A fleet as a control plane writes it: `instances.yaml` includes `tenants/*.yaml`,
    `per_file` instances each; 2 keys per instance from a pool of 60 key files (30 P-256
    private keys, 30 alternately Ed25519 and RSA-2048 public keys), as the issue measured."""
    config = folder / "instances.yaml"
    stamp = folder / f".complete-fleet-{VERSION}-{instances}"
    if stamp.exists():
        return config
    keys = folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for i in range(30):
        a = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if i % 2:
            b = rsa.generate_private_key(65537, 2048).public_key().public_bytes(PEM, SPKI)
        else:
            b = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(PEM, SPKI)
        (keys / f"a{i}.pem").write_bytes(a)
        (keys / f"b{i}.pem").write_bytes(b)
    tenants = folder / "tenants"
    tenants.mkdir(exist_ok=True)
    for start in range(0, instances, per_file):
        lines = []
        for i in range(start, min(start + per_file, instances)):
            host = f"tenant{i % 100}.auth.example.com"
            lines += [
                f"- id: t{i}",
                f"  issuer: https://{host}/tenants/t{i}",
                "  keys:",
                f"    - path: ../keys/a{i % 30}.pem",
                f"      kid: t{i}-a",
                f"    - path: ../keys/b{(i * 7) % 30}.pem",
                f"      kid: t{i}-b",
            ]
        (tenants / f"{start // per_file:05d}.yaml").write_text("\n".join(lines) + "\n")
    config.write_text(
        "defaults:\n  cache_control: public, max-age=300\ninclude:\n  - tenants/*.yaml\n"
    )
    stamp.touch()
    return config
