"""What a gateway holds for its lifetime: settings, Redis clients, the catalog, fleet and queue
views."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from fastapi import Request
from redis.asyncio import Redis

from gateway.access.auth_throttle import AuthThrottle
from gateway.access.key_limits import Limiter
from gateway.access.usage import UsageStore
from gateway.answers.stream_reads import StreamReads
from gateway.fleet.catalog_view import CatalogView
from gateway.fleet.heartbeats import FleetView
from gateway.fleet.queue_view import QueueView
from gateway.http.metrics import Metrics
from shared.credentials.client_keys import KeyStore
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    #: Reads and writes of everything but the answers' streams.
    redis: Redis
    #: The answers' streams, read together on a few connections of their own.
    reads: StreamReads
    #: arq's own client: enqueue, cancel, wake-ups.
    pool: ArqRedis
    catalog: CatalogView
    fleet: FleetView
    queue: QueueView
    keys: KeyStore
    limiter: Limiter
    usage: UsageStore
    metrics: Metrics
    throttle: AuthThrottle


async def services(request: Request) -> Services:
    """Route dependency: the running app's services (set up in its lifespan).

    Async, because FastAPI runs a plain function dependency in a worker thread.
    """
    return request.app.state.services
