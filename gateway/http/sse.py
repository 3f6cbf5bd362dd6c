"""Server-sent event frames, as every API here writes them. Pure: no IO here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
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
    """A comment line: ignored by clients, it keeps a silent connection open.

    No blank line follows it: once an event has carried an `id:`, a blank line makes clients
    dispatch an empty event (the openai SDK then fails to parse it as JSON).
    """
    return b": " + text.encode() + b"\n"


KEEPALIVE = comment("keep-alive")


@dataclass(frozen=True, order=True, slots=True)
class EventId:
    """An SSE event's `id:`, `<entry>.<n>`: the job stream entry whose event the frame shows
    (see `shared.storage.redis_keys.job_events`) and the frame's place among that event's frames;
    `<k>:<entry>.<n>` for an entry of the k-th retry of the answer (JSON mode asks again).

    Entry ids grow along the stream and a stream is rendered the same on every gateway, so an
    id names one place in an answer whichever gateway sent it, in any API's frames.
    """

    again: int
    ms: int
    seq: int
    n: int

    @classmethod
    def parse(cls, text: str) -> EventId | None:
        again, _, rest = text.strip().rpartition(":")
        entry, _, n = rest.partition(".")
        ms, _, seq = entry.partition("-")
        parts = (again or "0", ms, seq, n)
        if not all(part.isdigit() for part in parts):
            return None
        return cls(*(int(part) for part in parts))

    def __str__(self) -> str:
        again = f"{self.again}:" if self.again else ""
        return f"{again}{self.ms}-{self.seq}.{self.n}"


#: The entry the frames sent before an answer's first event are numbered under.
HEAD = "0-0"


class Numbering:
    """Gives each frame of one answer its `id:` (an `EventId`), leaving out those up to `after`:
    what a client that reconnects with `Last-Event-ID: after` has already seen.

    Frames are numbered under the entry last named (`HEAD` at first); comments carry no id.
    """

    def __init__(self, after: EventId | None = None) -> None:
        self._after = after
        self._entry = EventId(0, 0, 0, 0)
        self._n = 0

    def __call__(self, frames: bytes, entry: str | None = None) -> bytes:
        if entry is not None:
            parsed = EventId.parse(entry + ".0")
            assert parsed is not None, entry
            if parsed != self._entry:
                self._entry, self._n = parsed, 0
        out = []
        for block in frames.split(b"\n\n")[:-1]:
            if block.startswith(b":"):
                out.append(block + b"\n\n")
                continue
            place = dataclasses.replace(self._entry, n=self._n)
            self._n += 1
            if self._after is None or place > self._after:
                out.append(f"id: {place}\n".encode() + block + b"\n\n")
        return b"".join(out)
