"""Next.js server actions posted to a page (image upload, deleting a chat), and the object store
the upload ones sign URLs for."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from shared.arena.ids import uuid7
from tests.fakearena import site
from tests.fakearena.identity import resolve
from tests.fakearena.pages import error_xml, rsc_action_answer
from tests.fakearena.state import Arena
from tests.fakearena.storage import StoredObject
from tests.fakearena.web import arena_of, origin_of

ACTION_HEADERS = {
    "content-type": "text/x-component",
    "cache-control": "no-cache, no-store, max-age=0, must-revalidate",
}
_FAILED = {"success": False, "error": "Invalid arguments"}


def _update_tou_consent(arena: Arena, request: Request, args: list[Any]) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+00"
    return {"success": True, "data": {"touConsentTimestamp": stamp}}


def _generate_upload_url(arena: Arena, request: Request, args: list[Any]) -> dict[str, Any]:
    if len(args) != 2 or not all(isinstance(arg, str) and arg for arg in args):
        return _FAILED
    now = time.time()
    key = f"{uuid7(int(now * 1000))}/{int(now * 1000)}-{args[0]}"
    url = arena.bucket.signed_url(
        origin_of(request), "PUT", key, arena.scenario.signed_url_seconds, now
    )
    return {"success": True, "data": {"uploadUrl": url, "key": key}}


def _get_signed_url(arena: Arena, request: Request, args: list[Any]) -> dict[str, Any]:
    if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
        return _FAILED
    now = time.time()
    url = arena.bucket.signed_url(
        origin_of(request), "GET", args[0], arena.scenario.signed_url_seconds, now
    )
    return {"success": True, "data": {"url": url}}


def _get_history(arena: Arena, request: Request, args: list[Any]) -> dict[str, Any]:
    pagination = {"hasMore": False, "cursor": None, "limit": 20}
    return {"success": True, "data": {"history": [], "pagination": pagination}}


def _set_session_state(
    arena: Arena, request: Request, args: list[Any], state: Literal["archived", "deleted"]
) -> dict[str, Any]:
    """Archive or delete one of the caller's chats; a deleted one is gone for every endpoint."""
    if len(args) != 1 or not isinstance(args[0], str):
        return _FAILED
    identity = resolve(request.cookies)
    session = arena.sessions.get(args[0])
    if (
        session is None
        or session.state == "deleted"
        or identity is None
        or session.owner != identity.key
    ):
        return {"success": False, "error": "Evaluation session not found"}
    session.state = state
    return {"success": True}


def _delete_session(arena: Arena, request: Request, args: list[Any]) -> dict[str, Any]:
    return _set_session_state(arena, request, args, "deleted")


def _archive_session(arena: Arena, request: Request, args: list[Any]) -> dict[str, Any]:
    return _set_session_state(arena, request, args, "archived")


ACTIONS: dict[str, Callable[[Arena, Request, list[Any]], dict[str, Any]]] = {
    "updateTouConsent": _update_tou_consent,
    "generateUploadUrl": _generate_upload_url,
    "getSignedUrl": _get_signed_url,
    "getHistory": _get_history,
    "deleteEvaluationSession": _delete_session,
    "archiveEvaluationSession": _archive_session,
}


async def server_action(request: Request) -> Response:
    """`POST <page>` with `Next-Action: <id>`: the result rides on line `1:` of the RSC answer."""
    arena = arena_of(request)
    page = request.path_params.get("page")
    if page is not None and (not arena.scenario.new_site or page not in site.DIRECT_PAGES):
        return site.not_found(request)
    try:
        args = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        args = None
    name = arena.actions().get(request.headers.get("next-action", ""))
    if name is None:
        return PlainTextResponse("Server action not found.", 404)
    result = ACTIONS[name](arena, request, args) if isinstance(args, list) else _FAILED
    matched = (
        "/[locale]/c/[id]"
        if request.url.path.startswith("/c/")
        else "/[locale]/[arena]/direct"
        if page is not None
        else "/[locale]"
    )
    return Response(
        rsc_action_answer(arena.build_id, result),
        headers={**ACTION_HEADERS, "x-matched-path": matched},
    )


def _storage_error(status: int, code: str, message: str) -> Response:
    return Response(error_xml(code, message), status, media_type="application/xml")


def _refused(arena: Arena, request: Request, key: str) -> Response | None:
    problem = arena.bucket.check(request.method, key, dict(request.query_params), time.time())
    if problem == "SignatureDoesNotMatch":
        return _storage_error(403, problem, "The request signature we calculated does not match.")
    if problem == "AccessDenied":
        return _storage_error(403, problem, "Request has expired")
    return None


async def put_object(request: Request) -> Response:
    """The presigned PUT of an upload."""
    arena = arena_of(request)
    key = request.path_params["key"]
    if refused := _refused(arena, request, key):
        return refused
    content_type = request.headers.get("content-type", "application/octet-stream")
    data = await request.body()
    arena.bucket.objects[key] = StoredObject(data, content_type)
    return Response(status_code=200, headers={"etag": f'"{hashlib.md5(data).hexdigest()}"'})


async def get_object(request: Request) -> Response:
    """A signed GET of an uploaded or generated object."""
    arena = arena_of(request)
    key = request.path_params["key"]
    if refused := _refused(arena, request, key):
        return refused
    stored = arena.bucket.objects.get(key)
    if stored is None:
        return _storage_error(404, "NoSuchKey", "The specified key does not exist.")
    return Response(stored.data, media_type=stored.content_type)
