"""The gateway's reads of answers' streams, shared on a few connections, against a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.answers import stream_reads
from gateway.answers.stream_reads import StreamReads, Subscription


@pytest.fixture
async def reads(redis: Redis, redis_url: str) -> AsyncIterator[StreamReads]:
    made = StreamReads(lambda: Redis.from_url(redis_url), redis)
    try:
        yield made
    finally:
        await made.close()


async def everything(sub: Subscription, count: int, timeout_s: float = 5) -> list[bytes]:
    """What `sub` hands over, read as EventReader reads, until `count` entries came."""
    got: list[bytes] = []
    last: bytes | str = "0-0"
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} came"
        for _key, entries in await sub.xread({sub.key: last}, count=256, block=500):
            for entry_id, fields in entries:
                last = entry_id
                got.append(fields[b"n"])
    return got


async def test_nothing_written_before_or_after_the_first_read_is_lost(
    redis: Redis, reads: StreamReads
) -> None:
    for n in range(3):
        await redis.xadd("s", {"n": str(n)})
    sub = reads.open("s")
    reading = asyncio.create_task(everything(sub, 6))
    await asyncio.sleep(0.1)
    for n in range(3, 6):
        await redis.xadd("s", {"n": str(n)})
    assert await reading == [b"0", b"1", b"2", b"3", b"4", b"5"]


async def test_a_new_stream_is_read_at_once_though_its_reader_is_blocked(
    redis: Redis, reads: StreamReads
) -> None:
    first = reads.open("first")
    waiting = asyncio.create_task(first.xread({"first": "0-0"}, block=3000))
    await asyncio.sleep(0.2)  # the reader now blocks on `first` alone
    await redis.xadd("second", {"n": "1"})
    started = time.monotonic()
    assert await everything(reads.open("second"), 1) == [b"1"]
    # Well inside the reader's own block time: it was woken for the new stream.
    assert time.monotonic() - started < 0.5 < stream_reads.BLOCK_MS / 1000
    waiting.cancel()


async def test_many_streams_share_few_connections(
    redis: Redis, reads: StreamReads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_reads, "PER_READER", 50)
    subs = [reads.open(f"s{n}") for n in range(300)]
    readers = [asyncio.create_task(everything(sub, 2)) for sub in subs]
    await asyncio.sleep(0.3)
    for n in range(300):
        await redis.xadd(f"s{n}", {"n": b"a"})
        await redis.xadd(f"s{n}", {"n": str(n)})
    got = await asyncio.gather(*readers)
    assert got == [[b"a", str(n).encode()] for n in range(300)]
    clients = await redis.client_list()
    blocked = [c for c in clients if c["cmd"] == "xread"]
    assert len(blocked) == 300 // 50  # one per reader, not one per stream
    assert reads.reading == 300


async def test_two_subscriptions_to_one_stream_each_get_it_all(
    redis: Redis, reads: StreamReads
) -> None:
    one, two = reads.open("s"), reads.open("s")
    both = asyncio.gather(everything(one, 3), everything(two, 3))
    for n in range(3):
        await redis.xadd("s", {"n": str(n)})
    assert await both == [[b"0", b"1", b"2"]] * 2


async def test_a_closed_subscription_is_no_longer_read(redis: Redis, reads: StreamReads) -> None:
    sub = reads.open("s")
    await redis.xadd("s", {"n": "1"})
    assert await everything(sub, 1) == [b"1"]
    sub.close()
    assert reads.reading == 0
