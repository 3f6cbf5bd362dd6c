"""Who is calling: the client's key, checked against the keys in Redis on every request.

Clients send it as `Authorization: Bearer <key>` (OpenAI) or `x-api-key: <key>` (Anthropic).
With no key made yet, a gateway bound to loopback is open to anyone who can reach it; bound
anywhere else it is never open, and it will not start without `LMB_ADMIN_KEY` (the way keys get
made there). Nothing is cached, so a revoked key is refused by every gateway at once.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import Headers

from gateway.access.caller import Caller
from gateway.http import errors
from gateway.http.services import Services, services
from shared.client_keys import ApiKey, now_utc
from shared.settings import Settings

log = logging.getLogger(__name__)

_SCHEME = "bearer "


def given_key(headers: Headers) -> str | None:
    """The key a client sent, from either header; None if it sent none."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith(_SCHEME):
        return authorization[len(_SCHEME) :].strip()
    return headers.get("x-api-key", "").strip() or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def exposure_problem(settings: Settings) -> str | None:
    """Why the gateway must not start as configured, if it must not."""
    if is_loopback(settings.host) or settings.admin_key is not None:
        return None
    return (
        f"The gateway would listen on {settings.host}, beyond this machine, without an admin key. "
        "Set LMB_ADMIN_KEY (it protects the admin surfaces and /metrics; client keys are then made "
        "with `lmarena-bridge keys create` or the admin API), or bind to 127.0.0.1."
    )


async def authenticate(request: Request, svc: Services) -> ApiKey | None:
    """The caller's key record; None on an open bridge; else a 401."""
    key = given_key(request.headers)
    record, keys_made = await svc.keys.lookup(key)
    if record is None:
        if is_loopback(svc.settings.host) and not keys_made:
            return None
        if key is None:
            raise _unauthorized(
                "You didn't provide an API key. Send it in the Authorization header "
                "(Authorization: Bearer YOUR_KEY) or the x-api-key header."
            )
        raise _unauthorized("Incorrect API key provided.")
    status = record.status(now_utc())
    if status != "active":
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
