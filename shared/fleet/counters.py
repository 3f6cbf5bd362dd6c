"""Counters workers keep in Redis for gateways to export (workers cannot be scraped).

Fields of the `redis_keys.COUNTERS` hash; they only grow, as Prometheus counters should.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.storage import redis_keys

log = logging.getLogger(__name__)

#: `arena_error:<kind>`: requests the arena refused or failed, by `shared.events.ErrorKind`.
ARENA_ERROR = "arena_error:"
#: reCAPTCHA tokens the arena refused.
RECAPTCHA_FAILURE = "recaptcha_failure"


async def arena_error(redis: Redis, kind: str) -> None:
    """Count one refusal or failure of the arena (a refused reCAPTCHA token is also a failure).

    Best effort: a count lost to a Redis hiccup must not fail the job it is about.
    """
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(redis_keys.COUNTERS, ARENA_ERROR + kind, 1)
            if kind == "recaptcha":
                pipe.hincrby(redis_keys.COUNTERS, RECAPTCHA_FAILURE, 1)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("could not count an arena error (%s): %s", kind, exc)
