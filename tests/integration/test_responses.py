"""OpenAI Responses end to end: openai SDK → gateway → Redis/arq → browser worker → fake arena.

Every process is real and separate (redis-server, the fake arena, `lmarena-bridge gateway` and
`lmarena-bridge worker` with headless Chromium); the `openai` SDK is the client.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import openai
import pytest

from tests.fakearena import png
from tests.fakearena.replies import pieces
from tests.support.sites import DEFAULT
from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

CHAT = DEFAULT.chat  # takes images
REASONING = DEFAULT.reasoning
SEARCH = DEFAULT.search


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway and one worker of four slots, shared by every test here."""
    with running(tmp_path_factory.mktemp("responses"), "w1", LMB_WORKER_CAPACITY="4") as stack:
        yield stack


def test_a_response_is_what_the_arena_answered(stack: Stack) -> None:
    prompt = unique("tell me a story")
    answer = stack.openai().responses.create(model=CHAT, input=prompt)
    (streamed,) = stack.arena_streams(prompt)
    assert answer.object == "response" and answer.status == "completed" and answer.model == CHAT
    assert answer.output_text == streamed["text"]["a"] and answer.output_text.endswith(prompt)
    assert [item.type for item in answer.output] == ["message"]
    assert answer.usage.total_tokens == answer.usage.input_tokens + answer.usage.output_tokens > 0


def test_a_streamed_response_through_the_sdks_stream_helper(stack: Stack) -> None:
    prompt = unique("stream to me")
    with stack.openai().responses.stream(model=CHAT, input=prompt) as stream:
        events = list(stream)
        final = stream.get_final_response()
    (streamed,) = stack.arena_streams(prompt)
    text = streamed["text"]["a"]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == text and len(deltas) == len(pieces(text))
    assert final.output_text == text and final.status == "completed"
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_reasoning_is_a_reasoning_item_before_the_message(stack: Stack) -> None:
    prompt = unique("think it over")
    events = list(stack.openai().responses.create(model=REASONING, input=prompt, stream=True))
    (streamed,) = stack.arena_streams(prompt)
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert thought == streamed["reasoning"]["a"]
    final = events[-1].response
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == thought
    assert message.type == "message" and final.output_text == streamed["text"]["a"]

    whole = stack.openai().responses.create(model=REASONING, input=unique("once more"))
    assert [item.type for item in whole.output] == ["reasoning", "message"]


def test_instructions_and_input_items_reach_the_arena_as_a_transcript(stack: Stack) -> None:
    first = unique("Who are you?")
    answer = stack.openai().responses.create(
        model=CHAT,
        instructions="You are terse.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": first}]},
            {"role": "assistant", "content": "A bot."},
            {"role": "user", "content": "Really?"},
        ],
    )
    sent = next(s for s in stack.arena_log()["sessions"] if first in s["turns"][0]["text"])
    assert sent["turns"][0]["text"] == (
        f"<system>\nYou are terse.\n</system>\n\n<user>\n{first}\n</user>\n\n"
        "<assistant>\nA bot.\n</assistant>\n\n<user>\nReally?\n</user>"
    )
    assert answer.instructions == "You are terse."


def test_search_sources_are_url_citations(stack: Stack) -> None:
    prompt = unique("search the news")
    answer = stack.openai().responses.create(model=SEARCH, input=prompt)
    (streamed,) = stack.arena_streams(prompt)
    text = streamed["text"]["a"]
    words = pieces(text)
    first, second = len("".join(words[:2])), len("".join(words[:4]))
    annotations = answer.output[0].content[0].annotations
    assert [(a.type, a.url, a.start_index, a.end_index) for a in annotations] == [
        ("url_citation", "https://example.com/search/1", 0, first),
        ("url_citation", "https://example.com/search/2", first, second),
    ]


def test_an_input_image_is_uploaded_to_the_arena(stack: Stack) -> None:
    prompt = unique("what is in this picture?")
    image = png.image_for("a blue square")
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    answer = stack.openai().responses.create(
        model=CHAT,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": prompt},
                    {"type": "input_image", "image_url": url, "detail": "auto"},
                ],
            }
        ],
    )
    assert f"[image/png, {len(image)} bytes]" in answer.output_text


def test_an_unknown_model_is_a_404_in_openai_shape(stack: Stack) -> None:
    before = stack.arena_writes()
    with pytest.raises(openai.NotFoundError) as caught:
        stack.openai().responses.create(model="no-such-model", input="hi")
    assert (
        caught.value.body["code"] == "model_not_found"
        and "no-such-model" in caught.value.body["message"]
    )
    assert stack.arena_writes() == before


def test_an_invalid_request_is_a_400_naming_the_parameter(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        stack.openai().responses.create(model=CHAT, input="hi", previous_response_id="resp_1")
    assert caught.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as caught:
        stack.openai().responses.create(
            model=CHAT, input=[{"type": "function_call_output", "output": "x"}]
        )
    assert caught.value.body["param"] == "input[0].call_id"


def test_a_rate_limit_before_the_first_token_is_a_429(
    stack: Stack, fail_next: Callable[..., None]
) -> None:
    fail_next("rate_limit_429", retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        stack.openai().responses.create(model=CHAT, input=unique("hi"), stream=True)
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert 0 < int(caught.value.response.headers["retry-after"]) <= 2
    stack.wait_worker("w1", "ready", timeout=15)


def test_a_failure_after_the_first_token_is_an_error_then_a_failed_response(
    stack: Stack, fail_next: Callable[..., None]
) -> None:
    fail_next("error_line", message="It broke.")
    events = list(stack.openai().responses.create(model=CHAT, input=unique("go"), stream=True))
    assert "response.output_text.delta" in [e.type for e in events]
    error, failed = events[-2:]
    assert error.type == "error" and error.message == "It broke." and error.code == "server_error"
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error.message == "It broke."
