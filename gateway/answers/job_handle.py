"""A job seen from the gateway: submit it, read its events in order, cancel it if abandoned."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable

import anyio
from arq.connections import ArqRedis
from redis.asyncio import Redis

from shared import events, job_queue, redis_keys
from shared.events import Event
from shared.jobs import CompletionJob

#: Events that show the client something.
CONTENT = frozenset({"text", "reasoning", "image", "finish"})
#: Events after which a streamed answer is under way: content, or the arena having accepted
#: the request (`session`). Failures before them get a real status; after, they come in the
#: stream, as they do from OpenAI.
_UNDER_WAY = CONTENT | {"session"}
#: Entries taken per XREAD: a fast stream is relayed in batches, not one round trip per token.
_BATCH = 256


class EventReader:
    """A job's Redis Stream from its first entry, in the batches XREAD returns."""

    def __init__(self, redis: Redis, job_id: str) -> None:
        self._redis = redis
        self._key = redis_keys.job_events(job_id)
        self._last_id: bytes | str = "0-0"

    async def read(self, timeout_s: float) -> list[Event]:
        """The events appended since the last read; empty if none came within `timeout_s`."""
        # BLOCK 0 would mean forever: a spent timeout is a plain, non-blocking read.
        block = max(1, round(timeout_s * 1000)) if timeout_s > 0 else None
        reply = await self._redis.xread({self._key: self._last_id}, count=_BATCH, block=block)
        batch = []
        for _key, entries in reply or ():
            for entry_id, fields in entries:
                self._last_id = entry_id
                batch.append(events.decode(fields))
        return batch


class JobHandle:
    """One job: submitted once, its events read once, cancelled unless it finished."""

    def __init__(
        self,
        redis: Redis,
        pool: ArqRedis,
        job: CompletionJob,
        *,
        timeout_s: float,
        events_ttl_s: int,
        observe: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.job = job
        #: Called with every batch of events read, the last one included (usage, metrics).
        self._observe = observe
        self._pool = pool
        self._reader = EventReader(redis, job.id)
        self._timeout_s = timeout_s
        self._events_ttl_s = events_ttl_s
        self._deadline = float("inf")
        self._attempts = 0
        self._worker: str | None = None
        self.finished = False

    async def submit(self) -> None:
        self._deadline = time.monotonic() + self._timeout_s
        # A post or retry goes to the worker whose account holds the arena session.
        thread = self.job.thread
        name = redis_keys.SHARED_QUEUE if thread is None else redis_keys.worker_queue(thread.worker)
        await job_queue.enqueue(self._pool, self.job, name, expires_s=self._timeout_s)

    async def first(self, wait_s: float) -> list[Event]:
        """Events until the answer is under way or failed, or what came within `wait_s`.

        Committing to a 200 as soon as the arena accepted the request lets the client set up
        its side of the stream while the model starts its answer.
        """
        seen: list[Event] = []
        until = time.monotonic() + wait_s
        while not self.finished:
            batch = await self._read(until - time.monotonic())
            seen += batch
            if not batch or any(e["t"] in _UNDER_WAY for e in batch):
                break
        return seen

    async def rest(self, keepalive_s: float) -> AsyncGenerator[list[Event], None]:
        """The remaining events up to the last, in batches.

        An empty batch marks each `keepalive_s` of silence; an `error` event ends the job if it
        outlives its timeout.
        """
        while not self.finished:
            batch = await self._read(min(keepalive_s, self._deadline - time.monotonic()))
            if batch:
                yield batch
            elif time.monotonic() >= self._deadline:
                yield self._seen(
                    [events.error("timeout", f"no answer within {self._timeout_s:g} s")]
                )
                return
            else:
                yield []

    async def abandon(self) -> None:
        """Cancel the job unless it finished; shielded, as it runs when the client is gone."""
        if self.finished:
            return
        self.finished = True
        with anyio.CancelScope(shield=True):
            await job_queue.cancel(
                self._pool, self.job.id, attempts=self._attempts, ttl_s=self._events_ttl_s
            )
            # The worker that runs it, if known; else one on the shared queue, whose workers
            # all read the abort set at every wake-up.
            await job_queue.wake(
                self._pool,
                redis_keys.SHARED_QUEUE
                if self._worker is None
                else redis_keys.worker_queue(self._worker),
            )

    async def _read(self, timeout_s: float) -> list[Event]:
        batch = await self._reader.read(timeout_s)
        for i, event in enumerate(batch):
            if event["t"] == "accepted":
                self._attempts = max(self._attempts, event["attempt"])
                self._worker = event["worker"]
            elif event["t"] in ("done", "error"):
                # An error ends the answer as surely as `done`: nothing after it is shown.
                self.finished = True
                batch = batch[: i + 1]
                break
        return self._seen(batch)

    def _seen(self, batch: list[Event]) -> list[Event]:
        if batch and self._observe is not None:
            self._observe(batch)
        return batch
