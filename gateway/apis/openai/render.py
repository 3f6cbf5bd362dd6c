"""A job's events → OpenAI's chat completion objects and SSE frames. Pure: no IO here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.access.usage import token_counts
from gateway.answers.citations import Sources
from gateway.http.errors import ApiError
from shared.events import Event

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
#: The arena's sides, in choice order.
SIDES = ("a", "b")

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
    """What one side of a job has answered so far, folded from its events."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    sources: Sources = field(default_factory=Sources)
    finish_reason: str | None = None
    arena_usage: Mapping[str, Any] | None = None
    _chars: int = 0

    def add(self, event: Event) -> dict[str, Any] | None:
        """Fold in one event; returns the delta a client should see, if any."""
        kind = event["t"]
        if self.finish_reason is not None:
            return None
        if kind == "text" and event["text"]:
            return self._content(event["text"])
        if kind == "reasoning" and event["text"]:
            self.reasoning.append(event["text"])
            return {"reasoning_content": event["text"]}
        if kind == "image":
            # Markdown for every client, and the URL on its own for those that read `images`.
            markdown = image_markdown(event["url"])
            delta = self._content("\n\n" + markdown if self.content else markdown)
            self.images.append(event["url"])
            # `index` lets the SDK's stream helper merge entries that arrive one by one.
            delta["images"] = [{"index": len(self.images) - 1, **image_part(event["url"])}]
            return delta
        if kind == "citation":
            self.sources.add(event["source"], at=self._chars)
        if kind == "finish":
            self.finish_reason = finish_reason(event.get("reason"))
            self.arena_usage = event.get("usage")
        return None

    def annotations(self) -> list[dict[str, Any]]:
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
            for c in self.sources.citations()
        ]

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.images:
            message["images"] = [image_part(url) for url in self.images]
        if self.sources:
            message["annotations"] = self.annotations()
        return message

    def usage(self, prompt: str) -> dict[str, int]:
        """The arena's token counts where it gave them, else estimates."""
        chars = sum(map(len, self.content)) + sum(map(len, self.reasoning))
        prompt_tokens, completion_tokens = token_counts(prompt, chars, self.arena_usage)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def _content(self, text: str) -> dict[str, Any]:
        self.content.append(text)
        self._chars += len(text)
        return {"content": text}


def image_part(url: str) -> dict[str, Any]:
    """A generated image as an `image_url` part (the shape OpenRouter uses for `images`)."""
    return {"type": "image_url", "image_url": {"url": url}}


class Choices:
    """One `Answer` per side: a direct answer is choice 0; battles answer as choices 0 and 1.

    `names` (battles only) are the models shown with each choice, None where hidden.
    """

    def __init__(self, names: Sequence[str | None] | None = None) -> None:
        self.names = names
        self.answers = [Answer() for _ in (names or [None])]

    def of(self, event: Event) -> tuple[int, Answer] | None:
        """The choice an event belongs to (None for events of no side)."""
        side = event.get("side")
        if side is None:
            return None
        index = SIDES.index(side) if side in SIDES else 0
        return (index, self.answers[index]) if index < len(self.answers) else None

    def extra(self, index: int) -> dict[str, Any]:
        """What a choice carries besides OpenAI's fields: its model, in a battle."""
        return {} if self.names is None else {"model": self.names[index]}

    def usage(self, prompt: str) -> dict[str, int]:
        totals = [answer.usage(prompt) for answer in self.answers]
        prompt_tokens = totals[0]["prompt_tokens"]
        completion_tokens = sum(t["completion_tokens"] for t in totals)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }


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
        if (found := choices.of(event)) is not None:
            found[1].add(event)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": answer.message(),
                "logprobs": None,
                "finish_reason": answer.finish_reason or "stop",
                **choices.extra(index),
            }
            for index, answer in enumerate(choices.answers)
        ],
        "usage": choices.usage(prompt),
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
            for index in range(len(self._choices.answers))
        )

    def event(self, event: Event) -> bytes:
        """Frames for one event; empty when the event shows nothing to the client."""
        found = self._choices.of(event)
        if found is None:
            return b""
        index, answer = found
        delta = answer.add(event)
        if delta is not None:
            return self._chunk(index, delta)
        if event["t"] == "finish":
            return self._finish(index, answer)
        return b""

    def end(self) -> bytes:
        """The closing frames: finish chunks not yet sent, usage if asked, [DONE]."""
        frames = b""
        for index, answer in enumerate(self._choices.answers):
            if answer.finish_reason is None:
                answer.finish_reason = "stop"
                frames += self._finish(index, answer)
        if self._include_usage:
            frames += sse(self._envelope([], usage=self._choices.usage(self._prompt)))
        return frames + DONE

    def keepalive(self) -> bytes:
        return KEEPALIVE

    def error(self, error: ApiError) -> bytes:
        """An error after the 200 went out: OpenAI's error body as a frame (the SDK raises it)."""
        return sse(error.body()) + DONE

    def _finish(self, index: int, answer: Answer) -> bytes:
        delta = {"annotations": answer.annotations()} if answer.sources else {}
        return self._chunk(index, delta, finish_reason=answer.finish_reason)

    def _chunk(
        self,
        index: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        *,
        first: bool = False,
    ) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if first:
            choice |= self._choices.extra(index)
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
