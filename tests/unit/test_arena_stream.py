from __future__ import annotations

import random
from collections.abc import Iterable

import orjson
import pytest

from shared import events
from shared.arena.stream import LineParser, Part, parse_line, to_events
from tests.unit.test_arena_captures import STREAMS, capture

EXPECTED_TEXT = {
    "new": "Test received. Loud and clear!\n\nEverything is working on my end. How can I help you?",
    "followup": "Follow-up received and confirmed.\n\nAll systems are still nominal. Ready for your"
    " actual request whenever you are",
    "retry": "Hey! What's up? 😊",
    "thinking": "你好！👋 很高兴见到你！有什么我可以帮助你的吗？无论是回答问题、聊天还是其他任何事情，"
    "我都很乐意为你提供帮助。😊",
}
THINKING_REASONING = (
    '哦，用户只发了一个简单的问候"hello"。这是个非常基础的社交开场白，没有具体问题或需求。'
    "考虑保持友好但简洁的回应，避免过度复杂化。可以用标准问候语回应，并引导用户进一步说明需求。"
    "考虑在结尾用开放式提问鼓励对话继续，这样既自然又能获取更多信息。"
)


def _body(name: str) -> str:
    return capture(name)["response"]["body"]


def _parse(chunks: Iterable[bytes | str]) -> tuple[list[Part], int]:
    parser = LineParser()
    parts = [part for chunk in chunks for part in parser.feed(chunk)]
    parts += parser.close()
    return parts, parser.malformed


def _random_splits(data: bytes | str, rng: random.Random, most: int = 40) -> list:
    cuts = sorted(rng.sample(range(1, len(data)), min(most, len(data) - 1)))
    return [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _events(parts: Iterable[Part]) -> list[events.Event]:
    return [event for part in parts for event in to_events(part)]


def _joined(parts: Iterable[Part], kind: str) -> str:
    return "".join(event["text"] for event in _events(parts) if event["t"] == kind)


@pytest.mark.parametrize("name", STREAMS)
def test_chunking_never_changes_the_parts(name: str) -> None:
    body = _body(name)
    data = body.encode()
    whole, malformed = _parse([body])
    assert malformed == 0
    assert len(whole) == body.count("\n")
    assert _parse([data]) == (whole, 0)
    assert _parse(data[i : i + 1] for i in range(len(data))) == (whole, 0)
    assert _parse(body[i] for i in range(len(body))) == (whole, 0)
    rng = random.Random(f"{name}-splits")
    for _ in range(25):
        assert _parse(_random_splits(data, rng)) == (whole, 0)
        assert _parse(_random_splits(body, rng)) == (whole, 0)


@pytest.mark.parametrize("name", STREAMS)
def test_each_line_becomes_one_part_with_its_json_value(name: str) -> None:
    parts, _ = _parse([_body(name)])
    for part, line in zip(parts, _body(name).splitlines(), strict=True):
        prefix, _, payload = line.partition(":")
        assert (part.side, part.code) == (prefix[0], prefix[1:])
        assert part.value == orjson.loads(payload)
    assert parts[-1].code == "d"


@pytest.mark.parametrize("name", sorted(EXPECTED_TEXT))
def test_text_of_the_captured_answers(name: str) -> None:
    parts, _ = _parse([_body(name).encode()])
    assert _joined(parts, "text") == EXPECTED_TEXT[name]
    assert _events(parts)[-1] == events.finish("a", "stop")


def test_reasoning_comes_before_the_answer() -> None:
    parts, _ = _parse([_body("thinking")])
    kinds = [event["t"] for event in _events(parts)]
    assert _joined(parts, "reasoning") == THINKING_REASONING
    assert kinds.index("text") > max(i for i, kind in enumerate(kinds) if kind == "reasoning")


@pytest.mark.parametrize("name", ["thinking", "retry"])
def test_utf8_split_inside_any_character_comes_out_whole(name: str) -> None:
    data = _body(name).encode()
    whole, _ = _parse([data])
    inside = [i for i in range(1, len(data)) if data[i] & 0xC0 == 0x80]  # continuation bytes
    assert inside
    for cut in inside:
        assert _parse([data[:cut], data[cut:]]) == (whole, 0)


def test_lone_continuation_bytes_are_replaced_not_raised() -> None:
    parts, malformed = _parse([b'a0:"ok \xf0\x9f"\n', b'a0:"\x98\x8a"\n'])
    assert malformed == 0
    assert [part.value for part in parts] == ["ok \ufffd", "\ufffd\ufffd"]


def test_close_decodes_a_last_line_split_inside_a_character() -> None:
    data = 'a0:"end 😊"'.encode()
    parser = LineParser()
    assert parser.feed(data[:-3]) == []
    assert parser.feed(data[-3:]) == []
    assert parser.close() == [Part("a", "0", "end 😊")]


def test_close_on_a_cut_character_drops_the_line_without_raising() -> None:
    parser = LineParser()
    assert parser.feed('a0:"ok"\na0:"end 😊'.encode()[:-2]) == [Part("a", "0", "ok")]
    assert parser.close() == []
    assert parser.malformed == 1


def test_search_citations() -> None:
    parts, _ = _parse([_body("search")])
    citations = [event for event in _events(parts) if event["t"] == "citation"]
    # Seven single-source deltas, then one closing delta listing all three sources.
    assert len(citations) == 10
    assert [c["source"]["id"] for c in citations] == [
        "1",
        "1",
        "1",
        "1",
        "2",
        "1",
        "3",
        "1",
        "2",
        "3",
    ]
    assert citations[0] == events.citation(
        "a",
        {"url": "https://blog.google/products/gemini/gemini-3/", "id": "1", "charLocation": [73]},
    )
    assert citations[-1]["source"]["title"] == "Models"
    assert _joined(parts, "text").startswith("Google's latest AI model is **Gemini 3**, announced")
    assert _events(parts)[-1] == events.finish("a", "unknown")


def test_generated_image() -> None:
    parts, _ = _parse([_body("image")])
    url = orjson.loads(_body("image").split("\n")[0][3:])[0]["image"]
    assert _events(parts) == [events.image("a", url, "image/png"), events.finish("a", "stop")]


def test_lines_tolerate_crlf_and_blank_lines() -> None:
    parts, malformed = _parse(['\r\na0:"x"\r\n\r\n', '\n  \nad:{"finishReason":"stop"}\r\n'])
    assert parts == [Part("a", "0", "x"), Part("a", "d", {"finishReason": "stop"})]
    assert malformed == 0


def test_close_flushes_a_last_line_without_newline() -> None:
    parser = LineParser()
    assert parser.feed('a0:"one"\nad:{"finishReason"') == [Part("a", "0", "one")]
    assert parser.feed(':"length"}') == []
    assert parser.close() == [Part("a", "d", {"finishReason": "length"})]
    assert parser.close() == []


def test_sides_and_unprefixed_lines() -> None:
    parts, _ = _parse(['0:"plain"\nb0:"right"\nbg:"hmm"\nbd:{"finishReason":"stop"}\n'])
    assert parts == [
        Part("a", "0", "plain"),
        Part("b", "0", "right"),
        Part("b", "g", "hmm"),
        Part("b", "d", {"finishReason": "stop"}),
    ]
    assert [event["side"] for event in _events(parts)] == ["a", "b", "b", "b"]


def test_unknown_codes_are_returned_and_yield_no_events() -> None:
    lines = 'af:{"messageId":"m"}\nae:{"finishReason":"stop"}\naz:[1]\na9:{"toolCallId":"x"}\n'
    parts, malformed = _parse([lines])
    assert [part.code for part in parts] == ["f", "e", "z", "9"]
    assert malformed == 0
    assert _events(parts) == []


@pytest.mark.parametrize(
    "line",
    [
        "a0:not json",
        'a0:"unterminated',
        "no colon at all",
        ':"empty prefix"',
        '<html lang="en">:{}',
        'abcd0:"prefix too long"',
    ],
)
def test_malformed_lines_are_counted_and_skipped(line: str) -> None:
    parts, malformed = _parse([f'{line}\na0:"after"\n'])
    assert parts == [Part("a", "0", "after")]
    assert malformed == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'a0:"hasArenaError"',
            Part("a", "3", "the arena could not produce an answer (hasArenaError)"),
        ),
        (
            'b3:{"hasArenaError":true,"message":"Model overloaded"}',
            Part("b", "3", "Model overloaded"),
        ),
        (
            'ad:{"finishReason":"error","hasArenaError":true}',
            Part("a", "3", "the arena could not produce an answer (hasArenaError)"),
        ),
        (
            'a3:{"hasArenaError":true',
            Part("a", "3", "the arena could not produce an answer (hasArenaError)"),
        ),
    ],
)
def test_arena_error_marker_becomes_an_error_part(line: str, expected: Part) -> None:
    assert parse_line(line) == expected
    assert to_events(expected) == [events.side_failed(expected.side, expected.value)]


def test_text_quoting_the_marker_is_still_text() -> None:
    line = 'a0:"if chunk == \\"hasArenaError\\":"'
    assert parse_line(line) == Part("a", "0", 'if chunk == "hasArenaError":')


def test_error_line() -> None:
    part = parse_line('a3:"Resource exhausted. Please try again later."')
    # A side's failure: the worker makes it the answer's error, but in a battle (see
    # worker.arena.completion.events_of).
    assert to_events(part) == [
        events.side_failed("a", "Resource exhausted. Please try again later.")
    ]
    assert to_events(Part("b", "3", {"code": 1})) == [events.side_failed("b", '{"code":1}')]


def test_finish_carries_reason_and_usage() -> None:
    usage = {"promptTokens": 3, "completionTokens": 7}
    assert to_events(Part("b", "d", {"finishReason": "length", "usage": usage})) == [
        events.finish("b", "length", usage)
    ]
    assert to_events(Part("a", "d", {})) == [events.finish("a", "unknown")]
    assert to_events(Part("a", "d", None)) == [events.finish("a", "unknown")]


@pytest.mark.parametrize(
    "value",
    [
        [{"type": "heartbeat"}],
        [{"type": "image"}],
        [{"type": "image", "image": ""}],
        {"type": "image", "image": "https://x/y.png"},
        ["https://x/y.png"],
    ],
)
def test_data_without_a_usable_image_yields_nothing(value: object) -> None:
    assert to_events(Part("a", "2", value)) == []


def test_image_without_mime_type_is_guessed_from_the_url() -> None:
    assert to_events(
        Part(
            "b",
            "2",
            [{"type": "heartbeat"}, {"type": "image", "image": "https://h/p/x.webp?sig=1"}],
        )
    ) == [events.image("b", "https://h/p/x.webp?sig=1", "image/webp")]


@pytest.mark.parametrize(
    "value",
    [
        {"toolCallId": "citation-source", "argsTextDelta": '{"source":{"url":"https://a'},
        {"toolCallId": "citation-source", "argsTextDelta": "not json"},
        {"toolCallId": "citation-source", "argsTextDelta": '{"other":1}'},
        {"toolCallId": "citation-source", "argsTextDelta": '["source"]'},
        {"toolCallId": "citation-source"},
        "argsTextDelta",
    ],
)
def test_partial_or_odd_citations_yield_nothing(value: object) -> None:
    assert to_events(Part("a", "c", value)) == []


@pytest.mark.parametrize(
    "part",
    [
        Part("a", "0", ""),
        Part("a", "g", ""),
        Part("a", "0", 12),
        Part("a", "g", None),
        Part("a", "e", {}),
    ],
)
def test_empty_or_mistyped_deltas_yield_nothing(part: Part) -> None:
    assert to_events(part) == []
