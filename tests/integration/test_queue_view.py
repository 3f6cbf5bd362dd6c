"""Where a request stands, against a real Redis: its place among the queued jobs that the
accounts having its model could take, when those accounts free (their pacing record, their
heartbeats), and what admitting it says: a wait, a 429 at once, a 404."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from arq.connections import ArqRedis

from gateway.fleet.catalog_view import CatalogView
from gateway.fleet.heartbeats import FleetView
from gateway.fleet.queue_view import QueueView
from gateway.http.errors import ApiError
from shared.arena.catalog import Model
from shared.fleet.account_pacing import AccountPacer, Pace
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_client, redis_keys
from tests.support.played_worker import CATALOG
from worker.arena import catalog_publisher

ONLY_A, ONLY_B, BOTH = [m for m in CATALOG if m.kind == "chat"][:3]
PACE_S = 30.0


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await redis_client.arq_pool(Settings(redis_url=redis_url))
    await pool.flushdb()
    yield pool
    await pool.aclose()


def settings(redis_url: str, **changes: Any) -> Settings:
    fields: dict[str, Any] = {
        "redis_url": redis_url,
        "account_min_interval_seconds": PACE_S,
        "account_calls_per_15_minutes": 0,
        "account_calls_per_day": 0,
        "queue_max_wait_seconds": 100.0,
        "worker_wait_seconds": 0.2,
    }
    return Settings(**{**fields, **changes})


async def account(pool: ArqRedis, worker: str, models: Sequence[Model], **fields: Any) -> None:
    """A live worker whose account's catalog is `models`."""
    published = await catalog_publisher.publish(pool, models, "page", now=time.time())
    status = WorkerStatus(
        id=worker,
        state=fields.pop("state", WorkerState.READY),
        queue=redis_keys.worker_queue(worker),
        account=worker,
        capacity=2,
        catalog=published.digest,
        updated_at=time.time(),
        **fields,
    )
    await pool.set(redis_keys.worker_heartbeat(worker), status.dump(), ex=60)
    await pool.sadd(redis_keys.WORKERS, worker)


def job(job_id: str, model: Model) -> CompletionJob:
    return CompletionJob(
        id=job_id,
        model=model.public_name,
        model_id=model.id,
        prompt="p",
        created_at=time.time(),
    )


async def queued(pool: ArqRedis, *jobs: CompletionJob) -> None:
    for each in jobs:
        await job_queue.enqueue(pool, each, redis_keys.SHARED_QUEUE, expires_s=60)


async def test_a_place_counts_only_the_jobs_its_accounts_could_take(
    pool: ArqRedis, redis_url: str
) -> None:
    await account(pool, "a", [ONLY_A, BOTH])
    await account(pool, "b", [ONLY_B, BOTH])
    view = QueueView(pool, FleetView(pool), CatalogView(pool), settings(redis_url))
    await queued(pool, job("ja", ONLY_A), job("jb", ONLY_B), job("jx", BOTH))

    # A new job for A's model waits behind what A could take (ja, jx), not behind jb; A is free
    # now, and takes the second after it a pace later.
    assert await view.admit(job("new", ONLY_A), ONLY_A.public_name) == 2 * PACE_S
    # One for the model both have: both accounts, three jobs before it.
    assert await view.admit(job("new", BOTH), BOTH.public_name) == PACE_S
    # A job already queued is told its place among all that waits.
    assert await view.progress(job("jx", BOTH), "jx:0", redis_keys.SHARED_QUEUE) == (
        "queued 3 of 3, about 30 s"
    )
    # Once a worker took it, it has no place.
    await pool.zrem(redis_keys.SHARED_QUEUE, "jx:0")
    assert await view.progress(job("jx", BOTH), "jx:0", redis_keys.SHARED_QUEUE) is None


async def test_paced_accounts_that_cannot_take_it_in_time_are_a_429_and_unknown_models_a_404(
    pool: ArqRedis, redis_url: str
) -> None:
    await account(pool, "a", [ONLY_A, BOTH])
    await account(pool, "b", [ONLY_B, BOTH])
    pacer = AccountPacer(pool, Pace(PACE_S, 0, 0))
    assert (await pacer.take("a")).free  # A just called: paced for 30 s
    view = QueueView(
        pool, FleetView(pool), CatalogView(pool), settings(redis_url, queue_max_wait_seconds=50)
    )
    await queued(pool, job("ja", ONLY_A))

    # Behind ja, A's next free turn is in about 60 s: past the queue's 50 s, so 429 at once,
    # with when A frees.
    with pytest.raises(ApiError) as refused:
        await view.admit(job("new", ONLY_A), ONLY_A.public_name)
    assert refused.value.status == 429 and refused.value.code == "rate_limit_exceeded"
    assert 29 <= int(refused.value.headers["Retry-After"]) <= 30
    assert "(1 paced)" in refused.value.message
    # B has the other model and room: it waits for nothing.
    assert await view.admit(job("other", ONLY_B), ONLY_B.public_name) == 0.0

    absent = job("absent", ONLY_A).model_copy(update={"model_id": "no-such-id"})
    with pytest.raises(ApiError) as unknown:
        await view.admit(absent, "no-such-model")
    assert unknown.value.status == 404


async def test_accounts_that_cannot_serve_are_a_503_naming_why(
    pool: ArqRedis, redis_url: str
) -> None:
    await account(pool, "a", [ONLY_A], state=WorkerState.FLAGGED)
    await account(pool, "c", [ONLY_A], state=WorkerState.COOLING, until=time.time() + 600)
    await account(pool, "r", [ONLY_B])  # serving, but not this model
    view = QueueView(pool, FleetView(pool), CatalogView(pool), settings(redis_url))
    with pytest.raises(ApiError) as refused:
        await view.admit(job("new", ONLY_A), ONLY_A.public_name)
    assert refused.value.status == 503
    assert "1 flagged" in refused.value.message and "1 cooling until" in refused.value.message
    assert 590 <= int(refused.value.headers["Retry-After"]) <= 600
