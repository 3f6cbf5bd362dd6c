"""Saving the jobs of a worker that died: noticed from its heartbeat within seconds.

Every worker and gateway runs a `Recovery`, and one of them at a time watches: the one holding
a short lease in Redis, renewed every period (so the roster is read once a period, not once per
process, however large the fleet). A worker whose heartbeat key is gone (it expires three
beats after the last) while it is still on the roster has died without stopping; once one
`Recovery` has seen it missing for `grace_s` (a worker that only lost Redis for a moment beats
again well within it), it takes a short lock on it and saves each job the worker had claimed
(`redis_keys.worker_jobs`) or had waiting on its own queue:
- a job that had sent the client nothing runs again, as a new attempt, on the shared queue (a
  continuation there starts a new arena session with the transcript, as no other account can
  continue the dead worker's);
- a job that had: its stream ends with a `worker_lost` error at once (an answer is never sent
  twice);
- a job that ended, or may not move again: what is left of it is cleared.
The dead worker stays on the roster (the admin page shows it gone), with nothing left to save.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable
from typing import cast

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from shared import events
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_keys

logger = logging.getLogger(__name__)

#: How long one `Recovery` holds a dead worker to itself while it saves its jobs.
_LOCK_S = 30
#: Periods the watcher's lease lasts unrenewed: another process takes over after that.
_LEASE_PERIODS = 3

# KEYS: the watcher's lease. ARGV: this process's token, lease ms. Returns 1 if it holds it.
_WATCH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


class Recovery:
    def __init__(
        self,
        pool: ArqRedis,
        *,
        grace_s: float,
        period_s: float,
        job_timeout_s: float,
        events_ttl_s: int,
    ) -> None:
        self._pool = pool
        self._grace_s = grace_s
        self._period_s = period_s
        self._job_timeout_s = job_timeout_s
        self._events_ttl_s = events_ttl_s
        #: When each worker was first seen without a heartbeat (monotonic), while it still is.
        self._missing: dict[str, float] = {}
        self._token = secrets.token_hex(8)
        self._watch = pool.register_script(_WATCH)

    @classmethod
    def of(cls, pool: ArqRedis, settings: Settings) -> Recovery:
        """As every worker and gateway runs it: checked every heartbeat period, a worker taken
        for dead three periods after its heartbeat expired."""
        return cls(
            pool,
            grace_s=3 * settings.heartbeat_seconds,
            period_s=settings.heartbeat_seconds,
            job_timeout_s=settings.job_timeout_seconds,
            events_ttl_s=settings.events_ttl_seconds,
        )

    async def run(self) -> None:
        """Look for dead workers every period while this process watches, until cancelled."""
        lease_ms = max(1, round(self._period_s * _LEASE_PERIODS * 1000))
        while True:
            try:
                if await self._watch(
                    keys=[redis_keys.RECOVERY_WATCHER], args=[self._token, lease_ms]
                ):
                    await self.check()
                else:
                    self._missing.clear()  # another process watches; counting starts anew here
            except (RedisError, OSError) as exc:
                # Redis was away: everyone's heartbeat may be too, so start counting afresh.
                self._missing.clear()
                logger.debug("recovery: Redis does not answer (%s)", exc)
            except Exception:  # one job it could not read must not end the watch
                logger.exception("recovery: could not save a dead worker's jobs")
            await asyncio.sleep(self._period_s)

    async def check(self) -> list[str]:
        """Save the jobs of every worker missing for the grace period; their ids."""
        members = cast(Awaitable[set[bytes]], self._pool.smembers(redis_keys.WORKERS))
        roster = sorted(m.decode() for m in await members)
        beats = (
            await self._pool.mget([redis_keys.worker_heartbeat(w) for w in roster])
            if roster
            else []
        )
        now = time.monotonic()
        dead = []
        for worker_id, beat in zip(roster, beats, strict=True):
            if beat is not None:
                self._missing.pop(worker_id, None)
            elif now - self._missing.setdefault(worker_id, now) >= self._grace_s:
                dead.append(worker_id)
        saved = []
        for worker_id in dead:
            if await self._has_jobs(worker_id) and await self._pool.set(
                redis_keys.recovery_lock(worker_id), b"1", nx=True, ex=_LOCK_S
            ):
                await self.save(worker_id)
                saved.append(worker_id)
        return saved

    async def save(self, worker_id: str, *, waiting: bool = True) -> None:
        """Save every job of a dead worker (see the module's doc).

        A worker that starts again under the same id saves what its last life left running,
        and keeps its own queue (`waiting=False`): the same account can continue its threads.
        """
        running = await cast(
            Awaitable[dict[bytes, bytes]], self._pool.hgetall(redis_keys.worker_jobs(worker_id))
        )
        own = redis_keys.worker_queue(worker_id)
        queued = await self._pool.zrange(own, 0, -1) if waiting else []
        if not running and not queued:
            return
        logger.warning(
            "saving the jobs of worker %s: %d it was running, %d waiting for it",
            worker_id,
            len(running),
            len(queued),
        )
        for arq_id, queue in running.items():
            await self._save_job(arq_id.decode(), queue.decode())
        for arq_id in queued:
            await self._save_job(arq_id.decode(), own)
        await self._pool.delete(redis_keys.worker_jobs(worker_id))

    async def _has_jobs(self, worker_id: str) -> bool:
        async with self._pool.pipeline(transaction=False) as pipe:
            pipe.exists(redis_keys.worker_jobs(worker_id))
            pipe.zcard(redis_keys.worker_queue(worker_id))
            running, waiting = await pipe.execute()
        return bool(running or waiting)

    async def _save_job(self, arq_id: str, queue: str) -> None:
        job = await job_queue.load(self._pool, arq_id)
        if job is None:  # it ended (or expired) after all
            await job_queue.retire(self._pool, arq_id, queue)
            return
        past = {
            events.decode(fields)["t"]
            for _, fields in await self._pool.xrange(redis_keys.job_events(job.id))
        }
        untouched = "done" not in past and not past & events.CONTENT
        if untouched and await job_queue.requeue(
            self._pool, job, timeout_s=self._job_timeout_s, retiring=(arq_id, queue)
        ):
            logger.info("job %s: its worker died before answering; runs again", job.id)
            return
        await job_queue.retire(self._pool, arq_id, queue)
        if "done" not in past:
            await self._end(job)

    async def _end(self, job: CompletionJob) -> None:
        """End the job's stream: its answer was under way (or may not move again)."""
        key = redis_keys.job_events(job.id)
        async with self._pool.pipeline(transaction=False) as pipe:
            pipe.xadd(key, events.encode(events.error("worker_lost", _LOST)))
            pipe.xadd(key, events.encode(events.done()))
            pipe.expire(key, self._events_ttl_s)
            pipe.expire(redis_keys.job_request(job.id), self._events_ttl_s)
            await pipe.execute()
        logger.info("job %s: its worker died while answering; the client is told", job.id)


_LOST = "the worker serving this request stopped"
