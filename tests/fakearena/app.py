"""The fake LMArena as a Starlette app: pages, sign-in, reCAPTCHA, streams, uploads, control API."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from shared.arena.ids import uuid7
from tests.fakearena import actions, challenge, evaluations, pages
from tests.fakearena.identity import GUEST_COOKIE, auth_cookies, resolve
from tests.fakearena.recording import Recorder
from tests.fakearena.scenario import Scenario
from tests.fakearena.state import SITE_KEY, Arena
from tests.fakearena.web import arena_of, error_answer, json_answer

COOKIE_SECONDS = 365 * 86400
JS = "application/javascript; charset=utf-8"


def _chunks(arena: Arena) -> dict[str, str]:
    """The page's JS chunks by path; their names change with the build, as on the site."""
    return {
        f"/_next/static/chunks/app/page-{arena.build_id}.js": pages.server_reference_chunk(
            arena.actions
        ),
        f"/_next/static/chunks/main-app-{arena.build_id}.js": pages.UI_JS,
    }


async def chat_page(request: Request) -> Response:
    """`/`, `/?mode=direct`, `/c/{id}`: the chat page; a first visit gets a guest id."""
    arena = arena_of(request)
    identity = resolve(request.cookies)
    session = arena.sessions.get(request.path_params.get("session_id", ""))
    thread = (
        [turn.text for turn in session.turns]
        if session is not None and identity is not None and session.owner == identity.key
        else []
    )
    response = HTMLResponse(
        pages.chat_page(
            catalog=arena.catalog,
            build_id=arena.build_id,
            site_key=SITE_KEY,
            scripts=request.app.state.chunks,
            username=identity.username if identity else None,
            thread=thread,
            rsc_chunk_chars=arena.scenario.rsc_chunk_chars,
        )
    )
    if GUEST_COOKIE not in request.cookies:
        response.set_cookie(GUEST_COOKIE, uuid7(), max_age=COOKIE_SECONDS, samesite="lax")
    return response


async def login_form(request: Request) -> Response:
    return HTMLResponse(pages.login_page())


async def login(request: Request) -> Response:
    """Any non-empty username and password sign in; the split auth cookie names the username."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    username = form.get("username", [""])[0].strip()
    if not username or not form.get("password", [""])[0]:
        return HTMLResponse(pages.login_page("Enter a username and a password."), 400)
    response = RedirectResponse("/", 303)
    for name, value in auth_cookies(username).items():
        response.set_cookie(name, value, max_age=7 * 86400, samesite="lax")
    return response


async def chunk(request: Request) -> Response:
    text = request.app.state.chunks.get(request.url.path)
    if text is None:
        return Response("Not Found", 404, media_type="text/plain")
    return Response(text, headers={"content-type": JS})


async def recaptcha_script(request: Request) -> Response:
    return Response(pages.RECAPTCHA_JS, headers={"content-type": JS})


async def recaptcha_reload(request: Request) -> Response:
    """What the stand-in's `execute()` calls: mints after the scenario's delay, like Google."""
    arena = arena_of(request)
    if request.query_params.get("k") != SITE_KEY:
        return error_answer(400, "Invalid site key")
    action = await _action(request)
    if arena.scenario.recaptcha_mint_seconds:
        await asyncio.sleep(arena.scenario.recaptcha_mint_seconds)
    return json_answer({"token": arena.mint_token(action)})


async def _action(request: Request) -> str:
    try:
        payload = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        payload = None
    action = payload.get("action") if isinstance(payload, dict) else None
    return action if isinstance(action, str) else ""


async def control_token(request: Request) -> Response:
    """`POST /__fake/recaptcha-token {"action"}`: a valid token at once, for tests without a page."""
    action = await _action(request) or evaluations.RECAPTCHA_ACTION
    return json_answer({"token": arena_of(request).mint_token(action)})


async def control_log(request: Request) -> Response:
    return json_answer(arena_of(request).log())


async def control_scenario(request: Request) -> Response:
    """GET: the scenario. POST: replace the given keys (failure counts restart)."""
    arena = arena_of(request)
    if request.method == "POST":
        try:
            update = orjson.loads(await request.body() or b"{}")
            arena.set_scenario(arena.scenario.merged(update))
        except (orjson.JSONDecodeError, TypeError, ValidationError) as exc:
            return error_answer(400, str(exc))
    return json_answer(arena.scenario.model_dump())


async def control_reset(request: Request) -> Response:
    """Forget everything but the process's action ids, and restore the starting scenario."""
    arena = arena_of(request)
    arena.reset()
    return json_answer(arena.scenario.model_dump())


async def control_info(request: Request) -> Response:
    arena = arena_of(request)
    return json_answer(
        {
            "site_key": SITE_KEY,
            "build_id": arena.build_id,
            "actions": {name: action_id for action_id, name in arena.actions.items()},
            "chunks": list(request.app.state.chunks),
        }
    )


def create_app(scenario: Scenario | None = None) -> Starlette:
    arena = Arena(scenario or Scenario())
    stream = evaluations.PREFIX_STREAM
    routes = [
        Route("/", chat_page, methods=["GET"]),
        Route("/", actions.server_action, methods=["POST"]),
        Route("/c/{session_id}", chat_page, methods=["GET"]),
        Route("/c/{session_id}", actions.server_action, methods=["POST"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/_next/static/chunks/{name:path}", chunk, methods=["GET"]),
        Route("/recaptcha/enterprise.js", recaptcha_script, methods=["GET"]),
        Route("/recaptcha/enterprise/reload", recaptcha_reload, methods=["POST"]),
        Route(f"{stream}/create-evaluation", evaluations.create_evaluation, methods=["POST"]),
        Route(
            f"{stream}/post-to-evaluation/{{session_id}}",
            evaluations.post_to_evaluation,
            methods=["POST"],
        ),
        Route(
            f"{stream}/retry-evaluation-session-message/{{session_id}}/messages/{{message_id}}",
            evaluations.retry_message,
            methods=["PUT"],
        ),
        Route(
            f"{stream}/stop/{{session_id}}/messages/{{message_id}}",
            evaluations.stop_message,
            methods=["POST"],
        ),
        Route("/r2/{key:path}", actions.get_object, methods=["GET"]),
        Route("/r2/{key:path}", actions.put_object, methods=["PUT"]),
        Route(challenge.VERIFY_PATH, challenge.verify, methods=["POST"]),
        Route("/__fake/recaptcha-token", control_token, methods=["POST"]),
        Route("/__fake/log", control_log, methods=["GET"]),
        Route("/__fake/scenario", control_scenario, methods=["GET", "POST"]),
        Route("/__fake/reset", control_reset, methods=["POST"]),
        Route("/__fake/info", control_info, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Recorder, arena=arena),
            Middleware(challenge.Interstitial, arena=arena),
        ],
    )
    app.state.arena = arena
    app.state.chunks = _chunks(arena)
    return app
