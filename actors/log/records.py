"""Log record framing: `[u32 length][u32 crc32(payload)][payload]`, big-endian (pure).

`scan` stops at the first frame that is incomplete (a torn tail), has a zero or absurd length, or
fails its checksum, and says why; everything before it is valid.
"""

from __future__ import annotations

import struct
import zlib

HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024


def encode(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(buf: bytes | memoryview) -> tuple[list[memoryview], int, str | None]:
    """(payloads, end of the last valid frame, reason the scan stopped early or None)."""
    view = memoryview(buf)
    out: list[memoryview] = []
    pos = 0
    size = len(view)
    while pos < size:
        if size - pos < HEADER.size:
            return out, pos, "torn header"
        length, crc = HEADER.unpack_from(view, pos)
        if length == 0 or length > MAX_RECORD_BYTES:
            return out, pos, f"bad length {length}"
        start = pos + HEADER.size
        if size - start < length:
            return out, pos, "torn record"
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            return out, pos, "bad checksum"
        out.append(payload)
        pos = start + length
    return out, pos, None
