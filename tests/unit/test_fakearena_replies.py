"""The fake's pure parts: replies, ids, identity cookies, PNGs, page text."""

from __future__ import annotations

import re
import struct
import time
import uuid
import zlib

import orjson
import pytest

from shared.arena.ids import uuid7
from tests.fakearena import identity, pages, png, replies
from tests.fakearena.catalog import (
    CAPTURES,
    Catalog,
    captured_models,
    kind_in_group,
    kind_of,
    reported_groups,
)
from tests.fakearena.ids import is_fresh_uuid7
from tests.fakearena.replies import Ask, Attachment

CAPTURED_LINE = re.compile(r"^[ab][0-9a-z]:")


def captured_lines(name: str) -> list[str]:
    return orjson.loads((CAPTURES / name).read_bytes())["response"]["body"].splitlines()


def ask(**fields: object) -> Ask:
    base = {"model": "gemini-2.5-pro", "kind": "chat", "turn": 1, "first": "test", "prompt": "test"}
    return Ask(**{**base, **fields})


@pytest.mark.parametrize(
    "text",
    [
        "Test received. Loud and clear!\n\nEverything",
        "  leading and trailing  ",
        "",
        "one",
        "a\tb\nc",
    ],
)
def test_pieces_join_back_to_the_text(text: str) -> None:
    assert "".join(replies.pieces(text)) == text


def test_pieces_are_words_with_their_trailing_whitespace_like_the_capture() -> None:
    captured = [orjson.loads(line[3:]) for line in captured_lines("new.json") if line[:3] == "a0:"]
    assert replies.pieces("".join(captured)) == captured


def test_answer_text_names_turn_first_message_and_model() -> None:
    text = replies.answer_text(ask(turn=3, first="hello\n  there", prompt="and now?"))
    assert text == "Turn 3 of «hello there» (gemini-2.5-pro): and now?"


def test_retry_and_attachments_are_distinguishable() -> None:
    text = replies.answer_text(ask(retry=2, attachments=(Attachment("image/jpeg", 1234),)))
    assert text == "Retry 2 of turn 1 of «test» (gemini-2.5-pro) [image/jpeg, 1234 bytes]: test"


def test_brief_cuts_long_first_messages() -> None:
    assert replies.brief("x" * 41) == "x" * 40 + "…"
    assert replies.brief("x" * 40) == "x" * 40


def test_chat_lines_are_a0_pieces_then_stop() -> None:
    lines = replies.lines("a", ask(prompt="what is up"))
    assert lines[-1] == 'ad:{"finishReason":"stop"}'
    assert all(line.startswith("a0:") for line in lines[:-1])
    assert replies.text_of(lines, "a") == replies.answer_text(ask(prompt="what is up"))


def test_reasoning_lines_come_first_and_start_empty_as_captured() -> None:
    lines = replies.lines("a", ask(kind="reasoning", prompt="hello"))
    codes = [line[:2] for line in lines]
    assert lines[0] == 'ag:""' == captured_lines("thinking.json")[0]
    assert codes == sorted(codes, key=["ag", "a0", "ad"].index)
    assert replies.text_of(lines, "a", "g") == "Thinking about «hello» (turn 1)."


def test_search_citations_have_the_captured_shape() -> None:
    lines = replies.lines("a", ask(kind="search", prompt="search what google latest model is"))
    citations = [orjson.loads(line[3:]) for line in lines if line.startswith("ac:")]
    captured = [
        orjson.loads(line[3:]) for line in captured_lines("search.json") if line[:3] == "ac:"
    ]
    assert [list(c) for c in citations] == [list(captured[0])] * 3
    sources = [orjson.loads(c["argsTextDelta"])["source"] for c in citations]
    captured_sources = [orjson.loads(c["argsTextDelta"])["source"] for c in captured]
    assert list(sources[0]) == list(captured_sources[0])  # short form
    assert list(sources[1]) == list(captured_sources[1])  # full form
    assert isinstance(sources[2], list) and [list(s) for s in sources[2]] == [list(sources[1])] * 2
    text = replies.text_of(lines, "a")
    # charLocation points just after the piece the citation follows
    assert text[: sources[0]["charLocation"][0]] == "Turn 1 "
    assert lines[-1] == captured_lines("search.json")[-1] == 'ad:{"finishReason":"unknown"}'


def test_image_lines_carry_the_url() -> None:
    lines = replies.lines("b", ask(kind="image", image_url="http://x/r2/k.png?sig"))
    assert lines == [
        'b2:[{"type":"image","image":"http://x/r2/k.png?sig","mimeType":"image/png"}]',
        'bd:{"finishReason":"stop"}',
    ]


def test_battle_interleaves_both_sides_each_ending_with_its_finish() -> None:
    a = replies.lines("a", ask(prompt="one two three"))
    b = replies.lines("b", ask(model="grok-4.1", prompt="one"))
    merged = replies.interleave(a, b)
    assert merged[:4] == [a[0], b[0], a[1], b[1]]
    assert [line for line in merged if line[0] == "a"] == a
    assert [line for line in merged if line[0] == "b"] == b


def test_failure_shaping() -> None:
    plan = replies.lines("a", ask(prompt="a b c d e f"))
    body = plan[:-1]
    assert replies.shaped(plan, None, "") == plan
    assert replies.shaped(plan, "pause", "") == plan
    assert replies.shaped(plan, "cut_stream", "") == body[: len(body) // 2]
    assert replies.shaped(plan, "error_line", "boom") == [*body[: len(body) // 2], 'a3:"boom"']
    assert replies.shaped(plan, "empty_200", "") == []


def test_every_line_has_the_captured_format() -> None:
    for kind in ("chat", "reasoning", "search", "image"):
        for line in replies.lines("a", ask(kind=kind, prompt='ünïcode «quotes» "and" \\ / <tags>')):
            assert CAPTURED_LINE.match(line)
            orjson.loads(line[3:])


def test_uuid7_fresh_and_spoofed() -> None:
    now = time.time()
    assert is_fresh_uuid7(uuid7(), now)
    assert uuid.UUID(uuid7()).version == 7
    assert not is_fresh_uuid7(uuid7(int((now - 3700) * 1000)), now)
    assert not is_fresh_uuid7(uuid7(int((now + 3700) * 1000)), now)
    assert is_fresh_uuid7(uuid7(int((now - 3500) * 1000)), now)
    assert not is_fresh_uuid7(str(uuid.uuid4()), now)
    assert not is_fresh_uuid7("not-a-uuid", now)
    assert not is_fresh_uuid7(None, now)


def test_auth_cookie_is_split_and_names_the_user() -> None:
    cookies = identity.auth_cookies("alice")
    assert list(cookies) == ["arena-auth-prod-v1.0", "arena-auth-prod-v1.1"]
    assert "".join(cookies.values()).startswith("base64-")
    assert identity.username_from(cookies) == "alice"
    joined = {"arena-auth-prod-v1": "".join(cookies.values())}
    assert identity.resolve(joined) == identity.Identity(identity.account_id("alice"), "alice")
    assert identity.resolve({"arena-auth-prod-v1.0": "garbage"}) is None
    assert identity.resolve({"provisional_user_id": "g1"}).key == "guest:g1"


def test_png_is_a_valid_deterministic_image() -> None:
    data = png.image_for("a cat")
    assert data == png.image_for("a cat") != png.image_for("a dog")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (64, 64)
    idat_length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_length])
    assert len(raw) == 64 * (1 + 64 * 3)


def test_catalog_kinds_follow_the_capabilities() -> None:
    by_name = {entry["publicName"]: entry for entry in captured_models()}
    assert len(by_name) > 200
    assert kind_of(by_name["gemini-2.5-pro"]) == "chat"
    assert kind_of(by_name["deepseek-v3.2-exp-thinking"]) == "reasoning"
    assert kind_of(by_name["qwen3-235b-a22b-no-thinking"]) == "chat"
    assert kind_of(by_name["grok-4-fast-search"]) == "search"
    assert kind_of(by_name["gemini-3-pro-image-preview (nano-banana-pro)"]) == "image"
    assert kind_of(by_name["sora-2"]) == "video"


def test_rsc_pushes_decode_back_to_the_rows_even_when_split() -> None:
    catalog = Catalog.from_entries(captured_models())
    rows = pages.rsc_rows(catalog.served, catalog.models()[0].id, "build")
    for chunk_chars in (0, 997):
        html = pages.rsc_scripts(rows, chunk_chars)
        strings = re.findall(r'self\.__next_f\.push\(\[1,("(?:[^"\\]|\\.)*")\]\)', html)
        assert "".join(orjson.loads(s) for s in strings) == "".join(rows)
        assert "<" not in "".join(strings)


def test_framing_adds_message_start_heartbeats_and_step_finish() -> None:
    answer = replies.lines("b", ask(kind="reasoning", prompt="two words"))
    framing = replies.Framing(message_id="m-1", step_lines=True, heartbeats=2)
    framed = replies.framed("b", answer, "two words", framing)
    assert framed[:3] == ['bf:{"messageId":"m-1"}', *['b2:[{"type":"heartbeat"}]'] * 2]
    assert framed[3:-2] == answer[:-1]
    step = orjson.loads(framed[-2].removeprefix("be:"))
    assert step == {
        "finishReason": "stop",
        "usage": {"promptTokens": 2, "completionTokens": len(answer) - 1},
        "isContinued": False,
    }
    assert framed[-1] == answer[-1] == 'bd:{"finishReason":"stop"}'
    assert replies.text_of(framed, "b") == replies.text_of(answer, "b")
    bare = replies.framed("b", answer, "two words", replies.Framing(message_id="m-1"))
    assert bare == answer


def test_a_search_step_finishes_with_the_answers_reason() -> None:
    answer = replies.lines("a", ask(kind="search"))
    framed = replies.framed("a", answer, "test", replies.Framing("m", step_lines=True))
    assert orjson.loads(framed[-2][3:])["finishReason"] == "unknown"


def test_failure_shaping_drops_step_finishes_too() -> None:
    answer = replies.lines("a", ask(prompt="a b c d"))
    framed = replies.framed("a", answer, "a b c d", replies.Framing("m", step_lines=True))
    body = framed[:-2]  # without the step finish and the finish
    assert not any(entry.startswith(("ae:", "ad:")) for entry in body)
    assert replies.shaped(framed, "cut_stream", "") == body[: len(body) // 2]
    assert replies.shaped(framed, "error_line", "x") == [*body[: len(body) // 2], 'a3:"x"']


def test_a_grouped_catalog_takes_kinds_from_the_groups() -> None:
    catalog = Catalog.from_groups(reported_groups())
    ids = {(g["arena"], e["publicName"]): e["id"] for g in reported_groups() for e in g["models"]}
    router = catalog.by_id[ids["text", "Max"]]
    assert {modality: model.kind for modality, model in router.items()} == {
        "chat": "chat",
        "search": "search",
        "image": "image",
    }
    assert ids["text", "qwen3.7-plus"] != ids["code", "qwen3.7-plus"]
    assert set(catalog.by_id[ids["code", "qwen3.7-plus"]]) == {"chat"}
    assert kind_in_group("document", {"publicName": "qwen3-max-thinking"}) == "reasoning"
    assert kind_in_group("search", {"publicName": "some-thinking-search"}) == "search"
    assert kind_in_group("text-to-video", {"publicName": "veo"}) == "video"
