"""The whole worker, run in-process against the fake arena, a real Redis and a real Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from arq.connections import ArqRedis

from shared import events
from shared.events import Event
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_client, redis_keys
from tests.support.procs import TEST_CHROMIUM_ARGS, fake_arena, redis_server
from worker.main import run

pytestmark = pytest.mark.browser

MAIN = "w-main"
#: A flagged account's first pause before it calls alone (20 minutes outside tests).
FLAG_PAUSE_S = 2.0


class Stack:
    def __init__(self, redis_url: str, arena: str, state_dir: Path, pool: ArqRedis) -> None:
        self.redis_url = redis_url
        self.arena = arena
        self.state_dir = state_dir
        self.pool = pool
        self.control = httpx.AsyncClient(base_url=arena, trust_env=False)

    def settings(self, worker_id: str) -> Settings:
        return Settings(
            redis_url=self.redis_url,
            arena_url=self.arena,
            state_dir=self.state_dir,
            worker_id=worker_id,
            worker_capacity=2,
            heartbeat_seconds=0.5,
            headless=True,
            chromium_args=TEST_CHROMIUM_ARGS,
            account_flag_pause_seconds=FLAG_PAUSE_S,
        )

    async def scenario(self, **knobs: Any) -> None:
        (await self.control.post("/__fake/reset")).raise_for_status()
        if knobs:
            (
                await self.control.post("/__fake/scenario", content=orjson.dumps(knobs))
            ).raise_for_status()

    async def log(self) -> dict[str, Any]:
        return (await self.control.get("/__fake/log")).json()

    async def status(self, worker_id: str) -> WorkerStatus | None:
        beat = await self.pool.get(redis_keys.worker_heartbeat(worker_id))
        return WorkerStatus.load(beat) if beat else None

    async def wait_state(
        self, worker_id: str, state: WorkerState, timeout: float = 60
    ) -> WorkerStatus:
        async with asyncio.timeout(timeout):
            while True:
                status = await self.status(worker_id)
                if status is not None and status.state is state:
                    return status
                await asyncio.sleep(0.05)

    async def models(self, worker_id: str = MAIN) -> list[dict[str, Any]]:
        """The catalog the worker names in its heartbeat."""
        status = await self.status(worker_id)
        assert status is not None and status.catalog is not None
        return orjson.loads(await self.pool.get(redis_keys.catalog(status.catalog)))["models"]

    async def job(self, kind: str = "chat", **changes: Any) -> CompletionJob:
        """A job for the first listed model of `kind` (chat, or reasoning: a thinking model)."""
        for entry in await self.models():
            if entry["organization"] and entry["kind"] == kind:
                fields = {
                    "id": f"req-{time.monotonic_ns()}",
                    "model": entry["name"],
                    "model_id": entry["ids"]["chat"],
                    "prompt": "Say something about streams",
                    "created_at": time.time(),
                }
                return CompletionJob.model_validate({**fields, **changes})
        raise LookupError(kind)

    async def submit(self, job: CompletionJob, queue_name: str = redis_keys.SHARED_QUEUE) -> None:
        await job_queue.enqueue(self.pool, job, queue_name, expires_s=30)

    async def events(self, job_id: str, timeout: float = 30) -> list[Event]:
        """Every event of the job, up to its `done`."""
        key, last, found = redis_keys.job_events(job_id), "0", []
        async with asyncio.timeout(timeout):
            while True:
                for _, entries in await self.pool.xread({key: last}, block=500) or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        found.append(events.decode(fields))
                        if found[-1]["t"] == "done":
                            return found


@contextlib.asynccontextmanager
async def running(stack: Stack, worker_id: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run(stack.settings(worker_id)))
    try:
        await stack.wait_state(worker_id, WorkerState.READY)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[str, str]]:
    with redis_server(tmp) as redis_url, fake_arena(tmp) as arena:
        yield redis_url, arena


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("worker-run")
    with servers(tmp) as (redis_url, arena):
        pool = await redis_client.arq_pool(Settings(redis_url=redis_url))
        stack = Stack(redis_url, arena, tmp / "state", pool)
        try:
            async with running(stack, MAIN):
                yield stack
        finally:
            await stack.control.aclose()
            await pool.aclose()


@pytest.fixture
async def main(stack: Stack) -> Stack:
    """The stack with the main worker ready and the fake arena back to its defaults."""
    await stack.scenario()
    await stack.wait_state(MAIN, WorkerState.READY, timeout=15)
    return stack


def joined(found: list[Event], kind: str) -> str:
    return "".join(event["text"] for event in found if event["t"] == kind)


async def test_the_worker_publishes_the_catalog_and_a_ready_heartbeat(main: Stack) -> None:
    status = await main.status(MAIN)
    assert status is not None and status.state is WorkerState.READY and status.catalog
    catalog = orjson.loads(await main.pool.get(redis_keys.catalog(status.catalog)))
    assert time.time() - catalog["updated_at"] < 600
    assert len(catalog["models"]) > 100
    assert (status.capacity, status.busy, status.queue) == (2, 0, redis_keys.worker_queue(MAIN))
    assert "gemini-2.5-pro" in status.models and status.catalog_source == "endpoint"
    assert MAIN.encode() in await main.pool.smembers(redis_keys.WORKERS)
    assert await main.pool.pttl(redis_keys.worker_heartbeat(MAIN)) > 0  # expires if the worker dies


@pytest.mark.parametrize("kind", ["chat", "reasoning"])
async def test_an_answer_relays_exactly_what_the_arena_streamed(main: Stack, kind: str) -> None:
    job = await main.job(kind)
    await main.submit(job)
    found = await main.events(job.id)

    [streamed] = (await main.log())["streams"]
    assert streamed["models"]["a"] == job.model and streamed["status"] == "finished"
    assert joined(found, "text") == streamed["text"]["a"] != ""
    assert joined(found, "reasoning") == streamed["reasoning"]["a"]
    assert (kind == "reasoning") == bool(streamed["reasoning"]["a"])
    assert found[0] == events.accepted(MAIN, 0)
    assert found[-2:] == [events.finish("a", "stop"), events.done()]
    assert 0 < await main.pool.ttl(redis_keys.job_events(job.id)) <= 3600


async def test_a_cancelled_job_stops_the_answer_and_the_worker_serves_the_next(main: Stack) -> None:
    await main.scenario(line_delay_seconds=0.2)
    job = await main.job(prompt="a long answer " * 20)
    await main.submit(job)
    async with asyncio.timeout(20):
        while not any(
            events.decode(fields)["t"] == "text"
            for _, fields in await main.pool.xrange(redis_keys.job_events(job.id))
        ):
            await asyncio.sleep(0.02)

    await job_queue.cancel(main.pool, job.id, attempts=0, ttl_s=60)
    await job_queue.wake(main.pool, redis_keys.SHARED_QUEUE)
    found = await main.events(job.id, timeout=10)
    assert found[-2]["t"] == "error" and found[-2]["kind"] == "cancelled"

    log = await main.log()
    [streamed] = log["streams"]
    # The page aborts its fetch first (the arena sees the disconnect), then calls stop.
    assert streamed["status"] in ("disconnected", "stopped")
    assert len(streamed["lines"]) < 10
    stops = [request for request in log["requests"] if "/stream/stop/" in request["path"]]
    assert [(stop["path"], stop["status"]) for stop in stops] == [
        (
            f"/nextjs-api/stream/stop/{streamed['session_id']}/messages/{streamed['message_ids']['a']}",
            200,
        )
    ]

    await main.scenario()
    following = await main.job()
    await main.submit(following)
    served = await main.events(following.id)
    assert served[0] == events.accepted(MAIN, 0)
    assert joined(served, "text") == (await main.log())["streams"][0]["text"]["a"]


async def test_a_refused_recaptcha_token_is_retried_once_with_a_new_one(main: Stack) -> None:
    await main.scenario(failures=[{"kind": "recaptcha_403", "times": 1}])
    job = await main.job()
    await main.submit(job)
    found = await main.events(job.id)

    creates = [
        r for r in (await main.log())["requests"] if r["path"].endswith("/create-evaluation")
    ]
    assert [r["status"] for r in creates] == [403, 200]
    first, second = (r["body"] for r in creates)
    assert first["recaptchaV3Token"] != second["recaptchaV3Token"]
    assert first["modelAMessageId"] != second["modelAMessageId"] and first["id"] != second["id"]
    assert joined(found, "text") == (await main.log())["streams"][0]["text"]["a"] != ""
    assert found[-1] == events.done()


async def test_a_fresh_token_refused_too_flags_the_account_until_its_call_alone_goes_through(
    main: Stack,
) -> None:
    await main.scenario(failures=[{"kind": "recaptcha_403", "times": 2}])
    job = await main.job()
    await main.submit(job)
    # No other account could take the job: it ends at once saying why, rather than waiting for
    # the flag to lift.
    found = await main.events(job.id)
    assert [e["t"] for e in found if e["t"] in ("accepted", "error")] == ["accepted", "error"]
    error = next(e for e in found if e["t"] == "error")
    assert error["kind"] == "no_worker" and "security check refused" in error["message"]
    status = await main.wait_state(MAIN, WorkerState.FLAGGED, timeout=10)
    assert status.next_try is not None and 0 < status.next_try - time.time() <= FLAG_PAUSE_S

    # After the pause, its call alone finds the flag gone, and it serves again.
    await main.wait_state(MAIN, WorkerState.READY, timeout=FLAG_PAUSE_S + 20)
    creates = [
        r for r in (await main.log())["requests"] if r["path"].endswith("/create-evaluation")
    ]
    assert [r["status"] for r in creates] == [403, 403, 400]
    alone = creates[2]
    known = {model_id for m in await main.models() for model_id in m["ids"].values()}
    assert alone["body"]["modelAId"] not in known
    assert alone["received_at"] - creates[1]["received_at"] >= FLAG_PAUSE_S


async def test_a_429_with_no_other_worker_is_a_rate_limited_error(main: Stack) -> None:
    await main.scenario(failures=[{"kind": "rate_limit_429", "retry_after": 2}])
    job = await main.job()
    await main.submit(job)
    found = await main.events(job.id)
    error = found[-2]
    assert (error["t"], error["kind"], error["retry_after"], error["status"]) == (
        "error",
        "rate_limited",
        2.0,
        429,
    )

    status = await main.status(MAIN)
    assert status is not None and status.state is WorkerState.COOLING
    assert status.until is not None and 0 < status.until - time.time() <= 2.5
    await main.wait_state(MAIN, WorkerState.READY, timeout=5)  # and back once the limit is over


async def test_a_job_that_already_streamed_content_is_not_streamed_again(main: Stack) -> None:
    job = await main.job()
    await main.pool.xadd(
        redis_keys.job_events(job.id), events.encode(events.text("a", "half an answer"))
    )
    await main.submit(job)
    found = await main.events(job.id)
    assert [event["t"] for event in found] == ["text", "error", "done"]
    assert found[1]["kind"] == "worker_lost"
    assert (await main.log())["streams"] == []


async def test_a_job_cancelled_before_it_starts_never_reaches_the_arena(main: Stack) -> None:
    job = await main.job()
    await main.pool.set(redis_keys.job_cancel(job.id), b"1", ex=60)
    await main.submit(job)
    found = await main.events(job.id)
    assert [(event["t"], event.get("kind")) for event in found] == [
        ("error", "cancelled"),
        ("done", None),
    ]
    assert (await main.log())["streams"] == []


async def test_a_rate_limited_job_moves_to_another_ready_worker(main: Stack) -> None:
    async with running(main, "w-other") as other:
        await main.scenario(failures=[{"kind": "rate_limit_429", "retry_after": 1}])
        job = await main.job()
        await main.submit(job, redis_keys.worker_queue(MAIN))
        found = await main.events(job.id)

        assert found[:3] == [
            events.accepted(MAIN, 0),
            events.queued(1, redis_keys.SHARED_QUEUE),  # back on the queue, then taken
            events.accepted("w-other", 1),
        ]
        assert joined(found, "text") == (await main.log())["streams"][0]["text"]["a"] != ""
        assert found[-1] == events.done()
        assert not [event for event in found if event["t"] == "error"]

    assert other.done()
    assert await main.status("w-other") is None  # a stopped worker takes its heartbeat away
    await main.wait_state(MAIN, WorkerState.READY, timeout=5)
