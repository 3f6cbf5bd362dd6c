"""Key limits in a real Redis: exact under concurrency, shared by every limiter, leases expire."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.access.key_limits import Limiter, Quota
from shared.storage import redis_keys


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[Redis]]:
    """Two separate connections, standing for two gateways."""
    pair = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    await pair[0].flushdb()
    yield pair
    for client in pair:
        await client.aclose()


def rid() -> str:
    return uuid.uuid4().hex


async def test_requests_per_minute_are_exact_across_limiters(clients: list[Redis]) -> None:
    limiters = [Limiter(client, lease_s=30) for client in clients]
    quota = Quota("k1", requests_per_minute=5)
    results = await asyncio.gather(*(limiters[n % 2].admit(quota, rid()) for n in range(40)))
    admitted = [r for r in results if r is None]
    refused = [r for r in results if r is not None]
    assert len(admitted) == 5 and len(refused) == 35
    assert {r.limit for r in refused} == {"requests_per_minute"}
    # The window slides: the first request leaves it a minute after it came.
    assert all(58 <= r.retry_after_s <= 60 for r in refused)
    # Another key has its own window.
    assert await limiters[0].admit(Quota("k2", requests_per_minute=5), rid()) is None


async def test_the_window_lets_requests_in_as_old_ones_leave_it(clients: list[Redis]) -> None:
    limiter = Limiter(clients[0], lease_s=30)
    quota = Quota("k1", requests_per_minute=2)
    window = redis_keys.key_limit("k1", "minute")
    assert await limiter.admit(quota, "old") is None
    assert await limiter.admit(quota, "new") is None
    assert (await limiter.admit(quota, rid())).limit == "requests_per_minute"
    # Pretend "old" came 61 s ago: it has left the window, and one more request fits.
    (now_s, now_us) = await clients[0].time()
    await clients[0].zadd(window, {"old": now_s * 1000 + now_us // 1000 - 61_000})
    assert await limiter.admit(quota, rid()) is None
    assert await clients[0].zcard(window) == 2


async def test_a_daily_quota_counts_the_utc_day(clients: list[Redis]) -> None:
    limiter = Limiter(clients[0], lease_s=30)
    quota = Quota("k1", daily_requests=3)
    assert [await limiter.admit(quota, rid()) for _ in range(3)] == [None] * 3
    refusal = await limiter.admit(quota, rid())
    assert refusal is not None and refusal.limit == "daily_requests"
    seconds_to_midnight = 86_400 - int(time.time()) % 86_400
    assert abs(refusal.retry_after_s - seconds_to_midnight) <= 2
    day = redis_keys.key_limit("k1", "day")
    assert 0 < await clients[0].ttl(day) <= seconds_to_midnight + 1
    # Yesterday's count does not hold today.
    await clients[0].hset(day, "day", int(time.time()) // 86_400 - 1)
    assert await limiter.admit(quota, rid()) is None
    assert int(await clients[0].hget(day, "count")) == 1


async def test_a_refused_request_takes_nothing(clients: list[Redis]) -> None:
    limiter = Limiter(clients[0], lease_s=30)
    quota = Quota("k1", requests_per_minute=10, daily_requests=10, concurrent_streams=1)
    assert await limiter.admit(quota, "first") is None
    assert (await limiter.admit(quota, "second")).limit == "concurrent_streams"
    assert await clients[0].zcard(redis_keys.key_limit("k1", "minute")) == 1
    assert int(await clients[0].hget(redis_keys.key_limit("k1", "day"), "count")) == 1


async def test_concurrent_streams_hold_until_released(clients: list[Redis]) -> None:
    a, b = (Limiter(client, lease_s=30) for client in clients)
    quota = Quota("k1", concurrent_streams=2)
    assert await a.admit(quota, "s1") is None
    assert await b.admit(quota, "s2") is None
    refusal = await a.admit(quota, "s3")
    assert refusal is not None and (refusal.limit, refusal.retry_after_s) == (
        "concurrent_streams",
        1,
    )
    lease = b.hold(quota, "s2")
    assert lease is not None
    await lease.release()
    assert await a.admit(quota, "s3") is None


async def test_a_lease_renewed_lives_on_and_one_abandoned_expires(clients: list[Redis]) -> None:
    limiter = Limiter(clients[0], lease_s=0.6)
    quota = Quota("k1", concurrent_streams=2)
    assert await limiter.admit(quota, "kept") is None
    kept = limiter.hold(quota, "kept")  # renewed every 0.2 s
    assert await limiter.admit(quota, "dropped") is None  # its gateway "died": never renewed
    assert (await limiter.admit(quota, rid())).limit == "concurrent_streams"
    await asyncio.sleep(1.2)
    # "dropped" expired; "kept" did not.
    assert await limiter.admit(quota, "third") is None
    assert (await limiter.admit(quota, rid())).limit == "concurrent_streams"
    assert kept is not None
    await kept.release()
    members = {
        m.decode() for m in await clients[0].zrange(redis_keys.key_limit("k1", "streams"), 0, -1)
    }
    assert members == {"third"}


async def test_no_limits_means_nothing_is_stored(clients: list[Redis]) -> None:
    limiter = Limiter(clients[0], lease_s=30)
    quota = Quota("k1")
    assert await limiter.admit(quota, rid()) is None
    assert limiter.hold(quota, rid()) is None
    assert await clients[0].keys("*") == []
