"""How fast the fake arena streams: `python -m tests.bench.fakearena [--streams 1000]`.

It is the floor of every other benchmark, so it must not be the bottleneck. Two figures, each
beside a baseline measured in the same run: a bare ASGI app on the same uvicorn that streams
the same number of lines with no checks and no state (the floor of the floor).
1. lines/s to one client: one create-evaluation whose answer is ~50,000 lines, no pacing.
2. N concurrent streams (default 1,000), ~30 lines each, 10 ms apart: wall time until all ended,
   every text checked against the documented reply.
Exit status 1 if a target is missed (20,000 lines/s; all streams complete within the bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import orjson
from starlette.types import Receive, Scope, Send

from tests.fakearena import replies
from tests.fakearena.catalog import captured_models
from tests.fakearena.client import ArenaClient, evaluation_body
from tests.fakearena.replies import Ask, answer_text, text_of
from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.procs import fake_arena, free_port, spawn, stop, wait_for_port

MODEL_NAME = "gemini-2.5-pro"
MODEL = next(entry["id"] for entry in captured_models() if entry["publicName"] == MODEL_NAME)
CREATE = "/nextjs-api/stream/create-evaluation"
BIG_PROMPT = "w " * 49_990  # ~50,000 pieces, under the 113,567-character limit
SMALL_PROMPT = " ".join(f"word{n}" for n in range(20))
SMALL_ASK = Ask(model=MODEL_NAME, kind="chat", turn=1, first=SMALL_PROMPT, prompt=SMALL_PROMPT)
PACING = 0.01
LINES_PER_SECOND_TARGET = 20_000
BOUND_SECONDS = 120.0
HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def baseline_app(scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /?lines=N&delay=D`: N lines, D seconds apart, one chunk each; nothing else."""
    query = parse_qs(scope["query_string"].decode())
    count, delay = int(query["lines"][0]), float(query.get("delay", ["0"])[0])
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    for _ in range(count):
        await send({"type": "http.response.body", "body": b'a0:"w "\n', "more_body": True})
        if delay:
            await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextlib.contextmanager
def baseline_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.fakearena:baseline_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ],
        log=workdir / "baseline.log",
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def count_lines(http: httpx.Client, path: str, content: bytes) -> int:
    with http.stream("POST", path, content=content) as response:
        response.raise_for_status()
        return sum(chunk.count(b"\n") for chunk in response.iter_raw())


def best_rate(run: Callable[[], int], repeats: int = 5) -> tuple[float, int]:
    """(lines/s, lines) of the fastest of `repeats` runs."""
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        lines = run()
        best = max(best, lines / (time.perf_counter() - started))
    return best, lines


def fake_rate(client: ArenaClient) -> tuple[float, int]:
    def run() -> int:
        body = evaluation_body(model_id=MODEL, content=BIG_PROMPT, token=client.token())
        return count_lines(client.http, CREATE, orjson.dumps(body))

    return best_rate(run)


def baseline_rate(origin: str, lines: int) -> tuple[float, int]:
    with httpx.Client(base_url=origin, timeout=60) as http:
        return best_rate(lambda: count_lines(http, f"/?lines={lines}", b"{}"))


async def concurrently(
    count: int, one: Callable[[httpx.AsyncClient, int], Awaitable[bool]], http: httpx.AsyncClient
) -> tuple[float, int]:
    """(seconds until all `count` streams ended, how many were right)."""
    started = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(*(one(http, n) for n in range(count))), BOUND_SECONDS
    )
    return time.perf_counter() - started, sum(results)


def async_client(origin: str, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(base_url=origin, limits=limits, timeout=BOUND_SECONDS, cookies=cookies)


def fake_concurrency(client: ArenaClient, count: int) -> tuple[float, int]:
    client.scenario(line_delay_seconds=PACING)
    bodies = [
        evaluation_body(model_id=MODEL, content=SMALL_PROMPT, token=client.token())
        for _ in range(count)
    ]
    expected = answer_text(SMALL_ASK)

    async def one(http: httpx.AsyncClient, n: int) -> bool:
        response = await http.post(CREATE, content=orjson.dumps(bodies[n]))
        return response.status_code == 200 and text_of(response.text.splitlines(), "a") == expected

    async def main() -> tuple[float, int]:
        async with async_client(client.origin, client.http.cookies) as http:
            return await concurrently(count, one, http)

    try:
        return asyncio.run(main())
    finally:
        client.scenario(line_delay_seconds=0)


def baseline_concurrency(origin: str, count: int, lines: int) -> tuple[float, int]:
    async def one(http: httpx.AsyncClient, n: int) -> bool:
        response = await http.post(f"/?lines={lines}&delay={PACING}", content=b"{}")
        return response.status_code == 200 and response.text.count("\n") == lines

    async def main() -> tuple[float, int]:
        async with async_client(origin) as http:
            return await concurrently(count, one, http)

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.fakearena", description=__doc__)
    parser.add_argument(
        "--streams", type=int, default=1000, help="concurrent streams (default 1000)"
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as tmp,
        fake_arena(Path(tmp), "--site", CAPTURED_SITE) as fake,
        baseline_server(Path(tmp)) as baseline,
        ArenaClient(fake) as client,
    ):
        client.visit()
        print(
            f"fake arena benchmark ({os.cpu_count()} cores; server and client in separate processes)"
        )

        rate, lines = fake_rate(client)
        floor, _ = baseline_rate(baseline, lines)
        print(
            f"lines/s to one client:  fake {rate:>9,.0f}   baseline {floor:>9,.0f}   "
            f"ratio {rate / floor:.2f}   ({lines:,} lines, best of 5)"
        )

        small_lines = len(replies.lines("a", SMALL_ASK))
        took, right = fake_concurrency(client, args.streams)
        floor_took, floor_right = baseline_concurrency(baseline, args.streams, small_lines)
        print(
            f"{args.streams:,} concurrent streams: fake {took:>6.2f} s   baseline {floor_took:>6.2f} s   "
            f"ratio {took / floor_took:.2f}   ({small_lines} lines each, {PACING * 1000:.0f} ms apart; "
            f"{right:,} fake and {floor_right:,} baseline answers right)"
        )

    met = rate >= LINES_PER_SECOND_TARGET and right == args.streams
    print(
        f"targets (>= {LINES_PER_SECOND_TARGET:,} lines/s; all {args.streams:,} streams right "
        f"within {BOUND_SECONDS:.0f} s): {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
