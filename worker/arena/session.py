"""A browser with the arena open in it: started, attached over CDP, and waited on until usable.

Opening the arena can go wrong in ways an operator must hear about, each a failed check of
`lmarena-bridge doctor` (`shared.fleet.diagnosis`): the page does not load (unreachable), Cloudflare
puts up its check (a person passes it), or what loads is not what the bridge knows (a "not
found" page, no reCAPTCHA, no catalog: the site changed). The doctor runs this same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import orjson

from shared.arena.account import account_label, user_label
from shared.arena.catalog import Model, Source, from_groups, from_page, initial_models
from shared.arena.page import PageKind, page_kind, recaptcha_site_key
from shared.arena.site import CATALOG_PATH, CHAT_PAGE, ME_PATH, SITE_KEY, TOKEN_ACTIONS
from shared.fleet.diagnosis import Check, Finding, problem
from shared.fleet.worker_status import WorkerState
from shared.settings import Settings
from worker.arena.token_pool import Tokens
from worker.browser.cdp import CDPConnection, CDPError, target_url
from worker.browser.chromium import Browser, is_headless
from worker.browser.display import Display
from worker.browser.page import ArenaPage, PageError
from worker.state import StateMachine

logger = logging.getLogger(__name__)

S = WorkerState
_CHECK_EVERY_S = 0.5
_CLOSE_WAIT_S = 5.0
#: States in which a person is at the browser (through noVNC): the page is theirs, never reloaded.
_HUMAN_AT_WORK = frozenset({S.CHALLENGE, S.LOGIN_REQUIRED, S.FLAGGED})
#: The action of the tokens a worker keeps minted ahead (new messages).
SUBMIT = TOKEN_ACTIONS["create"][0]
_SITE_CHANGED = "the site may have changed (see shared/arena/site.py)"
#: Found on the page: a Cloudflare check, which only a person can pass.
CHALLENGED = problem(
    Check.PAGE,
    "Cloudflare put up its check on the arena page",
    "pass it in the worker's browser (admin page → its screen)",
)
#: The arena refused a guest: a person has to sign the browser in.
SIGNED_OUT = problem(
    Check.SIGNED_IN,
    "signed out: the arena wants a signed-in account",
    "sign in once in the worker's browser (admin page → its screen)",
)
_PAGE_STATE = (
    "({location: location.href, title: document.title,"
    " html: document.documentElement.outerHTML, complete: document.readyState === 'complete'})"
)


class Unusable(Exception):
    """The arena page cannot be used now: `state` says how the worker waits, `finding` why."""

    def __init__(self, state: WorkerState, finding: Finding) -> None:
        super().__init__(finding.line())
        self.state = state
        self.finding = finding


@dataclass(frozen=True, slots=True)
class CatalogRead:
    models: list[Model]
    source: Source
    #: Where exactly it came from, for people.
    seen: str


@dataclass(frozen=True, slots=True)
class SignIn:
    """Who the browser is signed in as, and how that was found out."""

    signed_in: bool
    #: The account's name (None for a guest).
    account: str | None
    #: `/api/me`, or `cookie` where that does not answer.
    via: str


class ArenaSession:
    def __init__(
        self, settings: Settings, browser: Browser, cdp: CDPConnection, page: ArenaPage
    ) -> None:
        self._settings = settings
        self.browser = browser
        self.cdp = cdp
        self.page = page
        #: The page this session opens.
        self.url = settings.arena_origin + CHAT_PAGE
        #: reCAPTCHA site key the page loads; read again whenever the page becomes usable.
        self.site_key: str | None = None
        #: Whether the page has served since this browser started (one that never did, and
        #: died, is replaced after a pause).
        self.served = False
        self.tokens = Tokens(
            self.mint, {SUBMIT: settings.token_pool_size}, max_age=settings.token_max_age_seconds
        )

    @classmethod
    async def start(
        cls,
        settings: Settings,
        worker_id: str,
        display: Display | None = None,
        proxy: str | None = None,
    ) -> ArenaSession:
        browser = await Browser.launch(settings, worker_id, display, proxy)
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

    async def open(self) -> None:
        """Load the arena's chat page; `Unusable` (unreachable) when it does not load."""
        timeout_s = self._settings.page_ready_timeout_seconds
        try:
            async with asyncio.timeout(timeout_s):
                reply = await self.cdp.send("Page.navigate", {"url": self.url})
        except TimeoutError:
            raise Unusable(
                S.UNREACHABLE, _unreachable(f"{self.url} did not answer within {timeout_s:g} s")
            ) from None
        if error := reply.get("errorText"):
            raise Unusable(S.UNREACHABLE, _unreachable(f"could not load {self.url} ({error})"))

    async def until_usable(self, machine: StateMachine | None = None) -> str:
        """Wait until the page has loaded with grecaptcha; returns its HTML.

        A Cloudflare check puts the worker in `challenge` until a person passes it (with no
        `machine`, as for the doctor, it is `Unusable` at once). Anything else that is not the
        arena's page after `page_ready_timeout_seconds`, or a "not found" page, is `Unusable`.
        """
        loop = asyncio.get_running_loop()
        timeout_s = self._settings.page_ready_timeout_seconds
        deadline = loop.time() + timeout_s
        kind: PageKind = "other"
        seen: dict[str, Any] = {}
        while True:
            try:
                seen = await self.page.evaluate(_PAGE_STATE)
            except (CDPError, PageError) as exc:  # the document is being replaced
                logger.debug("page not readable yet: %s", exc)
            else:
                if seen["location"].startswith("chrome-error:"):
                    raise Unusable(S.UNREACHABLE, _unreachable(f"could not load {self.url}"))
                kind = page_kind(seen["html"])
                if kind == "challenge":
                    if machine is None:
                        raise Unusable(S.CHALLENGE, CHALLENGED)
                    if machine.state is not S.CHALLENGE:
                        machine.failed(S.CHALLENGE, CHALLENGED)
                elif kind == "not_found" and seen["complete"]:
                    raise Unusable(S.UNRECOGNISED, self._not_the_page(kind, seen["title"]))
                elif kind == "arena" and await self._usable(seen["html"]):
                    return seen["html"]
            if machine is not None and machine.state in _HUMAN_AT_WORK:
                deadline = loop.time() + timeout_s  # a person may take their time
            elif loop.time() > deadline:
                if kind != "arena":
                    raise Unusable(S.UNRECOGNISED, self._not_the_page(kind, seen.get("title")))
                raise Unusable(S.UNRECOGNISED, _no_recaptcha(seen.get("html", "")))
            await asyncio.sleep(_CHECK_EVERY_S)

    async def read_catalog(self, html: str | None = None) -> CatalogRead:
        """The catalog: from the catalog endpoint when it answers one, else from the page's RSC
        payload (`html`, else the page fetched anew); `Unusable` when there is neither."""
        status, media_type, text = await self.page.get(CATALOG_PATH)
        endpoint = f"{CATALOG_PATH} answered HTTP {status}"
        if status == 200:
            try:
                models = from_groups(orjson.loads(text))
            except (orjson.JSONDecodeError, TypeError):
                endpoint += f" {media_type or 'untyped'}, not JSON"
            else:
                if models:
                    return CatalogRead(models, "endpoint", f"from {CATALOG_PATH}")
                endpoint += " with no model in it"
        if html is None:
            _, _, html = await self.page.get()
            if page_kind(html) == "challenge":
                raise Unusable(S.CHALLENGE, CHALLENGED)
        try:
            models = from_page(initial_models(html))
        except ValueError:
            models = []
        if models:
            return CatalogRead(models, "page", "from the page's RSC payload (initialModels)")
        raise Unusable(
            S.UNRECOGNISED,
            problem(
                Check.CATALOG,
                f"no model catalog: {endpoint}, and the page has no initialModels",
                f"{_SITE_CHANGED}: CATALOG_PATH, RSC_CATALOG_KEY",
            ),
        )

    async def sign_in(self) -> SignIn:
        """Whether the browser is signed in: `/api/me` where it answers, else the auth cookie."""
        status, _, text = await self.page.get(ME_PATH)
        if status == 401:
            return SignIn(False, None, ME_PATH)
        cookie = await self.account()
        if status == 200:
            try:
                user = orjson.loads(text)
            except orjson.JSONDecodeError:
                user = None  # a page, not the endpoint (an unknown path answers 200 since 2026)
            if isinstance(user, dict):
                return SignIn(True, user_label(user) or cookie, ME_PATH)
        return SignIn(cookie is not None, cookie, "cookie")

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

    async def mint(self, action: str) -> str:
        """A reCAPTCHA token for `action`, minted by the page's grecaptcha."""
        if self.site_key is None:
            raise RuntimeError("the page has no reCAPTCHA site key yet")
        return await self.page.mint_token(self.site_key, action)

    async def _usable(self, html: str) -> bool:
        if not await self.page.recaptcha_ready():
            return False
        site_key = recaptcha_site_key(html)
        if site_key is None:
            logger.warning("the page shows no reCAPTCHA key; using the known one (SITE_KEY)")
        elif site_key != SITE_KEY and site_key != self.site_key:
            logger.warning("the page's reCAPTCHA key is %s, not the known %s", site_key, SITE_KEY)
        self.site_key = site_key or SITE_KEY
        return True

    def _not_the_page(self, kind: PageKind, title: str | None) -> Finding:
        what = "a “not found” page" if kind == "not_found" else f"titled “{title or ''}”"
        return problem(
            Check.PAGE,
            f"{self.url} is not the arena's chat page ({what})",
            f"check LMB_ARENA_URL; {_SITE_CHANGED}: CHAT_PAGE, NEXT_PAYLOAD",
        )


def _unreachable(seen: str) -> Finding:
    return problem(
        Check.PAGE, seen, "check LMB_ARENA_URL and this machine's network (DNS, proxy, firewall)"
    )


def _no_recaptcha(html: str) -> Finding:
    if recaptcha_site_key(html) is None:
        return problem(
            Check.SITE_KEY,
            "the page loads no reCAPTCHA Enterprise script",
            f"{_SITE_CHANGED}: SITE_KEY_PATTERN",
        )
    return problem(
        Check.TOKEN,
        "the page's reCAPTCHA Enterprise did not load",
        "check that this machine reaches Google's reCAPTCHA; run the doctor",
    )
