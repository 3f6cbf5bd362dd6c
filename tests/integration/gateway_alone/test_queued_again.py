"""A job a worker put back on the queue before any content waits for an account again.

The test plays the workers: it takes the job, writes its events as a worker's attempt does
(`<attempt>-<n>`), and puts it back as a worker does (`job_queue.requeue`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest
from arq.constants import job_key_prefix
from redis.asyncio import Redis

from shared import events
from shared.fleet.worker_status import WorkerState
from shared.jobs import CompletionJob
from shared.storage import job_queue, redis_keys
from tests.support.played_worker import CHAT, heartbeat, take_job, write

#: The queue's limit in these tests: the wait after the job is put back.
MAX_WAIT_S = 1.5
PROGRESS = re.compile(r"^: queued 1 of 1\b", re.MULTILINE)


@pytest.fixture
async def api(gateway: Callable[..., str]) -> AsyncIterator[httpx.AsyncClient]:
    base = gateway(queue_max_wait_seconds=MAX_WAIT_S, keepalive_seconds=0.3)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def put_back_at_a_challenge(redis: Redis, job: CompletionJob) -> float:
    """As the only worker does when the arena answers a Cloudflare check: it waits for a person,
    and the job goes back on the queue; when that was (monotonic)."""
    await heartbeat(redis, "w1", WorkerState.CHALLENGE)
    assert await job_queue.requeue(redis, job, timeout_s=30)
    return time.monotonic()


async def withdrawn(redis: Redis, job: CompletionJob) -> bool:
    """The attempt put back is out of the queue, and gone: no worker takes it later."""
    again = redis_keys.arq_job_id(job.id, job.attempt + 1)
    return not await redis.zcard(redis_keys.SHARED_QUEUE) and not await redis.exists(
        job_key_prefix + again
    )


async def test_put_back_with_no_account_to_take_it_is_a_503_within_the_wait(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    request = asyncio.create_task(api.post("/v1/chat/completions", json=CHAT))
    job = await take_job(redis)
    assert await write(redis, job, 1, events.accepted("w1", 0))
    await asyncio.sleep(0.3)  # the gateway has seen it taken
    put_back = await put_back_at_a_challenge(redis, job)
    response = await request
    waited = time.monotonic() - put_back
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "no_worker" and error["type"] == "server_error"
    assert "1 waiting for a person" in error["message"]
    assert MAX_WAIT_S <= waited < MAX_WAIT_S + 3
    assert await withdrawn(redis, job)


async def test_put_back_after_the_200_tells_its_place_then_ends_with_an_error_frame(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    request = asyncio.create_task(api.post("/v1/chat/completions", json={**CHAT, "stream": True}))
    job = await take_job(redis)
    # The arena accepted it (the 200 goes out), then the browser was lost before any token.
    session = events.session("w1", "create", "s", {"a": "m"})
    assert await write(redis, job, 1, events.accepted("w1", 0), session)
    await asyncio.sleep(0.8)  # keep-alives while it is taken: no place to tell
    put_back = await put_back_at_a_challenge(redis, job)
    response = await request
    waited = time.monotonic() - put_back
    assert response.status_code == 200
    body = response.text
    taken, _, after = body.partition(": queued")
    assert ": keep-alive" in taken and PROGRESS.search(": queued" + after), body
    frames = [line for line in body.splitlines() if line.startswith("data: {")]
    error = orjson.loads(frames[-1].removeprefix("data: "))["error"]
    assert error["code"] == "no_worker" and "1 waiting for a person" in error["message"]
    assert body.endswith("data: [DONE]\n\n")
    assert MAX_WAIT_S <= waited < MAX_WAIT_S + 3
    assert await withdrawn(redis, job)


async def test_put_back_and_taken_by_another_worker_answers_once(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    await heartbeat(redis, "w2", WorkerState.READY)
    request = asyncio.create_task(api.post("/v1/chat/completions", json={**CHAT, "stream": True}))
    job = await take_job(redis)
    session = events.session("w1", "create", "s", {"a": "m"})
    assert await write(redis, job, 1, events.accepted("w1", 0), session)
    await asyncio.sleep(0.5)
    await put_back_at_a_challenge(redis, job)
    # A late write of the attempt put back is refused: it never reaches the client.
    assert not await write(redis, job, 3, events.text("a", "Stale"))
    await asyncio.sleep(0.8)  # the gateway tells its place meanwhile
    again = await take_job(redis)
    assert (again.id, again.attempt) == (job.id, 1)
    answered = [
        events.accepted("w2", 1),
        events.session("w2", "create", "s2", {"a": "m2"}),
        events.text("a", "Hello from w2"),
        events.finish("a", "stop"),
        events.done(),
    ]
    assert await write(redis, again, 1, *answered)
    response = await request
    assert response.status_code == 200
    body = response.text
    assert PROGRESS.search(body), body
    texts = [
        choice["delta"].get("content")
        for line in body.splitlines()
        if line.startswith("data: {")
        for choice in orjson.loads(line.removeprefix("data: "))["choices"]
    ]
    assert "".join(t for t in texts if t) == "Hello from w2"
    assert body.endswith("data: [DONE]\n\n")
