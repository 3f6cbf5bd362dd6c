"""Who may use the admin surfaces: whoever holds `LMB_ADMIN_KEY`.

API clients send it as `Authorization: Bearer <key>`. People sign in with it on `/admin/login`
and get a session cookie: signed with itsdangerous under the admin key (so every gateway accepts
it, and changing the key signs everyone out), HttpOnly, SameSite=Strict, limited to `/admin`,
expiring after `LMB_ADMIN_SESSION_HOURS`; signing out revokes it in Redis. A request made with
the cookie that changes anything must carry the session's CSRF token (form field `csrf_token` or
header `X-CSRF-Token`); the login form has its own, tied to a short-lived cookie.

With no admin key configured, the admin surfaces are closed (never open by default).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from gateway.http import errors
from shared.storage import redis_keys

SESSION_COOKIE = "lmb_admin"
LOGIN_COOKIE = "lmb_admin_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: Where the session cookie is sent: the admin pages, their API and the screens' websockets.
COOKIE_PATH = "/admin"
LOGIN_PATH = "/admin/login"
#: A login form must be sent back within this long.
LOGIN_FORM_S = 3600
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SCHEME = "bearer "
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class AdminSession:
    """An admin, signed in with the cookie (`id` set) or by sending the key itself (`id` None)."""

    id: str | None = None
    expires_at: float | None = None
    csrf_token: str | None = None


# --- pure: signing, tokens, redirects ---


def _serializer(admin_key: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        admin_key,
        salt=f"lmarena-bridge admin {purpose}",
        signer_kwargs={"digest_method": hashlib.sha256},
    )


def csrf_token(admin_key: str, session_id: str) -> str:
    """The CSRF token of one session: derived, so that no gateway has to store it."""
    return hmac.new(admin_key.encode(), f"csrf\0{session_id}".encode(), hashlib.sha256).hexdigest()


def new_session(admin_key: str, lifetime_s: float, now: float) -> tuple[str, AdminSession]:
    """A fresh session and its cookie value."""
    session_id = secrets.token_urlsafe(24)
    expires_at = now + lifetime_s
    value = _serializer(admin_key, "session").dumps({"sid": session_id, "exp": expires_at})
    return value, AdminSession(session_id, expires_at, csrf_token(admin_key, session_id))


def read_session(admin_key: str, value: str, now: float) -> AdminSession | None:
    """The session a cookie value names, if its signature holds and it has not expired."""
    try:
        data = _serializer(admin_key, "session").loads(value)
        session_id, expires_at = str(data["sid"]), float(data["exp"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    if expires_at <= now:
        return None
    return AdminSession(session_id, expires_at, csrf_token(admin_key, session_id))


def new_login_token(admin_key: str) -> tuple[str, str]:
    """A token for one login form: (cookie value, form field value)."""
    nonce = secrets.token_urlsafe(24)
    return _serializer(admin_key, "login").dumps(nonce), nonce


def login_token_matches(admin_key: str, cookie: str | None, field: str | None) -> bool:
    if not cookie or not field:
        return False
    try:
        nonce = _serializer(admin_key, "login").loads(cookie, max_age=LOGIN_FORM_S)
    except BadSignature:
        return False
    return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), field.encode())


def key_matches(given: str, configured: str) -> bool:
    return hmac.compare_digest(given.encode(), configured.encode())


def safe_next(target: str | None) -> str:
    """Where to go after signing in: an admin page of this site, never elsewhere."""
    if (
        target
        and "\\" not in target
        and (target == COOKIE_PATH or target.startswith((f"{COOKIE_PATH}/", f"{COOKIE_PATH}?")))
    ):
        return target
    return COOKIE_PATH


# --- requests ---


def _admin_key(conn: HTTPConnection) -> str | None:
    configured = conn.app.state.settings.admin_key
    return None if configured is None else configured.get_secret_value()


async def signed_in_admin(conn: HTTPConnection) -> AdminSession | None:
    """The admin behind a request or websocket (bearer key or session cookie), if any.

    A bearer key is throttled as sign-ins are: an address that failed too often gets a 429.
    """
    admin_key = _admin_key(conn)
    if admin_key is None:
        return None
    authorization = conn.headers.get("authorization", "")
    if authorization.lower().startswith(_SCHEME):
        throttle = conn.app.state.services.throttle
        await throttle.check(conn)
        if key_matches(authorization[len(_SCHEME) :].strip(), admin_key):
            return AdminSession()
        await throttle.failed(conn)
        return None
    value = conn.cookies.get(SESSION_COOKIE)
    session = read_session(admin_key, value, time.time()) if value else None
    if session is None or session.id is None:
        return None
    if await conn.app.state.services.redis.exists(redis_keys.admin_revoked(session.id)):
        return None
    return session


def _disabled() -> errors.ApiError:
    return errors.ApiError(
        403,
        "The admin surfaces are disabled: set LMB_ADMIN_KEY to enable them.",
        code="admin_disabled",
    )


async def require_admin(request: Request) -> AdminSession:
    """Route dependency: the admin key as a bearer token or a signed-in session, or a 401/403.

    A session (cookie) request that changes anything must also carry the session's CSRF token.
    """
    if _admin_key(request) is None:
        raise _disabled()
    session = await signed_in_admin(request)
    if session is None:
        raise errors.ApiError(
            401,
            "The admin API needs the admin key (Authorization: Bearer <LMB_ADMIN_KEY>) or a signed-in"
            f" session ({LOGIN_PATH}).",
            code="invalid_admin_key",
        )
    await check_csrf(request, session)
    return session


async def check_csrf(request: Request, session: AdminSession) -> None:
    """403 unless a cookie session's unsafe request carries its CSRF token (bearer needs none)."""
    if session.csrf_token is None or request.method in _SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(_FORMS):
        await request.body()  # cached, so that the route can still read the body after us
        field = (await request.form()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    if given is None or not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise errors.ApiError(
            403, "Missing or wrong CSRF token: reload the page and try again.", code="csrf"
        )


def admin_enabled(conn: HTTPConnection) -> bool:
    return _admin_key(conn) is not None


def key_is_admin(conn: HTTPConnection, given: str) -> bool:
    """Constant-time comparison with the configured admin key; False when none is configured."""
    admin_key = _admin_key(conn)
    return admin_key is not None and key_matches(given, admin_key)


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        # Behind TLS (directly, or a proxy uvicorn trusts), the cookie never travels in clear.
        secure=request.url.scheme == "https",
    )


def start_session(request: Request, response: Response) -> AdminSession:
    settings = request.app.state.settings
    admin_key = _admin_key(request)
    assert admin_key is not None
    lifetime_s = settings.admin_session_hours * 3600
    value, session = new_session(admin_key, lifetime_s, time.time())
    set_cookie(request, response, SESSION_COOKIE, value, max_age=int(lifetime_s), path=COOKIE_PATH)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return session


async def end_session(request: Request, response: Response, session: AdminSession) -> None:
    """Sign out: the cookie is cleared here and refused everywhere until it would have expired."""
    if session.id is not None and session.expires_at is not None:
        remaining = max(1, int(session.expires_at - time.time()) + 1)
        await request.app.state.services.redis.set(
            redis_keys.admin_revoked(session.id), b"1", ex=remaining
        )
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def new_login_form(request: Request) -> tuple[str, str]:
    """A token for one login form: (form field value, cookie value); see `set_login_cookie`."""
    admin_key = _admin_key(request)
    assert admin_key is not None
    cookie, field = new_login_token(admin_key)
    return field, cookie


def set_login_cookie(request: Request, response: Response, cookie: str) -> None:
    set_cookie(request, response, LOGIN_COOKIE, cookie, max_age=LOGIN_FORM_S, path=LOGIN_PATH)


def login_form_valid(request: Request, field: str | None) -> bool:
    admin_key = _admin_key(request)
    return admin_key is not None and login_token_matches(
        admin_key, request.cookies.get(LOGIN_COOKIE), field
    )
