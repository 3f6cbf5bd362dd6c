"""Anthropic Messages: requests → turns, events → message objects and stream events.

Outputs are checked against the installed `anthropic` SDK: its types must parse them, and its
own stream accumulator must rebuild the non-streamed message from the stream events.
"""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from gateway.apis.anthropic.render import MessageStream, message, signature, stop_reason
from gateway.apis.anthropic.schemas import parse_count_tokens_request, parse_messages_request
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import Turn
from gateway.http.errors import ApiError
from shared import events
from shared.events import Event

PROMPT = "What is new?"
THINKING = [events.reasoning("a", "Let me "), events.reasoning("a", "think.")]
ANSWER = [events.text("a", "Hello "), events.text("a", "there.")]


def request(**fields: Any) -> bytes:
    body = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    return orjson.dumps({**body, **fields})


def refusal(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_messages_request(raw)
    assert caught.value.status == 400
    return caught.value


# --- requests ---


def test_system_and_content_blocks_become_turns() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    linked = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
    body = parse_messages_request(
        request(
            system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Look:"}, image, linked]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "x"},
                        {"type": "text", "text": "A cat."},
                    ],
                },
                {"role": "user", "content": "And now?"},
            ],
        )
    )
    assert body.turns() == [
        Turn("system", "Be terse.\nBe kind."),
        Turn(
            "user",
            "Look:",
            (ImageSource("data:image/png;base64,iVBO"), ImageSource("https://example.com/a.jpg")),
        ),
        Turn("assistant", "A cat."),  # earlier thinking is left out
        Turn("user", "And now?"),
    ]


def test_a_system_string_and_tool_blocks_are_turns_of_the_transcript() -> None:
    body = parse_messages_request(
        request(
            system="Rules.",
            messages=[
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "weather",
                            "input": {"city": "Oslo"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "Rain."}],
                },
            ],
        )
    )
    assert [(t.role, t.body) for t in body.turns()] == [
        ("system", "Rules."),
        ("user", "Weather?"),
        ("assistant", '<tool_call>{"name": "weather", "arguments": {"city":"Oslo"}}</tool_call>'),
        ("tool", "weather returned:\nRain."),
    ]


def test_thinking_is_shown_unless_the_client_disables_it() -> None:
    assert parse_messages_request(request()).show_thinking
    assert parse_messages_request(
        request(thinking={"type": "enabled", "budget_tokens": 2000})
    ).show_thinking
    assert not parse_messages_request(request(thinking={"type": "disabled"})).show_thinking


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"messages": []}, "messages: at least one message is required"),
        (
            {"messages": [{"role": "assistant", "content": "hi"}]},
            'messages.0.role: the first message must use the "user" role',
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            'messages.1.role: roles must alternate between "user" and "assistant", but found '
            'multiple "user" roles in a row',
        ),
        (
            {"messages": [{"role": "robot", "content": "hi"}]},
            "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
            "messages.0.content.0.type: Field required",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/bmp", "data": ""},
                            }
                        ],
                    }
                ]
            },
            "messages.0.content.0.source.media_type: Input should be 'image/jpeg', 'image/png',"
            " 'image/gif' or 'image/webp'",
        ),
        ({"system": 5}, "system: Input should be a valid string"),
    ],
)
def test_invalid_requests_say_what_is_wrong_as_anthropic_does(fields: dict, message: str) -> None:
    assert refusal(request(**fields)).message == message


def test_max_tokens_is_required_but_not_to_count_tokens() -> None:
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert refusal(raw).message == "max_tokens: Field required"
    assert parse_count_tokens_request(raw).turns() == [Turn("user", "hi")]


@pytest.mark.parametrize("raw", [b"{", b"[]"])
def test_a_body_that_is_not_a_json_object_is_a_400(raw: bytes) -> None:
    assert refusal(raw).message


# --- answers ---


@pytest.mark.parametrize(
    ("arena", "anthropic_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content-filter", "refusal"),
        ("tool-calls", "tool_use"),
        ("unknown", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(arena: str | None, anthropic_reason: str) -> None:
    assert stop_reason(arena) == anthropic_reason


def streamed(
    answer: list[Event], *, show_thinking: bool = True, failure: ApiError | None = None
) -> list[dict]:
    frames = MessageStream("msg_1", "m", PROMPT, show_thinking=show_thinking)
    raw = frames.start() + b"".join(frames.event(e) for e in answer)
    raw += frames.error(failure) if failure else frames.end()
    parsed = []
    for frame in raw.decode().split("\n\n")[:-1]:
        name, data = frame.split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"  # every frame is named by its type
        parsed.append(event)
    return parsed


def rebuilt(stream: list[dict]) -> anthropic.types.Message:
    """What the SDK's own accumulator makes of the stream events."""
    snapshot = None
    for event in stream:
        if event["type"] != "ping":
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs={})
    assert snapshot is not None
    return snapshot


def test_the_stream_has_anthropics_event_sequence() -> None:
    answer = [*THINKING, *ANSWER, events.finish("a", "stop")]
    stream = streamed(answer)
    assert [(e["type"], e.get("delta", {}).get("type")) for e in stream] == [
        ("message_start", None),
        ("ping", None),
        ("content_block_start", None),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", None),
        ("content_block_delta", "text_delta"),
        ("content_block_delta", "text_delta"),
        ("content_block_stop", None),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert [e["index"] for e in stream if "index" in e] == [0] * 5 + [1] * 4
    assert stream[0]["message"]["usage"] == {"input_tokens": 3, "output_tokens": 0}
    assert stream[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert stream[-2]["usage"]["output_tokens"] == 7  # 25 characters, about 4 a token


def test_the_sdk_rebuilds_the_non_streamed_message_from_the_stream() -> None:
    answer = [
        events.accepted("w1", 0),
        *THINKING,
        *ANSWER,
        events.finish("a", "length"),
        events.done(),
    ]
    whole = message("msg_1", "m", PROMPT, answer, show_thinking=True)
    parsed = anthropic.types.Message.model_validate(whole)
    assert [b.type for b in parsed.content] == ["thinking", "text"]
    assert parsed.content[0].thinking == "Let me think."
    assert parsed.content[0].signature == signature("Let me think.")
    assert parsed.content[1].text == "Hello there."
    assert parsed.stop_reason == "max_tokens"
    assert rebuilt(streamed(answer)).to_dict(exclude_none=True) == parsed.to_dict(exclude_none=True)


def test_reasoning_is_left_out_when_thinking_is_disabled() -> None:
    answer = [*THINKING, *ANSWER, events.finish("a", "stop")]
    whole = message("msg_1", "m", PROMPT, answer, show_thinking=False)
    assert [b["type"] for b in whole["content"]] == ["text"]
    assert rebuilt(streamed(answer, show_thinking=False)).content[0].text == "Hello there."


def test_search_sources_become_web_search_citations_the_sdk_parses() -> None:
    # As the arena sends them: a short source, the other in full, then the list of both.
    one = {"url": "https://example.com/1", "id": "1", "charLocation": [6]}
    two = {**one, "url": "https://example.com/2", "id": "2", "charLocation": [12], "title": "Two"}
    answer = [
        events.text("a", "Hello "),
        events.citation("a", one),
        events.text("a", "there."),
        events.citation("a", two),
        events.citation("a", {**one, "title": "One"}),
        events.citation("a", two),
        events.finish("a", "unknown"),
    ]
    whole = message("msg_1", "m", PROMPT, answer, show_thinking=True)
    (text,) = anthropic.types.Message.model_validate(whole).content
    assert [(c.type, c.url, c.title, c.cited_text, c.encrypted_index) for c in text.citations] == [
        ("web_search_result_location", "https://example.com/1", "One", "Hello", "1"),
        ("web_search_result_location", "https://example.com/2", "Two", "there.", "2"),
    ]
    stream = streamed(answer)
    deltas = [e["delta"]["type"] for e in stream if e["type"] == "content_block_delta"]
    assert deltas == ["text_delta", "text_delta", "citations_delta", "citations_delta"]
    assert rebuilt(stream).to_dict(exclude_none=True) == anthropic.types.Message.model_validate(
        whole
    ).to_dict(exclude_none=True)


def test_a_generated_image_is_a_markdown_image_in_the_text() -> None:
    answer = [events.image("a", "https://x/1.png", "image/png"), events.finish("a", "stop")]
    whole = message("msg_1", "m", PROMPT, answer, show_thinking=True)
    assert whole["content"] == [
        {"type": "text", "text": "![image](https://x/1.png)", "citations": None}
    ]


def test_an_answer_without_content_has_no_blocks() -> None:
    whole = message("msg_1", "m", PROMPT, [events.finish("a", "stop")], show_thinking=True)
    assert whole["content"] == [] and whole["usage"] == {"input_tokens": 3, "output_tokens": 0}
    assert [e["type"] for e in streamed([])][-2:] == ["message_delta", "message_stop"]


def test_a_failure_after_the_first_byte_is_an_error_event_the_sdk_raises() -> None:
    failure = ApiError(429, "slow down")
    stream = streamed(ANSWER, failure=failure)
    assert stream[-1] == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert "message_stop" not in [e["type"] for e in stream]
