"""A job's answers → OpenAI's chat completion objects and SSE frames. Pure: no IO here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.answers.fold import FAILED, Answer, Answers, Piece, argument_pieces
from gateway.answers.tools.definitions import ToolCall
from gateway.http import sse
from gateway.http.errors import ApiError
from shared.events import Event

DONE = b"data: [DONE]\n\n"

#: The arena's finish reasons (Vercel AI SDK names) → OpenAI's.
FINISH_REASONS: Mapping[str, str] = {
    "stop": "stop",
    "length": "length",
    "content-filter": "content_filter",
    "tool-calls": "tool_calls",
    # One side of a battle failed while the other answered on: OpenRouter's word for it.
    FAILED: "error",
}


def finish_reason(arena_reason: str | None) -> str:
    return FINISH_REASONS.get(arena_reason or "", "stop")


def failure(answer: Answer) -> dict[str, Any]:
    """What a choice that failed carries besides its finish reason: the arena's words."""
    if answer.failure is None:
        return {}
    return {"error": {"message": answer.failure, "code": "upstream"}}


def image_part(url: str) -> dict[str, Any]:
    """A generated image as an `image_url` part (the shape OpenRouter uses for `images`)."""
    return {"type": "image_url", "image_url": {"url": url}}


def tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": f"call_{call.id}",
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def call_deltas(call: ToolCall, index: int) -> list[dict[str, Any]]:
    """A call as `tool_calls` deltas: its id and name first, then its arguments in pieces."""
    first = tool_call(call)
    first["function"]["arguments"] = ""
    pieces = [{"function": {"arguments": p}} for p in argument_pieces(call.arguments_json)]
    return [{"tool_calls": [{"index": index, **part}]} for part in (first, *pieces)]


def delta(piece: Piece, answer: Answer) -> dict[str, Any]:
    """What a client sees of one piece of an answer (a call's: `call_deltas`)."""
    if piece.kind == "reasoning":
        return {"reasoning_content": piece.text}
    shown: dict[str, Any] = {"content": piece.text}
    if piece.image is not None:
        # `index` lets the SDK's stream helper merge entries that arrive one by one.
        shown["images"] = [{"index": len(answer.images) - 1, **image_part(piece.image)}]
    return shown


def url_citations(answer: Answer) -> list[dict[str, Any]]:
    """The sources a search answer cites, as OpenAI's `url_citation` annotations."""
    return [
        {
            "type": "url_citation",
            "url_citation": {
                "url": c.url,
                "title": c.title or c.url,
                "start_index": c.start,
                "end_index": c.end,
            },
        }
        for c in answer.take_citations(0, "".join(answer.text))
    ]


def message(answer: Answer) -> dict[str, Any]:
    text = "".join(answer.text)
    # OpenAI's API: a message of tool calls alone has no content.
    content = text if text or not answer.calls else None
    shown: dict[str, Any] = {"role": "assistant", "content": content}
    if answer.calls:
        shown["tool_calls"] = [tool_call(call) for call in answer.calls]
    if answer.reasoning:
        shown["reasoning_content"] = "".join(answer.reasoning)
    if answer.images:
        shown["images"] = [image_part(url) for url in answer.images]
    if answer.cites:
        shown["annotations"] = url_citations(answer)
    return shown


def usage(answers: Answers, prompt: str) -> dict[str, int]:
    prompt_tokens, completion_tokens = answers.tokens(prompt)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Choices(Answers):
    """The answers as choices: a direct answer is choice 0; a battle's are choices 0 and 1.

    `names` (battles only) are the models shown with each choice, None where hidden.
    """

    def __init__(self, names: Sequence[str | None] | None = None) -> None:
        super().__init__(len(names) if names else 1)
        self.names = names

    def extra(self, index: int) -> dict[str, Any]:
        """What a choice carries besides OpenAI's fields: its model, in a battle."""
        return {} if self.names is None else {"model": self.names[index]}


def completion(
    completion_id: str,
    model: str,
    created: int,
    prompt: str,
    events: Iterable[Event],
    *,
    names: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The `chat.completion` object for a job's events (a non-streamed answer)."""
    choices = Choices(names)
    for event in events:
        choices.add(event)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": message(answer),
                "logprobs": None,
                "finish_reason": finish_reason(answer.finish_reason),
                **failure(answer),
                **choices.extra(index),
            }
            for index, answer in enumerate(choices.sides)
        ],
        "usage": usage(choices, prompt),
        "system_fingerprint": None,
    }


class ChunkStream:
    """SSE frames of `chat.completion.chunk` objects for one streamed answer, event by event.

    A search answer's `annotations` come once, on the delta of its finish chunk: the arena
    completes its sources only at the end.
    """

    def __init__(
        self,
        completion_id: str,
        model: str,
        created: int,
        prompt: str,
        *,
        include_usage: bool,
        names: Sequence[str | None] | None = None,
    ) -> None:
        self._id = completion_id
        self._model = model
        self._created = created
        self._prompt = prompt
        self._include_usage = include_usage
        self._choices = Choices(names)

    def start(self) -> bytes:
        return b"".join(
            self._chunk(index, {"role": "assistant", "content": ""}, first=True)
            for index in range(len(self._choices.sides))
        )

    def event(self, event: Event) -> bytes:
        """Frames for one event; empty when the event shows nothing to the client."""
        found = self._choices.of(event)
        if found is None:
            return b""
        index, answer = found
        finished = answer.finished
        piece = answer.add(event)
        if piece is not None and piece.call is not None:
            at = len(answer.calls) - 1
            return b"".join(self._chunk(index, d) for d in call_deltas(piece.call, at))
        if piece is not None:
            return self._chunk(index, delta(piece, answer))
        if answer.finished and not finished:
            return self._finish(index, answer)
        return b""

    def end(self) -> bytes:
        """The closing frames: finish chunks not yet sent, usage if asked, [DONE]."""
        frames = b""
        for index, answer in enumerate(self._choices.sides):
            if not answer.finished:
                answer.finish_reason = "stop"
                frames += self._finish(index, answer)
        if self._include_usage:
            usage_chunk = self._envelope([], usage=usage(self._choices, self._prompt))
            frames += sse.frame(usage_chunk)
        return frames + DONE

    def keepalive(self) -> bytes:
        return sse.KEEPALIVE

    def error(self, error: ApiError) -> bytes:
        """An error after the 200 went out: OpenAI's error body as a frame (the SDK raises it)."""
        return sse.frame(error.body()) + DONE

    def _finish(self, index: int, answer: Answer) -> bytes:
        shown = {"annotations": url_citations(answer)} if answer.cites else {}
        return self._chunk(
            index, shown, finish_reason=finish_reason(answer.finish_reason), extra=failure(answer)
        )

    def _chunk(
        self,
        index: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        *,
        first: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if first:
            choice |= self._choices.extra(index)
        choice |= extra or {}
        return sse.frame(self._envelope([choice]))

    def _envelope(
        self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": choices,
        }
        # OpenAI puts `usage: null` on every chunk but the last when usage is asked for.
        if self._include_usage:
            chunk["usage"] = usage
        return chunk
