"""The request log: every request but the control API's, with the headers that matter and the
address it came from."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.fakearena.identity import resolve
from tests.fakearena.state import Arena

CONTROL_PREFIX = "/__fake/"


def peer_of(scope: Scope) -> dict[str, Any] | None:
    """The TCP peer of the connection (never a forwarded-for header): who really called."""
    client = scope.get("client")
    return {"host": client[0], "port": client[1]} if client else None


def _parsed(body: bytes) -> Any:
    if body[:1] not in (b"{", b"["):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


class Recorder:
    def __init__(self, app: ASGIApp, arena: Arena) -> None:
        self.app = app
        self.arena = arena

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        received_at = time.time()
        body = bytearray()

        async def teed_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.arena.requests.append(
                    self._entry(scope, bytes(body), message["status"], received_at)
                )
            await send(message)

        await self.app(scope, teed_receive, noting_send)

    @staticmethod
    def _entry(scope: Scope, body: bytes, status: int, received_at: float) -> dict[str, Any]:
        connection = HTTPConnection(scope)
        identity = resolve(connection.cookies)
        return {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "body": _parsed(body),
            "body_bytes": len(body),
            "content_type": connection.headers.get("content-type"),
            "next_action": connection.headers.get("next-action"),
            "cookies": sorted(connection.cookies),
            "identity": identity.key if identity else None,
            "status": status,
            "received_at": received_at,
            "peer": peer_of(scope),
        }
