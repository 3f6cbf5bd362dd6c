"""The arq side of the worker on a real Redis: wake-ups instead of polling, one shared capacity."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobStatus

from shared.fleet.account_pacing import AccountPacer, Pace
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_client, redis_keys
from tests.support.procs import redis_server
from worker import queue_worker
from worker.account_gate import AccountGate
from worker.queue_worker import QueueWorker, SlotGroup

OWN = redis_keys.worker_queue("w-q")


class Jobs:
    """A job function that holds each job until the test lets it go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cleared: dict[str, bool] = {}
        self.cancelled: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()

    async def __call__(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        job_id = payload["id"]
        self.cleared[job_id] = queue_worker.clear(ctx)
        self.release[job_id] = asyncio.Event()
        self.started.append(job_id)
        self.changed.set()
        try:
            await self.release[job_id].wait()
        except asyncio.CancelledError:
            self.cancelled.append(job_id)
            self.changed.set()
            raise

    async def wait_started(self, count: int, timeout: float = 5) -> None:
        await self.wait_for(lambda: len(self.started) >= count, timeout)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def job(job_id: str, **changes: Any) -> CompletionJob:
    fields = {"id": job_id, "model": "m", "model_id": "x", "prompt": "p", "created_at": time.time()}
    return CompletionJob.model_validate({**fields, **changes})


@pytest.fixture
async def redis(tmp_path: Any) -> AsyncIterator[tuple[str, ArqRedis]]:
    with redis_server(tmp_path) as url:
        pool = await redis_client.arq_pool(Settings(redis_url=url))
        try:
            yield url, pool
        finally:
            await pool.aclose()


@contextlib.asynccontextmanager
async def group_running(
    url: str,
    pool: ArqRedis,
    jobs: Jobs,
    capacity: int,
    own: str = OWN,
    gate: AccountGate | None = None,
    catalog: str = "",
) -> AsyncIterator[SlotGroup]:
    group = SlotGroup(own.rsplit(":", 1)[-1], capacity, gate, lambda: catalog)

    async def run(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        await jobs(ctx, payload)

    workers = [
        QueueWorker(
            group,
            run,
            queue_name=name,
            redis_pool=await redis_client.arq_pool(
                Settings(redis_url=url), default_queue_name=name
            ),
            job_timeout_s=30,
        )
        for name in (redis_keys.SHARED_QUEUE, own)
    ]
    tasks = [
        asyncio.create_task(group.listen(pool)),
        *(asyncio.create_task(w.async_run()) for w in workers),
    ]
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


async def test_an_enqueue_wakes_the_worker_without_polling(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)  # only a wake-up can start a job now
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=2):
        await job_queue.enqueue(pool, job("a"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(1)
        await job_queue.enqueue(pool, job("b"), OWN, expires_s=30)
        await jobs.wait_started(2)
    assert jobs.started == ["a", "b"]


async def blpops(pool: ArqRedis) -> int:
    """BLPOPs the Redis server has run so far."""
    return (await pool.info("commandstats")).get("cmdstat_blpop", {}).get("calls", 0)


async def test_a_paused_browser_listens_at_ease_and_takes_jobs_again_once_serving(
    redis: tuple[str, ArqRedis],
) -> None:
    url, pool = redis
    serving = False
    jobs = Jobs()
    gate = AccountGate(None, lambda: "acct", serving=lambda: serving)
    async with group_running(url, pool, jobs, capacity=1, gate=gate) as group:
        before = await blpops(pool)
        await asyncio.sleep(3)
        # Waiting for a person or cooling down can last hours: no slot frees meanwhile, so
        # the listener looks again about once a second, not ten times.
        assert await blpops(pool) - before <= 5
        await job_queue.enqueue(pool, job("a"), redis_keys.SHARED_QUEUE, expires_s=30)
        await asyncio.sleep(0.5)
        assert jobs.started == [], "a paused browser takes no job"
        serving = True
        group.wake()  # what the worker's state machine does when it serves again
        await jobs.wait_started(1)
        await job_queue.enqueue(pool, job("b"), redis_keys.SHARED_QUEUE, expires_s=30)
        jobs.release["a"].set()
        await jobs.wait_started(2)
    assert jobs.started == ["a", "b"]


async def test_both_queues_share_one_capacity_and_a_freed_slot_takes_the_next_job(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=2):
        for job_id, name in [
            ("a", redis_keys.SHARED_QUEUE),
            ("b", OWN),
            ("c", redis_keys.SHARED_QUEUE),
            ("d", OWN),
        ]:
            await job_queue.enqueue(pool, job(job_id), name, expires_s=30)
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


async def test_a_job_is_stored_as_arq_stores_it_and_only_once(redis: tuple[str, ArqRedis]) -> None:
    _, pool = redis
    first = job("a")
    assert await job_queue.enqueue(pool, first, redis_keys.SHARED_QUEUE, expires_s=30)
    assert not await job_queue.enqueue(pool, job("a"), redis_keys.SHARED_QUEUE, expires_s=30)

    arq_job = Job(
        redis_keys.arq_job_id("a", 0),
        pool,
        _queue_name=redis_keys.SHARED_QUEUE,
        _deserializer=job_queue.deserialize,
    )
    assert await arq_job.status() is JobStatus.queued
    info = await arq_job.info()
    assert info is not None and info.function == job_queue.COMPLETE and info.kwargs == {}
    assert list(info.args) == [first.model_dump(mode="json")]  # JSON, so a list
    assert abs(info.enqueue_time.timestamp() - time.time()) < 5 and info.score is not None
    assert 25_000 < await pool.pttl(f"arq:job:{redis_keys.arq_job_id('a', 0)}") <= 30_000
    assert await pool.zcard(redis_keys.SHARED_QUEUE) == 1


async def test_two_browsers_on_the_shared_queue_never_run_a_job_twice(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)
    jobs = Jobs()
    async with (
        group_running(url, pool, jobs, capacity=2, own=redis_keys.worker_queue("w-1")),
        group_running(url, pool, jobs, capacity=2, own=redis_keys.worker_queue("w-2")),
    ):
        for n in range(6):
            await job_queue.enqueue(pool, job(f"j{n}"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(4)
        await asyncio.sleep(0.3)
        assert len(jobs.started) == 4  # two browsers, two slots each: two jobs wait
        for job_id in list(jobs.started):
            jobs.release[job_id].set()
        await jobs.wait_started(6)
        await asyncio.sleep(0.3)
    assert sorted(jobs.started) == [f"j{n}" for n in range(6)]


async def test_a_job_some_worker_runs_already_is_left_to_it(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)
    running = in_progress_key_prefix + redis_keys.arq_job_id("taken", 0)
    await pool.set(running, b"1")  # as another worker's claim leaves it
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=2):
        await job_queue.enqueue(pool, job("taken"), redis_keys.SHARED_QUEUE, expires_s=30)
        await job_queue.enqueue(pool, job("free"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(1)
        await asyncio.sleep(0.3)
        assert jobs.started == ["free"]
        # The other worker gave it up (its claim expired): the next wake-up takes it.
        await pool.delete(running)
        await job_queue.wake(pool, redis_keys.SHARED_QUEUE)
        await jobs.wait_started(2)
    assert jobs.started == ["free", "taken"]


async def test_a_cancelled_job_is_aborted_at_its_wake_up(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=2):
        await job_queue.enqueue(pool, job("a"), OWN, expires_s=30)
        await job_queue.enqueue(pool, job("b"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(2)
        await job_queue.cancel(pool, "a", attempts=0, ttl_s=30)
        await job_queue.wake(pool, OWN)
        await jobs.wait_for(lambda: jobs.cancelled == ["a"], timeout=2)
        # arq's bookkeeping: the job is gone from the queue and the abort set, its slot is free.
        async with asyncio.timeout(2):
            while await pool.zcard(OWN):
                await asyncio.sleep(0.02)
        assert await pool.zcard("arq:abort") == 0
        await job_queue.enqueue(pool, job("c"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(3)
    assert jobs.cancelled == ["a"] and jobs.started == ["a", "b", "c"]


async def test_a_full_browser_leaves_the_shared_queues_wake_up_to_a_free_one(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)  # only a wake-up can start a job now
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=1, own=redis_keys.worker_queue("w-full")):
        await job_queue.enqueue(pool, job("filler"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(1)
        async with group_running(
            url, pool, jobs, capacity=1, own=redis_keys.worker_queue("w-free")
        ):
            # One token for one job: had the full browser popped it, nobody would start the job.
            for n in range(3):
                await job_queue.enqueue(
                    pool, job(f"next{n}"), redis_keys.SHARED_QUEUE, expires_s=30
                )
                await jobs.wait_started(2 + n, timeout=2)
                jobs.release[f"next{n}"].set()
    assert jobs.started == ["filler", "next0", "next1", "next2"]


async def test_the_claim_tells_which_jobs_have_nothing_to_check_before_they_start(
    redis: tuple[str, ArqRedis],
) -> None:
    url, pool = redis
    await pool.set(redis_keys.job_cancel("cancelled"), b"1")
    await pool.xadd(redis_keys.job_events("ran-before"), {"t": "accepted"})
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=3):
        for job_id in ("cancelled", "ran-before", "fresh"):
            await job_queue.enqueue(pool, job(job_id), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(3)
    assert jobs.cleared == {"cancelled": False, "ran-before": False, "fresh": True}


async def test_a_new_job_is_claimed_at_once_while_150_others_run(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)  # only a wake-up can start a job now
    busy, free = Jobs(), Jobs()
    async with group_running(url, pool, busy, capacity=150, own=redis_keys.worker_queue("w-busy")):
        for n in range(150):
            await job_queue.enqueue(pool, job(f"held{n}"), redis_keys.SHARED_QUEUE, expires_s=60)
        await busy.wait_started(150, timeout=20)
        async with group_running(
            url, pool, free, capacity=1, own=redis_keys.worker_queue("w-free")
        ):
            started = time.monotonic()
            await job_queue.enqueue(pool, job("new"), redis_keys.SHARED_QUEUE, expires_s=60)
            await free.wait_started(1, timeout=5)
            took = time.monotonic() - started
    print(f"\n150 jobs running: a new job claimed by the free browser in {took * 1000:.0f} ms")
    assert free.started == ["new"]
    assert took < 1.0


async def test_abort_requests_older_than_arqs_abort_age_or_for_ended_attempts_are_dropped(
    redis: tuple[str, ArqRedis],
) -> None:
    url, pool = redis
    now_ms = int(time.time() * 1000)
    # Requests for attempts arq still knows (their job keys): one too old to keep, one recent.
    await pool.set("arq:job:stale:0", b"x", ex=60)
    await pool.set("arq:job:recent:0", b"x", ex=60)
    # And one for an attempt that has ended meanwhile (arq forgot it): nothing left to abort.
    await pool.zadd(
        "arq:abort", {"stale:0": now_ms - 120_000, "recent:0": now_ms, "ended:0": now_ms}
    )
    async with group_running(url, pool, Jobs(), capacity=1):
        await job_queue.wake(pool, OWN)
        await asyncio.sleep(0.3)
        assert await pool.zrange("arq:abort", 0, -1) == [b"recent:0"]


async def test_a_claimed_job_is_listed_as_the_browsers_until_it_ends(
    redis: tuple[str, ArqRedis],
) -> None:
    url, pool = redis
    jobs = Jobs()
    running = redis_keys.worker_jobs("w-q")
    async with group_running(url, pool, jobs, capacity=1):
        await job_queue.enqueue(pool, job("a"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(1)
        assert await pool.hgetall(running) == {
            redis_keys.arq_job_id("a", 0).encode(): redis_keys.SHARED_QUEUE.encode()
        }
        jobs.release["a"].set()
        async with asyncio.timeout(2):
            while await pool.exists(running):
                await asyncio.sleep(0.02)


async def test_cancelling_a_job_that_ended_leaves_nothing_in_the_abort_set(
    redis: tuple[str, ArqRedis],
) -> None:
    url, pool = redis
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=1):
        await job_queue.enqueue(pool, job("over"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(1)
        jobs.release["over"].set()
        async with asyncio.timeout(2):
            while await pool.exists("arq:job:over:0"):
                await asyncio.sleep(0.02)
    # The client went away just as the answer ended.
    await job_queue.cancel(pool, "over", attempts=0, ttl_s=30)
    assert await pool.zcard("arq:abort") == 0
    assert await pool.exists(redis_keys.job_cancel("over"))


class CallingJobs(Jobs):
    """Jobs that each make one stream call through the account's gate, as a worker's do, and
    end: when each was claimed, and when it called."""

    def __init__(self, gate: AccountGate) -> None:
        super().__init__()
        self.gate = gate
        self.claimed: dict[str, float] = {}
        self.called: dict[str, float] = {}

    async def __call__(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        job_id = payload["id"]
        self.claimed[job_id] = time.monotonic()

        async def token() -> str:
            return "token"

        await self.gate.call(job_id, token)
        self.called[job_id] = time.monotonic()
        await self.gate.sent(job_id)
        self.started.append(job_id)
        self.changed.set()


async def test_a_paced_account_claims_a_job_only_when_it_may_call_and_wakes_as_it_frees(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)  # no poll: the account frees it
    pace_s = 1.0
    gate = AccountGate(AccountPacer(pool, Pace(pace_s, 0, 0)), lambda: "acct")
    jobs = CallingJobs(gate)
    async with group_running(url, pool, jobs, capacity=4, gate=gate) as group:
        before = await blpops(pool)
        for n in range(3):
            await job_queue.enqueue(pool, job(f"j{n}"), redis_keys.SHARED_QUEUE, expires_s=30)
        await jobs.wait_started(3, timeout=5)
        listened = await blpops(pool) - before
        async with asyncio.timeout(2):  # arq has finished with the last one too
            while group.running:
                await asyncio.sleep(0.02)
    calls = sorted(jobs.called.values())
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    print(f"\npaced {pace_s} s: gaps {[round(g, 3) for g in gaps]}, {listened} BLPOPs")
    assert min(gaps) >= pace_s - 0.01  # the Redis record holds the interval to the ms
    assert max(gaps) < pace_s + 0.05  # and the next job goes as soon as the account frees
    # Claimed only when it could call: no job waited for the account once claimed.
    waited = {j: jobs.called[j] - jobs.claimed[j] for j in jobs.called}
    assert max(waited.values()) < 0.05, waited
    # Two seconds paced: a look every tenth of a second would be 20 and more.
    assert listened <= 10


async def test_a_browser_claims_only_jobs_whose_models_its_catalog_has(
    redis: tuple[str, ArqRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pool = redis
    monkeypatch.setattr(queue_worker, "FALLBACK_POLL_S", 60.0)
    mine = redis_keys.catalog_ids("mine")
    await pool.sadd(mine, "x", "x-search")
    jobs = Jobs()
    async with group_running(url, pool, jobs, capacity=3, catalog=mine):
        await job_queue.enqueue(
            pool, job("theirs", model_id="y"), redis_keys.SHARED_QUEUE, expires_s=30
        )
        await job_queue.enqueue(
            pool, job("half", model_id="x", model_b_id="y"), redis_keys.SHARED_QUEUE, expires_s=30
        )
        await job_queue.enqueue(
            pool, job("ours", model_id="x"), redis_keys.SHARED_QUEUE, expires_s=30
        )
        await jobs.wait_started(1)
        await asyncio.sleep(0.3)
        assert jobs.started == ["ours"]  # a battle needs both of its models
        # A job cancelled while it waits is taken whatever its models, to be ended, rather
        # than left in the queue for ever.
        await job_queue.cancel(pool, "theirs", attempts=0, ttl_s=30)
        await job_queue.wake(pool, redis_keys.SHARED_QUEUE)
        async with asyncio.timeout(2):
            while await pool.zscore(redis_keys.SHARED_QUEUE, "theirs:0") is not None:
                await asyncio.sleep(0.02)
    assert jobs.started == ["ours"]
    assert await pool.zrange(redis_keys.SHARED_QUEUE, 0, -1) == [b"half:0"]
