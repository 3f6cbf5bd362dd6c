"""What the fake's models answer: pure functions from the request to stream lines.

A line is `<side><code>:<json>` without its newline (see README.md for the exact texts).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tests.fakearena.catalog import Kind
from tests.fakearena.scenario import FailureKind

Side = Literal["a", "b"]

BRIEF_CHARS = 40
_PIECE = re.compile(r"\S+\s*|\s+")
#: Line codes that end an answer (`d`) or a step of it (`e`).
FINISHES = ("d", "e")


@dataclass(frozen=True, slots=True)
class Attachment:
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Ask:
    """One answer to produce: which model, at which point of which thread."""

    model: str
    kind: Kind
    turn: int
    first: str
    prompt: str
    retry: int = 0
    attachments: tuple[Attachment, ...] = ()
    image_url: str = ""
    scripted: str | None = None  # a scenario reply's text, instead of the deterministic one


@dataclass(frozen=True, slots=True)
class Framing:
    """The extra lines around one side's answer (scenario `step_lines`, `heartbeat_lines`)."""

    message_id: str
    step_lines: bool = False
    heartbeats: int = 0


def brief(text: str) -> str:
    """Whitespace runs collapsed to one space, cut to 40 characters (then "…")."""
    flat = " ".join(text.split())
    return flat if len(flat) <= BRIEF_CHARS else flat[:BRIEF_CHARS] + "…"


def answer_text(ask: Ask) -> str:
    """`Turn N of «F» (model): P`, or `Retry k of turn N …` for the k-th regeneration; or the
    scripted text, whole."""
    if ask.scripted is not None:
        return ask.scripted
    label = f"Retry {ask.retry} of turn {ask.turn}" if ask.retry else f"Turn {ask.turn}"
    seen = "".join(f" [{a.content_type}, {a.size} bytes]" for a in ask.attachments)
    return f"{label} of «{brief(ask.first)}» ({ask.model}){seen}: {ask.prompt}"


def reasoning_text(ask: Ask) -> str:
    return f"Thinking about «{brief(ask.prompt)}» (turn {ask.turn})."


def pieces(text: str) -> list[str]:
    """Word-sized deltas, each with its trailing whitespace; they join back to `text`."""
    return _PIECE.findall(text)


def sources(ask: Ask) -> list[dict[str, Any]]:
    """The two search results a search model cites (full form)."""
    topic = brief(ask.prompt)
    return [
        {
            "url": f"https://example.com/search/{n}",
            "id": str(n),
            "charLocation": [],
            "title": f"Result {n} for «{topic}»",
            "favicon": "https://example.com/favicon.ico",
            "thumbnail": f"https://example.com/thumbnails/{n}.png",
        }
        for n in (1, 2)
    ]


def line(side: Side, code: str, value: Any) -> str:
    return f"{side}{code}:{orjson.dumps(value).decode()}"


def _citation(side: Side, source: Any) -> str:
    delta = orjson.dumps({"source": source}).decode()
    return line(side, "c", {"toolCallId": "citation-source", "argsTextDelta": delta})


def _search_lines(side: Side, ask: Ask) -> list[str]:
    # As captured: a short source after word 2, a full one after word 4, then the list.
    first, second = sources(ask)
    out: list[str] = []
    written = 0
    for index, piece in enumerate(pieces(answer_text(ask)), start=1):
        out.append(line(side, "0", piece))
        written += len(piece)
        if index == 2:
            first["charLocation"] = [written]
            out.append(_citation(side, {k: first[k] for k in ("url", "id", "charLocation")}))
        elif index == 4:
            second["charLocation"] = [written]
            out.append(_citation(side, second))
    out.append(_citation(side, [first, second]))
    out.append(line(side, "d", {"finishReason": "unknown"}))
    return out


def lines(side: Side, ask: Ask) -> list[str]:
    """The whole answer of one side, finish line included."""
    if ask.kind == "image":
        image = {"type": "image", "image": ask.image_url, "mimeType": "image/png"}
        return [line(side, "2", [image]), line(side, "d", {"finishReason": "stop"})]
    if ask.kind == "search":
        return _search_lines(side, ask)
    out = []
    if ask.kind == "reasoning":
        out.append(line(side, "g", ""))
        out.extend(line(side, "g", piece) for piece in pieces(reasoning_text(ask)))
    out.extend(line(side, "0", piece) for piece in pieces(answer_text(ask)))
    out.append(line(side, "d", {"finishReason": "stop"}))
    return out


def framed(side: Side, answer: Sequence[str], prompt: str, framing: Framing) -> list[str]:
    """One side's answer with the lines the 2026 site adds around it: `f` (message start) first,
    heartbeats (`2`) while the model thinks, `e` (step finish, with usage) before the finish."""
    *content, finish = answer
    out = []
    if framing.step_lines:
        out.append(line(side, "f", {"messageId": framing.message_id}))
    out.extend(line(side, "2", [{"type": "heartbeat"}]) for _ in range(framing.heartbeats))
    out.extend(content)
    if framing.step_lines:
        usage = {"promptTokens": len(pieces(prompt)), "completionTokens": len(content)}
        reason = orjson.loads(finish[len(side) + 2 :])["finishReason"]
        out.append(line(side, "e", {"finishReason": reason, "usage": usage, "isContinued": False}))
    out.append(finish)
    return out


def interleave(*sides: Sequence[str]) -> list[str]:
    """Battle answers: one line of each side in turn."""
    merged = itertools.chain.from_iterable(itertools.zip_longest(*sides))
    return [entry for entry in merged if entry is not None]


def shaped(plan: list[str], failure: FailureKind | None, message: str) -> list[str]:
    """The lines actually sent when a stream failure is injected."""
    body = [entry for entry in plan if entry[1] not in FINISHES]
    if failure == "cut_stream":
        return body[: max(1, len(body) // 2)]
    if failure == "error_line":
        return [*body[: len(body) // 2], line("a", "3", message)]
    if failure == "empty_200":
        return []
    return plan


def text_of(streamed: Iterable[str], side: Side, code: str = "0") -> str:
    """The text one side's `code` lines carry, joined (what a client should have received)."""
    prefix = f"{side}{code}:"
    return "".join(
        orjson.loads(entry[len(prefix) :]) for entry in streamed if entry.startswith(prefix)
    )
