"""A job's events → OpenAI's `response` object and its stream events. Pure: no IO here.

Output items, in the order the answer makes them: reasoning as a `reasoning` item with a
`summary_text` part (the arena shows a model's reasoning as it goes, and clients display
summaries), the answer as an assistant `message` with one `output_text` part, each tool call
as a `function_call` item. A search model's sources become `url_citation` annotations on that
part.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway.answers.fold import Answer, argument_pieces
from gateway.answers.tools.definitions import ToolCall
from gateway.http import sse
from gateway.http.errors import ApiError
from shared.events import Event

#: Finish reasons that leave a response `incomplete`, and the reason it gives.
INCOMPLETE: Mapping[str, str] = {"length": "max_output_tokens", "content-filter": "content_filter"}


def error_code(status: int) -> str:
    """A failed response's `error.code`: one of the values OpenAI's API uses."""
    if status == 429:
        return "rate_limit_exceeded"
    if status < 500:
        return "invalid_prompt"
    return "server_error"


class Output:
    """An answer as output items, returning the stream events for each step."""

    def __init__(self, item_prefix: str) -> None:
        self.answer = Answer()
        self.items: list[dict[str, Any]] = []
        self._prefix = item_prefix
        #: The item deltas go to; None between items.
        self._open: dict[str, Any] | None = None
        #: Where the open message starts in the answer's text.
        self._text_start = 0

    def add(self, event: Event) -> list[dict[str, Any]]:
        piece = self.answer.add(event)
        if piece is None:
            return []
        if piece.call is not None:
            return self._function_call(piece.call)
        return self._append("message" if piece.kind == "text" else "reasoning", piece.text)

    def close(self) -> list[dict[str, Any]]:
        """Finish the open item; sources not yet attached get a message of their own."""
        events = self._close()
        if self.answer.cites:  # cited, but no message was open to take them
            events += self._start("message") + self._close()
        return events

    @property
    def incomplete_reason(self) -> str | None:
        return INCOMPLETE.get(self.answer.finish_reason or "")

    def usage(self, prompt: str) -> dict[str, Any]:
        input_tokens, output_tokens = self.answer.tokens(prompt)
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            # Counted as output above; the arena does not report them apart.
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    def _append(self, type_: str, text: str) -> list[dict[str, Any]]:
        events = []
        if self._open is None or self._open["type"] != type_:
            events += self._close() + self._start(type_, text)
        item = self._open
        assert item is not None
        where = {"item_id": item["id"], "output_index": len(self.items) - 1}
        if type_ == "message":
            item["content"][0]["text"] += text
            delta = {"type": "response.output_text.delta", **where, "content_index": 0}
            return [*events, {**delta, "delta": text, "logprobs": []}]
        item["summary"][0]["text"] += text
        delta = {"type": "response.reasoning_summary_text.delta", **where, "summary_index": 0}
        return [*events, {**delta, "delta": text}]

    def _function_call(self, call: ToolCall) -> list[dict[str, Any]]:
        """A whole call as its item: added, its arguments in pieces, done."""
        events = self._close()
        index = len(self.items)
        item: dict[str, Any] = {
            "id": f"fc_{self._prefix}_{index}",
            "type": "function_call",
            "status": "in_progress",
            "call_id": f"call_{call.id}",
            "name": call.name,
            "arguments": "",
        }
        if call.namespace is not None:
            item["namespace"] = call.namespace
        events.append(_item_event("response.output_item.added", index, item))
        self.items.append(item)
        where = {"item_id": item["id"], "output_index": index}
        for part in argument_pieces(call.arguments_json):
            events.append(
                {"type": "response.function_call_arguments.delta", **where, "delta": part}
            )
        item["arguments"] = call.arguments_json
        item["status"] = "completed"
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "arguments": item["arguments"],
            }
        )
        return [*events, _item_event("response.output_item.done", index, item)]

    def _start(self, type_: str, opening: str = "") -> list[dict[str, Any]]:
        index = len(self.items)
        if type_ == "message":
            item: dict[str, Any] = {
                "id": f"msg_{self._prefix}_{index}",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            part: dict[str, Any] = {
                "type": "output_text",
                "text": "",
                "annotations": [],
                "logprobs": [],
            }
            added = "response.content_part.added"
            # The piece that opens the message is already in the answer's text.
            self._text_start = self.answer.text_chars - len(opening)
        else:
            item = {"id": f"rs_{self._prefix}_{index}", "type": "reasoning", "summary": []}
            part = {"type": "summary_text", "text": ""}
            added = "response.reasoning_summary_part.added"
        events = [_item_event("response.output_item.added", index, item)]
        where = {"item_id": item["id"], "output_index": index}
        position = {"content_index": 0} if type_ == "message" else {"summary_index": 0}
        events.append({"type": added, **where, **position, "part": dict(part)})
        item["content" if type_ == "message" else "summary"].append(part)
        self.items.append(item)
        self._open = item
        return events

    def _close(self) -> list[dict[str, Any]]:
        item = self._open
        if item is None:
            return []
        self._open = None
        index = len(self.items) - 1
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "reasoning":
            part = item["summary"][0]
            events = [
                {
                    "type": "response.reasoning_summary_text.done",
                    **where,
                    "summary_index": 0,
                    "text": part["text"],
                },
                {
                    "type": "response.reasoning_summary_part.done",
                    **where,
                    "summary_index": 0,
                    "part": dict(part),
                },
            ]
        else:
            part = item["content"][0]
            item["status"] = "completed"
            events = []
            for n, annotation in enumerate(self._annotations(part["text"])):
                part["annotations"].append(annotation)
                events.append(
                    {
                        "type": "response.output_text.annotation.added",
                        **where,
                        "content_index": 0,
                        "annotation_index": n,
                        "annotation": annotation,
                    }
                )
            events += [
                {
                    "type": "response.output_text.done",
                    **where,
                    "content_index": 0,
                    "text": part["text"],
                    "logprobs": [],
                },
                {
                    "type": "response.content_part.done",
                    **where,
                    "content_index": 0,
                    "part": dict(part),
                },
            ]
        return [*events, _item_event("response.output_item.done", index, item)]

    def _annotations(self, text: str) -> list[dict[str, Any]]:
        return [
            {
                "type": "url_citation",
                "start_index": c.start,
                "end_index": c.end,
                "title": c.title or c.url,
                "url": c.url,
            }
            for c in self.answer.take_citations(self._text_start, text)
        ]


def _item_event(type_: str, index: int, item: dict[str, Any]) -> dict[str, Any]:
    # A copy: the item keeps growing after the event that shows it is rendered.
    return {"type": type_, "output_index": index, "item": orjson.loads(orjson.dumps(item))}


def envelope(
    response_id: str,
    model: str,
    created_at: int,
    instructions: str | None,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    """A `response` object: what the bridge knows of the request, and the answer so far."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": instructions,
        "model": model,
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "none",
        "tools": [],
        "temperature": None,
        "top_p": None,
        "max_output_tokens": None,
        "previous_response_id": None,
        "reasoning": None,
        "store": False,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def response(
    response_id: str,
    model: str,
    created_at: int,
    instructions: str | None,
    prompt: str,
    events: Iterable[Event],
) -> dict[str, Any]:
    """The `response` object for a job's events (a non-streamed answer)."""
    output = Output(response_id.removeprefix("resp_"))
    for event in events:
        output.add(event)
    output.close()
    reason = output.incomplete_reason
    return envelope(
        response_id,
        model,
        created_at,
        instructions,
        status="incomplete" if reason else "completed",
        output=output.items,
        usage=output.usage(prompt),
        incomplete_reason=reason,
    )


class ResponseStream:
    """The Responses stream events for one answer, as SSE frames (see `completions.Frames`).

    response.created and response.in_progress, then each output item's events, then
    response.completed (or response.incomplete); a failure is an `error` event followed by
    response.failed. Every event carries its `sequence_number`.
    """

    def __init__(
        self, response_id: str, model: str, created_at: int, instructions: str | None, prompt: str
    ) -> None:
        self._head = (response_id, model, created_at, instructions)
        self._prompt = prompt
        self._output = Output(response_id.removeprefix("resp_"))
        self._sequence = 0

    def start(self) -> bytes:
        shown = self._envelope("in_progress")
        return self._frame({"type": "response.created", "response": shown}) + self._frame(
            {"type": "response.in_progress", "response": shown}
        )

    def event(self, event: Event) -> bytes:
        return b"".join(map(self._frame, self._output.add(event)))

    def keepalive(self) -> bytes:
        return sse.KEEPALIVE

    def end(self) -> bytes:
        frames = b"".join(map(self._frame, self._output.close()))
        reason = self._output.incomplete_reason
        last = self._envelope(
            "incomplete" if reason else "completed",
            usage=self._output.usage(self._prompt),
            incomplete_reason=reason,
        )
        kind = "response.incomplete" if reason else "response.completed"
        return frames + self._frame({"type": kind, "response": last})

    def error(self, error: ApiError) -> bytes:
        code = error_code(error.status)
        failed = self._envelope("failed", error={"code": code, "message": error.message})
        return self._frame(
            {"type": "error", "code": code, "message": error.message, "param": error.param}
        ) + self._frame({"type": "response.failed", "response": failed})

    def _envelope(self, status: str, **fields: Any) -> dict[str, Any]:
        return envelope(*self._head, status=status, output=self._output.items, **fields)

    def _frame(self, event: dict[str, Any]) -> bytes:
        event["sequence_number"] = self._sequence
        self._sequence += 1
        return sse.typed(event)
