"""Keys and limits across two gateway processes on one Redis, served by a real browser worker.

Every process is real and separate: redis-server, the fake arena, two `lmarena-bridge gateway`
(JSON logs) and one `lmarena-bridge worker` (headless Chromium). Clients are the official SDKs.
The last test reads every log the bridge wrote and finds no key and no prompt in it.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import fake_arena, redis_server
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

CHAT = "gemini-2.5-pro"
ADMIN = "admin-" + uuid.uuid4().hex
LEASE_S = 2.0
#: Every key made and every prompt sent here: none may appear in any log.
SECRETS: list[str] = []


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, str]]]:
    """Gateways `g1` and `g2` and worker `w1`; yields the stack and the gateways' base URLs."""
    workdir = tmp_path_factory.mktemp("limits")
    env = {
        "LMB_ADMIN_KEY": ADMIN,
        "LMB_LEASE_TTL_SECONDS": str(LEASE_S),
        "LMB_LOG_JSON": "true",
        "LMB_WORKER_CAPACITY": "8",
    }
    with redis_server(workdir) as redis_url, fake_arena(workdir) as arena_url:
        stack = Stack(redis_url, arena_url, workdir, env=env)
        try:
            stack.start_gateway()
            urls = {"g1": stack.base_url, "g2": stack.start_other_gateway("g2")}
            stack.start_worker("w1")
            yield stack, urls
        finally:
            stack.close()


@pytest.fixture(autouse=True)
def calm_arena(bridge: tuple[Stack, dict[str, str]]) -> Iterator[None]:
    yield
    bridge[0].arena("POST", "scenario", json={"failures": []})


def make_key(url: str, **limits: object) -> str:
    response = httpx.post(
        f"{url}/admin/api/keys",
        json={"name": f"test-{uuid.uuid4().hex[:6]}", **limits},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 201, response.text
    SECRETS.append(response.json()["key"])
    return response.json()["key"]


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def prompt(text: str) -> str:
    made = f"{text} {uuid.uuid4().hex}"
    SECRETS.append(made)
    return made


def ask(url: str, key: str, text: str) -> str:
    answer = client(url, key).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt(text)}]
    )
    return answer.choices[0].message.content or ""


def open_stream(url: str, key: str):
    """A streamed answer that has begun (its first chunk read); close it to disconnect."""
    stream = client(url, key).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt("hold on")}], stream=True
    )
    next(iter(stream))
    return stream


def metrics(url: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_five_requests_a_minute_means_five_across_both_gateways(bridge) -> None:
    _, urls = bridge
    key = make_key(urls["g1"], requests_per_minute=5)
    gateways = [urls["g1"], urls["g2"]] * 6
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(lambda url: _try(lambda: ask(url, key, "count me")), gateways))
    answers = [o for o in outcomes if isinstance(o, str)]
    refusals = [o for o in outcomes if not isinstance(o, str)]
    assert len(answers) == 5 and all(answers)
    assert len(refusals) == 7 and all(isinstance(r, openai.RateLimitError) for r in refusals)
    for refusal in refusals:
        assert refusal.status_code == 429 and refusal.body["code"] == "rate_limit_exceeded"
        assert 1 <= int(refusal.response.headers["retry-after"]) <= 60
    # Both gateways keep refusing: the window is the same one.
    for url in urls.values():
        with pytest.raises(openai.RateLimitError):
            ask(url, key, "one more")


def _try(call):
    try:
        return call()
    except openai.APIStatusError as exc:
        return exc


def test_two_concurrent_streams_hold_across_gateways_and_free_on_disconnect_and_death(
    bridge,
) -> None:
    stack, urls = bridge
    key = make_key(urls["g1"], concurrent_streams=2)
    # Every answer stops after its first line for a minute: streams stay open until ended.
    stack.arena(
        "POST", "scenario", json={"failures": [{"kind": "pause", "times": None, "seconds": 60}]}
    )
    first = open_stream(urls["g1"], key)
    second = open_stream(urls["g2"], key)
    for url in urls.values():
        with pytest.raises(openai.RateLimitError) as refused:
            open_stream(url, key)
        assert refused.value.body["code"] == "concurrency_limit_exceeded"

    # A client that disconnects frees its place at once.
    first.close()
    third = _admitted_within(3.0, lambda: open_stream(urls["g1"], key))

    # A gateway that dies frees it once its lease expires (nobody renews it any more).
    stack.kill_other_gateway("g2")
    killed_at = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        open_stream(urls["g1"], key)
    fourth = _admitted_within(LEASE_S + 3.0, lambda: open_stream(urls["g1"], key))
    assert time.monotonic() - killed_at >= LEASE_S / 3  # not before the lease could lapse
    for stream in (second, third, fourth):
        stream.close()
    urls["g2"] = stack.start_other_gateway("g2")


def _admitted_within(seconds: float, attempt):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return attempt()
        except openai.RateLimitError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_revoked_key_is_refused_by_both_gateways_within_a_second(bridge) -> None:
    _, urls = bridge
    key = make_key(urls["g1"])
    for url in urls.values():
        assert (
            httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code
            == 200
        )
    key_id = next(
        k["id"]
        for k in httpx.get(
            f"{urls['g1']}/admin/api/keys", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()["data"]
        if key.startswith(k["shown"])
        and k["status"] == "active"
        and k["requests_per_minute"] is None
        and k["concurrent_streams"] is None
    )
    revoked = httpx.delete(
        f"{urls['g2']}/admin/api/keys/{key_id}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert revoked.status_code == 200
    started = time.monotonic()
    with pytest.raises(openai.AuthenticationError):
        ask(urls["g1"], key, "still there?")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=urls["g2"], api_key=key, max_retries=0).messages.create(
            model=CHAT, max_tokens=50, messages=[{"role": "user", "content": prompt("and here?")}]
        )
    assert time.monotonic() - started < 1.0
    assert refused.value.body["error"]["type"] == "authentication_error"


def test_metrics_show_requests_latency_tokens_fleet_and_arena_errors(bridge) -> None:
    stack, urls = bridge
    key = make_key(urls["g1"])
    assert ask(urls["g1"], key, "measure me")
    # One arena failure, and a refused reCAPTCHA token (the worker's second one passes; two
    # refused would flag the only account).
    stack.arena(
        "POST", "scenario", json={"failures": [{"kind": "server_500", "endpoint": "create"}]}
    )
    with pytest.raises(openai.APIStatusError):
        ask(urls["g1"], key, "fail once")
    stack.arena(
        "POST",
        "scenario",
        json={"failures": [{"kind": "recaptcha_403", "endpoint": "create", "times": 1}]},
    )
    assert ask(urls["g1"], key, "refused token once")

    seen = metrics(urls["g1"])
    route = "/chat/completions"  # the template within its API prefix (/v1, /api/v1)

    def value(name: str, **labels: str) -> float:
        return seen.get((name, frozenset(labels.items())), 0.0)

    assert value("lmb_http_requests_total", method="POST", route=route, status="200") >= 1
    assert value("lmb_http_requests_total", method="POST", route=route, status="429") >= 1
    assert value("lmb_http_requests_total", method="POST", route=route, status="502") >= 1
    assert value("lmb_time_to_first_token_seconds_count") >= 1
    assert value("lmb_answer_duration_seconds_count") >= 1
    assert value("lmb_tokens_total", kind="completion", model=CHAT) > 0
    assert value("lmb_limit_refusals_total", limit="requests_per_minute") >= 1
    assert value("lmb_workers", state="ready") + value("lmb_workers", state="busy") == 1
    assert ("lmb_queue_depth", frozenset({("queue", "shared")})) in seen
    assert value("lmb_arena_errors_total", kind="upstream") >= 1
    assert value("lmb_arena_errors_total", kind="recaptcha") >= 1
    assert value("lmb_recaptcha_failures_total") >= 1
    assert httpx.get(f"{urls['g2']}/metrics").status_code == 401
    ready = httpx.get(f"{urls['g2']}/readyz")
    assert ready.status_code == 200 and ready.json()["serving"] == 1


def test_the_logs_hold_request_ids_and_no_key_or_prompt(bridge) -> None:
    stack, _ = bridge
    assert len(SECRETS) > 10
    gateway_lines = []
    for name in ("gateway", "g2"):
        for line in (stack.workdir / f"{name}.log").read_text().splitlines():
            if line.startswith("{"):
                gateway_lines.append(json.loads(line))
    assert any(entry["request_id"] != "-" and "job" in entry["message"] for entry in gateway_lines)
    assert all(
        {"time", "level", "logger", "request_id", "message"} <= entry.keys()
        for entry in gateway_lines
    )
    for name in ("gateway", "g2", "w1"):
        text = (stack.workdir / f"{name}.log").read_text()
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{name}.log holds {leaked}"
        assert ADMIN not in text
