"""The model catalog read off the arena, published for the gateways.

A catalog is stored once per content, under the digest of its models (with the set of its arena
ids, by which workers claim only the jobs they can serve); each worker names the one it serves in
its heartbeat, so gateways serve the union of the live workers' catalogs and a model no live
worker can see disappears with the last one that could. Models are stored as
`shared.arena.catalog.Model.published` gives them, whichever shape the site served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.arena.catalog import Model, Source
from shared.storage import redis_keys

#: A catalog nobody has published again for this long is garbage (workers publish every few minutes).
CATALOG_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Published:
    #: Names the stored catalog (`shared.storage.redis_keys.catalog`).
    digest: str
    #: Public names of the models it serves.
    models: list[str]
    #: Where the worker found it on the arena.
    source: Source


def digest(models: Sequence[Model]) -> str:
    return _digest([model.published() for model in models])


def _digest(entries: Sequence[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(entries, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


async def publish(
    redis: Redis, models: Sequence[Model], source: Source, *, now: float
) -> Published:
    """Store `models` (kept with the time they were first seen), and the set of their arena ids
    that the claims of jobs read, and return how to name them."""
    entries = [model.published() for model in models]
    name = _digest(entries)
    key, ids_key = redis_keys.catalog(name), redis_keys.catalog_ids(name)
    ids = {model_id for model in models for model_id in model.ids.values()}
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(key, orjson.dumps({"updated_at": now, "models": entries}), nx=True)
        pipe.expire(key, CATALOG_TTL_S)
        if ids:
            pipe.sadd(ids_key, *ids)
            pipe.expire(ids_key, CATALOG_TTL_S)
        await pipe.execute()
    return Published(name, [model.public_name for model in models], source)
