"""Fixtures for tests that need a real Redis server, and the pace tests run at."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from tests.support.procs import redis_server

# Accounts are paced by default as the real arena needs it (45 s between calls): tests, and the
# bridges they start, go unpaced unless they set a pace of their own, so that the suite stays
# fast. Environment, as every Settings() and every process a test spawns reads it.
for _bound in (
    "LMB_ACCOUNT_MIN_INTERVAL_SECONDS",
    "LMB_ACCOUNT_CALLS_PER_15_MINUTES",
    "LMB_ACCOUNT_CALLS_PER_DAY",
):
    os.environ.setdefault(_bound, "0")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of the test module's own."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of that server, emptied for each test."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
