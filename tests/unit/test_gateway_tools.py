"""Emulated tool calls, as pure functions: the contract, the detector, the calls' checks, the
shaping of an answer (stop sequences, length, the loop guard), and the agents' real requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.answers import json_mode
from gateway.answers.json_mode import JsonFormat
from gateway.answers.shaping import Rules, Shaper
from gateway.answers.tools import contract
from gateway.answers.tools.calls import coerce, parse_block
from gateway.answers.tools.definitions import Tool, ToolCall, ToolUse
from gateway.answers.tools.detector import CallDetector
from gateway.conversations.transcript import MAX_PROMPT_CHARS, Turn, joined_answers
from gateway.fleet import aliases
from gateway.fleet.catalog_view import Catalog
from shared import events
from shared.arena.catalog import from_page
from shared.settings import Settings
from tests.bench.tool_contract import figures, parsed
from tests.support.agent_fixtures import FIXTURES

BASH = Tool(
    "Bash",
    "Runs a shell command. It keeps no state between calls.",
    {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command."},
            "timeout": {"type": "integer"},
            "background": {"type": "boolean"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
)
READ = Tool("read", "Reads a file.", {"type": "object", "properties": {"path": {"type": "string"}}})
SPAWN = Tool("spawn", "Starts an agent.", {"type": "object", "properties": {}}, "agents")
USE = ToolUse([BASH, READ, SPAWN])


def block(name: str, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def detect(text: str, use: ToolUse = USE, step: int = 1) -> tuple[list[Any], bool]:
    """`text` fed `step` characters at a time: the text let out and the calls, in order."""
    detector = CallDetector(use)
    out: list[Any] = []
    for found in [
        *(detector.feed(text[i : i + step]) for i in range(0, len(text), step)),
        detector.close(),
    ]:
        if found.text:
            if out and isinstance(out[-1], str):
                out[-1] += found.text
            else:
                out.append(found.text)
        out += [(c.qualified, dict(c.arguments)) for c in found.calls]
    return out, detector.ended


# --- the detector --------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_text_before_a_call_is_text_and_the_call_is_a_call_however_it_streams(step: int) -> None:
    text = "Let me look.\n" + block("Bash", command="ls") + "\nThe files are: a, b."
    assert detect(text, step=step) == (["Let me look.\n", ("Bash", {"command": "ls"})], True)


def test_only_what_might_open_a_call_is_held_back() -> None:
    detector = CallDetector(USE)
    assert detector.feed("a < b, and <to").text == "a < b, and "
    assert detector.feed("day> is a tag").text == "<today> is a tag"
    assert detector.feed("\n```").text == "\n"  # a fence might open a call
    assert detector.feed("py\nprint(1)").text == "```py\nprint(1)"
    assert detector.close().text == "" and detector.calls == []


def test_fences_whitespace_and_several_calls_are_read_leniently() -> None:
    text = (
        "Sure:\n```json\n<tool_call>\n```json\n"
        '{"name": "bash", "parameters": {"command": "cat a\nb", "timeout": "5"}}\n```\n'
        "</tool_call>\n```\n\n"
        '<tool_call>[{"name": "read", "arguments": "{\\"path\\": \\"x\\"}"},'
        ' {"function": {"name": "spawn", "arguments": {}}}]</tool_call>'
    )
    assert detect(text)[0] == [
        "Sure:\n",
        ("Bash", {"command": "cat a\nb", "timeout": 5}),
        ("read", {"path": "x"}),
        ("agents.spawn", {}),
    ]


@pytest.mark.parametrize(
    "broken",
    [
        '<tool_call>{"name": "Bash", "arguments": {"command": }}</tool_call>',
        block("Nope", command="ls"),
        block("Bash", timeout=3),
        block("Bash", command="ls", timeout="soon"),
        "<tool_call> is how I call tools, but not now.",
    ],
)
def test_a_block_that_is_no_valid_call_is_text(broken: str) -> None:
    assert detect(f"Well: {broken} Done.") == ([f"Well: {broken} Done."], True)


def test_a_valid_call_after_a_broken_one_is_still_a_call() -> None:
    broken = block("Nope")
    assert detect(broken + block("read", path="a"))[0] == [broken, ("read", {"path": "a"})]


def test_the_last_block_counts_even_unclosed_and_text_after_calls_is_dropped() -> None:
    assert detect(block("read", path="a")[: -len("</tool_call>") + 3])[0] == [
        ("read", {"path": "a"})
    ]
    detector = CallDetector(USE)
    detector.feed(block("read", path="a") + "\nThe file says hello.")
    assert detector.ended  # the answer is over at the first text after the calls


def test_without_parallel_calls_the_first_call_ends_the_answer() -> None:
    use = ToolUse([BASH, READ], parallel=False)
    assert detect(block("read", path="a") + block("read", path="b"), use) == (
        [("read", {"path": "a"})],
        True,
    )


def test_a_named_tool_choice_takes_that_tool_only() -> None:
    use = ToolUse([BASH, READ], "required", named="read")
    other = block("Bash", command="ls")
    assert detect(other + block("read", path="a"), use)[0] == [other, ("read", {"path": "a"})]


# --- arguments -----------------------------------------------------------------------------------


def test_arguments_are_coerced_only_where_one_reading_exists() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "on": {"type": "boolean"},
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "integer"}},
            "opts": {"type": "object", "properties": {"deep": {"type": "integer"}}},
            "either": {"type": ["integer", "string"]},
        },
        "additionalProperties": False,
    }
    given = {
        "n": "12",
        "x": "2.5",
        "on": "true",
        "name": 7,
        "tags": "[1, 2]",
        "opts": '{"deep": "3"}',
        "either": "4",
        "unknown": 1,
    }
    assert coerce(given, schema) == {
        "n": 12,
        "x": 2.5,
        "on": True,
        "name": "7",
        "tags": [1, 2],
        "opts": {"deep": 3},
        "either": "4",
    }
    assert coerce({"n": "twelve", "on": "yes"}, schema) == {"n": "twelve", "on": "yes"}


def test_a_namespaced_tool_answers_to_its_full_or_its_only_name() -> None:
    assert [c.qualified for c in parse_block('{"name": "spawn"}', USE) or []] == ["agents.spawn"]
    assert parse_block('{"name": "agents.spawn"}', USE) is not None
    twice = ToolUse([SPAWN, Tool("spawn", "", {}, "other")])
    assert parse_block('{"name": "spawn"}', twice) is None  # ambiguous


# --- the contract --------------------------------------------------------------------------------


def test_the_contract_is_one_minified_line_a_tool_and_says_how_to_call() -> None:
    text = contract.contract([BASH, SPAWN])
    how, tools = text.split("Tools:\n")
    assert '<tool_call>{"name": "<tool name>", "arguments": {...}}</tool_call>' in how
    lines = [json.loads(line) for line in tools.splitlines()]
    # No `additionalProperties: false`: it says nothing the model needs.
    assert lines[0]["parameters"] == {
        k: v for k, v in BASH.parameters.items() if k != "additionalProperties"
    }
    assert lines[1] == {"name": "agents.spawn", "description": "Starts an agent."}


def test_long_descriptions_are_cut_to_their_first_sentences_until_it_fits() -> None:
    long = Tool("big", "First sentence. " + "More words here. " * 200, {})
    assert len(contract.contract([long])) > contract.BUDGET // 8
    fitted = contract.fitted([long], room=1000)
    assert len(fitted) <= 1000
    assert json.loads(fitted.split("Tools:\n")[1])["description"].startswith("First sentence.")
    assert contract.shorten("One. Two. Three.", 9) == "One. Two."
    assert contract.shorten("A very long first sentence.", 10) == "A very lo…"


def test_a_call_is_written_back_the_same_whatever_its_key_order() -> None:
    a = ToolCall("1", "Bash", {"command": "ls", "timeout": 5})
    b = ToolCall("2", "Bash", {"timeout": 5, "command": "ls"})
    assert contract.call_block(a) == contract.call_block(b) and a.same_as(b)


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_every_recorded_agent_request_is_read_and_its_contract_fits(name: str) -> None:
    use, turns = parsed(name)
    size = figures(name)
    assert size["sent"] <= contract.BUDGET and size["prompt"] < MAX_PROMPT_CHARS
    assert {"Bash", "exec_command", "shell"} & {t.name for t in use.tools}
    assert turns[-1].role in ("user", "system", "tool")
    if "tool-result" in name:  # the call and its result are turns of their own
        call = next(t for t in turns if t.calls)
        result = turns[turns.index(call) + 1]
        assert (result.role, result.tool) == ("tool", call.calls[0].qualified)
        assert "The launch code is" in result.text


# --- shaping -------------------------------------------------------------------------------------


def shape(rules: Rules, *pieces: str, finish: str = "stop") -> tuple[list[Any], Shaper]:
    shaper = Shaper(rules)
    out = []
    for event in [*(events.text("a", p) for p in pieces), events.finish("a", finish)]:
        for shaped in shaper.feed([event]):
            if shaped["t"] == "text":
                out.append(shaped["text"])
            elif shaped["t"] == "tool_call":
                out.append((shaped["name"], shaped["arguments"]))
            else:
                out.append((shaped["t"], shaped["reason"], shaped.get("stop_sequence")))
    return out, shaper


def test_a_stop_sequence_split_over_pieces_cuts_the_answer_there() -> None:
    out, shaper = shape(Rules(stop=["END", "##"]), "one two E", "N", "D three")
    assert "".join(o for o in out if isinstance(o, str)) == "one two "
    assert out[-1] == ("finish", "stop", "END") and shaper.cut and shaper.shown == "one two "


def test_max_tokens_cuts_the_text_at_four_characters_a_token() -> None:
    out, shaper = shape(Rules(max_tokens=3), "abcdefgh", "ijklmnop")
    assert out == ["abcdefgh", "ijkl", ("finish", "length", None)] and shaper.cut


def test_a_battles_side_b_answers_on_after_side_a_finished() -> None:
    shaper = Shaper(Rules())
    battle = [
        events.text("a", "left"),
        events.text("b", "right "),
        events.finish("a", "stop"),
        events.text("a", "after its end"),
        events.text("b", "goes on"),
        events.finish("b", "stop"),
    ]
    out = shaper.feed(battle)
    assert [(e["side"], e.get("text", e["t"])) for e in out] == [
        ("a", "left"),
        ("b", "right "),
        ("a", "finish"),
        ("b", "goes on"),
        ("b", "finish"),
    ]


def test_an_answer_that_ends_in_calls_finishes_with_tool_calls() -> None:
    out, shaper = shape(Rules(ToolUse([READ])), "Reading.\n", block("read", path="a"))
    assert out == ["Reading.\n", ("read", {"path": "a"}), ("finish", "tool-calls", None)]
    assert not shaper.cut  # the arena's answer ended with it


def test_the_third_identical_call_in_a_row_ends_the_answer_with_text() -> None:
    earlier = [ToolCall("1", "read", {"path": "a"}), ToolCall("2", "read", {"path": "a"})]
    out, shaper = shape(Rules(ToolUse([READ]), earlier_calls=earlier), block("read", path="a"))
    assert shaper.calls == [] and out[-1] == ("finish", "stop", None)
    assert "call number 3 in a row of `read` with the same arguments" in out[0]
    other, _ = shape(Rules(ToolUse([READ]), earlier_calls=earlier), block("read", path="b"))
    assert other[0] == ("read", {"path": "b"})


# --- model aliases -------------------------------------------------------------------------------


def test_aliases_send_names_the_arena_does_not_serve_to_models_it_does() -> None:
    entries = [
        {"id": f"id-{name}", "publicName": name, "organization": "x"}
        for name in ("claude-opus-4", "gemini-2.5-pro")
    ]
    models = {model.public_name: model for model in from_page(entries)}
    catalog = Catalog(0.0, models)
    spec = Settings(model_aliases="claude-*=gemini-2.5-pro, gpt-5?=gemini-2.5-pro").model_aliases
    assert spec == {"claude-*": "gemini-2.5-pro", "gpt-5?": "gemini-2.5-pro"}
    assert aliases.resolve("claude-sonnet-4-5", catalog, spec) == "gemini-2.5-pro"
    assert aliases.resolve("claude-opus-4", catalog, spec) == "claude-opus-4"  # served: itself
    assert aliases.resolve("gpt-5x", catalog, spec) == "gemini-2.5-pro"
    assert aliases.resolve("gpt-5.1", catalog, spec) == "gpt-5.1"  # no match: a 404 later
    assert [a for a, _ in aliases.listed(catalog, spec)] == ["claude-*", "gpt-5?"]
    with pytest.raises(ValueError, match="pattern=model"):
        Settings(model_aliases="claude-*")


# --- JSON mode -----------------------------------------------------------------------------------


def test_json_answers_are_unwrapped_and_checked_against_the_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fmt = JsonFormat(schema)
    assert json_mode.check('```json\n{"n": 1}\n```', fmt) == ('{"n": 1}', "")
    assert json_mode.check('{"n": "one"}', fmt) == (
        None,
        "it does not match the schema at n: 'one' is not of type 'integer'",
    )
    assert json_mode.check("[1]", JsonFormat())[1] == "it is JSON, but not an object"
    assert json_mode.check("Sure: {}", JsonFormat())[1].startswith("it is not valid JSON")
    assert "matches" not in json_mode.instruction(JsonFormat())
    assert json.dumps(schema, separators=(",", ":")) in json_mode.instruction(fmt)


def test_an_answer_that_is_not_json_is_asked_again_once() -> None:
    session = {"t": "session", "worker": "w", "session": "s", "messages": {"a": "m"}}
    shaper = Shaper(Rules(json=JsonFormat()))
    assert shaper.feed([session, events.text("a", "Here: {"), events.text("a", "}")]) == [session]
    assert shaper.feed([events.finish("a", "stop")]) == []  # nothing shown: asked again
    assert shaper.retry is not None and "not valid JSON" in shaper.retry
    shaper.restart()
    assert shaper.feed([events.text("a", "still no"), events.finish("a", "stop")]) == [
        events.text("a", "still no"),  # the second time, as it is
        events.finish("a", "stop"),
    ]
    good = Shaper(Rules(json=JsonFormat()))
    good.feed([session, events.text("a", '```\n{"a": 1}\n```')])
    assert good.feed([events.finish("a", "stop")])[0] == events.text("a", '{"a": 1}')


# --- an answer with calls, as remembered and as sent back ----------------------------------------


def test_an_answer_with_calls_is_the_same_turn_however_the_client_sends_it_back() -> None:
    call = ToolCall("1", "Bash", {"command": "ls", "timeout": 5})
    answered = Turn("assistant", "Let me look.\n", calls=(call,))  # as the gateway remembers it
    echoed = ToolCall("call_1", "Bash", {"timeout": 5, "command": "ls"})
    sent_back = [
        [Turn("assistant", "Let me look.", calls=(echoed,))],  # text and calls together
        [Turn("assistant", "", calls=(echoed,))],  # the text dropped (chat: content null)
        [Turn("assistant", "", calls=(echoed,)), Turn("assistant", "Let me look.")],  # split
    ]
    for turns in sent_back:
        (joined,) = joined_answers(turns)
        assert joined.identity == answered.identity
    assert (
        joined.body
        == 'Let me look.\n<tool_call>{"name": "Bash", "arguments": {"command":"ls","timeout":5}}</tool_call>'
    )
