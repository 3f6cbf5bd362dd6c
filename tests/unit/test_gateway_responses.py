"""OpenAI Responses: requests → turns, events → response objects and stream events.

Outputs are checked against the installed `openai` SDK: its types must parse them, and its own
stream state (what `client.responses.stream()` runs) must accept the events and end with the
same response as the non-streamed one.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import NOT_GIVEN
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from gateway.apis.responses.render import ResponseStream, response
from gateway.apis.responses.schemas import parse_responses_request
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import Turn
from gateway.http.errors import ApiError
from shared import events
from shared.events import Event

PROMPT = "What is new?"
THINKING = [events.reasoning("a", "Let me "), events.reasoning("a", "think.")]
ANSWER = [events.text("a", "Hello "), events.text("a", "there.")]
HEAD = ("resp_abc", "m", 1_700_000_000, "Be terse.")


def request(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "input": "hi", **fields})


def refusal(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_responses_request(raw)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
    return caught.value


# --- requests ---


def test_a_string_input_is_one_user_turn_after_the_instructions() -> None:
    body = parse_responses_request(request(instructions="Be terse."))
    assert body.turns() == [Turn("system", "Be terse."), Turn("user", "hi")]
    assert not body.stream


def test_input_items_become_turns() -> None:
    body = parse_responses_request(
        request(
            input=[
                {"role": "developer", "content": "Rules."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,iVBO",
                            "detail": "auto",
                        },
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "A cat.", "annotations": []}],
                },
                {"role": "user", "content": "Sure?"},
            ]
        )
    )
    assert body.turns() == [
        Turn("system", "Rules."),
        Turn("user", "What is this?", (ImageSource("data:image/png;base64,iVBO"),)),
        Turn("assistant", "A cat."),
        Turn("user", "Sure?"),
    ]


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"model": None}, "model", "Invalid value for 'model': Input should be a valid string."),
        ({"input": 5}, "input", "Invalid value for 'input': Input should be a valid string."),
        (
            {"input": [{"type": "function_call", "name": "f"}]},
            "input[0].call_id",
            "Missing required parameter: 'input[0].call_id'.",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}
                ]
            },
            "input[0].content[0].image_url",
            "Missing required parameter: 'input[0].content[0].image_url'.",
        ),
    ],
)
def test_invalid_requests_name_the_parameter(fields: dict, param: str, message: str) -> None:
    error = refusal(request(**fields))
    assert (error.param, error.message) == (param, message)


# --- answers ---


def streamed(answer: list[Event], failure: ApiError | None = None) -> list[dict]:
    frames = ResponseStream(*HEAD, PROMPT)
    raw = frames.start() + b"".join(frames.event(e) for e in answer)
    raw += frames.error(failure) if failure else frames.end()
    parsed = []
    for frame in raw.decode().split("\n\n")[:-1]:
        name, data = frame.split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        parsed.append(event)
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    return parsed


def sdk_final(stream: list[dict]) -> Response:
    """The response the SDK's stream state ends with, having checked every event on the way."""
    state = ResponseStreamState(input_tools=NOT_GIVEN, text_format=NOT_GIVEN)
    for event in stream:
        list(state.handle_event(construct_type(type_=ResponseStreamEvent, value=event)))
    completed = state._completed_response
    assert completed is not None
    return completed


def test_the_stream_has_the_responses_event_sequence() -> None:
    stream = streamed([*THINKING, *ANSWER, events.finish("a", "stop")])
    assert [e["type"] for e in stream] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert (
        stream[0]["response"]["status"] == "in_progress" and stream[0]["response"]["output"] == []
    )
    assert [e["delta"] for e in stream if e["type"] == "response.output_text.delta"] == [
        "Hello ",
        "there.",
    ]
    assert stream[-1]["response"]["usage"]["total_tokens"] == 3 + 7


def test_the_sdk_ends_the_stream_with_the_non_streamed_response() -> None:
    answer = [
        events.accepted("w1", 0),
        *THINKING,
        *ANSWER,
        events.finish("a", "stop"),
        events.done(),
    ]
    whole = Response.model_validate(response(*HEAD, PROMPT, answer))
    assert whole.output_text == "Hello there."
    assert whole.status == "completed" and whole.instructions == "Be terse."
    reasoning, answered = whole.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Let me think."
    assert answered.type == "message" and answered.status == "completed"
    final = sdk_final(streamed(answer))
    assert final.output_text == "Hello there."
    assert final.to_dict(exclude_none=True) == whole.to_dict(exclude_none=True)


def test_a_length_finish_leaves_the_response_incomplete() -> None:
    answer = [*ANSWER, events.finish("a", "length")]
    whole = response(*HEAD, PROMPT, answer)
    assert whole["status"] == "incomplete"
    assert whole["incomplete_details"] == {"reason": "max_output_tokens"}
    last = streamed(answer)[-1]
    assert last["type"] == "response.incomplete" and last["response"]["status"] == "incomplete"


def test_search_sources_become_url_citations() -> None:
    one = {"url": "https://example.com/1", "id": "1", "charLocation": [6]}
    answer = [
        events.text("a", "Hello "),
        events.citation("a", one),
        events.text("a", "there."),
        events.citation("a", {**one, "title": "One"}),
        events.finish("a", "unknown"),
    ]
    whole = Response.model_validate(response(*HEAD, PROMPT, answer))
    (part,) = whole.output[0].content
    assert [a.to_dict() for a in part.annotations] == [
        {
            "type": "url_citation",
            "start_index": 0,
            "end_index": 6,
            "title": "One",
            "url": "https://example.com/1",
        }
    ]
    stream = streamed(answer)
    assert "response.output_text.annotation.added" in [e["type"] for e in stream]
    assert sdk_final(stream).to_dict(exclude_none=True) == whole.to_dict(exclude_none=True)


def test_a_failure_after_the_first_byte_is_an_error_then_a_failed_response() -> None:
    stream = streamed(ANSWER, failure=ApiError(502, "the arena failed"))
    error, failed = stream[-2:]
    assert error == {
        "type": "error",
        "code": "server_error",
        "message": "the arena failed",
        "param": None,
        "sequence_number": error["sequence_number"],
    }
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "the arena failed"}
    # What was answered before the failure is kept.
    assert failed["response"]["output"][0]["content"][0]["text"] == "Hello there."
