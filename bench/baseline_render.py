"""The plain script `make bench` compares render against: PyYAML + jwcrypto, no checks.

What a team writes in an afternoon: load the YAML, turn each PEM into a public JWK with
jwcrypto, write the two documents. No validation, no atomicity, no manifest.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from jwcrypto import jwk


def main(config_path: str, out: str) -> None:
    base = Path(config_path).parent
    config = yaml.safe_load(Path(config_path).read_text())
    instances = list(config.get("instances", []))
    for pattern in config.get("include", []):  # a fleet split over files
        for name in sorted(glob.glob(pattern, root_dir=base)):
            data = yaml.safe_load((base / name).read_text())
            found = data if isinstance(data, list) else [data]
            instances += [dict(i, base=(base / name).parent) for i in found]
    for instance in instances:
        keys = []
        for spec in instance["keys"]:
            folder = instance.get("base", base)
            key = jwk.JWK.from_pem((folder / spec["path"]).read_bytes())
            public = key.export_public(as_dict=True)
            public["kid"] = spec.get("kid") or key.thumbprint()
            public["use"] = "sig"
            keys.append(public)
        issuer = instance["issuer"]
        parts = urlsplit(issuer)
        folder = Path(out, parts.netloc + parts.path.rstrip("/"), ".well-known")
        os.makedirs(folder, exist_ok=True)
        (folder / "jwks.json").write_text(json.dumps({"keys": keys}, indent=2) + "\n")
        discovery = {
            "issuer": issuer,
            "jwks_uri": issuer.rstrip("/") + "/.well-known/jwks.json",
        }
        (folder / "openid-configuration").write_text(json.dumps(discovery, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
