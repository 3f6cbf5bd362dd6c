"""The scripted model that agent tests run against: its answers parse in the official SDKs.

Each API's stream and body must be what the real API sends, or the agents' findings would be
about this server rather than about them: the `anthropic` and `openai` SDKs read them here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support.model_api import REDACTED, ModelApi, Script, shell_call

COMMAND = "cat note.txt"
RESULT = "The launch code is 7-4-1."
BASH = {
    "name": "Bash",
    "description": "Runs a command.",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
        "required": ["command"],
    },
}
EXEC = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command.",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}
CHAT_SHELL = {
    "type": "function",
    "function": {
        "name": "shell",
        "description": "Runs a command.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        },
    },
}


@pytest.fixture(scope="module")
def api() -> Iterator[ModelApi]:
    with ModelApi(Script(command=COMMAND), models=("m1", "m2")) as api:
        yield api


def assert_key_redacted(api: ModelApi) -> None:
    headers = api.requests()[-1].headers
    assert "sk-secret" not in json.dumps(headers)
    assert REDACTED in (headers.get("x-api-key"), headers.get("authorization"))


def test_shell_call_fits_each_tool_schema() -> None:
    assert shell_call([BASH], "ls").arguments == {"command": "ls", "description": "Show the file"}
    assert shell_call([EXEC], "ls").arguments == {"cmd": "ls"}
    assert shell_call([CHAT_SHELL], "ls").arguments == {"command": ["bash", "-lc", "ls"]}
    assert shell_call([{"name": "Read", "input_schema": {}}], "ls") is None


@pytest.mark.parametrize("stream", [True, False])
def test_messages_tool_round_trip(api: ModelApi, stream: bool) -> None:
    client = anthropic.Anthropic(base_url=api.origin, api_key="sk-secret", max_retries=0)
    ask: dict[str, Any] = {
        "model": "m1",
        "max_tokens": 100,
        "tools": [BASH],
        "messages": [{"role": "user", "content": "Show note.txt"}],
    }
    if stream:
        with client.messages.stream(**ask) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(**ask)
    assert first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use" and call.name == "Bash"
    assert call.input == {"command": COMMAND, "description": "Show the file"}

    result = {"type": "tool_result", "tool_use_id": call.id, "content": RESULT}
    ask["messages"] += [
        {"role": "assistant", "content": [call.model_dump()]},
        {"role": "user", "content": [result]},
    ]
    if stream:
        with client.messages.stream(**ask) as events:
            second = events.get_final_message()
    else:
        second = client.messages.create(**ask)
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and RESULT in second.content[0].text
    assert_key_redacted(api)


@pytest.mark.parametrize("stream", [True, False])
def test_responses_tool_round_trip(api: ModelApi, stream: bool) -> None:
    client = openai.OpenAI(base_url=f"{api.origin}/v1", api_key="sk-secret", max_retries=0)
    items: list[Any] = [{"role": "user", "content": "Show note.txt"}]
    if stream:
        with client.responses.stream(model="m1", input=items, tools=[EXEC]) as events:
            first: Any = events.get_final_response()
    else:
        first = client.responses.create(model="m1", input=items, tools=[EXEC])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "exec_command"
    assert json.loads(call.arguments) == {"cmd": COMMAND}
    assert first.usage is not None and first.id.startswith("resp_")

    items += [
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": RESULT},
    ]
    if stream:
        with client.responses.stream(model="m1", input=items, tools=[EXEC]) as events:
            second: Any = events.get_final_response()
    else:
        second = client.responses.create(model="m1", input=items, tools=[EXEC])
    assert RESULT in second.output_text
    assert_key_redacted(api)


@pytest.mark.parametrize("stream", [True, False])
def test_chat_tool_round_trip(api: ModelApi, stream: bool) -> None:
    client = openai.OpenAI(base_url=f"{api.origin}/v1", api_key="sk-secret", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Show note.txt"}]
    if stream:
        with client.chat.completions.stream(
            model="m1",
            messages=messages,
            tools=[CHAT_SHELL],
            stream_options={"include_usage": True},
        ) as events:
            first: Any = events.get_final_completion()
        assert first.usage is not None
    else:
        first = client.chat.completions.create(model="m1", messages=messages, tools=[CHAT_SHELL])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "shell"
    assert json.loads(call.function.arguments) == {"command": ["bash", "-lc", COMMAND]}

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": RESULT},
    ]
    if stream:
        with client.chat.completions.stream(
            model="m1", messages=messages, tools=[CHAT_SHELL]
        ) as events:
            second: Any = events.get_final_completion()
    else:
        second = client.chat.completions.create(model="m1", messages=messages, tools=[CHAT_SHELL])
    assert RESULT in (second.choices[0].message.content or "")


def test_models_and_plain_text(api: ModelApi) -> None:
    client = openai.OpenAI(base_url=f"{api.origin}/v1", api_key="k", max_retries=0)
    assert [m.id for m in client.models.list()] == ["m1", "m2"]
    answer = client.responses.create(model="m2", input="Hello")
    assert answer.output_text == "OK."


def test_other_hosts_are_refused_and_recorded(api: ModelApi) -> None:
    before = len(api.refused())
    with httpx.Client(proxy=api.origin) as client:
        assert client.get("http://example.invalid/x").status_code == 403
        with pytest.raises(httpx.ProxyError):
            client.get("https://example.invalid/")
    refused = api.refused()[before:]
    assert [(e.method, e.path) for e in refused] == [
        ("GET", "http://example.invalid/x"),
        ("CONNECT", "example.invalid:443"),
    ]


def test_a_websocket_upgrade_gets_426(api: ModelApi) -> None:
    headers = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13"}
    answer = httpx.get(f"{api.origin}/v1/responses", headers=headers)
    assert answer.status_code == 426
    assert api.requests()[-1].answer == "websocket-refused"
