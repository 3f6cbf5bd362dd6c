"""A job seen from the gateway: submit it, read its events in order, cancel it if abandoned."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import NamedTuple

import anyio
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.answers.stream_reads import StreamReads
from gateway.fleet.queue_view import QueueView
from shared import events
from shared.events import Event
from shared.jobs import CompletionJob
from shared.storage import job_queue, redis_keys
from shared.storage.outage import RedisOutage

log = logging.getLogger(__name__)

#: Events that show the client something.
CONTENT = frozenset({"text", "reasoning", "image", "finish"})
#: Events after which a streamed answer is under way: content, or the arena having accepted
#: the request (`session`). Failures before them get a real status; after, they come in the
#: stream, as they do from OpenAI.
_UNDER_WAY = CONTENT | {"session"}
#: Entries taken per XREAD: a fast stream is relayed in batches, not one round trip per token.
_BATCH = 256


class Entry(NamedTuple):
    """One event of a job's stream, with its entry id (what SSE `id:`s are made of)."""

    id: str
    event: Event


class EventReader:
    """A job's Redis Stream from its first entry, in the batches XREAD returns (read with the
    gateway's other answers: `gateway.answers.stream_reads`).

    A Redis that goes away (a restart) is waited for, and reading goes on after the last entry
    read: nothing is missed, nothing read twice.
    """

    def __init__(self, reads: StreamReads, job_id: str) -> None:
        self._key = redis_keys.job_events(job_id)
        self._stream = reads.open(self._key)
        self._last_id: bytes | str = "0-0"

    async def read(self, timeout_s: float) -> list[Entry]:
        """The entries appended since the last read; empty if none came within `timeout_s`."""
        until = time.monotonic() + timeout_s
        outage = RedisOutage(f"reading {self._key}")
        while True:
            left = until - time.monotonic()
            # BLOCK 0 would mean forever: a spent timeout is a plain, non-blocking read.
            block = max(1, round(left * 1000)) if left > 0 else None
            try:
                reply = await self._stream.xread(
                    {self._key: self._last_id}, count=_BATCH, block=block
                )
                break
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                await outage.wait(exc)
                if time.monotonic() >= until:
                    return []
        batch = []
        for _key, entries in reply or ():
            for entry_id, fields in entries:
                self._last_id = entry_id
                batch.append(Entry(entry_id.decode(), events.decode(fields)))
        return batch

    def close(self) -> None:
        self._stream.close()


class JobHandle:
    """One job: submitted once (or attached to again), its events read in order, cancelled
    unless it finished.

    A job waits in its queue for an account with room for up to `queue_wait_s`
    (`LMB_QUEUE_MAX_WAIT_SECONDS`): once submitted, and again each time a worker puts it back
    before any content (`events.queued`); then it is taken out of the queue, and its stream ends
    with why (`QueueView.refusal`: a 429 while the accounts are paced, a 503 when they cannot
    serve).
    """

    def __init__(
        self,
        redis: Redis,
        pool: ArqRedis,
        job: CompletionJob,
        *,
        reads: StreamReads,
        timeout_s: float,
        events_ttl_s: int,
        owner_wait_s: float = float("inf"),
        observe: Callable[[list[Event]], None] | None = None,
        queue: QueueView | None = None,
        queue_wait_s: float = float("inf"),
        on_taken: Callable[[float], None] | None = None,
    ) -> None:
        self.job = job
        #: Called with every batch of events read, the last one included (usage, metrics).
        self._observe = observe
        self._queue = queue
        self._queue_wait_s = queue_wait_s
        #: Called with the seconds the job waited each time before a worker took it.
        self._on_taken = on_taken
        #: When a job no worker has taken yet leaves the queue.
        self._queue_deadline = float("inf")
        self._waiting_since = 0.0
        #: The attempt (arq id) and queue the job waits in, until a worker takes it.
        self.waiting: tuple[str, str] | None = None
        #: Seconds it was expected to wait there, as it was queued.
        self.expected_wait_s = 0.0
        self._redis = redis
        self._pool = pool
        self._reader = EventReader(reads, job.id)
        self._timeout_s = timeout_s
        self._events_ttl_s = events_ttl_s
        self._owner_wait_s = owner_wait_s
        #: When a continuation no worker has taken yet moves to the shared queue.
        self._owner_deadline = float("inf")
        self._deadline = float("inf")
        self._attempts = 0
        self._worker: str | None = None
        self.finished = False

    async def submit(self) -> None:
        self._deadline = time.monotonic() + self._timeout_s
        # A post or retry goes to the worker whose account holds the arena session.
        thread = self.job.thread
        name = redis_keys.SHARED_QUEUE if thread is None else redis_keys.worker_queue(thread.worker)
        self._wait(self.job.attempt, name)
        if thread is not None:
            self._owner_deadline = self._waiting_since + self._owner_wait_s
        await job_queue.enqueue(self._pool, self.job, name, expires_s=self._timeout_s)

    def attach(self) -> None:
        """Read a job submitted before (by this gateway or another), to its own deadline."""
        left = self.job.created_at + self._timeout_s - time.time()
        self._deadline = time.monotonic() + left

    async def first(self, wait_s: float) -> list[Entry]:
        """Events until the answer is under way or failed, or what came within `wait_s`.

        Committing to a 200 as soon as the arena accepted the request lets the client set up
        its side of the stream while the model starts its answer.
        """
        seen: list[Entry] = []
        until = time.monotonic() + wait_s
        while not self.finished:
            batch = await self._read(until - time.monotonic())
            seen += batch
            if not batch or any(e.event["t"] in _UNDER_WAY for e in batch):
                break
        return seen

    async def rest(self, keepalive_s: float) -> AsyncGenerator[list[Entry], None]:
        """The remaining events up to the last, in batches.

        An empty batch marks each `keepalive_s` of silence. A job that outlives its timeout
        ends with a `timeout` error, written to its stream like any event.
        """
        while not self.finished:
            next_deadline = min(self._deadline, self._queue_deadline, self._owner_deadline)
            batch = await self._read(min(keepalive_s, next_deadline - time.monotonic()))
            yield batch

    async def progress(self) -> str | None:
        """Where a job it submitted stands while no worker has taken it (`queued 2 of 5, about
        40 s`); None once one has."""
        if self.waiting is None or self._queue is None:
            return None
        try:
            return await self._queue.progress(self.job, *self.waiting)
        except (RedisError, OSError) as exc:
            log.warning("job %s: could not read its place in the queue: %s", self.job.id, exc)
            return None

    async def abandon(self) -> None:
        """Cancel the job unless it finished; shielded, as it runs when the client is gone."""
        self._reader.close()
        if self.finished:
            return
        self.finished = True
        with anyio.CancelScope(shield=True):
            await self._cancel()

    async def _cancel(self) -> None:
        try:
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
        except (RedisError, OSError) as exc:
            log.warning("job %s: could not cancel it: %s", self.job.id, exc)

    async def _read(self, timeout_s: float) -> list[Entry]:
        batch = await self._reader.read(timeout_s)
        for i, (_, event) in enumerate(batch):
            if event["t"] == "accepted":
                self._attempts = max(self._attempts, event["attempt"])
                self._worker = event["worker"]
                self._taken()
            elif event["t"] == "queued" and event["attempt"] > self._attempts:
                # Put back before any content (not by this handle): it waits again, from now.
                self._worker = None
                self._wait(event["attempt"], event["queue"])
            elif event["t"] in ("done", "error"):
                # An error ends the answer as surely as `done`: nothing after it is shown.
                self.finished = True
                batch = batch[: i + 1]
                break
        if not self.finished:
            now = time.monotonic()
            if now >= self._deadline:
                await self._time_out()
            elif now >= self._queue_deadline:
                await self._stop_waiting()
            elif now >= self._owner_deadline:
                await self._leave_owner()
        if batch and self._observe is not None:
            self._observe([entry.event for entry in batch])
        return batch

    def _wait(self, attempt: int, queue: str, *, anew: bool = True) -> None:
        """The job's `attempt` waits in `queue`: for `queue_wait_s` from now if `anew`, else
        (moved while it waited) to the same deadline."""
        self._attempts = max(self._attempts, attempt)
        self.waiting = (redis_keys.arq_job_id(self.job.id, attempt), queue)
        if anew:
            self._waiting_since = time.monotonic()
            self._queue_deadline = self._waiting_since + self._queue_wait_s

    def _taken(self) -> None:
        """A worker took the job: it waits no longer."""
        self._owner_deadline = self._queue_deadline = float("inf")
        if self.waiting is not None:
            self.waiting = None
            if self._on_taken is not None:
                self._on_taken(time.monotonic() - self._waiting_since)

    async def _end(self, event: Event) -> None:
        """End the job's stream with `event`; the next read relays it (on any gateway)."""
        key = redis_keys.job_events(self.job.id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, events.encode(event))
            pipe.xadd(key, events.encode(events.done()))
            pipe.expire(key, self._events_ttl_s)
            pipe.expire(redis_keys.job_request(self.job.id), self._events_ttl_s)
            await pipe.execute()

    async def _time_out(self) -> None:
        self._deadline = float("inf")
        with contextlib.suppress(RedisError, OSError):  # the next read tries again
            await self._end(events.error("timeout", f"no answer within {self._timeout_s:g} s"))
            await self._cancel()
            return
        self._deadline = time.monotonic()

    async def _stop_waiting(self) -> None:
        """No account took the job in time: out of the queue, and its stream says why."""
        self._queue_deadline = float("inf")
        if self.waiting is None or self._queue is None:
            return
        arq_id, queue = self.waiting
        with contextlib.suppress(RedisError, OSError):  # the next read tries again
            if await job_queue.withdraw(self._pool, arq_id, queue):  # else taken just now
                await self._end(await self._queue.refusal(self.job, queue))
                log.info("job %s: no account took it in time", self.job.id)
            return
        self._queue_deadline = time.monotonic()

    async def _leave_owner(self) -> None:
        """A continuation its worker has not taken in time: any worker starts it over, unless
        that worker's account is only paced and frees in time (the thread stays with it)."""
        self._owner_deadline = float("inf")
        thread = self.job.thread
        assert thread is not None
        attempt = redis_keys.arq_job_id(self.job.id, self.job.attempt)
        with contextlib.suppress(RedisError, OSError):
            if self._queue is not None:
                paced = await self._queue.owner_paced(self.job)
                if paced is not None and paced < self._queue_deadline - time.monotonic():
                    self._owner_deadline = time.monotonic() + paced + self._owner_wait_s
                    return
            if await job_queue.requeue(
                self._pool,
                self.job,
                timeout_s=self._timeout_s,
                retiring=(attempt, redis_keys.worker_queue(thread.worker)),
                only_if_waiting=True,
            ):
                self._wait(self.job.attempt + 1, redis_keys.SHARED_QUEUE, anew=False)
                log.info(
                    "job %s: its conversation's worker is busy; any worker takes it", self.job.id
                )
