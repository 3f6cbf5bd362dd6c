"""An account's own proxy with credentials: the worker's forwarder in front of a real proxy
(Debian's tinyproxy, asking for a password), Chromium going through it to the fake arena, and a
whole bridge where one worker's account goes out through its proxy and another's directly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from shared.arena.site import STREAM_PREFIX
from tests.support.procs import TEST_CHROMIUM_ARGS, fake_arena, redis_server, tinyproxy
from tests.support.stack import Stack
from worker.browser.proxy import ProxyForwarder, shown

pytestmark = pytest.mark.skipif(shutil.which("tinyproxy") is None, reason="needs tinyproxy")

#: The proxy reaches sites from this address, so the arena can tell who came through it.
EGRESS = "127.0.0.2"


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fake_arena(tmp_path_factory.mktemp("arena")) as origin:
        yield origin


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with tinyproxy(
        tmp_path_factory.mktemp("proxy"), user="alice", password="s3cret", egress=EGRESS
    ) as url:
        yield url


@pytest.fixture
async def forwarder(upstream: str) -> AsyncIterator[ProxyForwarder]:
    started = await ProxyForwarder.start(upstream)
    yield started
    await started.close()


async def test_plain_http_goes_out_through_the_proxy(arena: str, forwarder: ProxyForwarder) -> None:
    async with httpx.AsyncClient(proxy=f"http://{forwarder.address}", trust_env=False) as client:
        peer = (await client.get(f"{arena}/__fake/peer")).json()
        direct = (await httpx.AsyncClient(trust_env=False).get(f"{arena}/__fake/peer")).json()
    assert peer["host"] == EGRESS
    assert direct["host"] == "127.0.0.1"


async def test_a_tunnel_goes_out_through_the_proxy(arena: str, forwarder: ProxyForwarder) -> None:
    # HTTPS sites are reached with CONNECT; the tunnel works for any bytes, plain HTTP included.
    host, port = forwarder.address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    target = arena.removeprefix("http://")
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.write(
        f"GET /__fake/peer HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode()
    )
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and f'"host":"{EGRESS}"'.encode() in answer


async def test_wrong_credentials_are_a_502_that_never_shows_them(
    arena: str, upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = upstream.replace("s3cret", "wrong-password")
    forwarder = await ProxyForwarder.start(wrong)
    try:
        async with httpx.AsyncClient(
            proxy=f"http://{forwarder.address}", trust_env=False
        ) as client:
            response = await client.get(f"{arena}/__fake/peer")
    finally:
        await forwarder.close()
    assert response.status_code == 502
    assert "wrong-password" not in caplog.text and "s3cret" not in caplog.text
    assert shown(wrong) == "http://127.0.0.1:" + wrong.rsplit(":", 1)[1]


async def test_an_unknown_kind_of_proxy_is_refused_at_start() -> None:
    with pytest.raises(ValueError):
        await ProxyForwarder.start("ftp://host:21")


@pytest.mark.browser
async def test_chromium_reaches_the_arena_through_the_proxy(
    arena: str, forwarder: ProxyForwarder, tmp_path: Path
) -> None:
    options = webdriver.ChromeOptions()
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--proxy-server=http://{forwarder.address}",
        # Loopback skips a proxy unless told otherwise: the fake arena lives there.
        "--proxy-bypass-list=<-loopback>",
        *TEST_CHROMIUM_ARGS,
    ]:
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"

    def visit() -> str:
        # Selenium blocks: it runs apart from the event loop that serves the forwarder.
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        driver.set_page_load_timeout(30)
        try:
            driver.get(f"{arena}/__fake/peer")
            return str(driver.find_element("tag name", "body").text)
        finally:
            driver.quit()

    body = await asyncio.to_thread(visit)
    assert f'"host":"{EGRESS}"' in body.replace(" ", "")


@pytest.mark.browser
def test_one_workers_account_reaches_the_arena_through_its_proxy_and_another_directly(
    arena: str, upstream: str, tmp_path: Path
) -> None:
    key = secrets.token_hex(32)
    with redis_server(tmp_path) as redis_url:
        stack = Stack(
            redis_url,
            arena,
            tmp_path,
            env={
                "LMB_ADMIN_KEY": key,
                "LMB_WORKER_CAPACITY": "1",
                "LMB_EGRESS_PROBE_URL": f"{arena}/__fake/peer",
            },
        )
        try:
            stack.start_gateway()
            stack.start_worker("proxied", LMB_PROXY=upstream)
            stack.start_worker("direct")
            stack.arena("POST", "scenario", json={"line_delay_seconds": 0.05})
            since = stack.arena("GET", "log").json()["requests"]
            prompts = [f"which way {n} {uuid.uuid4().hex[:8]}" for n in range(4)]

            def ask(prompt: str) -> str | None:
                answer = stack.openai().chat.completions.create(
                    model="gemini-2.5-pro", messages=[{"role": "user", "content": prompt}]
                )
                return answer.choices[0].message.content

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                assert all(pool.map(ask, prompts))
            rows = httpx.get(
                f"{stack.base_url}/admin/api/workers",
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            ).json()["workers"]
            logs = "".join((tmp_path / f"{name}.log").read_text() for name in ("proxied", "direct"))
            beat = stack.redis.get("lmb:worker:proxied") or b""
        finally:
            stack.close()

    # Each account's calls all came the way it goes out; both accounts served some.
    peers: dict[str, set[str]] = {}
    for identity, host in stack_calls(arena, skip=len(since)):
        peers.setdefault(identity, set()).add(host)
    assert sorted(peers.values(), key=sorted) == [{"127.0.0.1"}, {EGRESS}]
    by_worker = {row["id"]: row for row in rows}
    assert by_worker["proxied"]["egress"] == EGRESS and by_worker["direct"]["egress"] == "127.0.0.1"
    assert by_worker["proxied"]["proxy"] == shown(upstream) and by_worker["direct"]["proxy"] is None
    for text in (logs, beat.decode(), str(rows)):
        assert "s3cret" not in text  # the proxy's password is printed nowhere


def stack_calls(arena: str, *, skip: int) -> list[tuple[str, str]]:
    """(caller, address it came from) of each stream call the arena received after `skip`."""
    requests = httpx.get(f"{arena}/__fake/log", timeout=10).json()["requests"][skip:]
    return [
        (r["identity"], r["peer"]["host"]) for r in requests if r["path"].startswith(STREAM_PREFIX)
    ]
