"""Per-key limits, enforced atomically in Redis so that they hold across every gateway.

One Lua script checks and takes all of a request's limits at once, on Redis's clock:
- requests per minute: a sliding window (a sorted set of request ids scored by time), exact
  at any instant, so "5 a minute" never lets 10 through around a minute boundary;
- requests per UTC day: a counter that starts over when the day changes;
- answers in progress: leases (a sorted set of request ids scored by expiry). A lease is renewed
  while its answer runs and removed when it ends; if its gateway dies, it simply expires, so
  nothing leaks. A counter would stay up forever after a crash.
A refused request takes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.storage import redis_keys
from shared.storage.lua import CLOCK_LUA

log = logging.getLogger(__name__)

Limit = Literal["concurrent_streams", "requests_per_minute", "daily_requests"]

_WINDOW_MS = 60_000
_DAY_MS = 86_400_000

#: Lua shared by the scripts that count in sliding windows (here and in `auth_throttle`): Redis's
#: clock, and a window kept as a sorted set of ids scored by time.
WINDOW_LUA = (
    CLOCK_LUA
    + """
-- Milliseconds until the window (the last `span` ms) holds fewer than `limit`; 0 if it does.
local function window_wait(key, limit, span, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  if redis.call('ZCARD', key) < limit then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + span - now
end
local function window_add(key, id, span, now)
  redis.call('ZADD', key, now, id)
  redis.call('PEXPIRE', key, span)
end
"""
)

# KEYS: window, day, leases. ARGV: per minute, per day, at once (0: no limit), lease ms, id.
# Returns {limit refused or "", milliseconds until it may pass}. When answers in progress are
# the limit, nobody knows when one ends: the client is told to try again in a second.
_ADMIT = (
    WINDOW_LUA
    + """
local now = clock()
local per_minute, per_day, at_once = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease_ms, id = tonumber(ARGV[4]), ARGV[5]
if at_once > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= at_once then
    return {'concurrent_streams', 1000}
  end
end
if per_minute > 0 then
  local wait = window_wait(KEYS[1], per_minute, 60000, now)
  if wait > 0 then return {'requests_per_minute', wait} end
end
local today = math.floor(now / 86400000)
local used = 0
if per_day > 0 then
  if tonumber(redis.call('HGET', KEYS[2], 'day')) == today then
    used = tonumber(redis.call('HGET', KEYS[2], 'count')) or 0
  end
  if used >= per_day then
    return {'daily_requests', (today + 1) * 86400000 - now}
  end
end
if per_minute > 0 then window_add(KEYS[1], id, 60000, now) end
if per_day > 0 then
  redis.call('HSET', KEYS[2], 'day', today, 'count', used + 1)
  redis.call('PEXPIREAT', KEYS[2], (today + 1) * 86400000)
end
if at_once > 0 then
  redis.call('ZADD', KEYS[3], now + lease_ms, id)
  redis.call('PEXPIRE', KEYS[3], lease_ms)
end
return {'', 0}
"""
)

# KEYS: leases. ARGV: lease ms, id. Pushes the lease's expiry out (back in if it had lapsed:
# the answer is still running, so it still counts).
_RENEW = (
    CLOCK_LUA
    + """
local now = clock()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""
)


@dataclass(frozen=True, slots=True)
class Quota:
    """One key's limits; None means no limit."""

    key_id: str
    requests_per_minute: int | None = None
    daily_requests: int | None = None
    concurrent_streams: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The limit a request is over, and when it may pass (whole seconds, at least 1)."""

    limit: Limit
    retry_after_s: int

    @classmethod
    def of(cls, limit: Limit, wait_ms: float) -> Refusal:
        return cls(limit, max(1, math.ceil(wait_ms / 1000)))


class Limiter:
    def __init__(self, redis: Redis, *, lease_s: float) -> None:
        self._redis = redis
        self._lease_ms = max(1, round(lease_s * 1000))
        self._admit = redis.register_script(_ADMIT)
        self._renew = redis.register_script(_RENEW)

    @property
    def lease_s(self) -> float:
        return self._lease_ms / 1000

    async def admit(self, quota: Quota, request_id: str) -> Refusal | None:
        """Take one request's share of `quota`, or say which limit refuses it."""
        limit, wait_ms = await self._admit(
            keys=[
                redis_keys.key_limit(quota.key_id, "minute"),
                redis_keys.key_limit(quota.key_id, "day"),
                redis_keys.key_limit(quota.key_id, "streams"),
            ],
            args=[
                quota.requests_per_minute or 0,
                quota.daily_requests or 0,
                quota.concurrent_streams or 0,
                self._lease_ms,
                request_id,
            ],
        )
        return Refusal.of(limit.decode(), wait_ms) if limit else None

    def hold(self, quota: Quota, request_id: str) -> Lease | None:
        """The lease `admit` took for `request_id`, to renew until released; None if none was."""
        if quota.concurrent_streams is None:
            return None
        return Lease(self, redis_keys.key_limit(quota.key_id, "streams"), request_id)

    async def renew(self, leases: str, request_id: str) -> None:
        await self._renew(keys=[leases], args=[self._lease_ms, request_id])

    async def release(self, leases: str, request_id: str) -> None:
        await self._redis.zrem(leases, request_id)


class Lease:
    """One answer's place among a key's concurrent ones, renewed until `release`."""

    def __init__(self, limiter: Limiter, leases: str, request_id: str) -> None:
        self._limiter = limiter
        self._leases = leases
        self._id = request_id
        # Renewed three times a lease: one renewal may fail or be late without losing it.
        self._renewing = asyncio.create_task(self._renew_every(limiter.lease_s / 3))

    async def release(self) -> None:
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        try:
            await self._limiter.release(self._leases, self._id)
        except RedisError as exc:  # it expires on its own
            log.warning("could not release a stream lease (it will expire): %s", exc)

    async def _renew_every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await self._limiter.renew(self._leases, self._id)
            except RedisError as exc:
                log.warning("could not renew a stream lease: %s", exc)
