"""The worker's status in Redis: beaten every period and at once whenever it changes.

Each round also touches the worker's alive file (`alive_file`): an orchestrator's liveness probe
reads its age to tell a worker whose event loop still turns from one that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.fleet.worker_status import WorkerStatus
from shared.storage import redis_keys

logger = logging.getLogger(__name__)


def alive_file(state_dir: Path, worker_id: str) -> Path:
    """Touched at every heartbeat round (the chart's liveness probe reads its age)."""
    return state_dir / "health" / f"{worker_id}.alive"


class Heartbeat:
    def __init__(
        self,
        redis: Redis,
        status: Callable[[], WorkerStatus],
        *,
        period: float,
        alive: Path | None = None,
    ) -> None:
        self._redis = redis
        self._status = status
        self._period = period
        self._alive = alive
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """Beat now rather than at the end of the period."""
        self._changed.set()

    async def beat(self) -> None:
        status = self._status()
        # Expires after three missed beats: a worker that died silently drops out on its own.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(
                redis_keys.worker_heartbeat(status.id), status.dump(), px=int(self._period * 3000)
            )
            pipe.sadd(redis_keys.WORKERS, status.id)
            await pipe.execute()

    async def run(self) -> None:
        while True:
            self._changed.clear()
            try:
                await self.beat()
            except RedisError as exc:
                logger.warning("heartbeat failed: %s", exc)
            if self._alive is not None:
                # Redis down is no reason to restart a worker: the loop turning is what counts.
                self._alive.parent.mkdir(parents=True, exist_ok=True)
                self._alive.touch()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._period):
                    await self._changed.wait()

    async def remove(self, worker_id: str) -> None:
        """A worker that stops cleanly leaves the roster: it is stopped, not gone."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(redis_keys.worker_heartbeat(worker_id))
            pipe.srem(redis_keys.WORKERS, worker_id)
            await pipe.execute()
