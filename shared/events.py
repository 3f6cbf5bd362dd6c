"""Normalized events a worker appends to a job's Redis Stream, and the gateway relays.

An event is a small dict with a type under "t". They travel as orjson in the stream
field "d"; the constructors below are the only place their shape is spelled out.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from redis.typing import EncodableT, FieldT

Side = Literal["a", "b"]
Event = dict[str, Any]

FIELD = b"d"

#: Events that carry answer content: once one is out, the job cannot be started over.
CONTENT = frozenset({"text", "reasoning", "citation", "image", "finish"})

#: Kinds of error, shared by worker (which raises them) and gateway (which maps them to statuses).
ErrorKind = Literal[
    "rate_limited",  # the arena's 429; retry_after set
    "recaptcha",  # token refused twice
    "auth",  # login required / not our session
    "challenge",  # Cloudflare interstitial
    "bad_request",  # the arena refused the request body (400)
    "upstream",  # the arena failed (5xx, a3 error line, cut stream)
    "no_worker",  # nobody could take the job
    "worker_lost",  # the worker died while streaming
    "cancelled",
    "timeout",
    "internal",
]


def accepted(worker_id: str, attempt: int) -> Event:
    """A worker took the job (attempt n); a later attempt may follow if it hands the job on."""
    return {"t": "accepted", "worker": worker_id, "attempt": attempt}


def queued(attempt: int, queue: str) -> Event:
    """The job is back on `queue` as attempt n, waiting again for an account: its last
    attempt's worker put it back before any content (a check, a lost browser or worker, a rate
    limit). Written as the attempt's entry `<n>-0`, before anything the attempt writes."""
    return {"t": "queued", "attempt": attempt, "queue": queue}


def session(worker_id: str, action: str, session_id: str, message_ids: dict[str, str]) -> Event:
    """Where the answer lives in the arena: its session and model message ids by side.

    `action` is the request that was made (`create` when a post or retry fell back to a new
    session), so that the gateway can continue the thread next turn.
    """
    return {
        "t": "session",
        "worker": worker_id,
        "action": action,
        "session": session_id,
        "messages": message_ids,
    }


def text(side: Side, value: str) -> Event:
    return {"t": "text", "side": side, "text": value}


def reasoning(side: Side, value: str) -> Event:
    return {"t": "reasoning", "side": side, "text": value}


def citation(side: Side, source: dict[str, Any]) -> Event:
    return {"t": "citation", "side": side, "source": source}


def image(side: Side, url: str, mime_type: str, data_b64: str | None = None) -> Event:
    """A generated image; `data_b64` holds its bytes when the job asked for them."""
    event: Event = {"t": "image", "side": side, "url": url, "mime_type": mime_type}
    if data_b64 is not None:
        event["data_b64"] = data_b64
    return event


def tool_call(
    side: Side, call_id: str, name: str, arguments: dict[str, Any], namespace: str | None = None
) -> Event:
    """A call of one of the client's tools, found in the answer by the gateway (never by a
    worker: the arena has no tools)."""
    return {
        "t": "tool_call",
        "side": side,
        "id": call_id,
        "name": name,
        "arguments": arguments,
        "namespace": namespace,
    }


def finish(side: Side, reason: str, usage: dict[str, Any] | None = None) -> Event:
    return {"t": "finish", "side": side, "reason": reason, "usage": usage}


def error(
    kind: ErrorKind,
    message: str,
    *,
    retry_after: float | None = None,
    status: int | None = None,
) -> Event:
    return {
        "t": "error",
        "kind": kind,
        "message": message,
        "retry_after": retry_after,
        "status": status,
    }


def side_failed(side: Side, message: str) -> Event:
    """One side's answer failed (its `3` line). In a battle the other side answers on; in a
    direct answer the worker makes it the answer's `error`."""
    return {"t": "side_failed", "side": side, "message": message}


def done() -> Event:
    """Last event of every job: nothing follows it."""
    return {"t": "done"}


def encode(event: Event) -> dict[FieldT, EncodableT]:
    return {FIELD: orjson.dumps(event)}


def decode(fields: dict[bytes, bytes]) -> Event:
    return orjson.loads(fields[FIELD])
