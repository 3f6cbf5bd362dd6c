"""A small asyncio client for the Chrome DevTools Protocol, over one target's WebSocket.

Chrome pushes events (such as `Runtime.bindingCalled`) on the same socket as command replies;
one reader task routes replies to their waiting futures and events to plain callbacks, so an
event reaches Python as soon as its frame arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

logger = logging.getLogger(__name__)

Params = dict[str, Any]
Listener = Callable[[Params], None]


class CDPError(Exception):
    """A command the browser answered with an error."""

    def __init__(self, method: str, error: Params) -> None:
        super().__init__(f"{method}: {error.get('message', error)}")
        self.code: int | None = error.get("code")


class CDPConnection:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Params]] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._on_closed: list[Callable[[], None]] = []
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    @classmethod
    async def connect(cls, url: str) -> CDPConnection:
        # Page HTML can be megabytes; the socket is local, so no compression and no proxy.
        ws = await websockets.connect(url, max_size=None, compression=None, proxy=None)
        return cls(ws)

    def on(self, method: str, listener: Listener) -> None:
        """Call `listener(params)` for every `method` event; it runs on the reader, so keep it quick."""
        self._listeners.setdefault(method, []).append(listener)

    def on_closed(self, listener: Callable[[], None]) -> None:
        """Call `listener()` once the socket is gone (the browser closed or crashed)."""
        self._on_closed.append(listener)

    async def send(self, method: str, params: Params | None = None) -> Params:
        if self._reader.done():
            raise ConnectionError("DevTools connection is closed")
        command_id = next(self._ids)
        future: asyncio.Future[Params] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            await self._ws.send(
                orjson.dumps({"id": command_id, "method": method, "params": params or {}}).decode()
            )
            reply = await future
        finally:
            self._pending.pop(command_id, None)
        if "error" in reply:
            raise CDPError(method, reply["error"])
        return reply.get("result", {})

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._reader)

    async def close(self) -> None:
        await self._ws.close()
        await self._reader

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = orjson.loads(raw)
                if "id" in message:
                    self._reply(message)
                else:
                    self._dispatch(message.get("method", ""), message.get("params", {}))
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))
            for listener in self._on_closed:
                listener()

    def _reply(self, message: Params) -> None:
        future = self._pending.get(message["id"])
        if future is not None and not future.done():
            future.set_result(message)

    def _dispatch(self, method: str, params: Params) -> None:
        for listener in self._listeners.get(method, ()):
            try:
                listener(params)
            except Exception:
                logger.exception("listener for %s failed", method)


async def target_url(debugger_address: str, target_id: str) -> str:
    """The `webSocketDebuggerUrl` of one target of the browser at `debugger_address`."""
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        response = await client.get(f"http://{debugger_address}/json/list")
    response.raise_for_status()
    for target in response.json():
        if target.get("id") == target_id:
            return target["webSocketDebuggerUrl"]
    raise LookupError(f"no DevTools target {target_id} at {debugger_address}")
