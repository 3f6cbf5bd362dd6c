"""Who is calling: the client's key, checked against the keys in Redis on every request.

Clients send it as `Authorization: Bearer <key>` (OpenAI) or `x-api-key: <key>` (Anthropic).
A bridge serves without keys only when the operator says so (`LMB_OPEN=true`), only bound to
loopback, and only while no key is made. Bound anywhere else it will not start without a strong
`LMB_ADMIN_KEY` (the way keys get made there). Nothing is cached, so a revoked key is refused by
every gateway at once. Failed keys are throttled per address and overall (`auth_throttle`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import Headers

from gateway.access.addresses import is_loopback
from gateway.access.caller import Caller
from gateway.http import errors
from gateway.http.services import Services, services
from shared.credentials.admin_key import problem as admin_key_problem
from shared.credentials.client_keys import ApiKey, now_utc
from shared.settings import Settings

log = logging.getLogger(__name__)

_SCHEME = "bearer "


def given_key(headers: Headers) -> str | None:
    """The key a client sent, from either header; None if it sent none."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith(_SCHEME):
        return authorization[len(_SCHEME) :].strip()
    return headers.get("x-api-key", "").strip() or None


def exposure_problem(settings: Settings) -> str | None:
    """Why the gateway must not start as configured, if it must not."""
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    if weak := admin_key_problem(admin_key):
        return weak
    if is_loopback(settings.host):
        return None
    if settings.open:
        return (
            f"LMB_OPEN=true serves clients without a key, so only on loopback; the gateway would "
            f"listen on {settings.host}. Make client keys (`lmarena-bridge keys create NAME`) and "
            "unset LMB_OPEN, or bind to 127.0.0.1."
        )
    if admin_key is None:
        return (
            f"The gateway would listen on {settings.host}, beyond this machine, without an admin "
            "key. Set LMB_ADMIN_KEY (it protects the admin surfaces and /metrics; client keys are "
            "then made with `lmarena-bridge keys create` or the admin API), or bind to 127.0.0.1."
        )
    return None


async def authenticate(request: Request, svc: Services) -> ApiKey | None:
    """The caller's key record; None on an open bridge; else a 401 (or 429 when throttled)."""
    key = given_key(request.headers)
    if key is not None:
        await svc.throttle.check(request)
    record, keys_made = await svc.keys.lookup(key)
    if record is None:
        if svc.settings.open and is_loopback(svc.settings.host) and not keys_made:
            return None
        if key is not None:
            await svc.throttle.failed(request)
            raise _unauthorized("Incorrect API key provided.")
        if not keys_made:
            raise _unauthorized(
                "This bridge has no client keys yet. Make one with `lmarena-bridge keys create "
                "NAME` (or the admin API) and send it as a bearer token; or set LMB_OPEN=true to "
                "serve without keys on loopback."
            )
        raise _unauthorized(
            "You didn't provide an API key. Send it in the Authorization header "
            "(Authorization: Bearer YOUR_KEY) or the x-api-key header."
        )
    status = record.status(now_utc())
    if status != "active":
        await svc.throttle.failed(request)
        log.info("refused key %s (%s): %s", record.id, record.shown, status)
        if record.revoked_at is not None:
            raise _unauthorized(f"This API key was revoked at {record.revoked_at.isoformat()}.")
        assert record.expires_at is not None
        raise _unauthorized(f"This API key expired at {record.expires_at.isoformat()}.")
    return record


async def require_key(request: Request) -> AsyncIterator[Caller]:
    """Route dependency: the request's `Caller`, ended once the response has been sent.

    A dependency with `yield` is left after the whole response (the whole stream, if streamed),
    or when the client goes away: the end of what a request uses.
    """
    svc = await services(request)
    caller = Caller(await authenticate(request, svc), svc)
    request.state.caller = caller
    try:
        yield caller
    except BaseException as exc:
        await caller.end(exc)
        raise
    await caller.end(None)


def _unauthorized(message: str) -> errors.ApiError:
    return errors.ApiError(401, message, code="invalid_api_key")
