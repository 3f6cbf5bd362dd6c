"""The stream endpoints: create, post to and retry an evaluation (streamed answers), and stop.

Checks run in this order; the first that fails answers:
injected status failure → reCAPTCHA token and the account's flag (403) → caller, session owner,
login gate (401/404) → body checks (400). Ids are spent only by a request that passes every check.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tests.fakearena import png, replies, security, site
from tests.fakearena.catalog import Model
from tests.fakearena.identity import Identity, resolve
from tests.fakearena.ids import is_fresh_uuid7
from tests.fakearena.linestream import LineStream, paced
from tests.fakearena.replies import Ask, Attachment, Side
from tests.fakearena.scenario import CAPTURED_SITE, NEW_SITE, Endpoint, Failure
from tests.fakearena.state import Arena, Session, StreamRecord, Turn
from tests.fakearena.storage import PREFIX, StoredObject
from tests.fakearena.web import Refusal, arena_of, error_answer, json_answer, origin_of

PREFIX_STREAM = "/nextjs-api/stream"
MATCHED_PATHS = {
    "create": f"{PREFIX_STREAM}/create-evaluation",
    "post": f"{PREFIX_STREAM}/post-to-evaluation/[id]",
    "retry": f"{PREFIX_STREAM}/retry-evaluation-session-message/[evaluationSessionId]"
    "/messages/[messageId]",
    "stop": f"{PREFIX_STREAM}/stop/[evaluationSessionId]/messages/[messageId]",
}
MAX_PROMPT_CHARS = 113_567
#: The modes a chat may be created in, per site.
MODES = {
    CAPTURED_SITE: ("direct", "battle", "side-by-side"),
    NEW_SITE: ("direct", "direct-battle", "battle", "side-by-side"),
}
#: Modes answered by model A alone; the login gate keeps guests out of them.
ONE_SIDED = ("direct", "direct-battle")
DIRECT_REFUSED = "'direct' mode is not allowed when starting a new conversation"
SERVED_MODALITIES = ("chat", "search", "image")
#: The catalog group a blind battle (2026-10) draws its two models from, per modality.
BATTLE_GROUPS = {"chat": "text", "search": "search", "image": "text-to-image"}
RECAPTCHA_ACTION = "chat_submit"
#: The action a retry's token must be minted for, per site.
RETRY_ACTIONS = {CAPTURED_SITE: RECAPTCHA_ACTION, NEW_SITE: "chat_retry"}
OUTCOMES = {"cut_stream": "cut", "error_line": "error", "empty_200": "empty"}
LOGIN_GATE_BODY = {"error": "LOGIN_GATE", "message": "Sign in to use direct chat."}


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise Refusal(error_answer(400, "Invalid JSON body"))
    return body


def _status_failure(failure: Failure, endpoint: Endpoint, body: Mapping[str, Any]) -> Response:
    if failure.kind == "rate_limit_429":
        modality = body.get("modality") if isinstance(body.get("modality"), str) else "chat"
        headers = {
            "content-type": "text/plain; charset=UTF-8",
            "retry-after": str(failure.retry_after),
            "access-control-allow-origin": "*",
            "cache-control": "public, max-age=0, must-revalidate",
            "ratelimit": f"limit=0, remaining=0, reset={failure.retry_after}",
            "ratelimit-modality": modality,
            "ratelimit-policy": "0;w=0",
            "x-matched-path": MATCHED_PATHS[endpoint],
        }
        return Response("Too many requests, please try again later.", 429, headers)
    status, message = {
        "prompt_failed": (429, "prompt failed"),
        "recaptcha_403": (403, "recaptcha validation failed"),
        "unauthorized_401": (401, "Unauthorized"),
        "server_500": (500, "Internal Server Error"),
    }[failure.kind]
    return error_answer(status, message)


def _refuse_if_injected(
    arena: Arena, request: Request, endpoint: Endpoint, body: Mapping[str, Any]
) -> None:
    """An injected status failure answers before any check (it may be for one account only)."""
    identity = resolve(request.cookies)
    failure = arena.next_failure(endpoint, identity.key if identity else None, status=True)
    if failure is not None:
        raise Refusal(_status_failure(failure, endpoint, body))


def _spend_tokens(
    arena: Arena, request: Request, body: Mapping[str, Any], action: str = RECAPTCHA_ACTION
) -> None:
    """The reCAPTCHA check, with the caller's standing (flagged accounts need a v2 token)."""
    identity = resolve(request.cookies)
    if not security.recaptcha_passes(arena, identity.key if identity else None, body, action):
        raise Refusal(error_answer(403, "recaptcha validation failed"))


def _caller(request: Request) -> Identity:
    identity = resolve(request.cookies)
    if identity is None:
        raise Refusal(error_answer(401, "Unauthorized"))
    return identity


def _gate(arena: Arena, identity: Identity, mode: object) -> None:
    if arena.scenario.login_gate and mode in ONE_SIDED and not identity.signed_in:
        raise Refusal(json_answer(LOGIN_GATE_BODY, 401))


def _owned_session(arena: Arena, identity: Identity, session_id: str) -> Session:
    session = arena.sessions.get(session_id)
    if session is None or session.state == "deleted":
        raise Refusal(error_answer(404, "Evaluation session not found"))
    if session.owner != identity.key:
        message = f"User {identity.user_id} does not have access to evaluation session {session_id}"
        raise Refusal(error_answer(401, message))
    return session


def _bad(message: str) -> Refusal:
    return Refusal(error_answer(400, message))


def _message_ids(body: Mapping[str, Any], mode: str) -> dict[Side, Any]:
    """side -> model message id as the body gives them (direct-battle: side a only, strictly)."""
    if mode == "direct-battle":
        extra = [key for key in ("modelBId", "modelBMessageId") if key in body]
        if extra:
            raise _bad(f"Unexpected field in direct-battle: {extra[0]}")
    sides: tuple[Side, ...] = ("a",) if mode in ONE_SIDED else ("a", "b")
    return {side: body.get(f"model{side.upper()}MessageId") for side in sides}


def _draw(arena: Arena, modality: str, session_id: str, lacking: set[str]) -> dict[Side, str]:
    """A blind battle's two models, drawn by the site (seeded by the session id: repeatable)."""
    group = arena.catalog.models(BATTLE_GROUPS[modality])
    # One entry per public name: the snapshot lists some names twice, and a battle is of two.
    by_name = {m.public_name: m for m in group if m.public_name not in lacking}
    pool = sorted(by_name.values(), key=lambda m: m.public_name)
    if len(pool) < 2:
        raise _bad(f"No models to battle in modality {modality}")
    model_a, model_b = random.Random(session_id).sample(pool, 2)
    return {"a": model_a.id, "b": model_b.id}


def _model_ids(
    arena: Arena,
    body: Mapping[str, Any],
    mode: str,
    modality: str,
    sides: Iterable[Side],
    session_id: str,
    first: Turn | None,
    lacking: set[str],
) -> dict[Side, Any]:
    """side -> model id: from the body, or, in a 2026 blind battle, the site's own draw."""
    if mode == "battle" and arena.scenario.new_site:
        if first is not None:
            return {side: model.id for side, model in first.models.items()}
        return _draw(arena, modality, session_id, lacking)
    return {side: body.get(f"model{side.upper()}Id") for side in sides}


def _model(arena: Arena, model_id: Any, modality: str, lacking: set[str]) -> Model:
    """The catalog's model for this id and modality (an id may serve several modalities), if the
    caller's catalog has it."""
    variants = arena.catalog.by_id.get(model_id, {}) if isinstance(model_id, str) else {}
    name = next((model.public_name for model in variants.values()), None)
    if name is None or name in lacking:
        raise _bad(f"Unknown model: {model_id}")
    model = variants.get(modality)
    if model is None:
        raise _bad(f"Model {name} does not support modality {modality}")
    return model


def _attachments(arena: Arena, message: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """The message's attachments; each must be an object uploaded here, with a valid signed URL."""
    attachments = message.get("experimental_attachments", [])
    if not isinstance(attachments, list):
        raise _bad("Invalid attachments")
    for attachment in attachments:
        if not isinstance(attachment, dict) or not isinstance(attachment.get("url"), str):
            raise _bad("Invalid attachment")
        url = urlsplit(attachment["url"])
        key = unquote(url.path.removeprefix(PREFIX))
        valid = (
            url.path.startswith(PREFIX)
            and key == attachment.get("name")
            and key in arena.bucket.objects
            and arena.bucket.check("GET", key, dict(parse_qsl(url.query)), now) is None
        )
        if not valid:
            raise _bad(f"Invalid attachment: {attachment.get('name')}")
    return attachments


def _new_turn(
    arena: Arena,
    identity: Identity,
    body: Mapping[str, Any],
    mode: str,
    now: float,
    session_id: str,
    first: Turn | None = None,
) -> Turn:
    """The turn a create or post body asks for, after every body check (`first`: the session's
    first turn, for a post)."""
    message = body.get("userMessage")
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise _bad("Invalid userMessage")
    modality = body.get("modality")
    if modality not in SERVED_MODALITIES:
        raise _bad(f"Unsupported modality: {modality}")
    sides = _message_ids(body, mode)
    message_ids = [body.get("userMessageId"), *sides.values()]
    if not all(is_fresh_uuid7(message_id, now) for message_id in message_ids):
        raise _bad("Message ID seems spoofed")
    if len(set(message_ids)) != len(message_ids) or arena.used_ids.intersection(message_ids):
        raise _bad("Message ID already used")
    lacking = site.lacking(arena, identity)
    model_ids = _model_ids(arena, body, mode, modality, sides, session_id, first, lacking)
    models = {side: _model(arena, model_ids[side], modality, lacking) for side in sides}
    if len(message["content"]) > MAX_PROMPT_CHARS:
        raise _bad(f"Message is too long (at most {MAX_PROMPT_CHARS} characters)")
    attachments = _attachments(arena, message, now)
    if attachments and not all(model.accepts_images for model in models.values()):
        raise _bad("Model does not accept images")
    return Turn(
        user_message_id=body["userMessageId"],
        text=message["content"],
        modality=modality,
        attachments=attachments,
        models=models,
        message_ids=sides,
    )


def _stream_headers(
    arena: Arena, identity: Identity, endpoint: Endpoint
) -> list[tuple[bytes, bytes]]:
    """The captured headers, in order; the rate limit counts this caller's streams."""
    used = arena.count_stream(identity.key)
    next_hour = (int(time.time()) // 3600 + 1) * 3600
    headers = [
        ("content-type", "text/event-stream"),
        ("access-control-allow-origin", "*"),
        ("cache-control", "no-cache"),
        ("ratelimit", f"limit=3000, remaining={max(0, 3000 - used)}, reset=60"),
        ("ratelimit-limit", "240"),
        ("ratelimit-policy", "3000;w=300"),
        ("ratelimit-remaining", str(max(0, 240 - used))),
        ("ratelimit-reset", str(next_hour)),
        ("x-matched-path", MATCHED_PATHS[endpoint]),
    ]
    return [(name.encode(), value.encode()) for name, value in headers]


def _image_url(
    arena: Arena, request: Request, session: Session, message_id: str, prompt: str
) -> str:
    """Store the generated picture and sign a GET for it, as the site does on R2."""
    now = time.time()
    key = f"{session.owner_id}/{int(now * 1000)}-{message_id}.png"
    arena.bucket.objects[key] = StoredObject(png.image_for(prompt), "image/png")
    return arena.bucket.signed_url(
        origin_of(request), "GET", key, arena.scenario.signed_url_seconds, now
    )


def _answer(
    arena: Arena,
    request: Request,
    identity: Identity,
    endpoint: Endpoint,
    session: Session,
    turn_index: int,
    sides: tuple[Side, ...],
    failure: Failure | None,
) -> LineStream:
    """Stream the answer of `sides` for one turn of the session."""
    turn = session.turns[turn_index]
    plans = []
    for side in sides:
        model = turn.models[side]
        image_url = ""
        if model.kind == "image":
            image_url = _image_url(arena, request, session, turn.message_ids[side], turn.text)
        ask = Ask(
            model=model.public_name,
            kind=model.kind,
            turn=turn_index + 1,
            first=session.turns[0].text,
            prompt=turn.text,
            retry=turn.retries.get(side, 0),
            attachments=tuple(
                Attachment(a.get("contentType", ""), len(arena.bucket.objects[a["name"]].data))
                for a in turn.attachments
            ),
            image_url=image_url,
            scripted=arena.scenario.scripted(turn.text),
        )
        framing = replies.Framing(
            message_id=turn.message_ids[side],
            step_lines=arena.scenario.step_lines,
            heartbeats=arena.scenario.heartbeat_lines,
        )
        plans.append(replies.framed(side, replies.lines(side, ask), turn.text, framing))
    kind = failure.kind if failure else None
    plan = replies.shaped(replies.interleave(*plans), kind, failure.message if failure else "")
    record = StreamRecord(
        endpoint=endpoint,
        session_id=session.id,
        user_message_id=turn.user_message_id,
        message_ids={side: turn.message_ids[side] for side in sides},
        models={side: turn.models[side].public_name for side in sides},
        outcome=OUTCOMES.get(kind or "", "finished"),
    )
    arena.streams.append(record)
    for message_id in record.message_ids.values():
        arena.by_message[(session.id, message_id)] = record
    pause = failure.seconds if kind == "pause" else 0.0
    lines = paced(plan, record, arena.scenario.line_delay_seconds, pause)
    return LineStream(lines, record, _stream_headers(arena, identity, endpoint))


async def create_evaluation(request: Request) -> Response | LineStream:
    arena = arena_of(request)
    try:
        body = await _json_body(request)
        _refuse_if_injected(arena, request, "create", body)
        _spend_tokens(arena, request, body)
        identity = _caller(request)
        mode = body.get("mode")
        _gate(arena, identity, mode)
        if mode not in MODES[arena.scenario.site]:
            raise _bad(f"Invalid mode: {mode}")
        if mode == "direct" and arena.scenario.new_site:
            raise _bad(DIRECT_REFUSED)
        now = time.time()
        if not is_fresh_uuid7(body.get("id"), now):
            raise _bad("Evaluation session ID seems spoofed")
        if body["id"] in arena.sessions:
            raise _bad("Evaluation session already exists")
        turn = _new_turn(arena, identity, body, mode, now, body["id"])
    except Refusal as refusal:
        return refusal.response
    failure = arena.next_failure("create", identity.key, status=False)
    session = Session(id=body["id"], owner=identity.key, owner_id=identity.user_id, mode=mode)
    session.turns.append(turn)
    arena.sessions[session.id] = session
    arena.used_ids.update([turn.user_message_id, *turn.message_ids.values()])
    return _answer(arena, request, identity, "create", session, 0, tuple(turn.message_ids), failure)


async def post_to_evaluation(request: Request) -> Response | LineStream:
    arena = arena_of(request)
    session_id = request.path_params["session_id"]
    try:
        body = await _json_body(request)
        _refuse_if_injected(arena, request, "post", body)
        _spend_tokens(arena, request, body)
        identity = _caller(request)
        session = _owned_session(arena, identity, session_id)
        _gate(arena, identity, session.mode)
        if body.get("id") != session_id:
            raise _bad("Evaluation session ID does not match the path")
        turn = _new_turn(
            arena, identity, body, session.mode, time.time(), session.id, session.turns[0]
        )
    except Refusal as refusal:
        return refusal.response
    failure = arena.next_failure("post", identity.key, status=False)
    session.turns.append(turn)
    arena.used_ids.update([turn.user_message_id, *turn.message_ids.values()])
    index = len(session.turns) - 1
    return _answer(
        arena, request, identity, "post", session, index, tuple(turn.message_ids), failure
    )


async def retry_message(request: Request) -> Response | LineStream:
    """Regenerate one model message (only its side, in battle modes) in place."""
    arena = arena_of(request)
    session_id, message_id = request.path_params["session_id"], request.path_params["message_id"]
    try:
        body = await _json_body(request)
        _refuse_if_injected(arena, request, "retry", body)
        _spend_tokens(arena, request, body, RETRY_ACTIONS[arena.scenario.site])
        identity = _caller(request)
        session = _owned_session(arena, identity, session_id)
        _gate(arena, identity, session.mode)
        found = session.find(message_id)
        if found is None:
            raise Refusal(error_answer(404, "Message not found"))
    except Refusal as refusal:
        return refusal.response
    failure = arena.next_failure("retry", identity.key, status=False)
    index, side = found
    turn = session.turns[index]
    turn.retries[side] = turn.retries.get(side, 0) + 1
    return _answer(arena, request, identity, "retry", session, index, (side,), failure)


async def stop_message(request: Request) -> Response:
    """End the running answer of a model message before its next line."""
    arena = arena_of(request)
    session_id, message_id = request.path_params["session_id"], request.path_params["message_id"]
    await request.body()  # unused, but read so that the log shows it
    try:
        session = _owned_session(arena, _caller(request), session_id)
        if session.find(message_id) is None:
            raise Refusal(error_answer(404, "Message not found"))
    except Refusal as refusal:
        return refusal.response
    record: StreamRecord | None = arena.by_message.get((session_id, message_id))
    if record is not None:
        record.interrupt("stopped")
    return json_answer({"success": True})
