"""reCAPTCHA tokens minted ahead of need, per action.

Minting takes about 170 ms and a token lives about 120 s and serves one request, so a pool
keeps a few fresh ones: a request takes one at no cost and the pool mints its replacement in the
background, shortly after, so that the mint does not run in the page just as the request is
sent. When the pool is empty the request mints its own.

A token is bound to its action (`chat_submit` for new messages; since 2026 `chat_retry` for a
regenerate): `Tokens` keeps a pool per action, and mints on demand for an action with none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

logger = logging.getLogger(__name__)

Mint = Callable[[], Awaitable[str]]

#: How long a replacement waits after a take while the pool still holds a token: the page's
#: main thread then runs the request (and reads its first tokens), not the mint.
SETTLE_S = 0.1
_BACKOFF_FIRST_S = 1.0
_BACKOFF_MAX_S = 30.0


class TokenPool:
    def __init__(
        self,
        mint: Mint,
        *,
        size: int,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mint = mint
        self._size = size
        self._max_age = max_age
        self._clock = clock
        #: (minted at, token), oldest first.
        self._tokens: deque[tuple[float, str]] = deque()
        self._taken = asyncio.Event()
        self._taken_at = float("-inf")
        self._filled = asyncio.Event()
        self._refiller: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        self._drop_stale()
        return len(self._tokens)

    def start(self) -> None:
        self._refiller = asyncio.create_task(self._refill(), name="token-refill")

    async def close(self) -> None:
        if self._refiller is not None:
            self._refiller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refiller

    async def filled(self) -> None:
        """Wait until the pool has been full once (at start-up, before taking requests)."""
        if self._size:
            await self._filled.wait()

    async def take(self) -> str:
        """A fresh token: a pooled one if there is any, else one minted now."""
        self._drop_stale()
        self._taken.set()
        self._taken_at = self._clock()
        if self._tokens:
            return self._tokens.popleft()[1]
        if self._size:
            logger.info("no reCAPTCHA token minted ahead: minting one for this request")
        return await self._mint()

    async def mint(self) -> str:
        """A token minted now, bypassing the pool (after the arena refused one)."""
        return await self._mint()

    def _drop_stale(self) -> None:
        oldest_allowed = self._clock() - self._max_age
        while self._tokens and self._tokens[0][0] < oldest_allowed:
            self._tokens.popleft()

    async def _refill(self) -> None:
        backoff = _BACKOFF_FIRST_S
        while True:
            self._drop_stale()
            if len(self._tokens) < self._size:
                settle = self._taken_at + SETTLE_S - self._clock()
                if settle > 0 and self._tokens:
                    await asyncio.sleep(settle)
                    continue
                started = self._clock()
                try:
                    token = await self._mint()
                except Exception as exc:  # the page may be reloading; requests still mint their own
                    logger.warning(
                        "could not mint a reCAPTCHA token ahead (%s); retrying in %.0fs",
                        exc,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    continue
                backoff = _BACKOFF_FIRST_S
                self._tokens.append((started, token))
                continue
            # Full: sleep until a token is taken or the oldest one goes stale.
            self._filled.set()
            self._taken.clear()
            wait = self._tokens[0][0] + self._max_age - self._clock() if self._tokens else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._taken.wait()


class Tokens:
    """Tokens by action: pooled for each action given a size, minted on demand for the others."""

    def __init__(
        self,
        mint: Callable[[str], Awaitable[str]],
        sizes: Mapping[str, int],
        *,
        max_age: float,
    ) -> None:
        self._mint = mint
        self._pools = {
            action: TokenPool(functools.partial(mint, action), size=size, max_age=max_age)
            for action, size in sizes.items()
        }

    def start(self) -> None:
        for pool in self._pools.values():
            pool.start()

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()

    async def filled(self) -> None:
        """Wait until every pool has been full once."""
        for pool in self._pools.values():
            await pool.filled()

    async def take(self, action: str) -> str:
        """A fresh token for `action`: a pooled one if there is any, else one minted now."""
        pool = self._pools.get(action)
        return await (pool.take() if pool is not None else self._mint(action))

    async def mint(self, action: str) -> str:
        """A token for `action` minted now, bypassing the pool (after the arena refused one)."""
        return await self._mint(action)
