"""The arq side of the worker on a real Redis: wake-ups instead of polling, one shared capacity."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis, create_pool

from shared import keys, queue
from shared.jobs import CompletionJob
from tests.support.procs import redis_server
from worker import queue_worker
from worker.queue_worker import QueueWorker, SlotGroup

OWN = keys.worker_queue("w-q")


class Jobs:
    """A job function that holds each job until the test lets it go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()

    async def __call__(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        job_id = payload["id"]
        self.release[job_id] = asyncio.Event()
        self.started.append(job_id)
        self.changed.set()
        await self.release[job_id].wait()

    async def wait_started(self, count: int, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while len(self.started) < count:
                self.changed.clear()
                await self.changed.wait()


def job(job_id: str) -> CompletionJob:
    return CompletionJob(id=job_id, model="m", model_id="x", prompt="p", created_at=time.time())


@pytest.fixture
async def redis(tmp_path: Any) -> AsyncIterator[tuple[str, ArqRedis]]:
    with redis_server(tmp_path) as url:
        pool = await create_pool(
            queue.redis_settings(url), job_serializer=queue.serialize, job_deserializer=queue.deserialize
        )
        try:
            yield url, pool
        finally:
            await pool.aclose()


@contextlib.asynccontextmanager
async def group_running(url: str, pool: ArqRedis, jobs: Jobs, capacity: int) -> AsyncIterator[SlotGroup]:
    group = SlotGroup(capacity, lambda: True)

    async def run(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        await jobs(ctx, payload)

    workers = [
        QueueWorker(group, run, queue_name=name, redis_settings=queue.redis_settings(url), job_timeout_s=30)
        for name in (keys.SHARED_QUEUE, OWN)
    ]
    tasks = [asyncio.create_task(group.listen(pool)), *(asyncio.create_task(w.async_run()) for w in workers)]
    await asyncio.sleep(0.3)  # subscribed and past the first fallback poll
    try:
        yield group
    finally:
        for event in jobs.release.values():
            event.set()
        for worker in workers:
            await worker.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_published_enqueue_wakes_the_worker_without_polling(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)  # only a wake-up can start a job now
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=2):
        await queue.enqueue(pool, job("a"), keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(1)
        await queue.enqueue(pool, job("b"), OWN, expires_s=30)
        await jobs.wait_started(2)
    assert jobs.started == ["a", "b"]


async def test_both_queues_share_one_capacity_and_a_freed_slot_takes_the_next_job(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=2):
        for job_id, name in [("a", keys.SHARED_QUEUE), ("b", OWN), ("c", keys.SHARED_QUEUE), ("d", OWN)]:
            await queue.enqueue(pool, job(job_id), name, expires_s=30)
        await jobs.wait_started(2)
        await asyncio.sleep(0.3)
        assert len(jobs.started) == 2  # two slots, whichever queue the jobs came from

        jobs.release[jobs.started[0]].set()
        await jobs.wait_started(3)  # no publish: the finished job's slot wakes the workers
        await asyncio.sleep(0.3)
        assert len(jobs.started) == 3

        jobs.release[jobs.started[1]].set()
        await jobs.wait_started(4)  # the last one, queued behind a job still running
    assert sorted(jobs.started) == ["a", "b", "c", "d"]
