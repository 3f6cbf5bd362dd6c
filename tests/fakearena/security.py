"""The site's security check: which reCAPTCHA tokens pass a stream call, flagging accounts, and
the v2 checkbox a person ticks in the page's "Security Verification" modal to clear a flag."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.fakearena.pages import V2_SITE_KEY
from tests.fakearena.state import Arena
from tests.fakearena.web import arena_of, error_answer, json_answer, payload_of

V2_VERIFY_PATH = "/recaptcha/api2/userverify"


def recaptcha_passes(
    arena: Arena, account: str | None, body: Mapping[str, Any], action: str
) -> bool:
    """Spend the body's tokens and say whether the call may go on.

    A flagged account passes only with a valid `recaptchaV2Token`, which clears its flag; any
    other call of it is refused and extends the flag. Anyone else passes with a valid v2 token
    or a valid v3 token for `action`, unless the call is the one that gets the account flagged.
    """
    v2 = "recaptchaV2Token" in body and arena.take_token(body["recaptchaV2Token"], "", version=2)
    v3 = arena.take_token(body.get("recaptchaV3Token"), action)
    if account is None:
        return v2 or v3
    now = time.time()
    rule = arena.scenario.flag
    lasts = rule.lasts_seconds if rule else None
    flag = arena.standing.flag_of(account, now)
    if flag is not None:
        if not v2:
            arena.standing.refuse(flag, now, lasts)
            return False
        arena.standing.clear(account)
        return True
    if not (v2 or v3):
        return False
    if rule is not None and arena.standing.trips(account, now, rule):
        arena.standing.raise_flag(account, now, lasts)
        return False
    return True


def security_check(arena: Arena, account: str | None) -> str | None:
    """A nonce for the modal of a flagged account's page (None: not flagged, no modal)."""
    if account is None or arena.standing.flag_of(account, time.time()) is None:
        return None
    nonce = secrets.token_urlsafe(16)
    arena.v2_nonces.add(nonce)
    return nonce


async def user_verify(request: Request) -> Response:
    """What the modal's checkbox posts after a trusted click: a v2 token for the next call."""
    arena = arena_of(request)
    if request.query_params.get("k") != V2_SITE_KEY:
        return error_answer(400, "Invalid site key")
    nonce = (await payload_of(request)).get("nonce")
    if not isinstance(nonce, str) or nonce not in arena.v2_nonces:
        return json_answer({"success": False}, 403)
    arena.v2_nonces.discard(nonce)
    return json_answer({"success": True, "token": arena.mint_token("", version=2)})
