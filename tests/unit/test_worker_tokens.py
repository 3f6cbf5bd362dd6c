from __future__ import annotations

import asyncio
import itertools

import pytest

from worker.arena.token_pool import SETTLE_S, TokenPool


class Minter:
    """Counts mints and lets a test decide when each one completes."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.count = itertools.count(1)
        self.minted: list[str] = []

    async def __call__(self) -> str:
        await asyncio.sleep(self.delay)
        token = f"t{next(self.count)}"
        self.minted.append(token)
        return token


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_pool_fills_up_and_takes_come_from_it() -> None:
    clock = Clock()
    mint = Minter()
    pool = TokenPool(mint, size=2, max_age=100, clock=clock)
    pool.start()
    try:
        await asyncio.wait_for(pool.filled(), 1)
        assert len(pool) == 2
        assert await pool.take() == "t1"  # oldest first
        await settle()
        # A token is left: the replacement waits while the request that took one is sent.
        assert len(pool) == 1 and mint.minted == ["t1", "t2"]
        clock.now += SETTLE_S
        await asyncio.sleep(SETTLE_S + 0.05)  # the refill's wait is real time
        assert len(pool) == 2 and mint.minted == ["t1", "t2", "t3"]
    finally:
        await pool.close()


async def test_an_empty_pool_mints_on_the_request_path() -> None:
    mint = Minter()
    pool = TokenPool(mint, size=0, max_age=100)
    pool.start()
    try:
        assert await pool.take() == "t1"
        assert await pool.take() == "t2"
        await settle()
        assert mint.minted == ["t1", "t2"]  # nothing minted ahead with size 0
    finally:
        await pool.close()


async def test_stale_tokens_are_dropped_and_replaced_while_idle() -> None:
    clock = Clock()
    mint = Minter()
    pool = TokenPool(mint, size=1, max_age=100, clock=clock)
    pool.start()
    try:
        await asyncio.wait_for(pool.filled(), 1)
        clock.now += 101
        assert len(pool) == 0
        # The refill sleeps until the token would go stale; here the clock is fake, so the
        # next take is what notices, mints on the path and refills behind it.
        assert await pool.take() == "t2"
        await settle()
        assert len(pool) == 1 and mint.minted == ["t1", "t2", "t3"]
    finally:
        await pool.close()


async def test_a_refill_wakes_when_the_oldest_token_goes_stale() -> None:
    mint = Minter()
    pool = TokenPool(mint, size=1, max_age=0.05)
    pool.start()
    try:
        await asyncio.wait_for(pool.filled(), 1)
        await asyncio.sleep(0.2)
        assert len(mint.minted) >= 3  # replaced every ~50 ms without anyone asking
    finally:
        await pool.close()


async def test_mint_bypasses_the_pool() -> None:
    mint = Minter()
    pool = TokenPool(mint, size=1, max_age=100)
    pool.start()
    try:
        await asyncio.wait_for(pool.filled(), 1)
        assert await pool.mint() == "t2"
        assert len(pool) == 1
    finally:
        await pool.close()


async def test_failed_mints_ahead_back_off_and_requests_still_get_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("page reloading")
        return f"t{calls}"

    pool = TokenPool(flaky, size=1, max_age=100)
    pool.start()
    try:
        await settle()
        assert "could not mint" in caplog.text
        assert await pool.take() == "t2"  # minted on the path while the refill backs off
    finally:
        await pool.close()
