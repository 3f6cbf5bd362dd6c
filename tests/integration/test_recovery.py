"""Saving a dead worker's jobs (shared.fleet.recovery) on a real Redis, the dead worker played by the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix

from shared import events
from shared.fleet.recovery import Recovery
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_client, redis_keys

DEAD = "w-dead"


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await redis_client.arq_pool(Settings(redis_url=redis_url))
    await pool.flushdb()
    await pool.sadd(redis_keys.WORKERS, DEAD)  # on the roster, its heartbeat expired
    try:
        yield pool
    finally:
        await pool.aclose()


def recovery(pool: ArqRedis, grace_s: float = 0.0) -> Recovery:
    return Recovery(pool, grace_s=grace_s, period_s=0.1, job_timeout_s=60, events_ttl_s=30)


async def running(pool: ArqRedis, job_id: str, *past: events.Event) -> CompletionJob:
    """A job the dead worker had claimed off the shared queue, with the events it had sent."""
    job = CompletionJob(id=job_id, model="m", model_id="x", prompt="p", created_at=time.time())
    await job_queue.enqueue(pool, job, redis_keys.SHARED_QUEUE, expires_s=60)
    arq_id = redis_keys.arq_job_id(job_id, 0)
    await pool.set(in_progress_key_prefix + arq_id, b"1")
    await pool.hset(redis_keys.worker_jobs(DEAD), arq_id, redis_keys.SHARED_QUEUE)
    for event in past:
        await pool.xadd(redis_keys.job_events(job_id), events.encode(event))
    return job


async def kinds(pool: ArqRedis, job_id: str) -> list[str]:
    entries = await pool.xrange(redis_keys.job_events(job_id))
    return [events.decode(fields)["t"] for _, fields in entries]


async def test_a_job_that_had_sent_nothing_runs_again_on_the_shared_queue(pool: ArqRedis) -> None:
    await running(pool, "quiet", events.accepted(DEAD, 0))
    assert await recovery(pool).check() == [DEAD]
    assert await pool.zrange(redis_keys.SHARED_QUEUE, 0, -1) == [b"quiet:1"]
    assert not await pool.exists(job_key_prefix + "quiet:0", in_progress_key_prefix + "quiet:0")
    assert not await pool.exists(redis_keys.worker_jobs(DEAD))
    moved = await job_queue.load(pool, "quiet:1")
    assert moved is not None and moved.attempt == 1


async def test_a_job_under_way_ends_with_an_error_at_once(pool: ArqRedis) -> None:
    await running(pool, "talking", events.accepted(DEAD, 0), events.text("a", "Hel"))
    await recovery(pool).check()
    assert await kinds(pool, "talking") == ["accepted", "text", "error", "done"]
    last_error = events.decode((await pool.xrange(redis_keys.job_events("talking")))[2][1])
    assert last_error["kind"] == "worker_lost"
    assert 0 < await pool.ttl(redis_keys.job_events("talking")) <= 30
    assert await pool.zcard(redis_keys.SHARED_QUEUE) == 0
    assert not await pool.exists(job_key_prefix + "talking:0")


async def test_a_continuation_waiting_for_the_dead_worker_moves_to_the_shared_queue(
    pool: ArqRedis,
) -> None:
    job = CompletionJob(id="next", model="m", model_id="x", prompt="p", created_at=time.time())
    await job_queue.enqueue(pool, job, redis_keys.worker_queue(DEAD), expires_s=60)
    await recovery(pool).check()
    assert await pool.zcard(redis_keys.worker_queue(DEAD)) == 0
    assert await pool.zrange(redis_keys.SHARED_QUEUE, 0, -1) == [b"next:1"]


async def test_a_live_worker_and_one_missing_for_less_than_the_grace_are_left_alone(
    pool: ArqRedis,
) -> None:
    await running(pool, "kept")
    await pool.sadd(redis_keys.WORKERS, "w-live")
    await pool.set(redis_keys.worker_heartbeat("w-live"), b"{}")
    await pool.hset(redis_keys.worker_jobs("w-live"), "other:0", redis_keys.SHARED_QUEUE)
    patient = recovery(pool, grace_s=60)
    assert await patient.check() == []
    assert await pool.zrange(redis_keys.SHARED_QUEUE, 0, -1) == [b"kept:0"]
    assert await pool.hlen(redis_keys.worker_jobs("w-live")) == 1


async def test_only_one_process_saves_a_dead_workers_jobs(pool: ArqRedis) -> None:
    await running(pool, "once")
    first, second = recovery(pool), recovery(pool)
    assert await first.check() == [DEAD]
    assert await second.check() == []
    assert await pool.zrange(redis_keys.SHARED_QUEUE, 0, -1) == [b"once:1"]


async def calls(pool: ArqRedis, command: str) -> int:
    stats = await pool.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_one_process_at_a_time_watches_the_roster_and_another_takes_over(
    pool: ArqRedis,
) -> None:
    await pool.config_resetstat()
    first, second = recovery(pool, grace_s=60), recovery(pool, grace_s=60)
    watching = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    try:
        await asyncio.sleep(1.0)
        # Each looked for the lease every period; only its holder read the roster.
        looked, read = await calls(pool, "evalsha"), await calls(pool, "smembers")
        assert 1 <= read <= looked * 0.6 + 1, (read, looked)
        holder = await pool.get(redis_keys.RECOVERY_WATCHER)
        assert holder is not None
        # The holder stops: once its lease lapses, the other reads the roster instead.
        stopped = 0 if holder.decode() == first._token else 1
        watching[stopped].cancel()
        await asyncio.sleep(0.6)
        before = await calls(pool, "smembers")
        await asyncio.sleep(0.5)
        assert await calls(pool, "smembers") > before
        assert await pool.get(redis_keys.RECOVERY_WATCHER) != holder
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
