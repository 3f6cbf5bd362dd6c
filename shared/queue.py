"""arq glue both sides share: connection settings, the orjson serializer, enqueue-and-wake."""

from __future__ import annotations

from typing import Any

import orjson
from arq.connections import ArqRedis, RedisSettings

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
