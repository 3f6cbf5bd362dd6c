"""One request end to end: openai SDK → gateway → Redis/arq → browser worker → fake arena → SSE.

Every process is real and separate: redis-server, the fake arena, `lmarena-bridge gateway` and
`lmarena-bridge worker` (each with its own headless Chromium). Chat and reasoning are asked of
both versions of the arena (`each_site`).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakearena.scenario import Site
from tests.support.procs import fake_arena, redis_server
from tests.support.sites import DEFAULT, MODELS, SITES, on_site
from tests.support.stack import Stack, unique, wait_until

pytestmark = pytest.mark.browser

CHAT = DEFAULT.chat


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    workdir = tmp_path_factory.mktemp("e2e")
    with redis_server(workdir) as redis_url, fake_arena(workdir) as arena_url:
        yield redis_url, arena_url, workdir


@pytest.fixture(scope="module")
def pair(services: tuple[str, str, Path]) -> Iterator[Stack]:
    """A gateway and two workers of four slots each, shared by the tests that leave them as found."""
    redis_url, arena_url, workdir = services
    stack = Stack(redis_url, arena_url, workdir / "pair", env={"LMB_WORKER_CAPACITY": "4"})
    stack.workdir.mkdir()
    stack.redis.flushdb()
    try:
        stack.start_gateway()
        stack.start_worker("pair-1")
        stack.start_worker("pair-2")
        yield stack
    finally:
        stack.close()


@pytest.fixture(params=SITES)
def each_site(request: pytest.FixtureRequest) -> tuple[Stack, Site]:
    return on_site(request, "pair")


@pytest.fixture
def fresh(services: tuple[str, str, Path], request: pytest.FixtureRequest) -> Iterator[Stack]:
    """An empty stack of its own (its own Redis database), for tests that change workers' states."""
    redis_url, arena_url, workdir = services
    stack = Stack(redis_url.rsplit("/", 1)[0] + "/1", arena_url, workdir / request.node.name)
    stack.workdir.mkdir()
    try:
        yield stack
    finally:
        stack.close()
        stack.redis.flushdb()


@pytest.fixture(autouse=True)
def clean_arena(services: tuple[str, str, Path]) -> None:
    httpx.post(f"{services[1]}/__fake/reset").raise_for_status()


def session_owner(stack: Stack, prompt: str) -> str:
    (owner,) = [
        s["owner"] for s in stack.arena_log()["sessions"] if s["turns"][0]["text"] == prompt
    ]
    return owner


def test_streamed_chat_text_is_what_the_arena_streamed(each_site: tuple[Stack, Site]) -> None:
    pair, site = each_site
    prompt = unique("tell me a story")
    chunks = list(
        pair.openai().chat.completions.create(
            model=MODELS[site].chat,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (streamed,) = pair.arena_streams(prompt)
    assert streamed["status"] == "finished"
    assert text == streamed["text"]["a"] and text.endswith(prompt)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_non_streamed_chat_text_is_what_the_arena_streamed(each_site: tuple[Stack, Site]) -> None:
    pair, site = each_site
    prompt = unique("what is the time")
    answer = pair.openai().chat.completions.create(
        model=MODELS[site].chat, messages=[{"role": "user", "content": prompt}]
    )
    (streamed,) = pair.arena_streams(prompt)
    assert answer.choices[0].message.content == streamed["text"]["a"]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == MODELS[site].chat
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streamed_reasoning_arrives_as_reasoning_content_before_the_answer(
    each_site: tuple[Stack, Site],
) -> None:
    pair, site = each_site
    prompt = unique("think it over")
    kinds: list[str] = []
    reasoning, content = "", ""
    for chunk in pair.openai().chat.completions.create(
        model=MODELS[site].reasoning, messages=[{"role": "user", "content": prompt}], stream=True
    ):
        delta = chunk.choices[0].delta
        if part := getattr(delta, "reasoning_content", None):
            reasoning += part
            kinds.append("reasoning")
        if delta.content:
            content += delta.content
            kinds.append("content")
    (streamed,) = pair.arena_streams(prompt)
    assert reasoning == streamed["reasoning"]["a"] and reasoning.startswith("Thinking about")
    assert content == streamed["text"]["a"]
    assert (
        kinds.index("content") > kinds.index("reasoning")
        and "reasoning" not in kinds[kinds.index("content") :]
    )


def test_non_streamed_reasoning(each_site: tuple[Stack, Site]) -> None:
    pair, site = each_site
    prompt = unique("ponder")
    answer = pair.openai().chat.completions.create(
        model=MODELS[site].reasoning, messages=[{"role": "user", "content": prompt}]
    )
    (streamed,) = pair.arena_streams(prompt)
    message = answer.choices[0].message
    assert message.content == streamed["text"]["a"]
    assert message.model_extra["reasoning_content"] == streamed["reasoning"]["a"]


def test_an_unknown_model_is_a_404_in_openai_shape(pair: Stack) -> None:
    before = len(pair.arena_log()["requests"])
    with pytest.raises(openai.NotFoundError) as caught:
        pair.openai().chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    error = caught.value.body
    assert caught.value.status_code == 404
    assert error["code"] == "model_not_found" and "no-such-model" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert len(pair.arena_log()["requests"]) == before  # nothing reached the arena


def test_a_malformed_body_is_a_400_in_openai_shape(pair: Stack) -> None:
    response = httpx.post(
        f"{pair.base_url}/v1/chat/completions",
        content=b'{"model": "gemini-2.5-pro", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        pair.openai().chat.completions.create(model=CHAT, messages=[{"role": "user"}])
    assert caught.value.status_code == 400 and caught.value.body["param"]


def test_a_client_that_disconnects_stops_the_arena_and_frees_the_worker(fresh: Stack) -> None:
    # One worker with one slot: if the slot leaked, the next request could not be served.
    fresh.start_gateway()
    fresh.start_worker("solo", LMB_WORKER_CAPACITY="1")
    fresh.arena("POST", "scenario", json={"line_delay_seconds": 0.05})
    prompt = unique("a long answer " + "word " * 60)
    with fresh.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}], stream=True
    ) as stream:
        received = list(itertools.islice(stream, 4))
    assert len(received) == 4

    def stopped() -> dict | None:
        (streamed,) = fresh.arena_streams(prompt)
        return streamed if streamed["status"] in ("stopped", "disconnected") else None

    streamed = wait_until(stopped, what="the arena stream to end")
    stops = [r for r in fresh.arena_log()["requests"] if "/nextjs-api/stream/stop/" in r["path"]]
    assert [r["status"] for r in stops] == [200]
    assert stops[0]["path"].endswith(streamed["message_ids"]["a"])
    assert len(streamed["lines"]) < 60  # it did not run to the end

    fresh.arena("POST", "scenario", json={"line_delay_seconds": 0})
    follow = unique("and now")
    answer = fresh.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": follow}]
    )
    assert answer.choices[0].message.content == fresh.arena_streams(follow)[0]["text"]["a"]
    assert fresh.wait_worker("solo", "ready").busy == 0


def test_a_429_before_the_first_token_moves_to_another_worker_then_reaches_the_client(
    fresh: Stack,
) -> None:
    fresh.start_gateway()
    fresh.start_worker("rl-1")
    fresh.start_worker("rl-2")
    fresh.arena(
        "POST",
        "scenario",
        json={
            "failures": [
                {"kind": "rate_limit_429", "endpoint": "create", "retry_after": 30},
                {"kind": "rate_limit_429", "endpoint": "create", "after": 2, "retry_after": 30},
            ]
        },
    )
    prompt = unique("first")
    answer = fresh.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}]
    )
    assert answer.choices[0].message.content == fresh.arena_streams(prompt)[0]["text"]["a"]
    creates = [r for r in fresh.arena_log()["requests"] if r["path"].endswith("/create-evaluation")]
    assert [r["status"] for r in creates] == [429, 200]
    assert creates[0]["identity"] != creates[1]["identity"]  # two browsers: two workers

    limited = [n for n in ("rl-1", "rl-2") if fresh.worker_status(n).state.value == "cooling"]
    assert len(limited) == 1
    until = fresh.worker_status(limited[0]).until
    assert until is not None and until > time.time() + 20

    # The other worker meets the second 429 and nobody else is ready: the client gets it.
    with pytest.raises(openai.RateLimitError) as caught:
        fresh.openai().chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": unique("second")}]
        )
    assert caught.value.status_code == 429
    assert 0 < int(caught.value.response.headers["retry-after"]) <= 30
    assert caught.value.body["code"] == "rate_limit_exceeded"  # OpenAI's own code and type


def test_two_workers_share_eight_concurrent_requests(pair: Stack) -> None:
    pair.arena("POST", "scenario", json={"line_delay_seconds": 0.02})
    prompts = [unique(f"request {n}") for n in range(8)]

    def ask(prompt: str) -> str:
        chunks = pair.openai().chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": prompt}], stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(ask, prompts))
    for prompt, text in zip(prompts, texts, strict=True):
        assert text == pair.arena_streams(prompt)[0]["text"]["a"]
    owners = {session_owner(pair, prompt) for prompt in prompts}
    assert len(owners) == 2  # each worker's browser is its own arena identity
