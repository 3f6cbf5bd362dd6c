"""The workers' heartbeats: who is alive, in what state, and waiting for one that serves."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

from redis.asyncio import Redis

from gateway import errors
from shared.workers import WorkerStatus, read_fleet


def state_counts(statuses: Sequence[WorkerStatus]) -> dict[str, int]:
    return dict(Counter(s.state.value for s in statuses))


def describe_unready(statuses: Sequence[WorkerStatus]) -> str:
    """Why no job can be queued, naming the states seen ("no worker is ready: 1 in challenge")."""
    if not statuses:
        return "no worker is running"
    seen = ", ".join(f"{n} in {state}" for state, n in sorted(state_counts(statuses).items()))
    return f"no worker is ready: {seen}"


class Fleet:
    """Answers "may a job be queued now?", reading heartbeats at most once per `fresh_s`."""

    def __init__(self, redis: Redis, *, fresh_s: float = 1.0, poll_s: float = 0.2) -> None:
        self._redis = redis
        self._fresh_s = fresh_s
        self._poll_s = poll_s
        self._serving_seen_at = -float("inf")

    async def wait_serving(self, timeout_s: float) -> None:
        """Return once some worker is serving; 503 naming the states seen after `timeout_s`."""
        if time.monotonic() - self._serving_seen_at < self._fresh_s:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = await read_fleet(self._redis)
            if any(s.serving for s in statuses):
                self._serving_seen_at = time.monotonic()
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.unavailable(describe_unready(statuses), code="no_worker")
            await asyncio.sleep(min(self._poll_s, remaining))
