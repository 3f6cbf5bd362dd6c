"""The model catalog read off the arena page, published for the gateways.

A catalog is stored once per content, under the digest of its entries; each worker names the
one it serves in its heartbeat, so gateways serve the union of the live workers' catalogs and a
model no live worker can see disappears with the last one that could.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from shared import redis_keys
from shared.arena.catalog import initial_models, served

#: A catalog nobody has published again for this long is garbage (workers publish every few minutes).
CATALOG_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Published:
    #: Names the stored catalog (`shared.redis_keys.catalog`).
    digest: str
    #: Public names of the models it serves.
    models: list[str]


def digest(entries: Sequence[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(entries, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


async def publish_entries(
    redis: Redis, entries: Sequence[dict[str, Any]], *, now: float
) -> Published:
    """Store `entries` (kept with the time they were first seen) and return how to name them."""
    name = digest(entries)
    key = redis_keys.catalog(name)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(key, orjson.dumps({"updated_at": now, "models": entries}), nx=True)
        pipe.expire(key, CATALOG_TTL_S)
        await pipe.execute()
    return Published(name, [model.public_name for model in served(entries)])


async def publish(redis: Redis, html: str) -> Published:
    """Publish the catalog in a chat page's HTML."""
    return await publish_entries(redis, initial_models(html), now=time.time())
