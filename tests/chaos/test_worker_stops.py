"""A worker sent SIGTERM while it answers: it finishes, then exits."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx

from tests.chaos.conftest import RestartableRedis
from tests.chaos.reading import Reading, chat, read_stream
from tests.chaos.test_worker_dies import CHAT, arena_texts
from tests.support.stack import Stack, unique


def test_a_worker_sent_sigterm_finishes_its_answer_then_exits(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, _ = chaos
    stack.start_worker("w-1")
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.2})
    prompt = unique("finish this answer before you go")
    started = concurrent.futures.Future[None]()

    def mark(reading: Reading) -> bool:
        if reading.times and not started.done():
            started.set_result(None)
        return False

    worker = stack.workers["w-1"]
    with (
        httpx.Client(base_url=stack.base_url, timeout=60) as client,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        asked = pool.submit(
            read_stream, client, "POST", "/v1/chat/completions", json=chat(CHAT, prompt), until=mark
        )
        started.result(timeout=30)
        sent_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        reading = asked.result(timeout=60)
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
