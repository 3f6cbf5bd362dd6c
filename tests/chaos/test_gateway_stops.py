"""A gateway stopped (SIGTERM: it drains) or killed (SIGKILL: its clients read on elsewhere)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time

import httpx
import pytest

from tests.chaos.conftest import RestartableRedis
from tests.chaos.reading import FirstContent, Reading, asking, chat, read_stream
from tests.chaos.test_worker_dies import CHAT, arena_texts, two_workers
from tests.support.stack import Stack, unique

STREAMS = 8


def test_a_gateway_sent_sigterm_finishes_its_streams_and_takes_no_new_ones(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, _ = chaos
    two_workers(stack)
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.2})
    prompts = [unique(f"finish answer {n} while the gateway drains") for n in range(STREAMS)]
    started = [FirstContent() for _ in prompts]

    gateway = stack.gateway
    assert gateway is not None
    with asking(stack.base_url, CHAT, prompts, until=started, timeout=60) as asked:
        for first in started:
            first.wait()
        sent_at = time.monotonic()
        os.killpg(gateway.pid, signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(f"{stack.base_url}/readyz", timeout=5)
        refused = httpx.post(
            f"{stack.base_url}/v1/chat/completions", json=chat(CHAT, unique("too late")), timeout=5
        )
        readings = [a.result(timeout=60) for a in asked]
        gateway.wait(30)
        stopped_after = time.monotonic() - sent_at
    print(
        f"\ngateway drained {STREAMS} streams: complete {sum(r.done for r in readings)}/{STREAMS},"
        f" errors {sum(r.error is not None for r in readings)}, exited {stopped_after:.2f} s"
        " after SIGTERM"
    )
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "draining"
    for prompt, reading in zip(prompts, readings, strict=True):
        assert reading.error is None and reading.done
        assert [reading.text] == arena_texts(stack, prompt)
    assert gateway.returncode == 0
    stack.gateway = None


def test_a_client_of_a_killed_gateway_reads_on_from_another(
    chaos: tuple[Stack, RestartableRedis],
) -> None:
    stack, _ = chaos
    stack.start_worker("w-1")
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.2})
    doomed = stack.start_other_gateway("doomed")
    prompt = unique("read on after the gateway died")
    with httpx.Client(timeout=60) as client:
        half = Reading()
        killed = concurrent.futures.Future[float]()

        def kill_after_three(reading: Reading) -> bool:
            if len(reading.times) >= 3 and not killed.done():
                stack.kill_other_gateway("doomed")
                killed.set_result(time.monotonic())
            return False

        with pytest.raises(httpx.HTTPError):
            read_stream(
                client,
                "POST",
                f"{doomed}/v1/chat/completions",
                reading=half,
                until=kill_after_three,
                json=chat(CHAT, prompt),
            )
        assert half.job_id is not None and half.ids
        seen_text, seen_ids = half.text, list(half.ids)
        rest = read_stream(
            client,
            "GET",
            f"{stack.base_url}/v1/answers/{half.job_id}/events",
            headers={"Last-Event-ID": seen_ids[-1]},
        )
        resumed_in = rest.times[0] - killed.result() if rest.times else float("inf")
    print(
        f"\ngateway killed mid-stream: read on from another gateway, first content "
        f"{resumed_in:.2f} s after the kill, {len(rest.ids)} frames after {len(seen_ids)}"
    )
    assert rest.error is None and rest.done
    assert seen_text + rest.text == arena_texts(stack, prompt)[0]  # exactly the rest
    assert not set(seen_ids) & set(rest.ids)
    assert len(arena_texts(stack, prompt)) == 1  # the arena was asked once
