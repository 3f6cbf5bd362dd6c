"""Account pacing against a real Redis: the interval, the 15-minute and daily bounds, shared
by every process that paces the same account."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared.fleet.account_pacing import AccountPacer, Pace
from shared.storage import redis_keys

ACCOUNT = "alice@example.com"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


async def past_calls(redis: Redis, *seconds_ago: float) -> None:
    """Calls the account made that long ago, as `take` records them."""
    now_ms = int(time.time() * 1000)
    await redis.zadd(
        redis_keys.account_calls(ACCOUNT),
        {
            f"{now_ms - int(s * 1000)}:{n}": now_ms - int(s * 1000)
            for n, s in enumerate(seconds_ago)
        },
    )


async def test_a_call_then_the_interval_then_another(redis: Redis) -> None:
    pacer = AccountPacer(redis, Pace(min_interval_s=0.4, per_15_minutes=0, per_day=0))
    first = await pacer.take(ACCOUNT)
    assert first.free and (first.calls_last_15_minutes, first.calls_today) == (1, 1)
    refused = await pacer.take(ACCOUNT)
    assert not refused.free and 0.3 < refused.wait_s <= 0.4
    assert refused.calls_today == 1, "a refused call is not recorded"
    await asyncio.sleep(refused.wait_s + 0.02)
    assert (await pacer.take(ACCOUNT)).free


async def test_the_fifteen_minute_bound_waits_for_the_oldest_call_to_leave(redis: Redis) -> None:
    pacer = AccountPacer(redis, Pace(min_interval_s=0, per_15_minutes=3, per_day=0))
    await past_calls(redis, 14 * 60, 10 * 60, 60)
    refused = await pacer.take(ACCOUNT)
    # The call 14 minutes ago leaves the window in a minute.
    assert 59 < refused.wait_s <= 60 and refused.calls_last_15_minutes == 3
    await redis.delete(redis_keys.account_calls(ACCOUNT))
    await past_calls(redis, 16 * 60, 10 * 60, 60)
    assert (await pacer.take(ACCOUNT)).free, "a call older than 15 minutes no longer counts"


async def test_the_daily_bound_waits_for_the_next_utc_day(redis: Redis) -> None:
    pacer = AccountPacer(redis, Pace(min_interval_s=0, per_15_minutes=0, per_day=2))
    assert (await pacer.take(ACCOUNT)).free and (await pacer.take(ACCOUNT)).free
    refused = await pacer.take(ACCOUNT)
    until_midnight = 86_400 - time.time() % 86_400
    assert abs(refused.wait_s - until_midnight) < 2 and refused.calls_today == 2


async def test_standing_takes_nothing(redis: Redis) -> None:
    pacer = AccountPacer(redis, Pace(min_interval_s=30, per_15_minutes=6, per_day=40))
    assert (await pacer.standing(ACCOUNT)).free
    assert (await pacer.standing(ACCOUNT)).calls_today == 0
    await pacer.take(ACCOUNT)
    standing = await pacer.standing(ACCOUNT)
    assert not standing.free and standing.calls_today == 1 and 29 < standing.wait_s <= 30


async def test_processes_pacing_one_account_share_its_budget(redis_url: str) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    try:
        await clients[0].flushdb()
        pacers = [
            AccountPacer(c, Pace(min_interval_s=10, per_15_minutes=6, per_day=40)) for c in clients
        ]
        taken = await asyncio.gather(*(pacers[n % 4].take(ACCOUNT) for n in range(20)))
        assert sum(s.free for s in taken) == 1
        # Another account has its own budget.
        assert (await pacers[1].take("bob")).free
    finally:
        for client in clients:
            await client.aclose()


async def test_a_taken_call_says_when_the_next_may_go(redis: Redis) -> None:
    pacer = AccountPacer(redis, Pace(min_interval_s=30, per_15_minutes=2, per_day=0))
    first = await pacer.take(ACCOUNT)
    assert first.free and first.call is not None and 29 < first.next_wait_s <= 30
    await past_calls(redis, 14 * 60)  # with an old call, the window is full after this one
    await redis.zrem(redis_keys.account_calls(ACCOUNT), first.call)
    second = await pacer.take(ACCOUNT)
    assert second.free and 59 < second.next_wait_s <= 60  # the old call leaves in a minute
    assert (await pacer.standing(ACCOUNT)).call is None


async def test_a_call_counts_again_from_when_the_arena_answered_it(redis: Redis) -> None:
    pacer = AccountPacer(redis, Pace(min_interval_s=0.5, per_15_minutes=0, per_day=0))
    taken = await pacer.take(ACCOUNT)
    assert taken.call is not None
    await asyncio.sleep(0.3)
    answered = await pacer.sent(ACCOUNT, taken.call)
    assert 0.4 < answered.wait_s <= 0.5, "the interval runs from the answer, not the take"
    assert (answered.calls_last_15_minutes, answered.calls_today) == (1, 1)
    # A call the record no longer has (a day old) is not brought back.
    await redis.delete(redis_keys.account_calls(ACCOUNT))
    assert (await pacer.sent(ACCOUNT, taken.call)).calls_today == 0
