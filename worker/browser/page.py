"""The arena page as the worker uses it: requests sent by the page's own fetch(), their chunks
pushed back through a CDP binding, reCAPTCHA tokens minted in the page.

`page.js` is installed for every new document and in the current one; it talks back through
`Runtime.addBinding`, whose calls arrive as `Runtime.bindingCalled` events on our own DevTools
socket, so nothing here polls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from shared.arena.payloads import ArenaRequest
from shared.arena.site import (
    SECURITY_CHECK_DIALOG,
    SECURITY_CHECK_TITLE,
    V2_RESPONSE_FIELD,
    V3_BADGE,
)
from worker.browser.cdp import CDPConnection, CDPError, Params

SCRIPT = resources.files(__package__).joinpath("page.js").read_text(encoding="utf-8").strip()


class PageError(Exception):
    """A script evaluated in the page threw."""


class FetchFailed(Exception):
    """The page's fetch() rejected: network error, abort, or the document went away."""

    def __init__(self, message: str, *, aborted: bool = False) -> None:
        super().__init__(message)
        self.aborted = aborted


@dataclass(frozen=True, slots=True)
class SecurityCheck:
    """The site's security check as the page shows it to a flagged account."""

    #: Its dialog is on the page.
    shown: bool
    #: What its v2 checkbox left once a person passed it: the next call carries it.
    token: str | None


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: dict[str, str]


class PageFetch:
    """One request the page is running; its messages arrive in order."""

    def __init__(self) -> None:
        self._messages: asyncio.Queue[Params] = asyncio.Queue()
        self.finished = False

    def deliver(self, message: Params) -> None:
        self._messages.put_nowait(message)

    async def head(self) -> Head:
        message = await self._messages.get()
        if message["k"] != "head":
            self._finish(message)
        return Head(message["status"], message["headers"])

    async def chunks(self) -> AsyncIterator[str]:
        """The body as it arrives; chunks that queued up meanwhile come joined as one."""
        while not self.finished:
            batch = [await self._messages.get()]
            while not self._messages.empty():
                batch.append(self._messages.get_nowait())
            text = "".join(message["text"] for message in batch if message["k"] == "chunk")
            if text:
                yield text
            self._finish(batch[-1])

    async def text(self) -> str:
        return "".join([chunk async for chunk in self.chunks()])

    def _finish(self, message: Params) -> None:
        kind = message["k"]
        if kind == "end":
            self.finished = True
        elif kind == "fail":
            self.finished = True
            raise FetchFailed(message["message"], aborted=message.get("aborted", False))


class ArenaPage:
    def __init__(self, cdp: CDPConnection) -> None:
        self._cdp = cdp
        # Random names: nothing fixed for the site's scripts to look for.
        self._binding = f"_{secrets.token_hex(6)}"
        self._api = f"_{secrets.token_hex(6)}"
        self._ids = itertools.count(1)
        self._fetches: dict[int, PageFetch] = {}
        # Held only so that the task is not garbage-collected mid-flight (asyncio keeps weak refs).
        self._rebinding: asyncio.Task[None] | None = None
        cdp.on("Runtime.bindingCalled", self._on_binding)
        cdp.on("Page.frameNavigated", self._on_navigated)
        cdp.on_closed(lambda: self._fail_all("the browser connection closed"))

    @classmethod
    async def attach(cls, cdp: CDPConnection) -> ArenaPage:
        page = cls(cdp)
        source = (
            f"{SCRIPT}({orjson.dumps(page._binding).decode()}, {orjson.dumps(page._api).decode()});"
        )
        await page._bind()
        await cdp.send("Page.enable")
        await cdp.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})
        await page.evaluate(source)
        return page

    @property
    def closed(self) -> bool:
        return self._cdp.closed

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = await self._cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if details := result.get("exceptionDetails"):
            raise PageError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def html(self) -> str:
        return await self.evaluate("document.documentElement.outerHTML")

    async def recaptcha_ready(self) -> bool:
        return bool(await self._invoke("ready"))

    async def security_check(self) -> SecurityCheck:
        """Whether the page shows the site's security check, and a person's pass of it."""
        found = await self._invoke(
            "security", SECURITY_CHECK_DIALOG, SECURITY_CHECK_TITLE, V2_RESPONSE_FIELD, V3_BADGE
        )
        return SecurityCheck(bool(found["shown"]), found["token"] or None)

    async def mint_token(self, site_key: str, action: str) -> str:
        """A fresh reCAPTCHA Enterprise token, minted by the page's own grecaptcha."""
        return await self._invoke("mint", site_key, action, await_promise=True)

    async def call(self, request: ArenaRequest) -> tuple[int, str]:
        """Send a small request from the page and return its status and body."""
        answer = await self._invoke(
            "call", request.method, request.path, request.body, await_promise=True
        )
        return answer["status"], answer["text"]

    async def get(self, url: str | None = None) -> tuple[int, str, str]:
        """GET `url` (default: the page's own) from the page: status, media type and text."""
        answer = await self._invoke("get", url, await_promise=True)
        return answer["status"], answer["type"], answer["text"]

    async def action(self, action_id: str, args: list[Any]) -> tuple[int, str]:
        """Run one of the site's server actions from the page: status and RSC answer."""
        answer = await self._invoke("action", action_id, args, await_promise=True)
        return answer["status"], answer["text"]

    async def put(self, url: str, data: bytes, content_type: str) -> tuple[int, str]:
        """PUT `data` to a presigned storage URL from the page: status and answer."""
        encoded = base64.b64encode(data).decode()
        answer = await self._invoke("put", url, encoded, content_type, await_promise=True)
        return answer["status"], answer["text"]

    async def read(self, url: str) -> tuple[int, str, str]:
        """GET `url` from the page: status, media type and the bytes in base64."""
        answer = await self._invoke("read", url, await_promise=True)
        return answer["status"], answer["type"], answer["data"]

    async def scripts(self, marker: str) -> list[str]:
        """The texts of the page's own scripts that contain `marker`."""
        return await self._invoke("scripts", marker, await_promise=True)

    @contextlib.asynccontextmanager
    async def fetch(self, request: ArenaRequest) -> AsyncIterator[PageFetch]:
        """Start `request` in the page; leaving the block before its end aborts it there."""
        request_id = next(self._ids)
        fetch = self._fetches[request_id] = PageFetch()
        try:
            await self._invoke("start", request_id, request.method, request.path, request.body)
            yield fetch
        finally:
            del self._fetches[request_id]
            if not fetch.finished:
                with contextlib.suppress(ConnectionError, CDPError, PageError):
                    await self._invoke("abort", request_id)

    async def _invoke(self, name: str, *args: Any, await_promise: bool = False) -> Any:
        arguments = ", ".join(orjson.dumps(arg).decode() for arg in args)
        return await self.evaluate(
            f"window.{self._api}.{name}({arguments})", await_promise=await_promise
        )

    async def _bind(self) -> None:
        with contextlib.suppress(ConnectionError, CDPError):
            await self._cdp.send("Runtime.addBinding", {"name": self._binding})

    def _on_binding(self, params: Params) -> None:
        if params.get("name") != self._binding:
            return
        message = orjson.loads(params["payload"])
        fetch = self._fetches.get(message.get("i"))
        if fetch is not None:
            fetch.deliver(message)

    def _on_navigated(self, params: Params) -> None:
        if params.get("frame", {}).get("parentId"):
            return
        # Without Runtime.enable (which pages can detect) a binding does not outlive its
        # document: give the new one the binding again.
        self._rebinding = asyncio.create_task(self._bind())
        # The document that ran these fetches is gone: nothing more will come for them.
        self._fail_all("the page navigated away")

    def _fail_all(self, message: str) -> None:
        for fetch in self._fetches.values():
            fetch.deliver({"k": "fail", "message": message, "aborted": False})
