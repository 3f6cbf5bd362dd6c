"""The doctor's checks: each assumption the bridge makes about the arena, tried against the live
site in a real browser, with the worker's own code (its session, page, catalog, actions and
requests), so that what the doctor sees is what a worker would.

`FACTS` names, for each check, the facts of `shared.arena.site` it relies on: when a check
fails, those are what to look at.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.arena import payloads
from shared.arena.catalog import Model
from shared.arena.errors import AuthRequired, Challenge, RecaptchaRejected, classify, mode_refused
from shared.arena.page import recaptcha_site_key
from shared.arena.site import (
    CHAT_MODES,
    DELETE_CHAT,
    GENERATE_UPLOAD_URL,
    GET_SIGNED_URL,
    ME_PATH,
    SITE_KEY,
    TOKEN_ACTIONS,
)
from shared.arena.stream import LineParser, to_events
from shared.fleet.diagnosis import Check, Finding, problem
from shared.jobs import CompletionJob
from shared.settings import Settings
from worker.arena.actions import ServerActions
from worker.arena.completion import RequestIds, build_request
from worker.arena.session import SIGNED_OUT, SUBMIT, ArenaSession, CatalogRead, Unusable
from worker.browser.page import PageError

#: The facts of `shared.arena.site` behind each check.
FACTS: Mapping[Check, tuple[str, ...]] = {
    Check.PAGE: ("CHAT_PAGE", "NEXT_PAYLOAD", "NOT_FOUND_TEXT", "CHALLENGE_MARKERS"),
    Check.SIGNED_IN: ("ME_PATH", "AUTH_COOKIE", "AUTH_COOKIE_PREFIX"),
    Check.SITE_KEY: ("SITE_KEY_PATTERN", "SITE_KEY"),
    Check.TOKEN: ("TOKEN_ACTIONS",),
    Check.CATALOG: ("CATALOG_PATH", "RSC_CATALOG_KEY", "CATALOG_GROUPS", "REASONING_NAME"),
    Check.UPLOAD_ACTIONS: (
        "SERVER_REFERENCE_SCRIPT",
        "SERVER_REFERENCE",
        "GENERATE_UPLOAD_URL",
        "GET_SIGNED_URL",
        "DELETE_CHAT",
        "UNKNOWN_ACTION_STATUS",
    ),
    Check.MODE: (
        "STREAM_PREFIX",
        "CREATE_PATH",
        "CHAT_MODES",
        "MODE_REFUSAL",
        "RECAPTCHA_REFUSAL",
        "LOGIN_GATE",
    ),
    Check.CHAT: ("ARENA_ERROR_MARKER",),
}
#: Facts no check tries, as trying them would spend the account's credit on more than one
#: answer (a follow-up, a regenerate) or need an answer running (stop), or an account the site
#: refuses or flagged; a worker meeting a change there shows the arena's refusal as the
#: request's error. Credits are shown only when the site answers them. The cookies Cloudflare
#: binds to a browser are only left out of imported ones.
UNCHECKED = (
    "POST_PATH",
    "RETRY_PATH",
    "STOP_PATH",
    "PROMPT_REFUSAL",
    "SECURITY_CHECK_DIALOG",
    "SECURITY_CHECK_TITLE",
    "V2_RESPONSE_FIELD",
    "V3_BADGE",
    "BILLING_PATH",
    "BROWSER_BOUND_COOKIES",
)
#: What the `chat` check asks.
CHAT_PROMPT = "Reply with one word: OK."

Progress = Callable[[str], None]


@dataclass
class Doctor:
    """Runs the checks in one browser session, in order; a check that cannot be made because
    an earlier one failed says so."""

    settings: Settings
    session: ArenaSession
    progress: Progress

    async def examine(self, chat_model: str | None = None) -> list[Finding]:
        """Every check (`chat` only with a model to ask), in `Check` order."""
        checks = [check for check in Check if check is not Check.CHAT or chat_model]
        self.progress(f"opening {self.session.url}")
        try:
            await self.session.open()
            html = await self.session.until_usable()
            recaptcha = None
        except Unusable as exc:
            if exc.finding.check is Check.PAGE:
                return [exc.finding, *_skipped(checks[1:], "`page` failed")]
            html, recaptcha = await self.session.page.html(), exc.finding
        found = {Check.PAGE: _page_ok(self.session.url)}
        self.progress("checking the account, the reCAPTCHA key, the catalog and the actions")
        found[Check.SIGNED_IN] = await self._signed_in()
        found[Check.SITE_KEY] = _site_key(html)
        if recaptcha is None:
            found[Check.TOKEN] = await self._tokens()
        elif recaptcha.check is Check.TOKEN:
            found[Check.TOKEN] = recaptcha
        else:  # the page has no reCAPTCHA at all: `site_key` says so
            (found[Check.TOKEN],) = _skipped([Check.TOKEN], "the page loads no reCAPTCHA")
        found[Check.CATALOG], catalog = await self._catalog(html)
        found[Check.UPLOAD_ACTIONS] = await self._upload_actions()
        if not found[Check.TOKEN].ok:
            found.update(
                (finding.check, finding)
                for finding in _skipped(checks[checks.index(Check.MODE) :], "`token` failed")
            )
        else:
            self.progress("asking the arena which mode new chats take")
            found[Check.MODE], mode = await self._mode()
            if chat_model is not None:
                self.progress(f"asking {chat_model} for one short answer")
                found[Check.CHAT] = await self._chat(chat_model, catalog, mode)
        return [found[check] for check in checks]

    async def _signed_in(self) -> Finding:
        signed = await self.session.sign_in()
        if signed.signed_in:
            return Finding(Check.SIGNED_IN, True, f"signed in as {signed.account} ({signed.via})")
        why = f"{ME_PATH} answered 401" if signed.via == ME_PATH else "no auth cookie"
        return problem(
            Check.SIGNED_IN,
            f"not signed in ({why})",
            SIGNED_OUT.todo + ", or point --profile at a signed-in profile",
        )

    async def _tokens(self) -> Finding:
        timings = []
        for action in dict.fromkeys(a for actions in TOKEN_ACTIONS.values() for a in actions):
            started = time.monotonic()
            try:
                await self.session.mint(action)
            except PageError as exc:
                return problem(
                    Check.TOKEN,
                    f"the page's grecaptcha did not mint a {action} token ({exc})",
                    "check that this machine reaches Google's reCAPTCHA; see `site_key`",
                )
            timings.append(f"{action} in {(time.monotonic() - started) * 1000:.0f} ms")
        return Finding(Check.TOKEN, True, "minted " + ", ".join(timings))

    async def _catalog(self, html: str | None) -> tuple[Finding, CatalogRead | None]:
        try:
            read = await self.session.read_catalog(html)
        except Unusable as exc:
            return exc.finding, None
        kinds = Counter(model.kind for model in read.models)
        counts = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        seen = f"{len(read.models)} models {read.seen} (source: {read.source}; {counts})"
        return Finding(Check.CATALOG, True, seen), read

    async def _upload_actions(self) -> Finding:
        found = await ServerActions().ids(self.session.page)
        wanted = [GENERATE_UPLOAD_URL, GET_SIGNED_URL]
        if self.settings.delete_chats:
            wanted.append(DELETE_CHAT)
        missing = [name for name in wanted if name not in found]
        deleting = (
            f"; {DELETE_CHAT} {'found' if DELETE_CHAT in found else 'not found'}"
            if not self.settings.delete_chats
            else ""
        )
        if missing:
            return problem(
                Check.UPLOAD_ACTIONS,
                f"the page's scripts declare no {', '.join(missing)} ({len(found)} actions found)",
                "the site renamed or moved its server actions: GENERATE_UPLOAD_URL, "
                "GET_SIGNED_URL, DELETE_CHAT, SERVER_REFERENCE in shared/arena/site.py",
            )
        return Finding(
            Check.UPLOAD_ACTIONS, True, f"{' and '.join(wanted)} found in the page{deleting}"
        )

    async def _mode(self) -> tuple[Finding, str | None]:
        """Which mode a new chat may go out in: a create naming no real model is refused for
        its mode first, or else for its model, without a chat being made."""
        refused: list[str] = []
        for mode in CHAT_MODES:
            probe = payloads.probe(mode=mode, token=await self.session.mint(SUBMIT))
            status, body = await self.session.page.call(probe)
            if status == 200:
                return Finding(Check.MODE, True, f"new chats go out as {mode}"), mode
            error = classify(status, {}, body)
            if isinstance(error, RecaptchaRejected | Challenge):
                return problem(
                    Check.MODE,
                    f"the arena refused the probe itself ({status}: {error.message})",
                    "see `token` and `page`; a flagged account needs a person to pass its check",
                ), None
            if isinstance(error, AuthRequired):
                return problem(
                    Check.MODE,
                    f"the arena wants a signed-in account to chat ({error.message})",
                    "see `signed_in`",
                ), None
            if not mode_refused(error):
                others = f"; refused: {', '.join(refused)}" if refused else ""
                return Finding(Check.MODE, True, f"new chats go out as {mode}{others}"), mode
            refused.append(f"{mode} (“{error.message}”)")
        return problem(
            Check.MODE,
            "the arena refused every known mode for a new chat: " + "; ".join(refused),
            "the site has a new mode: CHAT_MODES, MODE_REFUSAL in shared/arena/site.py",
        ), None

    async def _chat(self, name: str, catalog: CatalogRead | None, mode: str | None) -> Finding:
        model = _find(catalog, name)
        if model is None or mode is None:
            why = "no catalog" if catalog is None else f"no model {name!r} in the catalog"
            return problem(
                Check.CHAT,
                f"not asked: {why if model is None else 'no mode works'}",
                "see `catalog` and `mode`",
            )
        job = CompletionJob(
            id="doctor",
            model=model.public_name,
            model_id=model.id,
            modality=model.modality,
            prompt=CHAT_PROMPT,
            created_at=time.time(),
        )
        started = time.monotonic()
        request = build_request(
            job, RequestIds.fresh(job), await self.session.mint(SUBMIT), mode=mode
        )
        parser, texts, failure = LineParser(), [], None
        async with self.session.page.fetch(request) as fetch:
            head = await fetch.head()
            if head.status != 200:
                error = classify(head.status, head.headers, await fetch.text())
                return problem(
                    Check.CHAT,
                    f"{name} was refused ({head.status}: {error.message})",
                    "see the other checks",
                )
            async for chunk in fetch.chunks():
                for event in (e for part in parser.feed(chunk) for e in to_events(part)):
                    if event["t"] == "text" and event["side"] == "a":
                        texts.append(event["text"])
                    elif event["t"] == "error":
                        failure = event["message"]
        text = " ".join("".join(texts).split())
        if failure is not None or not text:
            return problem(
                Check.CHAT,
                f"{name} answered no text ({failure or 'an empty answer'})",
                "try another model; see the worker's log for the arena's lines",
            )
        elapsed = time.monotonic() - started
        shown = text if len(text) <= 60 else text[:59] + "…"
        return Finding(Check.CHAT, True, f"{name} answered in {elapsed:.1f} s: “{shown}”")


def _page_ok(url: str) -> Finding:
    return Finding(Check.PAGE, True, f"{url} is the arena's chat page, with no Cloudflare check")


def _site_key(html: str) -> Finding:
    key = recaptcha_site_key(html)
    if key is None:
        return problem(
            Check.SITE_KEY,
            "the page loads no reCAPTCHA Enterprise script (the bridge falls back on SITE_KEY)",
            "the site loads reCAPTCHA another way: SITE_KEY_PATTERN in shared/arena/site.py",
        )
    if key != SITE_KEY:
        return problem(
            Check.SITE_KEY,
            f"the page's reCAPTCHA key is {key}, not the known {SITE_KEY}",
            "the site has a new key, which the bridge uses; once `token` and `mode` pass with "
            "it, set SITE_KEY in shared/arena/site.py",
        )
    return Finding(Check.SITE_KEY, True, f"{key} (the known key)")


def _skipped(checks: list[Check], why: str) -> list[Finding]:
    return [Finding(check, False, f"not checked: {why}") for check in checks]


def _find(catalog: CatalogRead | None, name: str) -> Model | None:
    if catalog is None:
        return None
    return next((model for model in catalog.models if model.public_name == name), None)
