"""arq workers that take jobs the moment they are enqueued.

arq finds jobs by polling its queue. Here the poll delay is zero and each iteration ends by
waiting on an event that the gateway's wake-up publish sets (see `shared.queue.enqueue`), so a
job starts within a Redis round trip of its enqueue; a slow fallback poll covers a missed
message. The two workers of one browser (shared queue, own queue) share its capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.typing import WorkerCoroutine
from arq.worker import Worker, func
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys, queue

logger = logging.getLogger(__name__)

#: Poll anyway this often, in case a wake-up message was missed.
FALLBACK_POLL_S = 0.5
_RESUBSCRIBE_S = 1.0


class SlotGroup:
    """The arq workers of one browser: one capacity, picked under one lock, woken together."""

    def __init__(self, capacity: int, accepting: Callable[[], bool]) -> None:
        self.capacity = capacity
        self._accepting = accepting
        self.lock = asyncio.Lock()
        self.members: list[QueueWorker] = []

    def free_slots(self) -> int:
        """Slots not held by a job some member has claimed (arq counts them as it claims)."""
        if not self._accepting():
            return 0
        return max(0, self.capacity - sum(member.job_counter for member in self.members))

    def wake(self) -> None:
        for member in self.members:
            member.wake()

    async def listen(self, redis: Redis) -> None:
        """Wake every member on each publish to a member's wake channel; runs until cancelled."""
        channels = [keys.wake_channel(member.queue_name) for member in self.members]
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(*channels)
                    # A missed wake-up costs at most one fallback poll, so wake once on (re)subscribe.
                    self.wake()
                    async for _ in pubsub.listen():
                        self.wake()
            except (RedisError, OSError) as exc:
                logger.warning("wake-up subscription lost (%s); subscribing again", exc)
                await asyncio.sleep(_RESUBSCRIBE_S)


class QueueWorker(Worker):
    def __init__(
        self,
        group: SlotGroup,
        function: WorkerCoroutine,
        *,
        queue_name: str,
        redis_settings: RedisSettings,
        job_timeout_s: float,
    ) -> None:
        super().__init__(
            [func(function, name=queue.COMPLETE)],
            queue_name=queue_name,
            redis_settings=redis_settings,
            poll_delay=0,
            handle_signals=False,
            allow_abort_jobs=True,
            job_serializer=queue.serialize,
            job_deserializer=queue.deserialize,
            max_jobs=group.capacity,
            job_timeout=job_timeout_s,
            keep_result=0,
        )
        self._group = group
        self._wake = asyncio.Event()
        group.members.append(self)

    def wake(self) -> None:
        self._wake.set()

    async def _poll_iteration(self) -> None:
        # Cleared first: a wake-up that lands during the iteration makes the next one run at once.
        self._wake.clear()
        async with self._group.lock:
            free = self._group.free_slots()
            self.allow_pick_jobs = free > 0
            # arq stops claiming at max_jobs: this caps the claims to the group's free slots.
            self.max_jobs = self.job_counter + free
            await super()._poll_iteration()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FALLBACK_POLL_S):
                await self._wake.wait()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # Running jobs stay in the queue until they end, and arq spends several round trips on
        # each id it is given: leave out the running ones with one round trip first.
        if len(job_ids) > 1:
            async with self.pool.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.exists(in_progress_key_prefix + job_id.decode())
                running = await pipe.execute()
            job_ids = [job_id for job_id, busy in zip(job_ids, running, strict=True) if not busy]
        await super().start_jobs(job_ids)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._group.wake()  # a slot is free: take the next queued job now

