"""1,000 jobs, some cancelled by their clients, some crashed with their worker: Redis is left
with no more keys than before, but for what is meant to stay."""

from __future__ import annotations

import concurrent.futures
import itertools
import time

import httpx
import redis

from tests.chaos.conftest import RestartableRedis
from tests.chaos.reading import Reading, chat, read_stream
from tests.chaos.test_worker_dies import CHAT, two_workers
from tests.support.stack import Stack, unique

JOBS = 1000
CANCELLED_EVERY = 10  # every tenth client goes away after the first token
CRASH_AT = 400  # the second worker is killed (and started again) once this many were asked
EVENTS_TTL_S = 3
#: Kept on purpose: usage, conversations (and the images they refer to), the workers' counters.
MEANT_TO_STAY = (b"lmb:usage:", b"lmb:conv:", b"lmb:image:", b"lmb:counters")


def test_a_thousand_jobs_leave_nothing_behind(chaos: tuple[Stack, RestartableRedis]) -> None:
    stack, _ = chaos
    stack.env["LMB_EVENTS_TTL_SECONDS"] = str(EVENTS_TTL_S)
    stack.env["LMB_JOB_TIMEOUT_SECONDS"] = "60"
    stack.env["LMB_TOKEN_POOL_SIZE"] = "8"
    stack.env["LMB_WORKER_CAPACITY"] = "8"
    # Short answers, tokens minted at once: what counts here is what each job leaves behind.
    short = [{"match": "^job ", "text": "Done."}]
    stack.arena("POST", "scenario", json={"recaptcha_mint_seconds": 0, "replies": short})
    stack.stop_gateway()
    stack.start_gateway()
    two_workers(stack)
    store = stack.redis
    before = set(store.keys("*"))
    counter = itertools.count()
    crashed = concurrent.futures.Future[None]()

    def ask(n: int) -> Reading:
        with httpx.Client(base_url=stack.base_url, timeout=60) as client:
            if next(counter) == CRASH_AT:
                stack.kill_worker("w-2")
                crashed.set_result(None)
            body = chat(CHAT, unique(f"job {n}"))
            if n % CANCELLED_EVERY == 0:
                return read_stream(
                    client, "POST", "/v1/chat/completions", json=body, until=lambda r: bool(r.times)
                )
            response = client.post("/v1/chat/completions", json={**body, "stream": False})
            return Reading(status=response.status_code, done=True)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        asked = [pool.submit(ask, n) for n in range(JOBS)]
        crashed.result(timeout=120)
        stack.start_worker("w-2")  # the same worker again, as a supervisor restarts it
        readings = [a.result(timeout=120) for a in asked]
    took = time.monotonic() - started
    settled = settle(store)
    after = set(store.keys("*"))
    left = sorted(k for k in after - before if not k.startswith(MEANT_TO_STAY))
    statuses = sorted({r.status for r in readings})
    print(
        f"\n{JOBS} jobs ({JOBS // CANCELLED_EVERY} cancelled, one worker crashed at {CRASH_AT})"
        f" in {took:.1f} s, statuses {statuses}; keys before {len(before)}, after {len(after)},"
        f" left behind {len(left)}; settled in {settled:.1f} s"
    )
    assert left == [], [(k, store.ttl(k), store.type(k)) for k in left]
    assert store.zcard("arq:abort") == 0
    assert all(int(store.ttl(k)) > 0 for k in after - before)  # what stays, stays only for a while


def settle(store: redis.Redis, timeout: float = 60.0) -> float:
    """Wait until no job is queued or running and finished streams have expired."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        busy = store.keys("arq:job:*") or store.keys("arq:in-progress:*")
        if not busy and not store.zcard("lmb:queue"):
            break
        time.sleep(0.2)
    time.sleep(EVENTS_TTL_S + 1)
    return time.monotonic() - started
