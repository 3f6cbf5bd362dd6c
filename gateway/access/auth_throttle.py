"""Failed keys and sign-ins, counted in Redis across every gateway, throttled with a 429.

A client key or the admin key that fails (wrong, revoked, expired) counts against the address it
came from (an IPv6 /64 counts as one: one machine has them all) and against everyone's total,
over the last minute. An address over its own limit gets 429s until its failures age out, before
anything it sends is checked, so it cannot go on guessing. When the total is over its limit,
every address that failed recently is refused the same way: a guesser behind many addresses is
held back while the clients whose keys work are never refused. Windows are `key_limits`' Lua.
"""

from __future__ import annotations

import logging
import math
import uuid

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from gateway.access.addresses import client_of
from gateway.access.key_limits import WINDOW_LUA
from gateway.http import errors
from shared.storage import redis_keys

log = logging.getLogger(__name__)

#: Failures are counted over this long.
SPAN_MS = 60_000

# KEYS: this address's failures, everyone's. ARGV: per address, in total, span ms.
# Returns milliseconds until the address may try again; 0: it may now.
_CHECK = (
    WINDOW_LUA
    + """
local now = clock()
local span = tonumber(ARGV[3])
local mine = window_wait(KEYS[1], tonumber(ARGV[1]), span, now)
if mine > 0 then return mine end
local everyone = window_wait(KEYS[2], tonumber(ARGV[2]), span, now)
if everyone > 0 and redis.call('ZCARD', KEYS[1]) > 0 then return everyone end
return 0
"""
)
# KEYS: as above. ARGV: id, in total, span ms. The total keeps at most twice its limit.
_FAILED = (
    WINDOW_LUA
    + """
local now = clock()
local span = tonumber(ARGV[3])
window_add(KEYS[1], ARGV[1], span, now)
window_add(KEYS[2], ARGV[1], span, now)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -2 * tonumber(ARGV[2]) - 1)
return 0
"""
)


class AuthThrottle:
    def __init__(self, redis: Redis, *, per_address: int, total: int) -> None:
        self._per_address = per_address
        self._total = total
        self._check = redis.register_script(_CHECK)
        self._failed = redis.register_script(_FAILED)

    def _keys(self, conn: HTTPConnection) -> list[str]:
        return [redis_keys.auth_failures(client_of(conn)), redis_keys.auth_failures(None)]

    async def wait_s(self, conn: HTTPConnection) -> int:
        """Seconds until `conn`'s address may try a key again; 0: now."""
        wait_ms = await self._check(
            keys=self._keys(conn), args=[self._per_address, self._total, SPAN_MS]
        )
        return math.ceil(int(wait_ms) / 1000)

    async def check(self, conn: HTTPConnection) -> None:
        """A 429 (with Retry-After) if `conn`'s address may not try a key now."""
        if wait := await self.wait_s(conn):
            raise too_many(wait)

    async def failed(self, conn: HTTPConnection) -> None:
        """Count one failed key or sign-in from `conn`'s address."""
        log.info("failed key or sign-in from %s", client_of(conn))
        await self._failed(keys=self._keys(conn), args=[uuid.uuid4().hex, self._total, SPAN_MS])


def too_many(wait_s: int) -> errors.ApiError:
    return errors.ApiError(
        429,
        f"Too many failed keys or sign-ins from your address: try again in {wait_s} s.",
        code="too_many_failed_attempts",
        headers={"Retry-After": str(wait_s)},
    )
