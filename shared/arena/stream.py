"""The body of a stream answer: lines of `<side><code>:<json>` (Vercel AI SDK data-stream
parts with the arena's side letter in front), parsed incrementally and mapped to events.
"""

from __future__ import annotations

import codecs
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from shared import events
from shared.arena.site import ARENA_ERROR_MARKER
from shared.events import Event, Side

_ARENA_ERROR_TEXT = "the arena could not produce an answer (hasArenaError)"
_SIDES = frozenset("ab")
_MAX_CODE_LEN = 3


@dataclass(frozen=True, slots=True)
class Part:
    side: str
    code: str
    value: Any


class LineParser:
    """Turns network chunks into parts, whatever the chunk boundaries.

    Chunks may be bytes (decoded incrementally, so a character split across chunks comes out
    whole) or already-decoded str, as the browser delivers them.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []
        #: Lines dropped because they were not `<prefix>:<json>`.
        self.malformed = 0

    def feed(self, data: bytes | str) -> list[Part]:
        chunk = data if isinstance(data, str) else self._decoder.decode(data)
        if "\n" not in chunk:
            # Joining only once a line is complete keeps tiny chunks linear, not quadratic.
            if chunk:
                self._pending.append(chunk)
            return []
        head, *lines, tail = chunk.split("\n")
        self._pending.append(head)
        lines.insert(0, "".join(self._pending))
        self._pending = [tail] if tail else []
        return self._parse_lines(lines)

    def close(self) -> list[Part]:
        """Flush what is left: undecodable trailing bytes and a last line without newline."""
        self._pending.append(self._decoder.decode(b"", final=True))
        rest = "".join(self._pending)
        self._pending = []
        return self._parse_lines([rest])

    def _parse_lines(self, lines: Iterable[str]) -> list[Part]:
        parts = []
        for line in lines:
            line = line.rstrip("\r")
            if not line.strip():
                continue
            part = parse_line(line)
            if part is None:
                self.malformed += 1
            else:
                parts.append(part)
        return parts


def parse_line(line: str) -> Part | None:
    """One complete line to a part; None when it is not `<side><code>:<json>`."""
    prefix, colon, payload = line.partition(":")
    if not colon or not _valid_prefix(prefix):
        return None
    if len(prefix) > 1 and prefix[0] in _SIDES:
        side, code = prefix[0], prefix[1:]
    else:
        # Unprefixed lines (plain AI SDK `0:"x"`) belong to the only model there is.
        side, code = "a", prefix
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        if ARENA_ERROR_MARKER in payload:
            return Part(side, "3", _ARENA_ERROR_TEXT)
        return None
    if ARENA_ERROR_MARKER in payload:
        return Part(side, "3", _arena_error_message(value))
    return Part(side, code, value)


def to_events(part: Part) -> list[Event]:
    """The normalized events a part stands for; [] for codes that carry nothing for clients."""
    side: Side = "b" if part.side == "b" else "a"
    value = part.value
    match part.code:
        case "0":
            return [events.text(side, value)] if isinstance(value, str) and value else []
        case "g":
            return [events.reasoning(side, value)] if isinstance(value, str) and value else []
        case "c":
            return [events.citation(side, source) for source in _citation_sources(value)]
        case "2":
            return _images(side, value)
        case "3":
            return [events.side_failed(side, value if isinstance(value, str) else _to_text(value))]
        case "d":
            info = value if isinstance(value, dict) else {}
            reason = info.get("finishReason")
            usage = info.get("usage")
            return [
                events.finish(
                    side,
                    reason if isinstance(reason, str) and reason else "unknown",
                    usage if isinstance(usage, dict) else None,
                )
            ]
        case _:
            return []


def _valid_prefix(prefix: str) -> bool:
    return 0 < len(prefix) <= _MAX_CODE_LEN and prefix.isascii() and prefix.isalnum()


def _arena_error_message(value: Any) -> str:
    if isinstance(value, str) and value != "hasArenaError":
        return value
    if isinstance(value, dict):
        for key in ("message", "error", "errorMessage"):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found
    return _ARENA_ERROR_TEXT


def _citation_sources(value: Any) -> list[dict[str, Any]]:
    # argsTextDelta is itself JSON text; a delta cut mid-object is dropped, not guessed at.
    if not isinstance(value, dict) or not isinstance(delta := value.get("argsTextDelta"), str):
        return []
    try:
        args = orjson.loads(delta)
    except orjson.JSONDecodeError:
        return []
    source = args.get("source") if isinstance(args, dict) else None
    if isinstance(source, dict):
        return [source]
    if isinstance(source, list):
        return [item for item in source if isinstance(item, dict)]
    return []


def _images(side: events.Side, value: Any) -> list[Event]:
    if not isinstance(value, list):
        return []
    found = []
    for item in value:
        if not isinstance(item, dict) or item.get("type") != "image":
            continue
        url = item.get("image")
        if not isinstance(url, str) or not url:
            continue
        mime = item.get("mimeType")
        if not isinstance(mime, str) or not mime:
            mime = mimetypes.guess_type(urlsplit(url).path)[0] or "application/octet-stream"
        found.append(events.image(side, url, mime))
    return found


def _to_text(value: Any) -> str:
    return orjson.dumps(value).decode()
