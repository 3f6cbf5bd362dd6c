"""The 200 answer of a stream endpoint: one body chunk per line, paced, interruptible."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from starlette.types import Receive, Scope, Send

from tests.fakearena.state import StreamRecord


async def paced(
    plan: Sequence[str], record: StreamRecord, delay: float, pause: float = 0.0
) -> AsyncIterator[bytes]:
    """The plan's lines, `delay` apart (no sleep at all for 0), `pause` after the first one.

    Each line is recorded as it is handed over; an interrupted stream ends before its next line.
    """
    for index, entry in enumerate(plan):
        if record.interrupted:
            return
        sent_at = time.time()
        yield (entry + "\n").encode()
        record.lines.append(entry)
        record.sent_at.append(sent_at)
        wait = pause if index == 0 and pause else delay
        if wait:
            await record.pause(wait)


class LineStream:
    """ASGI response: the stream headers, then each line as its own body chunk."""

    def __init__(
        self,
        lines: AsyncGenerator[bytes, None],
        record: StreamRecord,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self.lines = lines
        self.record = record
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        # uvicorn drops writes to a closed connection silently; watch for the disconnect instead.
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            async with contextlib.aclosing(self.lines):
                async for chunk in self.lines:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            self.record.close()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.record.interrupt("disconnected")
