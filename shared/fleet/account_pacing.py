"""How fast one arena account may be used, held in Redis for the whole fleet.

An account used fast gets flagged by the site for hours, so its stream calls are paced: at least
`min_interval_s` between two calls, at most `per_15_minutes` in any fifteen minutes and
`per_day` per UTC day (0: no such bound). One Lua script checks and records a call at once, on
Redis's clock, so that neither a restarted worker nor a second process on the same account can
go faster; gateways read the same record to tell a waiting client when an account frees.

A call is recorded as it is taken and counted again from when the arena answered it (`sent`):
the arena received it in between, so the next call, taken at least an interval after that,
reaches the arena at least an interval after this one, however long each took on its way.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.settings import Settings
from shared.storage import redis_keys
from shared.storage.lua import CLOCK_LUA

#: Lua: `pacing(key, now, interval, per_window, per_day)` → ms until the account whose calls
#: are `key` (a sorted set of call ids scored by their time, ms) may make a call at `now` (ms),
#: its calls in the last 15 minutes, its calls today; calls too old to count are dropped.
#: `clock()` → Redis's clock, ms. Shared with the workers' claim (worker.queue_worker), so
#: that both judge an account alike.
PACING_LUA = (
    CLOCK_LUA
    + """
local function pacing(key, now, interval, per_window, per_day)
  local window_start = now - 900000
  local day_start = math.floor(now / 86400000) * 86400000
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. math.min(window_start, day_start))
  local in_window = redis.call('ZCOUNT', key, '(' .. window_start, '+inf')
  local today = redis.call('ZCOUNT', key, day_start, '+inf')
  local wait = 0
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last > 0 then
    wait = math.max(wait, tonumber(last[2]) + interval - now)
  end
  if per_window > 0 and in_window >= per_window then
    -- the call that must leave the window for one more to fit in it
    local leaving = redis.call('ZRANGEBYSCORE', key, '(' .. window_start, '+inf',
      'WITHSCORES', 'LIMIT', in_window - per_window, 1)
    wait = math.max(wait, tonumber(leaving[2]) + 900000 - now)
  end
  if per_day > 0 and today >= per_day then
    wait = math.max(wait, day_start + 86400000 - now)
  end
  return math.max(wait, 0), in_window, today
end
"""
)

# KEYS: the account's calls. ARGV: min interval ms, per 15 minutes, per day, "take", "peek" or
# "sent", a new call's id (take) or a call taken before (sent).
# Returns {ms until a call may go (0: now; taken if asked), calls in the last 15 minutes, calls
# today, ms until the call after that, the call taken or ''}; the counts include a call just
# taken.
_PACE = (
    PACING_LUA
    + """
local now = clock()
local interval, per_window, per_day = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] == 'sent' and redis.call('ZSCORE', KEYS[1], ARGV[5]) then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[5])
end
local wait, in_window, today = pacing(KEYS[1], now, interval, per_window, per_day)
if wait > 0 or ARGV[4] ~= 'take' then
  return {wait, in_window, today, wait, ''}
end
local call = now .. ':' .. ARGV[5]
redis.call('ZADD', KEYS[1], now, call)
redis.call('PEXPIRE', KEYS[1], 86400000 + 900000)
local next_wait
next_wait, in_window, today = pacing(KEYS[1], now, interval, per_window, per_day)
return {0, in_window, today, next_wait, call}
"""
)


def paced_as(account: str | None, worker_id: str) -> str:
    """The name an account's calls are recorded under: a guest has none, so its worker's id
    stands in for it."""
    return account or worker_id


@dataclass(frozen=True, slots=True)
class Pace:
    """An account's budget: 0 for a count means no bound."""

    min_interval_s: float = 45.0
    per_15_minutes: int = 6
    per_day: int = 40

    @classmethod
    def of(cls, settings: Settings) -> Pace:
        return cls(
            settings.account_min_interval_seconds,
            settings.account_calls_per_15_minutes,
            settings.account_calls_per_day,
        )

    @property
    def bounded(self) -> bool:
        """Whether it bounds anything: an unbounded pace needs no record at all."""
        return self.min_interval_s > 0 or self.per_15_minutes > 0 or self.per_day > 0

    def args(self) -> list[int]:
        """The bounds as the Lua function `pacing` takes them."""
        return [math.ceil(self.min_interval_s * 1000), self.per_15_minutes, self.per_day]


@dataclass(frozen=True, slots=True)
class Standing:
    """Where an account stands against its budget."""

    #: Seconds until it may make a call (0: now).
    wait_s: float
    calls_last_15_minutes: int
    calls_today: int
    #: Seconds until it may make its next call: after the one just taken, if one was.
    next_wait_s: float = 0.0
    #: The call just taken (to pass to `sent`); None if none was.
    call: str | None = None

    @property
    def free(self) -> bool:
        return self.wait_s <= 0


class AccountPacer:
    def __init__(self, redis: Redis, pace: Pace) -> None:
        self.pace = pace
        self._script = redis.register_script(_PACE)

    async def take(self, account: str) -> Standing:
        """Record a call of `account` now if its budget has room; else say when it will."""
        return await self._run(account, "take", secrets.token_hex(4))

    async def standing(self, account: str) -> Standing:
        """Where `account` stands, taking nothing."""
        return await self._run(account, "peek", "")

    async def sent(self, account: str, call: str) -> Standing:
        """The arena has answered `call` (taken before): it counts from now."""
        return await self._run(account, "sent", call)

    async def _run(self, account: str, mode: str, call: str) -> Standing:
        wait_ms, in_window, today, next_ms, taken = await self._script(
            keys=[redis_keys.account_calls(account)], args=[*self.pace.args(), mode, call]
        )
        return Standing(
            int(wait_ms) / 1000,
            int(in_window),
            int(today),
            next_wait_s=int(next_ms) / 1000,
            call=taken.decode() if taken else None,
        )
