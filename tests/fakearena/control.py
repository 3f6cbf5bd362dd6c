"""The control API under `/__fake/`: tokens without a browser, the log, scenario, reset, info."""

from __future__ import annotations

import time

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from tests.fakearena import evaluations
from tests.fakearena.recording import peer_of
from tests.fakearena.web import arena_of, error_answer, json_answer, payload_of


async def token(request: Request) -> Response:
    """`POST /__fake/recaptcha-token {"action"}`: a valid token at once, for tests without a page;
    `{"v2": true}`: a v2 token, as passing the verification modal gives."""
    payload = await payload_of(request)
    if payload.get("v2") is True:
        return json_answer({"token": arena_of(request).mint_token("", version=2)})
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        action = evaluations.RECAPTCHA_ACTION
    return json_answer({"token": arena_of(request).mint_token(action)})


async def flags(request: Request) -> Response:
    """GET: the flagged accounts. POST `{"account", "flagged"}`: flag an account, or clear it."""
    arena = arena_of(request)
    now = time.time()
    if request.method == "POST":
        payload = await payload_of(request)
        account, flagged = payload.get("account"), payload.get("flagged")
        if not isinstance(account, str) or not isinstance(flagged, bool):
            return error_answer(400, 'expected {"account": <key>, "flagged": true|false}')
        if flagged:
            rule = arena.scenario.flag
            arena.standing.raise_flag(account, now, rule.lasts_seconds if rule else None)
        else:
            arena.standing.clear(account)
    return json_answer(
        {account: flag.to_json() for account, flag in arena.standing.live(now).items()}
    )


async def log(request: Request) -> Response:
    return json_answer(arena_of(request).log())


async def scenario(request: Request) -> Response:
    """GET: the scenario. POST: replace the given keys (failure counts restart)."""
    arena = arena_of(request)
    if request.method == "POST":
        try:
            update = orjson.loads(await request.body() or b"{}")
            arena.set_scenario(arena.scenario.merged(update))
        except (orjson.JSONDecodeError, TypeError, ValidationError) as exc:
            return error_answer(400, str(exc))
    return json_answer(arena.scenario.model_dump())


async def reset(request: Request) -> Response:
    """Forget everything but the process's action ids, and restore the starting scenario."""
    arena = arena_of(request)
    arena.reset()
    return json_answer(arena.scenario.model_dump())


async def info(request: Request) -> Response:
    arena = arena_of(request)
    return json_answer(
        {
            "site": arena.scenario.site,
            "site_key": arena.site_key,
            "build_id": arena.build_id,
            "actions": {name: action_id for action_id, name in arena.actions().items()},
            "chunks": list(arena.chunks()),
        }
    )


async def peer(request: Request) -> Response:
    """`GET /__fake/peer`: the address this very request came from (through a proxy: the proxy's)."""
    return json_answer(peer_of(request.scope))
