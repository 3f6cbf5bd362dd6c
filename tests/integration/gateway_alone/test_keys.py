"""Client keys, their limits and usage, and the admin API, through a real gateway and Redis.

The gateway runs in uvicorn on a loopback port; the test plays the worker's part as
`test_gateway_api` does (takes the job off the queue, appends its events).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from shared import events
from shared.credentials.client_keys import KeySpec, KeyStore, key_hash
from shared.storage import redis_keys
from tests.support.played_worker import CHAT, answer, emit, nothing_queued, take_job

ADMIN = secrets.token_hex(32)
BEARER = {"Authorization": f"Bearer {ADMIN}"}
MESSAGES = {
    "model": "gemini-3-pro",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.fixture
async def api(redis: Redis, gateway: Callable[..., str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway(admin_key=ADMIN), timeout=10) as client:
        yield client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def answered(redis: Redis, client: httpx.AsyncClient, key: str, text: str) -> httpx.Response:
    """A chat completion that a worker (the test) answers with `text`."""
    request = asyncio.ensure_future(
        client.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    )
    job = await take_job(redis)
    await emit(redis, job.id, *answer(text))
    return await request


async def test_without_keys_a_bridge_serves_nobody_unless_told_to(
    redis: Redis, gateway: Callable[..., str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway(open=False), timeout=10) as client:
        refused = await client.get("/v1/models")
        anthropic = await client.post("/v1/messages", json=MESSAGES)
    assert refused.status_code == anthropic.status_code == 401
    message = refused.json()["error"]["message"]
    assert "no client keys yet" in message and "lmarena-bridge keys create" in message
    assert "LMB_OPEN=true" in message
    assert anthropic.json()["error"]["type"] == "authentication_error"
    assert await nothing_queued(redis)


async def test_open_when_told_on_loopback_until_a_key_is_made(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/v1/models")).status_code == 200
    assert (await api.get("/v1/models", headers=auth("anything"))).status_code == 200
    key, _ = await KeyStore(redis).create(KeySpec(name="first"))
    assert (await api.get("/v1/models")).status_code == 401
    assert (await api.get("/v1/models", headers=auth(key))).status_code == 200
    assert (await api.get("/v1/models", headers={"x-api-key": key})).status_code == 200


async def test_unknown_revoked_and_expired_keys_are_401s_in_each_apis_shape(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    store = KeyStore(redis)
    revoked, record = await store.create(KeySpec(name="old"))
    await store.revoke(record.id)
    expired, _ = await store.create(
        KeySpec(name="gone", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    cases = {
        "lmb-unknown": "Incorrect API key provided.",
        revoked: "This API key was revoked at ",
        expired: "This API key expired at ",
    }
    for key, message in cases.items():
        openai = await api.post("/v1/chat/completions", json=CHAT, headers=auth(key))
        anthropic = await api.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
        assert openai.status_code == anthropic.status_code == 401
        error = openai.json()["error"]
        assert error["code"] == "invalid_api_key" and error["message"].startswith(message)
        assert anthropic.json()["type"] == "error"
        assert anthropic.json()["error"]["type"] == "authentication_error"
        assert anthropic.json()["error"]["message"].startswith(message)
    assert await nothing_queued(redis)


async def test_a_key_may_use_only_its_models(redis: Redis, api: httpx.AsyncClient) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="one-model", models=["gemini-3-pro"]))
    other = {**CHAT, "model": "claude-opus-4-1-20250805"}
    refused = await api.post("/v1/chat/completions", json=other, headers=auth(key))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert "claude-opus-4-1-20250805" in refused.json()["error"]["message"]
    anthropic = await api.post(
        "/v1/messages", json={**MESSAGES, "model": other["model"]}, headers={"x-api-key": key}
    )
    assert anthropic.status_code == 403
    assert anthropic.json()["error"]["type"] == "permission_error"
    assert await nothing_queued(redis)
    ok = await answered(redis, api, key, "Allowed.")
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "Allowed."


async def test_over_a_limit_is_a_429_with_retry_after_in_each_apis_shape(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    key, _ = await KeyStore(redis).create(KeySpec(name="tight", requests_per_minute=1))
    assert (await answered(redis, api, key, "One.")).status_code == 200
    openai = await api.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    anthropic = await api.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
    for response in (openai, anthropic):
        assert response.status_code == 429
        assert 55 <= int(response.headers["retry-after"]) <= 60
    assert openai.json()["error"]["type"] == "requests"
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert "1 requests per minute" in openai.json()["error"]["message"]
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert await redis.zcard(redis_keys.SHARED_QUEUE) == 0


async def test_the_admin_api_makes_lists_and_revokes_keys_and_shows_usage(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    made = await api.post(
        "/admin/api/keys",
        json={"name": "ci", "requests_per_minute": 2, "models": ["gemini-3-pro"]},
        headers=BEARER,
    )
    assert made.status_code == 201
    key, key_id = made.json()["key"], made.json()["id"]
    assert re.fullmatch(r"lmb-[A-Za-z0-9_-]{43}", key)
    assert made.json()["status"] == "active" and made.json()["shown"] == key[:8]
    # Stored only as its hash; never shown again.
    assert await redis.get(f"lmb:apikey:{key_hash(key)}") is not None
    assert not [k for k in await redis.keys("*") if key.encode() in k]
    for value in [v for k in await redis.keys("lmb:apikey:*") for v in [await redis.get(k)] if v]:
        assert key.encode() not in value
    listed = await api.get("/admin/api/keys", headers=BEARER)
    one = await api.get(f"/admin/api/keys/{key_id}", headers=BEARER)
    for shown in (listed.text, one.text):
        assert key not in shown and key_hash(key) not in shown
    assert [k["id"] for k in listed.json()["data"]] == [key_id]

    await answered(redis, api, key, "A" * 40)
    await answered(redis, api, key, "B" * 8)
    assert (await api.post("/v1/chat/completions", json=CHAT, headers=auth(key))).status_code == 429
    usage = await api.get(f"/admin/api/keys/{key_id}/usage", headers=BEARER)
    today = datetime.now(UTC).date().isoformat()
    prompt_tokens = usage.json()["data"][0]["prompt_tokens"]
    assert usage.json()["data"] == [
        {
            "day": today,
            "key_id": key_id,
            "key_name": "ci",
            "model": "gemini-3-pro",
            "requests": 3,
            "errors": 1,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 12,
        }
    ]
    assert prompt_tokens > 0
    export = await api.get("/admin/api/usage?days=7", headers=BEARER)
    assert export.json()["data"] == usage.json()["data"]

    revoked = await api.delete(f"/admin/api/keys/{key_id}", headers=BEARER)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert (await api.get("/v1/models", headers=auth(key))).status_code == 401


async def test_the_admin_api_refuses_bad_requests(api: httpx.AsyncClient) -> None:
    assert (await api.get("/admin/api/keys")).status_code == 401
    assert (await api.get("/admin/api/keys", headers=auth("wrong"))).status_code == 401
    missing = await api.get("/admin/api/keys/nope", headers=BEARER)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"
    assert (await api.delete("/admin/api/keys/nope", headers=BEARER)).status_code == 404
    bad = await api.post("/admin/api/keys", json={"name": "x", "daily_requests": 0}, headers=BEARER)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "daily_requests"
    not_json = await api.post("/admin/api/keys", content=b"{", headers=BEARER)
    assert not_json.status_code == 400
    days = await api.get("/admin/api/usage?days=0", headers=BEARER)
    assert days.status_code == 400 and days.json()["error"]["param"] == "days"


async def test_the_admin_page_manages_keys_with_its_session_and_csrf_token(
    api: httpx.AsyncClient,
) -> None:
    form = await api.get("/admin/login")
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form.text))
    signed_in = await api.post("/admin/login", data={**fields, "key": ADMIN})
    assert signed_in.status_code == 303
    page = await api.get("/admin")
    assert page.status_code == 200 and 'id="keys"' in page.text and 'id="usage"' in page.text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text).group(1)
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page.text  # the keys script may run
    without = await api.post("/admin/api/keys", json={"name": "page"})
    assert without.status_code == 403 and without.json()["error"]["code"] == "csrf"
    made = await api.post("/admin/api/keys", json={"name": "page"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    key_id = made.json()["id"]
    assert (await api.get("/admin/api/keys")).json()["data"][0]["id"] == key_id
    revoked = await api.delete(f"/admin/api/keys/{key_id}", headers={"X-CSRF-Token": csrf})
    assert revoked.json()["status"] == "revoked"


async def test_each_image_of_one_request_holds_its_own_lease_and_counts_its_usage(
    redis: Redis, api: httpx.AsyncClient
) -> None:
    key, record = await KeyStore(redis).create(KeySpec(name="images", concurrent_streams=5))
    request = asyncio.ensure_future(
        api.post(
            "/v1/images/generations",
            json={"prompt": "a lighthouse", "model": "hunyuan-image-3.0", "n": 3},
            headers=auth(key),
        )
    )
    for n in range(3):
        job = await take_job(redis)
        url = f"https://images.example/{n}.png"
        await emit(
            redis,
            job.id,
            events.accepted("w1", 0),
            events.image("a", url, "image/png"),
            events.finish("a", "stop", {"promptTokens": 10, "completionTokens": 1}),
            events.done(),
        )
    response = await request
    assert response.status_code == 200 and len(response.json()["data"]) == 3
    # Every image's lease is given back (once the response is out): none renews for ever.
    leases = redis_keys.key_limit(record.id, "streams")
    async with asyncio.timeout(2):
        while await redis.zcard(leases):
            await asyncio.sleep(0.02)
    usage = await api.get(f"/admin/api/keys/{record.id}/usage", headers=BEARER)
    row = usage.json()["data"][0]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (3, 30, 3)
