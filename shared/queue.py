"""arq glue both sides share: connection settings, the orjson serializer, enqueue-and-wake."""

from __future__ import annotations

import time
from typing import Any

import orjson
from arq.connections import ArqRedis, RedisSettings
from arq.constants import abort_jobs_ss

from shared import keys
from shared.jobs import CompletionJob

#: Name of the arq function a worker registers for completions.
COMPLETE = "complete"


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def serialize(obj: dict[str, Any]) -> bytes:
    # arq defaults to pickle; jobs cross process boundaries, so plain JSON only.
    return orjson.dumps(obj)


def deserialize(data: bytes) -> dict[str, Any]:
    return orjson.loads(data)


async def enqueue(pool: ArqRedis, job: CompletionJob, queue: str, *, expires_s: float) -> None:
    """Put `job` on `queue` under a known id and wake the workers that listen on it."""
    await pool.enqueue_job(
        COMPLETE,
        job.model_dump(mode="json"),
        _job_id=keys.arq_job_id(job.id, job.attempt),
        _queue_name=queue,
        _expires=expires_s,
    )
    await pool.publish(keys.wake_channel(queue), b"1")


async def cancel(pool: ArqRedis, job_id: str, *, attempts: int, ttl_s: int) -> None:
    """Mark a job cancelled and ask arq to abort whichever attempt is running.

    The cancel key covers an attempt that has not started yet; arq's abort set covers the one
    that has. Workers listen on the wake channel, so the abort is seen at once, not at next poll.
    """
    now_ms = int(time.time() * 1000)
    async with pool.pipeline(transaction=False) as pipe:
        pipe.set(keys.job_cancel(job_id), b"1", ex=ttl_s)
        pipe.zadd(
            abort_jobs_ss, {keys.arq_job_id(job_id, n): now_ms for n in range(attempts + 1)}
        )
        await pipe.execute()
