"""How fast one arena account may be used, held in Redis for the whole fleet.

An account used fast gets flagged by the site for hours, so its stream calls are paced: at least
`min_interval_s` between two calls, at most `per_15_minutes` in any fifteen minutes and
`per_day` per UTC day (0: no such bound). One Lua script checks and records a call at once, on
Redis's clock, so that neither a restarted worker nor a second process on the same account can
go faster; gateways read the same record to tell a waiting client when an account frees.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import redis_keys

# KEYS: the account's calls (a sorted set of call ids scored by their time, ms).
# ARGV: min interval ms, per 15 minutes, per day, "take" or "peek", a new call's id.
# Returns {ms until a call may go (0: now; taken if asked), calls in the last 15 minutes,
# calls today}; the counts include a call just taken.
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, per_window, per_day = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window_start = now - 900000
local day_start = math.floor(now / 86400000) * 86400000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. math.min(window_start, day_start))
local in_window = redis.call('ZCOUNT', KEYS[1], '(' .. window_start, '+inf')
local today = redis.call('ZCOUNT', KEYS[1], day_start, '+inf')
local wait = 0
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last > 0 then
  wait = math.max(wait, tonumber(last[2]) + interval - now)
end
if per_window > 0 and in_window >= per_window then
  -- the call that must leave the window for one more to fit in it
  local leaving = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. window_start, '+inf',
    'WITHSCORES', 'LIMIT', in_window - per_window, 1)
  wait = math.max(wait, tonumber(leaving[2]) + 900000 - now)
end
if per_day > 0 and today >= per_day then
  wait = math.max(wait, day_start + 86400000 - now)
end
if wait > 0 or ARGV[4] ~= 'take' then
  return {math.max(wait, 0), in_window, today}
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[5])
redis.call('PEXPIRE', KEYS[1], 86400000 + 900000)
return {0, in_window + 1, today + 1}
"""


@dataclass(frozen=True, slots=True)
class Pace:
    """An account's budget: 0 for a count means no bound."""

    min_interval_s: float = 45.0
    per_15_minutes: int = 6
    per_day: int = 40


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an account stands against its budget."""

    #: Seconds until it may make a call (0: now).
    wait_s: float
    calls_last_15_minutes: int
    calls_today: int

    @property
    def free(self) -> bool:
        return self.wait_s <= 0


class AccountPacer:
    def __init__(self, redis: Redis, pace: Pace) -> None:
        self.pace = pace
        self._script = redis.register_script(_PACE)

    async def take(self, account: str) -> Standing:
        """Record a call of `account` now if its budget has room; else say when it will."""
        return await self._run(account, "take")

    async def standing(self, account: str) -> Standing:
        """Where `account` stands, taking nothing."""
        return await self._run(account, "peek")

    async def _run(self, account: str, mode: str) -> Standing:
        pace = self.pace
        wait_ms, in_window, today = await self._script(
            keys=[redis_keys.account_calls(account)],
            args=[
                math.ceil(pace.min_interval_s * 1000),
                pace.per_15_minutes,
                pace.per_day,
                mode,
                secrets.token_hex(4),
            ],
        )
        return Standing(int(wait_ms) / 1000, int(in_window), int(today))
