"""The worker's status in Redis: beaten every period and at once on every state change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys
from shared.workers import WorkerStatus
from worker.state import StateMachine

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, redis: Redis, machine: StateMachine, *, period: float) -> None:
        self._redis = redis
        self._machine = machine
        self._period = period
        self._changed = asyncio.Event()
        #: Public names of the models this worker serves (from the catalog it read).
        self.models: list[str] = []
        machine.on_change(self._changed.set)

    def status(self) -> WorkerStatus:
        machine = self._machine
        return WorkerStatus(
            id=machine.worker_id,
            state=machine.state,
            queue=keys.worker_queue(machine.worker_id),
            capacity=machine.capacity,
            busy=machine.busy,
            models=self.models,
            last_error=machine.last_error,
            until=machine.until,
            updated_at=time.time(),
        )

    async def beat(self) -> None:
        # Expires after three missed beats: a worker that died silently drops out on its own.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(
                keys.worker_heartbeat(self._machine.worker_id),
                self.status().dump(),
                px=int(self._period * 3000),
            )
            pipe.sadd(keys.WORKERS, self._machine.worker_id)
            await pipe.execute()

    async def run(self) -> None:
        while True:
            self._changed.clear()
            try:
                await self.beat()
            except RedisError as exc:
                logger.warning("heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._period):
                    await self._changed.wait()

    async def remove(self) -> None:
        await self._redis.delete(keys.worker_heartbeat(self._machine.worker_id))


async def live_workers(redis: Redis) -> list[WorkerStatus]:
    """Every worker whose heartbeat has not expired."""
    ids = sorted(member.decode() for member in await redis.smembers(keys.WORKERS))
    if not ids:
        return []
    beats = await redis.mget([keys.worker_heartbeat(worker_id) for worker_id in ids])
    return [WorkerStatus.load(beat) for beat in beats if beat is not None]
