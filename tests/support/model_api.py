"""A scripted model behind the three APIs coding agents speak, recording every request.

`ModelApi` serves, on 127.0.0.1 and a free port, `POST /v1/messages` (Anthropic Messages),
`POST /v1/responses` (OpenAI Responses), `POST /v1/chat/completions` and `GET /v1/models`, each
streamed in its API's own shape (or as one JSON body when the client asks for no stream). Its model
calls one tool: on a turn that carries no tool result and offers a shell tool it asks to run a
command; on the turn after a tool result it answers text quoting that result; anything else gets a
short text. Every request is kept (headers with secrets redacted, the JSON body), so tests and the
fixture recorder can read exactly what a client sent.

A WebSocket upgrade (Codex tries the Responses API over one with its built-in OpenAI provider)
gets 426, which sends the client to plain HTTP at once.

It also answers as an HTTP proxy that refuses everything: give a client
`HTTPS_PROXY=http://127.0.0.1:PORT` and any attempt to reach another host is recorded (as a
`CONNECT` or absolute-URL request) and refused, so nothing leaves the machine.

`python -m tests.support.model_api --port 8765` runs it alone and prints each request.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: Header names (lower case) whose values never get recorded.
SECRET_HEADER_PARTS = ("key", "auth", "token", "cookie", "secret")
REDACTED = "<redacted>"

#: Shell tools agents offer, by name, in the order the scripted model prefers them.
SHELL_TOOLS = ("Bash", "shell_command", "shell", "exec_command")

JSON = dict[str, Any]
#: One SSE event: its `event:` name (None for data-only streams such as chat completions) and data.
Event = tuple[str | None, JSON | str]
#: Rewrites the events of an answer before they are sent (experiments on what clients need).
EventFilter = Callable[[str, list[Event]], list[Event]]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: JSON


@dataclass(frozen=True)
class Text:
    text: str


Reply = ToolCall | Text


@dataclass
class Exchange:
    """One request as received, and what kind of answer it got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    answer: str = ""
    at: float = field(default_factory=time.time)

    def as_json(self) -> JSON:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }


def redact_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        secret = any(part in lower for part in SECRET_HEADER_PARTS)
        out[lower] = REDACTED if secret else value
    return out


# --- what the model answers -------------------------------------------------------------------


def _tool_schema(tool: JSON) -> tuple[str | None, JSON]:
    """A tool definition's name and parameter schema, in any of the three APIs' shapes."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        fn = tool["function"]
        return fn.get("name"), fn.get("parameters") or {}
    if "input_schema" in tool:
        return tool.get("name"), tool["input_schema"] or {}
    return tool.get("name"), tool.get("parameters") or {}


def shell_call(tools: list[JSON], command: str) -> ToolCall | None:
    """A call of the offered shell tool that runs `command`, with arguments fitting its schema."""
    offered = {name: schema for name, schema in map(_tool_schema, tools) if name}
    for name in SHELL_TOOLS:
        if name not in offered:
            continue
        props = offered[name].get("properties") or {}
        if "cmd" in props:
            return ToolCall(name, {"cmd": command})
        if props.get("command", {}).get("type") == "array":
            return ToolCall(name, {"command": ["bash", "-lc", command]})
        if "command" in props:
            args: JSON = {"command": command}
            if "description" in props:
                args["description"] = "Show the file"
            return ToolCall(name, args)
    return None


def _text_of(content: Any) -> str:
    """The text in a tool result's content, whichever API's shape it has."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "output", "content"):
            if key in content:
                return _text_of(content[key])
    return ""


def tool_results(api: str, body: JSON) -> list[str]:
    """The outputs of every tool result in the conversation, oldest first."""
    if api == "responses":
        items = body.get("input")
        return [
            _text_of(item.get("output"))
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict)
            and item.get("type") in ("function_call_output", "custom_tool_call_output")
        ]
    found: list[str] = []
    for message in body.get("messages") or []:
        if api == "chat" and message.get("role") == "tool":
            found.append(_text_of(message.get("content")))
        content = message.get("content")
        if api == "messages" and isinstance(content, list):
            found += [
                _text_of(block.get("content"))
                for block in content
                if isinstance(block, dict) and block.get("type") == "tool_result"
            ]
    return found


@dataclass
class Script:
    """What the scripted model does: run `command` with the shell tool offered, then quote it.

    A conversation that already holds a tool result gets the text quoting the latest one, wherever
    the client put it (clients add reminders and system turns after results), so the model calls
    its tool once per conversation and never loops.
    """

    command: str = "cat README.md"
    answer_prefix: str = "The tool said: "
    plain_text: str = "OK."

    def reply(self, api: str, body: JSON) -> Reply:
        results = tool_results(api, body)
        if results:
            return Text(self.answer_prefix + results[-1].strip())
        call = shell_call(body.get("tools") or [], self.command)
        return call if call is not None else Text(self.plain_text)


# --- answers in each API's shape -----------------------------------------------------------------


class Ids:
    """Ids in the forms the real APIs use, unique per server."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def make(self, prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:24]}{next(self._n):04d}"


def _chunks(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def anthropic_events(reply: Reply, model: str, ids: Ids, input_tokens: int) -> list[Event]:
    message: dict[str, Any] = {
        "id": ids.make("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    events: list[Event] = [("message_start", {"type": "message_start", "message": message})]
    if isinstance(reply, ToolCall):
        block = {"type": "tool_use", "id": ids.make("toolu_"), "name": reply.name, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": part}
            for part in _chunks(json.dumps(reply.arguments))
        ]
        stop_reason, output = "tool_use", json.dumps(reply.arguments)
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in _chunks(reply.text)]
        stop_reason, output = "end_turn", reply.text
    events.append(
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
    )
    events.append(("ping", {"type": "ping"}))
    events += [
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
        for d in deltas
    ]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": max(1, len(output) // 4)},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def anthropic_message(reply: Reply, model: str, ids: Ids, input_tokens: int) -> JSON:
    """The same answer, not streamed."""
    if isinstance(reply, ToolCall):
        content = [
            {
                "type": "tool_use",
                "id": ids.make("toolu_"),
                "name": reply.name,
                "input": reply.arguments,
            }
        ]
        stop_reason, output = "tool_use", json.dumps(reply.arguments)
    else:
        content = [{"type": "text", "text": reply.text}]
        stop_reason, output = "end_turn", reply.text
    return {
        "id": ids.make("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": max(1, len(output) // 4)},
    }


def _responses_usage(input_tokens: int, output: str) -> JSON:
    out = max(1, len(output) // 4)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + out,
    }


def responses_item(reply: Reply, ids: Ids) -> JSON:
    """The completed output item of an answer."""
    if isinstance(reply, ToolCall):
        return {
            "type": "function_call",
            "id": ids.make("fc_"),
            "call_id": ids.make("call_"),
            "name": reply.name,
            "arguments": json.dumps(reply.arguments),
            "status": "completed",
        }
    return {
        "type": "message",
        "id": ids.make("msg_"),
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
    }


def responses_object(
    rid: str, model: str, status: str, output: list[JSON], usage: JSON | None
) -> JSON:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
    }


def responses_events(reply: Reply, model: str, ids: Ids, input_tokens: int) -> list[Event]:
    rid = ids.make("resp_")
    item = responses_item(reply, ids)
    started = {**item, "status": "in_progress"}
    events: list[Event] = [
        ("response.created", {"response": responses_object(rid, model, "in_progress", [], None)}),
        (
            "response.in_progress",
            {"response": responses_object(rid, model, "in_progress", [], None)},
        ),
    ]
    if isinstance(reply, ToolCall):
        started["arguments"] = ""
        events.append(("response.output_item.added", {"output_index": 0, "item": started}))
        for part in _chunks(item["arguments"]):
            events.append(
                (
                    "response.function_call_arguments.delta",
                    {"item_id": item["id"], "output_index": 0, "delta": part},
                )
            )
        events.append(
            (
                "response.function_call_arguments.done",
                {"item_id": item["id"], "output_index": 0, "arguments": item["arguments"]},
            )
        )
        output = item["arguments"]
    else:
        started["content"] = []
        events.append(("response.output_item.added", {"output_index": 0, "item": started}))
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        empty = {"type": "output_text", "text": "", "annotations": []}
        events.append(("response.content_part.added", {**where, "part": empty}))
        for part in _chunks(reply.text):
            events.append(("response.output_text.delta", {**where, "delta": part}))
        events.append(("response.output_text.done", {**where, "text": reply.text}))
        events.append(("response.content_part.done", {**where, "part": item["content"][0]}))
        output = reply.text
    events.append(("response.output_item.done", {"output_index": 0, "item": item}))
    usage = _responses_usage(input_tokens, output)
    events.append(
        (
            "response.completed",
            {"response": responses_object(rid, model, "completed", [item], usage)},
        )
    )
    # Each event's data carries its type and its place in the stream, as the real API's do.
    return [
        (name, {"type": name, "sequence_number": n, **data})
        for n, (name, data) in enumerate(events)
        if isinstance(data, dict)
    ]


def responses_body(reply: Reply, model: str, ids: Ids, input_tokens: int) -> JSON:
    item = responses_item(reply, ids)
    output = item["arguments"] if isinstance(reply, ToolCall) else reply.text
    return responses_object(
        ids.make("resp_"), model, "completed", [item], _responses_usage(input_tokens, output)
    )


def chat_events(
    reply: Reply, model: str, ids: Ids, input_tokens: int, include_usage: bool
) -> list[Event]:
    cid, created = ids.make("chatcmpl-"), int(time.time())

    def chunk(delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }

    if isinstance(reply, ToolCall):
        arguments = json.dumps(reply.arguments)
        head = {
            "index": 0,
            "id": ids.make("call_"),
            "type": "function",
            "function": {"name": reply.name, "arguments": ""},
        }
        events: list[JSON] = [chunk({"role": "assistant", "content": None, "tool_calls": [head]})]
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            for part in _chunks(arguments)
        ]
        events.append(chunk({}, "tool_calls"))
        output = arguments
    else:
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": part}) for part in _chunks(reply.text)]
        events.append(chunk({}, "stop"))
        output = reply.text
    if include_usage:
        out = max(1, len(output) // 4)
        usage = {
            "prompt_tokens": input_tokens,
            "completion_tokens": out,
            "total_tokens": input_tokens + out,
        }
        events.append({**chunk({}), "choices": [], "usage": usage})
    return [(None, e) for e in events] + [(None, "[DONE]")]


def chat_body(reply: Reply, model: str, ids: Ids, input_tokens: int) -> JSON:
    if isinstance(reply, ToolCall):
        call = {
            "id": ids.make("call_"),
            "type": "function",
            "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
        }
        message: JSON = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": reply.text}, "stop"
    return {
        "id": ids.make("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": 1,
            "total_tokens": input_tokens + 1,
        },
    }


def sse(events: list[Event]) -> Iterator[bytes]:
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {payload}\n\n".encode()


# --- variations on a stream, to find out what a client needs -----------------------------------


def without(*names: str) -> EventFilter:
    """Leaves out the events so named."""
    return lambda kind, events: [e for e in events if e[0] not in names]


def edited(change: Callable[[str | None, JSON], None]) -> EventFilter:
    """Lets `change` edit a copy of each event's data in place (by the event's name)."""

    def apply(kind: str, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for name, data in events:
            if isinstance(data, dict):
                data = copy.deepcopy(data)
                change(name, data)
            out.append((name, data))
        return out

    return apply


def data_lines_only(kind: str, events: list[Event]) -> list[Event]:
    """The same stream without `event:` lines (each frame a `data:` line alone)."""
    return [(None, data) for _, data in events]


# --- the server ----------------------------------------------------------------------------------


class ModelApi:
    """The scripted model on a free loopback port; use as a context manager."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        models: tuple[str, ...] = ("test-model",),
        event_filter: EventFilter | None = None,
        port: int = 0,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.script = script or Script()
        self.models = models
        self.event_filter = event_filter
        self.on_exchange = on_exchange
        self.exchanges: list[Exchange] = []
        self.ids = Ids()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)
        if self.on_exchange:
            self.on_exchange(exchange)

    def requests(self, path: str | None = None) -> list[Exchange]:
        """The model requests received (on `path` if given), proxy attempts left out."""
        with self._lock:
            found = [e for e in self.exchanges if e.answer != "refused-proxy"]
        return [e for e in found if path is None or e.path == path]

    def refused(self) -> list[Exchange]:
        """Attempts to reach other hosts through this server as a proxy."""
        with self._lock:
            return [e for e in self.exchanges if e.answer == "refused-proxy"]

    def __enter__(self) -> ModelApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler_for(api: ModelApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        # -- plumbing --

        def _body(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.headers.get("content-encoding") == "gzip":
                raw = gzip.decompress(raw)
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _exchange(self, body: Any) -> Exchange:
            url = urlsplit(self.path)
            return Exchange(
                method=self.command,
                path=url.path if not url.netloc else f"{url.scheme}://{url.netloc}{url.path}",
                query=dict(parse_qsl(url.query, keep_blank_values=True)),
                headers=redact_headers(list(self.headers.items())),
                body=body,
            )

        def _json(self, status: int, payload: JSON, exchange: Exchange, answer: str) -> None:
            exchange.answer = answer
            api.record(exchange)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, events: list[Event], exchange: Exchange, answer: str) -> None:
            exchange.answer = answer
            api.record(exchange)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for frame in sse(events):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _refuse_proxy(self) -> None:
            exchange = self._exchange(None)
            if self.command == "CONNECT":
                exchange.path = self.path
            exchange.answer = "refused-proxy"
            api.record(exchange)
            self.send_response(403)
            self.send_header("content-length", "0")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True

        # -- routes --

        def do_CONNECT(self) -> None:
            self._refuse_proxy()

        def do_GET(self) -> None:
            if urlsplit(self.path).netloc:
                return self._refuse_proxy()
            exchange = self._exchange(None)
            if exchange.path.rstrip("/").endswith("/models"):
                models = [
                    {
                        "id": m,
                        "object": "model",
                        "type": "model",
                        "created": 0,
                        "created_at": "2025-01-01T00:00:00Z",
                        "owned_by": "test",
                        "display_name": m,
                    }
                    for m in api.models
                ]
                payload = {
                    "object": "list",
                    "data": models,
                    "has_more": False,
                    "first_id": api.models[0],
                    "last_id": api.models[-1],
                }
                return self._json(200, payload, exchange, "models")
            if self.headers.get("upgrade", "").lower() == "websocket":
                # Codex's built-in OpenAI provider tries the Responses API over a WebSocket
                # first: 426 sends it to HTTP at once (a 404 costs it ~7 s of retries first).
                error = {"error": {"message": "WebSocket not supported: use HTTP"}}
                return self._json(426, error, exchange, "websocket-refused")
            return self._json(404, {"error": {"message": "not found"}}, exchange, "not-found")

        def do_HEAD(self) -> None:
            exchange = self._exchange(None)
            exchange.answer = "head"
            api.record(exchange)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            if urlsplit(self.path).netloc:
                return self._refuse_proxy()
            body = self._body()
            exchange = self._exchange(body)
            if not isinstance(body, dict):
                return self._json(400, {"error": {"message": "JSON body"}}, exchange, "bad")
            path = exchange.path
            model = str(body.get("model") or api.models[0])
            size = len(json.dumps(body)) // 4
            if path.endswith("/messages/count_tokens"):
                return self._json(200, {"input_tokens": size}, exchange, "count-tokens")
            if path.endswith("/messages"):
                return self._answer("messages", body, exchange, model, size)
            if path.endswith("/responses"):
                return self._answer("responses", body, exchange, model, size)
            if path.endswith("/chat/completions"):
                return self._answer("chat", body, exchange, model, size)
            return self._json(404, {"error": {"message": "not found"}}, exchange, "not-found")

        def _answer(self, kind: str, body: JSON, exchange: Exchange, model: str, size: int) -> None:
            reply = api.script.reply(kind, body)
            answer = f"tool:{reply.name}" if isinstance(reply, ToolCall) else "text"
            if not body.get("stream"):
                answer += " (not streamed)"
                payload = {
                    "messages": anthropic_message,
                    "responses": responses_body,
                    "chat": chat_body,
                }[kind](reply, model, api.ids, size)
                return self._json(200, payload, exchange, answer)
            if kind == "messages":
                events = anthropic_events(reply, model, api.ids, size)
            elif kind == "responses":
                events = responses_events(reply, model, api.ids, size)
            else:
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = chat_events(reply, model, api.ids, size, usage)
            if api.event_filter:
                events = api.event_filter(kind, events)
            self._stream(events, exchange, answer)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--command", default=Script.command, help="what the tool call runs")
    parser.add_argument("--record", type=Path, help="write each request there as N.json")
    args = parser.parse_args()
    count = itertools.count(1)

    def show(e: Exchange) -> None:
        print(f"{e.method} {e.path} {e.query} -> {e.answer}", flush=True)
        if args.record:
            args.record.mkdir(parents=True, exist_ok=True)
            record = {**e.as_json(), "answer": e.answer}
            (args.record / f"{next(count):03d}.json").write_text(json.dumps(record, indent=2))

    with ModelApi(Script(command=args.command), port=args.port, on_exchange=show) as api:
        print(f"listening on {api.origin}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
