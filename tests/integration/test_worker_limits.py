"""The arena's rate limits as a worker meets them, on a real Redis (no browser needed)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from shared import events
from shared.arena.errors import RateLimited
from shared.fleet.worker_status import WorkerState
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import redis_keys
from worker.arena.completion import Completion, JobStream
from worker.state import StateMachine


def completion(redis: Redis, machine: StateMachine) -> Completion:
    def no_page():
        raise AssertionError("no request may reach the arena here")

    return Completion(
        worker_id="w-me",
        settings=Settings(redis_url="redis://unused"),
        redis=redis,
        page=no_page,
        tokens=no_page,
        machine=machine,
        on_blocked=lambda error: None,
    )


def job(job_id: str, modality: str) -> CompletionJob:
    return CompletionJob(
        id=job_id, model="m", model_id="x", modality=modality, prompt="p", created_at=time.time()
    )


async def test_an_image_rate_limit_leaves_the_worker_chatting(redis: Redis) -> None:
    machine = StateMachine("w-me", 4)
    machine.to(WorkerState.READY, reason="page usable")
    worker = completion(redis, machine)
    limit = RateLimited("Too many images", retry_after=60, modality="image")
    assert not await worker._hand_off(job("first", "image"), limit)  # nobody else serves
    assert machine.state is WorkerState.READY  # chats go on

    stream = JobStream(redis, "next-image", 0, ttl_s=30, running_ttl_s=60)
    assert await worker._images_limited(job("next-image", "image"), stream)
    kinds = [events.decode(f) for _, f in await redis.xrange(redis_keys.job_events("next-image"))]
    assert [e["t"] for e in kinds] == ["error", "done"]
    assert kinds[0]["kind"] == "rate_limited" and 0 < kinds[0]["retry_after"] <= 60

    chat = JobStream(redis, "chat", 0, ttl_s=30, running_ttl_s=60)
    assert not await worker._images_limited(job("chat", "chat"), chat)


async def test_a_chat_rate_limit_rests_the_whole_worker(redis: Redis) -> None:
    machine = StateMachine("w-me", 4)
    machine.to(WorkerState.READY, reason="page usable")
    worker = completion(redis, machine)
    await worker._hand_off(job("talk", "chat"), RateLimited("Too many", retry_after=60))
    assert machine.state is WorkerState.COOLING
