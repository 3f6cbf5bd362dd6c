"""`lmarena-bridge up`: embedded Redis, a gateway and a worker from one command, and Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import psutil
import pytest
import redis

from tests.support.procs import ROOT, TEST_CHROMIUM_ARGS, fake_arena, free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[str]:
    with fake_arena(tmp_path) as origin:
        yield origin


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    """stderr of `proc` up to the line holding `marker`."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} not printed within {timeout}s; output so far:\n{seen}")


def start_up(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "up"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_up_serves_requests_and_stops_everything_on_ctrl_c(tmp_path: Path, arena: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LMB_ARENA_URL": arena,
        "LMB_PORT": str(port),
        "LMB_STATE_DIR": str(tmp_path / "state"),
        "LMB_HEADLESS": "true",
        "LMB_CHROMIUM_ARGS": json.dumps(TEST_CHROMIUM_ARGS),
        "LMB_WORKERS": "1",
        "COLUMNS": "200",
    }
    env.pop("LMB_REDIS_URL", None)
    up = start_up(env)
    try:
        banner = read_until(up, "Point your client at", timeout=60)
        assert "Redis: embedded" in banner
        assert f"http://127.0.0.1:{port}/v1" in banner
        # A first client key, made because the bridge had none, printed beside the URL and kept
        # for this user alone: the bridge is not open, and `up` is still one command.
        key = re.search(r"with the key (lmb-\S+) \(kept in (\S+)\)", banner)
        assert key is not None, banner
        kept = Path(key.group(2))
        assert kept.read_text().strip() == key.group(1)
        assert kept.stat().st_mode & 0o777 == 0o600
        read_until(up, "worker-1: ready", timeout=60)
        children = psutil.Process(up.pid).children(recursive=True)
        assert any("chrom" in child.name() for child in children)
        redis_url = re.search(r"Redis: embedded \((unix://\S+)\)", banner).group(1)
        assert redis.Redis.from_url(redis_url).ping()

        keyless = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0
        )
        with pytest.raises(openai.AuthenticationError):
            keyless.models.list()
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key.group(1), max_retries=0
        )
        answer = client.chat.completions.create(
            model="gemini-2.5-pro", messages=[{"role": "user", "content": "hello up"}]
        )
        assert answer.choices[0].message.content.endswith("hello up")

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
        assert "Stopped." in up.stderr.read()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(redis_url).ping()
    finally:
        if up.poll() is None:
            up.kill()


def test_up_killed_outright_takes_its_children_along_and_its_redis_keeps_its_data(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "LMB_PORT": str(free_port()),
        "LMB_STATE_DIR": str(tmp_path / "state"),
        "LMB_WORKERS": "0",  # the gateway and Redis are enough here
        "COLUMNS": "200",
    }
    env.pop("LMB_REDIS_URL", None)

    def start() -> tuple[subprocess.Popen, str]:
        up = start_up(env)
        banner = read_until(up, "Point your client at", timeout=60)
        return up, re.search(r"Redis: embedded \((unix://\S+)\)", banner).group(1)

    up, redis_url = start()
    try:
        redis.Redis.from_url(redis_url).set("lmb:kept", b"across restarts")
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 2  # the gateway and Redis
        up.kill()
        up.wait(10)
        # Nothing of it runs on: each child was told to stop when it died.
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == []
    finally:
        if up.poll() is None:
            up.kill()
    up, redis_url = start()
    try:
        assert redis.Redis.from_url(redis_url).get("lmb:kept") == b"across restarts"
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()


def test_up_gives_the_key_it_kept_and_makes_none_when_keys_exist(tmp_path: Path) -> None:
    """Run again, `up` prints the key it kept; with keys of the operator's, it makes none."""
    env = {
        **os.environ,
        "LMB_PORT": str(free_port()),
        "LMB_STATE_DIR": str(tmp_path / "state"),
        "LMB_WORKERS": "0",
        "COLUMNS": "200",
    }
    env.pop("LMB_REDIS_URL", None)
    first, second = (re.search(r"with the key (lmb-\S+)", banner(env)) for _ in range(2))
    assert first is not None and second is not None and first.group(1) == second.group(1)
    (tmp_path / "state" / "client-key").unlink()
    third = banner(env)
    assert "with one of your client keys" in third and "lmb-" not in third


def banner(env: dict[str, str]) -> str:
    """What `up` prints up to the base URL; then it is stopped with Ctrl-C."""
    up = start_up(env)
    try:
        printed = read_until(up, "Point your client at", timeout=60)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
    return printed
