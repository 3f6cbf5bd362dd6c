"""1,000 jobs, some cancelled by their clients, some crashed with their worker: Redis is left
with no more keys than before, but for what is meant to stay."""

from __future__ import annotations

import collections
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
JOB_TIMEOUT_S = 30
#: Kept on purpose: usage, conversations (and the images they refer to), the workers' counters.
MEANT_TO_STAY = (b"lmb:usage:", b"lmb:conv:", b"lmb:image:", b"lmb:counters")


def test_a_thousand_jobs_leave_nothing_behind(chaos: tuple[Stack, RestartableRedis]) -> None:
    stack, _ = chaos
    stack.env["LMB_EVENTS_TTL_SECONDS"] = str(EVENTS_TTL_S)
    stack.env["LMB_JOB_TIMEOUT_SECONDS"] = str(JOB_TIMEOUT_S)
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
    quiet = until_quiet(store)
    # Every key a job makes expires at the latest a job timeout and an events TTL after it was
    # made: what is left after that, but for what is meant to stay, was left behind.
    lasted, left = until_gone(store, before, JOB_TIMEOUT_S + EVENTS_TTL_S + 1)
    after = set(store.keys("*"))
    statuses = dict(sorted(collections.Counter(r.status for r in readings).items()))
    print(
        f"\n{JOBS} jobs ({JOBS // CANCELLED_EVERY} cancelled, one worker crashed at {CRASH_AT})"
        f" in {took:.1f} s, statuses {statuses} (a 502: an answer whose worker died mid-way); quiet {quiet:.1f} s later; keys before"
        f" {len(before)}, after {len(after)} (usage, conversations), left behind {len(left)};"
        f" the last job key expired {lasted:.1f} s after the queue was quiet"
    )
    assert left == [], [(k, store.ttl(k), store.type(k)) for k in left]
    assert store.zcard("arq:abort") == 0
    assert all(int(store.ttl(k)) > 0 for k in after - before)  # what stays, stays only for a while


def until_quiet(store: redis.Redis, timeout: float = 60.0) -> float:
    """Wait until no job is queued or running; how long it took."""
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        busy = store.keys("arq:job:*") or store.keys("arq:in-progress:*")
        if not busy and not store.zcard("lmb:queue"):
            break
        time.sleep(0.2)
    return time.monotonic() - started


def until_gone(store: redis.Redis, before: set[bytes], bound: float) -> tuple[float, list[bytes]]:
    """Wait, at most `bound` seconds, until the keys the jobs made (but for what is meant to
    stay) have expired; how long it took, and what is left."""
    started = time.monotonic()
    while True:
        left = sorted(k for k in set(store.keys("*")) - before if not k.startswith(MEANT_TO_STAY))
        if not left or time.monotonic() > started + bound:
            return time.monotonic() - started, left
        time.sleep(0.5)
