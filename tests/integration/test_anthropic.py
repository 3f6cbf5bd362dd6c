"""Anthropic Messages end to end: anthropic SDK → gateway → Redis/arq → browser worker → fake arena.

Every process is real and separate (redis-server, the fake arena, `lmarena-bridge gateway` and
`lmarena-bridge worker` with headless Chromium); the `anthropic` SDK is the client.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator

import anthropic
import httpx
import pytest
from redis.asyncio import Redis

from shared.credentials.client_keys import KeySpec, KeyStore
from tests.fakearena import png
from tests.fakearena.replies import pieces
from tests.support.sites import DEFAULT
from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

CHAT = DEFAULT.chat  # takes images
REASONING = DEFAULT.reasoning
SEARCH = DEFAULT.search
TEXT_ONLY = DEFAULT.text_only


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway and one worker of four slots, shared by every test here."""
    with running(tmp_path_factory.mktemp("anthropic"), "w1", LMB_WORKER_CAPACITY="4") as stack:
        yield stack


def client(stack: Stack, **options) -> anthropic.Anthropic:
    # No SDK retries: a test must see the first answer the bridge gives.
    return anthropic.Anthropic(
        base_url=stack.base_url, api_key="unused", max_retries=0, timeout=60, **options
    )


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_a_message_is_what_the_arena_answered(stack: Stack) -> None:
    prompt = unique("tell me a story")
    answer = client(stack).messages.create(model=CHAT, max_tokens=1024, messages=ask(prompt))
    (streamed,) = stack.arena_streams(prompt)
    assert answer.type == "message" and answer.role == "assistant" and answer.model == CHAT
    assert [block.type for block in answer.content] == ["text"]
    assert answer.content[0].text == streamed["text"]["a"] and prompt in answer.content[0].text
    assert answer.stop_reason == "end_turn"
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0


def test_a_streamed_message_arrives_as_anthropics_events(stack: Stack) -> None:
    prompt = unique("stream to me")
    with client(stack).messages.stream(model=CHAT, max_tokens=1024, messages=ask(prompt)) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    (streamed,) = stack.arena_streams(prompt)
    text = streamed["text"]["a"]
    assert final.content[0].text == text and final.stop_reason == "end_turn"
    # The SDK's stream adds its own `text` events beside each raw delta.
    raw = [k for k in kinds if k not in ("text", "thinking", "signature", "citation")]
    deltas = len(pieces(text))
    assert raw == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert final.usage.output_tokens > 0


def test_the_sse_frames_include_ping_and_name_each_event(stack: Stack) -> None:
    prompt = unique("raw frames")
    body = {"model": CHAT, "max_tokens": 64, "stream": True, "messages": ask(prompt)}
    with httpx.stream("POST", f"{stack.base_url}/v1/messages", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        names = [
            line.removeprefix("event: ")
            for line in response.iter_lines()
            if line.startswith("event: ")
        ]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == [
        "message_delta",
        "message_stop",
    ]


def test_reasoning_comes_as_a_thinking_block_before_the_text(stack: Stack) -> None:
    prompt = unique("think it over")
    with client(stack).messages.stream(
        model=REASONING, max_tokens=1024, messages=ask(prompt)
    ) as stream:
        thinking = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    (streamed,) = stack.arena_streams(prompt)
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert thinking == final.content[0].thinking == streamed["reasoning"]["a"]
    assert final.content[0].signature
    assert final.content[1].text == streamed["text"]["a"]

    # Not streamed, and sent back in the next turn as the SDK keeps it: accepted, left out.
    again = unique("and again")
    answer = client(stack).messages.create(
        model=REASONING,
        max_tokens=1024,
        messages=[*ask(prompt), {"role": "assistant", "content": final.content}, *ask(again)],
    )
    assert [b.type for b in answer.content] == ["thinking", "text"]
    assert answer.content[1].text.endswith(again)


def test_thinking_disabled_leaves_reasoning_out(stack: Stack) -> None:
    prompt = unique("no thoughts")
    answer = client(stack).messages.create(
        model=REASONING, max_tokens=64, messages=ask(prompt), thinking={"type": "disabled"}
    )
    assert [b.type for b in answer.content] == ["text"]


def test_system_prompt_and_history_reach_the_arena_as_a_transcript(stack: Stack) -> None:
    first = unique("Who are you?")
    answer = client(stack).messages.create(
        model=CHAT,
        max_tokens=64,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[*ask(first), {"role": "assistant", "content": "A bot."}, *ask("Really?")],
    )
    sent = next(s for s in stack.arena_log()["sessions"] if first in s["turns"][0]["text"])
    assert sent["turns"][0]["text"] == (
        f"<system>\nYou are terse.\n</system>\n\n<user>\n{first}\n</user>\n\n"
        "<assistant>\nA bot.\n</assistant>\n\n<user>\nReally?\n</user>"
    )
    assert answer.content[0].text.endswith("Really?\n</user>")


def test_search_sources_are_web_search_citations(stack: Stack) -> None:
    prompt = unique("search the news")
    answer = client(stack).messages.create(model=SEARCH, max_tokens=1024, messages=ask(prompt))
    (streamed,) = stack.arena_streams(prompt)
    (block,) = answer.content
    text = streamed["text"]["a"]
    assert block.text == text
    words = pieces(text)
    first, second = len("".join(words[:2])), len("".join(words[:4]))
    assert [(c.type, c.url, c.cited_text, c.encrypted_index) for c in block.citations] == [
        ("web_search_result_location", "https://example.com/search/1", text[:first].strip(), "1"),
        (
            "web_search_result_location",
            "https://example.com/search/2",
            text[first:second].strip(),
            "2",
        ),
    ]
    assert all(c.title and c.title.startswith("Result ") for c in block.citations)

    with client(stack).messages.stream(
        model=SEARCH, max_tokens=1024, messages=ask(unique("again"))
    ) as stream:
        cited = [e.citation.url for e in stream if e.type == "citation"]
    assert cited == ["https://example.com/search/1", "https://example.com/search/2"]


def test_a_base64_image_is_uploaded_to_the_arena(stack: Stack) -> None:
    prompt = unique("what is in this picture?")
    image = png.image_for("a red square")
    content = [
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/png",
                "data": base64.b64encode(image).decode(),
            },
        },
        {"type": "text", "text": prompt},
    ]
    answer = client(stack).messages.create(
        model=CHAT, max_tokens=64, messages=[{"role": "user", "content": content}]
    )
    (streamed,) = stack.arena_streams(prompt)
    assert f"[image/png, {len(image)} bytes]" in answer.content[0].text
    assert answer.content[0].text == streamed["text"]["a"]


def test_count_tokens_is_the_estimate_usage_reports(stack: Stack) -> None:
    prompt = unique("count me in " * 10)
    counted = client(stack).messages.count_tokens(model=CHAT, messages=ask(prompt))
    answer = client(stack).messages.create(model=CHAT, max_tokens=64, messages=ask(prompt))
    assert counted.input_tokens == answer.usage.input_tokens == -(-len(prompt) // 4)


def test_a_key_in_x_api_key_is_accepted(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.base_url}/v1/messages/count_tokens",
        json={"model": CHAT, "messages": ask("hi")},
        headers={"x-api-key": "anything-on-an-open-bridge"},
    )
    assert response.status_code == 200 and response.json() == {"input_tokens": 1}


# --- errors, in Anthropic's shape ---


def anthropic_error(
    caught: pytest.ExceptionInfo[anthropic.APIStatusError], status: int, type_: str
) -> str:
    assert caught.value.status_code == status
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == type_
    return body["error"]["message"]


def test_an_unknown_model_is_a_not_found_error_and_nothing_is_queued(stack: Stack) -> None:
    before = stack.arena_writes()
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(stack).messages.create(model="no-such-model", max_tokens=10, messages=ask("hi"))
    assert "no-such-model" in anthropic_error(caught, 404, "not_found_error")
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(stack).messages.count_tokens(model="no-such-model", messages=ask("hi"))
    anthropic_error(caught, 404, "not_found_error")
    assert stack.arena_writes() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"model": CHAT, "messages": [{"role": "user", "content": "hi"}]},
            "max_tokens: Field required",
        ),
        (
            {"model": CHAT, "max_tokens": 5, "messages": [{"role": "assistant", "content": "hi"}]},
            'messages.0.role: the first message must use the "user" role',
        ),
        (
            {"model": "battle", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            "A message holds one answer: ask /v1/chat/completions for two models at once.",
        ),
    ],
)
def test_an_invalid_request_is_an_invalid_request_error(
    stack: Stack, body: dict, message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(stack).post("/v1/messages", cast_to=object, body=body)
    assert anthropic_error(caught, 400, "invalid_request_error") == message


def test_an_image_for_a_text_only_model_is_a_400(stack: Stack) -> None:
    image = {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(png.image_for("x")).decode(),
        },
    }
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(stack).messages.create(
            model=TEXT_ONLY, max_tokens=5, messages=[{"role": "user", "content": [image]}]
        )
    assert TEXT_ONLY in anthropic_error(caught, 400, "invalid_request_error")


def test_an_image_url_is_fetched_by_the_gateway_within_its_limits(stack: Stack) -> None:
    # The gateway fetches URL images itself, and never from private or loopback addresses.
    source = {"type": "url", "url": f"{stack.arena_url}/r2/any.png"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(stack).messages.create(
            model=CHAT,
            max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "image", "source": source}]}],
        )
    assert "private or local address" in anthropic_error(caught, 400, "invalid_request_error")


def test_unknown_routes_and_oversized_bodies_answer_in_anthropics_shape(stack: Stack) -> None:
    response = httpx.post(f"{stack.base_url}/v1/messages/batches", json={})
    assert response.status_code in (404, 405)
    assert response.json()["type"] == "error" and response.json()["error"]["message"]
    big = httpx.post(
        f"{stack.base_url}/api/v1/messages",
        content=b"x" * (20 * 1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413
    assert big.json() == {
        "type": "error",
        "error": {"type": "request_too_large", "message": big.json()["error"]["message"]},
    }


def test_the_arenas_rate_limit_is_a_rate_limit_error_with_retry_after(
    stack: Stack, fail_next: Callable[..., None]
) -> None:
    fail_next("rate_limit_429", retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client(stack).messages.create(model=CHAT, max_tokens=5, messages=ask(unique("hi")))
    anthropic_error(caught, 429, "rate_limit_error")
    assert 0 < int(caught.value.response.headers["retry-after"]) <= 2
    stack.wait_worker("w1", "ready", timeout=15)  # the worker sits out the limit, then serves again


def test_a_failure_after_the_first_token_is_an_error_event_the_sdk_raises(
    stack: Stack, fail_next: Callable[..., None]
) -> None:
    fail_next("error_line", message="It broke.")
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client(stack).messages.stream(
            model=CHAT, max_tokens=64, messages=ask(unique("go"))
        ) as stream,
    ):
        for event in stream:
            received.append(event.type)
    assert received[0] == "message_start" and "content_block_delta" in received
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["message"] == "It broke."


def test_keys_are_read_from_x_api_key_and_refusals_are_authentication_errors(stack: Stack) -> None:
    # A gateway of its own on an empty Redis database holding one key: the bridge is closed.
    keyed = Stack(
        stack.redis_url.rsplit("/", 1)[0] + "/1", stack.arena_url, stack.workdir / "keyed"
    )
    keyed.workdir.mkdir()
    try:
        keyed.redis.flushdb()
        key = asyncio.run(_make_key(keyed.redis_url))
        keyed.start_gateway()
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client(keyed).messages.create(model=CHAT, max_tokens=5, messages=ask("hi"))
        assert anthropic_error(caught, 401, "authentication_error") == "Incorrect API key provided."
        # The right key gets past the check (to the empty fleet: no catalog here, so a 503).
        with pytest.raises(anthropic.ServiceUnavailableError) as unavailable:
            anthropic.Anthropic(
                base_url=keyed.base_url, api_key=key, max_retries=0
            ).messages.create(model=CHAT, max_tokens=5, messages=ask("hi"))
        anthropic_error(unavailable, 503, "overloaded_error")
    finally:
        keyed.close()
        keyed.redis.flushdb()


async def _make_key(redis_url: str) -> str:
    redis = Redis.from_url(redis_url)
    try:
        key, _ = await KeyStore(redis).create(KeySpec(name="anthropic-test"))
    finally:
        await redis.aclose()
    return key
