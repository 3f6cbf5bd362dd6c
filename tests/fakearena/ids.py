"""Checking UUIDv7 ids as the arena does.

Written apart from `shared.arena.ids` on purpose: the fake is the oracle our id code is tested
against, so it must not share that code's mistakes. Ids the fake mints itself come from there.
"""

from __future__ import annotations

import uuid

#: How far (seconds) an id's timestamp may be from the arena's clock before it "seems spoofed".
WINDOW_SECONDS = 3600.0


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
