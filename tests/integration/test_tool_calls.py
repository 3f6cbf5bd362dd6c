"""Tool calls through the whole bridge, with the official SDKs, on the fake arena.

openai SDK (chat completions, Responses) and anthropic SDK → gateway → Redis/arq → a browser
worker → the fake arena, whose scripted `replies` make the model write a `<tool_call>` block
when it is asked, and answer from the result the next turn carries. For each API, streamed and
not: the call comes back in the API's own shapes, its result goes back, and the next turn is a
post in the same arena thread that carries only the result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai as openai_errors
import pytest
from openai.types.chat import ChatCompletion

from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

MODEL = "gemini-2.5-pro"
STREAM_PATH = "/nextjs-api/stream/"
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city. Use it for any question about weather.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name."},
            "days": {"type": "integer"},
        },
        "required": ["city"],
        "additionalProperties": False,
    },
}
TIME = {
    "name": "get_time",
    "description": "The local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running(tmp_path_factory.mktemp("tools"), "tools-1") as stack:
        yield stack


@pytest.fixture(autouse=True)
def since(stack: Stack) -> Iterator[int]:
    yield len(stack.arena_log()["requests"])
    stack.arena("POST", "scenario", json={"replies": []})


def script(stack: Stack, *replies: tuple[str, str]) -> None:
    """The model answers `text` to a turn whose message matches the regex (first match wins)."""
    stack.arena("POST", "scenario", json={"replies": [{"match": m, "text": t} for m, t in replies]})


def block(name: str, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def stream_requests(stack: Stack, since: int) -> list[dict]:
    """The arena's create, post and retry requests since `since` (not stops, not refusals)."""
    return [
        r
        for r in stack.arena_log()["requests"][since:]
        if r["path"].startswith(STREAM_PATH) and endpoint(r) != "stop" and r["status"] != 403
    ]


def endpoint(request: dict) -> str:
    return request["path"][len(STREAM_PATH) :].split("/", 1)[0]


def sent(request: dict) -> str:
    return request["body"]["userMessage"]["content"]


# --- one API each, in its own shapes ----------------------------------------------------------


@dataclass
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    text: str
    calls: list[Call]
    #: The API's own finish: finish_reason, stop_reason or the response's status.
    finish: str
    #: What the client sends back as the assistant's turn.
    turn: list[dict[str, Any]] = field(default_factory=list)


def named(choice: str) -> bool:
    """Whether a `tool_choice` names a tool (else: auto, none, required)."""
    return choice not in ("auto", "none", "required")


class Api:
    stream: bool

    def user(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": text}]


class OpenAIApi(Api):
    def __init__(self, stack: Stack, stream: bool) -> None:
        self.client = stack.openai()
        self.stream = stream


class Chat(OpenAIApi):
    """OpenAI chat completions."""

    name = "chat"

    def result(self, call: Call, output: str) -> list[dict[str, Any]]:
        return [{"role": "tool", "tool_call_id": call.id, "content": output}]

    def ask(
        self,
        history: list[dict[str, Any]],
        tools: list[dict],
        choice: str | None = None,
        parallel: bool | None = None,
    ) -> Reply:
        fields: dict[str, Any] = {
            "model": MODEL,
            "messages": history,
            "tools": [{"type": "function", "function": t} for t in tools],
        }
        if choice is not None:
            fields["tool_choice"] = (
                {"type": "function", "function": {"name": choice}} if named(choice) else choice
            )
        if parallel is not None:
            fields["parallel_tool_calls"] = parallel
        if self.stream:
            with self.client.chat.completions.stream(**fields) as events:
                completion = events.get_final_completion()
        else:
            completion = self.client.chat.completions.create(**fields)
        first = completion.choices[0]
        message = first.message
        calls = [
            Call(c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or []
        ]
        turn = message.model_dump(include={"role", "content", "tool_calls"}, exclude_none=True)
        return Reply(message.content or "", calls, first.finish_reason, [turn])


class Responses(OpenAIApi):
    """OpenAI Responses."""

    name = "responses"

    def result(self, call: Call, output: str) -> list[dict[str, Any]]:
        return [{"type": "function_call_output", "call_id": call.id, "output": output}]

    def ask(
        self,
        history: list[dict[str, Any]],
        tools: list[dict],
        choice: str | None = None,
        parallel: bool | None = None,
    ) -> Reply:
        fields: dict[str, Any] = {
            "model": MODEL,
            "input": history,
            "tools": [{"type": "function", **t} for t in tools],
        }
        if choice is not None:
            fields["tool_choice"] = (
                {"type": "function", "name": choice} if named(choice) else choice
            )
        if parallel is not None:
            fields["parallel_tool_calls"] = parallel
        if self.stream:
            with self.client.responses.stream(**fields) as events:
                response = events.get_final_response()
        else:
            response = self.client.responses.create(**fields)
        calls = [
            Call(item.call_id, item.name, json.loads(item.arguments))
            for item in response.output
            if item.type == "function_call"
        ]
        turn = [item.model_dump(exclude_none=True) for item in response.output]
        return Reply(response.output_text, calls, response.status or "", turn)


class Messages(Api):
    """Anthropic Messages."""

    name = "anthropic"

    def __init__(self, stack: Stack, stream: bool) -> None:
        self.client = anthropic.Anthropic(
            base_url=stack.base_url, api_key="unused", max_retries=0, timeout=60
        )
        self.stream = stream

    def result(self, call: Call, output: str) -> list[dict[str, Any]]:
        return [
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": output}],
            }
        ]

    def ask(
        self,
        history: list[dict[str, Any]],
        tools: list[dict],
        choice: str | None = None,
        parallel: bool | None = None,
    ) -> Reply:
        options: dict[str, Any] = {}
        if choice is not None:
            kinds = {"auto": "auto", "none": "none", "required": "any"}
            options["tool_choice"] = (
                {"type": "tool", "name": choice} if named(choice) else {"type": kinds[choice]}
            )
        if parallel is False:
            options["tool_choice"] = {
                **options.get("tool_choice", {"type": "auto"}),
                "disable_parallel_tool_use": True,
            }
        fields: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 1024,
            "messages": history,
            "tools": [
                {
                    "name": t["name"],
                    "description": t["description"],
                    "input_schema": t["parameters"],
                }
                for t in tools
            ],
            **options,
        }
        if self.stream:
            with self.client.messages.stream(**fields) as events:
                message = events.get_final_message()
        else:
            message = self.client.messages.create(**fields)
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = [Call(b.id, b.name, dict(b.input)) for b in message.content if b.type == "tool_use"]
        turn = {
            "role": "assistant",
            "content": [b.model_dump(exclude_none=True) for b in message.content],
        }
        return Reply(text, calls, message.stop_reason or "", [turn])


API = Chat | Responses | Messages
APIS: list[Callable[[Stack, bool], API]] = [Chat, Responses, Messages]
#: What each API says of an answer that ends in calls, and of one that does not.
CALLED = {"chat": "tool_calls", "responses": "completed", "anthropic": "tool_use"}
ENDED = {"chat": "stop", "responses": "completed", "anthropic": "end_turn"}


@pytest.fixture(
    params=[(api, stream) for api in APIS for stream in (False, True)],
    ids=lambda p: f"{p[0].name}-{'streamed' if p[1] else 'whole'}",
)
def api(request: pytest.FixtureRequest, stack: Stack) -> API:
    make, stream = request.param
    return make(stack, stream)


# --- the round trip ----------------------------------------------------------------------------


def test_a_call_its_result_and_the_answer_from_it(stack: Stack, api: API, since: int) -> None:
    question = unique("What is the weather in Oslo?")
    token = question.rsplit(" ", 1)[1]
    script(
        stack,
        (f"RESULT-{token}", f"It rains in Oslo, says the tool ({token})."),
        (token, "Let me look that up.\n" + block("get_weather", city="Oslo", days="2")),
    )
    history = api.user(question)
    first = api.ask(history, [WEATHER])

    assert [(c.name, c.arguments) for c in first.calls] == [
        ("get_weather", {"city": "Oslo", "days": 2})
    ]
    assert first.text.strip() == "Let me look that up."
    assert first.finish == CALLED[api.name]

    history += first.turn + api.result(first.calls[0], f"RESULT-{token}: rain, 7 °C")
    second = api.ask(history, [WEATHER])
    assert second.text == f"It rains in Oslo, says the tool ({token})."
    assert second.calls == [] and second.finish == ENDED[api.name]

    create, post = stream_requests(stack, since)
    assert (endpoint(create), endpoint(post)) == ("create-evaluation", "post-to-evaluation")
    assert post["body"]["id"] == create["body"]["id"]  # the same arena thread
    prompt = sent(create)
    assert prompt.startswith("<system>\nYou can call tools") and '"name":"get_weather"' in prompt
    assert prompt.endswith(f"<user>\n{question}\n</user>")
    # Only the new turn: the tool's result, named after its tool.
    assert sent(post) == f"<tool>\nget_weather returned:\nRESULT-{token}: rain, 7 °C\n</tool>"


# --- several calls, tool_choice, broken calls, the prompt limit ---------------------------------


def weather_and_time(stack: Stack, token: str) -> None:
    """The model calls both tools at once, whatever it is told."""
    script(
        stack,
        (
            token,
            "Two things to look up.\n"
            + block("get_weather", city="Oslo")
            + "\n\n"
            + block("get_time", city="Oslo")
            + "\nThe weather is fine.",  # made up after the calls: never shown
        ),
    )


def test_parallel_calls_come_in_order(stack: Stack, api: API) -> None:
    question = unique("Weather and time in Oslo?")
    weather_and_time(stack, question.rsplit(" ", 1)[1])

    reply = api.ask(api.user(question), [WEATHER, TIME])

    assert [(c.name, c.arguments) for c in reply.calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {"city": "Oslo"}),
    ]
    assert len({c.id for c in reply.calls}) == 2
    assert reply.text.strip() == "Two things to look up." and reply.finish == CALLED[api.name]


def test_without_parallel_calls_only_the_first_is_made(stack: Stack, api: API, since: int) -> None:
    question = unique("Weather and time in Oslo?")
    weather_and_time(stack, question.rsplit(" ", 1)[1])

    reply = api.ask(api.user(question), [WEATHER, TIME], parallel=False)

    assert [c.name for c in reply.calls] == ["get_weather"]
    assert reply.finish == CALLED[api.name]
    assert sent(stream_requests(stack, since)[0]).endswith(
        "<system>\nCall at most one tool in this answer.\n</system>"
    )


@pytest.mark.parametrize(
    ("choice", "asked", "calls"),
    [
        ("auto", None, ["get_weather", "get_time"]),
        ("required", "Call at least one tool in this answer.", ["get_weather", "get_time"]),
        ("get_time", "Call the tool `get_time` in this answer.", ["get_time"]),
        ("none", "Do not call a tool in this answer.", []),
    ],
)
def test_tool_choice_is_asked_of_the_model_and_held_to(
    stack: Stack, api: API, since: int, choice: str, asked: str | None, calls: list[str]
) -> None:
    question = unique("Weather and time in Oslo?")
    token = question.rsplit(" ", 1)[1]
    weather_and_time(stack, token)

    reply = api.ask(api.user(question), [WEATHER, TIME], choice=choice)

    assert [c.name for c in reply.calls] == calls
    prompt = sent(stream_requests(stack, since)[0])
    if asked is None:
        assert prompt.endswith(f"<user>\n{question}\n</user>")
    else:
        assert prompt.endswith(f"<system>\n{asked}\n</system>")
    if choice == "none":  # no call is made: the blocks are text
        assert block("get_weather", city="Oslo") in reply.text
        assert reply.finish == ENDED[api.name]
    if choice == "get_time":  # a call of another tool is not one
        assert reply.text.startswith("Two things to look up.\n" + block("get_weather", city="Oslo"))


@pytest.mark.parametrize(
    "answer",
    [
        '<tool_call>{"name": "get_weather", "arguments": {"city": }}</tool_call>',  # not JSON
        block("get_forecast", city="Oslo"),  # no such tool
        block("get_weather", days=2),  # its required argument missing
        block("get_weather", city="Oslo", days="soon"),  # not an integer
    ],
    ids=["not-json", "unknown-tool", "missing-argument", "wrong-type"],
)
def test_a_malformed_call_is_shown_as_text(stack: Stack, api: API, answer: str) -> None:
    question = unique("What is the weather in Oslo?")
    script(stack, (question.rsplit(" ", 1)[1], f"Checking.\n{answer}"))

    reply = api.ask(api.user(question), [WEATHER])

    assert reply.calls == []
    assert reply.text == f"Checking.\n{answer}" and reply.finish == ENDED[api.name]


def test_a_prompt_the_contract_cannot_fit_in_is_refused_naming_both_sizes(
    stack: Stack, api: API, since: int
) -> None:
    question = "x" * 113_000
    tools = [WEATHER, TIME]
    with pytest.raises((openai_errors.BadRequestError, anthropic.BadRequestError)) as refused:
        api.ask(api.user(question), tools)

    error = refused.value
    assert isinstance(error, openai_errors.BadRequestError | anthropic.BadRequestError)
    assert error.status_code == 400
    message = str(error)
    assert "characters long (the tool definitions take" in message
    assert "the arena accepts at most 113,567" in message
    assert stream_requests(stack, since) == []


# --- Responses: previous_response_id -------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_response_the_bridge_answered_is_continued_by_its_id(
    stack: Stack, since: int, stream: bool
) -> None:
    question = unique("What is the weather in Oslo?")
    token = question.rsplit(" ", 1)[1]
    script(
        stack,
        (f"RESULT-{token}", f"Rain, says the tool ({token})."),
        (token, block("get_weather", city="Oslo")),
    )
    api = Responses(stack, stream)
    first = api.client.responses.create(
        model=MODEL, input=question, tools=[{"type": "function", **WEATHER}]
    )
    (call,) = [item for item in first.output if item.type == "function_call"]

    output = {"type": "function_call_output", "call_id": call.call_id, "output": f"RESULT-{token}"}
    fields: dict[str, Any] = {
        "model": MODEL,
        "previous_response_id": first.id,
        "input": [output],
        "tools": [{"type": "function", **WEATHER}],
    }
    if stream:
        with api.client.responses.stream(**fields) as events:
            second = events.get_final_response()
    else:
        second = api.client.responses.create(**fields)

    assert second.output_text == f"Rain, says the tool ({token})."
    create, post = stream_requests(stack, since)
    assert endpoint(post) == "post-to-evaluation" and post["body"]["id"] == create["body"]["id"]
    assert sent(post) == f"<tool>\nget_weather returned:\nRESULT-{token}\n</tool>"


def test_a_response_id_the_bridge_does_not_keep_is_a_400(stack: Stack) -> None:
    client = stack.openai()
    kept_not = client.responses.create(model=MODEL, input=unique("Hello"), store=False)
    for unknown in (kept_not.id, "resp_unknown"):
        with pytest.raises(openai_errors.BadRequestError) as refused:
            client.responses.create(model=MODEL, input="Again", previous_response_id=unknown)
        assert refused.value.code == "previous_response_not_found"
        assert f"Previous response with id '{unknown}' not found" in refused.value.message


# --- JSON mode -----------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rain": {"type": "boolean"}},
    "required": ["city", "rain"],
}


def json_answer(api: API, question: str, schema: dict | None) -> str:
    """The answer to `question` in JSON mode, asked through `api` in its own words."""
    if isinstance(api, Chat):
        fmt: dict[str, Any] = {"type": "json_object"}
        if schema:
            fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
        fields: dict[str, Any] = {"model": MODEL, "messages": api.user(question)}
        if api.stream:
            chunks = api.client.chat.completions.create(**fields, response_format=fmt, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        answer = api.client.chat.completions.create(**fields, response_format=fmt)
        return answer.choices[0].message.content or ""
    if isinstance(api, Responses):
        text: dict[str, Any] = {"format": {"type": "json_object"}}
        if schema:
            text = {"format": {"type": "json_schema", "name": "w", "schema": schema}}
        response = api.client.responses.create(model=MODEL, input=question, text=text)
        return response.output_text
    config = {"format": {"type": "json_schema", "schema": schema or {"type": "object"}}}
    message = api.client.messages.create(
        model=MODEL,
        max_tokens=512,
        messages=api.user(question),
        extra_body={"output_config": config},
    )
    return "".join(b.text for b in message.content if b.type == "text")


@pytest.mark.parametrize("schema", [None, SCHEMA], ids=["object", "schema"])
def test_json_mode_asks_checks_and_asks_once_more_in_the_same_thread(
    stack: Stack, api: API, since: int, schema: dict | None
) -> None:
    question = unique("Is it raining in Oslo?")
    script(
        stack,
        ("cannot be used", '```json\n{"city": "Oslo", "rain": true}\n```'),
        (question.rsplit(" ", 1)[1], 'Sure! {"city": "Oslo", "rain": "yes"}'),
    )

    assert json.loads(json_answer(api, question, schema)) == {"city": "Oslo", "rain": True}

    requests = stream_requests(stack, since)
    assert len(requests) == 2, [(endpoint(r), r["status"], sent(r)[-300:]) for r in requests]
    create, post = requests
    asked = sent(create).rsplit("<system>\n", 1)[1]
    assert asked.startswith("Answer with one JSON object and nothing else: no code fence")
    if schema is not None:
        assert (
            f"It must match this JSON Schema: {json.dumps(schema, separators=(',', ':'))}" in asked
        )
    assert post["body"]["id"] == create["body"]["id"]
    assert sent(post).startswith("Your answer cannot be used: it is not valid JSON")


# --- stop sequences and token limits, at the bridge ----------------------------------------------

LONG = " ".join(f"word{n}" for n in range(60))


@pytest.fixture
def slow(stack: Stack) -> Iterator[None]:
    """Lines 50 ms apart: an answer cut at the bridge is still streaming in the arena."""
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.05})
    yield
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0})


def arena_status(stack: Stack, since: int) -> str:
    (create,) = stream_requests(stack, since)
    deadline = time.monotonic() + 10
    while True:  # the worker stops the arena's answer just after the client's ended
        streams = [
            s for s in stack.arena_log()["streams"] if s["session_id"] == create["body"]["id"]
        ]
        if streams[-1]["status"] != "running" or time.monotonic() > deadline:
            return streams[-1]["status"]
        time.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_stop_sequence_cuts_the_answer_and_stops_the_arena(
    stack: Stack, since: int, slow: None, stream: bool
) -> None:
    question = unique("Count for me")
    script(stack, (question.rsplit(" ", 1)[1], LONG))
    chat = Chat(stack, stream)
    messages = chat.user(question)
    done: ChatCompletion
    if stream:
        with chat.client.chat.completions.stream(
            model=MODEL, messages=messages, stop=["word5 "]
        ) as events:
            done = events.get_final_completion()
    else:
        done = chat.client.chat.completions.create(model=MODEL, messages=messages, stop=["word5 "])
    text, finish = done.choices[0].message.content or "", done.choices[0].finish_reason
    assert (text, finish) == ("word0 word1 word2 word3 word4 ", "stop")
    assert arena_status(stack, since) in ("stopped", "disconnected")  # not run to its end

    claude = Messages(stack, stream).client
    message = claude.messages.create(
        model=MODEL, max_tokens=100, messages=messages, stop_sequences=["word3"]
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "word3")
    assert message.content[0].type == "text" and message.content[0].text == "word0 word1 word2 "


def test_max_tokens_cuts_the_answer_at_the_bridge_in_each_api(
    stack: Stack, since: int, slow: None
) -> None:
    question = unique("Count for me")
    script(stack, (question.rsplit(" ", 1)[1], LONG))
    cut = LONG[:20]  # 5 tokens of four characters

    chat = Chat(stack, False).client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=5
    )
    assert (chat.choices[0].message.content, chat.choices[0].finish_reason) == (cut, "length")
    assert arena_status(stack, since) in ("stopped", "disconnected")  # not run to its end

    response = Responses(stack, True).client.responses.create(
        model=MODEL, input=question, max_output_tokens=5
    )
    assert (response.output_text, response.status) == (cut, "incomplete")
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"

    with Messages(stack, True).client.messages.stream(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": question}]
    ) as events:
        message = events.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and message.content[0].text == cut


# --- the loop guard ------------------------------------------------------------------------------


def test_the_same_call_a_third_time_in_a_row_ends_the_answer_with_text(
    stack: Stack, api: API
) -> None:
    question = unique("What is the weather in Oslo?")
    token = question.rsplit(" ", 1)[1]
    again = block("get_weather", city="Oslo")
    script(stack, (token, again))  # every turn: the same call (the results carry the token)

    history = api.user(question)
    for _ in range(2):
        reply = api.ask(history, [WEATHER])
        assert [c.name for c in reply.calls] == ["get_weather"]
        history += reply.turn + api.result(reply.calls[0], f"no data yet {token}")
    third = api.ask(history, [WEATHER])

    assert third.calls == [] and third.finish == ENDED[api.name]
    assert "call number 3 in a row of `get_weather` with the same arguments" in third.text
