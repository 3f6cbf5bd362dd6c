"""`429 {"error": "prompt failed"}`: the account's own refusal. The account rests, and the
request moves to one other account, once; when that one refuses too, the client gets the 429.

Real processes: a gateway and two workers (two browsers: two arena identities) on a real Redis
and the fake arena, the official openai SDK as the client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

CHAT = "gemini-2.5-pro"
WORKERS = ("pf-1", "pf-2")
#: How long a refusing account rests here (5 minutes outside tests).
COOLING_S = 4


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("prompt-refused")
    with running(workdir, *WORKERS, LMB_ACCOUNT_COOLING_SECONDS=str(COOLING_S)) as stack:
        yield stack


@pytest.fixture
def stack(pair: Stack) -> Stack:
    """Both accounts rested and serving."""
    for name in WORKERS:
        pair.wait_worker(name, "ready", timeout=COOLING_S + 10)
    return pair


def refuse(stack: Stack, times: int) -> float:
    """The next `times` chats created are refused ("prompt failed"); returns the time from
    which the arena's log tells of it (a new scenario counts afresh; the log goes on)."""
    failure = {"kind": "prompt_failed", "endpoint": "create", "times": times}
    stack.arena("POST", "scenario", json={"failures": [failure]})
    return time.time()


def creates(stack: Stack, since: float) -> list[dict]:
    return [
        r
        for r in stack.arena_log()["requests"]
        if r["path"].endswith("/create-evaluation") and r["received_at"] >= since
    ]


def test_a_refused_prompt_moves_to_another_account_and_the_refusing_one_rests(
    stack: Stack,
) -> None:
    since = refuse(stack, times=1)
    prompt = unique("refused once")
    answer = stack.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}]
    )
    assert answer.choices[0].message.content == stack.arena_streams(prompt)[0]["text"]["a"]
    refused, served = creates(stack, since)
    assert (refused["status"], served["status"]) == (429, 200)
    assert refused["identity"] != served["identity"]  # another account answered

    cooling = [s for s in map(stack.worker_status, WORKERS) if s and s.state.value == "cooling"]
    assert len(cooling) == 1 and cooling[0].until is not None
    assert 0 < cooling[0].until - time.time() <= COOLING_S
    assert "prompt failed" in (cooling[0].reason or "")


def test_a_prompt_both_accounts_refuse_is_a_429_and_tried_on_no_third(stack: Stack) -> None:
    since = refuse(stack, times=2)
    with pytest.raises(openai.RateLimitError) as caught:
        stack.openai().chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": unique("refused twice")}]
        )
    assert caught.value.status_code == 429
    assert 0 < int(caught.value.response.headers["retry-after"]) <= COOLING_S
    assert "prompt failed" in caught.value.message
    first, second = creates(stack, since)
    assert (first["status"], second["status"]) == (429, 429)
    assert first["identity"] != second["identity"]
    for name in WORKERS:
        assert stack.worker_status(name).state.value == "cooling"
    time.sleep(1.0)
    assert len(creates(stack, since)) == 2  # never a third try, on either account
