"""Cloudflare's "Just a moment..." interstitial, in front of every page and endpoint when on."""

from __future__ import annotations

import secrets

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakearena.pages import challenge_page
from tests.fakearena.state import Arena
from tests.fakearena.web import arena_of, json_answer

CLEARANCE_COOKIE = "cf_clearance"
VERIFY_PATH = "/cdn-cgi/challenge-platform/verify"
#: Not the arena's own origin on the real site (Google, R2), or the challenge itself.
EXEMPT = ("/__fake/", "/recaptcha/", "/r2/", "/cdn-cgi/")
CHALLENGE_HEADERS = {
    "cf-mitigated": "challenge",
    "cache-control": "private, max-age=0, no-store, no-cache, must-revalidate",
    "server": "cloudflare",
}


class Interstitial:
    def __init__(self, app: ASGIApp, arena: Arena) -> None:
        self.app = app
        self.arena = arena

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.arena.scenario.cloudflare
            and not scope["path"].startswith(EXEMPT)
            and HTTPConnection(scope).cookies.get(CLEARANCE_COOKIE) not in self.arena.clearances
        ):
            nonce = secrets.token_urlsafe(16)
            self.arena.challenge_nonces.add(nonce)
            page = HTMLResponse(challenge_page(nonce), 403, CHALLENGE_HEADERS)
            await page(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def verify(request: Request) -> Response:
    """What the checkbox posts after a trusted click: sets `cf_clearance` for this browser."""
    arena = arena_of(request)
    try:
        payload = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        payload = None
    nonce = payload.get("nonce") if isinstance(payload, dict) else None
    if not isinstance(nonce, str) or nonce not in arena.challenge_nonces:
        return json_answer({"success": False}, 403)
    arena.challenge_nonces.discard(nonce)
    clearance = secrets.token_urlsafe(32)
    arena.clearances.add(clearance)
    response = json_answer({"success": True})
    response.set_cookie(CLEARANCE_COOKIE, clearance, max_age=1800, path="/", samesite="lax")
    return response
