"""Redis fails over under a running bridge: real redis-server processes (a primary and a replica,
both asking for a password) and three real Sentinels; a gateway process and a synthetic worker
process (`tests.support.synthetic_worker`) that reach Redis only through the Sentinels.

Clients stream answers back to back; the primary is killed (SIGKILL) mid-run; the Sentinels
promote the replica; the bridge must go on answering. Printed: requests that failed, and the
seconds from the kill to the first answer that came through whole and to the last one that did
not. Bounded: every request has a deadline, the run a fixed length.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.support.procs import (
    free_port,
    redis_server_binary,
    spawn,
    stop,
    wait_for_http,
    wait_for_port,
)

PASSWORD = "fail-over:p@ss"
MASTER = "mymaster"
#: How the Sentinels judge: down after 1 s without an answer, a failover at most every 10 s.
DOWN_AFTER_MS = 1000
CHUNKS, INTERVAL_S = 10, 0.05  # each answer: 10 chunks 50 ms apart, about half a second
CLIENTS = 4
RUN_S = 30.0
KILL_AT_S = 5.0
REQUEST_DEADLINE_S = 10.0
#: What the bridge must do: answer again within this long of the kill, and lose at most this many.
RECOVERED_WITHIN_S = 15.0
FAILED_AT_MOST = 3 * CLIENTS


def _server(workdir: Path, port: int, *extra: str) -> subprocess.Popen:
    args = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    args += ["--requirepass", PASSWORD, "--masterauth", PASSWORD, *extra]
    proc = spawn(args, log=workdir / f"redis-{port}.log")
    wait_for_port(port, proc=proc)
    return proc


def _sentinel(workdir: Path, port: int, primary_port: int) -> subprocess.Popen:
    conf = workdir / f"sentinel-{port}.conf"  # Sentinel rewrites its own file
    conf.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {workdir}",
                f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2",
                f"sentinel auth-pass {MASTER} {PASSWORD}",
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER} 10000",
                f"sentinel parallel-syncs {MASTER} 1",
                "",
            ]
        )
    )
    proc = spawn([redis_server_binary(), str(conf), "--sentinel"], log=workdir / f"s-{port}.log")
    wait_for_port(port, proc=proc)
    return proc


@contextlib.contextmanager
def replicated(workdir: Path) -> Iterator[tuple[subprocess.Popen, int, list[int]]]:
    """A primary, its replica (in sync) and three Sentinels: the primary's process, its port,
    and the Sentinels' ports."""
    procs = []
    try:
        primary_port, replica_port = free_port(), free_port()
        primary = _server(workdir, primary_port)
        procs.append(primary)
        procs.append(_server(workdir, replica_port, "--replicaof", "127.0.0.1", str(primary_port)))
        with redis.Redis(port=replica_port, password=PASSWORD) as replica:
            deadline = time.monotonic() + 15
            while replica.info("replication")["master_link_status"] != "up":
                assert time.monotonic() < deadline, "the replica did not sync"
                time.sleep(0.1)
        sentinels = [free_port() for _ in range(3)]
        procs += [_sentinel(workdir, port, primary_port) for port in sentinels]
        yield primary, primary_port, sentinels
    finally:
        for proc in reversed(procs):
            stop(proc)


def primary_named(sentinel_port: int) -> int:
    with redis.Redis(port=sentinel_port) as sentinel:
        return int(sentinel.sentinel_get_master_addr_by_name(MASTER)[1])


@dataclass
class Outcome:
    started: float
    ended: float
    ok: bool
    why: str = ""


async def ask(client: httpx.AsyncClient, n: int) -> Outcome:
    """One streamed answer; whole only if every chunk and the end came."""
    started = time.monotonic()
    body = {
        "model": "gemini-3-pro",
        "stream": True,
        "messages": [{"role": "user", "content": f"failover {n}"}],
    }
    chunks, done = 0, False
    try:
        async with (
            asyncio.timeout(REQUEST_DEADLINE_S),
            client.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            if response.status_code != 200:
                return Outcome(started, time.monotonic(), False, f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                chunks += line.startswith("data: {") and '"content":"@' in line
                done = done or line == "data: [DONE]"
    except (TimeoutError, httpx.HTTPError) as exc:
        return Outcome(started, time.monotonic(), False, type(exc).__name__)
    whole = done and chunks == CHUNKS
    return Outcome(started, time.monotonic(), whole, "" if whole else f"{chunks} chunks")


async def clients(base: str, until: float) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def one(c: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_DEADLINE_S) as client:
            n = 0
            while time.monotonic() < until:
                outcomes.append(await ask(client, c * 100_000 + n))
                n += 1

    await asyncio.gather(*(one(c) for c in range(CLIENTS)))
    return outcomes


def test_the_bridge_goes_on_answering_when_the_redis_primary_dies(tmp_path: Path) -> None:
    with replicated(tmp_path) as (primary, primary_port, sentinels):
        env = {
            "LMB_REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in sentinels),
            "LMB_REDIS_SENTINEL_MASTER": MASTER,
            "LMB_REDIS_PASSWORD": PASSWORD,
            "LMB_OPEN": "true",
            "LMB_WORKER_WAIT_SECONDS": "5",
        }
        env_no_url = {k: v for k, v in os.environ.items() if k != "LMB_REDIS_URL"}
        os_env = {**env_no_url, **env}
        port = free_port()
        worker = spawn(
            [
                *(sys.executable, "-m", "tests.support.synthetic_worker", "--worker-id", "s1"),
                *("--chunks", str(CHUNKS), "--interval", str(INTERVAL_S)),
            ],
            env=os_env,
            log=tmp_path / "worker.log",
        )
        gateway = spawn(
            [sys.executable, "-m", "cli", "gateway"],
            env={**os_env, "LMB_PORT": str(port)},
            log=tmp_path / "gateway.log",
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/readyz", proc=gateway)
            start = time.monotonic()

            async def run() -> list[Outcome]:
                load = asyncio.create_task(clients(base, start + RUN_S))
                await asyncio.sleep(KILL_AT_S)
                os.killpg(primary.pid, signal.SIGKILL)
                return await load

            outcomes = asyncio.run(run())
            killed = start + KILL_AT_S
            promoted = primary_named(sentinels[0])
        finally:
            stop(gateway)
            stop(worker)

    failed = [o for o in outcomes if not o.ok]
    before = [o for o in outcomes if o.ended < killed]
    after = [o for o in outcomes if o.started > killed]
    first_ok = min((o.ended for o in after if o.ok), default=float("inf"))
    last_failed = max((o.ended for o in failed), default=killed)
    print(
        f"\nfailover: {len(outcomes)} answers asked for, {len(failed)} failed"
        f" ({', '.join(sorted({o.why for o in failed})) or 'none'});"
        f" first whole answer {first_ok - killed:.2f} s after the kill,"
        f" last failure {last_failed - killed:.2f} s after it"
    )
    assert promoted != primary_port, "the Sentinels did not promote the replica"
    assert before and all(o.ok for o in before), "answers failed before the kill"
    assert first_ok - killed <= RECOVERED_WITHIN_S
    assert last_failed - killed <= RECOVERED_WITHIN_S
    assert len(failed) <= FAILED_AT_MOST
    assert sum(o.ok for o in after if o.started > last_failed) >= CLIENTS  # and it keeps going
