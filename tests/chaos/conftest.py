"""The chaos suite: the whole bridge as processes (a persistent redis-server, the fake arena,
gateways, browser workers), broken on purpose while it answers.

Each test prints its figure (`pytest -s` shows them). Every wait is bounded; the suite runs in
a few minutes on two cores.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import (
    fake_arena,
    free_port,
    redis_server_binary,
    spawn,
    stop,
    wait_for_port,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


class RestartableRedis:
    """A real redis-server that keeps its data in an append-only file, so that it can be
    stopped and started again on the same port, as an operator restarts one."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = spawn(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
            ],
            log=self.dir / "redis.log",
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[tuple[Stack, RestartableRedis]]:
    """Redis, the fake arena and a gateway; the test starts the workers it needs."""
    redis = RestartableRedis(tmp_path)
    redis.start()
    try:
        with fake_arena(tmp_path) as arena_url:
            stack = Stack(
                redis.url,
                arena_url,
                tmp_path,
                env={"LMB_WORKER_CAPACITY": "4", "LMB_DRAIN_SECONDS": "20"},
            )
            try:
                stack.start_gateway()
                yield stack, redis
            finally:
                with contextlib.suppress(Exception):
                    stack.close()
    finally:
        redis.stop()
