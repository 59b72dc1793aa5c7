"""BER-TLV as the LDS uses it (ICAO 9303 part 10, 4.4): multi-byte tags, definite lengths."""

from __future__ import annotations

from collections.abc import Iterator


class TlvError(ValueError):
    """Bytes that are not well-formed BER-TLV."""


def read_header(data: bytes, i: int = 0) -> tuple[int, int, int]:
    """(tag, length, offset of the value) of the TLV starting at i."""
    try:
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                tag = (tag << 8) | data[i]
                i += 1
                if not data[i - 1] & 0x80:
                    break
        n = data[i]
        i += 1
        if n & 0x80:
            count = n & 0x7F
            if count == 0 or count > 3:
                raise TlvError("unsupported length form")
            n = int.from_bytes(data[i : i + count], "big")
            i += count
    except IndexError:
        raise TlvError("truncated TLV header") from None
    return tag, n, i


def items(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (tag, value) pairs one after another in data."""
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):  # padding between objects
            i += 1
            continue
        tag, n, start = read_header(data, i)
        if start + n > len(data):
            raise TlvError("value runs past the end")
        yield tag, data[start : start + n]
        i = start + n


def one(data: bytes, expected: int) -> bytes:
    """The value of the single outer TLV, which must carry `expected` as its tag."""
    tag, n, start = read_header(data)
    if tag != expected:
        raise TlvError(f"tag {tag:X}, expected {expected:X}")
    if start + n > len(data):
        raise TlvError("value runs past the end")
    return data[start : start + n]


def find(data: bytes, wanted: int) -> bytes | None:
    """Depth-first: the first value tagged `wanted` inside constructed objects of data."""
    for tag, value in items(data):
        if tag == wanted:
            return value
        first = tag
        while first > 0xFF:
            first >>= 8
        if first & 0x20:  # constructed
            try:
                found = find(value, wanted)
            except TlvError:
                found = None
            if found is not None:
                return found
    return None


def encode(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n < 0x100:
        length = bytes([0x81, n])
    elif n < 0x10000:
        length = b"\x82" + n.to_bytes(2, "big")
    else:
        length = b"\x83" + n.to_bytes(3, "big")
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big") + length + value
