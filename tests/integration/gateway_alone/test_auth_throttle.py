"""Failed keys and sign-ins are throttled per address and overall, across gateways, with 429 and
Retry-After; a throttled address is refused before its key is even looked at.

Clients come from distinct loopback addresses (127.0.0.2, 127.0.0.3, …), each its own client.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from redis.asyncio import Redis

from shared.credentials.client_keys import KeySpec, KeyStore

ADMIN = secrets.token_hex(32)
MESSAGES = {
    "model": "gemini-3-pro",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hi"}],
}


@asynccontextmanager
async def client_at(base: str, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests leave from `address` (a loopback one)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=10) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_address_that_keeps_failing_is_refused_even_a_good_key(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="real"))
    base = gateway(auth_failures_per_minute=3)
    async with client_at(base, "127.0.0.2") as guesser, client_at(base, "127.0.0.3") as other:
        for n in range(3):
            wrong = await guesser.get("/v1/models", headers=bearer(f"lmb-guess-{n}"))
            assert wrong.status_code == 401
        refused = await guesser.get("/v1/models", headers=bearer(key))
        anthropic = await guesser.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
        elsewhere = await other.get("/v1/models", headers=bearer(key))
    assert refused.status_code == anthropic.status_code == 429
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "too_many_failed_attempts"
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert anthropic.headers["retry-after"] == refused.headers["retry-after"]
    assert elsewhere.status_code == 200


async def test_requests_without_a_key_are_not_guesses(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="real"))
    base = gateway(auth_failures_per_minute=2)
    async with client_at(base, "127.0.0.2") as client:
        for _ in range(5):
            assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200


async def test_past_the_total_every_address_that_failed_is_refused_and_no_other(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="real"))
    base = gateway(auth_failures_per_minute=10, auth_failures_per_minute_total=3)
    guessers = [f"127.0.0.{n}" for n in range(2, 6)]
    for address in guessers:
        async with client_at(base, address) as guesser:
            assert (await guesser.get("/v1/models", headers=bearer("lmb-x"))).status_code == 401
    async with client_at(base, guessers[0]) as guesser, client_at(base, "127.0.0.9") as fresh:
        held = await guesser.get("/v1/models", headers=bearer(key))
        served = await fresh.get("/v1/models", headers=bearer(key))
    assert held.status_code == 429 and int(held.headers["retry-after"]) >= 1
    assert served.status_code == 200


async def test_failures_count_on_every_gateway(redis: Redis, gateway: Callable[..., str]) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="real"))
    first, second = gateway(auth_failures_per_minute=2), gateway(auth_failures_per_minute=2)
    async with client_at(first, "127.0.0.2") as one, client_at(second, "127.0.0.2") as two:
        assert (await one.get("/v1/models", headers=bearer("lmb-a"))).status_code == 401
        assert (await two.get("/v1/models", headers=bearer("lmb-b"))).status_code == 401
        assert (await one.get("/v1/models", headers=bearer(key))).status_code == 429
        assert (await two.get("/v1/models", headers=bearer(key))).status_code == 429


async def test_admin_sign_in_and_admin_bearer_are_throttled(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    base = gateway(admin_key=ADMIN, auth_failures_per_minute=2)
    async with client_at(base, "127.0.0.2") as person, client_at(base, "127.0.0.3") as script:
        for _ in range(2):
            assert (await sign_in(person, "not-the-key")).status_code == 401
        refused = await sign_in(person, ADMIN)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 55
        assert "Too many failed sign-ins" in refused.text
        assert "lmb_admin=" not in refused.headers.get("set-cookie", "")

        for _ in range(2):
            assert (await script.get("/admin/api/keys", headers=bearer("nope"))).status_code == 401
        held = await script.get("/admin/api/keys", headers=bearer(ADMIN))
        metrics = await script.get("/metrics", headers=bearer(ADMIN))
    assert held.status_code == metrics.status_code == 429
    assert held.json()["error"]["code"] == "too_many_failed_attempts"
    async with client_at(base, "127.0.0.4") as admin:
        assert (await admin.get("/admin/api/keys", headers=bearer(ADMIN))).status_code == 200
        assert (await sign_in(admin, ADMIN)).status_code == 303


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/admin/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    return await client.post(
        "/admin/login", data={"key": key, "login_token": token[1], "next": "/admin"}
    )
