"""Reading an answer again, from any gateway, without asking the arena twice.

Every job is kept in Redis as long as its events are (`redis_keys.job_request`): the job, the
key that asked for it, the route, and for a streamed answer the request body, from which the
route renders its frames again. Two ways back to it:
- `GET /v1/answers/{id}/events` with `Last-Event-ID` (see `gateway.apis.answers`): the stream
  goes on after that event, in the frames of the API that asked;
- the same request sent again with the same `Idempotency-Key` header (per key, within
  `LMB_EVENTS_TTL_SECONDS`): the same answer, whole or streamed (after `Last-Event-ID` if sent).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

from fastapi import Request
from redis.asyncio import Redis

from gateway.http.sse import EventId
from shared.jobs import CompletionJob
from shared.storage import redis_keys

#: A client's key for one request it may send again (Stripe's and OpenAI's header).
IDEMPOTENCY_HEADER = "idempotency-key"
#: An SSE client's last event seen, sent when it reconnects.
LAST_EVENT_HEADER = "last-event-id"


@dataclass(frozen=True, slots=True)
class Kept:
    """What is kept of one job for reading it again."""

    job: CompletionJob
    key_id: str
    route: str
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Reading:
    """A request that reads an answer asked for before: its job, and where to go on."""

    job: CompletionJob
    after: EventId | None


async def keep(
    redis: Redis, job: CompletionJob, *, key_id: str, route: str, body: bytes | None, ttl_s: int
) -> None:
    """Keep `job` (and the body of a streamed request) for `ttl_s`."""
    fields: dict[str, str | bytes] = {"job": job.model_dump_json(), "key": key_id, "route": route}
    if body is not None:
        fields["body"] = zlib.compress(body)
    name = redis_keys.job_request(job.id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(name, mapping=fields)
        pipe.expire(name, ttl_s)
        await pipe.execute()


async def kept(redis: Redis, job_id: str, key_id: str) -> Kept | None:
    """The job kept under `job_id`, if it was asked for with `key_id`'s key."""
    fields = await cast(
        Awaitable[dict[bytes, bytes]], redis.hgetall(redis_keys.job_request(job_id))
    )
    if not fields or fields[b"key"].decode() != key_id:
        return None
    body = fields.get(b"body")
    return Kept(
        job=CompletionJob.model_validate_json(fields[b"job"]),
        key_id=key_id,
        route=fields[b"route"].decode(),
        body=zlib.decompress(body) if body is not None else None,
    )


async def retrying(redis: Redis, job_id: str, retry_id: str) -> None:
    """The answer of `job_id` is asked again (JSON mode) as job `retry_id`."""
    await cast(Awaitable[int], redis.hset(redis_keys.job_request(job_id), "retry", retry_id))


async def retried(redis: Redis, job_id: str) -> str | None:
    """The job that asked the answer of `job_id` again, if one did."""
    found = await cast(Awaitable[bytes | None], redis.hget(redis_keys.job_request(job_id), "retry"))
    return found.decode() if found is not None else None


async def earlier(
    request: Request, redis: Redis, key_id: str, idempotency_key: str
) -> Reading | None:
    """Make `request` read the answer of an earlier request of this key with this idempotency
    key, if it is still kept; what it reads then."""
    job_id = await redis.get(_idempotency(key_id, idempotency_key))
    found = await kept(redis, job_id.decode(), key_id) if job_id is not None else None
    if found is None:
        return None
    read_again(request, found.job)
    return reading(request)


async def claim(redis: Redis, key_id: str, idempotency_key: str, job_id: str, ttl_s: int) -> bool:
    """Make `job_id` the answer to this key's requests with this idempotency key; False if
    another request took it first."""
    return bool(await redis.set(_idempotency(key_id, idempotency_key), job_id, nx=True, ex=ttl_s))


def _idempotency(key_id: str, idempotency_key: str) -> str:
    return redis_keys.idempotency(key_id, hashlib.sha256(idempotency_key.encode()).hexdigest())


def reading(request: Request) -> Reading | None:
    """The answer this request reads again, as `gateway.apis.answers` or an earlier
    request with the same idempotency key decided."""
    return getattr(request.state, "reading", None)


def read_again(request: Request, job: CompletionJob) -> None:
    """Make `request` read `job`'s answer, after the client's `Last-Event-ID` if it sent one."""
    last = request.headers.get(LAST_EVENT_HEADER)
    request.state.reading = Reading(job, EventId.parse(last) if last else None)
