"""The arena's stream requests, built exactly as the site's own page sends them.

Bodies are plain dicts in the captured key order; the page posts them with
`JSON.stringify`, so the order is what goes on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.arena.ids import uuid7, uuid7_ascending
from shared.arena.site import CREATE_PATH, POST_PATH, RETRY_PATH, STOP_PATH


@dataclass(frozen=True, slots=True)
class ArenaRequest:
    method: str
    path: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UserTurn:
    """What a new session's first turn and a later one both send: ids, the message, the
    model(s) and the reCAPTCHA token. Model B goes with its message id (battle modes)."""

    session_id: str
    model_a_id: str
    user_message_id: str
    model_a_message_id: str
    content: str
    modality: str
    token: str
    model_b_id: str | None = None
    model_b_message_id: str | None = None
    attachments: Sequence[Mapping[str, str]] = ()
    feature_flags: Mapping[str, str] | None = None
    #: What the security check's v2 checkbox left once a person passed it (a flagged account).
    v2_token: str | None = None

    def __post_init__(self) -> None:
        if (self.model_b_id is None) != (self.model_b_message_id is None):
            raise ValueError("model_b_id and model_b_message_id go together")


def create_evaluation(turn: UserTurn, *, mode: str) -> ArenaRequest:
    """First turn of a session: `POST …/create-evaluation`, which also creates the session."""
    return ArenaRequest("POST", CREATE_PATH, _evaluation_body(turn, mode))


def probe(*, mode: str, token: str, v2_token: str | None = None) -> ArenaRequest:
    """A new chat naming a model nobody has: the site says whether it takes a call of this
    account (its mode, its tokens, its standing) without answering or spending anything."""
    user, message = uuid7_ascending(2)
    turn = UserTurn(
        session_id=uuid7(),
        model_a_id=uuid7(),
        user_message_id=user,
        model_a_message_id=message,
        content="probe",
        modality="chat",
        token=token,
        v2_token=v2_token,
    )
    return create_evaluation(turn, mode=mode)


def post_to_evaluation(turn: UserTurn) -> ArenaRequest:
    """A later turn: only the new user message; the arena keeps the thread."""
    path = POST_PATH.format(session=_segment(turn.session_id))
    return ArenaRequest("POST", path, _evaluation_body(turn, None))


def retry_message(*, session_id: str, model_message_id: str, token: str) -> ArenaRequest:
    """Regenerate one model answer in place."""
    path = RETRY_PATH.format(session=_segment(session_id), message=_segment(model_message_id))
    return ArenaRequest("PUT", path, {"recaptchaV3Token": token})


def stop(*, session_id: str, model_message_id: str) -> ArenaRequest:
    """Ask the arena to stop generating an answer (frees the account's slot early)."""
    path = STOP_PATH.format(session=_segment(session_id), message=_segment(model_message_id))
    return ArenaRequest("POST", path, {})


def _evaluation_body(turn: UserTurn, mode: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": turn.session_id}
    if mode is not None:
        body["mode"] = mode
    body["modelAId"] = turn.model_a_id
    if turn.model_b_id is not None:
        body["modelBId"] = turn.model_b_id
    body["userMessageId"] = turn.user_message_id
    body["modelAMessageId"] = turn.model_a_message_id
    if turn.model_b_message_id is not None:
        body["modelBMessageId"] = turn.model_b_message_id
    body["userMessage"] = {
        "content": turn.content,
        "experimental_attachments": [dict(attachment) for attachment in turn.attachments],
    }
    body["modality"] = turn.modality
    body["recaptchaV3Token"] = turn.token
    if turn.v2_token is not None:
        body["recaptchaV2Token"] = turn.v2_token
    if turn.feature_flags:
        body["featureFlags"] = dict(turn.feature_flags)
    return body


def _segment(value: str) -> str:
    # Ids are ours, but a stray "/" or "?" must not change which endpoint is hit.
    return quote(value, safe="")
