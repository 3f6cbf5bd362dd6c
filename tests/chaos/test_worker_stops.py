"""A worker sent SIGTERM while it answers: it finishes, then exits."""

from __future__ import annotations

import signal
import time

from tests.chaos.conftest import RestartableRedis
from tests.chaos.reading import FirstContent, asking
from tests.chaos.test_worker_dies import CHAT, arena_texts
from tests.support.stack import Stack, unique


def test_a_worker_sent_sigterm_finishes_its_answer_then_exits(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, _ = chaos
    stack.start_worker("w-1")
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.2})
    prompt = unique("finish this answer before you go")
    started = FirstContent()

    worker = stack.workers["w-1"]
    with asking(stack.base_url, CHAT, [prompt], until=started, timeout=60) as asked:
        started.wait()
        sent_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        reading = asked[0].result(timeout=60)
        answered_at = time.monotonic()
        worker.wait(30)
        exited_at = time.monotonic()
    print(
        f"\nworker sent SIGTERM mid-answer: answer complete {answered_at - sent_at:.2f} s later,"
        f" worker exited {exited_at - answered_at:.2f} s after that"
    )
    assert reading.error is None and reading.done
    assert [reading.text] == arena_texts(stack, prompt)
    assert worker.returncode == 0
    stack.workers.pop("w-1")
