"""The load balancer of `docker-compose.yml`, for real: Debian's nginx running the project's own
`deploy/nginx.conf` in front of two gateway processes on a real Redis.

The test plays the worker's part (it takes each job off the queue and appends its events, as
`tests.support.played_worker` does), so that it knows to the moment when a token left for the
client. It shows that through nginx:
- a streamed answer's tokens arrive as they are written, as fast as from a gateway directly;
- a worker's screen opens: the admin's websocket is relayed to the worker's websockify;
- a gateway killed outright costs no new request: nginx tries the other one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socketserver
import statistics
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from shared import events
from shared.fleet.worker_status import WorkerState
from tests.support.nginx import NGINX, Nginx, nginx
from tests.support.played_worker import (
    CHAT,
    answer,
    emit,
    heartbeat,
    publish_catalog,
    take_job,
)
from tests.support.procs import free_port, redis_server, spawn, stop, wait_for_port
from tests.support.stack import Stack

pytestmark = pytest.mark.skipif(not NGINX.is_file(), reason="needs nginx (apt-get install nginx)")

ADMIN_KEY = secrets.token_hex(32)
#: Through nginx, the first token may come this much later than from a gateway directly.
NGINX_ALLOWANCE_S = 0.020
ROUNDS = 7
TOKEN = "Hel"


@dataclass
class Edge:
    """Two gateway processes on one Redis, and nginx in front of them."""

    stack: Stack
    lb: Nginx

    @property
    def gateways(self) -> list[str]:
        return [
            self.stack.base_url,
            *(f"http://127.0.0.1:{p}" for _, p in self.stack.others.values()),
        ]


@contextlib.contextmanager
def edge(workdir: Path, redis_url: str) -> Iterator[Edge]:
    # The arena is never reached: the test is the worker.
    stack = Stack(redis_url, "http://127.0.0.1:9", workdir, env={"LMB_ADMIN_KEY": ADMIN_KEY})
    try:
        stack.start_gateway()
        stack.start_other_gateway("gateway-2")
        ports = [stack.gateway_port, *(port for _, port in stack.others.values())]
        with nginx(workdir / "nginx", ports) as lb:
            yield Edge(stack, lb)
    finally:
        stack.close()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Edge]:
    with edge(tmp_path_factory.mktemp("edge"), redis_url) as started:
        yield started


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """The catalog published and one ready worker, `w1`: the test, taking jobs itself."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    await publish_catalog(client)
    await heartbeat(client, "w1", WorkerState.READY)
    yield client
    await client.aclose()


def client(**kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=10, **kwargs)


# --- (a) streamed answers are not buffered ---


async def within(waiting: Awaitable[object], failure: str, timeout_s: float = 5) -> None:
    try:
        await asyncio.wait_for(waiting, timeout_s)
    except TimeoutError:
        pytest.fail(f"{failure} (waited {timeout_s} s)")


async def token_delay(redis: Redis, http: httpx.AsyncClient, base_url: str) -> float:
    """From the worker appending the first token to the client reading it, in seconds.

    The answer stays open until the client has read that token: a proxy that held the stream
    back would make the client wait for its end, and the wait below would time out.
    """
    committed, token_read = asyncio.Event(), asyncio.Event()
    read_at: list[float] = []

    async def ask() -> str:
        body = {**CHAT, "stream": True}
        async with http.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200, await response.aread()
            committed.set()
            text = ""
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                choices = orjson.loads(line.removeprefix("data: "))["choices"]
                content = choices[0]["delta"].get("content") if choices else None
                if content == TOKEN and not read_at:
                    read_at.append(time.perf_counter())
                    token_read.set()
                text += content or ""
            return text

    asking = asyncio.create_task(ask())
    try:
        job = await take_job(redis)
        # The arena took the request: the gateway commits to its 200 and the client sets up.
        await emit(
            redis,
            job.id,
            events.accepted("w1", 0),
            events.session("w1", "create", "session-1", {"a": "message-1"}),
        )
        await within(committed.wait(), f"the 200 did not reach the client through {base_url}")
        written_at = time.perf_counter()
        await emit(redis, job.id, events.text("a", TOKEN))
        await within(
            token_read.wait(), f"the first token stayed in {base_url} while the answer ran"
        )
        await emit(redis, job.id, events.text("a", "lo"), events.finish("a", "stop"), events.done())
        assert await asyncio.wait_for(asking, 5) == "Hello"
    finally:
        asking.cancel()
    return read_at[0] - written_at


async def test_streamed_tokens_come_through_nginx_as_fast_as_from_a_gateway(
    front: Edge, redis: Redis
) -> None:
    direct: list[float] = []
    through: list[float] = []
    async with client() as http:
        await token_delay(redis, http, front.lb.base_url)  # connections made, code paths warm
        for round_ in range(ROUNDS):
            direct.append(await token_delay(redis, http, front.gateways[round_ % 2]))
            through.append(await token_delay(redis, http, front.lb.base_url))
    median_direct, median_through = statistics.median(direct), statistics.median(through)
    print(
        f"\nfirst token, worker to client, median of {ROUNDS}:"
        f" direct {median_direct * 1000:.1f} ms, through nginx {median_through * 1000:.1f} ms"
        f" (each: direct {[round(d * 1000, 1) for d in direct]},"
        f" nginx {[round(d * 1000, 1) for d in through]})"
    )
    assert median_through - median_direct < NGINX_ALLOWANCE_S
    # Both gateways served through nginx: the comparison is with the pair, not one of them.
    served = {
        entry["upstreams"]
        for entry in front.lb.access_log()
        if entry["uri"] == "/v1/chat/completions"
    }
    assert served == {f"127.0.0.1:{urlport(url)}" for url in front.gateways}


def urlport(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# --- (b) a worker's screen through nginx ---


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@contextlib.contextmanager
def screen_server(workdir: Path) -> Iterator[str]:
    """Debian's websockify, as a worker runs it, relaying to a TCP echo in place of x11vnc."""
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo) as echo:
        echo.daemon_threads = True
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        port = free_port()
        target = f"127.0.0.1:{echo.server_address[1]}"
        proc = spawn(["websockify", f"127.0.0.1:{port}", target], log=workdir / "websockify.log")
        try:
            wait_for_port(port, proc=proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)
            echo.shutdown()


async def show_screen(redis: Redis, worker_id: str, novnc_url: str) -> None:
    """A worker waiting for a person, its noVNC at `novnc_url`, as its heartbeat says."""
    await heartbeat(redis, worker_id, WorkerState.CHALLENGE, novnc_url=novnc_url, vnc_salt="salt")


async def sign_in(base_url: str) -> str:
    """The admin's session cookie, from the sign-in form, as a browser gets it."""
    async with client(base_url=base_url) as browser:
        form = await browser.get("/admin/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert form.status_code == 200 and token, form.text
        signed_in = await browser.post(
            "/admin/login", data={"key": ADMIN_KEY, "login_token": token[1], "next": "/admin"}
        )
        assert signed_in.status_code == 303, signed_in.text
        return signed_in.cookies["lmb_admin"]


async def test_a_screen_opens_through_nginx(front: Edge, redis: Redis, tmp_path: Path) -> None:
    with screen_server(tmp_path) as novnc_url:
        await show_screen(redis, "screen-1", novnc_url)
        cookie = await sign_in(front.lb.base_url)
        url = f"ws://127.0.0.1:{front.lb.port}/admin/workers/screen-1/websockify"
        # The page's own origin: host and port as the browser reached nginx.
        async with connect(
            url,
            origin=front.lb.base_url,
            additional_headers={"Cookie": f"lmb_admin={cookie}"},
            subprotocols=["binary"],
            proxy=None,
            open_timeout=10,
        ) as screen:
            assert screen.subprotocol == "binary"
            frame = os.urandom(100_000)
            started = time.perf_counter()
            await screen.send(frame)
            echoed = b""
            while len(echoed) < len(frame):
                part = await asyncio.wait_for(screen.recv(), 5)
                assert isinstance(part, bytes), "a binary frame comes back binary"
                echoed += part
            round_trip = time.perf_counter() - started
        assert echoed == frame
        print(f"\nscreen through nginx: 100 kB there and back in {round_trip * 1000:.1f} ms")

        # The same, from a page of another site, is refused: the check the Host header feeds.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                url,
                origin="http://elsewhere.example",
                additional_headers={"Cookie": f"lmb_admin={cookie}"},
                subprotocols=["binary"],
                proxy=None,
                open_timeout=10,
            ):
                pass
        assert refused.value.response.status_code == 403


# --- (c) a gateway killed behind nginx ---


async def serve_jobs(redis: Redis) -> None:
    """The worker's part for as many requests as come: each gets the default answer."""
    while True:
        job = await take_job(redis, timeout_s=30)
        await emit(redis, job.id, *answer())


async def test_a_gateway_killed_costs_no_new_request(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    with edge(tmp_path, redis_url) as pair:
        killed, alive = pair.gateways[1], pair.gateways[0]
        worker = asyncio.create_task(serve_jobs(redis))
        try:
            async with client(base_url=pair.lb.base_url) as http:
                # Traffic first, so that nginx holds idle connections to both gateways.
                for _ in range(4):
                    assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200
                pair.stack.kill_other_gateway("gateway-2")
                with pytest.raises(httpx.ConnectError):
                    await http.get(f"{killed}/healthz", timeout=2)

                started = time.perf_counter()
                replies = []
                for _ in range(10):
                    replies += [
                        await http.post("/v1/chat/completions", json={**CHAT, "stream": True}),
                        await http.post("/v1/chat/completions", json=CHAT),
                        await http.get("/v1/models"),
                    ]
                elapsed = time.perf_counter() - started
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        failed = [
            f"{r.request.method} {r.status_code} {r.text[:80]}" for r in replies if r.is_error
        ]
        assert not failed, f"requests failed after a gateway was killed: {failed}"
        streamed, plain = replies[0::3], replies[1::3]
        assert all('"content":"Hello!"' in r.text for r in streamed)
        assert all(r.json()["choices"][0]["message"]["content"] == "Hello!" for r in plain)
        log = pair.lb.access_log()[-30:]
        retried = [e for e in log if e["upstreams"].count(",") == 1]
        print(
            f"\nafter SIGKILL of one gateway: 30 requests through nginx in {elapsed:.2f} s,"
            f" all 200; {len(retried)} were first tried on the dead one: "
            + "; ".join(f"{e['method']} {e['upstreams']} {e['upstream_statuses']}" for e in retried)
        )
        # nginx did meet the dead gateway, and moved those requests on to the live one.
        dead, live = f"127.0.0.1:{urlport(killed)}", f"127.0.0.1:{urlport(alive)}"
        assert retried and all(e["upstreams"] == f"{dead}, {live}" for e in retried)
        assert all(e["upstreams"].endswith(live) for e in log)
        assert "Connection refused" in pair.lb.error_log()
