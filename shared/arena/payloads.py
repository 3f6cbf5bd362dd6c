"""The arena's stream requests, built exactly as the site's own page sends them.

Bodies are plain dicts in the captured key order; the page posts them with
`JSON.stringify`, so the order is what goes on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

STREAM_PREFIX = "/nextjs-api/stream/"


@dataclass(frozen=True, slots=True)
class ArenaRequest:
    method: str
    path: str
    body: dict[str, Any]


def create_evaluation(
    *,
    session_id: str,
    model_a_id: str,
    user_message_id: str,
    model_a_message_id: str,
    content: str,
    modality: str,
    token: str,
    mode: str = "direct",
    model_b_id: str | None = None,
    model_b_message_id: str | None = None,
    attachments: Sequence[Mapping[str, str]] = (),
    feature_flags: Mapping[str, str] | None = None,
) -> ArenaRequest:
    """First turn of a session: `POST …/create-evaluation`, which also creates the session."""
    body = _evaluation_body(
        session_id=session_id,
        mode=mode,
        model_a_id=model_a_id,
        model_b_id=model_b_id,
        user_message_id=user_message_id,
        model_a_message_id=model_a_message_id,
        model_b_message_id=model_b_message_id,
        content=content,
        attachments=attachments,
        modality=modality,
        token=token,
        feature_flags=feature_flags,
    )
    return ArenaRequest("POST", STREAM_PREFIX + "create-evaluation", body)


def post_to_evaluation(
    *,
    session_id: str,
    model_a_id: str,
    user_message_id: str,
    model_a_message_id: str,
    content: str,
    modality: str,
    token: str,
    model_b_id: str | None = None,
    model_b_message_id: str | None = None,
    attachments: Sequence[Mapping[str, str]] = (),
    feature_flags: Mapping[str, str] | None = None,
) -> ArenaRequest:
    """A later turn: only the new user message; the arena keeps the thread."""
    body = _evaluation_body(
        session_id=session_id,
        mode=None,
        model_a_id=model_a_id,
        model_b_id=model_b_id,
        user_message_id=user_message_id,
        model_a_message_id=model_a_message_id,
        model_b_message_id=model_b_message_id,
        content=content,
        attachments=attachments,
        modality=modality,
        token=token,
        feature_flags=feature_flags,
    )
    return ArenaRequest("POST", f"{STREAM_PREFIX}post-to-evaluation/{_segment(session_id)}", body)


def retry_message(*, session_id: str, model_message_id: str, token: str) -> ArenaRequest:
    """Regenerate one model answer in place."""
    path = (
        f"{STREAM_PREFIX}retry-evaluation-session-message/"
        f"{_segment(session_id)}/messages/{_segment(model_message_id)}"
    )
    return ArenaRequest("PUT", path, {"recaptchaV3Token": token})


def stop(*, session_id: str, model_message_id: str) -> ArenaRequest:
    """Ask the arena to stop generating an answer (frees the account's slot early)."""
    path = f"{STREAM_PREFIX}stop/{_segment(session_id)}/messages/{_segment(model_message_id)}"
    return ArenaRequest("POST", path, {})


def _evaluation_body(
    *,
    session_id: str,
    mode: str | None,
    model_a_id: str,
    model_b_id: str | None,
    user_message_id: str,
    model_a_message_id: str,
    model_b_message_id: str | None,
    content: str,
    attachments: Sequence[Mapping[str, str]],
    modality: str,
    token: str,
    feature_flags: Mapping[str, str] | None,
) -> dict[str, Any]:
    if (model_b_id is None) != (model_b_message_id is None):
        raise ValueError("model_b_id and model_b_message_id go together")
    body: dict[str, Any] = {"id": session_id}
    if mode is not None:
        body["mode"] = mode
    body["modelAId"] = model_a_id
    if model_b_id is not None:
        body["modelBId"] = model_b_id
    body["userMessageId"] = user_message_id
    body["modelAMessageId"] = model_a_message_id
    if model_b_message_id is not None:
        body["modelBMessageId"] = model_b_message_id
    body["userMessage"] = {
        "content": content,
        "experimental_attachments": [dict(attachment) for attachment in attachments],
    }
    body["modality"] = modality
    body["recaptchaV3Token"] = token
    if feature_flags:
        body["featureFlags"] = dict(feature_flags)
    return body


def _segment(value: str) -> str:
    # Ids are ours, but a stray "/" or "?" must not change which endpoint is hit.
    return quote(value, safe="")
