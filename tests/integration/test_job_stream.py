"""A job's event stream as a worker writes it (worker.arena.completion.JobStream), on a real Redis."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from shared import events
from shared.jobs import CompletionJob
from shared.storage import job_queue, redis_keys
from worker.arena.completion import JobStream

KEY = redis_keys.job_events("j")


def stream(redis: Redis, attempt: int = 0) -> JobStream:
    return JobStream(redis, "j", attempt, ttl_s=30, running_ttl_s=600)


async def entries(redis: Redis) -> list[tuple[str, str]]:
    return [(i.decode(), events.decode(f)["t"]) for i, f in await redis.xrange(KEY)]


async def test_entries_are_numbered_by_attempt_and_live_while_the_job_may_run(
    redis: Redis,
) -> None:
    await redis.hset(redis_keys.job_request("j"), "job", "{}")
    first = stream(redis)
    await first.add([events.accepted("w", 0)])
    assert 590 < await redis.ttl(KEY) <= 600
    await first.add([events.text("a", "Hi"), events.text("a", "!")])
    await first.close(events.finish("a", "stop"))
    assert await entries(redis) == [
        ("0-1", "accepted"),
        ("0-2", "text"),
        ("0-3", "text"),
        ("0-4", "finish"),
        ("0-5", "done"),
    ]
    assert 0 < await redis.ttl(KEY) <= 30
    assert 0 < await redis.ttl(redis_keys.job_request("j")) <= 30


async def test_a_write_sent_again_after_its_reply_was_lost_is_not_written_twice(
    redis: Redis,
) -> None:
    # As a Redis restart can make it: the entries were taken, the reply never came.
    await redis.xadd(KEY, events.encode(events.accepted("w", 0)), id="0-1")
    await redis.xadd(KEY, events.encode(events.text("a", "Hi")), id="0-2")
    again = stream(redis)
    await again.add([events.accepted("w", 0)])
    await again.add([events.text("a", "Hi"), events.text("a", " there")])
    assert await entries(redis) == [("0-1", "accepted"), ("0-2", "text"), ("0-3", "text")]


async def test_a_later_attempt_writes_after_the_earlier_ones(redis: Redis) -> None:
    await stream(redis, 0).add([events.accepted("w1", 0)])
    await stream(redis, 1).add([events.accepted("w2", 1)])
    assert await entries(redis) == [("0-1", "accepted"), ("1-1", "accepted")]


async def test_an_attempt_run_again_writes_after_what_it_wrote_before(redis: Redis) -> None:
    before = stream(redis)
    await before.add([events.accepted("w1", 0), events.text("a", "Hel")])
    rerun = stream(redis)
    rerun.follow("0-2")
    await rerun.close(events.error("worker_lost", "the worker serving this request stopped"))
    assert [t for _, t in await entries(redis)] == ["accepted", "text", "error", "done"]


async def test_after_entries_numbered_by_another_hand_redis_numbers_the_rest(
    redis: Redis,
) -> None:
    await redis.xadd(KEY, events.encode(events.text("a", "Hel")))  # Redis's own id: a time
    late = stream(redis)
    late.follow((await redis.xrange(KEY))[-1][0].decode())
    await late.close(events.error("worker_lost", "the worker serving this request stopped"))
    assert [t for _, t in await entries(redis)] == ["text", "error", "done"]


async def test_a_job_put_back_is_told_once_between_its_attempts(redis: Redis) -> None:
    job = CompletionJob(id="j", model="m", model_id="x", prompt="p", created_at=time.time())
    before = stream(redis)
    await before.add([events.accepted("w1", 0)])
    assert await job_queue.requeue(redis, job, timeout_s=60)
    await before.add([events.text("a", "late")])  # put back: what it writes now is refused
    await job_queue.requeue(redis, job, timeout_s=60)  # sent again, its reply lost
    after = stream(redis, 1)
    after.follow((await redis.xrange(KEY))[-1][0].decode())
    await after.add([events.accepted("w2", 1)])
    assert await entries(redis) == [("0-1", "accepted"), ("1-0", "queued"), ("1-1", "accepted")]
    assert events.decode((await redis.xrange(KEY))[1][1]) == events.queued(
        1, redis_keys.SHARED_QUEUE
    )


async def test_a_stream_begun_by_a_job_put_back_lives_while_the_job_may(redis: Redis) -> None:
    job = CompletionJob(id="j", model="m", model_id="x", prompt="p", created_at=time.time())
    assert await job_queue.requeue(redis, job, timeout_s=60)
    assert await entries(redis) == [("1-0", "queued")]
    assert 55 < await redis.ttl(KEY) <= 60
