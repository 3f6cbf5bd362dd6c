"""What one more account costs on a machine: memory and idle CPU, per added worker.

A bridge on the fake arena, as `lmarena-bridge up` runs it (real redis-server, a gateway and
worker processes, each worker's real Chromium, the product's default periods), first with one
worker and then with `--workers` of them (`--together`: one worker process serving them all, a
prototype). Each phase is left to settle idle, then measured:
  memory: PSS (`memory_full_info().pss`) of each worker's Python process, of its Chromium tree
    (the browser and every helper it forked), of its chromedriver and, headed, of its display
    (Xvfb, x11vnc, websockify); PSS splits pages shared between processes among them, so the
    figure that holds for the next account is the growth from one worker to N, per added one;
  idle CPU: CPU seconds per wall second over a fixed window, per process group (the gateway,
    Redis, each worker's Python, Chromium tree, chromedriver and display), the exited children a
    process reaped in the window included.
The baseline, measured in the same run: stock Chromium (the Debian launcher's own switches,
headless) on about:blank, one and then as many, measured the same way: what a browser costs
before the bridge adds its page, its switches and its Python.

Chromium keeps busy for most of a minute after it starts (its after-startup tasks), so each phase
settles that long before its window. The bridge runs headed on Xvfb, as `up` runs it where the
display stack is installed (else headless); `--mode headless` or `both` measure headless too.
The baseline takes about two minutes, each mode about two and a half.

    python -m tests.bench.accounts [--workers 3] [--settle 40] [--window 20] [--mode headed]
        [--together]

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared.settings import Settings
from tests.support.procs import fake_arena, redis_server, spawn, stop
from tests.support.stack import Stack
from worker.browser.display import missing_tools

#: Targets per added account (idle CPU is the whole bridge's growth per added account).
PSS_PER_ACCOUNT_MIB = 150.0
CPU_PER_ACCOUNT_MS_S = 5.0

MiB = 2**20
SCHEDSTATS = Path("/proc/self/schedstat").exists()
#: Each process a worker starts, by name, heads a group; its descendants belong to it.
GROUP_OF = {
    "chromium": "chromium",
    "chrome": "chromium",
    "chromedriver": "driver",
    "Xvfb": "display",
    "x11vnc": "display",
    "websockify": "display",
}
WORKER_GROUPS = ("python", "chromium", "driver", "display")

Groups = dict[str, list[psutil.Process]]


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def worker_groups(pid: int) -> Groups:
    """A worker's processes by group: its own Python, and each child with its descendants."""
    root = psutil.Process(pid)
    groups: Groups = {"python": [root]}
    for child in root.children():
        group = GROUP_OF.get(child.name(), "other")
        groups.setdefault(group, []).extend([child, *child.children(recursive=True)])
    return groups


def pss(processes: list[psutil.Process]) -> float:
    """Their PSS in MiB (processes that ended meanwhile count nothing)."""
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_full_info().pss
    return total / MiB


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time of its live threads and of the children it reaped.

    Threads are read from schedstats, to the nanosecond, where the kernel keeps them: the
    clock-tick counts of `cpu_times` are 10 ms coarse, a whole idle process's use in a window.
    """
    times = process.cpu_times()
    reaped = times.children_user + times.children_system
    if not SCHEDSTATS:
        return reaped + times.user + times.system
    used = 0
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread that ended
            used += int((task / "schedstat").read_text().split()[0])
    return reaped + used / 1e9


class CpuWindow:
    """CPU seconds per wall second of groups of processes, from now until `stop`."""

    def __init__(self, groups: Callable[[], Groups]) -> None:
        self._groups = groups
        self._started = time.monotonic()
        self._at_start = self._sample()

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        for name, processes in self._groups().items():
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    sample.setdefault(name, {})[process.pid] = cpu_seconds(process)
        return sample

    def stop(self) -> dict[str, float]:
        """ms of CPU per second, by group, over the window (a process new in it counts whole)."""
        at_end = self._sample()
        wall = time.monotonic() - self._started
        return {
            name: 1000
            * sum(used - self._at_start.get(name, {}).get(pid, 0.0) for pid, used in pids.items())
            / wall
            for name, pids in at_end.items()
        }


@dataclass
class Phase:
    accounts: int
    #: MiB by worker, then group.
    pss: dict[str, dict[str, float]]
    #: ms/s by group: "gateway", "redis", and "<worker> <group>".
    cpu: dict[str, float]
    processes: dict[str, int]

    def total_pss(self) -> float:
        return sum(sum(groups.values()) for groups in self.pss.values())

    def total_cpu(self) -> float:
        return sum(self.cpu.values())


def measure_phase(
    groups: Callable[[], dict[str, Groups]], accounts: int, settle: float, window: float
) -> Phase:
    """`groups`: by owner (a worker, "gateway", "redis"), its processes by group."""
    time.sleep(settle)

    def flat() -> Groups:
        return {
            f"{owner} {group}" if group != owner else owner: processes
            for owner, by_group in groups().items()
            for group, processes in by_group.items()
        }

    cpu = CpuWindow(flat)
    time.sleep(window)
    used = cpu.stop()
    owners = groups()
    memory = {
        owner: {group: pss(processes) for group, processes in by_group.items()}
        for owner, by_group in owners.items()
        if owner not in ("gateway", "redis")
    }
    counts = {
        f"{owner} {group}": len(processes)
        for owner, by_group in owners.items()
        for group, processes in by_group.items()
    }
    return Phase(accounts, memory, used, counts)


def print_phase(title: str, phase: Phase) -> None:
    print(title)
    for owner, by_group in phase.pss.items():
        cells = "  ".join(
            f"{group} {by_group[group]:6.1f} MiB ({phase.processes[f'{owner} {group}']}p) "
            f"{phase.cpu.get(f'{owner} {group}', 0.0):5.2f} ms/s"
            for group in WORKER_GROUPS
            if group in by_group
        )
        print(f"  {owner:<10} {cells}")
        if "other" in by_group:
            print(f"  {'':<10} other {by_group['other']:6.1f} MiB")
    if shared := "  ".join(
        f"{name} {phase.cpu[name]:5.2f} ms/s" for name in ("gateway", "redis") if name in phase.cpu
    ):
        print(f"  {'':<10} {shared}")
    print(
        f"  total      {phase.total_pss():7.1f} MiB of workers   "
        f"{phase.total_cpu():6.2f} ms/s of CPU in all"
    )


@dataclass
class Added:
    pss_mib: float
    cpu_ms_s: float


def per_added(one: Phase, many: Phase) -> Added:
    added = many.accounts - one.accounts
    return Added(
        (many.total_pss() - one.total_pss()) / added, (many.total_cpu() - one.total_cpu()) / added
    )


# --- the baseline: stock Chromium on about:blank -------------------------------------------


@contextlib.contextmanager
def stock_chromium(workdir: Path, n: int) -> Iterator[list[subprocess.Popen]]:
    """`n` headless Chromiums, each on its own profile, with only the launcher's own switches."""
    chromium = Settings().chromium_path
    root = ["--no-sandbox"] if os.geteuid() == 0 else []
    procs = []
    try:
        for i in range(n):
            profile = workdir / f"stock-{i}"
            procs.append(
                spawn(
                    [
                        chromium,
                        "--headless=new",
                        *root,
                        f"--user-data-dir={profile}",
                        "--remote-debugging-port=0",  # stays up, as a driven browser does
                        "about:blank",
                    ]
                )
            )
        yield procs
    finally:
        for proc in procs:
            stop(proc)


def baseline(workdir: Path, n: int, settle: float, window: float) -> tuple[Phase, Phase]:
    def phase(count: int) -> Phase:
        with stock_chromium(workdir, count) as procs:
            return measure_phase(
                lambda: {f"stock-{i}": {"chromium": tree(p.pid)} for i, p in enumerate(procs)},
                count,
                settle,
                window,
            )

    return phase(1), phase(n)


# --- the bridge ---------------------------------------------------------------------------


def bridge_groups(stack: Stack, redis_pid: int) -> dict[str, Groups]:
    owners: dict[str, Groups] = {}
    assert stack.gateway is not None
    owners["gateway"] = {"gateway": tree(stack.gateway.pid)}
    owners["redis"] = {"redis": [psutil.Process(redis_pid)]}
    for name, proc in stack.workers.items():
        owners[name] = worker_groups(proc.pid)
    return owners


def redis_pid(workdir: Path) -> int:
    """The redis-server started in `workdir` (tests.support.procs gives only its URL)."""
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "redis-server" and process.info["cwd"] == str(workdir):
            return process.pid
    raise RuntimeError("no redis-server found")


def start_apart(stack: Stack, accounts: list[str]) -> None:
    """A worker process for each account not served yet, as `up` runs them."""
    new = [name for name in accounts if name not in stack.workers]
    for name in new:
        stack.start_worker(name, wait_ready=False)
    for name in new:
        stack.wait_worker(name, "ready", timeout=120)


def start_together(stack: Stack, accounts: list[str]) -> None:
    """One process serving every account (`tests.bench.one_process`), in place of any before."""
    for name in list(stack.workers):
        stack.stop_worker(name)
    name = f"{len(accounts)} in one"
    stack.workers[name] = spawn(
        [sys.executable, "-m", "tests.bench.one_process", *accounts],
        env=stack._env(),
        log=stack.workdir / f"{len(accounts)}-accounts.log",
    )
    for account in accounts:
        stack.wait_worker(account, "ready", timeout=120)


def bridge(
    workdir: Path, *, headed: bool, n: int, settle: float, window: float, together: bool
) -> tuple[Phase, Phase]:
    defaults = Settings.model_fields
    env = {
        # The product's own periods: the test stack beats faster to keep its tests quick.
        "LMB_HEARTBEAT_SECONDS": str(defaults["heartbeat_seconds"].default),
        "LMB_LOG_LEVEL": "WARNING",
        **({"LMB_DISPLAY": "on", "LMB_HEADLESS": "false"} if headed else {}),
    }
    start = start_together if together else start_apart
    phases = []
    with redis_server(workdir) as redis_url, fake_arena(workdir) as arena_url:
        stack = Stack(redis_url, arena_url, workdir, env=env)
        pid = redis_pid(workdir)
        try:
            stack.start_gateway()
            for count in (1, n):
                start(stack, [f"worker-{i}" for i in range(1, count + 1)])
                phases.append(
                    measure_phase(lambda: bridge_groups(stack, pid), count, settle, window)
                )
        finally:
            stack.close()
    one, many = phases
    return one, many


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3, help="workers in the second phase")
    parser.add_argument("--settle", type=float, default=40.0, help="idle seconds before measuring")
    parser.add_argument("--window", type=float, default=20.0, help="seconds CPU is measured over")
    parser.add_argument("--mode", choices=("headless", "headed", "both"), default="headed")
    parser.add_argument(
        "--together",
        action="store_true",
        help="serve every account from one worker process (a prototype: tests.bench.one_process)",
    )
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers must be at least 2")
    modes = ["headless", "headed"] if args.mode == "both" else [args.mode]
    if "headed" in modes and (missing := missing_tools()):
        print(f"headed: not measured (needs {', '.join(missing)})")
        modes = ["headless"]
    n = args.workers
    started = time.monotonic()
    results: dict[str, Added] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stock_one, stock_many = baseline(workdir, n, args.settle, args.window)
        stock = per_added(stock_one, stock_many)
        print_phase("baseline: stock headless Chromium on about:blank, one", stock_one)
        print_phase(f"baseline: {n} of them", stock_many)
        print(f"  per added browser  {stock.pss_mib:6.1f} MiB   {stock.cpu_ms_s:5.2f} ms/s\n")
        for mode in modes:
            run = workdir / mode
            run.mkdir()
            one, many = bridge(
                run,
                headed=mode == "headed",
                n=n,
                settle=args.settle,
                window=args.window,
                together=args.together,
            )
            how = " in one worker process" if args.together else ""
            print_phase(f"{mode}: bridge with one idle account{how}", one)
            print_phase(f"{mode}: bridge with {n} idle accounts{how}", many)
            added = results[mode] = per_added(one, many)
            print(
                f"  per added account  {added.pss_mib:6.1f} MiB ({added.pss_mib / stock.pss_mib:4.2f}× a stock browser)"
                f"   {added.cpu_ms_s:5.2f} ms/s"
                f" ({added.cpu_ms_s - stock.cpu_ms_s:+5.2f} ms/s over a stock browser)\n"
            )
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"({time.monotonic() - started:.0f} s)")
    checks = [
        check
        for mode, added in results.items()
        for check in (
            (
                f"{mode}: per added account ≤ {PSS_PER_ACCOUNT_MIB:g} MiB",
                added.pss_mib <= PSS_PER_ACCOUNT_MIB,
            ),
            (
                f"{mode}: per added account ≤ {CPU_PER_ACCOUNT_MS_S:g} ms/s of CPU idle",
                added.cpu_ms_s <= CPU_PER_ACCOUNT_MS_S,
            ),
        )
    ]
    for name, ok in checks:
        print(f"  {'met   ' if ok else 'MISSED'} {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
