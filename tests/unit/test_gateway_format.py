from __future__ import annotations

import orjson
import pytest

from gateway.answers.tokens import estimate_tokens
from gateway.apis.openai.render import DONE, ChunkStream, completion, finish_reason
from gateway.http import errors
from shared import events

ID = "chatcmpl-abc"
HEAD = '{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"m",'
HEAD += '"system_fingerprint":null,"choices":'


def frame(choices: str, usage: str | None = None) -> bytes:
    tail = "" if usage is None else f',"usage":{usage}'
    return f"data: {HEAD}{choices}{tail}}}\n\n".encode()


def choice(delta: str, finish: str = "null") -> str:
    return f'[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]'


def stream(include_usage: bool = False, prompt: str = "hello") -> ChunkStream:
    return ChunkStream(ID, "m", 1_700_000_000, prompt, include_usage=include_usage)


@pytest.mark.parametrize(
    ("arena", "openai"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content-filter", "content_filter"),
        ("tool-calls", "tool_calls"),
        ("error", "stop"),
        ("other", "stop"),
        ("unknown", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons_map_to_openai_values(arena: str | None, openai: str) -> None:
    assert finish_reason(arena) == openai


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (4, 1), (5, 2), (400, 100)])
def test_token_estimate_is_a_quarter_of_the_characters_rounded_up(chars: int, tokens: int) -> None:
    assert estimate_tokens(chars) == tokens


def test_a_streamed_answer_frame_by_frame() -> None:
    chunks = stream()
    sent = [
        chunks.start(),
        chunks.event(events.accepted("w1", 0)),
        chunks.event(events.reasoning("a", "thinking…")),
        chunks.event(events.text("a", 'He said "hi"\n')),
        chunks.event(events.citation("a", {"url": "https://example.org"})),
        chunks.event(events.finish("a", "length")),
        chunks.end(),
    ]
    assert sent == [
        frame(choice('{"role":"assistant","content":""}')),
        b"",
        frame(choice('{"reasoning_content":"thinking…"}')),
        frame(choice('{"content":"He said \\"hi\\"\\n"}')),
        b"",
        frame(
            choice(
                '{"annotations":[{"type":"url_citation","url_citation":{"url":"https://example.org",'
                '"title":"https://example.org","start_index":0,"end_index":13}}]}',
                '"length"',
            )
        ),
        DONE,
    ]


def test_usage_is_asked_for_so_every_chunk_has_it_and_a_last_chunk_carries_it() -> None:
    chunks = stream(include_usage=True)
    body = (
        chunks.start()
        + chunks.event(events.text("a", "abc"))
        + chunks.event(events.finish("a", "stop", {"promptTokens": 7, "completionTokens": 3}))
        + chunks.end()
    )
    assert body == b"".join(
        [
            frame(choice('{"role":"assistant","content":""}'), "null"),
            frame(choice('{"content":"abc"}'), "null"),
            frame(choice("{}", '"stop"'), "null"),
            frame("[]", '{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}'),
            DONE,
        ]
    )


def test_an_answer_ended_without_finish_still_gets_a_finish_chunk_and_estimated_usage() -> None:
    chunks = stream(include_usage=True, prompt="x" * 9)
    chunks.event(events.text("a", "y" * 6))
    assert chunks.end() == b"".join(
        [
            frame(choice("{}", '"stop"'), "null"),
            frame("[]", '{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}'),
            DONE,
        ]
    )


def test_nothing_after_finish_reaches_the_client() -> None:
    chunks = stream()
    chunks.event(events.finish("a", "stop"))
    assert chunks.event(events.text("a", "late")) == b""
    assert chunks.end() == DONE


def test_images_become_markdown_separated_from_text() -> None:
    chunks = stream()
    part = '"type":"image_url","image_url":{"url":"https://x/%d.png"}'
    assert chunks.event(events.image("a", "https://x/1.png", "image/png")) == frame(
        choice('{"content":"![image](https://x/1.png)","images":[{"index":0,%s}]}' % (part % 1))
    )
    assert chunks.event(events.image("a", "https://x/2.png", "image/png")) == frame(
        choice(
            '{"content":"\\n\\n![image](https://x/2.png)","images":[{"index":1,%s}]}' % (part % 2)
        )
    )


def test_a_non_streamed_image_answer_lists_its_images_beside_the_markdown() -> None:
    answer = completion(ID, "m", 1, "p", [events.image("a", "https://x/1.png", "image/png")])
    message = answer["choices"][0]["message"]
    assert message["content"] == "![image](https://x/1.png)"
    assert message["images"] == [{"type": "image_url", "image_url": {"url": "https://x/1.png"}}]


def test_search_sources_become_url_citations_over_the_text_they_support() -> None:
    said = [
        events.text("a", "Otters hold hands. "),
        events.citation("a", {"url": "https://a.example", "id": "1", "charLocation": [19]}),
        events.text("a", "They sleep afloat."),
        events.citation("a", {"url": "https://b.example", "id": "2", "charLocation": [37]}),
        events.citation("a", {"url": "https://a.example", "title": "A"}),
        events.finish("a", "unknown"),
    ]
    message = completion(ID, "m", 1, "p", said)["choices"][0]["message"]
    assert message["annotations"] == [
        {
            "type": "url_citation",
            "url_citation": {
                "url": "https://a.example",
                "title": "A",
                "start_index": 0,
                "end_index": 19,
            },
        },
        {
            "type": "url_citation",
            "url_citation": {
                "url": "https://b.example",
                "title": "https://b.example",
                "start_index": 19,
                "end_index": 37,
            },
        },
    ]
    chunks = stream()
    frames = b"".join(chunks.event(e) for e in said)
    last = orjson.loads(frames.rsplit(b"data: ", 1)[1])
    assert last["choices"][0]["delta"]["annotations"] == message["annotations"]
    assert last["choices"][0]["finish_reason"] == "stop"


def test_a_battle_answers_as_two_choices_each_with_its_model_when_shown() -> None:
    said = [
        events.text("a", "left"),
        events.text("b", "right"),
        events.finish("b", "stop"),
        events.text("a", " more"),
        events.finish("a", "length"),
    ]
    answer = completion(ID, "side-by-side:x,y", 1, "p", said, names=["x", "y"])
    assert [
        (c["index"], c["model"], c["message"]["content"], c["finish_reason"])
        for c in answer["choices"]
    ] == [
        (0, "x", "left more", "length"),
        (1, "y", "right", "stop"),
    ]
    assert answer["usage"]["completion_tokens"] == 3 + 2
    chunks = ChunkStream(ID, "battle", 1, "p", include_usage=False, names=[None, None])
    frames = [
        orjson.loads(f)
        for f in (chunks.start() + b"".join(map(chunks.event, said)) + chunks.end()).split(
            b"data: "
        )[1:-1]
    ]
    firsts = [f["choices"][0] for f in frames[:2]]
    assert [(c["index"], c["model"]) for c in firsts] == [(0, None), (1, None)]
    text = {0: "", 1: ""}
    for f in frames[2:]:
        (c,) = f["choices"]
        text[c["index"]] += c["delta"].get("content", "")
    assert text == {0: "left more", 1: "right"}


def test_an_error_after_the_first_byte_is_a_data_frame_then_done() -> None:
    error = errors.from_event(events.error("upstream", "boom"))
    assert stream().error(error) == (
        b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":"upstream"}}'
        b"\n\n" + DONE
    )


def test_a_non_streamed_completion() -> None:
    answer = [
        events.accepted("w1", 0),
        events.text("a", "Hel"),
        events.text("a", "lo"),
        events.finish("a", "content-filter", {"promptTokens": 5, "completionTokens": 2}),
        events.done(),
    ]
    assert completion(ID, "m", 1_700_000_000, "prompt", answer) == {
        "id": ID,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        "system_fingerprint": None,
    }


def test_a_non_streamed_completion_with_reasoning_and_estimated_usage() -> None:
    answer = [events.reasoning("a", "hmm, "), events.reasoning("a", "ok"), events.text("a", "Yes")]
    body = completion(ID, "m", 1, "a" * 10, answer)
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Yes",
        "reasoning_content": "hmm, ok",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    # 10 prompt characters → 3 tokens; 7 + 3 answer characters → 3 tokens.
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_partial_arena_usage_is_completed_by_estimates() -> None:
    answer = [events.text("a", "abcd"), events.finish("a", "stop", {"completionTokens": 9})]
    usage = completion(ID, "m", 1, "abcdefgh", answer)["usage"]
    assert usage == {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11}


def test_frames_are_valid_json_for_any_text() -> None:
    text = '\u2028line\u0000 "quoted" \\ 🦀'
    data = stream().event(events.text("a", text))
    assert data.startswith(b"data: ") and data.endswith(b"\n\n") and data.count(b"\n") == 2
    assert orjson.loads(data[6:-2])["choices"][0]["delta"]["content"] == text


def test_a_battle_side_that_fails_ends_alone_and_the_other_answers_on() -> None:
    said = [
        events.text("a", "left"),
        events.text("b", "right"),
        events.side_failed("a", "Model overloaded"),
        events.text("b", " and on"),
        events.text("a", " never shown"),  # nothing after a side's end is shown
        events.finish("b", "stop"),
    ]
    answer = completion(ID, "side-by-side:x,y", 1, "p", said, names=["x", "y"])
    failed, answered = answer["choices"]
    assert (failed["message"]["content"], failed["finish_reason"]) == ("left", "error")
    assert failed["error"] == {"message": "Model overloaded", "code": "upstream"}
    assert (answered["message"]["content"], answered["finish_reason"]) == ("right and on", "stop")
    assert "error" not in answered
    chunks = ChunkStream(ID, "side-by-side:x,y", 1, "p", include_usage=False, names=["x", "y"])
    frames = [
        orjson.loads(f)["choices"][0]
        for f in (chunks.start() + b"".join(map(chunks.event, said)) + chunks.end()).split(
            b"data: "
        )[1:-1]
    ]
    ends = [(c["index"], c["finish_reason"], c.get("error")) for c in frames if c["finish_reason"]]
    assert ends == [
        (0, "error", {"message": "Model overloaded", "code": "upstream"}),
        (1, "stop", None),
    ]
