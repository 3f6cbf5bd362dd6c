"""Where a request stands in the queue: the accounts that could take it, its place, its wait.

A job is taken only by an account whose catalog has its models (`shared.job_queue.TAKES_LUA`,
which the workers' claim runs too), so its place counts only the jobs ahead of it that those
accounts could take. Heartbeats (`FleetView`) say when each account frees; `gateway.answers.waiting`
turns that into an expected wait, the comments a streamed request gets, and the refusals.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from gateway.answers import waiting
from gateway.answers.catalog_view import CatalogView
from gateway.answers.fleet_view import FleetView, describe_unready
from gateway.http import errors
from shared import redis_keys
from shared.events import Event
from shared.job_queue import TAKES_LUA
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.worker_status import WorkerStatus

#: Waiting jobs a place is counted among (one Lua pass, on Redis's time).
_READ_LIMIT = 1000

# Jobs waiting (due, claimed by nobody) in the queue, in its order, that the accounts of the
# given catalogs could take: those before the job, and all of them with the job.
# KEYS: queue. ARGV: now (ms), the job's arq id ('' for a job not queued yet: all are before
# it), read limit, in-progress key prefix, models key format, then the catalogs' id-set keys.
# Returns {before it, all}; {-1, all} when the job is not waiting (taken, or gone).
_PLACE = (
    TAKES_LUA
    + b"""
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local before, all, found = 0, 0, ARGV[2] == ''
for _, arq_id in ipairs(due) do
  if arq_id == ARGV[2] then
    found = true
    all = all + 1
  elseif redis.call('exists', ARGV[4] .. arq_id) == 0 then
    local job = string.match(arq_id, '^(.+):%d+$') or arq_id
    for i = 6, #ARGV do
      if takes(job, ARGV[i], ARGV[5]) then
        all = all + 1
        if not found then before = before + 1 end
        break
      end
    end
  end
end
if not found then return {-1, all} end
return {before, all}
"""
)


@dataclass(frozen=True, slots=True)
class Place:
    #: Jobs before it that the same accounts could take.
    before: int
    #: All such jobs waiting, it included.
    waiting: int


class QueueView:
    def __init__(
        self, redis: Redis, fleet: FleetView, catalog: CatalogView, settings: Settings
    ) -> None:
        self._redis = redis
        self._fleet = fleet
        self._catalog = catalog
        self._max_wait_s = settings.queue_max_wait_seconds
        self._interval_s = settings.account_min_interval_seconds
        self._serving_wait_s = settings.worker_wait_seconds
        self._place = redis.register_script(_PLACE)

    async def admit(self, job: CompletionJob, model: str) -> float:
        """The seconds `job` is expected to wait for an account, once it may be queued.

        Waits up to `LMB_WORKER_WAIT_SECONDS` for an account that has its models to serve; 404
        if no live account has them, 503 saying why when none serves, 429 at once when none
        could take it within `LMB_QUEUE_MAX_WAIT_SECONDS` (Retry-After: when the first frees).
        """
        deadline = time.monotonic() + self._serving_wait_s
        while True:
            statuses = await self._fleet.statuses()
            accounts, digests = self._accounts(statuses, job)
            if not accounts:  # a worker that just came or left: read again before saying so
                statuses = await self._fleet.read()
                await self._catalog.update(statuses)
                accounts, digests = self._accounts(statuses, job)
            if not accounts:
                raise errors.model_not_found(model)
            frees = [a.free_in for a in accounts if a.free_in is not None]
            expected = None
            if frees:
                place = await self.place(_queue_of(job), None, digests)
                expected = waiting.expected_wait(frees, self._interval_s, place.before)
            refused = waiting.refusal(
                model, accounts, max_wait_s=self._max_wait_s, expected_s=expected
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
        accounts, digests = self._accounts(await self._fleet.statuses(), job)
        frees = [a.free_in for a in accounts if a.free_in is not None]
        place = await self.place(queue, arq_id, digests)
        if place.before < 0:
            return None
        if not frees:
            return f"queued {place.before + 1} of {place.waiting}: {waiting.describe(accounts)}"
        wait = waiting.expected_wait(frees, self._interval_s, place.before)
        return waiting.progress(place.before + 1, place.waiting, wait)

    async def refusal(self, job: CompletionJob) -> Event:
        """The error that ends a job no account took within `LMB_QUEUE_MAX_WAIT_SECONDS`."""
        accounts, _ = self._accounts(await self._fleet.statuses(), job)
        refused = waiting.refusal(job.model, accounts, max_wait_s=self._max_wait_s)
        assert refused is not None  # with no wait expected, there is always a reason
        return refused.event()

    async def owner_paced(self, worker: str) -> float | None:
        """Seconds until the account that holds a conversation's thread frees, when it serves
        and is only paced; None when it has room now, or does not serve."""
        for status in await self._fleet.statuses():
            if status.id == worker:
                found = waiting.account(status, time.time())
                return found.free_in if found.why == "paced" else None
        return None

    async def place(self, queue: str, arq_id: str | None, digests: set[str]) -> Place:
        """Where the job `arq_id` (None: one about to be queued) stands in `queue` among the
        jobs the accounts of these catalogs could take."""
        before, all_ = await self._place(
            keys=[queue],
            args=[
                int(time.time() * 1000),
                arq_id or "",
                _READ_LIMIT,
                in_progress_key_prefix,
                redis_keys.job_models("%s"),
                *(redis_keys.catalog_ids(digest) for digest in sorted(digests)),
            ],
        )
        return Place(int(before), int(all_))

    def _accounts(
        self, statuses: list[WorkerStatus], job: CompletionJob
    ) -> tuple[list[waiting.Account], set[str]]:
        """The live accounts that have the job's models, and their catalogs' digests.

        A conversation's next turn waits for the account that holds its thread while that one
        can take it in time; else any account takes it (see `JobHandle`), as a new session.
        """
        digests = self._catalog.holding(job.arena_models)
        now = time.time()
        holders = {s.id: (s, waiting.account(s, now)) for s in statuses if s.catalog in digests}
        owner = holders.get(job.thread.worker) if job.thread is not None else None
        if owner is not None:
            free_in = owner[1].free_in
            if free_in is not None and free_in <= self._max_wait_s:
                holders = {owner[0].id: owner}
        return [found for _, found in holders.values()], {
            status.catalog for status, _ in holders.values() if status.catalog
        }


def _queue_of(job: CompletionJob) -> str:
    """The queue a job is put on: its thread's account's own, else the shared one."""
    if job.thread is None:
        return redis_keys.SHARED_QUEUE
    return redis_keys.worker_queue(job.thread.worker)
