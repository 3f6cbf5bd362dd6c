"""What one gateway process holds and relays, and what two behind nginx do.

Synthetic workers (`tests.support.synthetic_worker`: processes that write jobs' events to Redis
at a set pace, as a worker does, without a browser) answer; the bench opens many streamed chat
completions at once over raw sockets (a client light enough not to be the bottleneck). Every
chunk carries the time its worker wrote it: a chunk's latency is from that write to the bench
holding it. For a sample of the same answers the bench also reads the job's Redis Stream itself:
the floor, measured in the same run, under the same load.

  held:      N answers open at once, one chunk a second each: latency through the gateway and
             straight from Redis (p50, p99), and what the gateway adds at p99;
  relay:     answers at 100 chunks a second each: chunks a second the gateway delivers;
  memory:    the gateway's resident memory with N answers open (silent) over none, per answer;
  scale-out: chunks a second through nginx to two gateway processes over one;
  profile:   where the gateway's time goes at the relay load (py-spy, when installed).

CPU used by each process during each measure is printed beside it: on a small machine the
bench, the workers, Redis and nginx share the cores with the gateway.

    python -m tests.bench.capacity [--streams 2000] [--relay 20000] [--no-profile]

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from redis.asyncio import Redis

from shared.credentials.client_keys import KeySpec, KeyStore
from shared.storage import redis_keys
from tests.support.nginx import NGINX, nginx
from tests.support.procs import free_port, redis_server, spawn, stop, wait_for_http

#: Targets.
HELD_STREAMS = 2000
HELD_P99_ADDED_MS = 50.0
RELAY_CHUNKS_PER_S = 20_000
SCALE_OUT_RATIO = 1.8

#: How long the bench waits for all of a measure's answers to be open.
OPEN_WITHIN_S = 180.0

MARK = re.compile(rb"@(\d{19});")
JOB_ID = re.compile(rb"chatcmpl-([0-9a-f]{32})")
_TAIL = 24  # longer than a mark: one split across two reads is found whole
TICKS = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Window:
    """What is counted between `start` and `end` (Unix ns)."""

    start: int = 0
    end: int = 0
    via_gateway: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    chunks: int = 0

    def open(self, seconds: float) -> None:
        self.start = time.time_ns()
        self.end = self.start + int(seconds * 1e9)
        self.via_gateway.clear()
        self.direct.clear()
        self.chunks = 0

    def counts(self, now: int) -> bool:
        return self.start <= now < self.end


@dataclass
class Client:
    """Streams chat completions over raw HTTP/1.1 and tallies their chunks."""

    host: str
    port: int
    key: str
    redis: Redis
    window: Window
    opened: int = 0
    finished: int = 0
    failed: Counter = field(default_factory=Counter)

    def request(self, prompt: str) -> bytes:
        body = orjson.dumps(
            {
                "model": "gemini-3-pro",
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
            }
        )
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + body

    async def stream(self, prompt: str, *, direct: bool = False) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            self.failed[type(exc).__name__] += 1
            return
        reading: asyncio.Task[None] | None = None
        try:
            writer.write(self.request(prompt))
            status = await reader.readline()
            if b" 200 " not in status:
                self.failed[status.decode().strip() or "closed"] += 1
                return
            while await reader.readline() not in (b"\r\n", b""):
                pass
            self.opened += 1
            tail = b""
            while data := await reader.read(65536):
                now = time.time_ns()
                buf = tail + data
                if direct and reading is None and (job := JOB_ID.search(buf)):
                    reading = asyncio.create_task(self.read_directly(job[1].decode()))
                last = 0
                for mark in MARK.finditer(buf):
                    last = mark.end()
                    if self.window.counts(now):
                        self.window.via_gateway.append((now - int(mark[1])) / 1e6)
                        self.window.chunks += 1
                if b"data: [DONE]" in buf:
                    self.finished += 1
                    return
                tail = buf[max(last, len(buf) - _TAIL) :]
            self.failed["cut"] += 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.failed[type(exc).__name__] += 1
        finally:
            writer.close()
            if reading is not None:
                reading.cancel()

    async def read_directly(self, job_id: str) -> None:
        """The same answer's chunks, read straight from its Redis Stream (the floor)."""
        stream, last = redis_keys.job_events(job_id), "0-0"
        while True:
            reply = await self.redis.xread({stream: last}, count=256, block=5000)
            now = time.time_ns()
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    for mark in MARK.finditer(fields[b"d"]):
                        if self.window.counts(now):
                            self.window.direct.append((now - int(mark[1])) / 1e6)
                    if b'"done"' in fields[b"d"]:
                        return


class Cpu:
    """CPU seconds of processes (by name) between two instants."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start = self._now()
        self._at = time.monotonic()

    def _now(self) -> dict[str, float]:
        used = {}
        for name, pid in self.pids.items():
            total = 0.0
            for proc in [pid, *_children(pid)]:
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(fields[11]) + int(fields[12])) / TICKS
            used[name] = total
        own = resource.getrusage(resource.RUSAGE_SELF)
        used["bench"] = own.ru_utime + own.ru_stime
        return used

    def cores(self) -> dict[str, float]:
        """Cores each process kept busy since this was made."""
        end, elapsed = self._now(), time.monotonic() - self._at
        return {name: (end[name] - self._start[name]) / elapsed for name in end}


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(pid)


@dataclass
class Bridge:
    redis_url: str
    workdir: Path
    key: str = ""
    gateways: dict[str, tuple[subprocess.Popen, int]] = field(default_factory=dict)
    workers: list[subprocess.Popen] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {"LMB_REDIS_URL": self.redis_url, "LMB_LOG_LEVEL": "WARNING", **extra}

    def start_gateway(self, name: str) -> int:
        port = free_port()
        proc = spawn(
            [sys.executable, "-m", "cli", "gateway"],
            env=self.env(LMB_PORT=str(port)),
            log=self.workdir / f"{name}.log",
        )
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        self.gateways[name] = (proc, port)
        return port

    def start_workers(self, count: int) -> None:
        for n in range(count):
            self.workers.append(
                spawn(
                    [
                        sys.executable,
                        "-m",
                        "tests.support.synthetic_worker",
                        "--worker-id",
                        f"synthetic-{n}",
                        "--claimers",
                        "8",
                    ],
                    env=self.env(),
                    log=self.workdir / f"synthetic-{n}.log",
                )
            )

    def pids(self, *gateways: str) -> dict[str, int]:
        found = {name: self.gateways[name][0].pid for name in gateways}
        found.update({f"worker{n}": w.pid for n, w in enumerate(self.workers)})
        return found

    def close(self) -> None:
        for proc, _ in self.gateways.values():
            stop(proc)
        for proc in self.workers:
            stop(proc)


async def hold(
    client: Client,
    streams: int,
    per_s: float,
    window_s: float,
    *,
    label: str,
    sample: int,
    pids: dict[str, int],
    profile: tuple[int, Path] | None = None,
) -> dict[str, float]:
    """`streams` answers at `per_s` chunks a second each, all open during a `window_s` window
    (every `sample`-th one also read straight from Redis, `profile`: a pid sampled into a file
    meanwhile); then their clients go away. Returns the cores `pids` kept busy in the window."""
    client.opened, opened_before = 0, client.opened
    tasks = [
        asyncio.create_task(
            client.stream(f"{label} {n} chunks=100000 interval={1 / per_s}", direct=n % sample == 0)
        )
        for n in range(streams)
    ]
    deadline = time.monotonic() + OPEN_WITHIN_S
    while client.opened < streams and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if client.opened < streams:
        print(f"    only {client.opened} of {streams} answers opened in {OPEN_WITHIN_S:g} s")
    await asyncio.sleep(3)  # settled
    client.window.open(window_s)
    cpu = Cpu(pids)
    pid, out = profile or (0, Path())
    with profiled(pid, window_s, out, enabled=profile is not None):
        await asyncio.sleep(window_s)
    cores = cpu.cores()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    client.opened += opened_before
    await asyncio.sleep(3)  # the gateway and workers let go of them
    return cores


def report(
    label: str, window: Window, seconds: float, cores: dict[str, float]
) -> tuple[float, float]:
    """Prints a window's figures; returns (p99 added ms, chunks a second)."""
    added = pct(window.via_gateway, 99) - pct(window.direct, 99)
    rate = window.chunks / seconds
    gateways = sum(used for name, used in cores.items() if name.startswith("g"))
    per_chunk_us = gateways / max(rate, 1) * 1e6
    print(
        f"{label}: {rate:,.0f} chunks/s; latency via gateway p50 {pct(window.via_gateway, 50):.1f}"
        f" p99 {pct(window.via_gateway, 99):.1f} ms; straight from Redis p50"
        f" {pct(window.direct, 50):.1f} p99 {pct(window.direct, 99):.1f} ms"
        f" ({len(window.direct)} chunks); added at p99 {added:.1f} ms\n    cores: "
        + ", ".join(f"{name} {used:.2f}" for name, used in cores.items())
        + f"; gateway CPU {per_chunk_us:.0f} µs a chunk, so a whole core would relay"
        f" {1e6 / per_chunk_us:,.0f} chunks/s; load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} cores"
    )
    return added, rate


@contextlib.contextmanager
def profiled(pid: int, seconds: float, out: Path, *, enabled: bool) -> Iterator[None]:
    """py-spy sampling the gateway for `seconds` while the block runs (if py-spy is there)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = None
    if enabled and Path(spy).is_file():
        proc = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        yield
    finally:
        if proc is not None:
            proc.wait(seconds + 30)


def profile_summary(raw: Path, top: int = 18) -> str:
    """Self time by function, and time under the gateway's own stages, from collapsed stacks."""
    if not raw.is_file():
        return "  (no profile: pip install py-spy)"
    own: Counter = Counter()
    under: Counter = Counter()
    total = 0
    stages = {
        "read (XREAD)": "job_handle.py",
        "render (SSE frames)": "render.py",
        "sse encode": "sse.py",
        "redis-py parsing": "redis/",
        "asyncio loop": "asyncio/",
        "uvicorn/h11 send": "uvicorn/",
        "starlette streaming": "starlette/",
    }
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1].split(" (")[0] + " " + _where(frames[-1])] += n
        for stage, marker in stages.items():
            if any(marker in frame for frame in frames):
                under[stage] += n
    lines = [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["  under:"] + [f"  {under[s] / total:6.1%}  {s}" for s in stages]
    return "\n".join(lines)


def _where(frame: str) -> str:
    inside = frame.split(" (", 1)[1].rstrip(")") if " (" in frame else ""
    return inside.rsplit("/", 2)[-1] if inside else ""


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=HELD_STREAMS)
    parser.add_argument("--relay", type=int, default=RELAY_CHUNKS_PER_S, help="chunks/s offered")
    parser.add_argument("--workers", type=int, default=2, help="synthetic worker processes")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument(
        "--profile", default="relay", choices=["relay", "held", "none"], help="what py-spy samples"
    )
    parser.add_argument(
        "--only", default="memory,held,relay,scale-out", help="the measures to run, comma-separated"
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    missed = []
    workdir = Path(tempfile.mkdtemp(prefix="lmb-capacity-"))
    with redis_server(workdir) as redis_url:
        bridge = Bridge(redis_url, workdir)
        redis = Redis.from_url(redis_url)
        bridge.key, _ = await KeyStore(redis).create(KeySpec(name="bench"))
        try:
            bridge.start_workers(args.workers)
            port = bridge.start_gateway("g1")
            await asyncio.sleep(2)  # the workers' catalog and heartbeats
            window = Window()
            client = Client("127.0.0.1", port, bridge.key, redis, window)

            # Memory: the gateway alone, then with N silent answers open.
            if "memory" in only:
                await memory(client, bridge, args.streams)

            async def measure(
                kind: str, streams: int, per_s: float, sample: int
            ) -> tuple[float, float]:
                """`hold` through the one gateway, reported (and profiled if asked)."""
                raw = workdir / f"profile-{kind}-{streams}.txt"
                profiling = args.profile == kind
                pid = bridge.gateways["g1"][0].pid
                cores = await hold(
                    client,
                    streams,
                    per_s,
                    args.window,
                    label=kind,
                    sample=sample,
                    pids=bridge.pids("g1"),
                    profile=(pid, raw) if profiling else None,
                )
                figures = report(f"{kind} {streams}×{per_s:g}/s", window, args.window, cores)
                if profiling:
                    print(f"profile of the gateway, {kind} {streams} (share of samples):")
                    print(profile_summary(raw))
                if client.failed:
                    print(f"    failed: {dict(client.failed)}")
                    client.failed.clear()
                return figures

            # Held streams, at two sizes: a tenth of N (the baseline) and N.
            for streams in (args.streams // 10, args.streams) if "held" in only else ():
                added, _ = await measure("held", streams, 1.0, sample=20)
                if streams == args.streams and not added <= HELD_P99_ADDED_MS:
                    missed.append(f"held {streams}: p99 added {added:.1f} ms")

            # Relay: answers at 100 chunks a second each.
            per_s = 100
            if "relay" in only:
                _, rate = await measure("relay", args.relay // per_s, per_s, sample=10)
                if rate < RELAY_CHUNKS_PER_S:
                    missed.append(f"relay: {rate:,.0f} chunks/s")

            # Scale-out: through nginx, to the one gateway twice, then to two gateways.
            if "scale-out" in only and NGINX.is_file():
                second = bridge.start_gateway("g2")
                rates = []
                for name, ports in (("one", [port, port]), ("two", [port, second])):
                    with nginx(workdir / f"nginx-{name}", ports) as front:
                        through = Client("127.0.0.1", front.port, bridge.key, redis, window)
                        names = ("g1",) if name == "one" else ("g1", "g2")
                        offered = 2 * args.relay // per_s
                        cores = await hold(
                            through,
                            offered,
                            per_s,
                            args.window,
                            label=f"nginx-{name}",
                            sample=10,
                            pids={**bridge.pids(*names), "nginx": front.proc.pid},
                        )
                        _, rate = report(
                            f"nginx → {name} gateway(s), {offered}×{per_s}/s offered",
                            window,
                            args.window,
                            cores,
                        )
                        rates.append(rate)
                ratio = rates[1] / rates[0]
                print(f"scale-out: two gateways {ratio:.2f}× one (target {SCALE_OUT_RATIO}×)")
                if ratio < SCALE_OUT_RATIO:
                    missed.append(f"scale-out {ratio:.2f}×")
        finally:
            bridge.close()
            await redis.aclose()
    if missed:
        print("missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


async def memory(client: Client, bridge: Bridge, streams: int) -> None:
    """The gateway's resident memory alone, then with `streams` silent answers open."""
    pid = bridge.gateways["g1"][0].pid
    idle_mib = rss_mib(pid)
    silent = [
        asyncio.create_task(client.stream(f"silent {n} chunks=1 interval=300"))
        for n in range(streams)
    ]
    deadline = time.monotonic() + 60
    while client.opened < streams and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    open_mib = rss_mib(pid)
    per = (open_mib - idle_mib) * 1024 / max(1, client.opened)
    print(
        f"memory: gateway {idle_mib:.0f} MiB idle, {open_mib:.0f} MiB with {client.opened}"
        f" answers open: {per:.1f} KiB an answer"
    )
    for task in silent:
        task.cancel()
    await asyncio.gather(*silent, return_exceptions=True)
    await asyncio.sleep(3)  # the gateway lets go of them


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
