"""Redis stopped and started again while streams are in flight and more wait in the queue."""

from __future__ import annotations

import time

from tests.chaos.conftest import RestartableRedis
from tests.chaos.reading import FirstContent, asking
from tests.chaos.test_worker_dies import CHAT, arena_texts, two_workers
from tests.support.stack import Stack, unique

#: Two workers of four slots stream eight answers; four more wait in the queue.
STREAMS = 12
DOWN_S = 1.0


def test_streams_in_flight_complete_exactly_across_a_redis_restart(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, redis = chaos
    two_workers(stack)
    pages_before = page_loads(stack)
    assert pages_before >= 2  # each browser opened the arena once
    # About four seconds an answer: the restart lands in the middle of the first eight.
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.25})
    prompts = [unique(f"keep streaming {n} through a restart of the store") for n in range(STREAMS)]
    started = FirstContent()

    with asking(stack.base_url, CHAT, prompts, until=started) as asked:
        started.wait()
        time.sleep(0.5)
        redis.stop()
        time.sleep(DOWN_S)
        redis.start()
        readings = [a.result(timeout=120) for a in asked]
    stall = max(r.stall for r in readings)
    errors = sum(r.error is not None for r in readings)
    print(
        f"\nRedis down {DOWN_S:g} s under {STREAMS} streams: longest stall {stall:.2f} s, "
        f"errors {errors}, complete {sum(r.done for r in readings)}/{STREAMS}"
    )
    for prompt, reading in zip(prompts, readings, strict=True):
        assert reading.error is None and reading.done
        assert [reading.text] == arena_texts(stack, prompt)  # exact: no gap, no duplicate
        assert len(reading.ids) == len(set(reading.ids))
    assert stall <= 5
    # The workers rode it out with their browsers: no page was opened again.
    assert page_loads(stack) == pages_before
    for name in ("w-1", "w-2"):
        assert stack.workers[name].poll() is None
        assert "restarting" not in (stack.workdir / f"{name}.log").read_text()


def page_loads(stack: Stack) -> int:
    return sum(
        r["method"] == "GET" and r["path"] in ("/", "/?mode=direct")
        for r in stack.arena_log()["requests"]
    )
