"""`lmarena-bridge up`: embedded Redis, a gateway and a worker from one command, and Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest
import redis

from tests.integration.test_admin_auth import sign_in
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


def one_worker(tmp_path: Path, arena: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of an `up` with one headless worker and an embedded Redis."""
    env = {
        **os.environ,
        "LMB_ARENA_URL": arena,
        "LMB_PORT": str(port),
        "LMB_STATE_DIR": str(tmp_path / "state"),
        "LMB_HEADLESS": "true",
        "LMB_CHROMIUM_ARGS": json.dumps(TEST_CHROMIUM_ARGS),
        "LMB_WORKERS": "1",
        "COLUMNS": "400",
        **extra,
    }
    env.pop("LMB_REDIS_URL", None)
    return env


def test_up_serves_requests_and_stops_everything_on_ctrl_c(tmp_path: Path, arena: str) -> None:
    port = free_port()
    up = start_up(one_worker(tmp_path, arena, port))
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


def test_up_says_at_once_why_the_arena_cannot_be_reached_and_backs_off_in_one_browser(
    tmp_path: Path,
) -> None:
    """No route to the arena, as a new user may have: the reason in `up`'s console within 10 s,
    on the admin page and in its API, the doctor named; then tries again after growing pauses,
    in the browser it has (watched over its first three tries, about 20 s)."""
    port, key = free_port(), secrets.token_hex(16)
    started = time.monotonic()
    # Never resolved: the test's Chromium maps every name away.
    up = start_up(one_worker(tmp_path, "http://arena.invalid", port, LMB_ADMIN_KEY=key))
    try:
        line = read_until(up, "worker-1: unreachable", timeout=10).splitlines()[-1]
        assert time.monotonic() - started < 10
        assert "could not load http://arena.invalid/ (net::ERR_NAME_NOT_RESOLVED)" in line
        assert "Run `lmarena-bridge doctor` (its check `page` fails)" in line
        assert re.search(r"next try at \d\d:\d\d:\d\d$", line)

        base = f"http://127.0.0.1:{port}"
        (row,) = httpx.get(
            f"{base}/admin/api/workers", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()["workers"]
        assert (row["state"], row["check"]) == ("unreachable", "page")
        assert "ERR_NAME_NOT_RESOLVED" in row["reason"] and row["retry_in_s"] is not None
        with httpx.Client(base_url=base, timeout=10) as client:
            assert sign_in(client, key).status_code == 303
            page = client.get("/admin").text
        assert 'data-worker="worker-1" data-state="unreachable"' in page
        assert "ERR_NAME_NOT_RESOLVED" in page and "lmarena-bridge doctor" in page

        # Two more tries, each announced with its next one, after growing pauses.
        lines = [line]
        for _ in range(2):
            lines.append(read_until(up, "worker-1: ", timeout=30).splitlines()[-1])
        assert all("worker-1: unreachable: " in line for line in lines)
        tries = [_clock(line) for line in lines]
        assert tries[2] - tries[1] > tries[1] - tries[0] > 0
        log = (tmp_path / "state" / "logs" / "worker-1.log").read_text()
        assert log.count("starting Chromium") == 1  # the same browser throughout
        assert "restarting" not in log

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


def _clock(line: str) -> int:
    """The seconds of the day of a line's `next try at HH:MM:SS`."""
    hours, minutes, seconds = re.search(r"next try at (\d\d):(\d\d):(\d\d)$", line).groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds)
