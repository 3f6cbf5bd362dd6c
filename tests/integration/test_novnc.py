"""A person clears what the arena puts in a worker's way, through the admin page and noVNC.

Everything is real: the gateway and a worker as processes (the worker's Chromium headed on its
own Xvfb, with x11vnc and websockify), Redis, the fake arena, and a headless Chromium driven by
Selenium playing the person: it signs in to the admin page, follows the link to the worker's
screen and clicks or types on the noVNC canvas. Those clicks and keys travel as VNC events into
the worker's X display, so the worker's browser sees trusted input, as from a person.

Where to click is read off the worker's page through its DevTools (the test has no eyes); the
click itself only ever goes through noVNC (`tests.support.screens`).
"""

from __future__ import annotations

import concurrent.futures
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.procs import fake_arena, redis_server
from tests.support.screens import (
    DISPLAY_ENV,
    admin_sign_in,
    click_on_screen,
    open_screen,
    persons_browser,
    wait_for_selector,
    worker_browser,
)
from tests.support.stack import Stack
from worker.browser.display import missing_tools

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}"),
]

ADMIN_KEY = secrets.token_hex(32)
CHAT = "gemini-2.5-pro"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("novnc")
    with redis_server(workdir) as redis_url, fake_arena(workdir) as arena_url:
        stack = Stack(redis_url, arena_url, workdir, env={"LMB_ADMIN_KEY": ADMIN_KEY})
        try:
            stack.start_gateway()
            yield stack
        finally:
            stack.close()


@pytest.fixture
def person() -> Iterator[webdriver.Chrome]:
    yield from persons_browser()


@pytest.fixture(autouse=True)
def clean_arena(stack: Stack) -> None:
    stack.arena("POST", "reset")


def ask(stack: Stack, prompt: str) -> str:
    chunks = stack.openai(timeout=120).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}], stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def streamed_text(stack: Stack, prompt: str) -> tuple[str, str]:
    """What the fake arena streamed for `prompt`, and to whom."""
    log = stack.arena_log()
    [session] = [s for s in log["sessions"] if s["turns"][0]["text"] == prompt]
    [stream] = [
        s for s in log["streams"] if s["session_id"] == session["id"] and s["status"] == "finished"
    ]
    return stream["text"]["a"], session["owner"]


def test_a_person_passes_the_cloudflare_check_and_the_waiting_request_completes(
    stack: Stack, person: webdriver.Chrome, tmp_path: Path
) -> None:
    stack.start_worker("cf-1", **DISPLAY_ENV)
    stack.arena("POST", "scenario", json={"cloudflare": True})
    prompt = f"after the check {uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(ask, stack, prompt)
        status = stack.wait_worker("cf-1", "challenge", timeout=30)
        assert status.last_error and status.last_error.startswith("challenge")
        assert not answer.done()  # it waits in the queue for the worker

        admin_sign_in(person, stack, ADMIN_KEY)
        canvas = open_screen(person, "cf-1", tmp_path)
        point = wait_for_selector(stack, "cf-1", "#cf-checkbox")
        person.save_screenshot(str(tmp_path / "screen-challenge.png"))
        click_on_screen(person, canvas, point)

        stack.wait_worker("cf-1", "ready", timeout=30)
        text = answer.result(timeout=60)
    streamed, _ = streamed_text(stack, prompt)
    assert text == streamed and text.endswith(prompt)

    person.get(f"{stack.base_url}/admin")
    WebDriverWait(person, 10).until(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, 'tr[data-worker="cf-1"]').get_attribute("data-state")
            == "ready"
        )
    )
    person.save_screenshot(str(tmp_path / "admin-after.png"))
    stack.stop_worker("cf-1")


def test_signing_in_through_the_screen_makes_the_worker_ready_and_survives_a_restart(
    stack: Stack, person: webdriver.Chrome, tmp_path: Path
) -> None:
    stack.start_worker("gate-1", **DISPLAY_ENV)
    stack.arena("POST", "scenario", json={"login_gate": True})
    prompt = f"once signed in {uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(ask, stack, prompt)
        status = stack.wait_worker("gate-1", "login_required", timeout=30)
        assert status.account is None

        admin_sign_in(person, stack, ADMIN_KEY)
        canvas = open_screen(person, "gate-1", tmp_path)
        click_on_screen(
            person, canvas, wait_for_selector(stack, "gate-1", 'a[data-testid="login"]')
        )
        click_on_screen(
            person, canvas, wait_for_selector(stack, "gate-1", 'input[name="username"]')
        )
        ActionChains(person).send_keys("alice").perform()
        click_on_screen(
            person, canvas, wait_for_selector(stack, "gate-1", 'input[name="password"]')
        )
        ActionChains(person).send_keys("s3cret", Keys.ENTER).perform()

        status = stack.wait_worker("gate-1", "ready", timeout=30)
        assert status.account == "alice"
        text = answer.result(timeout=60)
    streamed, owner = streamed_text(stack, prompt)
    assert text == streamed and owner == "user:alice"

    # The sign-in lives in the worker's profile: a new worker process is still alice.
    stack.stop_worker("gate-1")
    stack.start_worker("gate-1", **DISPLAY_ENV)
    assert stack.worker_status("gate-1").account == "alice"
    again = f"after the restart {uuid.uuid4().hex[:8]}"
    assert ask(stack, again) == streamed_text(stack, again)[0]
    assert streamed_text(stack, again)[1] == "user:alice"
    assert stack.worker_status("gate-1").state.value == "ready"
    stack.stop_worker("gate-1")


def test_a_screen_viewer_that_exits_is_started_again_and_the_worker_serves_on(
    stack: Stack,
) -> None:
    stack.start_worker("screen-viewer", **DISPLAY_ENV)
    before = stack.worker_status("screen-viewer").novnc_url
    browser = worker_browser(stack, "screen-viewer").pid
    worker = psutil.Process(stack.workers["screen-viewer"].pid)
    [x11vnc] = [p for p in worker.children(recursive=True) if p.name() == "x11vnc"]
    x11vnc.kill()
    deadline = time.monotonic() + 15
    while (after := stack.worker_status("screen-viewer").novnc_url) == before:
        assert time.monotonic() < deadline, "the viewer was not started again"
        time.sleep(0.2)
    assert httpx.get(f"{after}/vnc.html", timeout=5).status_code == 200
    # The worker and its browser carried on as they were.
    assert stack.workers["screen-viewer"].poll() is None
    assert worker_browser(stack, "screen-viewer").pid == browser
    prompt = f"still serving {uuid.uuid4().hex[:8]}"
    assert ask(stack, prompt) == streamed_text(stack, prompt)[0]
    stack.stop_worker("screen-viewer")
