"""Just enough DER (ITU-T X.690) to read which algorithm a key is for, and to write an SPKI.

cryptography loads RSA-PSS keys as plain RSA keys and drops their algorithm identifier, and no
dependency of the project parses ASN.1, so the few structures that carry it (SPKI, PKCS#8,
PBES2 parameters, a certificate's SPKI) are walked here. Strict DER only: one-octet tags,
definite minimal lengths, nothing past the end; anything else is a DERError (a ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
SEQUENCE = 0x30


def context(number: int) -> int:
    """The tag of a constructed [number] (EXPLICIT tagging, as RFC 4055 and RFC 5280 use)."""
    return 0xA0 | number


class DERError(ValueError):
    pass


@dataclass(frozen=True)
class TLV:
    tag: int
    value: bytes  # the contents octets
    encoded: bytes  # tag, length and contents: the element as it was written


def _read(data: bytes, offset: int) -> tuple[TLV, int]:
    """The element that starts at `offset`, and the offset after it."""
    if offset + 2 > len(data):
        raise DERError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-octet tags are not used here")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:  # indefinite (BER), or beyond any key file
            raise DERError("unsupported length")
        if start + count > len(data):
            raise DERError("truncated length")
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80 or data[start] == 0:
            raise DERError("length not in its shortest form")
        start += count
    end = start + length
    if end > len(data):
        raise DERError("truncated contents")
    return TLV(tag, data[start:end], data[offset:end]), end


def parse(data: bytes, tag: int | None = None) -> TLV:
    """`data` as exactly one element (of `tag`, if given)."""
    element, end = _read(data, 0)
    if end != len(data):
        raise DERError("data after the element")
    if tag is not None and element.tag != tag:
        raise DERError(f"expected tag {tag:#04x}, found {element.tag:#04x}")
    return element


def children(element: TLV, tag: int | None = SEQUENCE) -> list[TLV]:
    """The elements a constructed element holds, in order."""
    if tag is not None and element.tag != tag:
        raise DERError(f"expected tag {tag:#04x}, found {element.tag:#04x}")
    if not element.tag & 0x20:
        raise DERError("not a constructed element")
    found = []
    offset = 0
    while offset < len(element.value):
        child, offset = _read(element.value, offset)
        found.append(child)
    return found


def oid(element: TLV) -> str:
    """An OBJECT IDENTIFIER in dotted form."""
    if element.tag != OID or not element.value or element.value[-1] & 0x80:
        raise DERError("not an object identifier")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in element.value:
        if fresh and octet == 0x80:
            raise DERError("object identifier arc not in its shortest form")
        value = value << 7 | octet & 0x7F
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def integer(element: TLV) -> int:
    """A non-negative INTEGER (every one read here is a count or a version)."""
    value = element.value
    if element.tag != INTEGER or not value:
        raise DERError("not an integer")
    if len(value) > 1 and value[0] == 0 and value[1] < 0x80:
        raise DERError("integer not in its shortest form")
    if value[0] & 0x80:
        raise DERError("negative integer")
    return int.from_bytes(value, "big")


def octets(element: TLV) -> bytes:
    if element.tag != OCTET_STRING:
        raise DERError("not an octet string")
    return element.value


def encode(tag: int, contents: bytes) -> bytes:
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + contents
