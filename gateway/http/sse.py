"""Server-sent event frames, as every API here writes them. Pure: no IO here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

#: Headers of every streamed answer.
HEADERS = {
    "Cache-Control": "no-cache",
    # nginx would otherwise buffer the stream and defeat it.
    "X-Accel-Buffering": "no",
}


def frame(data: Mapping[str, Any] | bytes, *, event: str | None = None) -> bytes:
    """One event: `data` as JSON (bytes as they are), named `event` when given."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = b"event: " + event.encode() + b"\n" if event is not None else b""
    return head + b"data: " + payload + b"\n\n"


def typed(data: Mapping[str, Any]) -> bytes:
    """An event named by its own `type` field, as Anthropic's and the Responses API's are."""
    return frame(data, event=data["type"])


def comment(text: str) -> bytes:
    """A comment line: ignored by clients, it keeps a silent connection open."""
    return b": " + text.encode() + b"\n\n"


KEEPALIVE = comment("keep-alive")
