"""Who the browser is signed in as, read off the arena's auth cookie.

The session is a Supabase one: `arena-auth-prod-v1` = `base64-<base64url JSON>`, since 2026
often split into `arena-auth-prod-v1.0`, `.1`, … (joined in order). Only a label is read; the
tokens inside are never logged or published.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import orjson

AUTH_COOKIE = "arena-auth-prod-v1"
_PREFIX = "base64-"


def session_cookie(cookies: Mapping[str, str]) -> str | None:
    """The auth cookie's value, joined from its parts if it is split."""
    if (whole := cookies.get(AUTH_COOKIE)) is not None:
        return whole
    parts: list[str] = []
    while (part := cookies.get(f"{AUTH_COOKIE}.{len(parts)}")) is not None:
        parts.append(part)
    return "".join(parts) or None


def account_label(cookies: Mapping[str, str]) -> str | None:
    """A name for the signed-in account (username, else email, else user id); None for a guest."""
    value = session_cookie(cookies)
    if value is None or not value.startswith(_PREFIX):
        return None
    encoded = value[len(_PREFIX) :]
    try:
        session = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        user = session["user"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    if not isinstance(user, dict):
        return None
    metadata = user.get("user_metadata")
    username = metadata.get("username") if isinstance(metadata, dict) else None
    for label in (username, user.get("email"), user.get("id")):
        if isinstance(label, str) and label:
            return label
    return None
