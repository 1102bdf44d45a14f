"""Base64url without padding (RFC 7515 §2) and the integer encodings of RFC 7518."""

from __future__ import annotations

import base64


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def uint_minimal(value: int) -> str:
    """Unsigned big-endian, minimal length: no leading zero octet (RFC 7518 §6.3.1)."""
    return b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def uint_fixed(value: int, size: int) -> str:
    """Unsigned big-endian, left-padded to exactly `size` octets (RFC 7518 §6.2.1.2)."""
    return b64url(value.to_bytes(size, "big"))
