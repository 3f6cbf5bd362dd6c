"""The gateway in uvicorn on a loopback port, against a real redis-server.

The test plays the worker's part exactly as a worker does it: it takes the job off the arq queue
and appends `shared.events` to the job's stream. Everything between the client and that stream
is the gateway under test.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from arq.constants import abort_jobs_ss
from redis.asyncio import Redis

from shared import events
from shared.credentials.client_keys import KeySpec, KeyStore
from shared.events import Event
from shared.fleet.worker_status import WorkerState
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import redis_keys
from tests.support.played_worker import (
    CATALOG,
    CATALOG_TIME,
    CHAT,
    MODELS,
    answer,
    emit,
    heartbeat,
    nothing_queued,
    outputs,
    serving,
    take_job,
)
from tests.support.procs import free_port, redis_server, spawn, stop, wait_for_http
from worker.arena import catalog_publisher


def chunk(job: CompletionJob, choices: str, usage: str | None = None) -> bytes:
    """One SSE frame of a `chat.completion.chunk`, spelled out byte for byte."""
    extra = "" if usage is None else f',"usage":{usage}'
    return (
        f'data: {{"id":"chatcmpl-{job.id}","object":"chat.completion.chunk",'
        f'"created":{int(job.created_at)},"model":"{job.model}","system_fingerprint":null,'
        f'"choices":{choices}{extra}}}\n\n'
    ).encode()


def delta(body: str, finish: str = "null") -> str:
    return f'[{{"index":0,"delta":{body},"logprobs":null,"finish_reason":{finish}}}]'


ROLE = delta('{"role":"assistant","content":""}')


def without_ids(body: bytes) -> bytes:
    """An SSE body less its `id:` lines (what they say is tested on its own)."""
    return re.sub(rb"(?m)^id: [^\n]*\n", b"", body)


DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n"
COMMENT = re.compile(rb"(?m)^: [^\n]*\n")


def error_json(message: str, type_: str, param: str | None, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# --- models ---


async def test_models_lists_the_named_models_under_both_prefixes(api: httpx.AsyncClient) -> None:
    expected = [
        {
            "id": e["publicName"],
            "object": "model",
            "created": int(CATALOG_TIME),
            "owned_by": e["organization"],
        }
        for e in MODELS
        if e.get("organization") and outputs(e) != {"video": True}  # video is not served
    ]
    for prefix in ("/v1", "/api/v1"):
        response = await api.get(f"{prefix}/models")
        assert response.status_code == 200
        assert response.json() == {"object": "list", "data": expected}


async def test_an_anonymous_model_is_not_listed_but_can_be_retrieved(
    api: httpx.AsyncClient,
) -> None:
    anonymous = next(e["publicName"] for e in MODELS if not e.get("organization"))
    listed = {m["id"] for m in (await api.get("/v1/models")).json()["data"]}
    assert anonymous not in listed
    response = await api.get(f"/v1/models/{anonymous}")
    assert response.status_code == 200
    assert response.json()["id"] == anonymous
    missing = await api.get("/v1/models/no-such-model")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_without_a_catalog_models_is_empty_and_completions_are_unavailable(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    await redis.delete(redis_keys.catalog(catalog_publisher.digest(CATALOG)))
    # A gateway started after: it never saw the catalog (one it read stays, under its digest).
    async with httpx.AsyncClient(base_url=gateway(), timeout=10) as api:
        assert (await api.get("/v1/models")).json() == {"object": "list", "data": []}
        response = await api.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 503
    assert response.json() == error_json(
        "The model catalog is not available yet: no worker has published it.",
        "server_error",
        None,
        "no_catalog",
    )


# --- errors, each with its exact body ---


async def test_malformed_json_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/chat/completions",
        content=b'{"model": "gemini-3-pro",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == error_json(
        "We could not parse the JSON body of your request: unexpected end of data:"
        " line 1 column 26 (char 25). The API expects a JSON object.",
        "invalid_request_error",
        None,
        None,
    )


async def test_a_schema_error_is_a_400_naming_the_param(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/chat/completions",
        json={"model": "gemini-3-pro", "messages": [{"role": "user", "content": "hi"}, 5]},
    )
    assert response.status_code == 400
    assert response.json() == error_json(
        "Invalid value for 'messages[1]': Input should be a valid dictionary or instance of"
        " Message.",
        "invalid_request_error",
        "messages[1]",
        None,
    )


async def test_an_unknown_model_is_a_404_and_nothing_is_queued(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    response = await api.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
    assert response.status_code == 404
    assert response.json() == error_json(
        "The model `gpt-9` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model",
        "model_not_found",
    )
    assert await nothing_queued(redis)


async def test_unknown_routes_and_methods_in_openai_shape(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/engines")
    assert response.status_code == 404
    assert response.json() == error_json(
        "Invalid URL (GET /v1/engines)", "invalid_request_error", None, None
    )
    response = await api.get("/api/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == error_json(
        "Invalid method for URL (GET /api/v1/chat/completions)",
        "invalid_request_error",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (
            {**CHAT, "n": 2},
            (
                "Only n=1 is supported: the arena gives one answer per request "
                "(model `battle` or `side-by-side:<a>,<b>` gives two)."
            ),
            "n",
        ),
        (
            {**CHAT, "messages": [{"role": "system", "content": "Be brief."}]},
            "The messages must include at least one user message.",
            "messages",
        ),
    ],
)
async def test_well_formed_but_unprocessable_is_a_422(
    redis: Redis, api: httpx.AsyncClient, body: dict, message: str, param: str
) -> None:
    response = await api.post("/v1/chat/completions", json=body)
    assert response.status_code == 422
    assert response.json() == error_json(message, "invalid_request_error", param, "unsupported")
    assert await nothing_queued(redis)


async def test_an_image_for_a_model_without_image_input_is_a_400(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    content = [{"type": "text", "text": "What is this?"}, image]
    text_only = next(
        m["publicName"]
        for m in MODELS
        if m.get("organization")
        and not m["capabilities"]["inputCapabilities"].get("image")
        and not outputs(m).get("image")
        and not outputs(m).get("search")
    )
    response = await api.post(
        "/v1/chat/completions",
        json={"model": text_only, "messages": [{"role": "user", "content": content}]},
    )
    assert response.status_code == 400
    assert response.json() == error_json(
        f"The model `{text_only}` does not take image input.",
        "invalid_request_error",
        "messages",
        None,
    )
    assert await nothing_queued(redis)


async def test_an_unreadable_image_is_a_400(api: httpx.AsyncClient, redis: Redis) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
    content = [{"type": "text", "text": "What is this?"}, image]
    response = await api.post(
        "/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": content}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "An image data URL holds invalid base64."
    assert await nothing_queued(redis)


async def test_a_prompt_over_the_arena_limit_is_a_400(api: httpx.AsyncClient) -> None:
    long = {**CHAT, "messages": [{"role": "user", "content": "x" * 120_000}]}
    response = await api.post("/v1/chat/completions", json=long)
    assert response.status_code == 400
    assert response.json() == error_json(
        "The prompt is 120,000 characters long; the arena accepts at most 113,567.",
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    )


async def test_a_body_over_the_limit_is_a_413_declared_or_chunked(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    body = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
    expected = error_json(
        "The request body is larger than the limit of 4,096 bytes.",
        "invalid_request_error",
        None,
        "request_too_large",
    )

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with httpx.AsyncClient(base_url=gateway(max_body_bytes=4096)) as client:
        declared = await client.post("/v1/chat/completions", content=body)
        streamed = await client.post("/v1/chat/completions", content=chunked())
        small = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    assert "content-length" in declared.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == expected
    assert small.status_code == 404
    assert await nothing_queued(redis)


async def test_client_keys_are_required_once_one_exists(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="team"))
    async with httpx.AsyncClient(base_url=gateway()) as client:
        missing = await client.get("/v1/models")
        wrong = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer lmb-other"}
        )
        right = await client.get("/api/v1/models", headers={"Authorization": f"Bearer {key}"})
        health = await client.get("/healthz")
    assert missing.status_code == 401
    assert missing.json() == error_json(
        "You didn't provide an API key. Send it in the Authorization header"
        " (Authorization: Bearer YOUR_KEY) or the x-api-key header.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )
    assert wrong.status_code == 401
    assert wrong.json() == error_json(
        "Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key"
    )
    assert right.status_code == 200 and right.json()["data"]
    assert health.status_code == 200
    assert await nothing_queued(redis)


@pytest.mark.parametrize(
    ("states", "message"),
    [
        ({"w1": WorkerState.CHALLENGE}, "no worker is ready: 1 in challenge"),
        (
            {"w1": WorkerState.LOGIN_REQUIRED, "w2": WorkerState.STARTING},
            "no worker is ready: 1 in login_required, 1 in starting",
        ),
        ({}, "no worker is running"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_without_a_serving_worker_it_is_a_503_naming_the_states(
    redis: Redis,
    gateway: Callable[..., str],
    states: dict[str, WorkerState],
    message: str,
    stream: bool,
) -> None:
    await redis.delete(redis_keys.worker_heartbeat("w1"))
    for worker_id, state in states.items():
        await heartbeat(redis, worker_id, state)
    # A gateway started after: one that saw a serving worker trusts that for a second.
    async with httpx.AsyncClient(base_url=gateway(), timeout=10) as api:
        response = await api.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert response.status_code == 503
    assert response.json() == error_json(message, "server_error", None, "no_worker")
    assert await nothing_queued(redis)


async def test_a_request_waits_for_a_worker_that_becomes_ready(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    await heartbeat(redis, "w1", WorkerState.STARTING)
    async with httpx.AsyncClient(base_url=gateway(worker_wait_seconds=5)) as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.5)
        assert await nothing_queued(redis)
        await heartbeat(redis, "w1", WorkerState.READY)
        job = await take_job(redis)
        await emit(redis, job.id, *answer("ready now"))
        response = await request
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "ready now"


# --- submitting and relaying ---


async def test_the_job_carries_the_model_and_the_transcript(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    started = time.time()
    request = asyncio.create_task(
        api.post("/v1/chat/completions", json={"model": "grok-4.1-thinking", "messages": messages})
    )
    job = await take_job(redis)
    await emit(redis, job.id, *answer())
    assert (await request).status_code == 200
    assert job.model == "grok-4.1-thinking"
    assert job.model_id == "019a9389-a9d3-77a8-afbb-4fe4dd3d8630"
    assert (job.modality, job.mode, job.attempt) == ("chat", "direct", 0)
    assert job.prompt == "<system>\nBe brief.\n</system>\n\n<user>\nHi\n</user>"
    assert len(job.id) == 32 and started <= job.created_at <= time.time()


async def test_a_streamed_answer_byte_for_byte(redis: Redis, api: httpx.AsyncClient) -> None:
    body = {**CHAT, "model": "grok-4.1-thinking", "stream": True}
    body["stream_options"] = {"include_usage": True}
    request = asyncio.create_task(api.post("/v1/chat/completions", json=body))
    job = await take_job(redis)
    await emit(
        redis,
        job.id,
        events.accepted("w1", 0),
        events.reasoning("a", "用户"),
        events.reasoning("a", "只发了问候"),
        events.text("a", "你好！👋 "),
        events.text("a", 'Say "hi"\n'),
        events.finish("a", "stop", {"promptTokens": 12, "completionTokens": 34}),
        events.done(),
    )
    response = await request
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    # Each frame's id: the stream entry of the event it shows, and its place among its frames
    # (the closing ones follow the finish's: nothing after the finish is shown).
    _, *shown, _ = [
        entry_id.decode() for entry_id, _ in await redis.xrange(redis_keys.job_events(job.id))
    ]
    frames = [
        ("0-0.0", chunk(job, ROLE, "null")),
        (f"{shown[0]}.0", chunk(job, delta('{"reasoning_content":"用户"}'), "null")),
        (f"{shown[1]}.0", chunk(job, delta('{"reasoning_content":"只发了问候"}'), "null")),
        (f"{shown[2]}.0", chunk(job, delta('{"content":"你好！👋 "}'), "null")),
        (f"{shown[3]}.0", chunk(job, delta('{"content":"Say \\"hi\\"\\n"}'), "null")),
        (f"{shown[4]}.0", chunk(job, delta("{}", '"stop"'), "null")),
        (
            f"{shown[4]}.1",
            chunk(job, "[]", '{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}'),
        ),
        (f"{shown[4]}.2", DONE),
    ]
    assert response.content == b"".join(b"id: %s\n%s" % (i.encode(), f) for i, f in frames)


async def test_a_non_streamed_answer(redis: Redis, api: httpx.AsyncClient) -> None:
    request = asyncio.create_task(
        api.post("/api/v1/chat/completions", json={**CHAT, "model": "grok-4.1-thinking"})
    )
    job = await take_job(redis)
    await emit(
        redis,
        job.id,
        events.accepted("w1", 0),
        events.reasoning("a", "Greeting."),
        events.text("a", "Hello"),
        events.text("a", " there"),
        events.finish("a", "length"),
        events.done(),
    )
    response = await request
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion",
        "created": int(job.created_at),
        "model": "grok-4.1-thinking",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello there",
                    "reasoning_content": "Greeting.",
                },
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        # Estimated: the arena gave no usage; 9 prompt characters, 20 answer characters.
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        "system_fingerprint": None,
    }


async def test_an_image_answer_is_markdown(redis: Redis, api: httpx.AsyncClient) -> None:
    image_model = next(e["publicName"] for e in MODELS if outputs(e).get("image"))
    request = asyncio.create_task(
        api.post("/v1/chat/completions", json={**CHAT, "model": image_model})
    )
    job = await take_job(redis)
    assert job.modality == "image"
    url = "https://images.example/cat.png?X-Amz-Expires=3600"
    await emit(
        redis,
        job.id,
        events.accepted("w1", 0),
        events.image("a", url, "image/png"),
        events.finish("a", "stop"),
        events.done(),
    )
    response = await request
    assert response.json()["choices"][0]["message"]["content"] == f"![image]({url})"


async def test_keepalives_flow_while_the_answer_is_slow(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(first_event_wait_seconds=0.1, keepalive_seconds=0.1)
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response,
    ):
        # The 200 and the first chunk came although the worker has said nothing yet.
        assert response.status_code == 200
        job = await take_job(redis)
        received = response.aiter_raw()
        seen = b""
        while seen.count(KEEPALIVE) < 3:
            seen += await anext(received)
        await emit(redis, job.id, *answer("late"))
        rest = b"".join([part async for part in received])
    # Comments only (where the job stood in the queue before the worker took it, then
    # keep-alives) after the first chunk.
    assert COMMENT.sub(b"", without_ids(seen)) == chunk(job, ROLE)
    rest = without_ids(COMMENT.sub(b"", rest))
    assert rest == b"".join(
        [chunk(job, delta('{"content":"late"}')), chunk(job, delta("{}", '"stop"')), DONE]
    )


@pytest.mark.parametrize("stream", [True, False])
async def test_a_rate_limit_before_the_first_token_is_a_429_with_retry_after(
    redis: Redis, api: httpx.AsyncClient, stream: bool
) -> None:
    request = asyncio.create_task(api.post("/v1/chat/completions", json={**CHAT, "stream": stream}))
    job = await take_job(redis)
    await emit(
        redis,
        job.id,
        events.accepted("w1", 0),
        events.error(
            "rate_limited", "Too many requests, please try again later.", retry_after=41.5
        ),
        events.done(),
    )
    response = await request
    assert response.status_code == 429
    assert response.headers["retry-after"] == "42"
    assert response.json() == error_json(
        "Too many requests, please try again later.",
        "requests",
        None,
        "rate_limit_exceeded",
    )
    assert not await redis.exists(redis_keys.job_cancel(job.id))


@pytest.mark.parametrize(
    ("kind", "status", "type_"),
    [
        ("challenge", 503, "server_error"),
        ("auth", 503, "server_error"),
        ("bad_request", 400, "invalid_request_error"),
        ("upstream", 502, "server_error"),
        ("recaptcha", 502, "server_error"),
    ],
)
async def test_other_early_failures_get_their_status(
    redis: Redis, api: httpx.AsyncClient, kind: str, status: int, type_: str
) -> None:
    request = asyncio.create_task(api.post("/v1/chat/completions", json={**CHAT, "stream": True}))
    job = await take_job(redis)
    failure = events.error(kind, f"{kind} happened")
    await emit(redis, job.id, failure, events.done())
    response = await request
    assert response.status_code == status
    assert "retry-after" not in response.headers
    assert response.json() == error_json(f"{kind} happened", type_, None, kind)


@pytest.mark.parametrize("pause_s", [0, 0.3])
async def test_a_failure_after_the_first_token_is_an_error_frame(
    redis: Redis, api: httpx.AsyncClient, pause_s: float
) -> None:
    # Whether the error comes in the same read as the token or later, the 200 stands.
    request = asyncio.create_task(api.post("/v1/chat/completions", json={**CHAT, "stream": True}))
    job = await take_job(redis)
    token = [events.accepted("w1", 0), events.text("a", "Partial")]
    failure = [events.error("upstream", "Resource exhausted. Please try again later.")]
    failure.append(events.done())
    if pause_s:
        await emit(redis, job.id, *token)
        await asyncio.sleep(pause_s)
        await emit(redis, job.id, *failure)
    else:
        await emit(redis, job.id, *token, *failure)
    response = await request
    assert response.status_code == 200
    assert without_ids(response.content) == b"".join(
        [
            chunk(job, ROLE) + chunk(job, delta('{"content":"Partial"}')),
            b'data: {"error":{"message":"Resource exhausted. Please try again later.",'
            b'"type":"server_error","param":null,"code":"upstream"}}\n\n',
            DONE,
        ]
    )


async def test_once_the_arena_accepted_the_request_the_200_goes_out_before_any_token(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(first_event_wait_seconds=30)  # so only the arena's acceptance can commit it
    async with httpx.AsyncClient(base_url=base) as client:
        request = asyncio.create_task(
            client.send(
                client.build_request("POST", "/v1/chat/completions", json={**CHAT, "stream": True}),
                stream=True,
            )
        )
        job = await take_job(redis)
        await emit(redis, job.id, events.accepted("w1", 0))
        await asyncio.sleep(0.3)
        assert not request.done()  # a worker took it, but the arena has not answered yet
        session = events.session("w1", "create", "s", {"a": "m"})
        await emit(redis, job.id, session)
        response = await asyncio.wait_for(request, 2)
        assert response.status_code == 200
        # A failure now, with no token yet, comes in the stream.
        failure = events.error("upstream", "The model failed.")
        await emit(redis, job.id, failure, events.done())
        body = await response.aread()
        await response.aclose()
    assert without_ids(body) == b"".join(
        [
            chunk(job, ROLE),
            b'data: {"error":{"message":"The model failed.",'
            b'"type":"server_error","param":null,"code":"upstream"}}\n\n',
            DONE,
        ]
    )


async def test_a_job_past_its_timeout_fails_and_is_cancelled(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(job_timeout_seconds=0.5, first_event_wait_seconds=0.1)
    async with httpx.AsyncClient(base_url=base) as client:
        streamed = asyncio.create_task(
            client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        )
        streamed_job = await take_job(redis)
        plain_request = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        plain_job = await take_job(redis)
        streamed_response, plain = await asyncio.gather(streamed, plain_request)
    assert without_ids(streamed_response.content).endswith(
        b'data: {"error":{"message":"no answer within 0.5 s","type":"server_error",'
        b'"param":null,"code":"timeout"}}\n\n' + DONE
    )
    assert plain.status_code == 504
    assert plain.json() == error_json("no answer within 0.5 s", "server_error", None, "timeout")
    for job in (streamed_job, plain_job):
        assert await redis.get(redis_keys.job_cancel(job.id)) == b"1"


# --- cancellation when the client goes away ---


async def wait_for_key(redis: Redis, key: str, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await redis.exists(key):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_closing_the_connection_mid_stream_cancels_the_job(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    async def start_answering() -> CompletionJob:
        job = await take_job(redis)
        # The job moved once (attempt 1, on w2) before its first token.
        await emit(redis, job.id, events.accepted("w1", 0), events.accepted("w2", 1))
        await emit(redis, job.id, events.text("a", "Once upon"))
        return job

    worker = asyncio.create_task(start_answering())
    body = {**CHAT, "stream": True}
    async with api.stream("POST", "/v1/chat/completions", json=body) as response:
        job = await worker
        seen = b""
        async for part in response.aiter_raw():
            seen += part
            if b"Once upon" in seen:
                break
    # Leaving the block closed the connection with the answer unfinished.
    assert await wait_for_key(redis, redis_keys.job_cancel(job.id))
    aborted = {m.decode() for m in await redis.zrange(abort_jobs_ss, 0, -1)}
    # Each attempt arq still knows (attempt 1 was never queued here: nothing to abort).
    assert aborted == {f"{job.id}:0"}
    # The enqueue left a wake-up token for the shared queue, the cancel one for the worker
    # that ran the last attempt (nothing here pops them).
    own = redis_keys.wake_list(redis_keys.worker_queue("w2"))
    async with asyncio.timeout(1):
        while not await redis.llen(own):
            await asyncio.sleep(0.02)
    assert await redis.llen(redis_keys.wake_list(redis_keys.SHARED_QUEUE)) == 1
    assert await redis.llen(own) == 1


async def test_leaving_before_the_first_event_cancels_the_job(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(first_event_wait_seconds=30)
    async with httpx.AsyncClient(base_url=base, timeout=0.5) as client:
        request = asyncio.create_task(
            client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        )
        job = await take_job(redis)
        with pytest.raises(httpx.ReadTimeout):
            await request
    assert await wait_for_key(redis, redis_keys.job_cancel(job.id))
    assert await redis.zrange(abort_jobs_ss, 0, -1) == [f"{job.id}:0".encode()]


async def test_abandoning_a_non_streamed_request_cancels_the_job(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway(), timeout=0.5) as client:
        request = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        job = await take_job(redis)
        await emit(redis, job.id, events.accepted("w1", 0), events.text("a", "thinking…"))
        with pytest.raises(httpx.ReadTimeout):
            await request
    assert await wait_for_key(redis, redis_keys.job_cancel(job.id))


async def test_leaving_while_waiting_for_a_worker_queues_nothing(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    await heartbeat(redis, "w1", WorkerState.CHALLENGE)
    base = gateway(worker_wait_seconds=1.0)
    async with httpx.AsyncClient(base_url=base, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json=CHAT)
    # Becoming ready after the client left must not queue its request.
    await heartbeat(redis, "w1", WorkerState.READY)
    await asyncio.sleep(1.2)
    assert await nothing_queued(redis)


async def test_a_finished_answer_is_not_cancelled(redis: Redis, api: httpx.AsyncClient) -> None:
    request = asyncio.create_task(api.post("/v1/chat/completions", json={**CHAT, "stream": True}))
    job = await take_job(redis)
    await emit(redis, job.id, *answer())
    assert (await request).status_code == 200
    await asyncio.sleep(0.2)
    assert not await redis.exists(redis_keys.job_cancel(job.id))
    assert await redis.zcard(abort_jobs_ss) == 0


# --- the official openai SDK reads these shapes ---


async def test_the_openai_sdk_reads_streams_completions_and_errors(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gateway()}/v1", api_key="unused", max_retries=0)

    async def worker(*items: Event) -> CompletionJob:
        job = await take_job(redis)
        await emit(redis, job.id, *items)
        return job

    serve = asyncio.create_task(
        worker(
            events.accepted("w1", 0),
            events.reasoning("a", "hmm"),
            events.text("a", "Hello"),
            events.text("a", " world"),
            events.finish("a", "stop", {"promptTokens": 3, "completionTokens": 2}),
            events.done(),
        )
    )
    stream = await client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    job = await serve
    assert {c.id for c in chunks} == {f"chatcmpl-{job.id}"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello world"
    # The SDK keeps fields it does not know, such as reasoning_content, on the delta.
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = [getattr(d, "reasoning_content", None) for d in deltas]
    assert reasoning == [None, "hmm", None, None, None]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5

    serve = asyncio.create_task(worker(*answer("Plain")))
    completion = await client.chat.completions.create(**CHAT)
    await serve
    assert completion.choices[0].message.content == "Plain"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3

    serve = asyncio.create_task(
        worker(events.accepted("w1", 0), events.text("a", "Par"), events.error("upstream", "cut"))
    )
    stream = await client.chat.completions.create(**CHAT, stream=True)
    with pytest.raises(openai.APIError, match="cut"):
        async for _ in stream:
            pass
    await serve

    serve = asyncio.create_task(worker(events.error("rate_limited", "slow", retry_after=7)))
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(**CHAT, stream=True)
    await serve
    assert limited.value.response.headers["retry-after"] == "7"

    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(**{**CHAT, "model": "gpt-9"})
    await client.close()


# --- health ---


async def test_health_and_readiness(redis: Redis, api: httpx.AsyncClient) -> None:
    """Ready while Redis answers, whatever the workers do: with every worker waiting for a
    person, the gateway (and its admin page, where the person frees them) stays reachable."""
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    await heartbeat(redis, "w2", WorkerState.BUSY)
    await heartbeat(redis, "w3", WorkerState.CHALLENGE)
    serving = await api.get("/readyz")
    for worker_id in ("w1", "w2"):
        await redis.delete(redis_keys.worker_heartbeat(worker_id))
    waiting = await api.get("/readyz")
    assert serving.status_code == waiting.status_code == 200
    assert serving.json() == {
        "status": "ready",
        "redis": "ok",
        "workers": {"ready": 1, "busy": 1, "challenge": 1},
        "serving": 2,
    }
    assert waiting.json() == {
        "status": "ready",
        "redis": "ok",
        "workers": {"challenge": 1},
        "serving": 0,
        "fleet": "no worker is ready: 1 in challenge",
    }
    assert (await api.get("/admin/login")).status_code == 403  # reachable (disabled: no key)


async def test_readiness_fails_when_redis_is_gone(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        settings = Settings(redis_url=url, port=free_port())
        with serving(settings) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                await Redis.from_url(url).shutdown(nosave=True)
                response = await client.get("/readyz")
                alive = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["reason"].startswith("redis: ")
    assert alive.status_code == 200


def test_the_gateway_command_serves(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "cli", "gateway"],
        env={"LMB_REDIS_URL": redis_url, "LMB_PORT": str(port)},
        log=tmp_path / "gateway.log",
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/v1/nothing").status_code == 404
    finally:
        stop(proc)


async def test_keepalives_flow_while_a_long_tool_call_is_read(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    """A call's text is held until the call is whole: the client is kept alive meanwhile."""
    base = gateway(first_event_wait_seconds=0.1, keepalive_seconds=0.2)
    tool = {"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}}
    body = {**CHAT, "stream": True, "tools": [tool]}
    call = '<tool_call>{"name": "write", "arguments": {"text": "' + "x" * 40 + '"}}</tool_call>'
    async with (
        httpx.AsyncClient(base_url=base) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        job = await take_job(redis)
        await emit(redis, job.id, events.accepted("w1", 0))
        for start in range(0, len(call), 8):  # about 1.5 s of the call arriving, piece by piece
            await emit(redis, job.id, events.text("a", call[start : start + 8]))
            await asyncio.sleep(0.1)
        await emit(redis, job.id, events.finish("a", "stop"), events.done())
        received = b"".join([part async for part in response.aiter_raw()])
    before_call = received.split(b'"tool_calls"', 1)[0]
    assert before_call.count(KEEPALIVE) >= 3
    assert b'"finish_reason":"tool_calls"' in received


async def test_a_battle_side_that_fails_ends_alone_while_the_other_answers_on(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    body = {**CHAT, "model": "side-by-side:gemini-3-pro,grok-4.1", "stream": True}
    request = asyncio.create_task(api.post("/v1/chat/completions", json=body))
    job = await take_job(redis)
    await emit(
        redis,
        job.id,
        events.accepted("w1", 0),
        events.text("a", "left"),
        events.side_failed("a", "Model overloaded"),
        events.text("b", "right"),
        events.finish("b", "stop"),
        events.done(),
    )
    response = await request
    assert response.status_code == 200
    choices = [
        orjson.loads(line.removeprefix("data: "))["choices"]
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    ends = [
        (c["index"], c["finish_reason"], c.get("error")) for [c] in choices if c["finish_reason"]
    ]
    assert ends == [
        (0, "error", {"message": "Model overloaded", "code": "upstream"}),
        (1, "stop", None),
    ]
    assert "".join(c["delta"].get("content") or "" for [c] in choices if c["index"] == 1) == "right"
    assert response.text.endswith("data: [DONE]\n\n")
