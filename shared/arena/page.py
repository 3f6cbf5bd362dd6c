"""Facts read off the arena's page at run time: they change with every deploy, so the code
finds them instead of hard-coding them."""

from __future__ import annotations

import re
from typing import Any

import orjson

_SITE_KEY = re.compile(r"recaptcha/enterprise\.js\?(?:[^\"'\s<>]*?&(?:amp;)?)?render=([\w-]{20,})")
# Minified client chunks call `(0,x.createServerReference)("<id>",x.callServer,void 0,
# x.findSourceMapURL,"<name>")`; only the id and the trailing name matter.
_SERVER_REFERENCE = re.compile(
    r"createServerReference\)?\s*\(\s*([\"'])([0-9a-fA-F]{40,})\1"
    r"[^\"']{0,400}?([\"'])([A-Za-z_$][\w$]*)\3\s*\)"
)
_CHALLENGE_MARKERS = (
    "Just a moment...",  # Cloudflare's interstitial title
    "Attention Required!",  # Cloudflare's block page title
    "_cf_chl_opt",  # the interstitial's challenge bootstrap (Turnstile)
    "orchestrate/chl_page",  # the interstitial's challenge script path
)


def recaptcha_site_key(html: str) -> str | None:
    """The reCAPTCHA Enterprise site key the page loads (`enterprise.js?render=<key>`)."""
    match = _SITE_KEY.search(html)
    return match.group(1) if match else None


def server_action_ids(js: str) -> dict[str, str]:
    """Server action ids by action name, from the page's JS chunks."""
    return {match.group(4): match.group(2) for match in _SERVER_REFERENCE.finditer(js)}


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
    return any(marker in title_or_html for marker in _CHALLENGE_MARKERS)
