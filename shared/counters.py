"""Counters workers keep in Redis for gateways to export (workers cannot be scraped).

Fields of the `keys.COUNTERS` hash; they only grow, as Prometheus counters should.
"""

from __future__ import annotations

from redis.asyncio import Redis

from shared import keys

#: `arena_error:<kind>`: requests the arena refused or failed, by `shared.events.ErrorKind`.
ARENA_ERROR = "arena_error:"
#: Tokens that could not be minted in the page, or that the arena refused.
RECAPTCHA_FAILURE = "recaptcha_failure"


async def arena_error(redis: Redis, kind: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.COUNTERS, ARENA_ERROR + kind, 1)
        if kind == "recaptcha":
            pipe.hincrby(keys.COUNTERS, RECAPTCHA_FAILURE, 1)
        await pipe.execute()


async def recaptcha_failure(redis: Redis) -> None:
    """A token the page could not mint (a refused one is counted by `arena_error`)."""
    await redis.hincrby(keys.COUNTERS, RECAPTCHA_FAILURE, 1)
