"""What only an account's page can tell of it, for the admin page: the address the arena sees
it come from (through its proxy, if it has one) and its credits, when the site shows them.

Both are read in the page, so that they go the way the arena's own requests go; the parsing is
pure.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import math
from typing import Any

import orjson

from shared.arena.site import BILLING_PATH
from worker.browser.cdp import CDPError
from worker.browser.page import ArenaPage, PageError

logger = logging.getLogger(__name__)

#: Where address services put the caller's address (ipify, httpbin, the fake arena's peer).
_ADDRESS_FIELDS = ("ip", "origin", "address", "host")
#: Where a balance may sit in the site's answer (not captured yet: read leniently).
_CREDIT_FIELDS = ("balance", "credits", "remaining", "available")
#: More than any address service answers: the rest of a wrong URL's page is not read.
_LONGEST_ANSWER = 4096


def address_in(text: str) -> str | None:
    """The caller's address in an address service's answer: plain text, or JSON naming it."""
    text = text.strip()
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    if isinstance(value, dict):
        value = next((value[f] for f in _ADDRESS_FIELDS if isinstance(value.get(f), str)), None)
    if not isinstance(value, str):
        return None
    candidate = value.split(",")[0].strip()  # httpbin: "client, proxy"
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def credits_in(text: str) -> float | None:
    """The account's credits in the site's balance answer: a number, or one under a known key
    (also inside `data`); None for anything else (a page, an error)."""
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("data"), dict | int | float):
        value = value["data"]
    if isinstance(value, dict):
        value = next((value[f] for f in _CREDIT_FIELDS if f in value), None)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


async def read_egress(page: ArenaPage, probe_url: str) -> str | None:
    """The address `probe_url` sees the page come from; None if it cannot be read."""
    try:
        status, _, data = await page.read(probe_url)
        text = base64.b64decode(data).decode("utf-8", "replace")[:_LONGEST_ANSWER]
    except (PageError, CDPError, binascii.Error) as exc:
        logger.warning("could not read the egress address at %s: %s", probe_url, exc)
        return None
    return address_in(text) if status == 200 else None


async def read_credits(page: ArenaPage) -> float | None:
    """The account's credits, if the site answers them."""
    try:
        status, _, text = await page.get(BILLING_PATH)
    except (PageError, CDPError) as exc:
        logger.debug("could not read the account's credits: %s", exc)
        return None
    return credits_in(text) if status == 200 else None
