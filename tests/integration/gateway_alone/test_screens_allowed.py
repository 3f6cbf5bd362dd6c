"""A gateway opens a worker's screen only where LMB_NOVNC_ALLOWED says screens may be, whatever a
heartbeat in Redis claims: anyone who can write to Redis could otherwise send it anywhere.

A stand-in websockify on loopback serves the noVNC client's files and counts who asks.
"""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar

import httpx
import pytest
from redis.asyncio import Redis

from gateway.admin.screens import allowed
from shared.fleet.worker_status import WorkerState
from tests.support.played_worker import heartbeat

ADMIN = secrets.token_hex(32)
BEARER = {"Authorization": f"Bearer {ADMIN}"}
RFB = b"export default class RFB {}"


class _Files(http.server.BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Files.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(RFB)))
        self.end_headers()
        self.wfile.write(RFB)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def websockify() -> Iterator[tuple[int, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    _Files.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _Files.asked
    finally:
        server.shutdown()
        thread.join(5)


async def beat(redis: Redis, worker_id: str, novnc_url: str) -> None:
    await heartbeat(redis, worker_id, WorkerState.CHALLENGE, novnc_url=novnc_url, vnc_salt="salt")


async def test_a_screen_where_screens_may_be_is_opened(
    redis: Redis, gateway: Callable[..., str], websockify: tuple[int, list[str]]
) -> None:
    port, asked = websockify
    await beat(redis, "w9", f"http://127.0.0.1:{port}")
    async with httpx.AsyncClient(base_url=gateway(admin_key=ADMIN), timeout=10) as client:
        relayed = await client.get("/admin/workers/w9/novnc/core/rfb.js", headers=BEARER)
    assert relayed.status_code == 200 and relayed.content == RFB
    assert asked == ["/core/rfb.js"]


async def test_a_heartbeat_pointing_elsewhere_is_not_followed(
    redis: Redis, gateway: Callable[..., str], websockify: tuple[int, list[str]]
) -> None:
    port, asked = websockify
    await beat(redis, "w9", f"http://127.0.0.1:{port}")
    base = gateway(admin_key=ADMIN, novnc_allowed=["10.0.0.0/8", "worker-1"])
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        file = await client.get("/admin/workers/w9/novnc/core/rfb.js", headers=BEARER)
        page = await client.get("/admin/workers/w9/screen", headers=BEARER)
    assert file.status_code == 404 and page.status_code == 404
    assert "LMB_NOVNC_ALLOWED" in page.text
    assert asked == []  # not even asked


@pytest.mark.parametrize(
    ("host", "addresses", "allowlist", "ok"),
    [
        ("worker-1", ["172.18.0.5"], ["worker-1", "worker-2"], True),
        ("WORKER-1", ["172.18.0.5"], ["worker-1"], True),
        ("10.1.2.3", ["10.1.2.3"], ["10.0.0.0/8"], True),
        ("pod.svc", ["10.1.2.3", "10.9.9.9"], ["10.0.0.0/8"], True),
        ("pod.svc", ["10.1.2.3", "169.254.169.254"], ["10.0.0.0/8"], False),
        ("169.254.169.254", ["169.254.169.254"], ["10.0.0.0/8", "worker-1"], False),
        ("::1", ["::1"], ["127.0.0.0/8", "::1"], True),
        ("anything", [], ["127.0.0.0/8"], False),
    ],
)
def test_allowed(host: str, addresses: list[str], allowlist: list[str], ok: bool) -> None:
    assert allowed(host, addresses, allowlist) is ok
