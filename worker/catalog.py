"""The model catalog read off the arena page, published for the gateways."""

from __future__ import annotations

import time

import orjson
from redis.asyncio import Redis

from shared import keys
from shared.arena.catalog import initial_models, served


async def publish(redis: Redis, worker_id: str, html: str) -> list[str]:
    """Publish the catalog in `html`; returns the public names of the models it serves."""
    entries = initial_models(html)
    record = {"updated_at": time.time(), "worker": worker_id, "models": entries}
    await redis.set(keys.CATALOG, orjson.dumps(record))
    return [model.public_name for model in served(entries)]
