"""Deleting the arena chats a worker's account opened, once the bridge has forgotten them
(`LMB_DELETE_CHATS`).

The bridge remembers a conversation's arena thread for `LMB_CONVERSATION_TTL_SECONDS` after its
last turn (`shared.threads`); until then a client may continue it. So each session the account
opens or continues goes into the worker's sorted set (`shared.storage.redis_keys.worker_chats`) under the
time the bridge may have forgotten it. When that time comes, the session's head
(`shared.storage.redis_keys.conversation_head`) says whether it is still remembered: every remembered
turn writes it and every request about to continue the thread claims it, each with the full
TTL. While it exists, or while one of this worker's answers is running in the session (one
that outlasts the TTL outlives the claim), the session waits; once neither holds, nothing can
continue the thread (a continuation must claim the head first), and the chat is deleted through
the page's own server action. Sessions never remembered (battles, images asked for n at a time)
are deleted when their time comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.arena.site import DELETE_CHAT
from shared.storage import redis_keys
from worker.arena.actions import ActionFailed, ServerActions
from worker.browser.cdp import CDPError
from worker.browser.page import ArenaPage

logger = logging.getLogger(__name__)

#: Sessions looked at in one go.
BATCH = 20
#: Longest sleep between looks (a restarted worker finds the sessions it had tracked).
IDLE_S = 60.0
#: How soon a look is made again while the worker cannot use its page.
NOT_SERVING_S = 5.0
#: A chat that could not be deleted is tried again this much later.
RETRY_S = 600.0


class ChatSweeper:
    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        *,
        ttl_s: float,
        page: Callable[[], ArenaPage],
        serving: Callable[[], bool],
    ) -> None:
        self._redis = redis
        self._key = redis_keys.worker_chats(worker_id)
        self._ttl_s = ttl_s
        self._page = page
        self._serving = serving
        self._actions = ServerActions()
        self._added = asyncio.Event()
        #: Sessions an answer of this worker is running in now.
        self._in_use: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def using(self, session_id: str) -> AsyncIterator[None]:
        """An answer runs in `session_id`; once it ends, the session may be forgotten a TTL
        later (when the bridge's memory of it, written at the answer's end, runs out)."""
        self._in_use[session_id] += 1
        try:
            yield
        finally:
            self._in_use[session_id] -= 1
            if not self._in_use[session_id]:
                del self._in_use[session_id]
            await self._track(session_id)

    async def _track(self, session_id: str) -> None:
        try:
            await self._schedule(session_id, time.time() + self._ttl_s)
        except (RedisError, OSError) as exc:  # the chat is then kept: never deleted too early
            logger.warning("could not track arena chat %s for deletion: %s", session_id, exc)
        self._added.set()

    async def run(self) -> None:
        """Delete forgotten chats as their time comes, until cancelled."""
        while True:
            self._added.clear()
            try:
                wait = await self._sweep()
            except (RedisError, OSError) as exc:
                logger.warning("could not look for arena chats to delete: %s", exc)
                wait = NOT_SERVING_S
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._added.wait()

    async def _sweep(self) -> float:
        """Settle the sessions that are due; how long until the next one is."""
        now = time.time()
        due = await self._redis.zrangebyscore(self._key, "-inf", now, start=0, num=BATCH)
        if due and not self._serving():
            return NOT_SERVING_S
        for member in due:
            await self._settle(member.decode(), now)
        if len(due) == BATCH:
            return 0.0
        first = await self._redis.zrange(self._key, 0, 0, withscores=True)
        return min(IDLE_S, max(0.0, first[0][1] - time.time())) if first else IDLE_S

    async def _settle(self, session_id: str, now: float) -> None:
        """Delete the chat if the bridge forgot it; else look again when it may have."""
        if session_id in self._in_use:  # `using` schedules it again when the answer ends
            await self._schedule(session_id, now + self._ttl_s)
            return
        left_ms = await self._redis.pttl(redis_keys.conversation_head(session_id))
        if left_ms != -2:  # still remembered (-1: without expiry, which nothing sets)
            await self._schedule(session_id, now + (left_ms / 1000 if left_ms > 0 else self._ttl_s))
            return
        try:
            result = await self._actions.run(self._page(), DELETE_CHAT, [session_id])
        except (ActionFailed, ConnectionError, CDPError) as exc:
            result = str(exc)
        if not _deleted(result):
            logger.warning(
                "could not delete arena chat %s (%s); trying again in %.0f s",
                session_id,
                result,
                RETRY_S,
            )
            await self._schedule(session_id, now + RETRY_S)
            return
        await self._redis.zrem(self._key, session_id)
        logger.info("deleted arena chat %s: the bridge no longer remembers it", session_id)

    async def _schedule(self, session_id: str, at: float) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._key, {session_id: at})
            # A worker that never comes back leaves no set behind for long.
            pipe.expire(self._key, int(max(self._ttl_s, RETRY_S) + IDLE_S + 3600))
            await pipe.execute()


def _deleted(result: Any) -> bool:
    """The action deleted the chat, or it was gone already."""
    if not isinstance(result, dict):
        return False
    error = result.get("error")
    return result.get("success") is True or (isinstance(error, str) and "not found" in error)
