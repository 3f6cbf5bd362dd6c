"""arq glue both sides share: the orjson serializer, enqueue-and-wake (connections: `shared.storage.redis_client`)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from arq.connections import ArqRedis
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import deserialize_job, serialize_job

from shared import events
from shared.jobs import MAX_ATTEMPTS, CompletionJob
from shared.storage import redis_keys

#: Name of the arq function a worker registers for completions.
COMPLETE = "complete"

#: Wake-up tokens kept per queue while no worker pops them; more would wake nobody new.
WAKE_TOKENS_MAX = 64

# arq's enqueue_job (WATCH the job key, check that neither the job nor its result exists, MULTI:
# store the job, add it to the queue), then the models it asks for beside it (for as long as the
# job lives) and a wake-up token: one round trip instead of four, on the path of every request. A
# script runs atomically, so no WATCH is needed.
# KEYS: job, result, queue, wake list, the job's models. ARGV: job id, serialized job, score (ms),
# expiry (ms), wake tokens kept, the model ids (space-separated).
_PUT = b"""
redis.call('psetex', KEYS[1], ARGV[4], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[1])
redis.call('psetex', KEYS[5], ARGV[4], ARGV[6])
redis.call('lpush', KEYS[4], '1')
redis.call('ltrim', KEYS[4], 0, ARGV[5] - 1)
"""
_NEW = b"if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 0 end\n"
_ENQUEUE = _NEW + _PUT + b"return 1\n"

# A job's next attempt, told in its stream (`events.queued`) as the entry `<attempt>-0`: after
# all its last attempt wrote, before all this one writes; a last attempt's late write is refused
# (its id is below), and so is this one a second time. A stream new here lives as the job may.
# KEYS: as _ENQUEUE's, then the job's events last. ARGV: as _ENQUEUE's, then the entry's id,
# field and value last.
_TELL = b"""
redis.pcall('xadd', KEYS[#KEYS], ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV])
if redis.call('pttl', KEYS[#KEYS]) == -1 then redis.call('pexpire', KEYS[#KEYS], ARGV[4]) end
return 1
"""
_REQUEUE = _NEW + _PUT + _TELL

# `waiting(queue, arq id, now ms, its in-progress key)`: the attempt is in the queue, due, and
# claimed by nobody (a claim moves its score ahead, see worker.queue_worker).
_WAITING = b"""
local function waiting(queue, arq_id, now, running)
  local score = redis.call('zscore', queue, arq_id)
  return score and tonumber(score) <= tonumber(now) and redis.call('exists', running) == 0
end
"""

# Retire one attempt (out of its queue, its arq keys gone), then enqueue and tell the next as
# above (already there: moved before, by someone else).
# With ARGV[8] set, only an attempt still waiting; else nothing happens and 0 is returned.
# KEYS: the next attempt's job, result, queue, wake list, models; the old attempt's queue, job,
# in-progress and retry keys; as _TELL's. ARGV: as _ENQUEUE's, then the old attempt's id, only
# if waiting; as _TELL's.
_MOVE = (
    _WAITING
    + b"""
if ARGV[8] == '1' and not waiting(KEYS[6], ARGV[7], ARGV[3], KEYS[8]) then return 0 end
redis.call('zrem', KEYS[6], ARGV[7])
redis.call('del', KEYS[7], KEYS[8], KEYS[9])
if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 1 end
"""
    + _PUT
    + _TELL
)

# Take an attempt nobody has claimed out of its queue, its arq keys gone; 0 if it was claimed.
# KEYS: queue, the attempt's job, in-progress and retry keys. ARGV: its id, now (ms).
_WITHDRAW = (
    _WAITING
    + b"""
if not waiting(KEYS[1], ARGV[1], ARGV[2], KEYS[3]) then return 0 end
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('del', KEYS[2], KEYS[3], KEYS[4])
return 1
"""
)

#: Lua: `takes(job, catalog, models format)` → whether an account whose catalog's id set is the
#: key `catalog` (`redis_keys.catalog_ids`) may take the job `job` (its id, not its arq id): its
#: catalog has every model the job asks for (`redis_keys.job_models`, formatted with the id). A
#: job that names none, or a set that is missing (a Redis that lost it) or unnamed (''), do not
#: restrict: the arena's own answer then says whether the account has the model.
TAKES_LUA = b"""
local function takes(job, catalog, models_format)
  if catalog == '' or redis.call('exists', catalog) == 0 then return true end
  local wanted = redis.call('get', string.format(models_format, job))
  if not wanted then return true end
  for id in string.gmatch(wanted, '%S+') do
    if redis.call('sismember', catalog, id) == 0 then return false end
  end
  return true
end
"""


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
    keys, args = _enqueue_args(job, queue, expires_s)
    return bool(await pool.register_script(_ENQUEUE)(keys=keys, args=args))


async def requeue(
    pool: ArqRedis,
    job: CompletionJob,
    *,
    timeout_s: float,
    retiring: tuple[str, str] | None = None,
    only_if_waiting: bool = False,
) -> bool:
    """Put the job's next attempt on the shared queue, for any worker that can serve it, and
    tell its stream (`events.queued`): a gateway relaying it waits for an account again.

    False if the job may not move again (out of attempts or of time: `timeout_s` after it was
    made). `retiring`: the arq id and queue of an attempt to retire at the same time (its worker
    died, or it waited too long on a busy one); with `only_if_waiting`, only if nobody has
    claimed it yet, else False and nothing changes.
    """
    remaining = job.created_at + timeout_s - time.time()
    if job.attempt + 1 >= MAX_ATTEMPTS or remaining <= 0:
        return False
    moved = job.model_copy(update={"attempt": job.attempt + 1})
    keys, args = _enqueue_args(moved, redis_keys.SHARED_QUEUE, remaining)
    told = events.encode(events.queued(moved.attempt, redis_keys.SHARED_QUEUE))
    tell_keys = [redis_keys.job_events(job.id)]
    tell_args = [f"{moved.attempt}-0", events.FIELD, told[events.FIELD]]
    if retiring is None:
        await pool.register_script(_REQUEUE)(keys=[*keys, *tell_keys], args=[*args, *tell_args])
        return True
    old_id, old_queue = retiring
    moved_now = await pool.register_script(_MOVE)(
        keys=[*keys, old_queue, *_attempt_keys(old_id), *tell_keys],
        args=[*args, old_id, int(only_if_waiting), *tell_args],
    )
    return bool(moved_now)


async def withdraw(pool: ArqRedis, arq_id: str, queue: str) -> bool:
    """Take an attempt out of `queue` if nobody has claimed it yet; False if someone has."""
    return bool(
        await pool.register_script(_WITHDRAW)(
            keys=[queue, *_attempt_keys(arq_id)], args=[arq_id, int(time.time() * 1000)]
        )
    )


async def retire(pool: ArqRedis, arq_id: str, queue: str) -> None:
    """Forget an attempt that will never run again: out of its queue, its arq keys gone."""
    async with pool.pipeline(transaction=True) as pipe:
        pipe.zrem(queue, arq_id)
        pipe.delete(*_attempt_keys(arq_id))
        await pipe.execute()


def _enqueue_args(job: CompletionJob, queue: str, expires_s: float) -> tuple[list[str], list[Any]]:
    job_id = redis_keys.arq_job_id(job.id, job.attempt)
    now_ms = int(time.time() * 1000)
    data = serialize_job(
        COMPLETE, (job.model_dump(mode="json"),), {}, None, now_ms, serializer=serialize
    )
    keys = [
        job_key_prefix + job_id,
        result_key_prefix + job_id,
        queue,
        redis_keys.wake_list(queue),
        redis_keys.job_models(job.id),
    ]
    models = " ".join(job.arena_models)
    return keys, [job_id, data, now_ms, round(expires_s * 1000), WAKE_TOKENS_MAX, models]


def _attempt_keys(arq_id: str) -> list[str]:
    """arq's keys of one attempt: the job, its in-progress mark, its try count."""
    return [job_key_prefix + arq_id, in_progress_key_prefix + arq_id, retry_key_prefix + arq_id]


async def load(pool: ArqRedis, arq_id: str) -> CompletionJob | None:
    """The job an attempt runs, from arq's job key; None once the attempt has ended."""
    data = await pool.get(job_key_prefix + arq_id)
    if data is None:
        return None
    return CompletionJob.model_validate(deserialize_job(data, deserializer=deserialize).args[0])


# The cancel mark (for an attempt not started yet), what the job was asked with kept only as
# long as its events, and an abort request for each attempt still known to arq (one that ended
# has nothing to abort, and its request would stay in the abort set until trimmed).
# KEYS: cancel mark, job request, abort set. ARGV: mark's ttl (s), now (ms), then arq job ids.
_CANCEL = b"""
redis.call('set', KEYS[1], '1', 'EX', ARGV[1])
redis.call('expire', KEYS[2], ARGV[1])
for i = 3, #ARGV do
  if redis.call('exists', 'arq:job:' .. ARGV[i]) == 1 then
    redis.call('zadd', KEYS[3], ARGV[2], ARGV[i])
  end
end
return 1
"""


async def cancel(pool: ArqRedis, job_id: str, *, attempts: int, ttl_s: int) -> None:
    """Mark a job cancelled and ask arq to abort whichever attempt is running.

    The cancel key covers an attempt that has not started yet; arq's abort set covers the one
    that has, and `wake` makes its worker see it at once rather than at its next poll.
    """
    assert job_key_prefix == "arq:job:"  # as the script spells it
    await pool.register_script(_CANCEL)(
        keys=[redis_keys.job_cancel(job_id), redis_keys.job_request(job_id), abort_jobs_ss],
        args=[
            ttl_s,
            int(time.time() * 1000),
            *(redis_keys.arq_job_id(job_id, n) for n in range(attempts + 1)),
        ],
    )


async def wake(pool: ArqRedis, *queues: str) -> None:
    """Wake one listening worker of each queue (to see an abort, say)."""
    async with pool.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.lpush(redis_keys.wake_list(name), b"1")
            pipe.ltrim(redis_keys.wake_list(name), 0, WAKE_TOKENS_MAX - 1)
        await pipe.execute()
