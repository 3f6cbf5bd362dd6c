"""Cookies a person exported from their own browser, read for an account's worker. Pure.

Two formats are common: the JSON array that cookie-export extensions write (EditThisCookie,
Cookie-Editor: `domain`, `name`, `value`, `path`, `secure`, `httpOnly`, `sameSite`,
`expirationDate`, …) and Netscape's `cookies.txt` (tab-separated; `#HttpOnly_` in front of the
domain marks an HttpOnly cookie). Both become the cookie parameters of the DevTools protocol
(`Network.setCookies`), kept only for the arena's own host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from shared.arena.account import account_label
from shared.arena.site import BROWSER_BOUND_COOKIES

#: Chromium's names for the SameSite values the extensions write.
_SAME_SITE = {
    "strict": "Strict",
    "lax": "Lax",
    "none": "None",
    "no_restriction": "None",
}
_HTTP_ONLY = "#HttpOnly_"


class CookieFileError(ValueError):
    """The file is neither format, or holds no sign-in to the arena."""


def read_cookie_file(text: str, arena_host: str) -> list[dict[str, Any]]:
    """The arena's cookies in an exported file, as `Network.setCookies` takes them.

    Refuses a file that is neither format or that holds no signed-in arena session.
    """
    stripped = text.lstrip()
    parsed = _from_json(stripped) if stripped.startswith("[") else _from_netscape(text)
    cookies = [c for c in parsed if _belongs(c["domain"], arena_host)]
    if account_label({c["name"]: c["value"] for c in cookies}) is None:
        raise CookieFileError(
            f"no signed-in arena session for {arena_host} in the file: export the cookies of "
            f"{arena_host} from a browser that is signed in there"
        )
    return cookies


def _from_json(text: str) -> list[dict[str, Any]]:
    try:
        entries = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CookieFileError(f"not a JSON array of cookies: {exc}") from None
    if not isinstance(entries, list):
        raise CookieFileError("not a JSON array of cookies")
    return [_from_entry(number, entry) for number, entry in enumerate(entries, 1)]


def _from_entry(number: int, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, Mapping) or not all(
        isinstance(entry.get(field), str) for field in ("name", "value", "domain")
    ):
        # Named by its place and name only: its value is a secret.
        name = entry.get("name") if isinstance(entry, Mapping) else None
        raise CookieFileError(
            f"cookie {number} ({name!r}) has no name, value or domain"
            if isinstance(name, str)
            else f"cookie {number} has no name, value or domain"
        )
    cookie: dict[str, Any] = {
        "name": entry["name"],
        "value": entry["value"],
        "domain": entry["domain"],
        "path": entry.get("path") or "/",
        "secure": bool(entry.get("secure")),
        "httpOnly": bool(entry.get("httpOnly")),
    }
    same_site = _SAME_SITE.get(str(entry.get("sameSite", "")).lower())
    if same_site is not None:
        cookie["sameSite"] = same_site
    expires = entry.get("expirationDate")
    if isinstance(expires, int | float) and not entry.get("session"):
        cookie["expires"] = float(expires)
    return cookie


def _from_netscape(text: str) -> list[dict[str, Any]]:
    cookies = []
    for number, line in enumerate(text.splitlines(), 1):
        http_only = line.startswith(_HTTP_ONLY)
        if http_only:
            line = line[len(_HTTP_ONLY) :]
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise CookieFileError(
                f"line {number} is not a cookies.txt line (7 tab-separated fields)"
            )
        domain, _subdomains, path, secure, expires, name, value = fields
        cookie: dict[str, Any] = {
            "name": name,
            "value": value,
            "domain": domain,
            "path": path or "/",
            "secure": secure.upper() == "TRUE",
            "httpOnly": http_only,
        }
        if expires.isdigit() and int(expires) > 0:
            cookie["expires"] = float(expires)
        cookies.append(cookie)
    if not cookies:
        raise CookieFileError("no cookies in the file")
    return cookies


def portable(cookies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cookies that work in another browser: not those Cloudflare bound to the one that
    got them (the worker keeps its own clearance)."""
    return [c for c in cookies if c["name"] not in BROWSER_BOUND_COOKIES]


def _belongs(domain: str, host: str) -> bool:
    """Whether a cookie of `domain` is sent to `host`."""
    domain = domain.lstrip(".").lower()
    host = host.lower()
    return host == domain or host.endswith("." + domain)
