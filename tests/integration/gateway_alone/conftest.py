"""Fixtures of the tests that run a gateway alone and play the worker's part themselves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.fleet.worker_status import WorkerState
from shared.settings import Settings
from tests.support.played_worker import TEST_SETTINGS, heartbeat, publish_catalog, serving
from tests.support.procs import free_port


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A clean Redis with the captured catalog published and one ready worker, `w1`."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    await publish_catalog(client)
    await heartbeat(client, "w1", WorkerState.READY)
    yield client
    await client.aclose()


@pytest.fixture
def gateway(redis_url: str) -> Iterator[Callable[..., str]]:
    """Starts gateways with TEST_SETTINGS plus overrides; yields their base URL."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> str:
            settings = Settings(
                redis_url=redis_url, port=free_port(), **{**TEST_SETTINGS, **overrides}
            )
            return stack.enter_context(serving(settings))

        yield start


@pytest.fixture
async def api(redis: Redis, gateway: Callable[..., str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway(), timeout=10) as client:
        yield client
