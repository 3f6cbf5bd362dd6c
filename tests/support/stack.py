"""The whole bridge as separate processes (gateway, workers) on a real Redis and the fake arena."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import openai
import redis

from shared.arena.site import STREAM_PREFIX
from shared.fleet.worker_status import WorkerStatus
from shared.storage import redis_keys
from tests.support.procs import (
    TEST_CHROMIUM_ARGS,
    TLS_CHROMIUM_ARGS,
    fake_arena,
    free_port,
    redis_server,
    spawn,
    stop,
    wait_for_http,
)

T = TypeVar("T")


@dataclass
class Stack:
    redis_url: str
    arena_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    #: What every gateway of the stack gets besides `env` (kept when a test restarts one).
    gateway_env: dict[str, str] = field(default_factory=dict)
    arena_verify: ssl.SSLContext | bool = True  # trusts the test CA when the fake arena speaks TLS
    gateway_port: int = 0
    gateway: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: More gateways on the same Redis, by name: their process and port.
    others: dict[str, tuple[subprocess.Popen, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis = redis.Redis.from_url(self.redis_url)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            "LMB_REDIS_URL": self.redis_url,
            "LMB_ARENA_URL": self.arena_url,
            "LMB_STATE_DIR": str(self.workdir / "state"),
            "LMB_HEADLESS": "true",
            "LMB_CHROMIUM_ARGS": json.dumps(
                TEST_CHROMIUM_ARGS
                + (TLS_CHROMIUM_ARGS if self.arena_url.startswith("https:") else [])
            ),
            "LMB_HEARTBEAT_SECONDS": "0.5",
            # Unpaced unless a test paces the accounts itself.
            "LMB_ACCOUNT_MIN_INTERVAL_SECONDS": "0",
            "LMB_ACCOUNT_CALLS_PER_15_MINUTES": "0",
            "LMB_ACCOUNT_CALLS_PER_DAY": "0",
            # Served without keys (on loopback) unless a test makes one.
            "LMB_OPEN": "true",
            **self.env,
            **extra,
        }

    def start_gateway(self, **env: str) -> None:
        self.gateway_port = self.gateway_port or free_port()
        self.gateway = spawn(
            [sys.executable, "-m", "cli", "gateway"],
            env=self._env(LMB_PORT=str(self.gateway_port), **{**self.gateway_env, **env}),
            log=self.workdir / "gateway.log",
        )
        wait_for_http(f"{self.base_url}/healthz", proc=self.gateway)

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            stop(self.gateway)
            self.gateway = None

    def start_other_gateway(self, name: str, **env: str) -> str:
        """Another gateway on the same Redis (its own port, log `<name>.log`); its base URL."""
        port = free_port()
        proc = spawn(
            [sys.executable, "-m", "cli", "gateway"],
            env=self._env(LMB_PORT=str(port), **env),
            log=self.workdir / f"{name}.log",
        )
        self.others[name] = (proc, port)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", proc=proc)
        return url

    def kill_other_gateway(self, name: str) -> None:
        """SIGKILL: the gateway dies without a chance to clean up after itself."""
        proc, _ = self.others.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def start_worker(self, name: str, *, wait_ready: bool = True, **env: str) -> None:
        self.workers[name] = spawn(
            [sys.executable, "-m", "cli", "worker"],
            env=self._env(LMB_WORKER_ID=name, **env),
            log=self.workdir / f"{name}.log",
        )
        if wait_ready:
            self.wait_worker(name, "ready")

    def stop_worker(self, name: str) -> None:
        stop(self.workers.pop(name))

    def kill_worker(self, name: str) -> None:
        """SIGKILL its process group: the worker and its browser die at once, as in a crash."""
        proc = self.workers.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def worker_status(self, name: str) -> WorkerStatus | None:
        raw = self.redis.get(redis_keys.worker_heartbeat(name))
        return WorkerStatus.load(raw) if raw else None

    def wait_worker(self, name: str, state: str, timeout: float = 60.0) -> WorkerStatus:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            proc = self.workers.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.workdir}/{name}.log"
                )
            status = self.worker_status(name)
            if status is not None and status.state.value == state:
                return status
            time.sleep(0.05)
        raise TimeoutError(f"{name} not {state} after {timeout}s (last: {status})")

    def arena(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Call the fake arena's control API."""
        response = httpx.request(
            method,
            f"{self.arena_url}/__fake/{path}",
            timeout=10,
            verify=self.arena_verify,
            **kwargs,
        )
        response.raise_for_status()
        return response

    def arena_log(self) -> dict:
        return self.arena("GET", "log").json()

    def arena_streams(self, prompt: str) -> list[dict]:
        """What the fake arena streamed for the session whose first message is `prompt`."""
        log = self.arena_log()
        sessions = [s["id"] for s in log["sessions"] if s["turns"][0]["text"] == prompt]
        assert len(sessions) == 1, f"expected one arena session for {prompt!r}, got {len(sessions)}"
        return [s for s in log["streams"] if s["session_id"] == sessions[0]]

    def arena_writes(self) -> int:
        """Stream requests the arena has received (workers also mint tokens and read the catalog
        in the background)."""
        return sum(r["path"].startswith(STREAM_PREFIX) for r in self.arena_log()["requests"])

    def openai(self, timeout: float = 60) -> openai.OpenAI:
        # No SDK retries: a test must see the first answer the bridge gives.
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0, timeout=timeout
        )

    def close(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name)
        for proc, _ in self.others.values():
            stop(proc)
        self.others.clear()
        self.stop_gateway()
        self.redis.close()


@contextlib.contextmanager
def running(
    workdir: Path,
    *workers: str,
    gateway_env: dict[str, str] | None = None,
    site: str | None = None,
    **env: str,
) -> Iterator[Stack]:
    """Redis, the fake arena (serving `site`, else its default), a gateway and the named
    workers, each its own process."""
    arena_args = ["--site", site] if site else []
    with redis_server(workdir) as redis_url, fake_arena(workdir, *arena_args) as arena_url:
        stack = Stack(redis_url, arena_url, workdir, env=env, gateway_env=gateway_env or {})
        try:
            stack.start_gateway()
            for name in workers:
                stack.start_worker(name)
            yield stack
        finally:
            stack.close()


def unique(text: str) -> str:
    """`text` made unique, so that a test finds its own session in the arena's log."""
    return f"{text} {uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """The first truthy value of `predicate()`, asked every 50 ms for up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
