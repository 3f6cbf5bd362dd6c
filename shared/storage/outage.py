"""Riding out a Redis that does not answer for a while (a restart, a failover)."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)

#: Longest one operation waits for Redis to come back before it fails for good.
OUTAGE_MAX_S = 60.0
#: The first wait between tries, doubled each time up to the last: a restart costs little.
RETRY_S = (0.05, 1.0)


class RedisOutage:
    """The waits of one operation while Redis is away: logged once, given up after `max_s`."""

    def __init__(self, what: str, *, max_s: float = OUTAGE_MAX_S) -> None:
        self._what = what
        self._max_s = max_s
        self._since: float | None = None
        self._tries = 0

    async def wait(self, error: BaseException) -> None:
        """Sleep before the next try; raise `error` once the outage has lasted too long."""
        now = asyncio.get_running_loop().time()
        if self._since is None:
            self._since = now
            logger.warning("%s: Redis does not answer (%s); trying again", self._what, error)
        elif now - self._since > self._max_s:
            raise error
        low, high = RETRY_S
        await asyncio.sleep(min(high, low * 2**self._tries))
        self._tries += 1
