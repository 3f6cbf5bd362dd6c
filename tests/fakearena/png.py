"""Small real PNG images, a deterministic function of a prompt (pure Python: zlib + struct)."""

from __future__ import annotations

import hashlib
import struct
import zlib

SIZE = 64


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def image_for(prompt: str) -> bytes:
    """A 64×64 RGB PNG: diagonal stripes in two colours taken from the prompt's SHA-256."""
    digest = hashlib.sha256(prompt.encode()).digest()
    colours = (digest[0:3], digest[3:6])
    rows = b"".join(
        b"\x00" + b"".join(colours[((x + y) // 8) % 2] for x in range(SIZE)) for y in range(SIZE)
    )
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )
