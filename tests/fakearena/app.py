"""The fake LMArena as a Starlette app: pages, sign-in, reCAPTCHA, streams, uploads, control API."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakearena import actions, challenge, control, evaluations, pages, security, site
from tests.fakearena.identity import auth_cookies
from tests.fakearena.recording import Recorder
from tests.fakearena.scenario import Scenario
from tests.fakearena.state import Arena
from tests.fakearena.web import arena_of, error_answer, json_answer, payload_of

JS = "application/javascript; charset=utf-8"


async def login_form(request: Request) -> Response:
    return HTMLResponse(pages.login_page())


async def login(request: Request) -> Response:
    """Any non-empty username and password sign in; the auth cookie names the username."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    username = form.get("username", [""])[0].strip()
    if not username or not form.get("password", [""])[0]:
        return HTMLResponse(pages.login_page("Enter a username and a password."), 400)
    response = RedirectResponse("/", 303)
    split = arena_of(request).scenario.auth_cookie == "split"
    for name, value in auth_cookies(username, split).items():
        response.set_cookie(name, value, max_age=7 * 86400, samesite="lax")
    return response


async def chunk(request: Request) -> Response:
    text = arena_of(request).chunks().get(request.url.path)
    if text is None:
        return Response("Not Found", 404, media_type="text/plain")
    return Response(text, headers={"content-type": JS})


async def recaptcha_script(request: Request) -> Response:
    return Response(pages.RECAPTCHA_JS, headers={"content-type": JS})


async def recaptcha_reload(request: Request) -> Response:
    """What the stand-in's `execute()` calls: mints after the scenario's delay, like Google."""
    arena = arena_of(request)
    if request.query_params.get("k") != arena.site_key:
        return error_answer(400, "Invalid site key")
    action = (await payload_of(request)).get("action")
    if arena.scenario.recaptcha_mint_seconds:
        await asyncio.sleep(arena.scenario.recaptcha_mint_seconds)
    return json_answer({"token": arena.mint_token(action if isinstance(action, str) else "")})


def create_app(scenario: Scenario | None = None) -> Starlette:
    arena = Arena(scenario or Scenario())
    stream = evaluations.PREFIX_STREAM
    routes = [
        Route("/", site.chat_page, methods=["GET"]),
        Route("/", actions.server_action, methods=["POST"]),
        Route("/c/{session_id}", site.chat_page, methods=["GET"]),
        Route("/c/{session_id}", actions.server_action, methods=["POST"]),
        Route("/{page}/direct", site.direct_page, methods=["GET"]),
        Route("/{page}/direct", actions.server_action, methods=["POST"]),
        Route("/nextjs-api/model-catalog", site.model_catalog, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/api/me", site.me, methods=["GET"]),
        Route("/_next/static/chunks/{name:path}", chunk, methods=["GET"]),
        Route("/recaptcha/enterprise.js", recaptcha_script, methods=["GET"]),
        Route("/recaptcha/enterprise/reload", recaptcha_reload, methods=["POST"]),
        Route(security.V2_VERIFY_PATH, security.user_verify, methods=["POST"]),
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
        Route("/__fake/recaptcha-token", control.token, methods=["POST"]),
        Route("/__fake/log", control.log, methods=["GET"]),
        Route("/__fake/scenario", control.scenario, methods=["GET", "POST"]),
        Route("/__fake/reset", control.reset, methods=["POST"]),
        Route("/__fake/info", control.info, methods=["GET"]),
        Route("/__fake/peer", control.peer, methods=["GET"]),
        Route("/__fake/flags", control.flags, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Recorder, arena=arena),
            Middleware(challenge.Interstitial, arena=arena),
        ],
    )
    app.router.default = site.unknown_path
    app.state.arena = arena
    return app
