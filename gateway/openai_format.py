"""A job's events → OpenAI's chat completion objects and SSE frames. Pure: no IO here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import ApiError
from gateway.usage import token_counts
from shared.events import Event

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"

#: The arena's finish reasons (Vercel AI SDK names) → OpenAI's.
FINISH_REASONS: Mapping[str, str] = {
    "stop": "stop",
    "length": "length",
    "content-filter": "content_filter",
    "tool-calls": "tool_calls",
}


def finish_reason(arena_reason: str | None) -> str:
    return FINISH_REASONS.get(arena_reason or "", "stop")


def sse(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def image_markdown(url: str) -> str:
    return f"![image]({url})"


@dataclass
class Answer:
    """What a job has answered so far, folded from its events."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    arena_usage: Mapping[str, Any] | None = None

    def add(self, event: Event) -> dict[str, str] | None:
        """Fold in one event; returns the delta a client should see, if any."""
        kind = event["t"]
        if self.finish_reason is not None:
            return None
        if kind == "text" and event["text"]:
            self.content.append(event["text"])
            return {"content": event["text"]}
        if kind == "reasoning" and event["text"]:
            self.reasoning.append(event["text"])
            return {"reasoning_content": event["text"]}
        if kind == "image":
            markdown = image_markdown(event["url"])
            if self.content:
                markdown = "\n\n" + markdown
            self.content.append(markdown)
            return {"content": markdown}
        if kind == "finish":
            self.finish_reason = finish_reason(event.get("reason"))
            self.arena_usage = event.get("usage")
        return None

    def usage(self, prompt: str) -> dict[str, int]:
        """The arena's token counts where it gave them, else estimates."""
        chars = sum(map(len, self.content)) + sum(map(len, self.reasoning))
        prompt_tokens, completion_tokens = token_counts(prompt, chars, self.arena_usage)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }


def completion(
    completion_id: str, model: str, created: int, prompt: str, events: Iterable[Event]
) -> dict[str, Any]:
    """The `chat.completion` object for a job's events (a non-streamed answer)."""
    answer = Answer()
    for event in events:
        answer.add(event)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.content)}
    if answer.reasoning:
        message["reasoning_content"] = "".join(answer.reasoning)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason or "stop",
            }
        ],
        "usage": answer.usage(prompt),
        "system_fingerprint": None,
    }


class ChunkStream:
    """SSE frames of `chat.completion.chunk` objects for one streamed answer, event by event."""

    def __init__(
        self, completion_id: str, model: str, created: int, prompt: str, *, include_usage: bool
    ) -> None:
        self._id = completion_id
        self._model = model
        self._created = created
        self._prompt = prompt
        self._include_usage = include_usage
        self._answer = Answer()

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def event(self, event: Event) -> bytes:
        """Frames for one event; empty when the event shows nothing to the client."""
        delta = self._answer.add(event)
        if delta is not None:
            return self._chunk(delta)
        if event["t"] == "finish":
            return self._chunk({}, finish_reason=self._answer.finish_reason)
        return b""

    def end(self) -> bytes:
        """The closing frames: the finish chunk unless one was sent, usage if asked, [DONE]."""
        frames = b""
        if self._answer.finish_reason is None:
            self._answer.finish_reason = "stop"
            frames += self._chunk({}, finish_reason="stop")
        if self._include_usage:
            frames += sse(self._envelope([], usage=self._answer.usage(self._prompt)))
        return frames + DONE

    def keepalive(self) -> bytes:
        return KEEPALIVE

    def error(self, error: ApiError) -> bytes:
        """An error after the 200 went out: OpenAI's error body as a frame (the SDK raises it)."""
        return sse(error.body()) + DONE

    def _chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse(self._envelope([choice]))

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
