"""Reading an answer again: `Last-Event-ID` on another gateway, a request sent again with its
`Idempotency-Key`, and a continuation that its busy worker does not take."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import anthropic
import httpx
from redis.asyncio import Redis

from gateway.answers.job_handle import JobHandle
from gateway.answers.stream_reads import StreamReads
from shared import events
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import redis_client, redis_keys
from shared.threads import Thread
from tests.support.played_worker import CHAT, answer, emit, take_job

WORDS = ["one ", "two ", "three ", "four"]


def frames(body: bytes) -> list[tuple[str, bytes]]:
    """(id, frame) of each SSE event in `body`; keep-alives left out."""
    found = []
    for block in re.sub(rb"(?m)^:[^\n]*\n", b"", body).split(b"\n\n")[:-1]:
        head, _, rest = block.partition(b"\n")
        assert head.startswith(b"id: "), block
        found.append((head[4:].decode(), rest))
    return found


async def test_a_stream_cut_off_reads_on_from_its_last_event_on_another_gateway(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    first, second = gateway(), gateway()
    async with httpx.AsyncClient(timeout=10) as client:
        request = client.build_request(
            "POST", f"{first}/v1/chat/completions", json={**CHAT, "stream": True}
        )
        response_task = asyncio.create_task(client.send(request, stream=True))
        job = await take_job(redis)
        await emit(redis, job.id, events.accepted("w1", 0), events.text("a", WORDS[0]))
        response = await response_task
        got = b""
        async for part in response.aiter_raw():
            got += part
            if WORDS[0].encode() in got:
                break
        await response.aclose()  # the connection breaks off (as when a gateway dies)
        await emit(redis, job.id, *[events.text("a", w) for w in WORDS[1:]])
        await emit(redis, job.id, events.finish("a", "stop"), events.done())
        seen = frames(got)
        resumed = await client.get(
            f"{second}/v1/answers/{job.id}/events", headers={"Last-Event-ID": seen[-1][0]}
        )
        # The whole answer, read at once from the start, for comparison.
        whole = await client.get(f"{second}/v1/answers/{job.id}/events")
    assert resumed.status_code == 200
    rest = frames(resumed.content)
    assert seen + rest == frames(whole.content)  # nothing twice, nothing missing
    text = "".join(re.findall(r'"content":"([^"]*)"', b"".join(f for _, f in rest).decode()))
    assert text == "".join(WORDS[1:])
    assert rest[-1][1] == b"data: [DONE]"
    assert await redis.zcard(redis_keys.SHARED_QUEUE) == 0  # nobody asked the arena again


async def test_an_anthropic_stream_reads_on_in_anthropics_frames(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway()
    client = anthropic.AsyncAnthropic(base_url=base, api_key="unused", max_retries=0)
    asking = asyncio.create_task(
        client.messages.create(
            model="gemini-3-pro",
            max_tokens=100,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
        )
    )
    job = await take_job(redis)
    await emit(redis, job.id, *answer("Hello there"))
    async for _ in await asking:
        pass
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        whole = frames((await http.get(f"/v1/answers/{job.id}/events")).content)
        cut = whole[3][0]
        rest = frames(
            (await http.get(f"/v1/answers/{job.id}/events", headers={"Last-Event-ID": cut})).content
        )
    assert rest == whole[4:]
    assert whole[0][1].startswith(b"event: message_start")
    assert rest[-1][1].startswith(b"event: message_stop")


async def test_an_answer_is_only_for_the_key_that_asked_and_while_it_is_kept(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    missing = await api.get("/v1/answers/0123456789abcdef/events")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "answer_not_found"


async def test_a_request_sent_again_with_its_idempotency_key_gets_the_same_answer(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    headers = {"Idempotency-Key": "retry-me-1"}
    request = asyncio.create_task(api.post("/v1/chat/completions", json=CHAT, headers=headers))
    job = await take_job(redis)
    await emit(redis, job.id, *answer("Only once"))
    first = await request
    again = await api.post("/v1/chat/completions", json=CHAT, headers=headers)
    streamed = await api.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers
    )
    assert first.status_code == again.status_code == streamed.status_code == 200
    assert again.json() == first.json()
    assert first.json()["choices"][0]["message"]["content"] == "Only once"
    assert b'"content":"Only once"' in streamed.content
    assert await redis.zcard(redis_keys.SHARED_QUEUE) == 0  # one job, taken once


async def test_a_continuation_its_busy_worker_does_not_take_goes_to_any_worker(
    redis: Redis, redis_url: str
) -> None:
    pool = await redis_client.arq_pool(Settings(redis_url=redis_url))
    # The conversation's thread is held by w1, which is busy: nobody reads its own queue.
    thread = Thread(worker="w1", session_id="s", message_id="m", model="gemini-3-pro", messages=2)
    job = CompletionJob(
        id="cont", model="gemini-3-pro", model_id="x", prompt="p", created_at=time.time()
    )
    job = job.model_copy(update={"action": "post", "thread": thread, "message": "next"})
    reads = StreamReads(lambda: Redis.from_url(redis_url), redis)
    handle = JobHandle(
        redis, pool, job, reads=reads, timeout_s=30, events_ttl_s=30, owner_wait_s=0.3
    )
    try:
        await handle.submit()
        assert await redis.zrange(redis_keys.worker_queue("w1"), 0, -1) == [b"cont:0"]
        assert await handle.first(1.0) == []
        assert await redis.zcard(redis_keys.worker_queue("w1")) == 0
        assert await redis.zrange(redis_keys.SHARED_QUEUE, 0, -1) == [b"cont:1"]
    finally:
        await reads.close()
        await pool.aclose()


async def test_a_job_still_talking_at_its_deadline_times_out(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(job_timeout_seconds=1.0, first_event_wait_seconds=0.1, keepalive_seconds=10)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        job = await take_job(redis)
        await emit(redis, job.id, events.accepted("w1", 0))
        # A token every 0.2 s: the stream is never silent for long, yet the job runs too long.
        emitted = 0
        while emitted < 15 and not request.done():
            await emit(redis, job.id, events.text("a", "more "))
            emitted += 1
            await asyncio.sleep(0.2)
        response = await request
    assert emitted < 15  # it ended at its deadline, while tokens still came
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"


async def test_an_answer_asked_again_in_json_mode_reads_again_without_asking_a_third_time(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    body = {**CHAT, "stream": True, "response_format": {"type": "json_object"}}
    request = asyncio.create_task(api.post("/v1/chat/completions", json=body))
    job = await take_job(redis)
    session = events.session("w1", "create", "s-1", {"a": "m-1"})
    await emit(
        redis,
        job.id,
        events.accepted("w1", 0),
        session,
        events.text("a", "Sure! Here it is."),  # not JSON: the gateway asks again, once
        events.finish("a", "stop"),
        events.done(),
    )
    popped = await redis.bzpopmin(redis_keys.worker_queue("w1"), 5)  # the retry, in its thread
    assert popped is not None
    retry_id = popped[1].decode().rsplit(":", 1)[0]
    await emit(redis, retry_id, *answer('{"ok": true}'))
    first = await request
    again = await api.get(f"/v1/answers/{job.id}/events")
    assert again.status_code == 200
    assert frames(again.content) == frames(first.content)
    assert b'"content":"{\\"ok\\": true}"' in first.content
    # Read again from the two answers kept: nobody was asked a third time.
    assert await redis.zcard(redis_keys.worker_queue("w1")) == 0
    assert await redis.zcard(redis_keys.SHARED_QUEUE) == 0
