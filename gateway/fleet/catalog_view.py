"""The model catalog the gateway serves: the union of the catalogs live workers name.

Workers store each catalog once under its digest and name theirs in their heartbeat. A model
appears as soon as one live worker serves it and is gone (404) once none does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from gateway.http import errors
from shared.arena.catalog import Model
from shared.fleet.worker_status import WorkerStatus, read_fleet
from shared.storage import redis_keys


@dataclass(frozen=True, slots=True)
class Catalog:
    updated_at: float
    models: Mapping[str, Model]  # by public name, in the arena's order

    def has(self, model_ids: Iterable[str]) -> bool:
        """Whether it offers every one of these arena ids (a job's models)."""
        offered = {i for model in self.models.values() for i in model.ids.values()}
        return offered.issuperset(model_ids)

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
    """One catalog as a worker stored it under `shared.storage.redis_keys.catalog`.

    Each model carries the arena id for each modality it is offered in (`Model.ids`).
    """
    data = orjson.loads(raw)
    models: dict[str, Model] = {}
    for entry in data.get("models") or []:
        model = Model.from_published(entry)
        models.setdefault(model.public_name, model)
    return Catalog(updated_at=float(data.get("updated_at") or 0.0), models=models)


def union(catalogs: Iterable[Catalog]) -> Catalog | None:
    """Every model of every catalog, the first catalog's order first; None for no catalog."""
    parts = list(catalogs)
    if not parts:
        return None
    models: dict[str, Model] = {}
    for part in parts:
        for name, model in part.models.items():
            models.setdefault(name, model)
    return Catalog(updated_at=max(part.updated_at for part in parts), models=models)


class CatalogView:
    """The live workers' catalogs, read again once older than `ttl_s`, however many requests ask.

    The gateway keeps it fresh in the background (`gateway.fleet.heartbeats.keep_fresh`) so that requests
    do not wait for Redis; one that finds it stale reads it itself. A catalog never changes under
    its digest: each is fetched and parsed once.
    """

    def __init__(self, redis: Redis, ttl_s: float = 1.0) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._lock = asyncio.Lock()
        self._parsed: dict[str, Catalog] = {}
        self._catalog: Catalog | None = None
        self._read_at = -float("inf")

    async def get(self, wanting: str | None = None) -> Catalog | None:
        """The union of the live workers' catalogs, or None while no live worker names one.

        A view that has no catalog, or lacks the model `wanting`, is read again before it is
        believed: a worker may have published in the half second since the last refresh.
        """
        asked_at = time.monotonic()
        if asked_at - self._read_at < self._ttl_s and self._answers(wanting):
            return self._catalog
        async with self._lock:
            # Whoever held the lock may have just read it for us.
            if self._read_at < asked_at:
                await self._read(await read_fleet(self._redis))
        return self._catalog

    def _answers(self, wanting: str | None) -> bool:
        if self._catalog is None:
            return False
        return wanting is None or wanting in self._catalog.models

    def holding(self, model_ids: Sequence[str]) -> set[str]:
        """The digests of the catalogs read that offer every one of these arena ids."""
        return {digest for digest, catalog in self._parsed.items() if catalog.has(model_ids)}

    async def update(self, statuses: Sequence[WorkerStatus]) -> Catalog | None:
        """Refresh from heartbeats just read; the catalog of exactly those workers."""
        async with self._lock:
            await self._read(statuses)
            return self._catalog

    async def _read(self, statuses: Sequence[WorkerStatus]) -> None:
        named = list(dict.fromkeys(s.catalog for s in statuses if s.catalog))
        missing = [name for name in named if name not in self._parsed]
        if missing:
            raws = await self._redis.mget([redis_keys.catalog(name) for name in missing])
            for name, raw in zip(missing, raws, strict=True):
                if raw is not None:
                    self._parsed[name] = parse_catalog(raw)
        # Keep only what live workers name: the cache never outgrows the fleet.
        self._parsed = {name: self._parsed[name] for name in named if name in self._parsed}
        self._catalog = union(self._parsed.values())
        self._read_at = time.monotonic()
