"""Workers heal themselves: a killed or hung browser is replaced, the catalog follows the arena,
and a worker that stops beating is shown as gone and takes its models with it.

Real processes throughout: redis-server, the fake arena, `lmarena-bridge gateway` and
`lmarena-bridge worker` (headless Chromium), the openai SDK as the client.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator

import httpx
import openai
import orjson
import psutil
import pytest

from tests.fakearena.catalog import REPORTED_CATALOG
from tests.support.procs import fake_arena, redis_server
from tests.support.stack import Stack, unique

pytestmark = pytest.mark.browser

ADMIN_KEY = secrets.token_hex(32)
CHAT = "gemini-2.5-pro"
#: Quick probes and refreshes, so that each heals within seconds.
FAST = {
    "LMB_BROWSER_PROBE_SECONDS": "0.5",
    "LMB_BROWSER_PROBE_TIMEOUT_SECONDS": "2",
    "LMB_CATALOG_REFRESH_SECONDS": "1",
    "LMB_ADMIN_KEY": ADMIN_KEY,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("healing")
    with redis_server(workdir) as redis_url, fake_arena(workdir) as arena_url:
        stack = Stack(redis_url, arena_url, workdir, env=FAST)
        try:
            stack.start_gateway()
            stack.start_worker("heal-1")
            yield stack
        finally:
            stack.close()


@pytest.fixture(autouse=True)
def ready(stack: Stack) -> None:
    stack.arena("POST", "reset")
    stack.wait_worker("heal-1", "ready", timeout=60)


def browser_of(stack: Stack, name: str) -> psutil.Process:
    for child in psutil.Process(stack.workers[name].pid).children(recursive=True):
        try:
            if any(arg.startswith("--remote-debugging-port=") for arg in child.cmdline()):
                return child
        except psutil.Error:  # gone, or a zombie waiting to be reaped
            continue
    raise LookupError(f"no Chromium under {name}")


def states_seen(stack: Stack, name: str, until: str, timeout: float = 60) -> list[str]:
    """The states the worker's heartbeat shows, in order, until `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = stack.worker_status(name)
        if status is not None and (not seen or seen[-1] != status.state.value):
            seen.append(status.state.value)
            if status.state.value == until and len(seen) > 1:
                return seen
        time.sleep(0.02)
    raise AssertionError(f"{name} never became {until}: {seen}")


def transitions(stack: Stack, name: str) -> list[str]:
    """Every state change the worker logged, in order ("ready → busy (why)")."""
    log = (stack.workdir / f"{name}.log").read_text()
    return [
        line.split(f"worker {name}: ", 1)[1]
        for line in log.splitlines()
        if f"worker {name}: " in line and " → " in line
    ]


def answer(stack: Stack, prompt: str) -> str:
    reply = stack.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}]
    )
    return reply.choices[0].message.content or ""


def streamed(stack: Stack, prompt: str) -> dict:
    log = stack.arena_log()
    [session] = [s["id"] for s in log["sessions"] if s["turns"][0]["text"] == prompt]
    return [s for s in log["streams"] if s["session_id"] == session][-1]


def test_a_killed_browser_is_replaced_and_serves_again(stack: Stack) -> None:
    browser = browser_of(stack, "heal-1")
    browser.kill()
    states_seen(stack, "heal-1", "ready")
    assert transitions(stack, "heal-1")[-3:] == [
        "ready → restarting (the browser went away)",
        "restarting → starting (starting a new browser)",
        "starting → ready (the arena page is usable (as a guest; catalog from the endpoint))",
    ]
    assert browser_of(stack, "heal-1").pid != browser.pid
    prompt = unique("after a crash")
    assert answer(stack, prompt) == streamed(stack, prompt)["text"]["a"]


def test_a_hung_browser_is_replaced_and_serves_again(stack: Stack) -> None:
    browser = browser_of(stack, "heal-1")
    os.kill(browser.pid, signal.SIGSTOP)  # alive, but answers nothing
    try:
        states_seen(stack, "heal-1", "ready", timeout=60)
    finally:
        if browser.is_running():
            os.kill(browser.pid, signal.SIGCONT)
    assert (
        transitions(stack, "heal-1")[-3]
        == "ready → restarting (the browser did not answer for 2 s)"
    )
    assert not browser.is_running() or browser.status() == psutil.STATUS_ZOMBIE
    prompt = unique("after a hang")
    assert answer(stack, prompt) == streamed(stack, prompt)["text"]["a"]


def test_a_browser_killed_mid_answer_ends_the_stream_with_an_error(stack: Stack) -> None:
    stack.arena("POST", "scenario", json={"line_delay_seconds": 0.3})
    prompt = unique("a long answer to be cut " * 5)
    stream = stack.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}], stream=True
    )
    received = ""
    started = time.monotonic()
    with pytest.raises(openai.APIError) as failure:
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
            if received and browser_of(stack, "heal-1").is_running():
                browser_of(stack, "heal-1").kill()
    assert received, "the kill came after some text"
    assert time.monotonic() - started < 30, "an error, not a hang"
    assert "the arena" in str(failure.value)
    stack.wait_worker("heal-1", "ready", timeout=60)


def test_a_request_waiting_while_the_browser_restarts_is_served_after(stack: Stack) -> None:
    restarts = sum("→ restarting" in t for t in transitions(stack, "heal-1"))
    browser_of(stack, "heal-1").kill()
    # Sent at once: it meets the dead browser or waits in the queue for the new one.
    prompt = unique("queued during a restart")
    assert answer(stack, prompt) == streamed(stack, prompt)["text"]["a"]
    assert sum("→ restarting" in t for t in transitions(stack, "heal-1")) == restarts + 1


def test_the_model_list_follows_the_arenas_catalog_within_a_refresh(stack: Stack) -> None:
    groups = orjson.loads(REPORTED_CATALOG.read_bytes())
    kept = [{**g, "models": [e for e in g["models"] if e["publicName"] != CHAT]} for g in groups]
    stack.arena("POST", "scenario", json={"catalog": kept})
    models = stack.openai().models
    deadline = time.monotonic() + 15
    while CHAT in {m.id for m in models.list()}:
        assert time.monotonic() < deadline, "the catalog did not follow"
        time.sleep(0.2)
    with pytest.raises(openai.NotFoundError):
        stack.openai().chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "hi"}]
        )
    stack.arena("POST", "reset")
    deadline = time.monotonic() + 15
    while CHAT not in {m.id for m in models.list()}:
        assert time.monotonic() < deadline, "the catalog did not come back"
        time.sleep(0.2)


def test_a_worker_that_stops_beating_is_gone_and_so_are_its_models(stack: Stack) -> None:
    stack.start_worker("heal-2")
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    stack.stop_worker("heal-1")  # a clean stop: it leaves the roster
    os.kill(stack.workers["heal-2"].pid, signal.SIGKILL)  # a crash: its heartbeat just stops
    deadline = time.monotonic() + 15
    while True:
        fleet = httpx.get(f"{stack.base_url}/admin/api/workers", headers=headers, timeout=5).json()
        states = {w["id"]: w["state"] for w in fleet["workers"]}
        if states.get("heal-2") == "gone":
            break
        assert time.monotonic() < deadline, f"never gone: {states}"
        time.sleep(0.2)
    assert "heal-1" not in states
    assert fleet["models"] == []
    assert stack.openai().models.list().data == []
    with pytest.raises(openai.APIStatusError) as refused:
        stack.openai().chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code in (404, 503)
    # Leave the module's worker running for whoever comes next.
    stack.workers.pop("heal-2").wait(10)
    for orphan in psutil.process_iter(["cmdline"]):
        cmdline = orphan.info["cmdline"] or []
        if any("profiles/heal-2" in arg for arg in cmdline):
            orphan.wait(10)  # Chromium follows its worker (parent-death signal)
        elif any("drivers/heal-2/chromedriver" in arg for arg in cmdline):
            # chromedriver does not (undetected-chromedriver starts it): a crash leaves it to
            # whoever cleans up after the worker, here the test, so that no run leaves it behind.
            orphan.kill()
            orphan.wait(10)
    stack.start_worker("heal-1")


def test_a_worker_killed_outright_takes_its_driver_and_browser_with_it(stack: Stack) -> None:
    stack.start_worker("heal-doomed")
    try:
        worker = psutil.Process(stack.workers["heal-doomed"].pid)
        descendants = worker.children(recursive=True)
        names = {p.name() for p in descendants}
        assert {"chromedriver.bin", "chromium"} <= names, names
        # The worker alone, not its process group: nothing else is there to stop the rest.
        os.kill(worker.pid, signal.SIGKILL)
        stack.workers.pop("heal-doomed").wait(10)
        _, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == [], [p.name() for p in alive]
    finally:
        if "heal-doomed" in stack.workers:
            stack.kill_worker("heal-doomed")
