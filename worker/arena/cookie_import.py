"""Cookies a person exported from their browser, taken in by the worker of their account.

They come through Redis (`shared.fleet.cookie_handover`), sealed with the admin key. The worker takes
them once its page is the arena's (serving, resting, or waiting for a person): it puts them in
its browser over CDP in place of the sign-in it had, and asks the arena who it is now
(`GET /api/me`, as the doctor does). When the arena does not take them, the sign-in the browser
had is put back. Values of cookies are never logged nor answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.arena.account import is_auth_cookie
from shared.fleet.cookie_handover import (
    Cookies,
    Import,
    Outcome,
    SealError,
    answer,
    next_import,
    unseal,
)
from shared.fleet.worker_status import WorkerState
from worker.arena.session import ArenaSession
from worker.browser.cdp import CDPError
from worker.browser.page import PageError
from worker.state import StateMachine

logger = logging.getLogger(__name__)

S = WorkerState

#: States whose page is the arena's, where cookies can be put in and checked at once.
TAKES_COOKIES = frozenset({S.READY, S.BUSY, S.COOLING, S.FLAGGED, S.LOGIN_REQUIRED, S.CHALLENGE})
#: How long one wait for an import lasts before the state is looked at again.
WAIT_S = 30.0
_RETRY_S = 1.0
#: The fields of a cookie that `Network.setCookies` takes back.
_PARAM_FIELDS = ("name", "value", "domain", "path", "secure", "httpOnly", "sameSite")

#: Called with the browser's session and the account it is signed in to now.
SignedIn = Callable[[ArenaSession, str | None], None]


class CookieInbox:
    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        admin_key: str,
        machine: StateMachine,
        session: Callable[[], ArenaSession | None],
        signed_in: SignedIn,
    ) -> None:
        self._redis = redis
        self._worker_id = worker_id
        self._admin_key = admin_key
        self._machine = machine
        self._session = session
        self._signed_in = signed_in
        self._ready = asyncio.Event()
        machine.on_change(self._look)
        self._look()

    def _look(self) -> None:
        if self._machine.state in TAKES_COOKIES:
            self._ready.set()
        else:
            self._ready.clear()

    async def run(self) -> None:
        """Take imports as they come, each while the page can take it; runs until cancelled."""
        while True:
            await self._ready.wait()
            try:
                taken = await next_import(self._redis, self._worker_id, WAIT_S)
            except (RedisError, OSError) as exc:
                logger.warning("could not look for imported cookies (%s); looking again", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            if taken is None:
                continue
            outcome = await self._take(taken)
            logger.info("worker %s: imported cookies: %s", self._worker_id, outcome.detail)
            if taken.id:
                with contextlib.suppress(RedisError, OSError):
                    await answer(self._redis, taken.id, outcome)

    async def _take(self, taken: Import) -> Outcome:
        try:
            cookies = unseal(self._admin_key, self._worker_id, taken.sealed)
        except SealError as exc:
            return Outcome(False, None, str(exc))
        await self._ready.wait()  # the state may have changed while it was unsealed
        session = self._session()
        if session is None:
            return Outcome(False, None, "the browser is restarting: import them again")
        try:
            replaced = await swap(session, cookies)
            signed = await session.sign_in()
            if not signed.signed_in:
                await swap(session, replaced)
                return Outcome(
                    False,
                    None,
                    f"the arena does not take them ({signed.via} says signed out): export them"
                    " again from a browser signed in to the arena; the worker keeps the sign-in"
                    " it had",
                )
        except (ConnectionError, CDPError, PageError) as exc:
            return Outcome(False, None, f"the browser could not take them ({exc})")
        self._signed_in(session, signed.account)
        who = signed.account or "an account without a name"
        return Outcome(True, signed.account, f"signed in as {who} ({signed.via})")


async def swap(session: ArenaSession, cookies: Cookies) -> Cookies:
    """Put `cookies` in the browser in place of its sign-in (its auth cookies, whole or in
    parts); the auth cookies they replaced, to put back the same way. Cookies the browser
    refuses leave the sign-in it had."""
    replaced = await _take_out_sign_in(session)
    try:
        await session.cdp.send("Network.setCookies", {"cookies": cookies})
    except CDPError:
        await _take_out_sign_in(session)  # what of them the browser took before it refused
        await session.cdp.send("Network.setCookies", {"cookies": replaced})
        raise
    return replaced


async def _take_out_sign_in(session: ArenaSession) -> Cookies:
    """Delete the browser's auth cookies for the arena; them, as `Network.setCookies` takes them."""
    reply = await session.cdp.send("Network.getCookies", {"urls": [session.url]})
    taken = [c for c in reply.get("cookies", []) if is_auth_cookie(c["name"])]
    for cookie in taken:
        await session.cdp.send(
            "Network.deleteCookies",
            {"name": cookie["name"], "domain": cookie["domain"], "path": cookie["path"]},
        )
    return [_param(cookie) for cookie in taken]


def _param(cookie: dict[str, Any]) -> dict[str, Any]:
    """A cookie as `Network.getCookies` gives it, as `Network.setCookies` takes it."""
    param = {field: cookie[field] for field in _PARAM_FIELDS if field in cookie}
    if not cookie.get("session") and cookie.get("expires", -1) > 0:
        param["expires"] = cookie["expires"]
    return param
