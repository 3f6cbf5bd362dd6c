"""A worker process killed (SIGKILL, with its browser) while it answers."""

from __future__ import annotations

import time

from tests.chaos.conftest import RestartableRedis
from tests.chaos.reading import FirstContent, asking
from tests.support.sites import DEFAULT
from tests.support.stack import Stack, unique

CHAT = DEFAULT.chat
#: Its answer starts with an empty reasoning line: the arena has accepted the request, nothing
#: has reached the client yet.
REASONING = DEFAULT.reasoning


def two_workers(stack: Stack) -> None:
    """Workers w-1 and w-2, their browsers started side by side."""
    for name in ("w-1", "w-2"):
        stack.start_worker(name, wait_ready=False)
    for name in ("w-1", "w-2"):
        stack.wait_worker(name, "ready")


def pause_after_first_line(stack: Stack, seconds: float) -> None:
    """The arena's next answer: its first line, then silence for `seconds`."""
    failure = {"kind": "pause", "endpoint": "create", "seconds": seconds}
    stack.arena("POST", "scenario", json={"failures": [failure]})


def arena_texts(stack: Stack, prompt: str) -> list[str]:
    """What the arena streamed (side a) for each session it opened for `prompt`, in order."""
    log = stack.arena_log()
    sessions = {s["id"] for s in log["sessions"] if s["turns"][0]["text"] == prompt}
    return [s["text"].get("a", "") for s in log["streams"] if s["session_id"] in sessions]


def busy_worker(stack: Stack, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in stack.workers:
            status = stack.worker_status(name)
            if status is not None and status.busy:
                return name
        time.sleep(0.02)
    raise AssertionError("no worker took the job")


def test_killed_before_the_first_token_another_worker_answers(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, _ = chaos
    two_workers(stack)
    pause_after_first_line(stack, 30)  # for a reasoning model: before its first token
    prompt = unique("survive a crash")
    with asking(stack.base_url, REASONING, [prompt], timeout=60) as asked:
        victim = busy_worker(stack)
        time.sleep(0.5)  # the arena has accepted it and sent its silent first line
        killed_at = time.monotonic()
        stack.kill_worker(victim)
        reading = asked[0].result(timeout=60)
    took = reading.times[0] - killed_at if reading.times else float("inf")
    print(
        f"\nworker killed before the first token: answered by the other in {took:.2f} s, "
        f"errors: {int(reading.error is not None)}"
    )
    assert reading.error is None and reading.done
    # Asked twice (the killed browser's request could not be taken over), answered once.
    first, second = arena_texts(stack, prompt)
    assert reading.text == second and not first
    assert took < 10


def test_killed_after_the_first_token_the_client_gets_an_error_at_once(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, _ = chaos
    two_workers(stack)
    pause_after_first_line(stack, 60)  # the client has part of the answer when it dies
    prompt = unique("half an answer")
    first = FirstContent()
    with asking(stack.base_url, CHAT, [prompt], until=first, timeout=60) as asked:
        first.wait()
        victim = busy_worker(stack)
        killed_at = time.monotonic()
        stack.kill_worker(victim)
        reading = asked[0].result(timeout=60)
        ended_at = time.monotonic()
    took = ended_at - killed_at
    print(f"\nworker killed after the first token: error event after {took:.2f} s")
    assert reading.error is not None and reading.error["code"] == "worker_lost"
    assert reading.done and reading.text  # the part it had, then the error, then [DONE]
    assert took < 5
    assert len(arena_texts(stack, prompt)) == 1  # never asked twice
