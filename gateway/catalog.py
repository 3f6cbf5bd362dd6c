"""The model catalog workers publish to Redis, read and briefly cached."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from gateway import errors
from shared import keys
from shared.arena.catalog import Model, served


@dataclass(frozen=True, slots=True)
class Catalog:
    updated_at: float
    models: Mapping[str, Model]  # by public name, in the arena's order

    def find(self, name: str) -> Model | None:
        return self.models.get(name)

    def listed(self) -> list[Model]:
        """The models `/v1/models` shows: anonymous ones are requestable but not advertised."""
        return [m for m in self.models.values() if not m.anonymous]


def find_model(catalog: Catalog, name: str) -> Model:
    """The model named `name`; 404 in the API's words when there is none."""
    model = catalog.find(name)
    if model is None:
        raise errors.model_not_found(name)
    return model


def parse_catalog(raw: bytes) -> Catalog:
    """The catalog from what a worker stored under `shared.keys.CATALOG`."""
    data = orjson.loads(raw)
    models = {m.public_name: m for m in served(data.get("models") or [])}
    return Catalog(updated_at=float(data.get("updated_at") or 0.0), models=models)


class CatalogCache:
    """Reads the catalog at most once per `ttl_s`, however many requests ask for it."""

    def __init__(self, redis: Redis, ttl_s: float = 1.0) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._lock = asyncio.Lock()
        self._catalog: Catalog | None = None
        self._raw: bytes | None = None
        self._read_at = -float("inf")

    async def get(self) -> Catalog | None:
        """The latest catalog, or None when no worker has published one yet."""
        if time.monotonic() - self._read_at < self._ttl_s:
            return self._catalog
        async with self._lock:
            # Whoever held the lock may have just refreshed it.
            if time.monotonic() - self._read_at >= self._ttl_s:
                raw = await self._redis.get(keys.CATALOG)
                # A new catalog comes every few minutes at most: parse only that.
                if raw != self._raw:
                    self._catalog = parse_catalog(raw) if raw else None
                    self._raw = raw
                self._read_at = time.monotonic()
        return self._catalog
