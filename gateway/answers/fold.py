"""A job's events folded into answers: what every API renders. Pure: no IO here.

The worker's events are neutral (`shared.events`); each API shows them in shapes of its own.
What they share is folded here, once: text and reasoning in order; generated images as
markdown in the text (their URL kept apart for clients that read it); a search answer's
sources, each with the stretch of text it supports; tool calls (found by
`gateway.answers.shaping`); the finish; token counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway.answers.citations import Sources
from gateway.answers.tokens import token_counts
from gateway.answers.tools.definitions import ToolCall
from shared.events import Event

#: The finish reason of a side that failed (the arena's own names its finishes otherwise).
FAILED = "failed"
#: The arena's sides, in answer order.
SIDES = ("a", "b")


#: A call's arguments are streamed in pieces of this many characters.
ARGUMENT_PIECE = 256


def argument_pieces(arguments: str) -> list[str]:
    """A call's arguments (JSON text) in the pieces a stream sends them in."""
    return [arguments[i : i + ARGUMENT_PIECE] for i in range(0, len(arguments), ARGUMENT_PIECE)]


def image_markdown(url: str) -> str:
    return f"![image]({url})"


@dataclass(frozen=True, slots=True)
class Piece:
    """What one event adds to an answer."""

    kind: Literal["text", "reasoning", "tool_call"]
    text: str
    #: The generated image's URL when `text` is its markdown.
    image: str | None = None
    #: The call, for a `tool_call` piece (whose `text` is its arguments as JSON).
    call: ToolCall | None = None


@dataclass(frozen=True, slots=True)
class Cited:
    """A source and the stretch `[start, end)` it supports, in the offsets of the text it was
    taken for."""

    url: str
    title: str | None
    #: The arena's id for the source (a small number, as text).
    source_id: str
    start: int
    end: int


class Answer:
    """One side's answer so far. Events after its finish change nothing."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        #: Generated images' URLs, in order.
        self.images: list[str] = []
        #: Tool calls, in order.
        self.calls: list[ToolCall] = []
        #: The arena's finish reason (Vercel AI SDK names); None until it finished.
        self.finish_reason: str | None = None
        #: What the arena said when this side failed (finish reason `FAILED`).
        self.failure: str | None = None
        #: The client's stop sequence the answer was cut at, if it was.
        self.stop_sequence: str | None = None
        self.arena_usage: Mapping[str, Any] | None = None
        self.text_chars = 0
        #: The calls' arguments, which count as output tokens.
        self.call_chars = 0
        self.reasoning_chars = 0
        #: Sources cited since the last `take_citations`.
        self._sources = Sources()

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def cites(self) -> bool:
        """Whether sources were cited since the last `take_citations`."""
        return bool(self._sources)

    def add(self, event: Event) -> Piece | None:
        """Fold in one event; the piece of text or reasoning it adds, if any."""
        if self.finished:
            return None
        kind = event["t"]
        if kind == "text" and event["text"]:
            return self._text(event["text"])
        if kind == "reasoning" and event["text"]:
            self.reasoning.append(event["text"])
            self.reasoning_chars += len(event["text"])
            return Piece("reasoning", event["text"])
        if kind == "image":
            markdown = image_markdown(event["url"])
            self.images.append(event["url"])
            # Markdown for every client; apart from what came before it.
            return self._text("\n\n" + markdown if self.text_chars else markdown, event["url"])
        if kind == "tool_call":
            call = ToolCall(event["id"], event["name"], event["arguments"], event["namespace"])
            self.calls.append(call)
            self.call_chars += len(call.arguments_json)
            return Piece("tool_call", call.arguments_json, call=call)
        if kind == "citation":
            # A source that does not say where it is cited stands where the answer is now.
            self._sources.add(event["source"], at=self.text_chars)
        elif kind == "side_failed":
            # A battle's side that failed ends there; the other side answers on.
            self.finish_reason = FAILED
            self.failure = event["message"]
        elif kind == "finish":
            self.finish_reason = event.get("reason") or "stop"
            self.arena_usage = event.get("usage")
            self.stop_sequence = event.get("stop_sequence")
        return None

    def take_citations(self, start: int, text: str) -> list[Cited]:
        """The sources cited since the last take, each with the stretch of `text` it supports.

        `text` is the part of the answer that starts at `start` (a block, an output item, or
        the whole answer); stretches are clamped to it.
        """
        cited = []
        for c in self._sources.citations():
            first, last = (min(max(n - start, 0), len(text)) for n in (c.start, c.end))
            cited.append(Cited(c.url, c.title, c.source_id, first, last))
        self._sources = Sources()
        return cited

    def tokens(self, prompt: str, *, reasoning: bool = True) -> tuple[int, int]:
        """(input, output) tokens; `reasoning`: whether the reasoning counts as output."""
        output_chars = self.text_chars + self.call_chars
        output_chars += self.reasoning_chars if reasoning else 0
        return token_counts(prompt, output_chars, self.arena_usage)

    def _text(self, text: str, image: str | None = None) -> Piece:
        self.text.append(text)
        self.text_chars += len(text)
        return Piece("text", text, image)


class Answers:
    """One `Answer` per side: a direct request has one; a battle's answer on sides a and b."""

    def __init__(self, sides: int = 1) -> None:
        self.sides = [Answer() for _ in range(sides)]

    def of(self, event: Event) -> tuple[int, Answer] | None:
        """The side an event belongs to, by index (None for events of no side, or another)."""
        side = event.get("side")
        if side is None:
            return None
        index = SIDES.index(side) if side in SIDES else 0
        return (index, self.sides[index]) if index < len(self.sides) else None

    def add(self, event: Event) -> Piece | None:
        found = self.of(event)
        return found[1].add(event) if found is not None else None

    def tokens(self, prompt: str) -> tuple[int, int]:
        """The prompt's tokens once, and every side's output together."""
        counts = [answer.tokens(prompt) for answer in self.sides]
        return counts[0][0], sum(output for _, output in counts)
