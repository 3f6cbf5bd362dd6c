"""An account the arena flags: it sends nothing more, requests go to the other accounts, and a
person passing the site's security check through the admin page's screen brings it back.

Everything is real: gateway and workers as processes (the flagged one's Chromium headed on its
own Xvfb, watched through noVNC), Redis, the fake arena (which flags an account whose second
call comes within a minute of its first), and the person's own browser under Selenium.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from selenium import webdriver

from shared.arena.site import STREAM_PREFIX
from tests.support.screens import (
    DISPLAY_ENV,
    admin_sign_in,
    click_on_screen,
    open_screen,
    persons_browser,
    wait_for_selector,
)
from tests.support.stack import Stack, running, wait_until
from worker.browser.display import missing_tools

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}"),
]

ADMIN_KEY = secrets.token_hex(32)
CHAT = "gemini-2.5-pro"
FLAGGED, OTHER = "flag-1", "flag-2"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running(tmp_path, LMB_ADMIN_KEY=ADMIN_KEY) as stack:
        yield stack


@pytest.fixture
def person() -> Iterator[webdriver.Chrome]:
    yield from persons_browser()


def ask(stack: Stack, prompt: str) -> str:
    chunks = stack.openai(timeout=120).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}], stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def owner_of(stack: Stack, prompt: str) -> str:
    [session] = [s for s in stack.arena_log()["sessions"] if s["turns"][0]["text"] == prompt]
    return str(session["owner"])


def stream_calls(stack: Stack, account: str) -> list[dict]:
    return [
        r
        for r in stack.arena_log()["requests"]
        if r["identity"] == account and r["path"].startswith(STREAM_PREFIX)
    ]


def admin_workers(stack: Stack) -> dict[str, dict]:
    reply = httpx.get(
        f"{stack.base_url}/admin/api/workers",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    reply.raise_for_status()
    return {row["id"]: row for row in reply.json()["workers"]}


def test_a_flagged_account_sends_nothing_more_until_a_person_passes_the_check(
    stack: Stack, person: webdriver.Chrome, tmp_path: Path
) -> None:
    stack.start_worker(FLAGGED, **DISPLAY_ENV)
    stack.arena("POST", "scenario", json={"flag": {"requests": 2, "within_seconds": 60}})
    first = f"before the flag {uuid.uuid4().hex[:8]}"
    ask(stack, first)
    account = owner_of(stack, first)

    # The only account that has the model is flagged by this request: no other could take it,
    # so the client hears at once why (a 503), not after the job's timeout.
    with pytest.raises(openai.APIStatusError) as refused:
        ask(stack, f"refused by the flagged account {uuid.uuid4().hex[:8]}")
    assert refused.value.status_code == 503
    assert "security check refused flag-1" in refused.value.message
    stack.wait_worker(FLAGGED, "flagged", timeout=30)
    # From now on only the site's flag stands in the way (a new scenario counts afresh).
    stack.arena("POST", "scenario", json={"flag": None})
    stack.start_worker(OTHER)

    [flag] = stack.arena("GET", "flags").json().values()
    after = [r for r in stream_calls(stack, account) if r["received_at"] > flag["since"]]
    assert len(after) <= 1 and all(r["status"] == 403 for r in after)  # the fresh token's try

    row = admin_workers(stack)[FLAGGED]
    assert row["state"] == "flagged" and row["needs"] and row["screen"]
    assert row["until"] is not None  # when it tries alone
    for n in range(3):
        prompt = f"served by the others {n} {uuid.uuid4().hex[:8]}"
        ask(stack, prompt)
        assert owner_of(stack, prompt) != account
    assert len(stream_calls(stack, account)) == 2 + len(after)  # still nothing more

    # A person passes the check in the flagged worker's page, through its screen.
    admin_sign_in(person, stack, ADMIN_KEY)
    canvas = open_screen(person, FLAGGED, tmp_path)
    click_on_screen(person, canvas, wait_for_selector(stack, FLAGGED, "#recaptcha-anchor"))
    stack.wait_worker(FLAGGED, "ready", timeout=30)
    assert stack.arena("GET", "flags").json() == {}
    passed = stream_calls(stack, account)[-1]
    assert passed["body"]["recaptchaV2Token"] and passed["status"] != 403

    stack.stop_worker(OTHER)
    back = f"after the check {uuid.uuid4().hex[:8]}"
    ask(stack, back)
    assert owner_of(stack, back) == account
    wait_until(lambda: admin_workers(stack)[FLAGGED]["state"] == "ready", what="ready again")
