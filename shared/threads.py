"""Conversation fingerprints, and the arena threads remembered under them in Redis.

Clients resend the whole history every turn, while the arena keeps the thread on its side. A
fingerprint names a history: each message's role, text and image digests hashed in a chain,
so that every prefix of a history has one, and the whole is scoped by model and client key.
After an answer its worker remembers, under the fingerprints of the history it answered
(`asked`) and of that history plus the answer (`answered`), where the thread lives: the
worker, the arena session and the answer's message id. The gateway reads them next turn
(`gateway.conversations.continuation`).

Text is compared loosely: whitespace runs count as one space, and markdown images are left
out (clients keep, drop or rewrite the images an answer showed).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import orjson
from pydantic import BaseModel

from shared.storage import redis_keys

_VERSION = b"lmb-conversation-1"
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
#: OpenAI's newer name for the system role is the same role.
_ROLES = {"developer": "system"}


def scope(model: str, client: str | None) -> str:
    """The empty history of one model for one client (its key, or None when keys are off)."""
    seed = b"\0".join([_VERSION, model.encode(), (client or "").encode()])
    return hashlib.sha256(seed).hexdigest()


def extend(fingerprint: str, role: str, text: str, image_digests: Iterable[str] = ()) -> str:
    """The fingerprint of a history one message longer."""
    message = orjson.dumps([_ROLES.get(role, role), normalized(text), list(image_digests)])
    return hashlib.sha256(bytes.fromhex(fingerprint) + message).hexdigest()


def normalized(text: str) -> str:
    return " ".join(_MARKDOWN_IMAGE.sub(" ", text).split())


class Thread(BaseModel):
    """Where a remembered answer lives in the arena."""

    worker: str
    session_id: str
    #: The answer's model message (what a retry regenerates).
    message_id: str
    model: str
    #: Messages in the history the answer extends, the answer included.
    messages: int


class Head(BaseModel):
    """Where an arena session's thread stands: only a request matching it may continue it."""

    asked: str
    answered: str
    message_id: str


class Remember(BaseModel):
    """What a job's worker records once the answer is complete."""

    asked: str
    #: Messages in the history the job answers.
    messages: int
    ttl_s: int


def remembered(remember: Remember, thread: Thread, answer: str) -> dict[str, bytes]:
    """The Redis values that remember `thread` as the answer `answer` to `remember.asked`."""
    answered = extend(remember.asked, "assistant", answer)
    record = thread.model_dump_json().encode()
    head = Head(asked=remember.asked, answered=answered, message_id=thread.message_id)
    return {
        redis_keys.conversation(remember.asked): record,
        redis_keys.conversation(answered): record,
        redis_keys.conversation_head(thread.session_id): head.model_dump_json().encode(),
    }
