"""Client keys, required when any key is configured.

OpenAI clients send `Authorization: Bearer <key>`; Anthropic clients send `x-api-key: <key>`.
Either is accepted on every route.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import Request
from pydantic import SecretStr

from gateway import errors

_SCHEME = "bearer "


def check_key(
    authorization: str | None, keys: Sequence[SecretStr], *, x_api_key: str | None = None
) -> None:
    """Accept the request or raise a 401; no keys configured means the API is open."""
    if not keys:
        return
    if authorization and authorization.lower().startswith(_SCHEME):
        given = authorization[len(_SCHEME) :].strip().encode()
    elif x_api_key is not None:
        given = x_api_key.strip().encode()
    else:
        raise errors.ApiError(
            401,
            "You didn't provide an API key. Send it in the Authorization header "
            "(Authorization: Bearer YOUR_KEY) or in the x-api-key header.",
            code="invalid_api_key",
        )
    # Compare against every key, so that timing tells nothing about which one came close.
    matches = [hmac.compare_digest(given, key.get_secret_value().encode()) for key in keys]
    if not any(matches):
        raise errors.ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


async def require_key(request: Request) -> None:
    """Route dependency for `check_key` with the app's configured keys."""
    check_key(
        request.headers.get("authorization"),
        request.app.state.settings.api_keys,
        x_api_key=request.headers.get("x-api-key"),
    )
