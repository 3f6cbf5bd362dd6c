"""arq glue both sides share: connection settings, the orjson serializer, enqueue-and-wake."""

from __future__ import annotations

import time
from typing import Any

import orjson
from arq.connections import ArqRedis, RedisSettings
from arq.constants import abort_jobs_ss, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job

from shared import redis_keys
from shared.jobs import CompletionJob

#: Name of the arq function a worker registers for completions.
COMPLETE = "complete"

#: Wake-up tokens kept per queue while no worker pops them; more would wake nobody new.
WAKE_TOKENS_MAX = 64

# arq's enqueue_job (WATCH the job key, check that neither the job nor its result exists, MULTI:
# store the job, add it to the queue), then a wake-up token: one round trip instead of four, on
# the path of every request. A script runs atomically, so no WATCH is needed.
# KEYS: job, result, queue, wake list. ARGV: job id, serialized job, score (ms), expiry (ms),
# wake tokens kept.
_ENQUEUE = b"""
if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('psetex', KEYS[1], ARGV[4], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[1])
redis.call('lpush', KEYS[4], '1')
redis.call('ltrim', KEYS[4], 0, ARGV[5] - 1)
return 1
"""


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def serialize(obj: dict[str, Any]) -> bytes:
    # arq defaults to pickle; jobs cross process boundaries, so plain JSON only.
    return orjson.dumps(obj)


def deserialize(data: bytes) -> dict[str, Any]:
    return orjson.loads(data)


async def enqueue(pool: ArqRedis, job: CompletionJob, queue: str, *, expires_s: float) -> bool:
    """Put `job` on `queue` under a known id and wake one worker that listens on it.

    Stored exactly as arq's `enqueue_job` stores it; False if a job with that id exists already
    (nothing is queued then).
    """
    job_id = redis_keys.arq_job_id(job.id, job.attempt)
    now_ms = int(time.time() * 1000)
    data = serialize_job(
        COMPLETE, (job.model_dump(mode="json"),), {}, None, now_ms, serializer=serialize
    )
    queued = await pool.register_script(_ENQUEUE)(
        keys=[
            job_key_prefix + job_id,
            result_key_prefix + job_id,
            queue,
            redis_keys.wake_list(queue),
        ],
        args=[job_id, data, now_ms, round(expires_s * 1000), WAKE_TOKENS_MAX],
    )
    return bool(queued)


async def cancel(pool: ArqRedis, job_id: str, *, attempts: int, ttl_s: int) -> None:
    """Mark a job cancelled and ask arq to abort whichever attempt is running.

    The cancel key covers an attempt that has not started yet; arq's abort set covers the one
    that has, and `wake` makes its worker see it at once rather than at its next poll.
    """
    now_ms = int(time.time() * 1000)
    async with pool.pipeline(transaction=False) as pipe:
        pipe.set(redis_keys.job_cancel(job_id), b"1", ex=ttl_s)
        pipe.zadd(
            abort_jobs_ss, {redis_keys.arq_job_id(job_id, n): now_ms for n in range(attempts + 1)}
        )
        await pipe.execute()


async def wake(pool: ArqRedis, *queues: str) -> None:
    """Wake one listening worker of each queue (to see an abort, say)."""
    async with pool.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.lpush(redis_keys.wake_list(name), b"1")
            pipe.ltrim(redis_keys.wake_list(name), 0, WAKE_TOKENS_MAX - 1)
        await pipe.execute()
