"""Client-made ids: the arena wants a fresh UUIDv7 for every session and message."""

from __future__ import annotations

import secrets
import time
import uuid

_MAX_MS = (1 << 48) - 1


def uuid7(now_ms: int | None = None) -> str:
    """An RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, variant 0b10, 74 random bits.

    The arena rejects ids whose timestamp is far from its clock, so `now_ms` defaults to now.
    """
    ms = _now_ms() if now_ms is None else now_ms
    if not 0 <= ms <= _MAX_MS:
        raise ValueError(f"timestamp out of the 48-bit range: {ms}")
    rand_a = secrets.randbits(12)
    rand_b = secrets.randbits(62)
    value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def uuid7_ascending(count: int, now_ms: int | None = None) -> list[str]:
    """`count` UUIDv7s of one millisecond in ascending order.

    Ids made in the same millisecond otherwise sort at random. The site's own ids ascend in
    the order the messages are made (user message, then answers), and message order may be
    read from them, so ours keep that order too.
    """
    ms = _now_ms() if now_ms is None else now_ms
    # Canonical lowercase hex sorts as text exactly as the 128-bit numbers do.
    return sorted(uuid7(ms) for _ in range(count))


def uuid7_time_ms(value: str) -> int:
    """The Unix milliseconds inside a UUIDv7; `ValueError` for anything else."""
    parsed = uuid.UUID(value)
    if parsed.version != 7 or parsed.variant != uuid.RFC_4122:
        raise ValueError(f"not a UUIDv7: {value!r}")
    return parsed.int >> 80


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
