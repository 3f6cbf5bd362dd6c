"""Accounts as the scarce resource, end to end: paced across gateways and workers, requests
waiting in the queue for an account with room (told where they stand), refused when none can
take them in time, and routed only to accounts whose catalog has their model.

Every process is real and separate: redis-server, the fake arena, gateways, workers with their
own Chromium; each worker's browser is its own arena identity (a guest, or signed in as an
account of its own). The fake's log (`GET /__fake/log`) is the judge of when each account
called.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.arena.site import STREAM_PREFIX
from tests.support.accounts import signed_in_profiles
from tests.support.sites import DEFAULT
from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

CHAT = DEFAULT.chat
PROGRESS = re.compile(r"^: queued (\d+) of (\d+), about (\d+) s$")


def stream_calls(stack: Stack) -> dict[str, list[float]]:
    """When each arena identity's stream calls (create, post, retry) reached the arena."""
    calls: dict[str, list[float]] = defaultdict(list)
    for request in stack.arena_log()["requests"]:
        path = request["path"]
        if path.startswith(STREAM_PREFIX) and "/stop/" not in path:
            calls[request["identity"]].append(request["received_at"])
    return {identity: sorted(times) for identity, times in calls.items()}


def queue_waits(url: str) -> tuple[float, float]:
    """A gateway's `lmb_queue_wait_seconds`: how many jobs it saw taken, and their total wait."""
    text = httpx.get(f"{url}/metrics").text
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("lmb_queue_wait_seconds_")
    }
    return found["lmb_queue_wait_seconds_count"], found["lmb_queue_wait_seconds_sum"]


def start_workers(stack: Stack, *names: str, **env: str) -> None:
    """Workers side by side (each its own Chromium), ready."""
    for name in names:
        stack.start_worker(name, wait_ready=False, **env)
    for name in names:
        stack.wait_worker(name, "ready", timeout=120)


# --- a burst on three paced accounts, through two gateways ---

PACE_S = 2.0
BURST = 20


@pytest.fixture
def paced_fleet(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """Three workers and two gateways, each account paced to one call every `PACE_S`."""
    with running(
        tmp_path,
        LMB_ACCOUNT_MIN_INTERVAL_SECONDS=str(PACE_S),
        LMB_QUEUE_MAX_WAIT_SECONDS="60",
        LMB_KEEPALIVE_SECONDS="2",
    ) as stack:
        start_workers(stack, "acct-1", "acct-2", "acct-3")
        yield stack, stack.start_other_gateway("gateway-2")


def test_a_burst_is_answered_in_full_and_no_account_calls_faster_than_its_pace(
    paced_fleet: tuple[Stack, str],
) -> None:
    stack, other = paced_fleet
    prompts = [unique(f"burst {n}") for n in range(BURST)]

    def ask(n: int) -> str:
        client = openai.OpenAI(
            base_url=f"{(stack.base_url, other)[n % 2]}/v1", api_key="-", max_retries=0, timeout=90
        )
        messages = [{"role": "user", "content": prompts[n]}]
        if n % 4 < 2:
            chunks = client.chat.completions.create(model=CHAT, messages=messages, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        answer = client.chat.completions.create(model=CHAT, messages=messages)
        return answer.choices[0].message.content or ""

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
        texts = list(pool.map(ask, range(BURST)))
    took = time.monotonic() - started

    for prompt, text in zip(prompts, texts, strict=True):
        (streamed,) = stack.arena_streams(prompt)
        assert text == streamed["text"]["a"] and text.endswith(prompt)
    calls = stream_calls(stack)
    assert len(calls) == 3 and sum(map(len, calls.values())) == BURST  # each call once
    gaps = {
        identity: min((b - a for a, b in itertools.pairwise(times)), default=float("inf"))
        for identity, times in calls.items()
    }
    waits = [queue_waits(url) for url in (stack.base_url, other)]
    taken, waited = sum(w[0] for w in waits), sum(w[1] for w in waits)
    print(
        f"\nburst of {BURST} on 3 accounts paced {PACE_S:g} s, through 2 gateways: {took:.1f} s;"
        f" calls per account {sorted(map(len, calls.values()))}; least gap per account"
        f" {sorted(round(g, 3) for g in gaps.values())} s; mean queue wait {waited / taken:.1f} s"
    )
    assert min(gaps.values()) >= PACE_S
    assert taken == BURST
    # 20 calls on three accounts at one call each 2 s: the last goes out after about 12 s.
    assert took < 40


# --- waiting in the queue, told where it stands; refused when it cannot be taken in time ---


def sse_lines(url: str, body: dict, seen: list[tuple[float, str]]) -> int:
    """POST a streamed request, keeping every line with when it came; the status."""
    started = time.monotonic()
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        for line in response.iter_lines():
            seen.append((time.monotonic() - started, line))
        return response.status_code


def test_a_waiting_stream_is_told_its_place_and_one_that_cannot_be_taken_in_time_is_a_429(
    tmp_path: Path,
) -> None:
    # One account, a call every 15 s, 20 s of queue: the request after a call waits (about
    # 15 s), the one after that could not be taken within 20 s while the first frees more than
    # 5 s later, which leaves the test 10 s to ask it.
    pace_s, max_wait_s = 15.0, 20.0
    with running(
        tmp_path,
        "solo",
        LMB_ACCOUNT_MIN_INTERVAL_SECONDS=str(pace_s),
        LMB_QUEUE_MAX_WAIT_SECONDS=str(max_wait_s),
        LMB_KEEPALIVE_SECONDS="1",
    ) as stack:
        first = unique("first")
        # The account frees no sooner than this: its call went out after it.
        paced_until = time.monotonic() + pace_s
        answer = stack.openai().chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": first}]
        )
        assert answer.choices[0].message.content == stack.arena_streams(first)[0]["text"]["a"]

        # The account is paced now: the next request waits, told where it stands.
        waiting = unique("second")
        seen: list[tuple[float, str]] = []
        body = {"model": CHAT, "stream": True, "messages": [{"role": "user", "content": waiting}]}
        status: list[int] = []
        streaming = threading.Thread(
            target=lambda: status.append(
                sse_lines(f"{stack.base_url}/v1/chat/completions", body, seen)
            )
        )
        streaming.start()
        deadline = time.monotonic() + 10
        while not any(PROGRESS.match(line) for _, line in seen):
            assert time.monotonic() < deadline, f"no progress comment: {seen}"
            time.sleep(0.05)

        # One more would wait past the queue's 20 s (the account frees, takes the waiting one,
        # then 15 s more): refused at once, with when the account frees, in each API's shape.
        refusals: list[tuple[int, int]] = []
        with pytest.raises(openai.RateLimitError) as chat:
            stack.openai().chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": unique("third")}]
            )
        assert chat.value.body["code"] == "rate_limit_exceeded"
        assert chat.value.body["type"] == "requests"
        assert "the first frees in" in chat.value.body["message"]
        refusals.append((chat.value.status_code, retry_after(chat.value.response)))
        with pytest.raises(openai.RateLimitError) as responses:
            stack.openai().responses.create(model=CHAT, input=unique("third, again"), stream=True)
        assert responses.value.body["code"] == "rate_limit_exceeded"
        refusals.append((responses.value.status_code, retry_after(responses.value.response)))
        claude = anthropic.Anthropic(base_url=stack.base_url, api_key="-", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as messages:
            claude.messages.create(
                model=CHAT, max_tokens=100, messages=[{"role": "user", "content": "fourth"}]
            )
        assert messages.value.body["type"] == "error"
        assert messages.value.body["error"]["type"] == "rate_limit_error"
        assert "the first frees in" in messages.value.body["error"]["message"]
        refusals.append((messages.value.status_code, retry_after(messages.value.response)))
        left = paced_until - time.monotonic()
        assert left > max_wait_s - pace_s, "asked too late to tell: one more would fit in time"
        for code, after in refusals:
            # Retry-After: when the account frees (rounded up), within its pace.
            assert code == 429 and 1 <= after <= pace_s

        streaming.join(60)
        assert status == [200]
        comments = [(at, PROGRESS.match(line)) for at, line in seen if line.startswith(":")]
        places = [m.groups() for _, m in comments if m]
        # The 200 went out at once with the first comment (not held for the first event), then
        # one a keep-alive apart while it waited.
        assert comments[0][0] < 2.5 and comments[0][1] is not None
        assert len(places) >= 5 and all(place == "1" and of == "1" for place, of, _ in places)
        abouts = [int(about) for _, _, about in places]
        assert abouts[0] <= pace_s and abouts[-1] < abouts[0]  # the wait counts down
        text = "".join(delta(line) for _, line in seen if line.startswith("data: {"))
        assert text == stack.arena_streams(waiting)[0]["text"]["a"]
        (only_two,) = stream_calls(stack).values()
        assert len(only_two) == 2 and only_two[1] - only_two[0] >= pace_s


def retry_after(response: httpx.Response) -> int:
    return int(response.headers["retry-after"])


def delta(line: str) -> str:
    """The text of an OpenAI chunk's `data:` line."""
    choices = json.loads(line.removeprefix("data: "))["choices"]
    return (choices[0]["delta"].get("content") or "") if choices else ""


def test_a_wait_that_runs_out_ends_the_stream_with_why_and_is_a_503_unstreamed(
    tmp_path: Path,
) -> None:
    # One slot, held by a long answer: the account's pacing frees in 2 s, but no slot does.
    with running(
        tmp_path,
        "busy",
        LMB_WORKER_CAPACITY="1",
        LMB_ACCOUNT_MIN_INTERVAL_SECONDS="2",
        LMB_QUEUE_MAX_WAIT_SECONDS="5",
        LMB_KEEPALIVE_SECONDS="1",
    ) as stack:
        # About 70 lines, 0.4 s apart: the slot stays held through both waits below.
        stack.arena("POST", "scenario", json={"line_delay_seconds": 0.4})
        long = unique("a long answer " + "word " * 60)
        holding = threading.Thread(
            target=lambda: stack.openai().chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": long}]
            )
        )
        holding.start()
        deadline = time.monotonic() + 10
        while not stack.arena_log()["streams"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        seen: list[tuple[float, str]] = []
        body = {"model": CHAT, "stream": True, "messages": [{"role": "user", "content": "next"}]}
        assert sse_lines(f"{stack.base_url}/v1/chat/completions", body, seen) == 200
        lines = [line for _, line in seen if line]
        assert any(PROGRESS.match(line) for line in lines)
        error = [line for line in lines if line.startswith("data: {") and '"error"' in line]
        assert len(error) == 1 and "is busy" in error[0], lines
        assert 4.5 < seen[-1][0] < 15  # the queue's 5 s, not the answer's end (28 s)

        with pytest.raises(openai.InternalServerError) as caught:
            stack.openai().chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": "and again"}]
            )
        assert caught.value.status_code == 503 and caught.value.body["code"] == "no_worker"
        assert "Every account that has" in caught.value.body["message"]
        holding.join(60)
        assert not holding.is_alive()
        # Neither waiting request reached the arena: only the long answer did.
        assert sum(map(len, stream_calls(stack).values())) == 1


# --- routing by catalog ---

ONLY_BOB = DEFAULT.other_chat  # alice's catalog lacks it
ONLY_ALICE = DEFAULT.text_only  # bob's lacks it


def test_each_request_goes_to_an_account_that_has_its_model(tmp_path: Path) -> None:
    with running(tmp_path, LMB_WORKER_WAIT_SECONDS="2", LMB_QUEUE_MAX_WAIT_SECONDS="20") as stack:
        stack.arena(
            "POST",
            "scenario",
            json={"missing_models": {"user:alice": [ONLY_BOB], "user:bob": [ONLY_ALICE]}},
        )
        profiles = signed_in_profiles(tmp_path, stack.arena_url, "alice", "bob")
        stack.start_worker("w-alice", wait_ready=False, LMB_PROFILE_DIR=str(profiles["alice"]))
        stack.start_worker("w-bob", wait_ready=False, LMB_PROFILE_DIR=str(profiles["bob"]))
        for name, account in (("w-alice", "alice"), ("w-bob", "bob")):
            assert stack.wait_worker(name, "ready", timeout=120).account == account

        asked = [
            (model, unique(f"route {n}"))
            for n in range(4)
            for model in (ONLY_BOB, ONLY_ALICE, CHAT)
        ]

        def ask(item: tuple[str, str]) -> str:
            model, prompt = item
            answer = stack.openai().chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
            return answer.choices[0].message.content or ""

        with concurrent.futures.ThreadPoolExecutor(len(asked)) as pool:
            texts = list(pool.map(ask, asked))
        owners = {s["turns"][0]["text"]: s["owner"] for s in stack.arena_log()["sessions"]}
        for (_, prompt), text in zip(asked, texts, strict=True):
            assert text == stack.arena_streams(prompt)[0]["text"]["a"]
        by_model = defaultdict(set)
        for model, prompt in asked:
            by_model[model].add(owners[prompt])
        assert by_model[ONLY_BOB] == {"user:bob"} and by_model[ONLY_ALICE] == {"user:alice"}
        assert by_model[CHAT] <= {"user:alice", "user:bob"}

        with pytest.raises(openai.NotFoundError) as unknown:
            stack.openai().chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
        assert unknown.value.body["code"] == "model_not_found"

        # Bob's account is told by the arena to rest for ten minutes: what only it has waits
        # for nobody, and says why; the others' models are answered as before.
        stack.arena(
            "POST",
            "scenario",
            json={
                "missing_models": {"user:alice": [ONLY_BOB], "user:bob": [ONLY_ALICE]},
                "failures": [{"kind": "rate_limit_429", "account": "user:bob", "retry_after": 600}],
            },
        )
        with pytest.raises(openai.RateLimitError):
            stack.openai().chat.completions.create(
                model=ONLY_BOB, messages=[{"role": "user", "content": unique("rested")}]
            )
        assert stack.wait_worker("w-bob", "cooling", timeout=5).until is not None
        with pytest.raises(openai.InternalServerError) as paused:
            stack.openai().chat.completions.create(
                model=ONLY_BOB, messages=[{"role": "user", "content": unique("now?")}]
            )
        assert paused.value.status_code == 503
        message = paused.value.body["message"]
        assert f"No account that has `{ONLY_BOB}` can serve it in time" in message
        assert "1 cooling until" in message
        assert 590 <= int(paused.value.response.headers["retry-after"]) <= 600
        still = unique("still here")
        assert (
            stack.openai()
            .chat.completions.create(
                model=ONLY_ALICE, messages=[{"role": "user", "content": still}]
            )
            .choices[0]
            .message.content
            == stack.arena_streams(still)[0]["text"]["a"]
        )


# --- a request its only account put back: a Cloudflare check ---


def test_a_request_put_back_at_a_check_with_no_other_account_is_a_503_within_the_wait(
    tmp_path: Path,
) -> None:
    max_wait_s = 3.0
    with running(tmp_path, "solo", LMB_QUEUE_MAX_WAIT_SECONDS=str(max_wait_s)) as stack:
        # Ready as the request is admitted; the arena answers its call with the check.
        stack.arena("POST", "scenario", json={"cloudflare": True})
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            stack.openai(timeout=30).chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": unique("checked")}]
            )
        took = time.monotonic() - started
        assert caught.value.status_code == 503 and caught.value.body["code"] == "no_worker"
        assert "1 waiting for a person" in caught.value.body["message"]
        assert stack.worker_status("solo").state.value == "challenge"
        # The queue's wait from when it was put back, not the job's timeout (900 s).
        assert max_wait_s <= took < max_wait_s + 10
