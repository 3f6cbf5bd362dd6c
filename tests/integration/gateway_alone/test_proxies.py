"""What a gateway believes about where a request came from: X-Forwarded-For/Proto only from the
proxies in LMB_TRUSTED_PROXIES (then the admin cookie is Secure behind TLS, and logs and the
throttle see the client's address), and /metrics without an admin key only for this machine.

The trusted proxy is played from 127.0.0.2; anyone else on loopback is 127.0.0.1.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis

ADMIN = secrets.token_hex(32)
PROXY = "127.0.0.2"
BEHIND_TLS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


@asynccontextmanager
async def client_at(base: str, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=10) as client:
        yield client


def cookie_attributes(response: httpx.Response) -> list[str]:
    header = response.headers["set-cookie"]
    return [part.strip().lower() for part in header.split(";")]


async def test_behind_a_trusted_proxy_the_admin_cookie_is_secure_and_the_client_is_seen(
    redis: Redis, gateway: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    base = gateway(admin_key=ADMIN, trusted_proxies=[PROXY])
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        async with client_at(base, PROXY) as proxy:
            form = await proxy.get("/admin/login", headers=BEHIND_TLS)
    assert "secure" in cookie_attributes(form)
    seen = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("203.0.113.9" in line and "/admin/login" in line for line in seen), seen


async def test_anyone_else_claiming_tls_or_an_address_is_not_believed(
    redis: Redis, gateway: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    for trusted in ([], [PROXY]):
        base = gateway(admin_key=ADMIN, trusted_proxies=trusted)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            async with client_at(base, "127.0.0.1") as stranger:
                form = await stranger.get("/admin/login", headers=BEHIND_TLS)
        assert "secure" not in cookie_attributes(form)
        seen = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
        assert seen and not any("203.0.113.9" in line for line in seen), seen


async def test_the_throttle_counts_the_client_behind_the_proxy(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(admin_key=ADMIN, trusted_proxies=[PROXY], auth_failures_per_minute=1)
    async with client_at(base, PROXY) as proxy:
        wrong = {"Authorization": "Bearer nope"}
        first = await proxy.get(
            "/admin/api/keys", headers={**wrong, "X-Forwarded-For": "198.51.100.1"}
        )
        again = await proxy.get(
            "/admin/api/keys", headers={**wrong, "X-Forwarded-For": "198.51.100.1"}
        )
        other = await proxy.get(
            "/admin/api/keys",
            headers={"Authorization": f"Bearer {ADMIN}", "X-Forwarded-For": "198.51.100.2"},
        )
    assert (first.status_code, again.status_code, other.status_code) == (401, 429, 200)


async def test_metrics_without_an_admin_key_only_for_this_machine(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(trusted_proxies=[PROXY])
    async with client_at(base, "127.0.0.1") as local, client_at(base, PROXY) as proxy:
        assert (await local.get("/metrics")).status_code == 200
        # A proxy on the same host passes requests from anywhere on: never open to those.
        passed_on = await local.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        through_trusted = await proxy.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    for refused in (passed_on, through_trusted):
        assert refused.status_code == 403
        assert "LMB_ADMIN_KEY" in refused.json()["error"]["message"]
