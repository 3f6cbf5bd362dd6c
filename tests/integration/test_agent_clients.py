"""The real coding-agent CLIs (Claude Code, Codex CLI) against a scripted model, offline.

The model asks, with the agent's own shell tool, for `cat note.txt`, then quotes what the tool
returned: the note's text on the agent's output proves the agent ran the tool and sent its result
back. Every other host the agents try is refused (and recorded) by the same server as a proxy.

The second half pins down what each agent needs of an API's stream, by answering with one event
or field left out or changed: these are the requirements the bridge's answers must meet (see
`tests/agents/README.md`). A change of agent version that changes one of them fails here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import agents
from tests.support.model_api import (
    EventFilter,
    Exchange,
    ModelApi,
    Script,
    data_lines_only,
    edited,
    without,
)

MODEL = "gemini-3.1-pro-preview"  # an arena model neither client knows, as most are
PROMPT = "Show me what note.txt says."
#: Bounds each agent run; a normal round trip takes about a second.
TIMEOUT = 60
#: Claude Code repeats a request without streaming when it cannot read the stream: off here, so
#: that what the stream itself must carry shows.
NO_FALLBACK = {"CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1"}
#: Codex retries a broken stream five times with backoff; once is enough to see it fail.
NO_STREAM_RETRIES = ("-c", "model_providers.lmb.stream_max_retries=0")


@dataclass
class Workspace:
    work: Path
    home: Path
    note: str


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    note = f"The launch code is {secrets.token_hex(4)}."
    (work / "note.txt").write_text(note + "\n")
    return Workspace(work, home, note)


def needs(agent: str) -> None:
    if reason := agents.missing(agent):
        pytest.skip(reason)


@pytest.fixture
def api() -> Iterator[ModelApi]:
    with ModelApi(Script(command="cat note.txt"), models=(MODEL,)) as api:
        yield api


def run_claude(
    api: ModelApi, ws: Workspace, *, bearer: bool = False, env: dict[str, str] | None = None
) -> agents.AgentRun:
    return agents.run_claude(
        PROMPT,
        api.origin,
        ws.work,
        ws.home,
        model=MODEL,
        timeout=TIMEOUT,
        bearer=bearer,
        proxy=api.origin,
        extra_env=env,
    )


def run_codex(
    api: ModelApi,
    ws: Workspace,
    *args: str,
    wire_api: str = "responses",
    builtin_provider: bool = False,
    chat_wire_binary: bool = False,
) -> agents.AgentRun:
    return agents.run_codex(
        PROMPT,
        f"{api.origin}/v1",
        ws.work,
        ws.home,
        model=MODEL,
        wire_api=wire_api,
        builtin_provider=builtin_provider,
        chat_wire_binary=chat_wire_binary,
        timeout=TIMEOUT,
        proxy=api.origin,
        extra_args=args,
    )


def run_codex_chat(api: ModelApi, ws: Workspace, *args: str) -> agents.AgentRun:
    """Codex 0.94, the last that speaks chat completions."""
    return run_codex(api, ws, *args, wire_api="chat", chat_wire_binary=True)


def report(run: agents.AgentRun, api: ModelApi) -> str:
    asked = "\n".join(f"{e.method} {e.path} {e.query} -> {e.answer}" for e in api.exchanges)
    return f"{run.describe()}\n--- requests\n{asked}"


def tool_names(exchange: Exchange) -> list[str]:
    return [t.get("name") or t.get("type") for t in exchange.body["tools"]]


# --- the tool round trip ---------------------------------------------------------------------------


@pytest.mark.parametrize("bearer", [False, True], ids=["api-key", "auth-token"])
def test_claude_code_runs_the_tool_and_quotes_its_result(
    api: ModelApi, workspace: Workspace, bearer: bool
) -> None:
    needs("claude")
    run = run_claude(api, workspace, bearer=bearer)

    assert run.returncode == 0 and workspace.note in run.stdout, report(run, api)
    first, second = api.requests()
    assert (first.method, first.path, first.query) == ("POST", "/v1/messages", {"beta": "true"})
    assert first.answer == "tool:Bash" and second.answer == "text"
    assert first.body["stream"] is True and first.body["model"] == MODEL
    assert "Bash" in tool_names(first)
    assert "claude-code-20250219" in first.headers["anthropic-beta"].split(",")
    assert first.headers["anthropic-version"] == "2023-06-01"
    key_header = "authorization" if bearer else "x-api-key"
    assert {key_header} == {"authorization", "x-api-key"} & set(first.headers)
    # The result comes back as a tool_result block for the tool_use the model sent.
    call = second.body["messages"][-2]["content"][-1]
    result = second.body["messages"][-1]["content"][-1]
    assert call["type"] == "tool_use" and call["name"] == "Bash"
    assert result["type"] == "tool_result" and result["tool_use_id"] == call["id"]
    assert workspace.note in json.dumps(result["content"])
    assert api.refused() == [], "Claude Code tried to reach other hosts"


def test_codex_runs_the_tool_and_quotes_its_result(api: ModelApi, workspace: Workspace) -> None:
    needs("codex")
    run = run_codex(api, workspace)

    assert run.returncode == 0 and workspace.note in run.stdout, report(run, api)
    first, second = api.requests()
    assert (first.method, first.path, first.query) == ("POST", "/v1/responses", {})
    assert first.answer == "tool:exec_command" and second.answer == "text"
    assert first.body["stream"] is True and first.body["store"] is False
    assert "exec_command" in tool_names(first)
    assert first.headers["authorization"] == "<redacted>"
    call, output = second.body["input"][-2:]
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert output["type"] == "function_call_output" and output["call_id"] == call["call_id"]
    assert workspace.note in output["output"]
    assert "previous_response_id" not in second.body  # the whole conversation, every turn
    assert api.refused() == [], "Codex tried to reach other hosts"


def test_codex_with_its_builtin_provider_takes_426_to_leave_websockets_at_once(
    api: ModelApi, workspace: Workspace
) -> None:
    needs("codex")
    run = run_codex(api, workspace, builtin_provider=True)

    assert run.returncode == 0 and workspace.note in run.stdout, report(run, api)
    upgrade, first, second = api.requests()
    assert (upgrade.method, upgrade.path, upgrade.answer) == (
        "GET",
        "/v1/responses",
        "websocket-refused",
    )
    assert upgrade.headers["upgrade"] == "websocket"
    assert upgrade.headers["openai-beta"].startswith("responses_websockets=")
    assert (first.method, first.path, first.answer) == (
        "POST",
        "/v1/responses",
        "tool:exec_command",
    )
    assert second.answer == "text"
    assert api.refused() == []


def test_codex_no_longer_speaks_chat_completions(api: ModelApi, workspace: Workspace) -> None:
    needs("codex")
    run = run_codex(api, workspace, wire_api="chat")

    assert run.returncode != 0 and 'wire_api = "chat"` is no longer supported' in run.stderr
    assert api.exchanges == []


def test_the_last_chat_completions_codex_runs_the_tool_and_quotes_its_result(
    api: ModelApi, workspace: Workspace
) -> None:
    needs("codex-chat")
    run = run_codex_chat(api, workspace)

    assert run.returncode == 0 and workspace.note in run.stdout, report(run, api)
    first, second = api.requests()
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.answer == "tool:shell" and second.answer == "text"
    assert first.body["stream"] is True and "stream_options" not in first.body
    assert [m["role"] for m in first.body["messages"][:2]] == ["system", "developer"]
    assert "shell" in [t["function"]["name"] for t in first.body["tools"]]
    call, result = second.body["messages"][-2:]
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "shell"
    assert result == {
        "role": "tool",
        "tool_call_id": call["tool_calls"][0]["id"],
        "content": result["content"],
    }
    assert workspace.note in result["content"]
    # It asks api.openai.com for its model list whatever the provider: refused here.
    assert {e.path for e in api.refused()} <= {"api.openai.com:443"}


def test_claude_code_asks_again_without_streaming_when_the_stream_is_unreadable(
    workspace: Workspace,
) -> None:
    needs("claude")
    with ModelApi(Script(command="cat note.txt"), event_filter=data_lines_only) as api:
        run = run_claude(api, workspace)

    assert run.returncode == 0 and workspace.note in run.stdout, report(run, api)
    assert [(e.body["stream"], e.answer) for e in api.requests()] == [
        (True, "tool:Bash"),
        (False, "tool:Bash (not streamed)"),
        (True, "text"),
        (False, "text (not streamed)"),
    ]


# --- what each agent needs of a stream -------------------------------------------------------------


def _pop(event: str, *path: str) -> EventFilter:
    """Removes the field at `path` in the data of events named `event`."""

    def change(name: str | None, data: dict[str, Any]) -> None:
        if name == event:
            for key in path[:-1]:
                data = data[key]
            data.pop(path[-1], None)

    return edited(change)


def _set(event: str, path: tuple[str, ...], value: Any) -> EventFilter:
    def change(name: str | None, data: dict[str, Any]) -> None:
        if name == event:
            for key in path[:-1]:
                data = data[key]
            data[path[-1]] = value

    return edited(change)


def _anthropic_ids(name: str | None, data: dict[str, Any]) -> None:
    if name == "message_start":
        data["message"]["id"] = "a1"
    if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
        data["content_block"]["id"] = "call_1"


def _input_in_block_start(kind: str, events: list[Any]) -> list[Any]:
    """The tool's whole input in `content_block_start`, no `input_json_delta` events."""
    parts = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    out = []
    for name, data in events:
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            continue
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            data = {
                **data,
                "content_block": {**data["content_block"], "input": json.loads("".join(parts))},
            }
        out.append((name, data))
    return out


def _text_before_call_anthropic(kind: str, events: list[Any]) -> list[Any]:
    """A text block (index 0) before the tool_use block, as a model that talks first sends."""
    text = [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Let me look."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]
    out: list[Any] = []
    for name, data in events:
        if "index" in data:
            data = {**data, "index": data["index"] + 1}
        out.append((name, data))
        if name == "message_start":
            out += text
    return out


def _function_call_ids(name: str | None, data: dict[str, Any]) -> None:
    item = data.get("item")
    if item and item["type"] == "function_call":
        item["id"], item["call_id"] = "x1", "x2"
    if "item_id" in data:
        data["item_id"] = "x1"
    if "response" in data:
        data["response"]["id"] = "r1"


def _drop_item_field(field: str) -> EventFilter:
    def change(name: str | None, data: dict[str, Any]) -> None:
        item = data.get("item")
        if item and item["type"] == "function_call":
            item.pop(field, None)

    return edited(change)


def _text_before_call_responses(kind: str, events: list[Any]) -> list[Any]:
    """A message item (output 0) before the function call, as a model that talks first sends."""
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
    }
    out: list[Any] = []
    for name, data in events:
        if "output_index" in data:
            data = {**data, "output_index": data["output_index"] + 1}
        if name == "response.output_item.added":
            out.append(
                (
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "output_index": 0,
                        "item": {**message, "status": "in_progress", "content": []},
                    },
                )
            )
            out.append(
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": "msg_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": "Let me look.",
                    },
                )
            )
            out.append(
                (
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": 0, "item": message},
                )
            )
        out.append((name, data))
    return out


def _type_out_of_data(name: str | None, data: dict[str, Any]) -> None:
    data.pop("type", None)


def _sequence_number_out_of_data(name: str | None, data: dict[str, Any]) -> None:
    data.pop("sequence_number", None)


@dataclass(frozen=True)
class Variant:
    id: str
    change: EventFilter
    works: bool


CLAUDE_VARIANTS = [
    # Needed: SSE `event:` lines and `type` in the data; message_start; content_block_stop (a
    # tool_use block's input is parsed there); the input as input_json_delta events (the input in
    # content_block_start is not read); message_delta or message_stop after a text block.
    Variant("no-event-lines", data_lines_only, False),
    Variant("no-type-in-data", edited(_type_out_of_data), False),
    Variant("no-message_start", without("message_start"), False),
    Variant("no-content_block_stop", without("content_block_stop"), False),
    Variant("input-in-content_block_start", _input_in_block_start, False),
    Variant("no-message_delta-nor-message_stop", without("message_delta", "message_stop"), False),
    # Not needed.
    Variant("no-ping", without("ping"), True),
    Variant("no-message_delta", without("message_delta"), True),
    Variant("no-message_stop", without("message_stop"), True),
    Variant("no-usage-in-message_start", _pop("message_start", "message", "usage"), True),
    Variant("no-usage-in-message_delta", _pop("message_delta", "usage"), True),
    Variant("ids-of-any-form", edited(_anthropic_ids), True),
    Variant(
        "tool_use-with-stop_reason-end_turn",
        _set("message_delta", ("delta", "stop_reason"), "end_turn"),
        True,
    ),
    Variant("text-block-before-tool_use", _text_before_call_anthropic, True),
]

CODEX_VARIANTS = [
    # Needed: `type` in each event's data (`event:` lines are not read); each output item in
    # response.output_item.done (a function_call with its call_id, name and arguments); then
    # response.completed with the response's id.
    Variant("no-type-in-data", edited(_type_out_of_data), False),
    Variant("no-output_item.done", without("response.output_item.done"), False),
    Variant("function_call-without-call_id", _drop_item_field("call_id"), False),
    Variant("no-response.completed", without("response.completed"), False),
    Variant("response.completed-without-id", _pop("response.completed", "response", "id"), False),
    # Not needed.
    Variant("no-event-lines", data_lines_only, True),
    Variant(
        "no-created-nor-in_progress", without("response.created", "response.in_progress"), True
    ),
    Variant("no-output_item.added", without("response.output_item.added"), True),
    Variant(
        "no-argument-deltas",
        without("response.function_call_arguments.delta", "response.function_call_arguments.done"),
        True,
    ),
    Variant(
        "no-text-deltas",
        without(
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
        ),
        True,
    ),
    Variant("no-usage", _pop("response.completed", "response", "usage"), True),
    Variant("no-sequence_number", edited(_sequence_number_out_of_data), True),
    Variant("function_call-without-id", _drop_item_field("id"), True),
    Variant("ids-of-any-form", edited(_function_call_ids), True),
    Variant("message-before-function_call", _text_before_call_responses, True),
]


def _chat_choices(change: Callable[[dict[str, Any]], None]) -> EventFilter:
    """Lets `change` edit each chunk's choice (a copy) in place."""

    def edit(name: str | None, data: dict[str, Any]) -> None:
        for choice in data.get("choices", []):
            change(choice)

    return edited(edit)


def _no_finish_reason(choice: dict[str, Any]) -> None:
    choice["finish_reason"] = None


def _stop_for_tool_calls(choice: dict[str, Any]) -> None:
    if choice["finish_reason"] == "tool_calls":
        choice["finish_reason"] = "stop"


def _no_tool_call_index(choice: dict[str, Any]) -> None:
    for call in choice["delta"].get("tool_calls", []):
        call.pop("index", None)


def _no_done(kind: str, events: list[Any]) -> list[Any]:
    return [e for e in events if e[1] != "[DONE]"]


def _call_in_one_chunk(kind: str, events: list[Any]) -> list[Any]:
    """The whole tool call, its arguments and finish_reason in a single chunk."""
    chunks = [d for _, d in events if isinstance(d, dict) and d["choices"]]
    calls = [c for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    if not calls:
        return events
    one = json.loads(json.dumps(calls[0]))
    call = one["choices"][0]["delta"]["tool_calls"][0]
    call["function"]["arguments"] = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"].get("arguments", "") for c in calls
    )
    one["choices"][0]["finish_reason"] = "tool_calls"
    return [(None, one), (None, "[DONE]")]


def _text_before_call_chat(kind: str, events: list[Any]) -> list[Any]:
    first = json.loads(json.dumps(events[0][1]))
    first["choices"][0]["delta"] = {"role": "assistant", "content": "Let me look. "}
    return [(None, first), *events]


CODEX_CHAT_VARIANTS = [
    # Needed: finish_reason "tool_calls" on the tool call's choice (without it, or with "stop",
    # Codex ends the turn without running the tool, and exits 0).
    Variant("no-finish_reason", _chat_choices(_no_finish_reason), False),
    Variant("finish_reason-stop-for-a-call", _chat_choices(_stop_for_tool_calls), False),
    # Not needed.
    Variant("no-[DONE]", _no_done, True),
    Variant("no-tool_call-index", _chat_choices(_no_tool_call_index), True),
    Variant("call-in-one-chunk", _call_in_one_chunk, True),
    Variant("text-before-the-call", _text_before_call_chat, True),
]


@pytest.mark.parametrize("variant", CLAUDE_VARIANTS, ids=lambda v: v.id)
def test_what_claude_code_needs_of_a_stream(workspace: Workspace, variant: Variant) -> None:
    needs("claude")
    with ModelApi(Script(command="cat note.txt"), event_filter=variant.change) as api:
        run = run_claude(api, workspace, env=NO_FALLBACK)

    worked = run.returncode == 0 and workspace.note in run.stdout
    assert worked is variant.works and not run.timed_out, report(run, api)


@pytest.mark.parametrize("variant", CODEX_VARIANTS, ids=lambda v: v.id)
def test_what_codex_needs_of_a_stream(workspace: Workspace, variant: Variant) -> None:
    needs("codex")
    with ModelApi(Script(command="cat note.txt"), event_filter=variant.change) as api:
        run = run_codex(api, workspace, *NO_STREAM_RETRIES)

    worked = run.returncode == 0 and workspace.note in run.stdout
    assert worked is variant.works and not run.timed_out, report(run, api)


@pytest.mark.parametrize("variant", CODEX_CHAT_VARIANTS, ids=lambda v: v.id)
def test_what_the_chat_completions_codex_needs_of_a_stream(
    workspace: Workspace, variant: Variant
) -> None:
    needs("codex-chat")
    with ModelApi(Script(command="cat note.txt"), event_filter=variant.change) as api:
        run = run_codex_chat(api, workspace, *NO_STREAM_RETRIES)

    worked = run.returncode == 0 and workspace.note in run.stdout
    assert worked is variant.works and not run.timed_out, report(run, api)
