"""A job's events → Anthropic's `message` object and its stream events. Pure: no IO here.

Reasoning becomes `thinking` blocks, the answer `text` blocks, tool calls `tool_use` blocks
(their input streamed as `input_json_delta`s). A search model's sources become
`web_search_result_location` citations on the text block they support, which the `anthropic`
SDK parses (`TextBlock.citations`, `citations_delta`): they are attached when the block ends,
once every source is known in full, each citing the answer text that ends where the arena
placed it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.answers.fold import Answer, argument_pieces
from gateway.answers.tokens import estimate_tokens
from gateway.answers.tools.definitions import ToolCall
from gateway.http import sse
from gateway.http.errors import ApiError
from shared.events import Event

#: The arena's finish reasons (Vercel AI SDK names) → Anthropic's stop reasons.
STOP_REASONS: Mapping[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content-filter": "refusal",
    "tool-calls": "tool_use",
}

PING = sse.typed({"type": "ping"})


def stop_reason(arena_reason: str | None) -> str:
    """Anthropic's stop reason; anything else the arena says (`unknown`, `other`) ended the turn."""
    return STOP_REASONS.get(arena_reason or "", "end_turn")


def signature(thinking: str) -> str:
    """A thinking block's `signature`: the SDK requires one; this one is a digest of the text.

    Nothing verifies it: thinking blocks a client sends back are left out of the prompt.
    """
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


class Blocks:
    """An answer as content blocks, returning the stream events for each step."""

    def __init__(self, *, show_thinking: bool) -> None:
        self.show_thinking = show_thinking
        self.answer = Answer()
        self.content: list[dict[str, Any]] = []
        #: The block deltas go to; None between blocks.
        self._open: dict[str, Any] | None = None
        #: Where the open text block starts in the answer's text.
        self._text_start = 0

    @property
    def stop_reason(self) -> str:
        if self.answer.stop_sequence is not None:
            return "stop_sequence"
        return stop_reason(self.answer.finish_reason)

    def add(self, event: Event) -> list[dict[str, Any]]:
        piece = self.answer.add(event)
        if piece is None or (piece.kind == "reasoning" and not self.show_thinking):
            return []
        if piece.call is not None:
            return self._tool_use(piece.call)
        return self._append("text" if piece.kind == "text" else "thinking", piece.text)

    def close(self) -> list[dict[str, Any]]:
        """Close the open block; sources not yet attached get a text block of their own."""
        events = self._close()
        if self.answer.cites:  # cited, but no text block was open to take them
            events += self._start("text") + self._close()
        return events

    def usage(self, prompt: str) -> dict[str, int]:
        input_tokens, output_tokens = self.answer.tokens(prompt, reasoning=self.show_thinking)
        return {"input_tokens": input_tokens, "output_tokens": output_tokens}

    def _append(self, type_: str, text: str) -> list[dict[str, Any]]:
        events = []
        if self._open is None or self._open["type"] != type_:
            events += self._close() + self._start(type_, text)
        block = self._open
        assert block is not None
        block[type_] += text
        if type_ == "text":
            delta = {"type": "text_delta", "text": text}
        else:
            delta = {"type": "thinking_delta", "thinking": text}
        return [*events, _delta(len(self.content) - 1, delta)]

    def _tool_use(self, call: ToolCall) -> list[dict[str, Any]]:
        """A whole call as its block: started, its input in pieces, stopped."""
        events = self._close()
        block = {"type": "tool_use", "id": f"toolu_{call.id}", "name": call.name}
        self.content.append({**block, "input": dict(call.arguments)})
        index = len(self.content) - 1
        events.append(
            {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
        )
        for part in argument_pieces(call.arguments_json):
            events.append(_delta(index, {"type": "input_json_delta", "partial_json": part}))
        return [*events, {"type": "content_block_stop", "index": index}]

    def _start(self, type_: str, opening: str = "") -> list[dict[str, Any]]:
        block: dict[str, Any]
        if type_ == "text":
            block = {"type": "text", "text": "", "citations": None}
            # The piece that opens the block is already in the answer's text.
            self._text_start = self.answer.text_chars - len(opening)
            shown: dict[str, Any] = {"type": "text", "text": ""}
        else:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            shown = dict(block)
        self.content.append(block)
        self._open = block
        return [
            {"type": "content_block_start", "index": len(self.content) - 1, "content_block": shown}
        ]

    def _close(self) -> list[dict[str, Any]]:
        block = self._open
        if block is None:
            return []
        self._open = None
        index = len(self.content) - 1
        events = []
        if block["type"] == "thinking":
            block["signature"] = signature(block["thinking"])
            events.append(
                _delta(index, {"type": "signature_delta", "signature": block["signature"]})
            )
        else:
            citations = [
                {
                    "type": "web_search_result_location",
                    "url": c.url,
                    "title": c.title,
                    "cited_text": block["text"][c.start : c.end].strip(),
                    "encrypted_index": c.source_id,
                }
                for c in self.answer.take_citations(self._text_start, block["text"])
            ]
            if citations:
                block["citations"] = citations
                events += [
                    _delta(index, {"type": "citations_delta", "citation": c}) for c in citations
                ]
        return [*events, {"type": "content_block_stop", "index": index}]


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def message(
    message_id: str, model: str, prompt: str, events: Iterable[Event], *, show_thinking: bool
) -> dict[str, Any]:
    """The `message` object for a job's events (a non-streamed answer)."""
    blocks = Blocks(show_thinking=show_thinking)
    for event in events:
        blocks.add(event)
    blocks.close()
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks.content,
        "stop_reason": blocks.stop_reason,
        "stop_sequence": blocks.answer.stop_sequence,
        "usage": blocks.usage(prompt),
    }


class MessageStream:
    """Anthropic's stream events for one answer, as SSE frames (see `gateway.answers.completions.Frames`).

    message_start, ping, then each block's content_block_start / _delta / _stop, then
    message_delta (stop reason, usage) and message_stop; a failure is an `error` event.
    """

    def __init__(self, message_id: str, model: str, prompt: str, *, show_thinking: bool) -> None:
        self._id = message_id
        self._model = model
        self._prompt = prompt
        self._blocks = Blocks(show_thinking=show_thinking)

    def start(self) -> bytes:
        start = {
            "type": "message_start",
            "message": {
                "id": self._id,
                "type": "message",
                "role": "assistant",
                "model": self._model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": estimate_tokens(len(self._prompt)), "output_tokens": 0},
            },
        }
        return sse.typed(start) + PING

    def event(self, event: Event) -> bytes:
        return b"".join(map(sse.typed, self._blocks.add(event)))

    def keepalive(self) -> bytes:
        return PING

    def end(self) -> bytes:
        frames = b"".join(map(sse.typed, self._blocks.close()))
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": self._blocks.stop_reason,
                "stop_sequence": self._blocks.answer.stop_sequence,
            },
            "usage": self._blocks.usage(self._prompt),
        }
        return frames + sse.typed(delta) + sse.typed({"type": "message_stop"})

    def error(self, error: ApiError) -> bytes:
        return sse.typed(error.anthropic_body())
