"""One completion job: the arena request run in the page, its answer relayed as events.

Events go to the job's Redis Stream (`shared.keys.job_events`), each network chunk's worth in
one pipeline. Every job ends with `done` unless it was handed to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from shared import events, keys, queue
from shared.arena import payloads
from shared.arena.errors import (
    ArenaError,
    Challenge,
    RateLimited,
    RecaptchaRejected,
    classify,
)
from shared.arena.ids import uuid7
from shared.arena.stream import LineParser, Part, to_events
from shared.events import Event
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.workers import WorkerState, WorkerStatus
from worker.heartbeat import live_workers
from worker.page import ArenaPage, FetchFailed, PageFetch
from worker.state import StateMachine
from worker.tokens import TokenPool

logger = logging.getLogger(__name__)

#: Events that carry answer content: once one is out, the job cannot be started over.
CONTENT = frozenset({"text", "reasoning", "citation", "image", "finish"})
#: Events after which an answer is over.
ENDINGS = frozenset({"finish", "error"})
#: When the arena gives no retry-after for a 429.
DEFAULT_RATE_LIMIT_S = 60.0
_STOP_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class RequestIds:
    """Ids of one attempt; the arena refuses ids it has seen, so every attempt gets new ones."""

    session: str
    user_message: str
    model_a_message: str
    model_b_message: str | None

    @classmethod
    def fresh(cls, job: CompletionJob) -> RequestIds:
        return cls(uuid7(), uuid7(), uuid7(), uuid7() if job.model_b_id else None)


def build_request(job: CompletionJob, ids: RequestIds, token: str) -> payloads.ArenaRequest:
    return payloads.create_evaluation(
        session_id=ids.session,
        model_a_id=job.model_id,
        user_message_id=ids.user_message,
        model_a_message_id=ids.model_a_message,
        content=job.prompt,
        modality=job.modality,
        token=token,
        mode=job.mode,
        model_b_id=job.model_b_id,
        model_b_message_id=ids.model_b_message,
    )


def events_of(parts: Iterable[Part]) -> list[Event]:
    return [event for part in parts for event in to_events(part)]


def pick_peer(statuses: Iterable[WorkerStatus], *, excluded: Iterable[str]) -> WorkerStatus | None:
    """Another worker to hand a job to: serving, not excluded, the least loaded first."""
    skip = set(excluded)
    candidates = [s for s in statuses if s.serving and s.id not in skip]
    return min(
        candidates,
        key=lambda s: (s.state is not WorkerState.READY, s.busy / max(s.capacity, 1), s.id),
        default=None,
    )


class JobStream:
    """The job's event stream, as this worker writes it, in order."""

    def __init__(self, redis: ArqRedis, job_id: str, ttl_s: int) -> None:
        self._redis = redis
        self._key = keys.job_events(job_id)
        self._ttl_s = ttl_s
        self._writing: asyncio.Task[None] | None = None

    def post(self, batch: Sequence[Event]) -> None:
        """Write `batch` without waiting; later writes wait for it, so order is kept."""
        self._writing = asyncio.create_task(self._write_after(self._writing, batch))

    async def add(self, batch: Sequence[Event]) -> None:
        await self.flush()
        await self._write(batch)

    async def close(self, *last: Event) -> None:
        """Append `last` and `done`, and let the stream expire once readers had their time."""
        await self.flush()
        await self._write((*last, events.done()), expire=True)

    async def past(self) -> list[Event]:
        await self.flush()
        return [events.decode(fields) for _, fields in await self._redis.xrange(self._key)]

    async def flush(self) -> None:
        """Wait for a write started with `post`."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write_after(self, previous: asyncio.Task[None] | None, batch: Sequence[Event]) -> None:
        if previous is not None:
            await previous
        await self._write(batch)

    async def _write(self, batch: Sequence[Event], *, expire: bool = False) -> None:
        if len(batch) == 1 and not expire:  # most chunks: a plain command costs less than a pipeline
            await self._redis.xadd(self._key, events.encode(batch[0]))
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(self._key, events.encode(event))
            if expire:
                pipe.expire(self._key, self._ttl_s)
            await pipe.execute()


class Completion:
    """The arq function `shared.queue.COMPLETE`, bound to this worker's page."""

    def __init__(
        self,
        *,
        worker_id: str,
        settings: Settings,
        redis: ArqRedis,
        page: Callable[[], ArenaPage],
        tokens: Callable[[], TokenPool],
        machine: StateMachine,
        on_challenge: Callable[[], None],
    ) -> None:
        self._id = worker_id
        self._settings = settings
        self._redis = redis
        self._page = page
        self._tokens = tokens
        self._machine = machine
        self._on_challenge = on_challenge

    async def run(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        job = CompletionJob.model_validate(payload)
        stream = JobStream(self._redis, job.id, self._settings.events_ttl_seconds)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.job_cancel(job.id))
            pipe.xrange(keys.job_events(job.id))
            cancelled, entries = await pipe.execute()
        if cancelled:
            await stream.close(events.error("cancelled", "the request was cancelled before it started"))
            return
        past = {events.decode(fields)["t"] for _, fields in entries}
        if "done" in past:
            return
        if past & CONTENT:
            # A worker died mid-answer and arq handed the job on: never stream an answer twice.
            await stream.close(events.error("worker_lost", "the worker serving this request stopped"))
            return

        # Written while the request starts: the answer cannot overtake it (JobStream keeps order).
        stream.post([events.accepted(self._id, job.attempt)])
        try:
            async with asyncio.timeout(self._settings.job_timeout_seconds):
                with self._machine.slot():
                    last = await self._serve(job, stream)
        except TimeoutError:
            last = [events.error("timeout", "the answer took longer than the job timeout")]
        except asyncio.CancelledError:
            try:
                await asyncio.wait_for(self._cancelled(job, stream), _STOP_WAIT_S)
            except Exception as exc:
                logger.warning("job %s: could not record its cancellation: %s", job.id, exc)
            raise
        except Exception as exc:  # the browser or Redis failed under us: the client still gets an end
            logger.exception("job %s failed", job.id)
            last = [events.error("internal", f"the worker failed: {type(exc).__name__}: {exc}")]
        if last is None:
            await stream.flush()  # handed to another worker, which writes the rest
        else:
            await stream.close(*last)

    async def _serve(self, job: CompletionJob, stream: JobStream) -> list[Event] | None:
        """Run the request; returns the events that end the stream, or None once handed off."""
        if job.images:
            return [events.error("bad_request", "image input is not supported by this worker yet")]
        page, tokens = self._page(), self._tokens()
        outcome = await self._attempt(page, job, await tokens.take(), stream)
        if isinstance(outcome, RecaptchaRejected):
            logger.info("job %s: reCAPTCHA token refused; retrying once with a new one", job.id)
            outcome = await self._attempt(page, job, await tokens.mint(), stream)
        if isinstance(outcome, ArenaError):
            return await self._failed(job, outcome)
        return outcome

    async def _attempt(
        self, page: ArenaPage, job: CompletionJob, token: str, stream: JobStream
    ) -> list[Event] | ArenaError:
        """One request with fresh ids: the events that end it, or why the arena refused it."""
        ids = RequestIds.fresh(job)
        try:
            async with page.fetch(build_request(job, ids, token)) as fetch:
                head = await fetch.head()
                if head.status != 200:
                    return classify(head.status, head.headers, await fetch.text())
                return await self._relay(fetch, stream)
        except FetchFailed as exc:
            return [events.error("upstream", f"the request to the arena failed: {exc}")]
        except asyncio.CancelledError:
            await self._stop(page, ids)
            raise

    async def _relay(self, fetch: PageFetch, stream: JobStream) -> list[Event]:
        parser = LineParser()
        ended = False
        try:
            async for text in fetch.chunks():
                batch = events_of(parser.feed(text))
                if batch:
                    ended = ended or any(event["t"] in ENDINGS for event in batch)
                    await stream.add(batch)
        except FetchFailed as exc:
            return [*events_of(parser.close()), events.error("upstream", f"the arena stream broke off: {exc}")]
        tail = events_of(parser.close())
        if not (ended or any(event["t"] in ENDINGS for event in tail)):
            tail.append(events.error("upstream", "the arena ended the answer without finishing it"))
        return tail

    async def _failed(self, job: CompletionJob, error: ArenaError) -> list[Event] | None:
        logger.info("job %s: the arena refused it: %s %s", job.id, error.kind, error.status)
        self._machine.last_error = f"{error.kind}: {error.message}"
        if isinstance(error, RateLimited):
            if await self._hand_off(job, error):
                return None
        elif isinstance(error, Challenge):
            self._on_challenge()
        return [error.to_event()]

    async def _hand_off(self, job: CompletionJob, error: RateLimited) -> bool:
        """Rest until the limit is over; pass the job to a worker that can serve it now, if any."""
        delay = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_S
        until = time.time() + delay
        self._machine.rate_limited(until, reason=f"the arena answered 429 (retry after {delay:.0f}s)")
        asyncio.get_running_loop().call_later(delay, lambda: self._machine.lift_rate_limit(time.time()))
        peer = pick_peer(await live_workers(self._redis), excluded=[self._id, *job.excluded_workers])
        if peer is None:
            return False
        moved = job.model_copy(
            update={"attempt": job.attempt + 1, "excluded_workers": [*job.excluded_workers, self._id]}
        )
        await queue.enqueue(
            self._redis, moved, keys.worker_queue(peer.id), expires_s=self._settings.worker_wait_seconds
        )
        logger.info("job %s: rate limited here; handed to %s", job.id, peer.id)
        return True

    async def _stop(self, page: ArenaPage, ids: RequestIds) -> None:
        """Tell the arena to stop generating, so the account's slot frees at once."""
        request = payloads.stop(session_id=ids.session, model_message_id=ids.model_a_message)
        try:
            status, _ = await asyncio.wait_for(page.call(request), _STOP_WAIT_S)
        except Exception as exc:
            logger.warning("could not stop the answer in the arena: %s", exc)
        else:
            logger.info("stopped the answer in the arena (%s)", status)

    async def _cancelled(self, job: CompletionJob, stream: JobStream) -> None:
        if await self._redis.exists(keys.job_cancel(job.id)):
            await stream.close(events.error("cancelled", "the client went away"))
            return
        # The worker is shutting down. Before any content the job stays queued for another
        # worker (arq runs it again); after some, it cannot be resumed.
        if {event["t"] for event in await stream.past()} & CONTENT:
            await stream.close(events.error("worker_lost", "the worker serving this request stopped"))
