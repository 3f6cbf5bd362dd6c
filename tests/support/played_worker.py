"""The worker's side of the protocol, played by a test: a gateway alone, in uvicorn on a loopback
port, against a real redis-server, with the test taking jobs off the arq queue and appending
`shared.events` to each job's stream exactly as a worker does.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from arq.jobs import Job
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.http.app import create_app
from gateway.http.server import config
from shared import events
from shared.arena.catalog import from_page
from shared.events import Event
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_keys
from tests.fakearena.catalog import CAPTURED_CATALOG
from worker.arena import catalog_publisher

MODELS = json.loads(CAPTURED_CATALOG.read_text())["initialModels"]
#: The captured catalog as a worker publishes it.
CATALOG = from_page(MODELS)
CATALOG_TIME = 1_764_547_200.0
CHAT = {"model": "gemini-3-pro", "messages": [{"role": "user", "content": "Say hello"}]}
#: Short waits, so that the paths behind them are exercised in well under a second; served
#: without keys (on loopback) unless a test makes one.
TEST_SETTINGS: dict[str, Any] = {
    "open": True,
    "worker_wait_seconds": 0.5,
    "first_event_wait_seconds": 2.0,
    "keepalive_seconds": 10.0,
    "job_timeout_seconds": 30.0,
}


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The app under uvicorn in a thread of its own (its own event loop, real sockets)."""
    app = create_app(settings)
    server = uvicorn.Server(config(settings, app, host="127.0.0.1", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def publish_catalog(redis: Redis) -> None:
    await catalog_publisher.publish(redis, CATALOG, "page", now=CATALOG_TIME)


async def heartbeat(redis: Redis, worker_id: str, state: WorkerState, **fields: Any) -> None:
    """A worker's heartbeat in `state` (`fields`: more of its status, its screen's say)."""
    status = WorkerStatus(
        id=worker_id,
        state=state,
        queue=redis_keys.worker_queue(worker_id),
        capacity=4,
        catalog=catalog_publisher.digest(CATALOG),
        updated_at=time.time(),
        **fields,
    )
    await redis.set(redis_keys.worker_heartbeat(worker_id), status.dump(), ex=60)
    await redis.sadd(redis_keys.WORKERS, worker_id)


async def take_job(redis: Redis, timeout_s: float = 5) -> CompletionJob:
    """Take the next job off the shared queue, as a worker would."""
    popped = await redis.bzpopmin(redis_keys.SHARED_QUEUE, timeout_s)
    assert popped is not None, "nothing was queued"
    arq_id = popped[1].decode()
    info = await Job(
        arq_id, redis, _queue_name=redis_keys.SHARED_QUEUE, _deserializer=job_queue.deserialize
    ).info()
    assert info is not None and info.function == job_queue.COMPLETE
    job = CompletionJob.model_validate(info.args[0])
    assert arq_id == redis_keys.arq_job_id(job.id, job.attempt)
    return job


async def emit(redis: Redis, job_id: str, *items: Event) -> None:
    """Append events to the job's stream; together, so that one read sees them all."""
    async with redis.pipeline(transaction=True) as pipe:
        for item in items:
            pipe.xadd(redis_keys.job_events(job_id), events.encode(item))
        await pipe.execute()


async def write(redis: Redis, job: CompletionJob, first: int, *items: Event) -> bool:
    """Append events as the job's attempt writes them (`worker.arena.completion.JobStream`): as
    the entries `<attempt>-<first>` on. False if the stream refused them, an entry with a higher
    id being there (the job went back on the queue as a later attempt)."""
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for n, item in enumerate(items):
                entry_id = f"{job.attempt}-{first + n}"
                pipe.xadd(redis_keys.job_events(job.id), events.encode(item), id=entry_id)
            await pipe.execute()
    except ResponseError as exc:
        assert "equal or smaller" in str(exc)
        return False
    return True


def outputs(entry: dict) -> dict:
    return entry["capabilities"]["outputCapabilities"]


async def nothing_queued(redis: Redis) -> bool:
    return await redis.zcard(redis_keys.SHARED_QUEUE) == 0 and not await redis.keys("arq:job:*")


def answer(text: str = "Hello!") -> list[Event]:
    return [
        events.accepted("w1", 0),
        events.text("a", text),
        events.finish("a", "stop"),
        events.done(),
    ]
