"""UUIDv7 ids: the arena takes only fresh client-made ones, and mints its own keys the same way."""

from __future__ import annotations

import secrets
import time
import uuid

#: How far (seconds) an id's timestamp may be from the arena's clock before it "seems spoofed".
WINDOW_SECONDS = 3600.0


def uuid7(now: float | None = None) -> str:
    """An RFC 9562 UUIDv7 for `now` (Unix seconds, default the current time)."""
    ms = int((time.time() if now is None else now) * 1000)
    value = ms << 80 | 0x7 << 76 | secrets.randbits(12) << 64 | 0b10 << 62 | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def is_fresh_uuid7(value: object, now: float) -> bool:
    """True for a UUIDv7 string whose timestamp is within an hour of `now`."""
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    if parsed.version != 7 or parsed.variant != uuid.RFC_4122:
        return False
    return abs((parsed.int >> 80) / 1000 - now) <= WINDOW_SECONDS
