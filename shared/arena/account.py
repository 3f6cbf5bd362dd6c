"""Who the browser is signed in as, read off the arena's auth cookie or its `/api/me` answer.

The session is a Supabase one: `arena-auth-prod-v1` = `base64-<base64url JSON>`, since 2026
often split into `arena-auth-prod-v1.0`, `.1`, … (joined in order); one 2026 report has it back
to one cookie, so both forms are read. Only a label is read; the tokens inside are never logged
or published.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from shared.arena.site import AUTH_COOKIE, AUTH_COOKIE_PREFIX


def session_cookie(cookies: Mapping[str, str]) -> str | None:
    """The auth cookie's value, joined from its parts if it is split."""
    if (whole := cookies.get(AUTH_COOKIE)) is not None:
        return whole
    parts: list[str] = []
    while (part := cookies.get(f"{AUTH_COOKIE}.{len(parts)}")) is not None:
        parts.append(part)
    return "".join(parts) or None


def is_auth_cookie(name: str) -> bool:
    """Whether `name` is the auth cookie or one of its parts (`<name>.0`, `.1`, …)."""
    part = name.removeprefix(f"{AUTH_COOKIE}.")
    return name == AUTH_COOKIE or (part != name and part.isdigit())


def account_label(cookies: Mapping[str, str]) -> str | None:
    """A name for the signed-in account (username, else email, else user id); None for a guest."""
    value = session_cookie(cookies)
    if value is None or not value.startswith(AUTH_COOKIE_PREFIX):
        return None
    encoded = value[len(AUTH_COOKIE_PREFIX) :]
    try:
        session = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        user = session["user"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    return user_label(user)


def user_label(user: Any) -> str | None:
    """A name for a Supabase user object (the cookie's `user`, or what `/api/me` answers)."""
    if not isinstance(user, dict):
        return None
    metadata = user.get("user_metadata")
    username = metadata.get("username") if isinstance(metadata, dict) else None
    for label in (username, user.get("email"), user.get("id")):
        if isinstance(label, str) and label:
            return label
    return None
