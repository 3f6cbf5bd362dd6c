"""What the bridge adds on top of the arena: time to first token, total time, per-chunk latency.

One run measures, against the fake arena paced like a real model:
  (a) the floor: a plain HTTP client streaming create-evaluation straight from the fake arena;
  (b) the same request through the whole bridge (gateway → Redis/arq → browser worker → arena →
      Redis Stream → SSE) with the official openai SDK;
  (c) 8 and 32 concurrent streams through the bridge (two workers) against one stream alone.
Per-chunk latency is the time from the fake arena handing a line to its connection (it logs
that instant) to the client holding the matching token.

After the figures, a breakdown of the first token (and of later tokens) by stage, from the
instants each side records: the client's clock, the fake's request and line log, and the ids of
the job's Redis Stream entries (`accepted`, the first `text`), which are the Redis server's clock
in whole milliseconds (so each counts as the middle of its millisecond). The page's share
(CDP, the page's fetch(), Chromium's network) is measured alone by `tests.bench.page_fetch`.

    python -m tests.bench.overhead [--requests 40] [--line-delay 0.01] [--words 40]

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
from redis import Redis

from shared import events
from shared.arena import payloads
from shared.arena.ids import uuid7
from shared.arena.stream import LineParser
from shared.storage import redis_keys
from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.procs import arena_tls, fake_arena, redis_server
from tests.support.stack import Stack

MODEL = "gemini-2.5-pro"
#: Its id on the captured site, which the comparison runs against (one-model chats are `direct`).
MODEL_ID = "0199f060-b306-7e1f-aeae-0ebb4e3f1122"

#: Targets, above the floor measured in the same run.
TTFT_P50_MS = 4.0
TTFT_P99_MS = 15.0
CHUNK_P50_MS = 1.0
CONCURRENT_32_RATIO = 3.0


@dataclass
class Run:
    """One streamed answer as a client saw it."""

    prompt: str
    started: float
    first: float = 0.0
    ended: float = 0.0
    received: list[float] = field(default_factory=list)  # Unix time of each text token
    completion_id: str = ""

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.started) * 1000

    @property
    def total_ms(self) -> float:
        return (self.ended - self.started) * 1000


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def prompt_of(words: int) -> str:
    return " ".join(["word"] * words) + f" {uuid.uuid4().hex[:8]}"


async def floor_once(arena: httpx.AsyncClient, words: int) -> Run:
    token = (await arena.post("/__fake/recaptcha-token", json={"action": "chat_submit"})).json()[
        "token"
    ]
    run = Run(prompt_of(words), 0.0)
    request = payloads.create_evaluation(
        payloads.UserTurn(
            session_id=uuid7(),
            model_a_id=MODEL_ID,
            user_message_id=uuid7(),
            model_a_message_id=uuid7(),
            content=run.prompt,
            modality="chat",
            token=token,
        ),
        mode="direct",
    )
    parser = LineParser()
    run.started = time.time()
    async with arena.stream(
        request.method,
        request.path,
        json=request.body,
        headers={"content-type": "text/plain;charset=UTF-8"},
    ) as response:
        async for chunk in response.aiter_raw():
            now = time.time()
            for part in parser.feed(chunk):
                if part.code == "0":
                    run.first = run.first or now
                    run.received.append(now)
    run.ended = time.time()
    return run


async def bridge_once(client: openai.AsyncOpenAI, words: int) -> Run:
    run = Run(prompt_of(words), time.time())
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": run.prompt}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.time()
            run.first = run.first or now
            run.received.append(now)
        run.completion_id = chunk.id
    run.ended = time.time()
    return run


@dataclass
class ArenaSide:
    """What the fake arena logged of one run: when the request reached it, when each token left."""

    received_at: float
    text_sent: list[float]  # Unix time each text line was handed to the connection


def arena_sides(runs: list[Run], log: dict) -> list[ArenaSide]:
    by_prompt = {s["turns"][0]["text"]: s["id"] for s in log["sessions"]}
    streams = {s["session_id"]: s for s in log["streams"]}
    received = {
        r["body"]["id"]: r["received_at"]
        for r in log["requests"]
        if r["path"].endswith("/create-evaluation") and isinstance(r["body"], dict)
    }
    sides = []
    for run in runs:
        session = by_prompt[run.prompt]
        stream = streams[session]
        text_sent = [
            t
            for line, t in zip(stream["lines"], stream["sent_at"], strict=True)
            if line.startswith("a0:")
        ]
        assert len(text_sent) == len(run.received), "every token sent arrived, once"
        sides.append(ArenaSide(received[session], text_sent))
    return sides


def chunk_latencies_ms(runs: list[Run], sides: list[ArenaSide]) -> list[float]:
    """Client receipt minus the arena's send time, token by token."""
    return [
        (got - put) * 1000
        for run, side in zip(runs, sides, strict=True)
        for got, put in zip(run.received, side.text_sent, strict=True)
    ]


def entry_time(entry_id: bytes) -> float:
    """Unix time of a Redis Stream entry: its id's whole milliseconds, taken at their middle."""
    return (int(entry_id.split(b"-")[0]) + 0.5) / 1000


def stream_times(redis: Redis, run: Run) -> tuple[float, list[float]]:
    """When the job's `accepted` and each of its `text` events were written to its stream."""
    job_id = run.completion_id.removeprefix("chatcmpl-")
    entries = [
        (entry_time(i), events.decode(f)) for i, f in redis.xrange(redis_keys.job_events(job_id))
    ]
    accepted = next(t for t, event in entries if event["t"] == "accepted")
    return accepted, [t for t, event in entries if event["t"] == "text"]


Stages = dict[str, list[float]]


def floor_stages(runs: list[Run], sides: list[ArenaSide]) -> Stages:
    stages: Stages = {
        "client → arena has the request": [],
        "arena: request → first line": [],
        "first line → client": [],
    }
    for run, side in zip(runs, sides, strict=True):
        stages["client → arena has the request"].append(side.received_at - run.started)
        stages["arena: request → first line"].append(side.text_sent[0] - side.received_at)
        stages["first line → client"].append(run.first - side.text_sent[0])
    return stages


def bridge_stages(redis: Redis, runs: list[Run], sides: list[ArenaSide]) -> tuple[Stages, Stages]:
    """The first token's path by stage, and every later token's."""
    first: Stages = {
        "client → worker took the job": [],  # SDK, HTTP, gateway, enqueue, wake-up, claim, job start
        "job taken → arena has the request": [],  # CDP, the page's fetch(), Chromium's network
        "arena: request → first line": [],
        "first line → its event in Redis": [],  # Chromium → page → CDP binding → worker → XADD
        "event in Redis → client": [],  # XREAD, SSE frame, uvicorn, SDK
    }
    later: Stages = {"line → its event in Redis": [], "event in Redis → client": []}
    for run, side in zip(runs, sides, strict=True):
        accepted, written = stream_times(redis, run)
        assert len(written) == len(side.text_sent), "one text event per text line"
        first["client → worker took the job"].append(accepted - run.started)
        first["job taken → arena has the request"].append(side.received_at - accepted)
        first["arena: request → first line"].append(side.text_sent[0] - side.received_at)
        first["first line → its event in Redis"].append(written[0] - side.text_sent[0])
        first["event in Redis → client"].append(run.first - written[0])
        for sent, put, got in list(zip(side.text_sent, written, run.received, strict=True))[1:]:
            later["line → its event in Redis"].append(put - sent)
            later["event in Redis → client"].append(got - put)
    return first, later


def print_stages(title: str, stages: Stages) -> None:
    print(title)
    for name, values in stages.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:<36} p50 {pct(ms, 50):7.2f} ms   p90 {pct(ms, 90):7.2f} ms")


def summary(name: str, values: list[float]) -> str:
    return f"{name:<28} p50 {pct(values, 50):8.2f} ms   p99 {pct(values, 99):8.2f} ms"


async def measure(stack: Stack, args: argparse.Namespace) -> bool:
    arena = httpx.AsyncClient(
        base_url=stack.arena_url, timeout=60, http2=True, verify=stack.arena_verify
    )
    await arena.get("/")  # a guest identity, as a browser has
    client = openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0)
    await arena.post("/__fake/scenario", json={"line_delay_seconds": args.line_delay})

    # Warm both paths: connections, the workers' token pools. (No reset after this: it would
    # void the tokens the workers minted ahead.)
    for _ in range(3):
        await floor_once(arena, args.words)
        await bridge_once(client, args.words)

    floor: list[Run] = []
    bridge: list[Run] = []
    for _ in range(args.requests):  # interleaved, so that machine noise hits both alike
        floor.append(await floor_once(arena, args.words))
        bridge.append(await bridge_once(client, args.words))
        await asyncio.sleep(0.2)  # let the worker's token pool refill, as between real requests
    log = (await arena.get("/__fake/log")).json()
    floor_sides, bridge_sides = arena_sides(floor, log), arena_sides(bridge, log)
    floor_chunks = chunk_latencies_ms(floor, floor_sides)
    bridge_chunks = chunk_latencies_ms(bridge, bridge_sides)

    async def concurrent(n: int) -> float:
        started = time.monotonic()
        runs = await asyncio.gather(*(bridge_once(client, args.words) for _ in range(n)))
        assert all(run.received for run in runs)
        return time.monotonic() - started

    alone = statistics.median([await concurrent(1) for _ in range(5)])
    await asyncio.sleep(1)
    c8 = await concurrent(8)
    await asyncio.sleep(1)
    c32 = await concurrent(32)
    await arena.aclose()
    await client.close()

    f_ttft = [r.ttft_ms for r in floor]
    b_ttft = [r.ttft_ms for r in bridge]
    print(
        f"\n{args.requests} requests each, {args.words + 1} words, {args.line_delay * 1000:.0f} ms between lines\n"
    )
    print("(a) floor: plain HTTP client straight to the fake arena")
    print(summary("  time to first token", f_ttft))
    print(summary("  total", [r.total_ms for r in floor]))
    print(summary("  per-chunk latency", floor_chunks))
    print("(b) through the bridge, openai SDK")
    print(summary("  time to first token", b_ttft))
    print(summary("  total", [r.total_ms for r in bridge]))
    print(summary("  per-chunk latency", bridge_chunks))
    ttft50 = pct(b_ttft, 50) - pct(f_ttft, 50)
    ttft99 = pct(b_ttft, 99) - pct(f_ttft, 99)
    chunk50 = pct(bridge_chunks, 50) - pct(floor_chunks, 50)
    print("added by the bridge")
    print(f"  time to first token        p50 {ttft50:+8.2f} ms   p99 {ttft99:+8.2f} ms")
    print(
        f"  total                      p50 {pct([r.total_ms for r in bridge], 50) - pct([r.total_ms for r in floor], 50):+8.2f} ms"
    )
    print(
        f"  per-chunk latency          p50 {chunk50:+8.2f} ms   p99 {pct(bridge_chunks, 99) - pct(floor_chunks, 99):+8.2f} ms"
    )
    print("(c) concurrency through the bridge (two workers)")
    print(f"  1 stream alone             {alone * 1000:8.1f} ms")
    print(f"  8 concurrent               {c8 * 1000:8.1f} ms   {c8 / alone:5.2f}× one")
    print(f"  32 concurrent              {c32 * 1000:8.1f} ms   {c32 / alone:5.2f}× one")

    checks = [
        (f"TTFT p50 ≤ floor + {TTFT_P50_MS} ms", ttft50 <= TTFT_P50_MS),
        (f"TTFT p99 ≤ floor + {TTFT_P99_MS} ms", ttft99 <= TTFT_P99_MS),
        (f"per-chunk p50 ≤ floor + {CHUNK_P50_MS} ms", chunk50 <= CHUNK_P50_MS),
        (f"32 concurrent ≤ {CONCURRENT_32_RATIO}× one", c32 / alone <= CONCURRENT_32_RATIO),
    ]
    print()
    for name, ok in checks:
        print(f"  {'met   ' if ok else 'MISSED'} {name}")

    print(
        "\nWhere the time goes (stream entry times are whole milliseconds, taken at their middle)"
    )
    print_stages("(a) floor, first token", floor_stages(floor, floor_sides))
    first, later = bridge_stages(stack.redis, bridge, bridge_sides)
    print_stages("(b) bridge, first token", first)
    print_stages("(b) bridge, later tokens", later)
    return all(ok for _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--line-delay", type=float, default=0.01, help="seconds between arena lines"
    )
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--capacity", type=int, default=16, help="streams per worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # Over HTTPS and HTTP/2, as the real site: HTTP/1.1 would cap a browser at 6 streams.
        with (
            redis_server(workdir) as redis_url,
            fake_arena(workdir, "--site", CAPTURED_SITE, tls=True) as arena_url,
        ):
            stack = Stack(
                redis_url,
                arena_url,
                workdir,
                arena_verify=arena_tls(workdir),
                env={"LMB_WORKER_CAPACITY": str(args.capacity), "LMB_LOG_LEVEL": "WARNING"},
            )
            try:
                stack.start_gateway()
                stack.start_worker("bench-1")
                stack.start_worker("bench-2")
                return 0 if asyncio.run(measure(stack, args)) else 1
            finally:
                stack.close()


if __name__ == "__main__":
    sys.exit(main())
