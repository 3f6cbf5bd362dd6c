"""Who may use the admin surfaces: whoever holds `LMB_ADMIN_KEY`.

API clients send it as `Authorization: Bearer <key>`. With no admin key configured, the admin
surfaces are closed (never open by default).
"""

from __future__ import annotations

import hmac

from fastapi import Request

from gateway import errors

_SCHEME = "bearer "


def admin_key_matches(given: str, request: Request) -> bool:
    """Constant-time comparison with the configured admin key; False when none is configured."""
    configured = request.app.state.settings.admin_key
    if configured is None:
        return False
    return hmac.compare_digest(given.encode(), configured.get_secret_value().encode())


async def require_admin(request: Request) -> None:
    """Route dependency: the admin key as a bearer token, or a 401/403."""
    if request.app.state.settings.admin_key is None:
        raise errors.ApiError(
            403, "The admin surfaces are disabled: set LMB_ADMIN_KEY to enable them.",
            code="admin_disabled",
        )
    authorization = request.headers.get("authorization", "")
    if not authorization.lower().startswith(_SCHEME) or not admin_key_matches(
        authorization[len(_SCHEME) :].strip(), request
    ):
        raise errors.ApiError(
            401, "The admin API needs the admin key: Authorization: Bearer <LMB_ADMIN_KEY>.",
            code="invalid_admin_key",
        )
