"""Where a request stands in the queue: the accounts that could take it, its place, its wait.

A job is taken only by an account whose catalog has its models (`shared.storage.job_queue.TAKES_LUA`,
which the workers' claim runs too), so its place counts only the jobs ahead of it that those
accounts could take. When each account frees is read from the same pacing record the workers'
claim reads (`shared.fleet.account_pacing`), in the same trip as the place, and from its worker's
heartbeat (cooling, waiting for a person); `gateway.fleet.waiting` turns that into an
expected wait, the comments a streamed request gets, and the refusals.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from gateway.fleet import waiting
from gateway.fleet.catalog_view import CatalogView
from gateway.fleet.heartbeats import FleetView, describe_unready
from gateway.http import errors
from shared.events import Event
from shared.fleet.account_pacing import PACING_LUA, Pace, paced_as
from shared.fleet.worker_status import WorkerStatus
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import redis_keys
from shared.storage.job_queue import TAKES_LUA

#: Waiting jobs a place is counted among (one Lua pass, on Redis's time).
_READ_LIMIT = 1000

# Jobs waiting (due, claimed by nobody) in the queue, in its order, that the accounts of the
# given catalogs could take: those before the job, and all of them with the job; then the ms
# until each of the given accounts may make its next call (its pacing record).
# KEYS: queue, then the accounts' calls. ARGV: now (ms), the job's arq id ('' for a job not
# queued yet: all are before it), read limit, in-progress key prefix, models key format, the
# pace's bounds (min interval ms, per 15 minutes, per day), then the catalogs' id-set keys.
# Returns {before it, all, ms per account…}; before it is -1 when the job is not waiting
# (taken, or gone).
_LOOK = (
    TAKES_LUA
    + PACING_LUA.encode()
    + b"""
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local before, all, found = 0, 0, false
for _, arq_id in ipairs(due) do
  if arq_id == ARGV[2] then
    found = true
    all = all + 1
  elseif redis.call('exists', ARGV[4] .. arq_id) == 0 then
    local job = string.match(arq_id, '^(.+):%d+$') or arq_id
    for i = 9, #ARGV do
      if takes(job, ARGV[i], ARGV[5]) then
        all = all + 1
        if not found then before = before + 1 end
        break
      end
    end
  end
end
local looked = {(found or ARGV[2] == '') and before or -1, all}
local now = clock()
for i = 2, #KEYS do
  looked[#looked + 1] = pacing(KEYS[i], now, tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
end
return looked
"""
)


@dataclass(frozen=True, slots=True)
class Place:
    #: Jobs before it that the same accounts could take.
    before: int
    #: All such jobs waiting, it included.
    waiting: int


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a job can expect: the accounts that may take it, and its place among their jobs."""

    accounts: list[waiting.Account]
    place: Place

    @property
    def free_in(self) -> list[float]:
        """When each account that will take jobs frees."""
        return [a.free_in for a in self.accounts if a.free_in is not None]


class QueueView:
    def __init__(
        self, redis: Redis, fleet: FleetView, catalog: CatalogView, settings: Settings
    ) -> None:
        self._fleet = fleet
        self._catalog = catalog
        self._pace = Pace.of(settings)
        self._max_wait_s = settings.queue_max_wait_seconds
        self._serving_wait_s = settings.worker_wait_seconds
        self._look_script = redis.register_script(_LOOK)

    async def admit(self, job: CompletionJob, model: str) -> float:
        """The seconds `job` is expected to wait for an account, once it may be queued.

        Waits up to `LMB_WORKER_WAIT_SECONDS` for an account that has its models to serve; 404
        if no live account has them, 503 saying why when none serves, 429 at once when none
        could take it within `LMB_QUEUE_MAX_WAIT_SECONDS` (Retry-After: when the first frees).
        """
        deadline = time.monotonic() + self._serving_wait_s
        while True:
            # Read now, not as last read: a request admitted on an account that stopped serving
            # a moment ago would wait for nothing.
            statuses = await self._fleet.read()
            holders = self._holders(statuses, job)
            if not holders:  # a worker that just came: its catalog may be new
                await self._catalog.update(statuses)
                holders = self._holders(statuses, job)
            if not holders:
                raise errors.model_not_found(model)
            outlook = await self._look(job, holders, _queue_of(job), None)
            expected = self._expected(outlook)
            refused = waiting.refusal(
                model, outlook.accounts, max_wait_s=self._max_wait_s, expected_s=expected
            )
            if refused is None and expected is not None:
                return expected
            if refused is not None and (refused.status == 429 or time.monotonic() >= deadline):
                if not any(s.serving for s in statuses):  # the whole fleet: as it always said
                    raise errors.unavailable(describe_unready(statuses), code="no_worker")
                raise refused.error()
            await asyncio.sleep(self._fleet.poll_s)

    async def progress(self, job: CompletionJob, arq_id: str, queue: str) -> str | None:
        """`queued 2 of 5, about 40 s` for a job waiting in `queue`; None once it is taken."""
        holders = self._holders(await self._fleet.statuses(), job)
        outlook = await self._look(job, holders, queue, arq_id)
        place = outlook.place
        if place.before < 0:
            return None
        expected = self._expected(outlook)
        if expected is None:
            return f"queued {place.before + 1} of {place.waiting}: " + waiting.describe(
                outlook.accounts
            )
        return waiting.progress(place.before + 1, place.waiting, expected)

    async def refusal(self, job: CompletionJob, queue: str) -> Event:
        """The error that ends a job no account took within `LMB_QUEUE_MAX_WAIT_SECONDS` in
        `queue`."""
        holders = self._holders(await self._fleet.statuses(), job)
        outlook = await self._look(job, holders, queue, None)
        refused = waiting.refusal(job.model, outlook.accounts, max_wait_s=self._max_wait_s)
        assert refused is not None  # with no wait expected, there is always a reason
        return refused.event()

    async def owner_paced(self, job: CompletionJob) -> float | None:
        """Seconds until the account that holds a conversation's thread frees, when it serves
        and is only paced; None when it has room now, or does not serve."""
        assert job.thread is not None
        owner = [s for s in await self._fleet.statuses() if s.id == job.thread.worker]
        for found in (await self._look(job, owner, _queue_of(job), None)).accounts:
            return found.free_in if found.why == "paced" else None
        return None

    def _expected(self, outlook: Outlook) -> float | None:
        """Seconds until the job is taken, if some account will take jobs."""
        frees = outlook.free_in
        if not frees:
            return None
        return waiting.expected_wait(frees, self._pace.min_interval_s, outlook.place.before)

    def _holders(self, statuses: Sequence[WorkerStatus], job: CompletionJob) -> list[WorkerStatus]:
        """The live workers whose accounts have the job's models."""
        digests = self._catalog.holding(job.arena_models)
        return [s for s in statuses if s.catalog in digests]

    async def _look(
        self,
        job: CompletionJob,
        holders: Sequence[WorkerStatus],
        queue: str,
        arq_id: str | None,
    ) -> Outlook:
        """Where the job `arq_id` (None: one about to be queued) stands in `queue` among the
        jobs `holders` could take, and when each of them frees.

        A conversation's next turn waits for the account that holds its thread while that one
        can take it in time; else any account takes it (see `JobHandle`), as a new session. On
        the shared queue (moved there), any account takes it.
        """
        paced = self._pace.bounded
        looked = await self._look_script(
            keys=[
                queue,
                *(redis_keys.account_calls(paced_as(s.account, s.id)) for s in holders if paced),
            ],
            args=[
                int(time.time() * 1000),
                arq_id or "",
                _READ_LIMIT,
                in_progress_key_prefix,
                redis_keys.job_models("%s"),
                *self._pace.args(),
                *(
                    redis_keys.catalog_ids(d)
                    for d in sorted({s.catalog for s in holders if s.catalog})
                ),
            ],
        )
        before, all_, *waits = (int(n) for n in looked)
        now = time.time()
        paced_s = [wait_ms / 1000 for wait_ms in waits] or [0.0] * len(holders)
        accounts = [
            waiting.account(status, now, paced_s=wait_s)
            for status, wait_s in zip(holders, paced_s, strict=True)
        ]
        thread = job.thread if queue == _queue_of(job) else None
        owner = next((a for a in accounts if thread and a.worker == thread.worker), None)
        if owner is not None and owner.free_in is not None and owner.free_in <= self._max_wait_s:
            accounts = [owner]
        return Outlook(accounts, Place(before, all_))


def _queue_of(job: CompletionJob) -> str:
    """The queue a job is put on: its thread's account's own, else the shared one."""
    if job.thread is None:
        return redis_keys.SHARED_QUEUE
    return redis_keys.worker_queue(job.thread.worker)
