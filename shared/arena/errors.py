"""The arena's answers other than a stream, as typed errors."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import ClassVar, Literal

import orjson

from shared import events
from shared.arena.page import is_challenge_page
from shared.arena.site import LOGIN_GATE, MODE_REFUSAL, PROMPT_REFUSAL, RECAPTCHA_REFUSAL
from shared.events import ErrorKind, Event

_MAX_MESSAGE = 500
_RESET = re.compile(r"(?:^|[;,\s])reset\s*=\s*(\d+(?:\.\d+)?)")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class ArenaError(Exception):
    """A request the arena refused or failed; `kind` says how the bridge should react."""

    kind: ClassVar[ErrorKind] = "upstream"

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    def to_event(self) -> Event:
        return events.error(
            self.kind, self.message, retry_after=self.retry_after, status=self.status
        )


class RateLimited(ArenaError):
    """429: this account is over a limit, possibly for one modality only."""

    kind: ClassVar[ErrorKind] = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        retry_after: float | None = None,
        modality: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.modality = modality


class PromptRefused(RateLimited):
    """429 `{"error": "prompt failed"}`: the account's own limit, or a prompt it will not take.

    Unlike the other 429 it says nothing of when: the account rests, and the prompt is tried on
    one other account, never again on this one.
    """


class RecaptchaRejected(ArenaError):
    """403: the reCAPTCHA token was refused (stale, reused, or scored as a bot)."""

    kind: ClassVar[ErrorKind] = "recaptcha"


class AuthRequired(ArenaError):
    """401: not signed in, or the session belongs to another account."""

    kind: ClassVar[ErrorKind] = "auth"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 401,
        retry_after: float | None = None,
        login_gate: bool = False,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        #: Guests may not chat in this mode: a human has to sign the browser in.
        self.login_gate = login_gate


class Challenge(ArenaError):
    """Cloudflare answered instead of the arena: a human has to pass its check in the browser."""

    kind: ClassVar[ErrorKind] = "challenge"


class BadRequest(ArenaError):
    """400: the arena refused the body (re-used ids, bad fields)."""

    kind: ClassVar[ErrorKind] = "bad_request"


class Upstream(ArenaError):
    """The arena failed (5xx) or answered something unexpected."""

    kind: ClassVar[ErrorKind] = "upstream"


def classify(status: int, headers: Mapping[str, str], body: str) -> ArenaError:
    """The typed error for a non-200 answer of a stream request."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message = _message(body) or f"HTTP {status}"
    if status == 429:
        if message.lower() == PROMPT_REFUSAL:
            return PromptRefused(message, status=status, retry_after=_retry_after(lowered))
        return RateLimited(
            message,
            status=status,
            retry_after=_retry_after(lowered),
            modality=lowered.get("ratelimit-modality") or None,
        )
    # Checked before reCAPTCHA: Cloudflare's own block pages may mention a captcha.
    if status in (403, 503) and (
        lowered.get("cf-mitigated") == "challenge" or is_challenge_page(body)
    ):
        return Challenge(message, status=status)
    if status == 403 and RECAPTCHA_REFUSAL in body.lower():
        return RecaptchaRejected(message, status=status)
    if status == 401:
        return AuthRequired(message, status=status, login_gate=LOGIN_GATE in body)
    if status == 400:
        return BadRequest(message, status=status)
    return Upstream(message, status=status)


#: What a refusal says of the account that met it: it must rest a while, or it is flagged
#: and waits for a person to pass the site's security check.
Verdict = Literal["cooling", "flagged"]


def account_verdict(error: ArenaError, *, fresh_token: bool) -> Verdict | None:
    """The account's standing after `error`; None when it says nothing about the account.

    Either 429 cools the account. A refused reCAPTCHA token is stale or scored low once; when
    a token minted just now is refused too (`fresh_token`), the site has flagged the account.
    """
    if isinstance(error, RateLimited):
        return "cooling"
    if isinstance(error, RecaptchaRejected) and fresh_token:
        return "flagged"
    return None


def mode_refused(error: ArenaError) -> bool:
    """The arena refused a new chat for its mode (the site takes another one), not its body."""
    return isinstance(error, BadRequest) and MODE_REFUSAL.search(error.message) is not None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        seconds = float(headers["retry-after"])
    except (KeyError, ValueError):
        seconds = math.nan
    # An HTTP-date (or garbage) is not seconds: fall back rather than guess the clock.
    if math.isfinite(seconds):
        return max(0.0, seconds)
    # `ratelimit: limit=…, remaining=…, reset=<seconds>` (IETF RateLimit header fields draft).
    match = _RESET.search(headers.get("ratelimit", ""))
    return float(match.group(1)) if match else None


def _message(body: str) -> str:
    """What the arena said: the JSON `error`/`message`, an HTML title, or the trimmed text."""
    text = body.strip()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        for key in ("error", "message"):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found[:_MAX_MESSAGE]
            if isinstance(found, dict) and isinstance(found.get("message"), str):
                return found["message"][:_MAX_MESSAGE]
    if text.startswith("<") and (title := _TITLE.search(text)):
        return " ".join(title.group(1).split())[:_MAX_MESSAGE]
    return text[:_MAX_MESSAGE]
