"""A synthetic worker: a process that plays the worker's side of the protocol at a set pace,
without a browser, for load and failover tests.

It publishes the captured catalog, heartbeats as a ready worker with room for every job, takes
jobs off the shared queue (as `tests.support.played_worker.take_job` does) and appends each
job's events to its stream as a worker would: `accepted`, `session`, then `--chunks` text chunks
`--interval` seconds apart, `finish` and `done`; a prompt may set its own pace by saying
`chunks=N interval=S`. Every text chunk starts with the time it was written (`@<ns since the
epoch>;`), so a client can tell how late it arrived; the rest is padding to `--chunk-bytes`. One
ticker writes the chunks of all jobs due, in one pipeline, and drops the jobs whose client went
away (their cancel key is set), as a worker stops them.

Run: python -m tests.support.synthetic_worker --worker-id s1 (Redis from the LMB_ settings).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import re
import time
from dataclasses import dataclass

from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import events
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_client, redis_keys
from tests.support.played_worker import CATALOG, publish_catalog
from worker.arena import catalog_publisher

#: How often the ticker looks for chunks that are due.
TICK_S = 0.005
#: Heartbeats as a worker's: every 2 s (LMB_HEARTBEAT_SECONDS' default), expiring after three.
BEAT_S = 2.0
_PACE = re.compile(r"chunks=(\d+) interval=([0-9.]+)")


@dataclass
class Running:
    job: CompletionJob
    due: float
    chunks: int
    interval_s: float
    sent: int = 0


def chunk(size: int) -> str:
    """A text chunk stamped with the time it is written, padded to `size` characters."""
    stamp = f"@{time.time_ns()};"
    return stamp + "x" * max(0, size - len(stamp))


class SyntheticWorker:
    def __init__(
        self, redis: Redis, worker_id: str, *, chunks: int, interval_s: float, chunk_bytes: int
    ) -> None:
        self.redis = redis
        self.id = worker_id
        self.chunks = chunks
        self.interval_s = interval_s
        self.chunk_bytes = chunk_bytes
        #: Jobs under way, by when their next events are due.
        self.due: list[tuple[float, int, Running]] = []
        self._order = itertools.count()

    async def run(self, claimers: int) -> None:
        await publish_catalog(self.redis)
        await asyncio.gather(
            self._beat(),
            self._tick(),
            *(self._claim() for _ in range(claimers)),
        )

    async def _beat(self) -> None:
        while True:
            status = WorkerStatus(
                id=self.id,
                state=WorkerState.READY,
                queue=redis_keys.worker_queue(self.id),
                capacity=64,
                catalog=catalog_publisher.digest(CATALOG),
                updated_at=time.time(),
            )
            with contextlib.suppress(RedisError):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(
                        redis_keys.worker_heartbeat(self.id), status.dump(), px=int(3000 * BEAT_S)
                    )
                    pipe.sadd(redis_keys.WORKERS, self.id)
                    await pipe.execute()
            await asyncio.sleep(BEAT_S)

    async def _claim(self) -> None:
        while True:
            try:
                popped = await self.redis.bzpopmin(redis_keys.SHARED_QUEUE, 1)
                if popped is None:
                    continue
                raw = await self.redis.get(job_key_prefix + popped[1].decode())
            except RedisError:
                await asyncio.sleep(0.1)
                continue
            if raw is None:
                continue  # expired or taken back
            args = deserialize_job(raw, deserializer=job_queue.deserialize).args
            job = CompletionJob.model_validate(args[0])
            pace = _PACE.search(job.prompt)
            chunks, interval_s = (
                (int(pace[1]), float(pace[2])) if pace else (self.chunks, self.interval_s)
            )
            run = Running(job, time.monotonic(), chunks, interval_s)
            heapq.heappush(self.due, (run.due, next(self._order), run))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            due = []
            while self.due and self.due[0][0] <= now:
                due.append(heapq.heappop(self.due)[2])
            if not due:
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                going = [run for run in due if self._next(pipe, run, now)]
                for run in going:
                    pipe.exists(redis_keys.job_cancel(run.job.id))
                try:
                    replies = await pipe.execute()
                except RedisError:  # lost: a client sees it cut
                    replies = [0] * len(going)
            cancelled = replies[len(replies) - len(going) :]
            for run, gone in zip(going, cancelled, strict=True):
                if not gone:
                    heapq.heappush(self.due, (run.due, next(self._order), run))

    def _next(self, pipe: Redis, run: Running, now: float) -> bool:
        """Queue `run`'s next events on `pipe`; whether it has more to come."""
        job, stream = run.job, redis_keys.job_events(run.job.id)
        if run.sent == 0:
            written = [
                events.accepted(self.id, job.attempt),
                events.session(self.id, job.action, f"s-{job.id}", {"a": f"m-{job.id}"}),
            ]
            pipe.expire(stream, 600)
        elif run.sent <= run.chunks:
            written = [events.text("a", chunk(self.chunk_bytes))]
        else:
            written = [events.finish("a", "stop"), events.done()]
        for event in written:
            pipe.xadd(stream, events.encode(event))
        run.sent += 1
        run.due = now + (run.interval_s if run.sent > 1 else 0)
        return run.sent <= run.chunks + 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-id", default="synthetic")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between chunks")
    parser.add_argument("--chunk-bytes", type=int, default=24)
    parser.add_argument("--claimers", type=int, default=4, help="concurrent queue pops")
    args = parser.parse_args()
    redis = redis_client.connect(Settings())
    worker = SyntheticWorker(
        redis,
        args.worker_id,
        chunks=args.chunks,
        interval_s=args.interval,
        chunk_bytes=args.chunk_bytes,
    )
    await worker.run(args.claimers)


if __name__ == "__main__":
    asyncio.run(main())
