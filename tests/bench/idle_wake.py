"""What a Redis round trip costs on this machine after the processes on it sat idle.

Every hop of a request (client → gateway → Redis → worker → Chromium → …) wakes a process that
was waiting. On a busy machine that costs little; on an idle virtual machine the first trip
after a pause costs several times a back-to-back one, and the bridge's first token takes a
dozen such trips. This prints PING round trips after pauses of 0, 1, 10 and 100 ms, as ratios
to the back-to-back figure measured in the same run.

    python -m tests.bench.idle_wake [--samples 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from tests.support.procs import redis_server

PAUSES_S = (0.0, 0.001, 0.01, 0.1)


async def measure(url: str, samples: int) -> None:
    redis = Redis.from_url(url)
    try:
        await redis.ping()
        baseline = None
        for pause in PAUSES_S:
            times = []
            for _ in range(samples):
                if pause:
                    await asyncio.sleep(pause)
                started = time.perf_counter()
                await redis.ping()
                times.append((time.perf_counter() - started) * 1e6)
            p50 = statistics.median(times)
            baseline = baseline or p50
            print(
                f"  after {pause * 1000:5.0f} ms idle   PING p50 {p50:6.0f} µs   {p50 / baseline:4.1f}× back-to-back"
            )
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        print("Redis round trips from redis-py (asyncio) on loopback")
        asyncio.run(measure(url, args.samples))


if __name__ == "__main__":
    main()
