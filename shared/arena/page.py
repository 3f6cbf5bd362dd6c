"""Facts read off the arena's page at run time: they change with every deploy, so the code
finds them instead of hard-coding them (where to look is in `shared.arena.site`)."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from shared.arena.site import (
    CHALLENGE_MARKERS,
    NEXT_PAYLOAD,
    NOT_FOUND_TEXT,
    SERVER_REFERENCE,
    SITE_KEY_PATTERN,
)

#: What a loaded page is: Cloudflare's instead of the site's, the site's "not found" page, one
#: of the site's pages, or something else altogether (another site, a proxy's error page).
PageKind = Literal["challenge", "not_found", "arena", "other"]


def recaptcha_site_key(html: str) -> str | None:
    """The reCAPTCHA Enterprise site key the page loads (`enterprise.js?render=<key>`)."""
    match = SITE_KEY_PATTERN.search(html)
    return match.group(1) if match else None


def server_action_ids(js: str) -> dict[str, str]:
    """Server action ids by action name, from the page's JS chunks."""
    return {match.group(4): match.group(2) for match in SERVER_REFERENCE.finditer(js)}


def action_result(rsc_body: str) -> Any:
    """The value a server action returned: the JSON on line `1:` of its RSC answer."""
    # Split on "\n" only: RSC rows are newline-delimited, and JSON may hold U+2028.
    for line in rsc_body.split("\n"):
        if line.startswith("1:"):
            try:
                return orjson.loads(line[2:])
            except orjson.JSONDecodeError as exc:
                raise ValueError(
                    f"line 1 of the action answer is not JSON: {line[:200]!r}"
                ) from exc
    raise ValueError("no line 1: in the action answer")


def is_challenge_page(title_or_html: str) -> bool:
    """A Cloudflare interstitial (challenge or block) instead of the arena."""
    return any(marker in title_or_html for marker in CHALLENGE_MARKERS)


def page_kind(html: str) -> PageKind:
    """What the page is, judged by its content (since 2026 an unknown path answers 200)."""
    if is_challenge_page(html):
        return "challenge"
    if NOT_FOUND_TEXT in html:
        return "not_found"
    return "arena" if NEXT_PAYLOAD in html else "other"
