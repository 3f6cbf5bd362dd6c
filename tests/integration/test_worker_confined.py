"""The real worker, confined as the Helm chart confines its pod, serves an answer.

bubblewrap stands in for the container runtime: the worker runs as the chart's uid and gid, with
every capability dropped, no new user namespaces (what the runtime's seccomp profile refuses an
unprivileged pod), and a read-only root where only the chart's volumes are writable: its state
(the profile claim), /tmp, HOME and /dev/shm. It starts its display (Xvfb, x11vnc, websockify)
and a headed Chromium, signs nothing in, and answers a request sent through a gateway.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import EXAMPLES, component, containers, env, example, pod_spec, render
from tests.support.procs import (
    ROOT,
    TEST_CHROMIUM_ARGS,
    fake_arena,
    free_port,
    redis_server,
    spawn,
)
from tests.support.stack import Stack
from worker.browser.display import missing_tools

ADMIN_KEY = secrets.token_hex(32)

BWRAP = shutil.which("bwrap")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not BWRAP, reason="needs bubblewrap (apt-get install bubblewrap)"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}"),
]
CHAT = "gemini-2.5-pro"


def chart_worker() -> dict:
    objects = render(example(next(p for p in EXAMPLES if p.stem == "redis-url")))
    return component(objects, "StatefulSet", "worker")


def confined(
    workdir: Path, worker: dict, env_vars: dict[str, str], command: list[str]
) -> list[str]:
    """`command` under bwrap, as the chart's worker container runs."""
    pod = pod_spec(worker)
    [container] = pod["containers"]
    security = {**pod["securityContext"], **container["securityContext"]}
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    assert not security["allowPrivilegeEscalation"]
    variables = env(container)
    home, state = variables["HOME"]["value"], variables["LMB_STATE_DIR"]["value"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {state, "/tmp", home, "/dev/shm"}, mounts

    args = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    args += ["--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    # The host has neither /home/bridge nor /data to mount over, and its root is read-only: each
    # goes on a fresh tmpfs parent (/data, at the top, under /srv instead).
    places = {}
    for path in (home, state):
        place = path if Path(path).parent != Path("/") else f"/srv{path}"
        volume = workdir / path.strip("/").replace("/", "-")
        volume.mkdir(exist_ok=True)  # ours: the sandbox's own uid, inside its user namespace
        args += ["--tmpfs", str(Path(place).parent), "--bind", str(volume), place]
        places[path] = place
    args += [
        "--unshare-user",
        "--uid",
        str(security["runAsUser"]),
        "--gid",
        str(security["runAsGroup"]),
    ]
    args += ["--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session"]
    args += ["--chdir", str(ROOT), "--clearenv"]
    for name, value in {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": places[home],
        "LMB_STATE_DIR": places[state],
        **env_vars,
    }.items():
        args += ["--setenv", name, value]
    return [*args, "--", *command]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("confined")
    with redis_server(workdir) as redis_url, fake_arena(workdir) as arena_url:
        stack = Stack(redis_url, arena_url, workdir, env={"LMB_ADMIN_KEY": ADMIN_KEY})
        try:
            stack.start_gateway()
            yield stack
        finally:
            stack.close()


def test_the_confinement_holds(tmp_path: Path) -> None:
    """Inside, the sandbox is what it claims: the chart's uid, no capabilities, nothing else
    writable, no user namespaces."""
    worker = chart_worker()
    probe = (
        "id -u; id -g; grep CapEff /proc/self/status;"
        " touch /var/tmp/x 2>/dev/null && echo writable-root;"
        " touch /tmp/x $HOME/x $LMB_STATE_DIR/x /dev/shm/x && echo writable-volumes;"
        " unshare --user true 2>/dev/null && echo userns"
    )
    out = subprocess.run(
        confined(tmp_path, worker, {}, ["sh", "-c", probe]),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.split("\n")[:5] == [
        "10001",
        "10001",
        "CapEff:\t0000000000000000",
        "writable-volumes",
        "",
    ], out


def test_the_confined_worker_answers(stack: Stack, tmp_path: Path) -> None:
    novnc_port = free_port()
    settings = {
        "LMB_REDIS_URL": stack.redis_url,
        "LMB_ARENA_URL": stack.arena_url,
        "LMB_ADMIN_KEY": ADMIN_KEY,
        "LMB_WORKER_ID": "confined-0",
        "LMB_DISPLAY": "on",
        "LMB_NOVNC_PORT": str(novnc_port),  # fixed, as the chart's is
        "LMB_HEARTBEAT_SECONDS": "0.5",
        "LMB_CHROMIUM_ARGS": json.dumps(TEST_CHROMIUM_ARGS),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    python = str(Path(ROOT, ".venv", "bin", "python"))
    command = confined(tmp_path, chart_worker(), settings, [python, "-m", "cli", "worker"])
    stack.workers["confined-0"] = spawn(command, log=stack.workdir / "confined-0.log")
    status = stack.wait_worker("confined-0", "ready", timeout=90)
    assert status.novnc_url and status.vnc_salt  # its screen is up, as on a pod
    assert status.novnc_url.endswith(f":{novnc_port}")

    # The chart's liveness probe, run in the pod's place: alive while the worker runs.
    worker = chart_worker()
    probe = next(containers(worker))["livenessProbe"]["exec"]["command"]

    def alive() -> bool:
        run = subprocess.run(
            confined(tmp_path, worker, settings, probe), capture_output=True, timeout=30
        )
        return run.returncode == 0

    prompt = f"from a read-only root {uuid.uuid4().hex[:8]}"
    chunks = stack.openai().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [stream] = [s for s in stack.arena_streams(prompt) if s["status"] == "finished"]
    assert text == stream["text"]["a"] and text.endswith(prompt)
    assert alive()
    stack.stop_worker("confined-0")
    # What it wrote went to the chart's volumes: the profile under its state directory.
    assert (tmp_path / "data" / "profiles" / "confined-0").is_dir()
    # A worker whose loop stopped turning: its alive file ages, and the probe says so.
    stale = time.time() - 60
    os.utime(tmp_path / "data" / "health" / "confined-0.alive", (stale, stale))
    assert not alive()
