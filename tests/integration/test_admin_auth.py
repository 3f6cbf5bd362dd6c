"""Admin authentication over real HTTP: `lmarena-bridge gateway` on a loopback port, a real Redis.

People sign in with the admin key and hold a session cookie; tools send the key as a bearer
token. Every state-changing request made with the cookie needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.storage import redis_keys
from tests.support.procs import redis_server
from tests.support.stack import Stack

ADMIN_KEY = secrets.token_hex(32)
#: No arena is needed to sign in: nothing here reaches it.
NO_ARENA = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("admin-auth")
    with redis_server(workdir) as redis_url:
        stack = Stack(redis_url, NO_ARENA, workdir, env={"LMB_ADMIN_KEY": ADMIN_KEY})
        try:
            stack.start_gateway()
            yield stack
        finally:
            stack.close()


@pytest.fixture
def browser(stack: Stack) -> Iterator[httpx.Client]:
    """A client with its own cookie jar that does not follow redirects (the tests read them)."""
    with httpx.Client(base_url=stack.base_url, timeout=10, follow_redirects=False) as client:
        yield client


def login_token(page: str) -> str:
    return re.search(r'name="login_token" value="([^"]+)"', page).group(1)


def csrf_of(page: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)


def sign_in(client: httpx.Client, key: str = ADMIN_KEY, next_: str = "/admin") -> httpx.Response:
    form = client.get("/admin/login", params={"next": next_})
    assert form.status_code == 200
    return client.post(
        "/admin/login", data={"key": key, "login_token": login_token(form.text), "next": next_}
    )


def signed_in(client: httpx.Client) -> str:
    """Sign in; returns the CSRF token of the session."""
    assert sign_in(client).status_code == 303
    page = client.get("/admin")
    assert page.status_code == 200
    return csrf_of(page.text)


def gone_worker(stack: Stack, worker_id: str) -> None:
    """A worker that heartbeated once and stopped: in the roster, without a heartbeat."""
    stack.redis.sadd(redis_keys.WORKERS, worker_id)
    stack.redis.delete(redis_keys.worker_heartbeat(worker_id))


def test_the_page_sends_whoever_is_not_signed_in_to_the_login_form(browser: httpx.Client) -> None:
    response = browser.get("/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin"
    screen = browser.get("/admin/workers/w1/screen")
    assert (screen.status_code, screen.headers["location"]) == (
        303,
        "/admin/login?next=/admin/workers/w1/screen",
    )


def test_the_api_wants_the_key_and_refuses_a_wrong_one(browser: httpx.Client) -> None:
    missing = browser.get("/admin/api/workers")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_admin_key"
    wrong = browser.get("/admin/api/workers", headers={"Authorization": "Bearer not-the-key"})
    assert wrong.status_code == 401
    right = browser.get("/admin/api/workers", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert right.status_code == 200 and set(right.json()) == {"workers", "queued", "models"}


def test_a_wrong_key_gives_no_session(browser: httpx.Client) -> None:
    response = sign_in(browser, key="guess")
    assert response.status_code == 401 and "That is not the admin key." in response.text
    assert "lmb_admin" not in browser.cookies
    assert browser.get("/admin").status_code == 303


def test_a_login_form_without_its_token_is_refused(browser: httpx.Client) -> None:
    response = browser.post("/admin/login", data={"key": ADMIN_KEY, "next": "/admin"})
    assert response.status_code == 403 and "lmb_admin" not in browser.cookies


def test_the_session_cookie_is_signed_httponly_strict_and_scoped_to_admin(
    browser: httpx.Client,
) -> None:
    response = sign_in(browser)
    assert (response.status_code, response.headers["location"]) == (303, "/admin")
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith("lmb_admin=")]
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/admin"
    assert attributes["max-age"].strip() == f"Max-Age={12 * 3600}"
    assert "secure" not in attributes  # plain http on loopback; set behind TLS
    assert ADMIN_KEY not in cookie

    page = browser.get("/admin")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert browser.get("/admin/api/workers").status_code == 200  # the API takes the session too


def test_a_tampered_cookie_is_no_session(browser: httpx.Client) -> None:
    assert sign_in(browser).status_code == 303
    value = browser.cookies["lmb_admin"]
    browser.cookies.clear()
    browser.cookies.set(
        "lmb_admin", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"), path="/admin"
    )
    assert browser.get("/admin").status_code == 303


def test_forms_need_the_sessions_csrf_token(stack: Stack, browser: httpx.Client) -> None:
    csrf = signed_in(browser)
    gone_worker(stack, "w-gone")
    missing = browser.post("/admin/workers/w-gone/forget")
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf"
    wrong = browser.post("/admin/workers/w-gone/forget", data={"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert stack.redis.sismember(redis_keys.WORKERS, "w-gone")

    done = browser.post("/admin/workers/w-gone/forget", data={"csrf_token": csrf})
    assert (done.status_code, done.headers["location"]) == (303, "/admin")
    assert not stack.redis.sismember(redis_keys.WORKERS, "w-gone")


def test_the_csrf_token_of_another_session_does_not_do(browser: httpx.Client, stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as other:
        other_csrf = signed_in(other)
    signed_in(browser)
    assert browser.post("/admin/logout", data={"csrf_token": other_csrf}).status_code == 403


def test_the_api_takes_the_csrf_token_in_a_header_and_a_bearer_needs_none(
    stack: Stack, browser: httpx.Client
) -> None:
    csrf = signed_in(browser)
    gone_worker(stack, "w-api")
    assert browser.post("/admin/workers/w-api/forget").status_code == 403
    assert (
        browser.post("/admin/workers/w-api/forget", headers={"X-CSRF-Token": csrf}).status_code
        == 303
    )
    gone_worker(stack, "w-api")
    with httpx.Client(base_url=stack.base_url, timeout=10) as tool:
        response = tool.post(
            "/admin/workers/w-api/forget", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert response.status_code == 303 and not stack.redis.sismember(redis_keys.WORKERS, "w-api")


def test_signing_out_revokes_the_cookie_everywhere(browser: httpx.Client) -> None:
    csrf = signed_in(browser)
    value = browser.cookies["lmb_admin"]
    assert browser.post("/admin/logout").status_code == 403  # a forged sign-out is refused too
    response = browser.post("/admin/logout", data={"csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login")
    assert "lmb_admin" not in browser.cookies
    # Someone who kept a copy of the cookie gets nothing with it.
    browser.cookies.set("lmb_admin", value, path="/admin")
    assert browser.get("/admin").status_code == 303
    assert browser.get("/admin/api/workers").status_code == 401


def test_after_signing_in_only_admin_pages_are_a_destination(browser: httpx.Client) -> None:
    for target in ("//evil.example/admin", "https://evil.example/", "/v1/models", "/administrator"):
        browser.cookies.clear()
        response = sign_in(browser, next_=target)
        assert (response.status_code, response.headers["location"]) == (303, "/admin")
    browser.cookies.clear()
    assert (
        sign_in(browser, next_="/admin/workers/w1/screen").headers["location"]
        == "/admin/workers/w1/screen"
    )


def test_a_screens_websocket_needs_a_session_and_our_own_origin(
    stack: Stack, browser: httpx.Client
) -> None:
    url = f"ws://127.0.0.1:{stack.gateway_port}/admin/workers/w1/websockify"

    async def refused(headers: dict[str, str]) -> int:
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=5) as ws:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1
        except InvalidStatus as exc:
            return exc.response.status_code
        return 0

    assert asyncio.run(refused({"Origin": stack.base_url})) in (403, 1008)
    assert sign_in(browser).status_code == 303
    cookie = f"lmb_admin={browser.cookies['lmb_admin']}"
    assert asyncio.run(refused({"Cookie": cookie, "Origin": "http://evil.example"})) in (403, 1008)
    # Signed in, from our own pages: accepted as far as the worker (which does not exist here).
    assert asyncio.run(refused({"Cookie": cookie, "Origin": stack.base_url})) in (1011, 403)


def test_the_page_shows_live_and_gone_workers(stack: Stack, browser: httpx.Client) -> None:
    status = WorkerStatus(
        id="w-live",
        state=WorkerState.CHALLENGE,
        queue=redis_keys.worker_queue("w-live"),
        capacity=4,
        busy=1,
        account="alice",
        last_error="challenge: Just a moment...",
        updated_at=time.time(),
    )
    stack.redis.set(redis_keys.worker_heartbeat("w-live"), status.dump(), ex=30)
    stack.redis.sadd(redis_keys.WORKERS, "w-live")
    gone_worker(stack, "w-dead")
    signed_in(browser)
    page = browser.get("/admin").text
    assert 'data-worker="w-live" data-state="challenge"' in page
    assert 'data-worker="w-dead" data-state="gone"' in page
    assert "Waiting for a person" in page and "pass the Cloudflare check" in page
    assert "alice" in page and "1/4" in page
    api = browser.get("/admin/api/workers").json()
    states = {w["id"]: w["state"] for w in api["workers"]}
    assert (states["w-live"], states["w-dead"]) == ("challenge", "gone")


def test_without_an_admin_key_everything_admin_is_closed(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis_url:
        stack = Stack(redis_url, NO_ARENA, tmp_path)
        try:
            stack.start_gateway()
            with httpx.Client(base_url=stack.base_url, timeout=10) as client:
                assert client.get("/admin").status_code == 403
                assert client.get("/admin/login").status_code == 403
                assert client.post("/admin/login", data={"key": ""}).status_code == 403
                api = client.get("/admin/api/workers", headers={"Authorization": "Bearer anything"})
                assert api.status_code == 403 and api.json()["error"]["code"] == "admin_disabled"
        finally:
            stack.close()
