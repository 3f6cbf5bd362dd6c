"""What a browser gets from the site, per version: chat pages, the catalog endpoint, unknown paths.

2025-12 (captured): `/`, `/?mode=direct`, `/c/{id}` with `initialModels` in the page; any other
path is a plain 404. 2026-10 (reported): `/?mode=direct` moved to `/text/direct` (and the other
arenas' pages), the catalog is `GET /nextjs-api/model-catalog`, and an unknown path answers 200
with a "not found" page.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from shared.arena.ids import uuid7
from tests.fakearena import pages, security
from tests.fakearena.identity import GUEST_COOKIE, Identity, resolve, user_of
from tests.fakearena.scenario import CAPTURED_SITE, NEW_SITE
from tests.fakearena.state import Arena
from tests.fakearena.web import arena_of, error_answer, json_answer

COOKIE_SECONDS = 365 * 86400
#: 2026 pages `/<page>/direct` and the catalog group whose models they offer.
DIRECT_PAGES = {"text": "text", "search": "search", "image": "text-to-image", "code": "code"}
#: `?chat-modality=` of an old `/?mode=direct` link, and the page it moved to.
MOVED_PAGES = {"chat": "text", "search": "search", "image": "image"}
#: The mode the page's UI starts a chat in.
UI_MODES = {CAPTURED_SITE: "direct", NEW_SITE: "direct-battle"}


def not_found(request: Request) -> Response:
    """An unknown path: 2025-12 answers a plain 404, 2026-10 a 200 "not found" page to a GET."""
    if arena_of(request).scenario.new_site and request.method in ("GET", "HEAD"):
        return HTMLResponse(pages.not_found_page())
    return PlainTextResponse("Not Found", 404)


async def unknown_path(scope: Scope, receive: Receive, send: Send) -> None:
    """The router's answer when no route matches."""
    await not_found(Request(scope, receive))(scope, receive, send)


def lacking(arena: Arena, identity: Identity | None) -> set[str]:
    """The public names this account's catalog lacks (scenario `missing_models`)."""
    return set(arena.scenario.missing_models.get(identity.key, ())) if identity else set()


def _page(request: Request, group: str | None, selected: str | None = None) -> Response:
    """A chat page offering `group`'s models (None: the whole 2025 catalog)."""
    arena = arena_of(request)
    identity = resolve(request.cookies)
    session = arena.sessions.get(request.path_params.get("session_id", ""))
    thread = (
        [turn.text for turn in session.turns]
        if session is not None
        and session.state != "deleted"
        and identity is not None
        and session.owner == identity.key
        else []
    )
    hidden = lacking(arena, identity)
    if arena.scenario.new_site:
        hidden |= set(arena.scenario.unselectable)
    models = [m for m in arena.catalog.models(group) if m.public_name not in hidden]
    rsc = None
    if not arena.scenario.new_site and arena.scenario.rsc_catalog:
        rsc = arena.catalog.served_for(lacking(arena, identity), ())
    response = HTMLResponse(
        pages.chat_page(
            models=models,
            selected=selected,
            rsc_catalog=rsc,
            initial_model_id=next((m.id for m in models if m.kind == "chat"), None),
            build_id=arena.build_id,
            site_key=arena.site_key,
            scripts=arena.chunks(),
            username=identity.username if identity else None,
            mode=UI_MODES[arena.scenario.site],
            thread=thread,
            rsc_chunk_chars=arena.scenario.rsc_chunk_chars,
            security_check=security.security_check(arena, identity.key if identity else None),
        )
    )
    if GUEST_COOKIE not in request.cookies:
        response.set_cookie(GUEST_COOKIE, uuid7(), max_age=COOKIE_SECONDS, samesite="lax")
    return response


async def chat_page(request: Request) -> Response:
    """`/`, `/?mode=direct`, `/c/{id}`: the chat page (2026: `/?mode=direct` has moved)."""
    arena = arena_of(request)
    if (
        arena.scenario.new_site
        and request.url.path == "/"
        and request.query_params.get("mode") == "direct"
    ):
        moved = MOVED_PAGES.get(request.query_params.get("chat-modality", "chat"), "text")
        return RedirectResponse(f"/{moved}/direct", 301)
    return _page(request, "text" if arena.scenario.new_site else None)


async def direct_page(request: Request) -> Response:
    """2026: `/text/direct`, `/search/direct`, `/image/direct`, `/code/direct` [`?model_a=`]."""
    page = request.path_params["page"]
    if not arena_of(request).scenario.new_site or page not in DIRECT_PAGES:
        return not_found(request)
    return _page(request, DIRECT_PAGES[page], request.query_params.get("model_a"))


async def model_catalog(request: Request) -> Response:
    """2026: the catalog as arena groups, as this account sees it (a knob breaks or hides it)."""
    arena = arena_of(request)
    if not arena.scenario.new_site or arena.scenario.catalog_endpoint == "absent":
        return not_found(request)
    served = arena.catalog.served_for(
        lacking(arena, resolve(request.cookies)), set(arena.scenario.unselectable)
    )
    body = orjson.dumps(served)
    if arena.scenario.catalog_endpoint == "broken":
        body = body[: len(body) // 2]  # cut mid-way: not JSON
    return Response(body, media_type="application/json")


async def me(request: Request) -> Response:
    """`GET /api/me`: the signed-in user, else 401 (a guest is signed out)."""
    identity = resolve(request.cookies)
    if identity is None or identity.username is None:
        return error_answer(401, "Unauthorized")
    return json_answer(user_of(identity.username))
