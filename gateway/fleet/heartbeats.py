"""The workers' heartbeats: who is alive, and in what state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.fleet.catalog_view import CatalogView
from shared.fleet.worker_status import WorkerStatus, read_fleet

log = logging.getLogger(__name__)

#: How often the gateway re-reads heartbeats and catalogs in the background: well inside the
#: views' freshness, so that a request finds them fresh and never waits for Redis.
REFRESH_S = 0.5


def state_counts(statuses: Sequence[WorkerStatus]) -> dict[str, int]:
    return dict(Counter(s.state.value for s in statuses))


def describe_unready(statuses: Sequence[WorkerStatus]) -> str:
    """Why no job can be queued, naming the states seen ("no worker is ready: 1 in challenge")."""
    if not statuses:
        return "no worker is running"
    seen = ", ".join(f"{n} in {state}" for state, n in sorted(state_counts(statuses).items()))
    return f"no worker is ready: {seen}"


class FleetView:
    """The live workers' heartbeats as last read, trusted while under `fresh_s` old."""

    def __init__(self, redis: Redis, *, fresh_s: float = 1.0, poll_s: float = 0.2) -> None:
        self._redis = redis
        self._fresh_s = fresh_s
        #: How often one waiting for a change reads again.
        self.poll_s = poll_s
        self._statuses: list[WorkerStatus] = []
        self._read_at = -float("inf")

    async def read(self) -> list[WorkerStatus]:
        """The live workers' heartbeats, read now (and remembered)."""
        statuses = await read_fleet(self._redis)
        self._statuses = statuses
        self._read_at = time.monotonic()
        return statuses

    async def statuses(self) -> list[WorkerStatus]:
        """The live workers' heartbeats: as last read if fresh, else read now."""
        if time.monotonic() - self._read_at < self._fresh_s:
            return self._statuses
        return await self.read()


async def keep_fresh(fleet: FleetView, catalog: CatalogView, every_s: float = REFRESH_S) -> None:
    """Re-read heartbeats and catalogs every `every_s`, one read of the fleet for both; runs
    until cancelled. A failed read only leaves the views to age: requests then read themselves."""
    while True:
        try:
            await catalog.update(await fleet.read())
        except (RedisError, OSError) as exc:
            log.warning("could not refresh the fleet and catalog views: %s", exc)
        await asyncio.sleep(every_s)
