"""A browser with the arena open in it: started, attached over CDP, and waited on until usable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from shared.arena.account import account_label
from shared.arena.catalog import initial_models
from shared.arena.page import is_challenge_page, recaptcha_site_key
from shared.settings import Settings
from shared.worker_status import WorkerState
from worker.arena.token_pool import TokenPool
from worker.browser.cdp import CDPConnection, CDPError, target_url
from worker.browser.chromium import Browser, is_headless
from worker.browser.display import Display
from worker.browser.page import ArenaPage, PageError
from worker.state import StateMachine

logger = logging.getLogger(__name__)

_CHECK_EVERY_S = 1.0
_CLOSE_WAIT_S = 5.0
#: States in which a person is at the browser (through noVNC): the page is theirs, never reloaded.
_HUMAN_AT_WORK = frozenset({WorkerState.CHALLENGE, WorkerState.LOGIN_REQUIRED})
#: The page as the server sends it now (its catalog included), fetched without leaving it.
_FETCH_PAGE = (
    "fetch(location.href, {credentials: 'include', cache: 'no-store'})"
    ".then(async (r) => ({status: r.status, text: await r.text()}))"
)


class ArenaSession:
    def __init__(
        self, settings: Settings, browser: Browser, cdp: CDPConnection, page: ArenaPage
    ) -> None:
        self._settings = settings
        self.browser = browser
        self.cdp = cdp
        self.page = page
        #: reCAPTCHA site key the page loads; read again whenever the page becomes usable.
        self.site_key: str | None = None
        self.tokens = TokenPool(
            self._mint, size=settings.token_pool_size, max_age=settings.token_max_age_seconds
        )

    @classmethod
    async def start(
        cls, settings: Settings, worker_id: str, display: Display | None = None
    ) -> ArenaSession:
        browser = await Browser.launch(settings, worker_id, display)
        try:
            cdp = await CDPConnection.connect(
                await target_url(browser.debugger_address, browser.target_id)
            )
            page = await ArenaPage.attach(cdp)
            if display is None and is_headless(settings.headless, os.environ):
                # The one thing headless Chromium says about itself in every request.
                agent = await page.evaluate("navigator.userAgent")
                await cdp.send(
                    "Emulation.setUserAgentOverride",
                    {"userAgent": agent.replace("HeadlessChrome", "Chrome")},
                )
        except BaseException:
            await browser.close()
            raise
        return cls(settings, browser, cdp, page)

    async def close(self) -> None:
        await self.tokens.close()
        # Asked to close, Chromium writes the profile (the arena sign-in's cookies among it); on a
        # signal it would not. A dead or hung one is killed by `browser.close` instead.
        closing = False
        with contextlib.suppress(ConnectionError, CDPError, TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT_S):
                await self.cdp.send("Browser.close")
                closing = True
        await self.cdp.close()
        await self.browser.close(closing=closing)

    async def until_usable(self, machine: StateMachine) -> str:
        """Wait until the page has its catalog and grecaptcha; returns its HTML.

        A Cloudflare check puts the worker in `challenge` until a human passes it; a page that
        is neither usable nor a check after `page_ready_timeout_seconds` is loaded again, unless
        a person is at work in it (signing in, say).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.page_ready_timeout_seconds
        while True:
            try:
                html = await self.page.html()
                if is_challenge_page(html):
                    if machine.state is not WorkerState.CHALLENGE:
                        machine.to(WorkerState.CHALLENGE, reason="Cloudflare check in the page")
                elif await self._usable(html):
                    return html
            except (CDPError, PageError) as exc:  # the document is being replaced
                logger.debug("page not readable yet: %s", exc)
            if machine.state not in _HUMAN_AT_WORK and loop.time() > deadline:
                logger.warning("the arena page is not usable; loading it again")
                await self.browser.open(self._settings.arena_url)
                deadline = loop.time() + self._settings.page_ready_timeout_seconds
            await asyncio.sleep(_CHECK_EVERY_S)

    async def account(self) -> str | None:
        """The arena account the browser is signed in to, from its auth cookie; None: a guest."""
        reply = await self.cdp.send(
            "Network.getCookies", {"urls": [self._settings.arena_origin + "/"]}
        )
        return account_label(
            {cookie["name"]: cookie["value"] for cookie in reply.get("cookies", [])}
        )

    async def responsive(self, timeout_s: float) -> bool:
        """Whether the page's renderer answers within `timeout_s` (a hung one never does)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.page.evaluate("1")
        except (TimeoutError, ConnectionError):
            return False
        except (CDPError, PageError):
            return True  # it answered, if only with an error (a document being replaced)
        return True

    async def fetch_page(self) -> tuple[int, str]:
        """The current page as the arena serves it now: status and HTML."""
        answer = await self.page.evaluate(_FETCH_PAGE, await_promise=True)
        return answer["status"], answer["text"]

    async def _usable(self, html: str) -> bool:
        site_key = recaptcha_site_key(html)
        if site_key is None or not await self.page.recaptcha_ready():
            return False
        try:
            initial_models(html)
        except ValueError:
            return False
        self.site_key = site_key
        return True

    async def _mint(self) -> str:
        if self.site_key is None:
            raise RuntimeError("the page has no reCAPTCHA site key yet")
        return await self.page.mint_token(self.site_key, self._settings.recaptcha_action)
