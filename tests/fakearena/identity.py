"""Who is calling: a signed-in account (Supabase-style auth cookie, whole or split) or a guest."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

AUTH_COOKIE = "arena-auth-prod-v1"
GUEST_COOKIE = "provisional_user_id"
_PREFIX = "base64-"
_USERS = uuid.UUID("8d6f6a64-6b39-4c55-9a3f-1f0d3c2a7e10")  # namespace for account ids


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    username: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.username is not None

    @property
    def key(self) -> str:
        """Stable name for ownership checks and logs: `user:<name>` or `guest:<id>`."""
        return f"user:{self.username}" if self.signed_in else f"guest:{self.user_id}"


def account_id(username: str) -> str:
    return str(uuid.uuid5(_USERS, username))


def user_of(username: str) -> dict[str, object]:
    """The user object of a session (in the auth cookie, and what `/api/me` answers)."""
    return {"id": account_id(username), "user_metadata": {"username": username}}


def auth_cookies(username: str, split: bool = True) -> dict[str, str]:
    """The session cookie a sign-in sets: `base64-<session>`, whole or cut into `.0` and `.1`."""
    session = {
        "access_token": secrets.token_urlsafe(24),
        "token_type": "bearer",
        "expires_at": int(time.time()) + 7 * 86400,
        "user": user_of(username),
    }
    value = _PREFIX + base64.urlsafe_b64encode(orjson.dumps(session)).decode().rstrip("=")
    if not split:
        return {AUTH_COOKIE: value}
    half = len(value) // 2
    return {f"{AUTH_COOKIE}.0": value[:half], f"{AUTH_COOKIE}.1": value[half:]}


def username_from(cookies: Mapping[str, str]) -> str | None:
    """The account in the auth cookie (whole or split into `.0`, `.1`, …), if it is valid."""
    value = cookies.get(AUTH_COOKIE)
    if value is None:
        parts: list[str] = []
        while (part := cookies.get(f"{AUTH_COOKIE}.{len(parts)}")) is not None:
            parts.append(part)
        value = "".join(parts)
    if not value.startswith(_PREFIX):
        return None
    encoded = value[len(_PREFIX) :]
    try:
        session = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        username = session["user"]["user_metadata"]["username"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    return username if isinstance(username, str) and username else None


def resolve(cookies: Mapping[str, str]) -> Identity | None:
    """The signed-in user if the auth cookie is valid, else the guest, else nobody."""
    if username := username_from(cookies):
        return Identity(user_id=account_id(username), username=username)
    if guest := cookies.get(GUEST_COOKIE):
        return Identity(user_id=guest)
    return None
