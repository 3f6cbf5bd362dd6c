"""arq workers that take jobs the moment they are enqueued.

arq finds jobs by polling its job_queue. Here each iteration ends by waiting on an event that a
wake-up token sets: every enqueue pushes one to its queue's list (see `shared.storage.job_queue.enqueue`),
and each browser's listener pops them, so a job starts within a Redis round trip of its enqueue.
One token wakes one worker, so a job does not wake the whole fleet; a slow fallback poll covers
a lost token. The two workers of one browser (shared queue, own queue) share its capacity.

The claim is arq's, done in one round trip: arq reads the queue, then spends four more round
trips on each job id (WATCH its in-progress key, EXISTS, ZSCORE, MULTI/PSETEX) and one on its
abort set; here one Lua script does all of it, atomically, with the same keys and timeouts.
Unlike arq's, it moves a claimed job's score to when its claim runs out, so that the jobs running
never fill the window of due jobs a claim reads (arq reads the first 100, running or not), and
records the job among this browser's running ones (`redis_keys.worker_jobs`), where the fleet
looks for it if this worker dies (`shared.fleet.recovery`).

It claims only what the browser's account can send now: jobs whose models its catalog has, and
nothing while the account's pacing has no room (`worker.account_gate`); the listener then waits
for the moment the account frees, not polling in between.

arq's internals overridden here (`_poll_iteration`, `run_job`, `sem`, `job_counter`, `tasks`,
`job_tasks`, `aborting_tasks`, `_release_sem_dec_counter_on_complete`) are those of the arq
version pinned in pyproject.toml; tests/unit/test_arq_internals.py fails when they change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, cast

from arq.connections import ArqRedis
from arq.constants import (
    abort_job_max_age,
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
)
from arq.typing import WorkerCoroutine
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from redis.exceptions import RedisError

from shared.fleet.account_pacing import PACING_LUA
from shared.storage import job_queue, redis_keys
from shared.storage.job_queue import TAKES_LUA
from shared.storage.outage import RedisOutage
from worker.account_gate import AccountGate

logger = logging.getLogger(__name__)

#: Poll anyway this often, in case a wake-up token was lost. Not more often: each poll is a
#: claim (and the listener's wait a round trip) for every queue of every idle browser.
FALLBACK_POLL_S = 2.0
#: An abort request older than arq's abort age (60, meant as seconds: its scores are in ms)
#: has been seen by every worker; arq's own trim never removes it.
ABORT_MAX_AGE_MS = abort_job_max_age * 1000
#: With no slot free, the shared queue's tokens are left to other browsers; this often the
#: listener looks again whether one has freed.
_FULL_RECHECK_S = 0.1
#: Not serving (waiting for a person, cooling down), no slot frees until the state changes, and
#: the change wakes the members themselves: the listener looks again only this often.
_PAUSED_RECHECK_S = 1.0
#: Paced, the listener looks again just after the account may call.
_PACED_MARGIN_S = 0.01
_RELISTEN_S = 1.0

# Due jobs (score up to now) that no worker runs yet and this browser's account may take (its
# catalog has their models: `takes`), in queue order, up to ARGV[2] of them, each marked in
# progress as it is taken, its score moved to when that mark runs out (so a claim never reads
# running jobs, and arq's recovery of a job whose mark expired still works), recorded in this
# browser's running jobs, with whether it is clear: neither a cancel mark nor events of its own
# (the job id is the arq id less its `:attempt`, see redis_keys.arq_job_id). A cancelled job is
# taken whatever its models, to be ended. Nothing is taken while the account's pacing has no
# room (`pacing`, read on Redis's clock). Then the abort set, read, and trimmed of requests for
# attempts arq no longer knows (they ended) and of requests older than arq's abort age. Keys
# are built here from the ids read: fine on a single Redis, as arq requires.
# KEYS: queue, abort set, running jobs, the account's calls. ARGV: now (ms), slots, read limit,
# in-progress key prefix, in-progress timeout (ms), abort trim score, cancel key format, events
# key format, job key prefix, models key format, the catalog's id set, paced ('1' or '0'), the
# pace's bounds (min interval ms, per 15 minutes, per day).
# Returns {claimed (arq id, score, clear)…, aborted, ms until the account may call}.
_CLAIM = (
    TAKES_LUA
    + PACING_LUA.encode()
    + b"""
local claimed = {}
local slots = tonumber(ARGV[2])
local wait = 0
if ARGV[12] == '1' then
  wait = pacing(KEYS[4], clock(), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]))
  if wait > 0 then slots = 0 end
end
if slots > 0 then
  local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
  for i = 1, #due, 2 do
    local running = ARGV[4] .. due[i]
    local job = string.match(due[i], '^(.+):%d+$') or due[i]
    local cancelled = redis.call('exists', string.format(ARGV[7], job)) == 1
    if redis.call('exists', running) == 0 and (cancelled or takes(job, ARGV[11], ARGV[10])) then
      redis.call('psetex', running, ARGV[5], '1')
      redis.call('zadd', KEYS[1], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[5]), due[i])
      redis.call('hset', KEYS[3], due[i], KEYS[1])
      local marked = cancelled or redis.call('exists', string.format(ARGV[8], job)) == 1
      claimed[#claimed + 1] = due[i]
      claimed[#claimed + 1] = due[i + 1]
      claimed[#claimed + 1] = marked and 0 or 1
      if #claimed == 3 * slots then break end
    end
  end
end
local aborted = {}
for _, requested in ipairs(redis.call('zrange', KEYS[2], 0, -1)) do
  if redis.call('exists', ARGV[9] .. requested) == 1 then
    aborted[#aborted + 1] = requested
  else
    redis.call('zrem', KEYS[2], requested)  -- an attempt that ended: nothing left to abort
  end
end
redis.call('zremrangebyscore', KEYS[2], '-inf', ARGV[6])
return {claimed, aborted, wait}
"""
)
_CLEAR = "clear"


def clear(ctx: dict[str, Any]) -> bool:
    """Whether the claim found this job clear (not cancelled, no events yet): then it has
    nothing to check before it starts. Asked once per job, in the job function."""
    cleared: set[str] = ctx.get(_CLEAR, set())
    job_id = ctx.get("job_id")
    if job_id not in cleared:
        return False
    cleared.discard(job_id)
    return True


class SlotGroup:
    """The arq workers of one browser: one capacity, claimed from under one lock.

    It claims only while its account can take a job (`gate`: its standing serves, its pacing
    has room; paced, one job at a time), and only jobs whose models its catalog has (`catalog`:
    the key of its catalog's id set, `redis_keys.catalog_ids`; '' takes any).
    """

    def __init__(
        self,
        worker_id: str,
        capacity: int,
        gate: AccountGate | None = None,
        catalog: Callable[[], str] = lambda: "",
    ) -> None:
        self.worker_id = worker_id
        self.capacity = capacity
        self.gate = gate or AccountGate(None, lambda: worker_id)
        self.catalog = catalog
        self.lock = asyncio.Lock()
        #: Wakes the members the moment the account may call again.
        self._opening: asyncio.TimerHandle | None = None
        self.members: list[QueueWorker] = []
        #: arq ids of claimed jobs the claim found clear (see `clear`).
        self.cleared: set[str] = set()

    @property
    def running(self) -> int:
        """Jobs the members have claimed and not yet finished."""
        return sum(member.job_counter for member in self.members)

    def free_slots(self) -> int:
        """Slots not held by a job some member has claimed (arq counts them as it claims), as
        many as the account can take jobs for now."""
        return self.gate.slots(max(0, self.capacity - self.running))

    def wake(self) -> None:
        for member in self.members:
            member.wake()

    async def listen(self, redis: ArqRedis) -> None:
        """Wake the member whose queue a token was pushed for; runs until cancelled.

        The shared queue's tokens are popped only with a slot free, so that they go to a
        browser that can take the job. The own queue's always are: its aborts come there.
        """
        by_list = {
            redis_keys.wake_list(member.queue_name).encode(): member for member in self.members
        }
        # Whatever was queued while nobody listened.
        self.wake()
        while True:
            free = self.free_slots() > 0
            lists = [
                name
                for name, m in by_list.items()
                if free or m.queue_name != redis_keys.SHARED_QUEUE
            ]
            if not free and (paced := self.gate.left()) > 0:
                self._wake_in(paced)
            try:
                # Redis takes a fractional timeout; redis-py's types say whole seconds only.
                timeout: Any = self._listen_s(free)
                popped = await cast(
                    Awaitable[list[bytes] | None], redis.blpop(lists, timeout=timeout)
                )
                if popped is None:
                    if not free and self.free_slots() > 0:
                        self.wake()  # the account's pacing has room again: take what waits
                    continue
                member = by_list[popped[0]]
                if member.queue_name == redis_keys.SHARED_QUEUE and self.free_slots() == 0:
                    # Full (or not serving) since the wait began: pass the token on to a browser
                    # that can take the job; ours takes it anyway once a slot frees.
                    await job_queue.wake(redis, redis_keys.SHARED_QUEUE)
                    continue
            except (RedisError, OSError) as exc:
                logger.warning("wake-up listener lost Redis (%s); listening again", exc)
                await asyncio.sleep(_RELISTEN_S)
                self.wake()
                continue
            member.wake()

    def _wake_in(self, delay_s: float) -> None:
        """Wake the members in `delay_s`: to the millisecond, which Redis's blocking timeouts
        are not (its clock ticks ten times a second)."""
        if self._opening is not None:
            self._opening.cancel()
        self._opening = asyncio.get_running_loop().call_later(delay_s, self.wake)

    def _listen_s(self, free: bool) -> float:
        """How long the listener waits for a token before it looks at its slots again."""
        if free:
            return FALLBACK_POLL_S
        if not self.gate.serving():
            return _PAUSED_RECHECK_S
        if (paced := self.gate.left()) > 0:
            # Until the account may call again, to listen on the shared queue from then on (a
            # zero timeout would block for ever).
            return min(paced + _PACED_MARGIN_S, FALLBACK_POLL_S)
        return _FULL_RECHECK_S


class QueueWorker(Worker):
    def __init__(
        self,
        group: SlotGroup,
        function: WorkerCoroutine,
        *,
        queue_name: str,
        redis_pool: ArqRedis,
        job_timeout_s: float,
    ) -> None:
        super().__init__(
            [func(function, name=job_queue.COMPLETE)],
            queue_name=queue_name,
            redis_pool=redis_pool,
            poll_delay=0,
            handle_signals=False,
            allow_abort_jobs=True,
            job_serializer=job_queue.serialize,
            job_deserializer=job_queue.deserialize,
            max_jobs=group.capacity,
            job_timeout=job_timeout_s,
            keep_result=0,
            # A job this worker gives up is put back on the shared queue by the job itself (see
            # worker.arena.completion), never rerun by arq on the queue it came from.
            retry_jobs=False,
            ctx={_CLEAR: group.cleared},
        )
        self._group = group
        self._wake = asyncio.Event()
        self._outage: RedisOutage | None = None
        group.members.append(self)

    def wake(self) -> None:
        self._wake.set()

    async def _poll_iteration(self) -> None:
        """arq's iteration (claim, abort, reap, health), riding out a Redis that is away."""
        try:
            await self._iterate()
        except (RedisError, OSError) as exc:
            if self._outage is None:
                self._outage = RedisOutage(f"claims from {self.queue_name}", max_s=math.inf)
            await self._outage.wait(exc)
            return
        if self._outage is not None:
            self._outage = None
            logger.info("%s: Redis answers again", self.queue_name)

    async def _iterate(self) -> None:
        """arq's iteration with the claim and abort read in one trip."""
        # Cleared first: a wake-up that lands during the iteration makes the next one run at once.
        self._wake.clear()
        group, gate = self._group, self._group.gate
        async with group.lock:
            claimed, aborted, wait_ms = await self.pool.register_script(_CLAIM)(
                keys=[
                    self.queue_name,
                    abort_jobs_ss,
                    redis_keys.worker_jobs(group.worker_id),
                    gate.calls_key(),
                ],
                args=[
                    timestamp_ms(),
                    group.free_slots(),
                    self.queue_read_limit,
                    in_progress_key_prefix,
                    int(self.in_progress_timeout_s * 1000),
                    timestamp_ms() - ABORT_MAX_AGE_MS,
                    redis_keys.job_cancel("%s"),
                    redis_keys.job_events("%s"),
                    job_key_prefix,
                    redis_keys.job_models("%s"),
                    group.catalog(),
                    int(gate.paced),
                    *gate.pace_args(),
                ],
            )
            if gate.paced:
                gate.learned(int(wait_ms) / 1000)
            for job_id, score, cleared in zip(
                claimed[::3], claimed[1::3], claimed[2::3], strict=True
            ):
                await self._start(job_id.decode(), int(float(score)), cleared=bool(cleared))
        await self._abort(aborted)
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # an error in arq's run_job should surface
        await self.heart_beat()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FALLBACK_POLL_S):
                await self._wake.wait()

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's run, then the job leaves this browser's running jobs."""
        try:
            await super().run_job(job_id, score)
        finally:
            with contextlib.suppress(RedisError, OSError):  # the fleet finds it finished anyway
                running = redis_keys.worker_jobs(self._group.worker_id)
                await cast(Awaitable[int], self.pool.hdel(running, job_id))

    async def close(self) -> None:
        """Stop, cancelling the jobs still running: arq then finishes them rather than rerun them."""
        self.aborting_tasks.update(self.job_tasks)
        await super().close()

    async def _start(self, job_id: str, score: int, *, cleared: bool) -> None:
        """Run a claimed job, counted as arq's start_jobs counts it."""
        await self.sem.acquire()  # never waits: claims stay within the group's free slots
        self.job_counter += 1
        self._group.gate.claimed(redis_keys.job_of(job_id))
        if cleared:
            self._group.cleared.add(job_id)
        task = asyncio.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._ended(job_id))
        self.tasks[job_id] = task

    async def _abort(self, requested: list[bytes]) -> None:
        """Cancel the browser's running jobs whose abort was requested, as arq's
        _cancel_aborted_jobs does, for every member: one wake-up is enough for any of them."""
        requested_ids = {job_id.decode() for job_id in requested}
        aborted: list[str] = []
        for member in self._group.members:
            mine = requested_ids & member.job_tasks.keys()
            for job_id in mine:
                member.job_tasks[job_id].cancel()
            member.aborting_tasks.update(mine)
            aborted += mine
        if aborted:
            await self.pool.zrem(abort_jobs_ss, *aborted)

    def _ended(self, job_id: str) -> None:
        self._group.cleared.discard(job_id)  # a job that never asked (its data had expired)
        self._group.gate.ended(redis_keys.job_of(job_id))
        self._release_sem_dec_counter_on_complete()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._group.wake()  # a slot is free: take the next queued job now
