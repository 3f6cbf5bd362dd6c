"""The browser layer on its own: real Chromium started by undetected-chromedriver, our CDP client,
the in-page script, against a tiny local site served by this test."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import undetected_chromedriver.patcher

from shared.arena.payloads import ArenaRequest
from shared.settings import Settings
from tests.support.procs import TEST_CHROMIUM_ARGS
from worker.browser.cdp import CDPConnection, target_url
from worker.browser.chromium import Browser
from worker.browser.page import ArenaPage, FetchFailed

pytestmark = pytest.mark.browser

PAGE = b"""<!doctype html><html><head><title>tiny arena</title><script>
window.grecaptcha = {enterprise: {
  ready: (callback) => setTimeout(callback, 5),
  execute: (key, options) => Promise.resolve(key + ':' + options.action),
}};
</script></head><body>tiny</body></html>"""


class Site:
    """What the tiny site received, and the gates a test opens to let a stream go on."""

    def __init__(self) -> None:
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.gates: queue.Queue[None] = queue.Queue()
        self.disconnected = threading.Event()


def handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("set-cookie", "sid=s3cret; Path=/")
            self.send_header("content-length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            site.requests.put(
                {
                    "path": self.path,
                    "body": body,
                    "content-type": self.headers.get("content-type"),
                    "cookie": self.headers.get("cookie"),
                }
            )
            if self.path == "/refused":
                self.reply(429, [b"Too many requests"])
            elif self.path == "/stop":
                self.reply(200, [b"stopped"])
            elif self.path == "/gated":
                # Each chunk waits for the test's go-ahead: a chunk can only be seen before the
                # next is sent if it was pushed, not gathered at the end.
                self.stream(
                    [b'a0:"one"\n', b'a0:"t\xc3', b'\xa9"\n', b'ad:{"finishReason":"stop"}\n'],
                    gated=True,
                )
            elif self.path == "/endless":
                self.stream((b'a0:"x"\n' for _ in range(500)), pause=0.02)

        def reply(self, status: int, parts: list[bytes]) -> None:
            body = b"".join(parts)
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def stream(self, parts: Any, *, gated: bool = False, pause: float = 0.0) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                for part in parts:
                    if gated:
                        site.gates.get(timeout=10)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.flush()
                    if pause:
                        threading.Event().wait(pause)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                site.disconnected.set()

    return Handler


@contextlib.contextmanager
def tiny_site() -> Iterator[tuple[str, Site]]:
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", site
    finally:
        server.shutdown()
        server.server_close()


def forbid_downloads(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"undetected-chromedriver tried to reach the network: {args}")


@pytest.fixture(scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("state"), headless=True, chromium_args=TEST_CHROMIUM_ARGS
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(undetected_chromedriver.patcher, "urlopen", forbid_downloads)
        patch.setattr(undetected_chromedriver.patcher, "urlretrieve", forbid_downloads)
        launched = await Browser.launch(settings, "w-page")
    try:
        yield launched
    finally:
        await launched.close()


@pytest.fixture
async def site(browser: Browser) -> AsyncIterator[tuple[ArenaPage, Site, Browser, str]]:
    with tiny_site() as (origin, site):
        cdp = await CDPConnection.connect(
            await target_url(browser.debugger_address, browser.target_id)
        )
        page = await ArenaPage.attach(cdp)
        await browser.open(origin + "/")
        try:
            yield page, site, browser, origin
        finally:
            await cdp.close()


def test_the_driver_copy_is_private_and_patched(browser: Browser) -> None:
    started = Path(browser.driver.patcher.executable_path) if browser.driver.patcher else None
    assert started is not None and started.parent.name == "w-page"
    # uc was handed the launcher, which starts the private copy beside it, patched.
    copy = started.with_name("chromedriver.bin")
    assert started.name == "chromedriver" and str(copy) in started.read_text()
    assert b"undetected chromedriver" in copy.read_bytes()
    assert b"undetected chromedriver" not in Path("/usr/bin/chromedriver").read_bytes()


async def test_chunks_are_pushed_in_order_as_they_arrive(
    site: tuple[ArenaPage, Site, Browser, str],
) -> None:
    page, server, _, _ = site
    received: list[str] = []
    async with page.fetch(ArenaRequest("POST", "/gated", {"q": "é", "n": [1, 2]})) as fetch:
        server.gates.put(None)
        head = await fetch.head()
        assert head.status == 200 and head.headers["content-type"] == "text/event-stream"
        chunks = fetch.chunks()
        for _ in range(3):
            received.append(await anext(chunks))
            server.gates.put(None)  # the next chunk leaves the server only now
        received.extend([chunk async for chunk in chunks])
    # The é was split across two network chunks; the page's decoder joined it.
    assert received == ['a0:"one"\n', 'a0:"t', 'é"\n', 'ad:{"finishReason":"stop"}\n']

    sent = server.requests.get(timeout=1)
    assert orjson.loads(sent["body"]) == {"q": "é", "n": [1, 2]}
    assert sent["content-type"] == "text/plain;charset=UTF-8"
    assert sent["cookie"] == "sid=s3cret"  # credentials: 'include', as the site sends them


async def test_a_refusal_comes_with_its_status_and_body(
    site: tuple[ArenaPage, Site, Browser, str],
) -> None:
    page, _, _, _ = site
    async with page.fetch(ArenaRequest("POST", "/refused", {})) as fetch:
        head = await fetch.head()
        assert head.status == 429
        assert await fetch.text() == "Too many requests"


async def test_leaving_the_block_early_aborts_the_fetch_in_the_page(
    site: tuple[ArenaPage, Site, Browser, str],
) -> None:
    page, server, _, _ = site
    async with page.fetch(ArenaRequest("POST", "/endless", {})) as fetch:
        await fetch.head()
        await anext(fetch.chunks())
    assert await asyncio.to_thread(server.disconnected.wait, 5)


async def test_a_navigation_fails_the_fetches_of_the_old_document(
    site: tuple[ArenaPage, Site, Browser, str],
) -> None:
    page, _, browser, origin = site
    async with page.fetch(ArenaRequest("POST", "/endless", {})) as fetch:
        await fetch.head()
        await browser.open(origin + "/?again")
        with pytest.raises(FetchFailed):
            await fetch.text()
    # The new document has the script and the binding again.
    assert await page.recaptcha_ready()
    async with page.fetch(ArenaRequest("POST", "/refused", {})) as fetch:
        assert (await fetch.head()).status == 429


async def test_small_calls_and_token_minting_run_in_the_page(
    site: tuple[ArenaPage, Site, Browser, str],
) -> None:
    page, server, _, _ = site
    assert await page.call(ArenaRequest("POST", "/stop", {})) == (200, "stopped")
    assert server.requests.get(timeout=1)["path"] == "/stop"
    assert await page.mint_token("site-key", "chat_submit") == "site-key:chat_submit"
    assert "tiny arena" in await page.html()


async def test_many_concurrent_fetches_keep_their_own_chunks(
    site: tuple[ArenaPage, Site, Browser, str],
) -> None:
    page, _, _, _ = site

    async def refused() -> tuple[int, str]:
        async with page.fetch(ArenaRequest("POST", "/refused", {})) as fetch:
            return (await fetch.head()).status, await fetch.text()

    results = await asyncio.gather(*(refused() for _ in range(16)))
    assert results == [(429, "Too many requests")] * 16
