"""Every answer's Redis Stream that a gateway relays, read on a few connections.

Read one by one, each answer would hold a connection of its own in a blocking XREAD and cost a
round trip per chunk: at thousands of answers, thousands of connections, and most of a core at
tens of thousands of chunks a second. Here a reader task reads up to `PER_READER` streams with
one XREAD and hands each answer what came for it; more readers are started as answers come.

Each answer opens a `Subscription`, whose `xread` answers as redis-py's does for its one stream,
so that it reads in place of the client. It is read from the id its first `xread` names; its
entries wait until it asks for them (nothing is lost however late it asks) and are let go once
asked past. Two subscriptions to one stream (a client that came back while its first connection
lingers) are read by different readers. A blocked XREAD only sees the streams it was sent with:
a new one pokes its reader awake through a stream of the reader's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.storage import redis_keys

log = logging.getLogger(__name__)

#: Streams one XREAD reads. An XREAD costs a little for every stream it names, and answers that
#: chunk slowly wake their reader about once a chunk: few enough streams that this stays small
#: beside an XREAD's own cost, enough that busy answers share it.
PER_READER = 64
#: Entries taken a stream per XREAD.
BATCH = 256
#: A reader's blocked XREAD returns after this long even if nothing came.
BLOCK_MS = 5000
#: After entries came, a reader waits this long before its next XREAD, so that busy streams are
#: read in batches rather than an XREAD (of every stream) per chunk: the latency it adds is small
#: beside a model's own pace.
GATHER_S = 0.002
#: A stream nobody asked for this long is let go (an answer that ended without saying so).
IDLE_S = 600.0
_RETRY_S = 0.2

StreamId = tuple[int, int]
Entry = tuple[bytes, dict[bytes, bytes]]


def stream_id(value: bytes | str) -> StreamId:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Subscription:
    """One answer's stream, as its reader sees it: the entries read ahead of it."""

    def __init__(self, reads: StreamReads, key: str) -> None:
        self._reads = reads
        self.key = key
        #: The last id read off Redis; None until the first `xread` says where to start.
        self.cursor: bytes | str | None = None
        self.entries: deque[Entry] = deque()
        self.arrived = asyncio.Event()
        self.asked_at = time.monotonic()

    async def xread(
        self, streams: Mapping[Any, Any], count: int | None = None, block: int | None = None
    ) -> list[list[Any]]:
        """redis-py's XREAD for this stream: entries after the id given, waiting up to `block`
        ms for some (not at all when None)."""
        [last] = streams.values()
        if self.cursor is None:
            self.cursor = last
            await self._reads.start(self)
        entries = self.after(last, count or BATCH)
        if not entries and block:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(block / 1000):
                    await self.arrived.wait()
            entries = self.after(last, count or BATCH)
        return [[self.key.encode(), entries]] if entries else []

    def close(self) -> None:
        """Stop reading (the answer has ended, or its client gone)."""
        self._reads.stop(self)

    def add(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)
        self.cursor = entries[-1][0]
        self.arrived.set()

    def after(self, last: bytes | str, count: int) -> list[Entry]:
        """Entries after `last` (those up to it are let go), at most `count`."""
        self.asked_at = time.monotonic()
        seen = stream_id(last)
        while self.entries and stream_id(self.entries[0][0]) <= seen:
            self.entries.popleft()
        if not self.entries:
            self.arrived.clear()
        return [self.entries[i] for i in range(min(count, len(self.entries)))]


def _xread_reply(response: Any, **options: Any) -> list[tuple[bytes, list[Entry]]]:
    """An XREAD reply as it comes (RESP2), each entry's fields made a dict at C speed: redis-py's
    own parsing, a Python loop an entry, was a sixth of a busy gateway's time."""
    return [
        (
            key,
            [
                (entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
                for entry_id, flat in entries
            ],
        )
        for key, entries in response or ()
    ]


class _Reader:
    """One connection, one XREAD at a time over its streams."""

    def __init__(self, redis: Redis, poker: Redis) -> None:
        self.redis = redis
        if redis.connection_pool.connection_kwargs.get("protocol") not in (3, "3"):
            redis.set_response_callback("XREAD", _xread_reply)
        self._poker = poker
        self.streams: dict[str, Subscription] = {}
        self._wake = redis_keys.stream_reader_wake(uuid.uuid4().hex)
        self._woken: bytes | str = "0-0"
        self._poked = False
        self.task = asyncio.create_task(self._run(), name="stream-reader")

    async def add(self, stream: Subscription) -> None:
        self.streams[stream.key] = stream
        if self._poked:
            return  # its next XREAD is not sent yet, or will be woken already
        self._poked = True
        async with self._poker.pipeline(transaction=False) as pipe:
            pipe.xadd(self._wake, {b"w": b"1"}, maxlen=1)
            pipe.expire(self._wake, 2 * BLOCK_MS // 1000)
            await pipe.execute()

    async def _run(self) -> None:
        while True:
            self._poked = False
            wanted: dict[Any, Any] = {self._wake: self._woken}
            wanted.update((key, s.cursor) for key, s in self.streams.items())
            try:
                reply = await self.redis.xread(wanted, count=BATCH, block=BLOCK_MS)
            except RedisError as exc:  # retried already: Redis is away a while
                log.warning("reading answers' streams: %s", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            for key, entries in reply or ():
                name = key.decode()
                if name == self._wake:
                    self._woken = entries[-1][0]
                elif (stream := self.streams.get(name)) is not None:
                    stream.add(entries)
            if reply:
                await asyncio.sleep(GATHER_S)


class StreamReads:
    """The gateway's reads of its answers' streams (see the module's doc)."""

    def __init__(self, connect: Callable[[], Redis], poker: Redis) -> None:
        #: Makes a client of its own for each reader (its connection stays in XREAD).
        self._connect = connect
        self._poker = poker
        self._readers: list[_Reader] = []
        self._where: dict[Subscription, _Reader] = {}
        self._swept_at = time.monotonic()

    def open(self, key: str) -> Subscription:
        """A subscription to `key`, read from where its first `xread` says."""
        return Subscription(self, key)

    async def start(self, subscription: Subscription) -> None:
        self._let_go_of_idle()
        key = subscription.key
        reader = next(
            (r for r in self._readers if len(r.streams) < PER_READER and key not in r.streams),
            None,
        )
        if reader is None:
            reader = _Reader(self._connect(), self._poker)
            self._readers.append(reader)
        self._where[subscription] = reader
        await reader.add(subscription)

    def stop(self, subscription: Subscription) -> None:
        reader = self._where.pop(subscription, None)
        if reader is not None and reader.streams.get(subscription.key) is subscription:
            del reader.streams[subscription.key]

    async def close(self) -> None:
        for reader in self._readers:
            reader.task.cancel()
        await asyncio.gather(*(r.task for r in self._readers), return_exceptions=True)
        for reader in self._readers:
            await reader.redis.aclose(close_connection_pool=True)
        self._readers.clear()
        self._where.clear()

    @property
    def reading(self) -> int:
        return len(self._where)

    def _let_go_of_idle(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < IDLE_S / 10:
            return
        self._swept_at, cutoff = now, now - IDLE_S
        for subscription in [s for s in self._where if s.asked_at < cutoff]:
            log.warning(
                "stream %s: not asked for in %g s; no longer read", subscription.key, IDLE_S
            )
            self.stop(subscription)
